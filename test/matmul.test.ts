import { before, describe, it } from 'node:test';
import { assert, assertClose, gradCheck, randArray, setup, size, wq } from './helpers.ts';
import * as mk from '../src/kernels/matmul.ts';

/** Plain-TS reference: C[b] = op(A[b]) · op(B[b]) (+ bias), float64 accumulation. */
function refMatmul(
  a: ArrayLike<number>, aShape: number[], b: ArrayLike<number>, bShape: number[],
  transA = false, transB = false, bias?: ArrayLike<number>,
): Float64Array {
  const [ar, ac] = aShape.slice(-2);
  const [br, bc] = bShape.slice(-2);
  const M = transA ? ac : ar;
  const K = transA ? ar : ac;
  const N = transB ? br : bc;
  const batch = Math.max(aShape.length === 3 ? aShape[0] : 1, bShape.length === 3 ? bShape[0] : 1);
  const sa = aShape.length === 3 ? M * K : 0;
  const sb = bShape.length === 3 ? K * N : 0;
  const out = new Float64Array(batch * M * N);
  for (let z = 0; z < batch; z++) {
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let s = bias ? bias[n] : 0;
        for (let k = 0; k < K; k++) {
          const av = a[z * sa + (transA ? k * M + m : m * K + k)];
          const bv = b[z * sb + (transB ? n * K + k : k * N + n)];
          s += av * bv;
        }
        out[z * M * N + m * N + n] = s;
      }
    }
  }
  return out;
}

/** Shapes of A and B stored for a logical [M, K] x [K, N] product with the given flags. */
function storedShapes(M: number, K: number, N: number, transA: boolean, transB: boolean, batchA = 0, batchB = 0) {
  const sa = transA ? [K, M] : [M, K];
  const sb = transB ? [N, K] : [K, N];
  return { sa: batchA ? [batchA, ...sa] : sa, sb: batchB ? [batchB, ...sb] : sb };
}

async function checkProduct(
  M: number, K: number, N: number, transA: boolean, transB: boolean,
  batchA = 0, batchB = 0, seed = 1, kernel?: mk.MatmulArgs['kernel'],
): Promise<void> {
  const { sa, sb } = storedShapes(M, K, N, transA, transB, batchA, batchB);
  const a = randArray(size(sa), seed);
  const b = randArray(size(sb), seed + 1);
  const ta = wq.tensor(a, sa);
  const tb = wq.tensor(b, sb);
  let c: wq.Tensor;
  if (kernel) {
    const batch = Math.max(batchA, batchB, 1);
    c = wq.Tensor.empty(batchA || batchB ? [batch, M, N] : [M, N]);
    mk.matmul(wq.gpu(), {
      a: ta.buf, b: tb.buf, c: c.buf, batch, M, N, K, transA, transB,
      batchedA: batchA > 0, batchedB: batchB > 0, kernel,
    });
  } else {
    c = wq.matmul(ta, tb, { transA, transB });
  }
  const want = refMatmul(a, sa, b, sb, transA, transB);
  const what = `${JSON.stringify(sa)}${transA ? 'ᵀ' : ''} x ${JSON.stringify(sb)}${transB ? 'ᵀ' : ''}` +
    (kernel ? ` (${typeof kernel === 'string' ? kernel : kernel.name})` : '');
  assert.deepEqual(c.shape, batchA || batchB ? [Math.max(batchA, batchB), M, N] : [M, N], what);
  assertClose(await c.data(), want, 1e-4, 1e-4 * Math.sqrt(K), what);
  ta.release();
  tb.release();
  c.release();
}

const TRANS: [boolean, boolean][] = [[false, false], [true, false], [false, true], [true, true]];

describe('matmul', () => {
  before(setup);

  it('square and awkward shapes, all transpose combinations', async () => {
    const shapes: [number, number, number][] = [
      [1, 1, 1], [3, 5, 7], [17, 33, 65], [64, 64, 64], [130, 257, 70], [5, 4, 12],
    ];
    for (const [tA, tB] of TRANS) {
      for (const [M, K, N] of shapes) await checkProduct(M, K, N, tA, tB);
    }
  });

  it('tall-skinny, vector and row shapes', async () => {
    await checkProduct(4096, 64, 10, false, false);
    await checkProduct(1, 300, 129, false, false);
    await checkProduct(129, 300, 1, false, true);
    await checkProduct(7, 1, 9, true, false);
  });

  it('batched and broadcast batches (incl. the batch folded into M)', async () => {
    for (const [tA, tB] of TRANS) {
      await checkProduct(19, 21, 23, tA, tB, 3, 3, 5);
      await checkProduct(20, 24, 36, tA, tB, 3, 0, 6); // B shared
      await checkProduct(18, 12, 33, tA, tB, 0, 3, 7); // A shared
    }
  });

  /** Packed configurations the tuner can pick here. */
  const packedHere = () => mk.matmulCandidates(wq.gpu()).map((n) => mk.TILE_CONFIGS.find((t) => t.name === n)).filter((t) => t?.kind === 'packed') as mk.TileConfig[];

  it('every kernel the tuner can pick (small, tiled, direct, packed) on odd shapes with several workgroups per dim', async () => {
    const names = mk.matmulCandidates(wq.gpu());
    assert.ok(names.length >= 5, `candidates: ${names.join(', ')}`);
    const kernels: mk.MatmulArgs['kernel'][] = names.map((n) => (n === 'small' ? 'small' : mk.tileByName(n)));
    for (const kernel of kernels) {
      for (const [tA, tB] of TRANS) {
        await checkProduct(67, 29, 71, tA, tB, 2, 2, 9, kernel);
        await checkProduct(68, 32, 72, tA, tB, 2, 0, 10, kernel);
      }
    }
  });

  it('packed kernels: K not a multiple of 4, N < 4, shared A, fused bias, rows past the texture height', async () => {
    const gpu = wq.gpu();
    for (const t of packedHere()) {
      for (const [tA, tB] of TRANS) {
        await checkProduct(19, 7, 3, tA, tB, 0, 0, 11, t); // K % 4 = 3, N < 4, one partial tile
        await checkProduct(33, 13, 130, tA, tB, 0, 3, 12, t); // A shared over B's batch
        await checkProduct(9, 1, 257, tA, tB, 2, 0, 13, t); // K = 1, batched A with B shared (folded when not transposed)
      }
      // rows of 64 floats: untransposed operands go to the textures by copyBufferToTexture
      await checkProduct(40, 64, 128, false, false, 2, 2, 19, t);
      await checkProduct(40, 64, 64, false, false, 0, 2, 20, t);
      await checkProduct(40, 64, 64, true, false, 0, 2, 21, t); // A packed by the kernel, B copied
      // fused bias, vec4 and scalar stores
      for (const [M, K, N] of [[21, 18, 36], [21, 18, 37]]) {
        const a = randArray(M * K, 14);
        const b = randArray(N * K, 15);
        const bias = randArray(N, 16);
        const ta = wq.tensor(a, [M, K]);
        const tb = wq.tensor(b, [N, K]);
        const tbias = wq.tensor(bias, [N]);
        const c = wq.Tensor.empty([M, N]);
        mk.matmul(gpu, { a: ta.buf, b: tb.buf, c: c.buf, bias: tbias.buf, batch: 1, M, N, K, transB: true, kernel: t });
        assertClose(await c.data(), refMatmul(a, [M, K], b, [N, K], false, true, bias), 1e-4, 1e-3, `${t.name} bias ${M}x${K}x${N}`);
        for (const x of [ta, tb, tbias, c]) x.release();
      }
    }
    // more rows than a texture is high: op(A) wraps into a second column block of the packing texture
    const rows = gpu.limits.maxTextureDimension2D + 3;
    const t = packedHere()[0];
    await checkProduct(rows, 6, 5, false, false, 0, 0, 17, t);
    await checkProduct(rows, 6, 5, true, false, 0, 0, 18, t);
  });

  it('tune family: shape classes, candidates that fit, a generic pick among them', () => {
    const gpu = wq.gpu();
    const v = { transA: false, transB: false, vecA: true, vecB: true, vecC: true, bias: false };
    const big = { M: 1024, N: 1024, K: 1024, batch: 1, v, batchedA: false, batchedB: false };
    const tiny = { ...big, M: 8, N: 8, K: 8 };
    assert.equal(mk.shapeClass(1024, 1024, 1024, 1), 'large');
    assert.equal(mk.shapeClass(64, 64, 64, 1), 'medium');
    assert.equal(mk.shapeClass(16384, 64, 256, 1), 'narrow');
    // 'small' (one thread per output) applies everywhere: it is the tier-1 kernel while others compile
    assert.ok(mk.MATMUL_FAMILY.candidates(gpu, big).includes('small'));
    assert.equal(mk.MATMUL_FAMILY.quick!(gpu, big), null);
    assert.equal(mk.MATMUL_FAMILY.quick!(gpu, tiny), 'small');
    assert.equal(mk.MATMUL_FAMILY.generic(gpu, tiny), 'small');
    assert.ok(mk.MATMUL_FAMILY.candidates(gpu, big).includes(mk.MATMUL_FAMILY.generic(gpu, big)));
    assert.notEqual(mk.MATMUL_FAMILY.shapeClass(big), mk.MATMUL_FAMILY.shapeClass(tiny));
    assert.ok(gpu.tuner.candidates(mk.MATMUL_FAMILY, big).every((n) => mk.matmulCandidates(gpu).includes(n)));
    for (const t of mk.TILE_CONFIGS) assert.ok(t.BM % t.TM === 0 && t.BN % t.TN === 0 && t.TN % 4 === 0, t.name);
  });

  it('matmul backward vs finite differences (all transpose combinations, batched and broadcast)', async () => {
    for (const [tA, tB] of TRANS) {
      for (const [batchA, batchB] of [[0, 0], [2, 2], [2, 0], [0, 2]]) {
        const { sa, sb } = storedShapes(3, 5, 4, tA, tB, batchA, batchB);
        await gradCheck(
          ([a, b]) => wq.matmul(a, b, { transA: tA, transB: tB }),
          ([a, b]) => refMatmul(a, sa, b, sb, tA, tB),
          [{ data: randArray(size(sa), 21), shape: sa }, { data: randArray(size(sb), 22), shape: sb }],
          { what: `matmul ${tA ? 'T' : 'N'}${tB ? 'T' : 'N'} batch ${batchA}/${batchB}` },
        );
      }
    }
  });

  it('linear forward (fused bias) and backward', async () => {
    for (const [n, fin, fout] of [[5, 7, 3], [33, 64, 12], [2, 20, 130]]) {
      const x = randArray(n * fin, 31);
      const w = randArray(fout * fin, 32);
      const b = randArray(fout, 33);
      const y = wq.linear(wq.tensor(x, [n, fin]), wq.tensor(w, [fout, fin]), wq.tensor(b, [fout]));
      assertClose(await y.data(), refMatmul(x, [n, fin], w, [fout, fin], false, true, b), 1e-4, 1e-3, `linear ${n}x${fin}->${fout}`);
      const y2 = wq.linear(wq.tensor(x, [n, fin]), wq.tensor(w, [fout, fin]));
      assertClose(await y2.data(), refMatmul(x, [n, fin], w, [fout, fin], false, true), 1e-4, 1e-3, 'linear without bias');
    }
    await gradCheck(
      ([x, w, b]) => wq.linear(x, w, b),
      ([x, w, b]) => refMatmul(x, [6, 5], w, [3, 5], false, true, b),
      [{ data: randArray(30, 41), shape: [6, 5] }, { data: randArray(15, 42), shape: [3, 5] }, { data: randArray(3, 43), shape: [3] }],
      { what: 'linear' },
    );
    await gradCheck(
      ([x, w]) => wq.linear(x, w),
      ([x, w]) => refMatmul(x, [4, 8], w, [5, 8], false, true),
      [{ data: randArray(32, 44), shape: [4, 8] }, { data: randArray(40, 45), shape: [5, 8] }],
      { what: 'linear without bias' },
    );
  });

  it('errors name the op and the shapes', () => {
    const a = wq.zeros([3, 4]);
    const b = wq.zeros([5, 6]);
    assert.throws(() => wq.matmul(a, b), /matmul: inner dimensions differ \(4 vs 5\).*\[3,4\].*\[5,6\]/);
    assert.throws(() => wq.matmul(a, b, { transA: true }), /matmul: inner dimensions differ \(3 vs 5\)/);
    assert.throws(() => wq.matmul(wq.zeros([4]), b), /matmul: operands must have rank 2 or 3.*\[4\]/);
    assert.throws(() => wq.matmul(wq.zeros([2, 3, 4]), wq.zeros([3, 4, 2])), /matmul: batch dimensions differ \(2 vs 3\)/);
    const ai = wq.zeros([3, 4], 'i32');
    assert.throws(() => wq.matmul(ai, wq.zeros([4, 2])), /matmul: expected f32 operands.*i32\[3,4\]/);
    assert.throws(() => wq.linear(a, wq.zeros([2, 5])), /linear: x has 4 features but w expects 5.*\[3,4\].*\[2,5\]/);
    assert.throws(() => wq.linear(a, wq.zeros([2, 4]), wq.zeros([3])), /linear: bias must be \[2\]/);
    assert.throws(() => wq.linear(wq.zeros([2, 3, 4]), wq.zeros([2, 4])), /linear: expected x \[N, in\]/);
  });
});
