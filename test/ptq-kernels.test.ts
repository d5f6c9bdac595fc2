/**
 * PTQ kernels (MXQN, ALGORITHMS §1.6, §4): the fixed-point and log fake quantizers (signed and
 * unsigned, m = 1, 2, 4 levels per octave) against a plain-TS reference, their clipped STE
 * backward, the per-candidate error sums (SQNR) and the log2 histogram, with awkward sizes.
 */
import { before, describe, it } from 'node:test';
import { assert, assertClose, randArray, setup, wq } from './helpers.ts';
import { refQ } from './fixtures/ptq-ref.ts';


const QUANTIZERS: wq.PtqQuantizer[] = [
  { kind: 'fixed', bits: 8, frac: 6, signed: true },
  { kind: 'fixed', bits: 4, frac: 2, signed: false },
  { kind: 'fixed', bits: 3, frac: -1, signed: true },
  { kind: 'log', bits: 4, fsr: 1, m: 1, signed: false },
  { kind: 'log', bits: 5, fsr: 2, m: 2, signed: true },
  { kind: 'log', bits: 6, fsr: 0, m: 4, signed: false },
  { kind: 'log', bits: 3, fsr: 1, m: 2, signed: true },
  { kind: 'log', bits: 8, fsr: 1, m: 8, signed: true },
];

/** Long-tailed data in ±8 with some exact zeros. */
function data(n: number, seed: number): Float32Array {
  const u = randArray(n, seed, -1, 1);
  const r = randArray(n, seed + 1, 0, 1);
  return Float32Array.from(u, (v, i) => (r[i] < 0.05 ? 0 : Math.sign(v) * 8 * Math.abs(v) ** 3));
}

describe('ptq kernels', () => {
  before(async () => {
    await setup();
  });

  it('fake quantizers match the reference (fixed and log, signed and unsigned, m = 1, 2, 4, 8)', async () => {
    for (const n of [1, 257, 4099]) {
      const x = data(n, n);
      const t = wq.tensor(x, [n]);
      for (const q of QUANTIZERS) {
        const got = await wq.ptqQuantize(t, q).data();
        let bad = 0;
        for (let i = 0; i < n; i++) {
          const r = refQ(x[i], q);
          if (Math.abs(got[i] - r.y) > 1e-6 * Math.max(1, Math.abs(r.y)) && !r.edge) {
            bad++;
            assert.fail(`${wq.ptqLabel(q)} n=${n}: x[${i}] = ${x[i]} gave ${got[i]}, expected ${r.y}`);
          }
        }
        assert.equal(bad, 0);
      }
      t.release();
    }
  });

  it('exact level sets: unsigned log2 4-bit has 16 codes, fixed 4-bit unsigned has 16 levels', async () => {
    const n = 4000;
    const x = Float32Array.from(randArray(n, 5, 0, 1), (v) => 2 ** (40 * v - 30));
    const t = wq.tensor(x, [n]);
    const lg = new Set(await wq.ptqQuantize(t, { kind: 'log', bits: 4, fsr: 10, m: 1, signed: false }).data());
    assert.equal(lg.size, 16, `log2 u4 codes: ${[...lg].sort((a, b) => a - b).join(', ')}`);
    assert.ok(lg.has(0) && lg.has(2 ** 9) && lg.has(2 ** -5));
    const fx = new Set(await wq.ptqQuantize(t, { kind: 'fixed', bits: 4, frac: -6, signed: false }).data());
    assert.equal(fx.size, 16);
    t.release();
  });

  it('backward: straight-through inside the representable range, zero outside', async () => {
    const n = 300;
    const x = data(n, 11);
    const g = randArray(n, 12);
    for (const q of QUANTIZERS) {
      const t = wq.tensor(x, [n], 'f32', true);
      const y = wq.ptqQuantize(t, q);
      wq.sum(wq.mul(y, wq.tensor(g, [n]))).backward();
      const [lo, hi] = wq.ptqRange(q);
      const want = Array.from(x, (v, i) => (v >= lo && v <= hi ? g[i] : 0));
      assertClose(await t.grad!.data(), want, 0, 0, `${wq.ptqLabel(q)} STE`);
      assert.ok(want.some((v) => v === 0) && want.some((v) => v !== 0), `${wq.ptqLabel(q)}: the test data crosses the range`);
      t.release();
    }
  });

  it('error sums accumulate Σx² and Σ(x − Q(x))² per quantizer over calls', async () => {
    for (const n of [3, 4097, 20000]) {
      const x = data(n, 100 + n);
      const t = wq.tensor(x, [n]);
      const acc = wq.zeros([16]);
      wq.ptqErrorSums_(t, QUANTIZERS, acc);
      wq.ptqErrorSums_(t, QUANTIZERS, acc); // accumulates
      const got = await acc.data();
      let s0 = 0;
      for (const v of x) s0 += v * v;
      const want = [2 * s0];
      for (const q of QUANTIZERS) {
        let s = 0;
        for (const v of x) s += (v - refQ(v, q).y) ** 2;
        want.push(2 * s);
      }
      assertClose(Array.from(got).slice(0, want.length), want, 1e-5, 2e-4, `sums n=${n}`);
      assert.ok(got.slice(want.length).every((v) => v === 0), 'unused slots stay 0');
      t.release();
      acc.release();
    }
  });

  it('histogram: zeros in bin 0, |x| in quarter-octave bins, counts accumulate', async () => {
    const h = wq.PTQ_HISTOGRAM;
    // values in the middle of known bins (no boundary noise), with signs and zeros
    const n = 9001;
    const r = randArray(n, 21, 0, 1);
    const bins: number[] = [];
    const x = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      if (r[i] < 0.1) {
        bins.push(0);
        continue;
      }
      const b = 1 + Math.floor(r[i] * 180);
      bins.push(b);
      x[i] = (i % 2 ? -1 : 1) * 2 ** (h.log2Lo + (b - 1 + 0.5) / h.perOctave);
    }
    const t = wq.tensor(x, [n]);
    const acc = wq.zeros([h.bins]);
    wq.ptqHistogram_(t, acc);
    wq.ptqHistogram_(t, acc);
    const want = new Array(h.bins).fill(0);
    for (const b of bins) want[b] += 2;
    assertClose(await acc.data(), want, 0, 0, 'histogram');
    // out-of-range magnitudes clamp to the end bins
    const e = wq.tensor([1e-30, 3e38, -1e-20], [3]);
    const acc2 = wq.zeros([h.bins]);
    wq.ptqHistogram_(e, acc2);
    const g2 = await acc2.data();
    assert.equal(g2[1], 2);
    assert.equal(g2[h.bins - 1], 1);
    for (const z of [t, acc, e, acc2]) z.release();
  });

  it('argument errors name the op and what is accepted', () => {
    const t = wq.tensor([1, 2], [2]);
    assert.throws(() => wq.ptqQuantize(t, { kind: 'fixed', bits: 0, frac: 0, signed: true }), /ptqQuantize: bits must be an integer in 2\.\.16, got 0/);
    assert.throws(() => wq.ptqQuantize(t, { kind: 'log', bits: 4, fsr: 0, m: 3, signed: true }), /ptqQuantize: m \(levels per octave\) must be one of 1, 2, 4, 8, 16, got 3/);
    assert.throws(() => wq.ptqErrorSums_(t, [], wq.zeros([4])), /ptqErrorSums_: 1\.\.15 quantizers per call, got 0/);
    assert.throws(() => wq.ptqErrorSums_(t, QUANTIZERS, wq.zeros([4])), /acc needs 9 elements/);
    assert.throws(() => wq.ptqHistogram_(t, wq.zeros([4])), /ptqHistogram_: acc must have 256 elements/);
    t.release();
  });
});
