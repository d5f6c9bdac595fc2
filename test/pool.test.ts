import { before, describe, it } from 'node:test';
import { assert, assertClose, gradCheck, randArray, setup, size, wq } from './helpers.ts';
import { isTiledPool, POOL_FAMILIES, type PoolKind } from '../src/kernels/pool.ts';

interface P {
  k: [number, number];
  s: [number, number];
  p: [number, number];
}

/** Reference pooling in float64 (max: padding never wins; avg: count_include_pad = true). */
function refPool(kind: 'max' | 'avg', shape: number[], x: ArrayLike<number>, o: P): Float64Array {
  const [N, C, H, W] = shape;
  const Ho = Math.floor((H + 2 * o.p[0] - o.k[0]) / o.s[0]) + 1;
  const Wo = Math.floor((W + 2 * o.p[1] - o.k[1]) / o.s[1]) + 1;
  const y = new Float64Array(N * C * Ho * Wo);
  for (let pl = 0; pl < N * C; pl++) {
    for (let ho = 0; ho < Ho; ho++) {
      for (let wo = 0; wo < Wo; wo++) {
        let acc = kind === 'max' ? -Infinity : 0;
        for (let a = 0; a < o.k[0]; a++) {
          for (let b = 0; b < o.k[1]; b++) {
            const h = ho * o.s[0] - o.p[0] + a;
            const w = wo * o.s[1] - o.p[1] + b;
            if (h < 0 || h >= H || w < 0 || w >= W) continue;
            const v = x[(pl * H + h) * W + w];
            acc = kind === 'max' ? Math.max(acc, v) : acc + v;
          }
        }
        y[(pl * Ho + ho) * Wo + wo] = kind === 'max' ? acc : acc / (o.k[0] * o.k[1]);
      }
    }
  }
  return y;
}

function refGap(shape: number[], x: ArrayLike<number>): Float64Array {
  const [N, C, H, W] = shape;
  const y = new Float64Array(N * C);
  for (let i = 0; i < N * C * H * W; i++) y[Math.floor(i / (H * W))] += x[i] / (H * W);
  return y;
}

/** Distinct values (a shuffled ramp), so max pooling has no ties. */
function distinct(n: number, seed: number): Float32Array {
  const r = randArray(n, seed, 0, 1);
  const idx = Array.from({ length: n }, (_, i) => i).sort((a, b) => r[a] - r[b]);
  const out = new Float32Array(n);
  idx.forEach((j, k) => (out[j] = (k - n / 2) * 0.01));
  return out;
}

const two = (v: number | [number, number]): [number, number] => (typeof v === 'number' ? [v, v] : v);

const CASES: [number[], P][] = [
  [[1, 1, 4, 4], { k: [2, 2], s: [2, 2], p: [0, 0] }],
  [[3, 5, 9, 11], { k: [2, 2], s: [2, 2], p: [0, 0] }], // odd sizes: last row/column dropped
  [[2, 3, 10, 9], { k: [3, 3], s: [2, 2], p: [1, 1] }], // overlapping windows with padding
  [[2, 4, 7, 8], { k: [3, 2], s: [1, 2], p: [1, 1] }], // rectangular
  [[2, 3, 9, 9], { k: [1, 1], s: [2, 2], p: [0, 0] }], // ResNet option-A shortcut subsampling
  [[3, 7, 33, 35], { k: [5, 5], s: [3, 3], p: [2, 2] }], // several workgroups
  [[2, 3, 30, 27], { k: [2, 2], s: [2, 2], p: [0, 0] }], // window-per-thread path: several workgroups per plane
  [[2, 2, 10, 11], { k: [3, 3], s: [3, 3], p: [0, 0] }], // window-per-thread path: 3x3, partial last windows
];

describe('pooling', () => {
  before(setup);

  /** Force one max-pooling variant (both directions), or none. */
  const force = (v: PoolKind | null) => {
    for (const f of Object.values(POOL_FAMILIES)) wq.gpu().tuner.force(f.name, v);
  };
  const tiles = ([N, C, H, W]: number[], o: P) =>
    isTiledPool({ N, C, H, W, kh: o.k[0], kw: o.k[1], sh: o.s[0], sw: o.s[1], ph: o.p[0], pw: o.p[1], Ho: 0, Wo: 0 });

  // max pooling: every variant the tuner can pick ('tile' where it applies), forced in turn; then the tuner's own pick
  for (const [kind, variant] of [['max', 'tile'], ['max', 'window'], ['max', null], ['avg', null]] as const) {
    const fn = kind === 'max' ? wq.maxPool2d : wq.avgPool2d;
    it(`${kind}Pool2d${variant ? ` ('${variant}' variant)` : ''}: forward and backward vs reference`, async () => {
      force(variant);
      let ran = 0;
      for (let c = 0; c < CASES.length; c++) {
        const [shape, o] = CASES[c];
        if (variant === 'tile' && !tiles(shape, o)) continue;
        ran++;
        const xa = distinct(size(shape), 10 + c);
        const x = wq.tensor(xa, shape, 'f32', true);
        const y = fn(x, { kernel: o.k, stride: o.s, padding: o.p });
        const want = refPool(kind, shape, xa, o);
        const what = `${kind}Pool2d ${JSON.stringify(shape)} ${JSON.stringify(o)}`;
        assert.equal(y.size, want.length, what);
        assertClose(await y.data(), want, 2e-5, 1e-4, what);
        // backward: gradient of sum(y * dy) by the rule (argmax routing / uniform spread)
        const dya = randArray(y.size, 20 + c);
        const dy = wq.tensor(dya, y.shape);
        y.backward(dy);
        const dx = new Float64Array(xa.length);
        const [N, C, H, W] = shape;
        const [Ho, Wo] = [y.shape[2], y.shape[3]];
        for (let pl = 0; pl < N * C; pl++) {
          for (let ho = 0; ho < Ho; ho++) {
            for (let wo = 0; wo < Wo; wo++) {
              const g = dya[(pl * Ho + ho) * Wo + wo];
              let best = -Infinity;
              let at = -1;
              for (let a = 0; a < o.k[0]; a++) {
                for (let b = 0; b < o.k[1]; b++) {
                  const h = ho * o.s[0] - o.p[0] + a;
                  const w = wo * o.s[1] - o.p[1] + b;
                  if (h < 0 || h >= H || w < 0 || w >= W) continue;
                  const i = (pl * H + h) * W + w;
                  if (kind === 'avg') dx[i] += g / (o.k[0] * o.k[1]);
                  else if (xa[i] > best) [best, at] = [xa[i], i];
                }
              }
              if (kind === 'max') dx[at] += g;
            }
          }
        }
        assertClose(await x.grad!.data(), dx, 1e-5, 1e-4, `${what}: dx`);
        for (const t of [x, y, dy]) t.release();
      }
      force(null);
      assert.ok(ran >= 3, `${ran} cases ran`);
    });
  }

  it("maxPool2d: the 'tile' variant is a candidate only where stride = kernel and no padding; forcing it elsewhere is refused", () => {
    const at = (shape: number[], o: P) => {
      const [N, C, H, W] = shape;
      return { dir: 'fwd' as const, g: { N, C, H, W, kh: o.k[0], kw: o.k[1], sh: o.s[0], sw: o.s[1], ph: o.p[0], pw: o.p[1], Ho: 1, Wo: 1 } };
    };
    assert.deepEqual(POOL_FAMILIES.fwd.candidates(wq.gpu(), at(...CASES[0])), ['tile', 'window']);
    assert.deepEqual(POOL_FAMILIES.bwd.candidates(wq.gpu(), { ...at(...CASES[2]), dir: 'bwd' }), ['window']);
    force('tile');
    try {
      assert.throws(() => wq.maxPool2d(wq.zeros([2, 3, 10, 9]), { kernel: 3, stride: 2, padding: 1 }), /pool\.max\.fwd.*'tile' does not apply/);
    } finally {
      force(null);
    }
  });

  for (const kind of ['max', 'avg'] as const) {
    const fn = kind === 'max' ? wq.maxPool2d : wq.avgPool2d;

    it(`${kind}Pool2d: gradCheck`, async () => {
      for (const [shape, o] of [[[2, 2, 5, 6], { k: two(3), s: two(2), p: two(1) }], [[1, 3, 4, 4], { k: two(2), s: two(1), p: two(0) }]] as [number[], P][]) {
        await gradCheck(
          ([x]) => fn(x, { kernel: o.k, stride: o.s, padding: o.p }),
          ([x]) => refPool(kind, shape, x, o),
          [{ data: distinct(size(shape), 3), shape }],
          { what: `${kind}Pool2d ${JSON.stringify(shape)}` },
        );
      }
    });
  }

  it('maxPool2d: ties route the gradient to the first maximum; stride defaults to the kernel', async () => {
    const x = wq.tensor(new Float32Array([1, 1, 0, 2, 1, 1, 2, 0]), [1, 1, 2, 4], 'f32', true);
    const y = wq.maxPool2d(x, { kernel: 2 });
    assert.deepEqual(y.shape, [1, 1, 1, 2]);
    assert.deepEqual(await y.array(), [1, 2]);
    wq.sum(y).backward();
    assert.deepEqual(await x.grad!.array(), [1, 0, 0, 1, 0, 0, 0, 0]);
    x.release();
    y.release();
  });

  it('globalAvgPool: forward, backward, gradCheck', async () => {
    for (const shape of [[1, 1, 1, 1], [3, 5, 7, 9], [2, 3, 16, 17]]) {
      const xa = randArray(size(shape), 4);
      const x = wq.tensor(xa, shape);
      const y = wq.globalAvgPool(x);
      assert.deepEqual(y.shape, shape.slice(0, 2));
      assertClose(await y.data(), refGap(shape, xa), 1e-5, 1e-4, `globalAvgPool ${JSON.stringify(shape)}`);
      x.release();
      y.release();
    }
    const shape = [2, 3, 4, 5];
    await gradCheck(([x]) => wq.globalAvgPool(x), ([x]) => refGap(shape, x), [{ data: randArray(size(shape), 8), shape }], { what: 'globalAvgPool' });
  });

  it('bad input names the op and the shapes', () => {
    const x = wq.zeros([2, 3, 5, 5]);
    const bad = (fn: () => unknown, re: RegExp) => assert.throws(fn, (e: Error) => re.test(e.message));
    bad(() => wq.maxPool2d(wq.zeros([3, 5, 5]), { kernel: 2 }), /maxPool2d.*rank 4.*\[3,5,5\]/);
    bad(() => wq.avgPool2d(x, { kernel: 7 }), /avgPool2d.*larger than the padded input 5x5.*\[2,3,5,5\]/);
    bad(() => wq.maxPool2d(x, { kernel: 2, stride: 0 }), /maxPool2d.*stride/);
    bad(() => wq.maxPool2d(x, { kernel: 2, padding: 2 }), /maxPool2d.*padding.*half/);
    bad(() => wq.globalAvgPool(wq.zeros([2, 3])), /globalAvgPool.*rank 4.*\[2,3\]/);
    bad(() => wq.maxPool2d(wq.zeros([2, 3, 4, 4], 'i32'), { kernel: 2 }), /maxPool2d.*f32.*i32/);
    x.release();
  });
});
