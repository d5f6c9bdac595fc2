import { after, before, describe, it } from 'node:test';
import * as bk from '../src/kernels/batchnorm.ts';
import { assert, assertClose, gradCheck, randArray, setup, size, wq } from './helpers.ts';

/** Reference batch norm in float64; returns y and the batch statistics (biased and unbiased var). */
function refBn(
  shape: number[], x: ArrayLike<number>, gamma: ArrayLike<number>, beta: ArrayLike<number>,
  training: boolean, rm: ArrayLike<number>, rv: ArrayLike<number>, eps = 1e-5,
) {
  const [N, C] = shape;
  const HW = shape.length === 4 ? shape[2] * shape[3] : 1;
  const M = N * HW;
  const mean = new Float64Array(C);
  const varB = new Float64Array(C);
  const at = (c: number, j: number) => (Math.floor(j / HW) * C + c) * HW + (j % HW);
  for (let c = 0; c < C; c++) {
    let s = 0;
    for (let j = 0; j < M; j++) s += x[at(c, j)];
    mean[c] = s / M;
    let q = 0;
    for (let j = 0; j < M; j++) q += (x[at(c, j)] - mean[c]) ** 2;
    varB[c] = q / M;
  }
  const y = new Float64Array(N * C * HW);
  for (let c = 0; c < C; c++) {
    const m = training ? mean[c] : rm[c];
    const v = training ? varB[c] : rv[c];
    for (let j = 0; j < M; j++) y[at(c, j)] = ((x[at(c, j)] - m) / Math.sqrt(v + eps)) * gamma[c] + beta[c];
  }
  return { y, mean, varB, varU: Array.from(varB, (v) => (v * M) / (M - 1)) };
}

/** Both variants of the per-channel reductions (src/kernels/batchnorm.ts) pass every test below. */
const force = (kind: bk.BnReduceKind | null) => {
  for (const f of Object.values(bk.BN_FAMILIES)) wq.gpu().tuner.force(f.name, kind);
};
for (const kind of ['split', 'tree'] as const) describe(`batchNorm ('${kind}' reductions)`, () => {
  before(async () => {
    await setup();
    force(kind);
  });
  after(() => force(null));

  it('training: output, running statistics update (PyTorch convention), eval with running stats', async () => {
    for (const shape of [[3, 5, 7, 9], [2, 3, 1, 1], [64, 7], [1, 4, 33, 35], [2, 3, 8, 12], [2, 130, 2, 3]]) {
      const C = shape[1];
      // an offset and scale per channel so the statistics are not trivial
      const xa = randArray(size(shape), 1 + shape.length, -1, 1).map((v, i) => v * 2 + (i % 3));
      const ga = randArray(C, 2, 0.5, 1.5);
      const ba = randArray(C, 3);
      const rm0 = randArray(C, 4);
      const rv0 = randArray(C, 5, 0.5, 2);
      const x = wq.tensor(xa, shape);
      const gamma = wq.tensor(ga, [C]);
      const beta = wq.tensor(ba, [C]);
      const rm = wq.tensor(rm0, [C]);
      const rv = wq.tensor(rv0, [C]);
      const what = `batchNorm ${JSON.stringify(shape)}`;
      const y = wq.batchNorm(x, gamma, beta, rm, rv, { training: true, momentum: 0.2 });
      const ref = refBn(shape, xa, ga, ba, true, rm0, rv0);
      assertClose(await y.data(), ref.y, 1e-4, 1e-4, `${what}: training output`);
      const m = 0.2;
      assertClose(await rm.data(), Array.from(rm0, (r, c) => (1 - m) * r + m * ref.mean[c]), 1e-5, 1e-4, `${what}: runningMean`);
      assertClose(await rv.data(), Array.from(rv0, (r, c) => (1 - m) * r + m * ref.varU[c]), 1e-5, 1e-4, `${what}: runningVar`);
      // eval: uses (the updated) running statistics, does not change them
      const rm1 = await rm.data();
      const rv1 = await rv.data();
      const ye = wq.batchNorm(x, gamma, beta, rm, rv, { training: false });
      assertClose(await ye.data(), refBn(shape, xa, ga, ba, false, rm1, rv1).y, 1e-4, 1e-4, `${what}: eval output`);
      assert.deepEqual(await rm.data(), rm1);
      assert.deepEqual(await rv.data(), rv1);
      for (const t of [x, gamma, beta, rm, rv, y, ye]) t.release();
    }
  });

  for (const training of [true, false]) {
    it(`gradCheck (${training ? 'training' : 'eval'} mode) for x, gamma, beta`, async () => {
      for (const shape of [[3, 2, 3, 4], [5, 3]]) {
        const C = shape[1];
        const rm0 = randArray(C, 14);
        const rv0 = randArray(C, 15, 0.5, 2);
        const rm = wq.tensor(rm0, [C]);
        const rv = wq.tensor(rv0, [C]);
        await gradCheck(
          ([x, g, b]) => wq.batchNorm(x, g, b, rm, rv, { training }),
          ([x, g, b]) => refBn(shape, x, g, b, training, rm0, rv0).y,
          [
            { data: randArray(size(shape), 11, -2, 2), shape },
            { data: randArray(C, 12, 0.5, 1.5), shape: [C] },
            { data: randArray(C, 13), shape: [C] },
          ],
          { what: `batchNorm ${training ? 'training' : 'eval'} ${JSON.stringify(shape)}`, atol: 3e-3 },
        );
        rm.release();
        rv.release();
      }
    });
  }

  for (const training of [true, false]) {
    it(`fused BN + ReLU (${training ? 'training' : 'eval'}): gradCheck, and bit-identical to relu(batchNorm) forward and backward`, async () => {
      const shape = [3, 2, 3, 4];
      const C = shape[1];
      const rm0 = randArray(C, 14);
      const rv0 = randArray(C, 15, 0.5, 2);
      const rm = wq.tensor(rm0, [C]);
      const rv = wq.tensor(rv0, [C]);
      await gradCheck(
        ([x, g, b]) => wq.batchNorm(x, g, b, rm, rv, { training, relu: true }),
        ([x, g, b]) => Array.from(refBn(shape, x, g, b, training, rm0, rv0).y, (v) => Math.max(v, 0)),
        [
          { data: randArray(size(shape), 31, -2, 2), shape },
          { data: randArray(C, 32, 0.5, 1.5), shape: [C] },
          { data: randArray(C, 33, -0.3, 0.3), shape: [C] },
        ],
        { what: `batchNorm+relu ${training ? 'training' : 'eval'}`, atol: 3e-3 },
      );
      // the fused op against the two ops it replaces, on both elementwise paths (H·W % 4 == 0 and not)
      for (const sh of [[4, 3, 16, 20], [4, 3, 5, 7]]) {
        const run = async (fused: boolean) => {
          const c = sh[1];
          const x = wq.tensor(randArray(size(sh), 41, -2, 2), sh, 'f32', true);
          const g = wq.tensor(randArray(c, 42, 0.5, 1.5), [c], 'f32', true);
          const b = wq.tensor(randArray(c, 43, -0.3, 0.3), [c], 'f32', true);
          const rmx = wq.tensor(new Float32Array(c), [c]);
          const rvx = wq.tensor(new Float32Array(c).fill(1), [c]);
          const y = fused ? wq.batchNorm(x, g, b, rmx, rvx, { training, relu: true }) : wq.relu(wq.batchNorm(x, g, b, rmx, rvx, { training }));
          const w = wq.tensor(randArray(size(sh), 44), sh);
          wq.sum(wq.mul(y, w)).backward();
          const out = [await y.data(), await x.grad!.data(), await g.grad!.data(), await b.grad!.data(), await rmx.data(), await rvx.data()];
          for (const t of [x, g, b, rmx, rvx, y, w]) t.release();
          return out;
        };
        const [f, u] = [await run(true), await run(false)];
        // -0 (g·0 for a negative g in the unfused pair) and +0 (the fused select) are the same value
        const z = (a: ArrayLike<number>) => Array.from(a, (v) => v + 0);
        ['y', 'dx', 'dgamma', 'dbeta', 'runningMean', 'runningVar'].forEach((n, k) => assert.deepEqual(z(f[k]), z(u[k]), `${JSON.stringify(sh)}: ${n}`));
      }
      rm.release();
      rv.release();
    });
  }

  for (const training of [true, false]) {
    it(`fused BN + DoReFa activation (${training ? 'training' : 'eval'}): bit-identical to quantDorefaAct(batchNorm) forward and backward, 4 bits and clip-only`, async () => {
      for (const [sh, bits] of [[[4, 3, 16, 20], 4], [[4, 3, 5, 7], 4], [[3, 5, 8, 8], 32], [[6, 4], 2]] as [number[], number][]) {
        const run = async (fused: boolean) => {
          const c = sh[1];
          // centred on 0.5 so values fall on both sides of the clip and between the levels
          const x = wq.tensor(randArray(size(sh), 51, -2, 2), sh, 'f32', true);
          const g = wq.tensor(randArray(c, 52, 0.2, 0.6), [c], 'f32', true);
          const b = wq.tensor(randArray(c, 53, 0.3, 0.7), [c], 'f32', true);
          const rmx = wq.tensor(randArray(c, 54, -0.2, 0.2), [c]);
          const rvx = wq.tensor(randArray(c, 55, 0.5, 2), [c]);
          const y = fused
            ? wq.batchNorm(x, g, b, rmx, rvx, { training, dorefaBits: bits })
            : wq.quantDorefaAct(wq.batchNorm(x, g, b, rmx, rvx, { training }), bits);
          const w = wq.tensor(randArray(size(sh), 56), sh);
          wq.sum(wq.mul(y, w)).backward();
          const out = [await y.data(), await x.grad!.data(), await g.grad!.data(), await b.grad!.data(), await rmx.data(), await rvx.data()];
          for (const t of [x, g, b, rmx, rvx, y, w]) t.release();
          return out;
        };
        const [f, u] = [await run(true), await run(false)];
        const z = (a: ArrayLike<number>) => Array.from(a, (v) => v + 0);
        const what = `${JSON.stringify(sh)} ${bits} bits`;
        // the clip must both pass and block some gradient for the comparison to mean anything
        const ys = Array.from(f[0]);
        assert.ok(ys.some((v) => v === 0) && ys.some((v) => v > 0 && v < 1), `${what}: values on both sides of the clip`);
        ['y', 'dx', 'dgamma', 'dbeta', 'runningMean', 'runningVar'].forEach((n, k) => assert.deepEqual(z(f[k]), z(u[k]), `${what}: ${n}`));
      }
    });
  }

  it('dorefaBits: bad values and relu together are refused', () => {
    const x = wq.zeros([2, 3, 4, 4]);
    const c3 = () => wq.zeros([3]);
    assert.throws(() => wq.batchNorm(x, c3(), c3(), c3(), wq.ones([3]), { training: true, dorefaBits: 9 }), /batchNorm\+dorefa: dorefaBits must be an integer in 1\.\.8 or 32, got 9/);
    assert.throws(() => wq.batchNorm(x, c3(), c3(), c3(), wq.ones([3]), { training: true, dorefaBits: 4, relu: true }), /relu and dorefaBits cannot both be fused/);
  });

  it('training statistics of data far from zero (mean 1000, std 0.01): the one-pass shifted sums do not cancel', async () => {
    const shape = [8, 2, 9, 9];
    const xa = randArray(size(shape), 51, -0.02, 0.02).map((v) => 1000 + v);
    const x = wq.tensor(xa, shape);
    const gamma = wq.tensor(new Float32Array(2).fill(1), [2]);
    const beta = wq.tensor(new Float32Array(2), [2]);
    const rm = wq.tensor(new Float32Array(2), [2]);
    const rv = wq.tensor(new Float32Array(2).fill(1), [2]);
    const y = wq.batchNorm(x, gamma, beta, rm, rv, { training: true, momentum: 1 });
    const ref = refBn(shape, xa, [1, 1], [0, 0], true, [0, 0], [1, 1]);
    assertClose(await rm.data(), ref.mean, 1e-3, 1e-6, 'running mean = batch mean');
    assertClose(await rv.data(), ref.varU, 2e-6, 2e-2, 'running var = unbiased batch variance');
    assertClose(await y.data(), ref.y, 2e-2, 2e-2, 'normalised output');
    for (const t of [x, gamma, beta, rm, rv, y]) t.release();
  });

  it('backward for a larger input (several reduction rounds per channel) vs the analytic formula', async () => {
    const shape = [4, 3, 16, 19]; // H·W = 304: the four-elements-per-thread passes
    const [N, C, H, W] = shape;
    const M = N * H * W;
    const xa = randArray(size(shape), 21, -2, 2);
    const ga = randArray(C, 22, 0.5, 1.5);
    const dya = randArray(size(shape), 23);
    const x = wq.tensor(xa, shape, 'f32', true);
    const gamma = wq.tensor(ga, [C], 'f32', true);
    const beta = wq.tensor(new Float32Array(C), [C], 'f32', true);
    const rm = wq.zeros([C]);
    const rv = wq.ones([C]);
    const y = wq.batchNorm(x, gamma, beta, rm, rv, { training: true });
    const dy = wq.tensor(dya, shape);
    y.backward(dy);
    const ref = refBn(shape, xa, ga, new Float32Array(C), true, [], []);
    const dx = new Float64Array(xa.length);
    const dg = new Float64Array(C);
    const db = new Float64Array(C);
    const at = (c: number, j: number) => (Math.floor(j / (H * W)) * C + c) * H * W + (j % (H * W));
    for (let c = 0; c < C; c++) {
      const inv = 1 / Math.sqrt(ref.varB[c] + 1e-5);
      for (let j = 0; j < M; j++) {
        db[c] += dya[at(c, j)];
        dg[c] += dya[at(c, j)] * (xa[at(c, j)] - ref.mean[c]) * inv;
      }
      for (let j = 0; j < M; j++) {
        const xh = (xa[at(c, j)] - ref.mean[c]) * inv;
        dx[at(c, j)] = ga[c] * inv * (dya[at(c, j)] - (db[c] + xh * dg[c]) / M);
      }
    }
    assertClose(await x.grad!.data(), dx, 1e-4, 1e-3, 'dx');
    assertClose(await gamma.grad!.data(), dg, 1e-3, 1e-3, 'dgamma');
    assertClose(await beta.grad!.data(), db, 1e-3, 1e-3, 'dbeta');
    for (const t of [x, gamma, beta, rm, rv, y, dy]) t.release();
  });

  it('bad input names the op and the shapes', () => {
    const x = wq.zeros([2, 3, 4, 4]);
    const c3 = () => wq.zeros([3]);
    const bad = (fn: () => unknown, re: RegExp) => assert.throws(fn, (e: Error) => /batchNorm/.test(e.message) && re.test(e.message));
    bad(() => wq.batchNorm(wq.zeros([2, 3, 4]), c3(), c3(), c3(), c3(), { training: true }), /\[N, C, H, W\] or \[N, C\].*\[2,3,4\]/);
    bad(() => wq.batchNorm(x, wq.zeros([4]), c3(), c3(), c3(), { training: true }), /must be \[3\].*gamma f32\[4\]/);
    bad(() => wq.batchNorm(x, c3(), c3(), c3(), wq.zeros([2]), { training: false }), /runningVar f32\[2\]/);
    bad(() => wq.batchNorm(wq.zeros([1, 3]), c3(), c3(), c3(), c3(), { training: true }), /more than one value per channel/);
    bad(() => wq.batchNorm(x, c3(), c3(), c3(), c3(), { training: true, momentum: 2 }), /momentum/);
    x.release();
  });
});
