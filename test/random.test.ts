import { describe, it, before } from 'node:test';
import { assert, setup, wq } from './helpers.ts';
import { seedKey } from '../src/kernels/random.ts';

function moments(a: ArrayLike<number>): { mean: number; variance: number } {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i];
  const mean = s / a.length;
  let v = 0;
  for (let i = 0; i < a.length; i++) v += (a[i] - mean) ** 2;
  return { mean, variance: v / a.length };
}

/** Correlation of neighbouring elements (a weak-independence check). */
function lag1(a: ArrayLike<number>): number {
  const { mean, variance } = moments(a);
  let c = 0;
  for (let i = 1; i < a.length; i++) c += (a[i] - mean) * (a[i - 1] - mean);
  return c / (a.length - 1) / variance;
}

const N = 100_000;

/** Plain-TypeScript reference of the generator's uniform stream (the kernel must match it bit for bit). */
function pcg(v: number): number {
  const state = (Math.imul(v, 747796405) + 2891336453) >>> 0;
  const word = Math.imul(((state >>> ((state >>> 28) + 4)) ^ state) >>> 0, 277803737) >>> 0;
  return ((word >>> 22) ^ word) >>> 0;
}
function refUniform(n: number, key: number, lo: number, hi: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const h = pcg((pcg((i ^ key) >>> 0) + key) >>> 0);
    const u = Math.fround((h >>> 8) / 16777216);
    out[i] = Math.fround(lo + Math.fround(Math.fround(hi - lo) * u));
  }
  return out;
}

describe('random', () => {
  before(setup);

  it('rand: reproducible for a seed, different across seeds, range and moments', async () => {
    const a = await wq.rand([N], 42, -2, 3).data();
    const b = await wq.rand([N], 42, -2, 3).data();
    const c = await wq.rand([N], 43, -2, 3).data();
    assert.deepEqual(a, b);
    let same = 0;
    for (let i = 0; i < N; i++) if (a[i] === c[i]) same++;
    assert.ok(same < 10, `seeds 42 and 43 share ${same} values`);
    for (let i = 0; i < N; i++) assert.ok(a[i] >= -2 && a[i] < 3, `rand value ${a[i]} at ${i} outside [-2, 3)`);
    const m = moments(a);
    // uniform on [-2, 3): mean 0.5, variance 25/12; sd of the mean estimate ~0.0046
    assert.ok(Math.abs(m.mean - 0.5) < 0.03, `mean ${m.mean}`);
    assert.ok(Math.abs(m.variance - 25 / 12) < 0.05, `variance ${m.variance}`);
    assert.ok(Math.abs(lag1(a)) < 0.02, `lag-1 correlation ${lag1(a)}`);
    // histogram: 10 bins each within 5 % of N/10
    const bins = new Array(10).fill(0);
    for (let i = 0; i < N; i++) bins[Math.floor((a[i] + 2) * 2)]++;
    for (const k of bins) assert.ok(Math.abs(k - N / 10) < N / 200, `bins ${bins}`);
    // defaults: [0, 1); shape is kept; a prefix of a longer draw equals the shorter draw
    const d = wq.rand([7, 3], 5);
    assert.deepEqual([...d.shape], [7, 3]);
    const long = await wq.rand([100], 5).data();
    assert.deepEqual(Array.from(await d.data()), Array.from(long.slice(0, 21)));
    // bit-exact against the plain-TypeScript generator (same values on every implementation)
    assert.deepEqual(Array.from(long), Array.from(refUniform(100, seedKey(5), 0, 1)));
    // negative and large seeds are valid and distinct
    const n1 = await wq.rand([64], -1).data();
    const n2 = await wq.rand([64], 2 ** 40 + 1).data();
    const n3 = await wq.rand([64], 1).data();
    assert.notDeepEqual(n1, n2);
    assert.notDeepEqual(n2, n3);
  });

  it('randn: reproducible, moments, tails', async () => {
    const a = await wq.randn([N], 7, 1.5, 2).data();
    assert.deepEqual(a, await wq.randn([N], 7, 1.5, 2).data());
    assert.notDeepEqual(a, await wq.randn([N], 8, 1.5, 2).data());
    const m = moments(a);
    assert.ok(Math.abs(m.mean - 1.5) < 0.03, `mean ${m.mean}`);
    assert.ok(Math.abs(m.variance - 4) < 0.1, `variance ${m.variance}`);
    let in1 = 0;
    let finite = true;
    for (let i = 0; i < N; i++) {
      if (Math.abs(a[i] - 1.5) < 2) in1++;
      if (!Number.isFinite(a[i])) finite = false;
    }
    assert.ok(finite, 'randn produced a non-finite value');
    assert.ok(Math.abs(in1 / N - 0.6827) < 0.01, `fraction within one sd ${in1 / N}`);
    assert.ok(Math.abs(lag1(a)) < 0.02, `lag-1 correlation ${lag1(a)}`);
    const z = moments(await wq.randn([N], 9).data());
    assert.ok(Math.abs(z.mean) < 0.02 && Math.abs(z.variance - 1) < 0.03, `standard normal ${JSON.stringify(z)}`);
  });

  it('uniform_ and normal_ fill in place (same values as rand/randn)', async () => {
    const t = wq.zeros([1000]);
    const id = t.buf.id;
    wq.uniform_(t, -1, 1, 3);
    assert.equal(t.buf.id, id);
    assert.deepEqual(await t.data(), await wq.rand([1000], 3, -1, 1).data());
    wq.normal_(t, 0, 0.5, 4);
    assert.deepEqual(await t.data(), await wq.randn([1000], 4, 0, 0.5).data());
    const m = moments(await t.data());
    assert.ok(Math.abs(m.variance - 0.25) < 0.04, `normal_ variance ${m.variance}`);
  });

  it('bernoulliMask: 0/1 values with the keep probability', async () => {
    const a = await wq.bernoulliMask([N], 0.3, 11).data();
    let ones = 0;
    for (let i = 0; i < N; i++) {
      assert.ok(a[i] === 0 || a[i] === 1, `mask value ${a[i]}`);
      ones += a[i];
    }
    assert.ok(Math.abs(ones / N - 0.3) < 0.01, `keep fraction ${ones / N}`);
    assert.deepEqual(a, await wq.bernoulliMask([N], 0.3, 11).data());
    assert.ok((await wq.bernoulliMask([500], 1, 1).array()).every((v) => v === 1));
    assert.ok((await wq.bernoulliMask([500], 0, 1).array()).every((v) => v === 0));
  });

  it('errors name the op', () => {
    assert.throws(() => wq.bernoulliMask([4], 1.5, 1), /bernoulliMask: keepProb must be in \[0, 1\], got 1.5/);
    assert.throws(() => wq.rand([4], NaN), /rand: seed must be a finite number/);
    assert.throws(() => wq.rand([2.5], 1), /rand: invalid shape \[2.5\]/);
    assert.throws(() => wq.uniform_(wq.tensor(new Int32Array(3)), 0, 1, 1), /uniform_: expected dtype f32, got .*i32\[3\]/);
  });
});
