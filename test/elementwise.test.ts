import { describe, it, before } from 'node:test';
import { assert, assertClose, gradCheck, randArray, setup, size, wq } from './helpers.ts';
import { unaryGate } from '../src/kernels/elementwise.ts';

const UN: Record<string, [(x: wq.Tensor) => wq.Tensor, (v: number) => number, [number, number]]> = {
  neg: [wq.neg, (v) => -v, [-2, 2]],
  abs: [wq.abs, Math.abs, [-2, 2]],
  exp: [wq.exp, Math.exp, [-2, 2]],
  log: [wq.log, Math.log, [0.2, 3]],
  sqrt: [wq.sqrt, Math.sqrt, [0.2, 3]],
  relu: [wq.relu, (v) => Math.max(v, 0), [-2, 2]],
  sigmoid: [wq.sigmoid, (v) => 1 / (1 + Math.exp(-v)), [-3, 3]],
  tanh: [wq.tanh, Math.tanh, [-3, 3]],
  square: [wq.square, (v) => v * v, [-2, 2]],
};

describe('elementwise', () => {
  before(setup);

  for (const [name, [fn, ref, [lo, hi]]] of Object.entries(UN)) {
    it(`${name}: forward vs reference and backward vs finite differences`, async () => {
      for (const shape of [[1], [7, 13], [3, 5, 67]]) {
        const x = randArray(size(shape), 3 + shape.length, lo, hi);
        const t = wq.tensor(x, shape);
        const y = fn(t);
        assertClose(await y.data(), Array.from(x, ref), 1e-5, 1e-4, `${name}${JSON.stringify(shape)}`);
        t.release();
        y.release();
      }
      // keep away from kinks for abs/relu
      const xs = randArray(24, 11, lo, hi).map((v) => (Math.abs(v) < 0.05 ? v + 0.1 : v));
      await gradCheck(([a]) => fn(a), ([a]) => Array.from(a, ref), [{ data: xs, shape: [4, 6] }], { what: name });
    });
  }

  it('gate kernel (g * mask(x), the fused backward of relu/abs/clamp) vs reference', async () => {
    const gpu = wq.gpu();
    const n = 70_001; // several workgroups and a ragged tail
    const x = randArray(n, 21, -2, 2);
    const g = randArray(n, 22, -1, 1);
    const cases: [Parameters<typeof unaryGate>[1], number, number, (v: number) => number][] = [
      ['reluMask', 0, 0, (v) => (v > 0 ? 1 : 0)],
      ['inRange', -0.5, 0.7, (v) => (v >= -0.5 && v <= 0.7 ? 1 : 0)],
      ['sign', 0, 0, Math.sign],
    ];
    const tx = wq.tensor(x, [n]);
    const tg = wq.tensor(g, [n]);
    for (const [op, a, b, f] of cases) {
      const y = wq.zeros([n]);
      unaryGate(gpu, op, tg.buf, tx.buf, y.buf, n, a, b);
      const out = await y.data();
      const want = Float32Array.from(x, (v, i) => g[i] * f(v));
      let bad = -1;
      for (let i = 0; i < n; i++) if (out[i] !== want[i]) { bad = i; break; }
      assert.equal(bad, -1, `${op}: element ${bad}: ${out[bad]} vs ${want[bad]}`);
      y.release();
    }
    tx.release();
    tg.release();
  });

  it('sign, clamp, affine, powScalar', async () => {
    const x = randArray(50, 5, -2, 2);
    const t = wq.tensor(x, [50]);
    assertClose(await wq.sign(t).data(), Array.from(x, Math.sign));
    assertClose(await wq.clamp(t, -0.5, 0.7).data(), Array.from(x, (v) => Math.min(Math.max(v, -0.5), 0.7)));
    assertClose(await wq.affine(t, 3, -1).data(), Array.from(x, (v) => 3 * v - 1));
    const pos = wq.abs(t);
    assertClose(await wq.powScalar(pos, 1.5).data(), Array.from(x, (v) => Math.abs(v) ** 1.5), 1e-5, 1e-3);
    const xs = randArray(20, 8, -2, 2).map((v) => (Math.abs(Math.abs(v) - 0.6) < 0.05 ? v + 0.1 : v));
    await gradCheck(([a]) => wq.clamp(a, -0.6, 0.6), ([a]) => Array.from(a, (v) => Math.min(Math.max(v, -0.6), 0.6)),
      [{ data: xs, shape: [20] }], { what: 'clamp' });
  });

  const BIN: Record<string, [(a: wq.Tensor, b: wq.Tensor) => wq.Tensor, (a: number, b: number) => number]> = {
    add: [wq.add, (a, b) => a + b],
    sub: [wq.sub, (a, b) => a - b],
    mul: [wq.mul, (a, b) => a * b],
    div: [wq.div, (a, b) => a / b],
    pow: [wq.pow, (a, b) => a ** b],
    maximum: [wq.maximum, Math.max],
    minimum: [wq.minimum, Math.min],
  };
  const SHAPES: [number[], number[]][] = [
    [[5, 7], [5, 7]],
    [[1], [9, 3]],
    [[4, 1, 6], [3, 1]],
    [[2, 3, 4, 5], [5]],
    [[300, 17], [300, 1]],
  ];

  for (const [name, [fn, ref]] of Object.entries(BIN)) {
    it(`${name}: broadcasting forward and backward`, async () => {
      for (const [sa, sb] of SHAPES) {
        const lo = name === 'pow' || name === 'div' ? 0.5 : -2;
        const a = randArray(size(sa), 1, lo, 2);
        const b = randArray(size(sb), 2, lo, 2);
        const ta = wq.tensor(a, sa);
        const tb = wq.tensor(b, sb);
        const y = fn(ta, tb);
        const out = y.shape;
        const expect = new Float32Array(size(out));
        const idx = (shape: readonly number[], flat: number) => {
          let rem = flat;
          let off = 0;
          let stride = 1;
          for (let k = out.length - 1; k >= 0; k--) {
            const c = rem % out[k];
            rem = Math.floor(rem / out[k]);
            const j = k - (out.length - shape.length);
            if (j >= 0) {
              if (shape[j] !== 1) off += c * stride;
              stride *= shape[j];
            }
          }
          return off;
        };
        for (let i = 0; i < expect.length; i++) expect[i] = ref(a[idx(sa, i)], b[idx(sb, i)]);
        assertClose(await y.data(), expect, 1e-5, 1e-4, `${name} ${JSON.stringify([sa, sb])}`);
        if (size(out) <= 200) {
          await gradCheck(([x1, x2]) => fn(x1, x2), ([x1, x2]) => {
            const r = new Float64Array(expect.length);
            for (let i = 0; i < r.length; i++) r[i] = ref(x1[idx(sa, i)], x2[idx(sb, i)]);
            return r;
          }, [{ data: a, shape: sa }, { data: b, shape: sb }], { what: `${name} ${JSON.stringify([sa, sb])}` });
        }
        ta.release();
        tb.release();
        y.release();
      }
    });
  }

  it('comparisons and where', async () => {
    const a = wq.tensor([1, 2, 3, 4], [4]);
    const b = wq.tensor([2], [1]);
    assert.deepEqual(await wq.gt(a, b).array(), [0, 0, 1, 1]);
    assert.deepEqual(await wq.le(a, b).array(), [1, 1, 0, 0]);
    assert.deepEqual(await wq.eq(a, b).array(), [0, 1, 0, 0]);
    const c = wq.gt(a, b);
    assert.deepEqual(await wq.where(c, a, wq.neg(a)).array(), [-1, -2, 3, 4]);
    const ia = wq.tensor(new Int32Array([1, 5, 3]));
    const ib = wq.tensor(new Int32Array([1, 2, 3]));
    assert.deepEqual(await wq.eq(ia, ib).array(), [1, 0, 1]);
    await gradCheck(([x, y]) => wq.where(c, x, y), ([x, y]) => Array.from(x, (v, i) => ([0, 0, 1, 1][i] ? v : y[i])),
      [{ data: randArray(4, 1), shape: [4] }, { data: randArray(4, 2), shape: [4] }], { what: 'where' });
  });

  it('errors name the op and the shapes', () => {
    const a = wq.tensor(randArray(6, 1), [2, 3]);
    const b = wq.tensor(randArray(8, 1), [2, 4]);
    assert.throws(() => wq.add(a, b), /add: shapes \[2,3\] and \[2,4\] cannot be broadcast/);
    const i = wq.tensor(new Int32Array([1, 2]));
    assert.throws(() => wq.exp(i), /exp: expected dtype f32, got .*i32\[2\]/);
    assert.throws(() => wq.add(a, i), /dtypes differ/);
    b.release();
    assert.throws(() => wq.mul(a, b), /used after release/);
  });
});
