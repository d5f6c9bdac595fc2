/**
 * Batched matrix multiply: C[b] = op(A[b]) · op(B[b]) (+ bias over N), op = identity or transpose.
 *
 *  - A is [batch?, M, K] (or [batch?, K, M] with transA), B is [batch?, K, N] (or [batch?, N, K]
 *    with transB); a side without batch (stride 0) is broadcast over the other's batch.
 *  - Tiled: a workgroup computes a BM x BN block of C, staging BK-deep slices of op(A) and op(B) in
 *    workgroup memory as vec4 rows ([k][m/4] and [k][n/4]), so the inner loop reads contiguous
 *    vec4s whatever the transposes are.
 *  - Register-blocked: each thread owns a TM x TN sub-block held in TM*TN/4 vec4 accumulators
 *    (straight-line code, no arrays, so every accumulator stays in a register).
 *  - Global loads are vec4 along the contiguous dimension of A / B when that dimension is a
 *    multiple of 4 (and then whole vec4s are in or out of bounds), scalar with per-element guards
 *    otherwise; C is stored as vec4 when N is a multiple of 4. Any M, N, K >= 1 is correct.
 *  - A "direct" variant keeps the register blocking but streams op(A)/op(B) vec4s straight from
 *    storage (no workgroup memory, no barriers): on CPU implementations (lavapipe, SwiftShader)
 *    every workgroup-memory access costs as much as a storage access, so staging only adds work.
 *  - A "packed" variant (the CPU adapters' choice for big products): op(A) and op(B) are packed into
 *    rgba32float textures (transposes, batches and zero padding of k handled there), then each
 *    thread streams a big register block from them with `textureLoad`. On lavapipe and SwiftShader a
 *    storage-buffer or workgroup-memory vec4 load is a per-lane scalar loop (10-18 vec4 FMAs' worth of
 *    CPU time) while a texel fetch is one vectorised gather; docs/KERNELS.md has the measurements.
 *  - A "small" variant (one thread per output, no workgroup memory) serves tiny products, where a
 *    64x64 tile would be mostly idle.
 *  - Which one runs: the autotuner (`MATMUL_FAMILY`, src/gpu/tune.ts) times the candidates on the
 *    adapter per shape class and caches the winner.
 *
 * Pipelines are specialised on (tile config, transA, transB, vec4 A/B/C, bias); shapes go in uniforms.
 */
import type { Gpu, GBuf } from './common.ts';
import { shapeError, Uniforms } from './common.ts';
import { bucket, type TuneFamily } from '../gpu/index.ts';
import { tiledGemmCode, tileThreads } from './gemm/tiled.ts';

/** A tile configuration: workgroup block BM x BN, depth BK, per-thread block TM x TN (multiples of 4). */
export interface TileConfig {
  name: string;
  /**
   * 'block': tiled in workgroup memory, each thread owns a TM x TN block (GPU style);
   * 'direct': the same register block streamed straight from storage (no workgroup memory, no barriers);
   * 'packed': op(A) and op(B) are first packed into rgba32float textures (vec4 over k for A, vec4 over n
   * for B, zero padded), then each thread streams its TM x TN block from the textures with
   * `textureLoad`. BN / TN threads along n (their column quads interleaved), BM / TM along m; with
   * BN / TN = 8 one SIMD row of a CPU adapter shares its A rows.
   */
  kind: 'block' | 'direct' | 'packed';
  BM: number;
  BN: number;
  BK: number;
  TM: number;
  TN: number;
  /**
   * 'packed' only: statement order of the unrolled k step. 'ijc': per A row, all J column quads x 4 k
   * (each accumulator gets 4 FMAs in a row: spilled accumulators are loaded/stored once per k step);
   * 'cij': per k, every accumulator once (the GPU-style order).
   */
  order?: 'ijc' | 'cij';
}

/**
 * Tile configurations (the tuner's candidates are a subset: see `MATMUL_FAMILY`; all of them can be
 * timed with `npm run bench:kernels -- --tiles all`, figures in docs/KERNELS.md).
 */
export const TILE_CONFIGS: readonly TileConfig[] = [
  { name: 't64x64x16r4x4', kind: 'block', BM: 64, BN: 64, BK: 16, TM: 4, TN: 4 },
  { name: 't32x32x16r4x4', kind: 'block', BM: 32, BN: 32, BK: 16, TM: 4, TN: 4 },
  { name: 't16x16x8r4x4', kind: 'block', BM: 16, BN: 16, BK: 8, TM: 4, TN: 4 },
  { name: 'd64x64r8x8', kind: 'direct', BM: 64, BN: 64, BK: 4, TM: 8, TN: 8 },
  { name: 'd32x32r4x4', kind: 'direct', BM: 32, BN: 32, BK: 4, TM: 4, TN: 4 },
  // packed (texture) kernels: 8 threads along n, one thread row per workgroup
  { name: 'p16x256r16x32', kind: 'packed', BM: 16, BN: 256, BK: 4, TM: 16, TN: 32, order: 'ijc' },
  { name: 'p24x256r24x32', kind: 'packed', BM: 24, BN: 256, BK: 4, TM: 24, TN: 32, order: 'ijc' },
  { name: 'p16x128r16x16', kind: 'packed', BM: 16, BN: 128, BK: 4, TM: 16, TN: 16, order: 'ijc' },
  { name: 'p8x128r8x16', kind: 'packed', BM: 8, BN: 128, BK: 4, TM: 8, TN: 16, order: 'ijc' },
  { name: 'p8x64r8x8', kind: 'packed', BM: 8, BN: 64, BK: 4, TM: 8, TN: 8, order: 'ijc' },
  { name: 'p16x64r16x8', kind: 'packed', BM: 16, BN: 64, BK: 4, TM: 16, TN: 8, order: 'ijc' },
];

const byName = (n: string) => TILE_CONFIGS.find((t) => t.name === n)!;

/**
 * Shape class of a product: 'large' products amortise packing and a big register block; 'narrow'
 * are large products with N < 128 (tall-skinny outputs: a wide block would mostly compute clamped
 * columns). It picks which packed block is a candidate (see `MATMUL_FAMILY`).
 */
export function shapeClass(M: number, N: number, K: number, batch: number): 'large' | 'narrow' | 'medium' {
  if (M * N * K * batch < 1 << 21 || M < 8 || N < 32 || K < 16) return 'medium';
  return N < 128 ? 'narrow' : 'large';
}

/**
 * The packed block that is a candidate for each shape class. On the CPU adapters every
 * storage-buffer or workgroup-memory load is a per-lane scalar loop while a texel fetch is one
 * vectorised gather, and the FMA : fetch ratio grows with the register block (docs/KERNELS.md):
 * 16x32 per thread for large products, narrower blocks below. Blocks at least twice as wide as N are
 * narrowed (TN halved, same rows) before use.
 */
const PACKED_FOR: Readonly<Record<'large' | 'narrow' | 'medium', string>> = {
  large: 'p16x256r16x32',
  narrow: 'p16x128r16x16',
  medium: 'p8x128r8x16',
};

/** Non-packed candidates: the GPU-style tiled block and the two direct (storage-streaming) blocks. */
const UNPACKED = ['t64x64x16r4x4', 'd32x32r4x4', 'd64x64r8x8'] as const;

export interface MatmulVariant {
  transA: boolean;
  transB: boolean;
  /** contiguous dim of A (transA ? M : K) is a multiple of 4 */
  vecA: boolean;
  /** contiguous dim of B (transB ? K : N) is a multiple of 4 */
  vecB: boolean;
  /** N is a multiple of 4 (vec4 stores of C and vec4 bias loads) */
  vecC: boolean;
  bias: boolean;
}

const UNIFORM_STRUCT = `struct P { M: u32, N: u32, K: u32, batch: u32, strideA: u32, strideB: u32, strideC: u32, pad0: u32 }`;

const bindings = (v: MatmulVariant) => `
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> A: array<${v.vecA ? 'vec4f' : 'f32'}>;
@group(0) @binding(2) var<storage, read> B: array<${v.vecB ? 'vec4f' : 'f32'}>;
@group(0) @binding(3) var<storage, read_write> C: array<${v.vecC ? 'vec4f' : 'f32'}>;
${v.bias ? `@group(0) @binding(4) var<storage, read> bias: array<${v.vecC ? 'vec4f' : 'f32'}>;` : ''}`;

/**
 * WGSL helper functions reading op(A)[m, k] and op(B)[k, n] of one batch element:
 *  - `a4(m, k)`: the 4 values op(A)[m..m+3, k] (vec4 over m),
 *  - `b4(k, n)`: the 4 values op(B)[k, n..n+3] (vec4 over n),
 *  - `aT4(m, k)`: op(A)[m, k..k+3] (vec4 over k), `bT4(k, n)`: op(B)[k..k+3, n] (vec4 over k).
 * Each returns zeros outside the matrix. Which ones exist depends on the layout: the loader asks for
 * the vec4 along the contiguous dimension of each operand.
 */
function loaders(v: MatmulVariant): string {
  const out: string[] = [];
  // A: transA ? [K, M] (M contiguous) : [M, K] (K contiguous)
  if (v.transA) {
    // vec4 over m at row k
    out.push(`fn loadA(base: u32, m: u32, k: u32) -> vec4f {
  if (k >= p.K || m >= p.M) { return vec4f(0.0); }
  ${v.vecA
    ? 'return A[(base + k * p.M + m) / 4u];'
    : `let i = base + k * p.M + m;
  var r = vec4f(A[i], 0.0, 0.0, 0.0);
  if (m + 1u < p.M) { r.y = A[i + 1u]; }
  if (m + 2u < p.M) { r.z = A[i + 2u]; }
  if (m + 3u < p.M) { r.w = A[i + 3u]; }
  return r;`}
}`);
  } else {
    // vec4 over k at row m
    out.push(`fn loadA(base: u32, m: u32, k: u32) -> vec4f {
  if (m >= p.M || k >= p.K) { return vec4f(0.0); }
  ${v.vecA
    ? 'return A[(base + m * p.K + k) / 4u];'
    : `let i = base + m * p.K + k;
  var r = vec4f(A[i], 0.0, 0.0, 0.0);
  if (k + 1u < p.K) { r.y = A[i + 1u]; }
  if (k + 2u < p.K) { r.z = A[i + 2u]; }
  if (k + 3u < p.K) { r.w = A[i + 3u]; }
  return r;`}
}`);
  }
  // B: transB ? [N, K] (K contiguous) : [K, N] (N contiguous)
  if (v.transB) {
    out.push(`fn loadB(base: u32, k: u32, n: u32) -> vec4f {
  if (n >= p.N || k >= p.K) { return vec4f(0.0); }
  ${v.vecB
    ? 'return B[(base + n * p.K + k) / 4u];'
    : `let i = base + n * p.K + k;
  var r = vec4f(B[i], 0.0, 0.0, 0.0);
  if (k + 1u < p.K) { r.y = B[i + 1u]; }
  if (k + 2u < p.K) { r.z = B[i + 2u]; }
  if (k + 3u < p.K) { r.w = B[i + 3u]; }
  return r;`}
}`);
  } else {
    out.push(`fn loadB(base: u32, k: u32, n: u32) -> vec4f {
  if (k >= p.K || n >= p.N) { return vec4f(0.0); }
  ${v.vecB
    ? 'return B[(base + k * p.N + n) / 4u];'
    : `let i = base + k * p.N + n;
  var r = vec4f(B[i], 0.0, 0.0, 0.0);
  if (n + 1u < p.N) { r.y = B[i + 1u]; }
  if (n + 2u < p.N) { r.z = B[i + 2u]; }
  if (n + 3u < p.N) { r.w = B[i + 3u]; }
  return r;`}
}`);
  }
  return out.join('\n');
}

/** Store one row segment of 4 outputs C[m, n..n+3] (+ bias), guarded. */
function storeFn(v: MatmulVariant): string {
  if (v.vecC) {
    return `fn store4(base: u32, m: u32, n: u32, val: vec4f) {
  if (m >= p.M || n >= p.N) { return; }
  C[(base + m * p.N + n) / 4u] = val${v.bias ? ' + bias[n / 4u]' : ''};
}`;
  }
  const b = (j: number) => (v.bias ? ` + bias[n + ${j}u]` : '');
  return `fn store4(base: u32, m: u32, n: u32, val: vec4f) {
  if (m >= p.M) { return; }
  let i = base + m * p.N + n;
  if (n < p.N) { C[i] = val.x${b(0)}; }
  if (n + 1u < p.N) { C[i + 1u] = val.y${b(1)}; }
  if (n + 2u < p.N) { C[i + 2u] = val.z${b(2)}; }
  if (n + 3u < p.N) { C[i + 3u] = val.w${b(3)}; }
}`;
}

const COMP = ['x', 'y', 'z', 'w'];

/**
 * The tiled, register-blocked kernel for one configuration and variant: the shared tiled skeleton
 * (src/kernels/gemm/tiled.ts) with strided vec4 loaders. Slices load in units of 4x4 (or 1x4) values:
 * with transA a unit of A is one vec4 over m at one k, else a 4(m) x 4(k) block read as 4 vec4 over
 * k and transposed on the way into workgroup memory; B likewise.
 */
export function tiledCode(t: TileConfig, v: MatmulVariant): string {
  const { BM, BN, BK } = t;
  const threads = tileThreads(t);
  const bm4 = BM / 4;
  const bn4 = BN / 4;
  const transposed = (arr: string, x4: number, r: string[]) =>
    [0, 1, 2, 3].map((c) => `${arr}[(kq * 4u + ${c}u) * ${x4}u + q] = vec4f(${r.map((x) => `${x}.${COMP[c]}`).join(', ')});`).join('\n      ');
  const loop = (units: number, body: string) => `for (var u = lid; u < ${units}u; u += ${threads}u) {\n      ${body}\n    }`;
  const a = v.transA
    ? loop(BK * bm4, `let kk = u / ${bm4}u; let q = u % ${bm4}u;
      As[kk * ${bm4}u + q] = loadA(baseA, m0 + q * 4u, k0 + kk);`)
    : loop(bm4 * (BK / 4), `let kq = u / ${bm4}u; let q = u % ${bm4}u;
      ${[0, 1, 2, 3].map((c) => `let r${c} = loadA(baseA, m0 + q * 4u + ${c}u, k0 + kq * 4u);`).join('\n      ')}
      ${transposed('As', bm4, ['r0', 'r1', 'r2', 'r3'])}`);
  const b = v.transB
    ? loop(bn4 * (BK / 4), `let kq = u / ${bn4}u; let q = u % ${bn4}u;
      ${[0, 1, 2, 3].map((c) => `let r${c} = loadB(baseB, k0 + kq * 4u, n0 + q * 4u + ${c}u);`).join('\n      ')}
      ${transposed('Bs', bn4, ['r0', 'r1', 'r2', 'r3'])}`)
    : loop(BK * bn4, `let kk = u / ${bn4}u; let q = u % ${bn4}u;
      Bs[kk * ${bn4}u + q] = loadB(baseB, k0 + kk, n0 + q * 4u);`);
  return tiledGemmCode({
    tile: t,
    decls: `${UNIFORM_STRUCT}\n${bindings(v)}\n${loaders(v)}\n${storeFn(v)}`,
    prologue: `let m0 = wid.y * ${BM}u;
  let n0 = wid.x * ${BN}u;
  let baseA = wid.z * p.strideA;
  let baseB = wid.z * p.strideB;
  let baseC = wid.z * p.strideC;
  let kBegin = 0u;
  let kEnd = p.K;`,
    a: { fill: a },
    b: { fill: b },
    store: { quad: (m, n, acc) => `store4(baseC, ${m}, ${n}, ${acc});` },
  });
}

/**
 * The 'direct' kernel: register blocking without workgroup memory. Each thread owns a TM x TN block
 * and streams 4-deep slices of op(A) (TM x 4) and op(B) (4 x TN) straight from storage as vec4s
 * along each operand's contiguous dimension; neighbouring threads share rows/columns through the
 * caches. No barriers. Threads are laid out (BN/TN) x (BM/TM).
 */
export function directCode(t: TileConfig, v: MatmulVariant): string {
  const { BM, BN, TM, TN } = t;
  const wx = BN / TN;
  const wy = BM / TM;
  const tn4 = TN / 4;
  const tm4 = TM / 4;
  const body: string[] = [];
  // op(A) fragment, a(i, c) = op(A)[m + i, k + c]
  let aAt: (i: number, c: number) => string;
  if (v.transA) {
    for (let c = 0; c < 4; c++) for (let q = 0; q < tm4; q++) body.push(`let ra${c}_${q} = loadA(baseA, m + ${4 * q}u, k + ${c}u);`);
    aAt = (i, c) => `ra${c}_${i >> 2}.${COMP[i & 3]}`;
  } else {
    for (let i = 0; i < TM; i++) body.push(`let ra${i} = loadA(baseA, m + ${i}u, k);`);
    aAt = (i, c) => `ra${i}.${COMP[c]}`;
  }
  // op(B) fragment as vec4 over n: b4(c, j) = op(B)[k + c, n + 4j .. n + 4j + 3]
  let bAt: (c: number, j: number) => string;
  if (v.transB) {
    for (let jj = 0; jj < TN; jj++) body.push(`let rb${jj} = loadB(baseB, k, n + ${jj}u);`);
    for (let c = 0; c < 4; c++) {
      for (let j = 0; j < tn4; j++) {
        body.push(`let bq${c}_${j} = vec4f(${[0, 1, 2, 3].map((x) => `rb${4 * j + x}.${COMP[c]}`).join(', ')});`);
      }
    }
    bAt = (c, j) => `bq${c}_${j}`;
  } else {
    for (let c = 0; c < 4; c++) for (let j = 0; j < tn4; j++) body.push(`let rb${c}_${j} = loadB(baseB, k + ${c}u, n + ${4 * j}u);`);
    bAt = (c, j) => `rb${c}_${j}`;
  }
  const decl: string[] = [];
  const stores: string[] = [];
  for (let i = 0; i < TM; i++) {
    for (let j = 0; j < tn4; j++) {
      decl.push(`var acc_${i}_${j} = vec4f(0.0);`);
      stores.push(`store4(baseC, m + ${i}u, n + ${4 * j}u, acc_${i}_${j});`);
    }
  }
  for (let c = 0; c < 4; c++) {
    for (let i = 0; i < TM; i++) {
      for (let j = 0; j < tn4; j++) body.push(`acc_${i}_${j} = fma(vec4f(${aAt(i, c)}), ${bAt(c, j)}, acc_${i}_${j});`);
    }
  }
  return /* wgsl */ `
${UNIFORM_STRUCT}
${bindings(v)}
${loaders(v)}
${storeFn(v)}
@compute @workgroup_size(${wx}, ${wy})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let m = wid.y * ${BM}u + lid.y * ${TM}u;
  let n = wid.x * ${BN}u + lid.x * ${TN}u;
  let baseA = wid.z * p.strideA;
  let baseB = wid.z * p.strideB;
  let baseC = wid.z * p.strideC;
  ${decl.join('\n  ')}
  for (var k = 0u; k < p.K; k += 4u) {
    ${body.join('\n    ')}
  }
  ${stores.join('\n  ')}
}`;
}

/** Uniform block of the packed kernel (the first 7 fields as in `P`). */
const PACKED_STRUCT = `struct P { M: u32, N: u32, K: u32, batch: u32, strideA: u32, strideB: u32, strideC: u32, hA: u32, wA: u32, pad0: u32, pad1: u32, pad2: u32 }`;

/**
 * The packed kernel: op(A) lives in texture tA as vec4 over k (texel (kq, row), rows past the
 * texture height wrap into further column blocks of width wA), op(B) in tB as vec4 over n (texel
 * (nq, batch * K + k)); both are zero padded to a multiple of 4 along k (p.K is that padded depth),
 * so the k loop has no bounds checks. Out-of-range rows and column quads are clamped for the fetch
 * and skipped at the store. `v` only matters for the store (vecC) and the bias.
 */
export function packedCode(t: TileConfig, v: MatmulVariant): string {
  const { BM, BN, TM, TN } = t;
  const wx = BN / TN;
  const wy = BM / TM;
  const J = TN / 4;
  const order = t.order ?? 'ijc';
  const pre: string[] = [];
  for (let i = 0; i < TM; i++) {
    pre.push(`let ra${i} = rowA + min(m + ${i}u, lastRow);`);
    pre.push(`let xa${i} = (ra${i} / p.hA) * p.wA;`);
    pre.push(`let ya${i} = ra${i} % p.hA;`);
  }
  for (let j = 0; j < J; j++) pre.push(`let qb${j} = min(q + ${j * wx}u, lastQ);`);
  const decl: string[] = [];
  const stores: string[] = [];
  for (let i = 0; i < TM; i++) {
    for (let j = 0; j < J; j++) {
      decl.push(`var acc${i}_${j} = vec4f(0.0);`);
      stores.push(`store4(baseC, m + ${i}u, (q + ${j * wx}u) * 4u, acc${i}_${j});`);
    }
  }
  const body: string[] = [];
  const bLoad = (c: number, j: number) => `let b${c}_${j} = textureLoad(tB, vec2u(qb${j}, rowB + k + ${c}u), 0);`;
  const aLoad = (i: number) => `let a${i} = textureLoad(tA, vec2u(xa${i} + kq, ya${i}), 0);`;
  const f = (i: number, j: number, c: number) => `acc${i}_${j} = fma(vec4f(a${i}.${COMP[c]}), b${c}_${j}, acc${i}_${j});`;
  if (order === 'ijc') {
    for (let c = 0; c < 4; c++) for (let j = 0; j < J; j++) body.push(bLoad(c, j));
    for (let i = 0; i < TM; i++) {
      body.push(aLoad(i));
      for (let j = 0; j < J; j++) for (let c = 0; c < 4; c++) body.push(f(i, j, c));
    }
  } else {
    for (let i = 0; i < TM; i++) body.push(aLoad(i));
    for (let c = 0; c < 4; c++) {
      for (let j = 0; j < J; j++) body.push(bLoad(c, j));
      for (let i = 0; i < TM; i++) for (let j = 0; j < J; j++) body.push(f(i, j, c));
    }
  }
  return /* wgsl */ `
${PACKED_STRUCT}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var tA: texture_2d<f32>;
@group(0) @binding(2) var tB: texture_2d<f32>;
@group(0) @binding(3) var<storage, read_write> C: array<${v.vecC ? 'vec4f' : 'f32'}>;
${v.bias ? `@group(0) @binding(4) var<storage, read> bias: array<${v.vecC ? 'vec4f' : 'f32'}>;` : ''}
${storeFn(v)}
@compute @workgroup_size(${wx}, ${wy})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let m = wid.y * ${BM}u + lid.y * ${TM}u;
  let q = wid.x * ${BN / 4}u + lid.x;
  let rowA = wid.z * p.strideA;
  let rowB = wid.z * p.strideB;
  let baseC = wid.z * p.strideC;
  let lastRow = p.M - 1u;
  let lastQ = (p.N + 3u) / 4u - 1u;
  ${pre.join('\n  ')}
  ${decl.join('\n  ')}
  for (var k = 0u; k < p.K; k += 4u) {
    let kq = k / 4u;
    ${body.join('\n    ')}
  }
  ${stores.join('\n  ')}
}`;
}

/**
 * Packing: one thread per texel writes op(X)[b][r][4x .. 4x+3] (zeros past C columns and past R rows)
 * to texel (x + (y / hT) * w, y % hT) of T, y = b * Rp + r. X is stored [R, C] (or [C, R] when
 * `trans`), `stride` elements per batch (0: shared).
 */
export function packCode(trans: boolean, vec = false): string {
  const at = (c: number) => (trans ? `(x * 4u + ${c}u) * q.R + r` : `r * q.C + x * 4u + ${c}u`);
  // vec (not transposed, C a multiple of 4): one vec4 load per texel instead of 4 guarded scalars
  const comps = vec && !trans
    ? ['v = S[(base + r * q.C) / 4u + x];']
    : [0, 1, 2, 3].map((c) => `if (x * 4u + ${c}u < q.C) { v.${COMP[c]} = S[base + ${at(c)}]; }`);
  return /* wgsl */ `
struct Q { R: u32, C: u32, Rp: u32, w: u32, rows: u32, stride: u32, hT: u32, pad0: u32 }
@group(0) @binding(0) var<uniform> q: Q;
@group(0) @binding(1) var<storage, read> S: array<${vec && !trans ? 'vec4f' : 'f32'}>;
@group(0) @binding(2) var T: texture_storage_2d<rgba32float, write>;
@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let x = gid.x;
  let y = gid.y;
  if (x >= q.w || y >= q.rows) { return; }
  let b = y / q.Rp;
  let r = y % q.Rp;
  var v = vec4f(0.0);
  if (r < q.R) {
    let base = b * q.stride;
    ${comps.join('\n    ')}
  }
  textureStore(T, vec2u(x + (y / q.hT) * q.w, y % q.hT), v);
}`;
}

interface TexSlot { tex: GPUTexture; view: GPUTextureView; w: number; h: number }
const texSlots = new WeakMap<Gpu, Record<'A' | 'B', TexSlot | null>>();

/**
 * The device's packing texture for operand `which`, at least w x h texels (grown, never shrunk; a
 * grown one replaces the old after the pending work that uses the old one is submitted).
 */
function packTexture(gpu: Gpu, which: 'A' | 'B', w: number, h: number): TexSlot {
  let slots = texSlots.get(gpu);
  if (!slots) {
    slots = { A: null, B: null };
    texSlots.set(gpu, slots);
  }
  const old = slots[which];
  if (old && old.w >= w && old.h >= h) return old;
  const max = gpu.limits.maxTextureDimension2D;
  const round = (x: number) => Math.min(max, Math.ceil(x / 64) * 64);
  const nw = round(Math.max(w, old?.w ?? 0));
  const nh = round(Math.max(h, old?.h ?? 0));
  if (old) {
    gpu.flush();
    old.tex.destroy();
  }
  const tex = gpu.device.createTexture({
    size: [nw, nh],
    format: 'rgba32float',
    usage: GPUTextureUsage.TEXTURE_BINDING | GPUTextureUsage.STORAGE_BINDING | GPUTextureUsage.COPY_DST,
    label: `matmul pack ${which}`,
  });
  const slot = { tex, view: tex.createView(), w: nw, h: nh };
  slots[which] = slot;
  return slot;
}

/** Texture layout of a packed operand: rows x quads, wrapped into column blocks past the height limit. */
function packLayout(gpu: Gpu, rows: number, quads: number): { hT: number; w: number; h: number } | null {
  const max = gpu.limits.maxTextureDimension2D;
  const hT = Math.min(rows, max);
  const blocks = Math.ceil(rows / hT);
  if (quads * blocks > max) return null;
  return { hT, w: quads * blocks, h: hT };
}

/** One thread per output; no workgroup memory (tiny products). */
export function smallCode(v: MatmulVariant): string {
  const sv: MatmulVariant = { ...v, vecA: false, vecB: false, vecC: false };
  const aAt = v.transA ? 'A[baseA + k * p.M + m]' : 'A[baseA + m * p.K + k]';
  const bAt = v.transB ? 'B[baseB + n * p.K + k]' : 'B[baseB + k * p.N + n]';
  return /* wgsl */ `
${UNIFORM_STRUCT}
${bindings(sv)}
@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let n = gid.x;
  let m = gid.y;
  if (m >= p.M || n >= p.N) { return; }
  let baseA = gid.z * p.strideA;
  let baseB = gid.z * p.strideB;
  var acc = 0.0;
  for (var k = 0u; k < p.K; k++) {
    acc = fma(${aAt}, ${bAt}, acc);
  }
  C[gid.z * p.strideC + m * p.N + n] = acc${v.bias ? ' + bias[n]' : ''};
}`;
}

/** Whether a tile configuration fits the device's workgroup size and memory limits. */
export function fits(gpu: Gpu, t: TileConfig): boolean {
  const l = gpu.limits;
  const wx = t.BN / t.TN;
  const wy = t.BM / t.TM;
  const threads = wx * wy;
  const bytes = t.kind === 'block' ? (t.BM + t.BN) * t.BK * 4 : 0;
  const sizeOk = t.kind === 'block' ? threads <= l.maxComputeWorkgroupSizeX : wx <= l.maxComputeWorkgroupSizeX && wy <= l.maxComputeWorkgroupSizeY;
  return threads <= l.maxComputeInvocationsPerWorkgroup && bytes <= l.maxComputeWorkgroupStorageSize && sizeOk;
}

/** A packed configuration narrowed while its block is at least twice as wide as N. */
function narrowed(t: TileConfig, N: number): TileConfig {
  while (t.kind === 'packed' && t.BN >= 2 * N) {
    const n = TILE_CONFIGS.find((c) => c.kind === 'packed' && c.TM === t.TM && c.BM === t.BM && c.TN * 2 === t.TN && c.BN * 2 === t.BN);
    if (!n) break;
    t = n;
  }
  return t;
}

/** One tuned product: sizes after folding the batch into M, layout flags, batching of the operands. */
export interface MatmulTuneShape {
  M: number;
  N: number;
  K: number;
  batch: number;
  v: MatmulVariant;
  batchedA: boolean;
  batchedB: boolean;
}

/**
 * The matmul tune family. Candidates: the one-thread-per-output kernel for small products, the
 * tiled block, the two direct blocks and the shape class's packed block (when the operands fit the
 * packing textures); each only where it fits the device's limits.
 */
export const MATMUL_FAMILY: TuneFamily<MatmulTuneShape> = {
  name: 'matmul',
  candidates(gpu, s) {
    const out: string[] = [];
    out.push('small');
    for (const n of UNPACKED) if (fits(gpu, byName(n))) out.push(n);
    const p = narrowed(byName(PACKED_FOR[shapeClass(s.M, s.N, s.K, s.batch)]), s.N);
    if (fits(gpu, p) && packable(gpu, s)) out.push(p.name);
    return out;
  },
  shapeClass: (s) =>
    `${s.v.transA ? 'T' : 'N'}${s.v.transB ? 'T' : 'N'}${s.v.bias ? 'b' : ''}${s.batch > 1 ? `:B${s.batchedA ? 'a' : ''}${s.batchedB ? 'b' : ''}` : ''}` +
    `:M${bucket(s.M)}:N${bucket(s.N)}:K${bucket(s.K)}`,
  // tier 1: one thread per output, nothing unrolled (compiles in tens of ms where a packed block takes seconds)
  // (up to 2^24 multiply-adds: a bigger product on one thread per output is a multi-second dispatch)
  quick: (_gpu, s) => (s.M * s.N * s.K * s.batch <= 1 << 24 ? 'small' : null),
  generic(gpu, s) {
    if (useSmall(s.M, s.N, s.K, s.batch)) return 'small';
    const t = gpu.isSoftware ? byName('d32x32r4x4') : byName('t64x64x16r4x4');
    return fits(gpu, t) ? t.name : 'd32x32r4x4';
  },
  bench(gpu, s) {
    const { M, N, K, batch } = s;
    const bufs = [(s.batchedA ? batch : 1) * M * K, (s.batchedB ? batch : 1) * K * N, batch * M * N, N]
      .map((n) => gpu.pool.acquire(n * 4, 'tune matmul'));
    const [a, b, c, bias] = bufs;
    return {
      run(name) {
        matmul(gpu, {
          a, b, c, bias: s.v.bias ? bias : null, batch, M, N, K, transA: s.v.transA, transB: s.v.transB,
          batchedA: s.batchedA, batchedB: s.batchedB, kernel: name === 'small' ? 'small' : byName(name), what: 'tune matmul',
        });
      },
      dispose: () => bufs.forEach((x) => gpu.pool.release(x)),
    };
  },
};

/** Whether the packed operands of a product fit the packing textures (see packedMatmul). */
function packable(gpu: Gpu, s: MatmulTuneShape): boolean {
  const Kp = Math.ceil(s.K / 4) * 4;
  const rowsA = (s.batch > 1 && s.batchedA ? s.batch : 1) * s.M;
  const rowsB = (s.batch > 1 && s.batchedB ? s.batch : 1) * Kp;
  const layA = packLayout(gpu, rowsA, Kp / 4);
  const layB = packLayout(gpu, rowsB, Math.ceil(s.N / 4));
  const maxWg = gpu.limits.maxComputeWorkgroupsPerDimension;
  return !!layA && !!layB && layB.hT >= rowsB && Math.ceil(rowsA / 8) <= maxWg && Math.ceil(rowsB / 8) <= maxWg;
}

/** The kernel the tuner picks for a plain [M, K]·[K, N] product here, and its tune key (benchmarks, reports). */
export function tunedKernel(gpu: Gpu, M = 1024, N = 1024, K = 1024): { name: string; key: string } {
  const v: MatmulVariant = { transA: false, transB: false, vecA: K % 4 === 0, vecB: N % 4 === 0, vecC: N % 4 === 0, bias: false };
  const s: MatmulTuneShape = { M, N, K, batch: 1, v, batchedA: false, batchedB: false };
  return { name: gpu.tuner.pick(MATMUL_FAMILY, s), key: `${MATMUL_FAMILY.name}|${MATMUL_FAMILY.shapeClass(s)}` };
}

/** Every kernel the matmul tuner can pick on this device (the kernel tests run each of them). */
export function matmulCandidates(gpu: Gpu): string[] {
  const names = new Set<string>(['small']);
  for (const n of UNPACKED) names.add(n);
  for (const n of Object.values(PACKED_FOR)) {
    for (let t: TileConfig | undefined = byName(n); t; t = TILE_CONFIGS.find((c) => c.kind === 'packed' && c.TM === t!.TM && c.BM === t!.BM && c.TN * 2 === t!.TN && c.BN * 2 === t!.BN)) {
      names.add(t.name);
    }
  }
  return [...names].filter((n) => n === 'small' || (fits(gpu, byName(n)) && !gpu.tuner.excluded(MATMUL_FAMILY.name, n)));
}

/** A tile configuration by name (throws for an unknown one). */
export function tileByName(name: string): TileConfig {
  const t = TILE_CONFIGS.find((c) => c.name === name);
  if (!t) throw new Error(`webqat: matmul: unknown kernel '${name}' (known: small, ${TILE_CONFIGS.map((c) => c.name).join(', ')})`);
  return t;
}

export interface MatmulArgs {
  a: GBuf;
  b: GBuf;
  c: GBuf;
  bias?: GBuf | null;
  /** batch count of C (1 when neither side is batched) */
  batch: number;
  M: number;
  N: number;
  K: number;
  transA?: boolean;
  transB?: boolean;
  /** whether A / B carry the batch dimension (false: broadcast over C's batch) */
  batchedA?: boolean;
  batchedB?: boolean;
  /** force a kernel (tests, benchmarks): 'small' or a TileConfig (default: the autotuner's pick) */
  kernel?: 'small' | TileConfig;
  what?: string;
}

const variantKey = (v: MatmulVariant) =>
  `${v.transA ? 'T' : 'N'}${v.transB ? 'T' : 'N'}${v.vecA ? 'v' : 's'}${v.vecB ? 'v' : 's'}${v.vecC ? 'v' : 's'}${v.bias ? 'b' : ''}`;

/** True when one thread per output beats a tiled workgroup (measured on software adapters). */
export function useSmall(M: number, N: number, K: number, batch: number): boolean {
  return M * N * batch <= 4096 && K <= 256;
}

/** C[b] = op(A[b]) · op(B[b]) (+ bias[n]). Buffers hold contiguous row-major f32 data. */
export function matmul(gpu: Gpu, args: MatmulArgs): void {
  const what = args.what ?? 'matmul';
  const { M, N, K } = args;
  let batch = args.batch;
  const transA = args.transA ?? false;
  const transB = args.transB ?? false;
  const batchedA = args.batchedA ?? batch > 1;
  const batchedB = args.batchedB ?? batch > 1;
  for (const [name, d] of [['M', M], ['N', N], ['K', K], ['batch', batch]] as const) {
    if (!Number.isInteger(d) || d < 1) throw shapeError(what, `${name} must be a positive integer, got ${d}`);
  }
  const need = (buf: GBuf, n: number, name: string) => {
    if (buf.size < n * 4) throw shapeError(what, `${name} buffer holds ${buf.size} bytes, needs ${n * 4}`);
  };
  need(args.a, (batchedA ? batch : 1) * M * K, 'A');
  need(args.b, (batchedB ? batch : 1) * K * N, 'B');
  need(args.c, batch * M * N, 'C');
  if (args.bias) need(args.bias, N, 'bias');

  let m = M;
  // A batched with K contiguous and B shared: the batch folds into M (one big GEMM, fuller tiles)
  if (batch > 1 && batchedA && !batchedB && !transA) {
    m = M * batch;
    batch = 1;
  }
  const variant: MatmulVariant = {
    transA,
    transB,
    vecA: (transA ? m : K) % 4 === 0,
    vecB: (transB ? K : N) % 4 === 0,
    vecC: N % 4 === 0,
    bias: !!args.bias,
  };
  // the folded M keeps vecA valid: transA is false there, so A's contiguous dim is K
  const bA = args.batchedA ?? batch > 1;
  const bB = args.batchedB ?? batch > 1;
  const pick = args.kernel ?? gpu.tuner.pick(MATMUL_FAMILY, { M: m, N, K, batch, v: variant, batchedA: bA && batch > 1, batchedB: bB && batch > 1 });
  const u = new Uniforms()
    .u32(m).u32(N).u32(K).u32(batch)
    .u32(batchedA ? M * K : 0).u32(batchedB ? K * N : 0).u32(m * N).u32(0)
    .done();
  const buffers = [args.a, args.b, args.c];
  if (args.bias) buffers.push(args.bias);
  if (pick === 'small') {
    const pipe = gpu.pipeline(`matmul:small:${variantKey(variant)}`, () => smallCode(variant));
    gpu.dispatch(pipe, buffers, u, [Math.ceil(N / 8), Math.ceil(m / 8), batch], what);
    return;
  }
  let t = typeof pick === 'string' ? tileByName(pick) : pick;
  if (t.kind === 'packed') {
    if (packedMatmul(gpu, narrowed(t, N), args, m, batch, variant, what)) return;
    // operands too big for the packing textures: the direct kernel
    t = byName('d32x32r4x4');
  }
  const tc = t;
  const pipe = gpu.pipeline(`matmul:${tc.name}:${variantKey(variant)}`, () => (tc.kind === 'direct' ? directCode(tc, variant) : tiledCode(tc, variant)));
  gpu.dispatch(pipe, buffers, u, [Math.ceil(N / tc.BN), Math.ceil(m / tc.BM), batch], what);
}

/**
 * Pack op(A) and op(B) into the device's packing textures and run the packed kernel. `m` and `batch`
 * are after folding the batch into M. Returns false (nothing encoded) when the packed operands do not
 * fit the texture limits.
 */
function packedMatmul(gpu: Gpu, t: TileConfig, args: MatmulArgs, m: number, batch: number, v: MatmulVariant, what: string): boolean {
  const { M, N, K } = args;
  const Kp = Math.ceil(K / 4) * 4;
  const nbA = batch > 1 && (args.batchedA ?? true) ? batch : 1;
  const nbB = batch > 1 && (args.batchedB ?? true) ? batch : 1;
  const rowsA = nbA * m;
  const rowsB = nbB * Kp;
  const nq = Math.ceil(N / 4);
  const layA = packLayout(gpu, rowsA, Kp / 4);
  const layB = packLayout(gpu, rowsB, nq);
  const maxWg = gpu.limits.maxComputeWorkgroupsPerDimension;
  if (!layA || !layB || layB.hT < rowsB || Math.ceil(rowsA / 8) > maxWg || Math.ceil(rowsB / 8) > maxWg) return false;
  const tA = packTexture(gpu, 'A', layA.w, layA.h);
  const tB = packTexture(gpu, 'B', layB.w, layB.h);
  const pack = (src: GBuf, dst: TexSlot, trans: boolean, R: number, C: number, Rp: number, rows: number, stride: number, hT: number) => {
    if (!trans && C % 64 === 0 && Rp === R && rows <= hT && (stride === 0 || stride === R * C)) {
      // the buffer already has the texture's layout (rows of C floats, 256-byte aligned): a plain copy
      gpu.copyToTexture(src, 0, C * 4, dst.tex, C / 4, rows);
      return;
    }
    const w = Math.ceil(C / 4);
    const vec = !trans && C % 4 === 0;
    const pipe = gpu.pipeline(`matmul:pack:${trans ? 'T' : 'N'}${vec ? 'v' : ''}`, () => packCode(trans, vec));
    const u = new Uniforms().u32(R).u32(C).u32(Rp).u32(w).u32(rows).u32(stride).u32(hT).u32(0).done();
    gpu.dispatch(pipe, [src, dst.view], u, [Math.ceil(w / 8), Math.ceil(rows / 8)], `${what} (pack)`);
  };
  // op(A) is [m, K] per batch element (stored [K, m] when transposed); op(B) is [K, N] (or [N, K])
  pack(args.a, tA, v.transA, m, K, m, rowsA, nbA > 1 ? M * K : 0, layA.hT);
  pack(args.b, tB, v.transB, K, N, Kp, rowsB, nbB > 1 ? K * N : 0, rowsB);
  const u = new Uniforms()
    .u32(m).u32(N).u32(Kp).u32(batch)
    .u32(nbA > 1 ? m : 0).u32(nbB > 1 ? Kp : 0).u32(m * N).u32(layA.hT)
    .u32(Kp / 4).u32(0).u32(0).u32(0)
    .done();
  const key = `matmul:${t.name}:${v.vecC ? 'v' : 's'}${v.bias ? 'b' : ''}`;
  const pipe = gpu.pipeline(key, () => packedCode(t, v));
  const bindings: (GBuf | GPUTextureView)[] = [tA.view, tB.view, args.c];
  if (args.bias) bindings.push(args.bias);
  gpu.dispatch(pipe, bindings, u, [Math.ceil(N / t.BN), Math.ceil(m / t.BM), batch], what);
  return true;
}
