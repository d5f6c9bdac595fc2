/**
 * Spatial shift kernels (ALGORITHMS §1.7), one family for the three variants:
 *  - active shift (ASL): per-channel real offsets (a_c, b_c) in a [2, C] tensor (row 0 = x/width,
 *    row 1 = y/height), bilinear interpolation, stride s and padding p on the output grid:
 *      h0 = h·s − p, w0 = w·s − p, taps at (h0 + ⌊b⌋ + {0,1}, w0 + ⌊a⌋ + {0,1}), 0 out of bounds;
 *  - sparse shift (SSL): the same with round(a), round(b) in the forward pass (`round` variant);
 *  - grouped fixed shift: integer offsets (the op builds them), i.e. ASL with dx = dy = 0.
 * Backward to the input is a gather (each input pixel collects from the ≤ 4 output pixels that
 * sampled it: no atomics); backward to the offsets is a per-channel deterministic reduction.
 *
 * Fused shift + 1×1 convolution: y[n,o,:] = Σ_c W[o,c]·shift(x)[n,c,:] as a tiled GEMM
 * (M = O, N = N·Ho·Wo, K = C) whose B tile is sampled from x on the fly, so the shifted activation
 * is never written. Backward: g_S = Wᵀ·g_y (tiled GEMM), then the shift backward (input gather and
 * offset sums) on g_S; g_W = g_y·shift(x)ᵀ (split-K tiled GEMM, B sampled on the fly again).
 */
import { bucket, grid1d, type TuneFamily } from '../gpu/index.ts';
import { flatIndex, type GBuf, type Gpu, mainSig, Uniforms } from './common.ts';
import { type ConvGeom, conv2dBackwardData, conv2dBackwardWeight } from './conv.ts';
import { directGemmCode, DWG, fmaBlock } from './gemm/direct.ts';
import { PSTRUCT, type RowReduceSpec, rowReduce } from './rowreduce.ts';
import { planSplitK, sumSplits, wholeK } from './gemm/splitk.ts';
import { convTile, type GemmTile, scalarLoader, tiledGemmCode } from './gemm/tiled.ts';

/** Geometry of a shift: input [N, C, H, W] → output [N, C, Ho, Wo]. */
export interface ShiftGeom {
  N: number;
  C: number;
  H: number;
  W: number;
  Ho: number;
  Wo: number;
  stride: number;
  pad: number;
}

/** Output size of ASL: ⌊(H + 2p − 1)/s⌋ + 1. */
export function shiftOutSize(h: number, stride: number, pad: number): number {
  return Math.floor((h + 2 * pad - 1) / stride) + 1;
}

const geomU = (g: ShiftGeom) => [g.N, g.C, g.H, g.W, g.Ho, g.Wo, g.stride, g.pad];

/**
 * WGSL geometry accessors (over U(k) of the shared P struct) and the bilinear tap helpers.
 * Needs bindings `X` (input) and `S` (offsets [2, C]) in the including shader.
 */
const SAMPLER = (round: boolean) => `
fn gN() -> u32 { return U(0u); }
fn gC() -> u32 { return U(1u); }
fn gH() -> u32 { return U(2u); }
fn gW() -> u32 { return U(3u); }
fn gHo() -> u32 { return U(4u); }
fn gWo() -> u32 { return U(5u); }
fn gS() -> i32 { return i32(U(6u)); }
fn gP() -> i32 { return i32(U(7u)); }
// forward offsets of channel c (rounded for the sparse variant)
fn offs(c: u32) -> vec2f {
  let v = vec2f(S[c], S[gC() + c]);
  return ${round ? 'round(v)' : 'v'};
}
fn xat(base: u32, yy: i32, xx: i32) -> f32 {
  if (yy < 0 || xx < 0 || yy >= i32(gH()) || xx >= i32(gW())) { return 0.0; }
  return X[base + u32(yy) * gW() + u32(xx)];
}
// the four taps (q00, q01, q10, q11) at integer offsets fo = floor(offsets) for output pixel (h, w)
fn taps(n: u32, c: u32, h: u32, w: u32, fo: vec2f) -> vec4f {
  let base = (n * gC() + c) * gH() * gW();
  let y0 = i32(h) * gS() - gP() + i32(fo.y);
  let x0 = i32(w) * gS() - gP() + i32(fo.x);
  return vec4f(xat(base, y0, x0), xat(base, y0, x0 + 1), xat(base, y0 + 1, x0), xat(base, y0 + 1, x0 + 1));
}
fn sample(n: u32, c: u32, h: u32, w: u32) -> f32 {
  let o = offs(c);
  let fo = floor(o);
  let d = o - fo;
  let q = taps(n, c, h, w, fo);
  return (1.0 - d.x) * (1.0 - d.y) * q.x + d.x * (1.0 - d.y) * q.y + (1.0 - d.x) * d.y * q.z + d.x * d.y * q.w;
}`;

function uniforms(g: ShiftGeom, head: [number, number, number, number] = [0, 0, 0, 0]): Uint8Array {
  const u = new Uniforms().u32(head[0]).u32(head[1]).u32(head[2]).u32(head[3]).arr8(geomU(g));
  for (let k = 0; k < 8; k++) u.f32(0);
  return u.done();
}

// ------------------------------------------------------------------------------ ASL forward

const fwdCode = (round: boolean) => /* wgsl */ `
${PSTRUCT}
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> S: array<f32>;
@group(0) @binding(3) var<storage, read_write> Y: array<f32>;
${SAMPLER(round)}
${mainSig()} {
  ${flatIndex()}
  if (i >= p.rows) { return; }
  let w = i % gWo();
  let h = (i / gWo()) % gHo();
  let nc = i / (gWo() * gHo());
  Y[i] = sample(nc / gC(), nc % gC(), h, w);
}`;

/** y [N, C, Ho, Wo] = shift(x [N, C, H, W]) with offsets s [2, C]. */
export function shiftForward(gpu: Gpu, g: ShiftGeom, x: GBuf, s: GBuf, y: GBuf, round: boolean): void {
  const n = g.N * g.C * g.Ho * g.Wo;
  const pipe = gpu.pipeline(`shift:fwd:${round ? 'round' : 'bilinear'}`, () => fwdCode(round));
  gpu.dispatch(pipe, [x, s, y], uniforms(g, [n, 0, 0, 0]), grid1d(n, 256), 'shift');
}

// ------------------------------------------------------------------------------ backward to input

const bwdInputCode = (round: boolean) => /* wgsl */ `
${PSTRUCT}
@group(0) @binding(1) var<storage, read> GY: array<f32>;
@group(0) @binding(2) var<storage, read> S: array<f32>;
@group(0) @binding(3) var<storage, read_write> GX: array<f32>;
fn gC() -> u32 { return U(1u); }
fn gHo() -> u32 { return U(4u); }
fn gWo() -> u32 { return U(5u); }
// output index h with h·s − p + f0 + t = r (t ∈ {0, 1}), or -1 when there is none
fn srcIdx(r: i32, f0: i32, t: i32, n: u32) -> i32 {
  let num = r + i32(U(7u)) - f0 - t;
  let s = i32(U(6u));
  if (num < 0 || num % s != 0 || num / s >= i32(n)) { return -1; }
  return num / s;
}
fn gyat(base: u32, yy: i32, xx: i32) -> f32 {
  if (yy < 0 || xx < 0 || yy >= i32(gHo()) || xx >= i32(gWo())) { return 0.0; }
  return GY[base + u32(yy) * gWo() + u32(xx)];
}
${mainSig()} {
  ${flatIndex()}
  if (i >= p.rows) { return; }
  let W = U(3u);
  let H = U(2u);
  let col = i32(i % W);
  let row = i32((i / W) % H);
  let nc = i / (W * H);
  let c = nc % gC();
  var o = vec2f(S[c], S[gC() + c]);
  ${round ? 'o = round(o);' : ''}
  let fo = floor(o);
  let d = o - fo;
  let wy = vec2f(1.0 - d.y, d.y);
  let wx = vec2f(1.0 - d.x, d.x);
  let base = nc * gHo() * gWo();
  if (U(6u) == 1u) {
    // stride 1 (uniform branch): output pixel row + p − fo.y − t feeds input row "row" with weight
    // wy[t]; the four taps as the forward's, at (row + p − fo.y − 1, col + p − fo.x − 1), no division
    let y0 = row + i32(U(7u)) - i32(fo.y) - 1;
    let x0 = col + i32(U(7u)) - i32(fo.x) - 1;
    GX[i] = wy.y * (wx.y * gyat(base, y0, x0) + wx.x * gyat(base, y0, x0 + 1))
      + wy.x * (wx.y * gyat(base, y0 + 1, x0) + wx.x * gyat(base, y0 + 1, x0 + 1));
    return;
  }
  var acc = 0.0;
  for (var ty = 0; ty < 2; ty++) {
    let hy = srcIdx(row, i32(fo.y), ty, gHo());
    if (hy < 0 || wy[ty] == 0.0) { continue; }
    for (var tx = 0; tx < 2; tx++) {
      let hx = srcIdx(col, i32(fo.x), tx, gWo());
      if (hx < 0 || wx[tx] == 0.0) { continue; }
      acc += wy[ty] * wx[tx] * GY[base + u32(hy) * gWo() + u32(hx)];
    }
  }
  GX[i] = acc;
}`;

/** gx [N, C, H, W] from gy [N, C, Ho, Wo] (the adjoint of the forward, gather form). */
export function shiftBackwardInput(gpu: Gpu, g: ShiftGeom, gy: GBuf, s: GBuf, gx: GBuf, round: boolean): void {
  const n = g.N * g.C * g.H * g.W;
  const pipe = gpu.pipeline(`shift:bwdx:${round ? 'round' : 'bilinear'}`, () => bwdInputCode(round));
  gpu.dispatch(pipe, [gy, s, gx], uniforms(g, [n, 0, 0, 0]), grid1d(n, 256), 'shift backward');
}

// ------------------------------------------------------------------------------ backward to offsets

/**
 * Per-channel sums g_a = Σ g·[(1−dy)(q01−q00) + dy(q11−q10)], g_b = Σ g·[(1−dx)(q10−q00) + dx(q11−q01)]
 * (the one-sided bilinear derivative, at the real offsets also for the sparse variant: STE on round).
 */
const OFFSET_SPEC: RowReduceSpec = {
  key: 'shift:bwds',
  combine: 'sum',
  in1: [{ name: 'X', type: 'f32' }, { name: 'GYb', type: 'f32' }, { name: 'S', type: 'f32' }],
  helpers: '',
  pass1Helpers: SAMPLER(false),
  contrib: `  // row r = channel c; j runs over (n, h, w) of the output
  let P = gHo() * gWo();
  let n = j / P;
  let q = j % P;
  let h = q / gWo();
  let w = q % gWo();
  let o = vec2f(S[r], S[gC() + r]);
  let fo = floor(o);
  let d = o - fo;
  let t = taps(n, r, h, w, fo);
  let g = GYb[(n * gC() + r) * P + q];
  let ga = (1.0 - d.y) * (t.y - t.x) + d.y * (t.w - t.z);
  let gb = (1.0 - d.x) * (t.z - t.x) + d.x * (t.w - t.y);
  return vec4f(g * ga, g * gb, 0.0, 0.0);`,
  in2: [{ name: 'GS', type: 'f32', rw: true }],
  finalize: '  GS[r] = acc.x;\n  GS[p.rows + r] = acc.y;',
};

/** gs [2, C] from x and gy (ASL offset gradient). */
export function shiftBackwardOffsets(gpu: Gpu, g: ShiftGeom, x: GBuf, gy: GBuf, s: GBuf, gs: GBuf): void {
  rowReduce(gpu, OFFSET_SPEC, g.C, g.N * g.Ho * g.Wo, [x, gy, s], [gs], geomU(g), [], 'shift backward (offsets)');
}

// ------------------------------------------------------------------------------ fused shift · 1×1 conv

/**
 * One fused shift·1x1 GEMM C[M×N] = Σ_k A(m,k)·B(k,n) on the shared tiled skeleton
 * (src/kernels/gemm/tiled.ts, the conv tile menu). `loadA`, `loadB` and `store` are WGSL bodies over
 * (m, k) / (k, n, ctx) / (m, n, v, z) with bounds already checked. Operand A is loaded `aOrder`-fast
 * (k: consecutive threads read consecutive k, for A stored k-contiguous; x: consecutive m). Each
 * thread always loads the same B column n, so `prepB(n) -> vec4u` runs once per thread before the K
 * loop (pixel decomposition, channel offsets) and its result `ctx` is passed to every `loadB`.
 * p.rows = M, p.rowLen = N, p.nChunks = K, p.chunk = K per split (a multiple of BK); wid.z = split.
 */
const gemmCode = (t: GemmTile, decls: string, helpers: string, loadA: string, aOrder: 'k' | 'x', loadB: string, store: string, prepB = 'return vec4u(0u);') =>
  tiledGemmCode({
    tile: t,
    decls: `${PSTRUCT}
${decls}
${helpers}
fn loadA(m: u32, k: u32) -> f32 { ${loadA} }
fn prepB(n: u32) -> vec4u { ${prepB} }
fn loadB(k: u32, n: u32, ctx: vec4u) -> f32 { ${loadB} }
fn store(m: u32, n: u32, v: f32, z: u32) { ${store} }`,
    prologue: `let m0 = wid.y * ${t.BM}u;
  let n0 = wid.x * ${t.BN}u;
  let kBegin = wid.z * p.chunk;
  let kEnd = min(p.nChunks, kBegin + p.chunk);`,
    a: scalarLoader('A', t, aOrder, 'if (m < p.rows && k < kEnd) { v = loadA(m, k); }'),
    b: scalarLoader('B', t, 'x', 'if (n < p.rowLen && k < kEnd) { v = loadB(k, n, ctx); }', {
      setup: 'var ctx = vec4u(0u);\n  if (n < p.rowLen) { ctx = prepB(n); }',
    }),
    store: { scalar: 'if (m < p.rows && n < p.rowLen) { store(m, n, v, wid.z); }' },
  });

function gemm(gpu: Gpu, key: string, t: GemmTile, code: () => string, bufs: GBuf[], g: ShiftGeom, M: number, N: number, K: number, chunk: number, what: string): void {
  const z = Math.max(1, Math.ceil(K / chunk));
  const u = new Uniforms().u32(M).u32(N).u32(K).u32(chunk).arr8(geomU(g));
  for (let k = 0; k < 8; k++) u.f32(0);
  gpu.dispatch(gpu.pipeline(`${key}:bm${t.BM}`, code), bufs, u.done(), [Math.ceil(N / t.BN), Math.ceil(M / t.BM), z], what);
}

const PIX = `
fn pixN(j: u32) -> u32 { return j / (gHo() * gWo()); }
fn pixQ(j: u32) -> u32 { return j % (gHo() * gWo()); }`;

// ------------------------------------------------------------------ direct variants (CPU adapters)

/** Output channels and output pixels (along one row) per thread of the direct fused forward. */
const DTM = 8;
const DTN = 8;

/**
 * Direct fused forward for the CPU adapters (see conv.ts 'direct'): no workgroup memory, no
 * barriers. A thread owns DTM output channels × DTN consecutive pixels of one output row. Per input
 * channel c it loads the two input rows the bilinear taps touch — at stride 1 the DTN pixels share
 * them, DTN + 1 values per row instead of 2·DTN — interpolates the DTN shifted values in registers
 * and issues DTM·DTN FMAs. Taps outside the image load index 0 and are selected away.
 * p.rows = O, p.rowLen = threads, p.nChunks = pixel blocks per row.
 */
const directFwdCode = (round: boolean, unit: boolean) => {
  const R = [...Array(DTM).keys()];
  const T = [...Array(DTN).keys()];
  // column taps per row: stride 1 → j (0..DTN); else 2 per pixel
  const cols = unit ? [...Array(DTN + 1).keys()].map((j) => ({ name: `${j}`, off: `${j}` })) : T.flatMap((j) => [0, 1].map((t) => ({ name: `${j}_${t}`, off: `${j} * gS() + ${t}` })));
  const L: string[] = [];
  L.push(`let wb = cb % p.nChunks;`, `let nh = cb / p.nChunks;`, `let h = nh % gHo();`, `let n = nh / gHo();`);
  L.push(`let w0 = wb * ${DTN}u;`, `let hs = i32(h) * gS() - gP();`, `let ws = i32(w0) * gS() - gP();`, `let P = gHo() * gWo();`);
  L.push(...R.map((r) => `let wr${r} = m${r} * gC();`));
  L.push(`for (var c = 0u; c < gC(); c++) {`);
  L.push(`  let o = offs(c); let fo = floor(o); let d = o - fo;`);
  L.push(`  let base = (n * gC() + c) * gH() * gW();`);
  L.push(`  let y0 = hs + i32(fo.y); let x0 = ws + i32(fo.x);`);
  L.push(`  let ok0 = y0 >= 0 && y0 < i32(gH()); let ok1 = y0 + 1 >= 0 && y0 + 1 < i32(gH());`);
  L.push(`  let rb0 = base + u32(max(y0, 0)) * gW(); let rb1 = base + u32(max(y0 + 1, 0)) * gW();`);
  for (const cl of cols) {
    L.push(`  let xc${cl.name} = x0 + ${cl.off}; let cok${cl.name} = xc${cl.name} >= 0 && xc${cl.name} < i32(gW()); let xu${cl.name} = u32(max(xc${cl.name}, 0));`);
    L.push(`  let r0_${cl.name} = select(0.0, X[select(0u, rb0 + xu${cl.name}, ok0 && cok${cl.name})], ok0 && cok${cl.name});`);
    L.push(`  let r1_${cl.name} = select(0.0, X[select(0u, rb1 + xu${cl.name}, ok1 && cok${cl.name})], ok1 && cok${cl.name});`);
  }
  const tap = (j: number, t: number) => (unit ? `${j + t}` : `${j}_${t}`);
  L.push(...T.map((j) => `  let v${j} = mix(mix(r0_${tap(j, 0)}, r0_${tap(j, 1)}, d.x), mix(r1_${tap(j, 0)}, r1_${tap(j, 1)}, d.x), d.y);`));
  L.push(...R.map((r) => `  let w${r} = Wt[wr${r} + c];`));
  L.push(...fmaBlock(DTM, DTN, (r) => `w${r}`, (j) => `v${j}`, '  '));
  L.push(`}`);
  L.push(`let ob = (n * p.rows + mBase) * P + h * gWo() + w0;`);
  return directGemmCode({
    TM: DTM, TN: DTN,
    decls: `${PSTRUCT}
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> S: array<f32>;
@group(0) @binding(3) var<storage, read> Wt: array<f32>;
@group(0) @binding(4) var<storage, read_write> Y: array<f32>;
${SAMPLER(round)}`,
    // p.rowLen = column blocks (N·Ho·wBlocks), p.chunk = row blocks, p.nChunks = pixel blocks per row
    grid: { tilesN: 'p.rowLen', tilesM: 'p.chunk', rows: 'p.rows' },
    body: L,
    store: (r) => T.map((j) => `if (w0 + ${j}u < gWo()) { Y[ob + ${r}u * P + ${j}u] = a${r}_${j}; }`).join(' '),
  });
};

/** The three fused shift·1x1 GEMMs: forward, gradient to the shifted activation, weight gradient. */
export type ShiftDir = 'fwd' | 'gs' | 'gw';
/** Variants: 'tiled' (workgroup-memory GEMM sampling x on the fly) or 'direct' (CPU-adapter kernels, see conv.ts). */
export type ShiftKernelKind = 'tiled' | 'direct';

export interface ShiftTuneShape {
  g: ShiftGeom;
  O: number;
  round: boolean;
}

function shiftFamily(dir: ShiftDir): TuneFamily<ShiftTuneShape> {
  return {
    name: `shift1x1.${dir}`,
    candidates: () => ['tiled', 'direct'],
    shapeClass: ({ g, O, round }) =>
      `${round ? 'r' : 'b'}s${g.stride}:O${bucket(O)}:C${bucket(g.C)}:J${bucket(g.N * g.Ho * g.Wo)}:W${bucket(g.Wo)}`,
    generic: (gpu) => (gpu.isSoftware ? 'direct' : 'tiled'),
    bench(gpu, { g, O, round }) {
      const sizes = [g.N * g.C * g.H * g.W, 2 * g.C, O * g.C, g.N * O * g.Ho * g.Wo, g.N * g.C * g.Ho * g.Wo];
      const bufs = sizes.map((n) => gpu.pool.acquire(n * 4, 'tune shift1x1'));
      const [x, sb, w, y, gs] = bufs;
      return {
        run(v) {
          const kind = v as ShiftKernelKind;
          if (dir === 'fwd') shiftConvForward(gpu, g, O, x, sb, w, y, round, kind);
          else if (dir === 'gs') shiftConvGradShifted(gpu, g, O, y, w, gs, kind);
          else shiftConvGradWeight(gpu, g, O, x, sb, y, w, round, kind);
        },
        dispose: () => bufs.forEach((b) => gpu.pool.release(b)),
      };
    },
  };
}

/** The tuned families of the fused shift·1x1 op (tests enumerate their candidates). */
export const SHIFT_FAMILIES: Readonly<Record<ShiftDir, TuneFamily<ShiftTuneShape>>> = {
  fwd: shiftFamily('fwd'),
  gs: shiftFamily('gs'),
  gw: shiftFamily('gw'),
};

function shiftKernelFor(gpu: Gpu, dir: ShiftDir, g: ShiftGeom, O: number, round: boolean): ShiftKernelKind {
  return gpu.tuner.pick(SHIFT_FAMILIES[dir], { g, O, round }) as ShiftKernelKind;
}

/** The 1×1 convolution over the shifted grid [N, C, Ho, Wo] as a conv2d geometry (for the direct conv kernels). */
function pointwiseGeom(g: ShiftGeom, O: number): ConvGeom {
  return { N: g.N, C: g.C, H: g.Ho, W: g.Wo, O, kh: 1, kw: 1, sh: 1, sw: 1, ph: 0, pw: 0, dh: 1, dw: 1, groups: 1, Ho: g.Ho, Wo: g.Wo };
}

/** y [N, O, Ho, Wo] = W [O, C] · shift(x) — the B operand is sampled from x inside the GEMM. */
export function shiftConvForward(gpu: Gpu, g: ShiftGeom, O: number, x: GBuf, s: GBuf, w: GBuf, y: GBuf, round: boolean, kind?: ShiftKernelKind): void {
  if ((kind ?? shiftKernelFor(gpu, 'fwd', g, O, round)) === 'direct') {
    const unit = g.stride === 1;
    const wBlocks = Math.ceil(g.Wo / DTN);
    const tilesN = g.N * g.Ho * wBlocks;
    const tilesM = Math.ceil(O / DTM);
    const pipe = gpu.pipeline(`shift:conv:fwd:direct:${round ? 'round' : 'bilinear'}:${unit ? 's1' : 'gen'}`, () => directFwdCode(round, unit));
    gpu.dispatch(pipe, [x, s, w, y], uniforms(g, [O, tilesN, wBlocks, tilesM]), grid1d(tilesN * tilesM, DWG), 'shiftConv1x1');
    return;
  }
  const J = g.N * g.Ho * g.Wo;
  const t = convTile(O);
  const code = () => gemmCode(t,
    `@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> S: array<f32>;
@group(0) @binding(3) var<storage, read> Wt: array<f32>;
@group(0) @binding(4) var<storage, read_write> Y: array<f32>;`,
    SAMPLER(round) + PIX,
    'return Wt[m * gC() + k];',
    'k',
    // ctx = (image, top row h·s − p, left column w·s − p)
    `let o = offs(k);
  let fo = floor(o);
  let d = o - fo;
  let base = (ctx.x * gC() + k) * gH() * gW();
  let y0 = bitcast<i32>(ctx.y) + i32(fo.y);
  let x0 = bitcast<i32>(ctx.z) + i32(fo.x);
  let q00 = xat(base, y0, x0);
  let q01 = xat(base, y0, x0 + 1);
  let q10 = xat(base, y0 + 1, x0);
  let q11 = xat(base, y0 + 1, x0 + 1);
  return (1.0 - d.x) * (1.0 - d.y) * q00 + d.x * (1.0 - d.y) * q01 + (1.0 - d.x) * d.y * q10 + d.x * d.y * q11;`,
    'let P = gHo() * gWo(); Y[(pixN(n) * p.rows + m) * P + pixQ(n)] = v;',
    'let q = pixQ(n); return vec4u(pixN(n), bitcast<u32>(i32(q / gWo()) * gS() - gP()), bitcast<u32>(i32(q % gWo()) * gS() - gP()), 0u);',
  );
  gemm(gpu, `shift:conv:fwd:${round ? 'round' : 'bilinear'}`, t, code, [x, s, w, y], g, O, J, g.C, wholeK(g.C, t.BK).chunk, 'shiftConv1x1');
}

/** gS [N, C, Ho, Wo] = Wᵀ · gy (gy [N, O, Ho, Wo]). */
export function shiftConvGradShifted(gpu: Gpu, g: ShiftGeom, O: number, gy: GBuf, w: GBuf, gs: GBuf, kind?: ShiftKernelKind): void {
  // no shift in this product: the 'direct' variant is the 1×1 conv data gradient (itself tuned)
  if ((kind ?? shiftKernelFor(gpu, 'gs', g, O, false)) === 'direct') {
    return conv2dBackwardData(gpu, pointwiseGeom(g, O), gy, w, gs, 'shiftConv1x1 backward');
  }
  const J = g.N * g.Ho * g.Wo;
  const t = convTile(g.C);
  const code = () => gemmCode(t,
    `@group(0) @binding(1) var<storage, read> GY: array<f32>;
@group(0) @binding(2) var<storage, read> Wt: array<f32>;
@group(0) @binding(3) var<storage, read_write> GSh: array<f32>;`,
    `fn gC() -> u32 { return U(1u); }
fn gHo() -> u32 { return U(4u); }
fn gWo() -> u32 { return U(5u); }` + PIX,
    // A(c, o) = W[o, c]; B(o, j) = gy[n, o, q]; K = O
    'return Wt[k * gC() + m];',
    'x',
    'return GY[ctx.x + k * ctx.y];',
    'let P = gHo() * gWo(); GSh[(pixN(n) * gC() + m) * P + pixQ(n)] = v;',
    // ctx = (offset of gy[n, 0, q], P)
    'let P = gHo() * gWo(); return vec4u(pixN(n) * p.nChunks * P + pixQ(n), P, 0u, 0u);',
  );
  gemm(gpu, 'shift:conv:gs', t, code, [gy, w, gs], g, g.C, J, O, wholeK(O, t.BK).chunk, 'shiftConv1x1 backward');
}

/** gW [O, C] = Σ_j gy[o, j]·shift(x)[c, j] (split-K over the N·Ho·Wo pixels, then a fixed-order sum). */
export function shiftConvGradWeight(
  gpu: Gpu, g: ShiftGeom, O: number, x: GBuf, s: GBuf, gy: GBuf, gw: GBuf, round: boolean, kind?: ShiftKernelKind,
): void {
  if ((kind ?? shiftKernelFor(gpu, 'gw', g, O, round)) === 'direct') {
    // direct: resample shift(x) into a transient buffer (freed right after; the forward never
    // stores it) and run the direct 1×1 weight gradient, instead of resampling once per tile row
    const shifted = gpu.pool.acquire(g.N * g.C * g.Ho * g.Wo * 4, 'shiftConv1x1 backward (resampled)');
    shiftForward(gpu, g, x, s, shifted, round);
    conv2dBackwardWeight(gpu, pointwiseGeom(g, O), gy, shifted, gw, 'shiftConv1x1 backward (weights)');
    gpu.pool.release(shifted);
    return;
  }
  const J = g.N * g.Ho * g.Wo;
  const t = convTile(O);
  const tiles = Math.ceil(O / t.BM) * Math.ceil(g.C / t.BN);
  // enough splits of the pixel axis to give ~128 workgroups, each at least 256 pixels long
  const { chunk } = planSplitK(J, tiles, 128, 256, t.BK);
  const code = () => gemmCode(t,
    `@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> S: array<f32>;
@group(0) @binding(3) var<storage, read> GY: array<f32>;
@group(0) @binding(4) var<storage, read_write> GWp: array<f32>;`,
    SAMPLER(round) + PIX,
    // A(o, j) = gy[n, o, q]; B(j, c) = shift(x)[n, c, q]; K = J
    'let P = gHo() * gWo(); return GY[(pixN(k) * p.rows + m) * P + pixQ(k)];',
    'k',
    // ctx = (⌊a⌋, ⌊b⌋, a − ⌊a⌋, b − ⌊b⌋) of channel n
    `let q = pixQ(k);
  let t = taps(pixN(k), n, q / gWo(), q % gWo(), bitcast<vec2f>(ctx.xy));
  let d = bitcast<vec2f>(ctx.zw);
  return (1.0 - d.x) * (1.0 - d.y) * t.x + d.x * (1.0 - d.y) * t.y + (1.0 - d.x) * d.y * t.z + d.x * d.y * t.w;`,
    'GWp[(z * p.rows + m) * p.rowLen + n] = v;',
    'let o = offs(n); let fo = floor(o); return bitcast<vec4u>(vec4f(fo, o - fo));',
  );
  const z = Math.max(1, Math.ceil(J / chunk));
  const key = `shift:conv:gw:${round ? 'round' : 'bilinear'}`;
  if (z === 1) {
    gemm(gpu, key, t, code, [x, s, gy, gw], g, O, g.C, J, chunk, 'shiftConv1x1 backward (weights)');
    return;
  }
  const part = gpu.pool.acquire(z * O * g.C * 4, 'shiftConv1x1 weight partials');
  gemm(gpu, key, t, code, [x, s, gy, part], g, O, g.C, J, chunk, 'shiftConv1x1 backward (weights)');
  sumSplits(gpu, part, gw, O * g.C, z, 'shiftConv1x1 backward (weights)');
  gpu.pool.release(part);
}
