import { before, describe, it } from 'node:test';
import { assert, assertClose, gradCheck, randArray, setup, size, wq } from './helpers.ts';
import * as ck from '../src/kernels/conv.ts';
import * as sk from '../src/kernels/shift.ts';

interface Opts {
  stride?: number;
  padding?: number;
  round?: boolean;
}

/** Plain-TS ASL forward (float64): §1.7b. */
function refShift(shape: number[], x: ArrayLike<number>, s: ArrayLike<number>, o: Opts = {}): Float64Array {
  const [N, C, H, W] = shape;
  const st = o.stride ?? 1;
  const pd = o.padding ?? 0;
  const Ho = Math.floor((H + 2 * pd - 1) / st) + 1;
  const Wo = Math.floor((W + 2 * pd - 1) / st) + 1;
  const y = new Float64Array(N * C * Ho * Wo);
  const rne = (v: number) => {
    const f = Math.floor(v);
    const d = v - f;
    return d > 0.5 ? f + 1 : d < 0.5 ? f : f % 2 === 0 ? f : f + 1;
  };
  for (let n = 0; n < N; n++) {
    for (let c = 0; c < C; c++) {
      let a = s[c];
      let b = s[C + c];
      if (o.round) {
        a = rne(a);
        b = rne(b);
      }
      const x1 = Math.floor(a);
      const y1 = Math.floor(b);
      const dx = a - x1;
      const dy = b - y1;
      const at = (r: number, q: number) => (r < 0 || q < 0 || r >= H || q >= W ? 0 : x[((n * C + c) * H + r) * W + q]);
      for (let h = 0; h < Ho; h++) {
        for (let w = 0; w < Wo; w++) {
          const h0 = h * st - pd + y1;
          const w0 = w * st - pd + x1;
          y[((n * C + c) * Ho + h) * Wo + w] = (1 - dx) * (1 - dy) * at(h0, w0) + dx * (1 - dy) * at(h0, w0 + 1) +
            (1 - dx) * dy * at(h0 + 1, w0) + dx * dy * at(h0 + 1, w0 + 1);
        }
      }
    }
  }
  return y;
}

/** offsets in (−2, 2) with fractional parts away from 0 and 1 (finite differences stay on one side) */
function offsets(C: number, seed: number): Float32Array {
  return randArray(2 * C, seed, -2, 2).map((v) => {
    const f = v - Math.floor(v);
    return f < 0.05 || f > 0.95 ? v + 0.3 : v;
  });
}

describe('shift', () => {
  before(setup);

  const CASES: [number[], Opts][] = [
    [[1, 1, 1, 1], {}],
    [[2, 3, 5, 7], {}],
    [[2, 5, 9, 6], { stride: 2 }],
    [[1, 4, 7, 7], { stride: 3, padding: 1 }],
    [[3, 2, 33, 35], { stride: 1 }],
    [[2, 3, 6, 5], { stride: 1, padding: 2 }],
  ];

  for (const [shape, o] of CASES) {
    it(`activeShift ${JSON.stringify(shape)} ${JSON.stringify(o)}: forward and sparse (rounded) forward`, async () => {
      const x = randArray(size(shape), 1 + shape[3]);
      const s = offsets(shape[1], 2 + shape[2]);
      const xt = wq.tensor(x, shape);
      const st = wq.tensor(s, [2, shape[1]]);
      const y = wq.activeShift(xt, st, o);
      assertClose(await y.data(), refShift(shape, x, s, o), 1e-5, 1e-5, 'asl');
      const z = wq.sparseShift(xt, st, o);
      assertClose(await z.data(), refShift(shape, x, s, { ...o, round: true }), 0, 0, 'ssl');
      xt.release();
      st.release();
    });
  }

  for (const [shape, o] of CASES.slice(0, 4)) {
    it(`activeShift ${JSON.stringify(shape)} ${JSON.stringify(o)}: gradients to x and offsets vs finite differences`, async () => {
      const x = randArray(size(shape), 3 + shape[3]);
      const s = offsets(shape[1], 4 + shape[2]);
      await gradCheck(([a, b]) => wq.activeShift(a, b, o), ([a, b]) => refShift(shape, a, b, o),
        [{ data: x, shape }, { data: s, shape: [2, shape[1]] }], { what: 'asl', eps: 1e-3, atol: 1e-3, rtol: 1e-2 });
    });
  }

  it('sparse shift: exact adjoint to x, bilinear (STE) gradient to the offsets', async () => {
    const shape = [2, 3, 6, 5];
    const o = { stride: 2 };
    const x = randArray(size(shape), 7);
    const s = offsets(3, 8);
    // gradient to x: the rounded forward is linear in x
    await gradCheck(([a]) => wq.sparseShift(a, wq.tensor(s, [2, 3]), o), ([a]) => refShift(shape, a, s, { ...o, round: true }),
      [{ data: x, shape }], { what: 'ssl x' });
    // gradient to the offsets equals the ASL one at the real offsets
    const xt = wq.tensor(x, shape);
    const up = randArray(2 * 3 * 3 * 3, 9);
    const grads = [];
    for (const round of [false, true]) {
      const st = wq.tensor(s, [2, 3], 'f32', true);
      wq.sum(wq.mul(wq.activeShift(xt, st, { ...o, round }), wq.tensor(up, [2, 3, 3, 3]))).backward();
      grads.push(await st.grad!.data());
    }
    assertClose(grads[1], grads[0], 0, 0, 'ssl offsets');
    // L1 penalty
    const st = wq.tensor([0.5, -1, 0, 2], [2, 2], 'f32', true);
    const pen = wq.shiftL1(st, 0.1);
    assertClose([await pen.item()], [0.35], 1e-7, 1e-6);
  });

  it('grouped fixed shift: modulo assignment; backward = shift by negated offsets', async () => {
    const off = wq.groupedShiftOffsets(11, 3, 1);
    assert.deepEqual(Array.from(off.slice(0, 11)), [-1, 0, 1, -1, 0, 1, -1, 0, 1, 0, 0]);
    assert.deepEqual(Array.from(off.slice(11)), [-1, -1, -1, 0, 0, 0, 1, 1, 1, 0, 0]);
    const shape = [2, 11, 5, 4];
    const x = randArray(size(shape), 10);
    const xt = wq.tensor(x, shape);
    assertClose(await wq.groupedShift(xt).data(), refShift(shape, x, off), 0, 0, 'grouped');
    const off2 = wq.groupedShiftOffsets(11, 3, 2);
    assertClose(await wq.groupedShift(xt, { dilation: 2 }).data(), refShift(shape, x, off2), 0, 0, 'grouped dilation 2');
    const up = randArray(size(shape), 11);
    const xg = wq.tensor(x, shape, 'f32', true);
    wq.sum(wq.mul(wq.groupedShift(xg), wq.tensor(up, shape))).backward();
    const neg = off.map((v) => -v);
    assertClose(await xg.grad!.data(), refShift(shape, up, neg), 0, 0, 'grouped backward');
  });

  const FUSED: [number[], number, Opts][] = [
    [[1, 1, 1, 1], 1, {}],
    [[2, 5, 7, 6], 3, {}],
    [[2, 19, 9, 9], 70, { stride: 2 }],
    [[3, 67, 12, 11], 33, { padding: 1, stride: 3 }],
    [[4, 16, 20, 20], 16, {}],
  ];

  // both kernel families (tiled: workgroup-memory GEMMs; direct: the CPU-adapter kernels) on every backend
  for (const [shape, O, o] of FUSED) for (const kind of ['tiled', 'direct'] as const) {
    it(`shiftConv1x1 ${JSON.stringify(shape)} O=${O} ${JSON.stringify(o)} ${kind}: forward and every gradient equal the unfused pair`, async () => {
      const G = wq.gpu();
      ck.forceConvKernel(G, kind);
      for (const f of Object.values(sk.SHIFT_FAMILIES)) G.tuner.force(f.name, kind);
      try {
        const C = shape[1];
        const x = randArray(size(shape), 20 + C);
        const s = offsets(C, 21 + C);
        const w = randArray(O * C, 22 + O, -0.5, 0.5);
        const run = async (fused: boolean) => {
          const xt = wq.tensor(x, shape, 'f32', true);
          const st = wq.tensor(s, [2, C], 'f32', true);
          const wt = wq.tensor(w, [O, C, 1, 1], 'f32', true);
          const y = fused ? wq.shiftConv1x1(xt, st, wt, o) : wq.conv2d(wq.activeShift(xt, st, o), wt, null);
          const up = wq.tensor(randArray(y.size, 23), y.shape);
          wq.sum(wq.mul(y, up)).backward();
          const r = [await y.data(), await xt.grad!.data(), await st.grad!.data(), await wt.grad!.data()];
          for (const t of [xt, st, wt, up, y]) t.release();
          return r;
        };
        const f = await run(true);
        const u = await run(false);
        const names = ['forward', 'd/dx', 'd/dshift', 'd/dw'];
        for (let k = 0; k < 4; k++) assertClose(f[k], u[k], 1e-4, 1e-4, `fused vs unfused ${names[k]}`);
      } finally {
        ck.forceConvKernel(G, null);
        for (const f of Object.values(sk.SHIFT_FAMILIES)) G.tuner.force(f.name, null);
      }
    });
  }

  it('shiftConv1x1: w as [O, C] and round mode; gradients vs finite differences', async () => {
    const shape = [1, 3, 4, 5];
    const x = randArray(size(shape), 30);
    const s = offsets(3, 31);
    const w = randArray(6, 32);
    const ref = ([a, b, c]: Float64Array[]) => {
      const sh = refShift(shape, a, b);
      const P = 20;
      const y = new Float64Array(2 * P);
      for (let o = 0; o < 2; o++) for (let q = 0; q < P; q++) for (let ci = 0; ci < 3; ci++) y[o * P + q] += c[o * 3 + ci] * sh[ci * P + q];
      return y;
    };
    await gradCheck(([a, b, c]) => wq.shiftConv1x1(a, b, c), ref,
      [{ data: x, shape }, { data: s, shape: [2, 3] }, { data: w, shape: [2, 3] }], { what: 'shiftConv1x1', atol: 1e-3 });
    const xt = wq.tensor(x, shape);
    const st = wq.tensor(s, [2, 3]);
    const wt = wq.tensor(w, [2, 3]);
    const y1 = await wq.shiftConv1x1(xt, st, wt, { round: true }).data();
    const y2 = await wq.conv2d(wq.sparseShift(xt, st), wq.reshape(wt, [2, 3, 1, 1]), null).data();
    assertClose(y1, y2, 1e-5, 1e-5, 'round');
  });

  it('errors name the op and the shapes', () => {
    const x = wq.tensor(randArray(2 * 3 * 4 * 4, 1), [2, 3, 4, 4]);
    assert.throws(() => wq.activeShift(x, wq.zeros([2, 4])), /activeShift: shift must be \[2, 3\].*got .*\[2,4\]/);
    assert.throws(() => wq.activeShift(wq.zeros([3, 4, 4]), wq.zeros([2, 3])), /activeShift: x must be \[N, C, H, W\] \(rank 4\)/);
    assert.throws(() => wq.activeShift(x, wq.zeros([2, 3]), { stride: 0 }), /activeShift: stride must be a positive integer, got 0/);
    assert.throws(() => wq.sparseShift(x, wq.zeros([3, 3])), /sparseShift: shift must be \[2, 3\]/);
    assert.throws(() => wq.groupedShift(x, { kernel: 2 }), /groupedShift: kernel must be an odd positive integer, got 2/);
    assert.throws(() => wq.shiftConv1x1(x, wq.zeros([2, 3]), wq.zeros([5, 4])), /shiftConv1x1: w must be \[O, 3\] or \[O, 3, 1, 1\].*\[5,4\]/);
  });
});
