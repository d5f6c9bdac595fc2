import { before, describe, it } from 'node:test';
import { grid1d } from '../src/gpu/index.ts';
import { Uniforms } from '../src/kernels/common.ts';
import { directGemmCode, DWG, fmaBlock } from '../src/kernels/gemm/direct.ts';
import { planSplitK, sumSplits } from '../src/kernels/gemm/splitk.ts';
import { CONV_TILES, type GemmTile, scalarLoader, tiledGemmCode } from '../src/kernels/gemm/tiled.ts';
import { assert, assertClose, randArray, setup, wq } from './helpers.ts';

/**
 * The GEMM core on its own (src/kernels/gemm/): a plain C = A·B written as loaders for each
 * skeleton, against a float64 reference. The ops built on the skeletons (conv, matmul, shift·1x1)
 * have their own suites; this one checks the skeletons with every load order, tile of the menu,
 * a non-square register block and split-K with the fixed-order partial sum.
 */
const STRUCT = `struct P { M: u32, N: u32, K: u32, chunk: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read> B: array<f32>;
@group(0) @binding(3) var<storage, read_write> C: array<f32>;`;

function refGemm(a: ArrayLike<number>, b: ArrayLike<number>, M: number, N: number, K: number): Float64Array {
  const c = new Float64Array(M * N);
  for (let m = 0; m < M; m++) for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) c[m * N + n] += a[m * K + k] * b[k * N + n];
  return c;
}

function tiledTestCode(t: GemmTile, aOrder: 'k' | 'x', bOrder: 'k' | 'x'): string {
  return tiledGemmCode({
    tile: t,
    decls: STRUCT,
    prologue: `let m0 = wid.y * ${t.BM}u;
  let n0 = wid.x * ${t.BN}u;
  let kBegin = wid.z * p.chunk;
  let kEnd = min(p.K, kBegin + p.chunk);`,
    a: scalarLoader('A', t, aOrder, 'if (m < p.M && k < kEnd) { v = A[m * p.K + k]; }'),
    b: scalarLoader('B', t, bOrder, 'if (n < p.N && k < kEnd) { v = B[k * p.N + n]; }'),
    // split z writes its own partial matrix
    store: { scalar: 'if (m < p.M && n < p.N) { C[(wid.z * p.M + m) * p.N + n] = v; }' },
  });
}

describe('GEMM core (src/kernels/gemm)', () => {
  before(setup);

  it('planSplitK: splits cover K exactly once, chunks aligned and not shorter than asked, the target reached where K allows', () => {
    for (const K of [1, 15, 16, 17, 511, 512, 4096, 32768, 100_003]) {
      for (const parallel of [1, 3, 64, 1000]) {
        for (const [target, minChunk, align] of [[64, 512, 16], [2048, 64, 1], [128, 256, 16], [8, 1, 4]]) {
          const { splits, chunk } = planSplitK(K, parallel, target, minChunk, align);
          const what = `K ${K} parallel ${parallel} target ${target} min ${minChunk} align ${align}: ${splits} x ${chunk}`;
          assert.ok(splits >= 1 && chunk % align === 0, what);
          assert.ok(splits * chunk >= K && (splits - 1) * chunk < K, what); // every k in exactly one split, none empty
          if (splits > 1) assert.ok(chunk >= Math.min(minChunk, K), what);
          if (parallel >= target) assert.equal(splits, 1, what);
          // short of the target and K long enough: at least half of the wanted splits (chunks round up)
          const want = Math.min(Math.ceil(target / parallel), Math.floor(K / minChunk));
          if (want > 1 && align === 1) assert.ok(2 * splits >= want, what);
        }
      }
    }
  });

  it('scalarLoader refuses a tile whose threads cannot cover the slice', () => {
    // 64 threads for a 4 x 4 slice of A: fewer values than threads
    assert.throws(() => scalarLoader('A', { BM: 4, BN: 256, BK: 4, TM: 4, TN: 4 }, 'k', ''), /cannot load operand A k-fast with 64 threads/);
    assert.throws(() => scalarLoader('B', { BM: 4, BN: 256, BK: 4, TM: 4, TN: 4 }, 'x', ''), /operand B x-fast/); // 256 columns, 64 threads
    assert.doesNotThrow(() => scalarLoader('B', { BM: 4, BN: 256, BK: 4, TM: 4, TN: 4 }, 'k', ''));
  });

  for (const [aOrder, bOrder] of [['k', 'x'], ['x', 'x'], ['k', 'k'], ['x', 'k']] as const) {
    it(`tiled skeleton: A ${aOrder}-fast, B ${bOrder}-fast, every tile of the conv menu and an 8x8 block, split-K, odd sizes`, async () => {
      const gpu = wq.gpu();
      const tiles: GemmTile[] = [...CONV_TILES, { BM: 64, BN: 64, BK: 8, TM: 8, TN: 8 }];
      for (const t of tiles) {
        for (const [M, N, K, splitsWanted] of [[5, 3, 7, 1], [37, 70, 83, 1], [70, 131, 700, 4]]) {
          const tilesMN = Math.ceil(M / t.BM) * Math.ceil(N / t.BN);
          const { splits, chunk } = planSplitK(K, tilesMN, tilesMN * splitsWanted, t.BK, t.BK);
          const aa = randArray(M * K, M + K, -1, 1);
          const ba = randArray(K * N, N + K + 1, -1, 1);
          const a = wq.tensor(aa, [M * K]);
          const b = wq.tensor(ba, [K * N]);
          const part = wq.zeros([splits * M * N]);
          const c = wq.zeros([M * N]);
          const key = `test:gemm:tiled:${aOrder}${bOrder}:${t.BM}x${t.BN}x${t.BK}r${t.TM}x${t.TN}`;
          const pipe = gpu.pipeline(key, () => tiledTestCode(t, aOrder, bOrder));
          gpu.dispatch(pipe, [a.buf, b.buf, part.buf], new Uniforms().u32(M).u32(N).u32(K).u32(chunk).done(), [Math.ceil(N / t.BN), Math.ceil(M / t.BM), splits], 'test gemm');
          sumSplits(gpu, part.buf, c.buf, M * N, splits, 'test gemm');
          const what = `${key} ${M}x${N}x${K} in ${splits} split(s) of ${chunk}`;
          if (splitsWanted > 1) assert.ok(splits > 1, `${what}: split-K not exercised`);
          assertClose(await c.data(), refGemm(aa, ba, M, N, K), 1e-4, 1e-4, what);
          for (const x of [a, b, part, c]) x.release();
        }
      }
    });
  }

  it('direct skeleton: a register block streamed from storage (TM x TN = 4x8, 6x4), idle threads and partial blocks masked', async () => {
    const gpu = wq.gpu();
    for (const [TM, TN] of [[4, 8], [6, 4]]) {
      const T = [...Array(TN).keys()];
      const R = [...Array(TM).keys()];
      const code = () =>
        directGemmCode({
          TM, TN,
          decls: `struct P { M: u32, N: u32, K: u32, tilesN: u32, tilesM: u32, pad0: u32, pad1: u32, pad2: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read> B: array<f32>;
@group(0) @binding(3) var<storage, read_write> C: array<f32>;`,
          grid: { tilesN: 'p.tilesN', tilesM: 'p.tilesM', rows: 'p.M' },
          body: [
            `let c0 = cb * ${TN}u;`,
            ...T.map((t) => `let col${t} = min(c0 + ${t}u, p.N - 1u);`),
            'for (var k = 0u; k < p.K; k++) {',
            ...R.map((r) => `  let w${r} = A[m${r} * p.K + k];`),
            ...T.map((t) => `  let v${t} = B[k * p.N + col${t}];`),
            ...fmaBlock(TM, TN, (r) => `w${r}`, (t) => `v${t}`, '  '),
            '}',
          ],
          store: (r) => T.map((t) => `if (c0 + ${t}u < p.N) { C[m${r} * p.N + c0 + ${t}u] = a${r}_${t}; }`).join(' '),
        });
      for (const [M, N, K] of [[1, 1, 1], [13, 29, 31], [70, 9, 130]]) {
        const aa = randArray(M * K, 3 * M + K, -1, 1);
        const ba = randArray(K * N, 5 * N + K, -1, 1);
        const a = wq.tensor(aa, [M * K]);
        const b = wq.tensor(ba, [K * N]);
        const c = wq.zeros([M * N]);
        const tilesN = Math.ceil(N / TN);
        const tilesM = Math.ceil(M / TM);
        const u = new Uniforms().u32(M).u32(N).u32(K).u32(tilesN).u32(tilesM).u32(0).u32(0).u32(0).done();
        // one workgroup more than needed: its threads must return without writing
        gpu.dispatch(gpu.pipeline(`test:gemm:direct:${TM}x${TN}`, code), [a.buf, b.buf, c.buf], u, grid1d(tilesN * tilesM + DWG, DWG), 'test gemm');
        assertClose(await c.data(), refGemm(aa, ba, M, N, K), 1e-4, 1e-4, `direct ${TM}x${TN} ${M}x${N}x${K}`);
        for (const x of [a, b, c]) x.release();
      }
    }
  });
});
