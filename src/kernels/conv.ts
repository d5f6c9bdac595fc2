/**
 * 2-D convolution (NCHW) as implicit GEMM: no im2col buffer is ever materialised; the tile loaders
 * gather the im2col values straight from the tensors. Three GEMMs, one per direction, per group g:
 *
 *  forward      Y[n, o, p]      = Σ_k  W[o, k] · Xcol[k, (n, p)]        M = O/g, N = N·Ho·Wo, K = C/g·kh·kw
 *  data grad    dX[n, c, q]     = Σ_k  Wᵀ[c, k] · dYcol[k, (n, q)]      M = C/g, N = N·H·W,   K = O/g·kh·kw
 *  weight grad  dW[o, (c,i,j)]  = Σ_k  dY[o, k] · Xcolᵀ[k, (c,i,j)]     M = O/g, N = C/g·kh·kw, K = N·Ho·Wo
 *
 * The data gradient is the gather form of col2im: each input pixel (a GEMM column) collects, for
 * every (o, i, j), the output it fed (if the stride hits it), so there are no atomics and no
 * scatter. The weight gradient reduces over N·Ho·Wo; long reductions are split over workgroups
 * (split-K) into per-split partial buffers that a second pass adds up in a fixed order
 * (deterministic).
 *
 The 'tiled' variant runs the shared tiled GEMM skeleton (src/kernels/gemm/tiled.ts: a BM x BN
 * block per workgroup, BN = 64 columns, BK = 16-deep slices of both operands staged in workgroup
 * memory, a 4 x 4 register block per thread) with this file's implicit-GEMM loaders.
 * Tile loaders hoist the index decoding that does not change along K out of the K loop. BM follows
 * the GEMM's M (16, 32 or 64) so narrow layers (16-channel ResNet stages) do not idle 3/4 of a tile.
 * 1x1 / stride 1 / no padding / no dilation convolutions take a "pointwise" variant whose loaders
 * are plain strided reads (a GEMM over [N, C, H·W]).
 *
 * Split-K is planned by src/kernels/gemm/splitk.ts.
 * Pipelines: one per (direction, pointwise, bias, BM) actually used, plus the split-K sum; all
 * shapes, strides, paddings and dilations are uniforms.
 */
import { bucket, grid1d, type TuneFamily } from '../gpu/index.ts';
import { convOutSize, flatIndex, type GBuf, type Gpu, mainSig, shapeError, Uniforms } from './common.ts';
import * as mm from './matmul.ts';
import * as rk from './reduce.ts';
import { planSplitK, sumSplits } from './gemm/splitk.ts';
import { directGemmCode, DWG, fmaBlock } from './gemm/direct.ts';
import { convTile, type GemmTile, linearTiles, scalarLoader, type TileLoader, tiledGemmCode } from './gemm/tiled.ts';

/** Geometry of one convolution (all sizes in elements). */
export interface ConvGeom {
  N: number;
  C: number;
  H: number;
  W: number;
  O: number;
  kh: number;
  kw: number;
  sh: number;
  sw: number;
  ph: number;
  pw: number;
  dh: number;
  dw: number;
  groups: number;
  Ho: number;
  Wo: number;
}

export type ConvDir = 'fwd' | 'bwdData' | 'bwdWeight';

export { convOutSize };

/** True when the convolution is a plain GEMM over [N, C, H·W]. */
export function isPointwise(g: ConvGeom): boolean {
  return g.kh === 1 && g.kw === 1 && g.sh === 1 && g.sw === 1 && g.ph === 0 && g.pw === 0;
}

const STRUCT = `struct P {
  N: u32, C: u32, H: u32, W: u32,
  O: u32, kh: u32, kw: u32, khw: u32,
  Ho: u32, Wo: u32, P: u32, HW: u32,
  sh: u32, sw: u32, ph: u32, pw: u32,
  dh: u32, dw: u32, groups: u32, Cg: u32,
  Og: u32, M: u32, Ncol: u32, K: u32,
  tilesN: u32, tilesM: u32, chunk: u32, splits: u32,
  wb: u32, pad1: u32, pad2: u32, pad3: u32,
}`;

/**
 * WGSL for one direction: the shared tiled skeleton (src/kernels/gemm/tiled.ts) with the implicit-GEMM
 * loaders of this direction. Bindings: 1 = first operand, 2 = second operand, 3 = output, 4 = bias
 * (forward with bias only). Operands: fwd (W, X -> Y), bwdData (W, dY -> dX), bwdWeight (dY, X -> partials).
 * A slices are loaded k-fast (consecutive threads read consecutive k of a weight row); B slices of
 * fwd / bwdData column-fast, so a thread's column n is fixed and its pixel decode is hoisted out of
 * the K loop; bwdWeight's B is k-fast (consecutive pixels of X), decoded once per K step.
 */
export function convCode(dir: ConvDir, pointwise: boolean, bias: boolean, t: GemmTile): string {
  const names: Record<ConvDir, [string, string, string]> = {
    fwd: ['Wt', 'X', 'Y'],
    bwdData: ['Wt', 'dY', 'dX'],
    bwdWeight: ['dY', 'X', 'part'],
  };
  const [an, bn, cn] = names[dir];
  // the tile's group g and split index; this workgroup's K range
  const prologue = `${linearTiles(t, 'p.tilesN', 'p.tilesM')}
  let g = wid.z % p.groups;
  let split = wid.z / p.groups;
  let kBegin = split * p.chunk;
  let kEnd = min(p.K, kBegin + p.chunk);`;
  let a: TileLoader;
  let b: TileLoader;
  let store: string;
  if (dir === 'fwd') {
    a = scalarLoader('A', t, 'k', `if (m < p.M && k < kEnd) { v = Wt[aBase + m * p.K + k]; }`, { setup: 'let aBase = g * p.Og * p.K;' });
    b = scalarLoader('B', t, 'x', pointwise
      ? `if (colOk && k < kEnd) { v = X[xBase + k * p.HW + pix]; }`
      : `if (colOk && k < kEnd) {
        let c = k / p.khw; let ij = k % p.khw;
        let h = hb + i32(ij / p.kw) * i32(p.dh);
        let w = wb + i32(ij % p.kw) * i32(p.dw);
        if (h >= 0 && h < i32(p.H) && w >= 0 && w < i32(p.W)) { v = X[xBase + c * p.HW + u32(h) * p.W + u32(w)]; }
      }`, {
      setup: `let colOk = n < p.Ncol;
  let nImg = n / p.P; let pix = n % p.P;
  let xBase = (nImg * p.C + g * p.Cg) * p.HW;
  ${pointwise ? '' : `let hb = i32(pix / p.Wo) * i32(p.sh) - i32(p.ph);
  let wb = i32(pix % p.Wo) * i32(p.sw) - i32(p.pw);`}`,
    });
    store = `if (m < p.M && n < p.Ncol) {
    let o = g * p.Og + m;
    Y[((n / p.P) * p.O + o) * p.P + n % p.P] = v${bias ? ' + bias[o]' : ''};
  }`;
  } else if (dir === 'bwdData') {
    // A[c][(o, ij)] = W[g*Og + o][c][ij]
    a = scalarLoader('A', t, 'k', `if (m < p.M && k < kEnd) { v = Wt[aBase + ((k / p.khw) * p.Cg + m) * p.khw + k % p.khw]; }`, {
      setup: 'let aBase = g * p.Og * p.Cg * p.khw;',
    });
    b = scalarLoader('B', t, 'x', pointwise
      ? `if (colOk && k < kEnd) { v = dY[yBase + k * p.P + pix]; }`
      : `if (colOk && k < kEnd) {
        let o = k / p.khw; let ij = k % p.khw;
        let th = th0 - i32(ij / p.kw) * i32(p.dh);
        let tw = tw0 - i32(ij % p.kw) * i32(p.dw);
        if (th >= 0 && tw >= 0) {
          let uh = u32(th); let uw = u32(tw);
          let ho = uh / p.sh; let wo = uw / p.sw;
          if (ho * p.sh == uh && wo * p.sw == uw && ho < p.Ho && wo < p.Wo) { v = dY[yBase + o * p.P + ho * p.Wo + wo]; }
        }
      }`, {
      setup: `let colOk = n < p.Ncol;
  let nImg = n / p.HW; let pix = n % p.HW;
  let yBase = (nImg * p.O + g * p.Og) * p.P;
  ${pointwise ? '' : `let th0 = i32(pix / p.W) + i32(p.ph);
  let tw0 = i32(pix % p.W) + i32(p.pw);`}`,
    });
    store = `if (m < p.M && n < p.Ncol) {
    dX[((n / p.HW) * p.C + g * p.Cg + m) * p.HW + n % p.HW] = v;
  }`;
  } else {
    // per K step: decode this thread's k for A (k0 + aKl) and for B (k0 + bKl)
    a = scalarLoader('A', t, 'k', `if (m < p.M && kAOk) { v = dY[aOff + m * p.P]; }`, {
      step: `let kA = k0 + aKl;
    let kAOk = kA < kEnd;
    let aOff = ((kA / p.P) * p.O + g * p.Og) * p.P + kA % p.P;`,
    });
    b = scalarLoader('B', t, 'k', pointwise
      ? `if (kBOk && n < p.Ncol) { v = X[xb + n * p.HW + pixB]; }`
      : `if (kBOk && n < p.Ncol) {
        let c = n / p.khw; let ij = n % p.khw;
        let h = hb + i32(ij / p.kw) * i32(p.dh);
        let w = wb + i32(ij % p.kw) * i32(p.dw);
        if (h >= 0 && h < i32(p.H) && w >= 0 && w < i32(p.W)) { v = X[xb + c * p.HW + u32(h) * p.W + u32(w)]; }
      }`, {
      step: `let kB = k0 + bKl;
    let kBOk = kB < kEnd;
    let pixB = kB % p.P;
    let xb = ((kB / p.P) * p.C + g * p.Cg) * p.HW;
    ${pointwise ? '' : `let hb = i32(pixB / p.Wo) * i32(p.sh) - i32(p.ph);
    let wb = i32(pixB % p.Wo) * i32(p.sw) - i32(p.pw);`}`,
    });
    store = `if (m < p.M && n < p.Ncol) {
    part[split * p.O * p.Ncol + (g * p.Og + m) * p.Ncol + n] = v;
  }`;
  }
  return tiledGemmCode({ tile: t, decls: `${bindings(an, bn, cn, bias ? 'read' : null)}`, prologue, a, b, store: { scalar: store } });
}

// ------------------------------------------------------------------ direct (CPU adapters)

/**
 * The kernel variants of the three GEMMs, chosen per shape by the autotuner (src/gpu/tune.ts):
 * 'tiled' (workgroup-memory tiles, above), 'direct' (below: one register block per thread straight
 * from storage, no workgroup memory, no barriers) and 'row' (direct kernels that walk a whole output
 * row per thread and share the kernel-row taps; only where `rowVariantFits` / `rowWeightFits`).
 * 'direct' and 'row' run on the shared direct skeleton (src/kernels/gemm/direct.ts: thread numbering,
 * register block, clamped rows, masked stores) with this file's loaders and reduction loops.
 * CPU implementations (lavapipe, SwiftShader) run a workgroup on one core, lanes in SIMD, and every
 * storage or workgroup-memory access as a per-lane gather, while barriers split the shader into
 * coroutines: there staging tiles only adds work. GPUs want the tiles. Which one wins is measured on
 * the adapter, not assumed: the generic choice below only serves until the key is tuned.
 */
export type ConvKernelKind = 'tiled' | 'direct' | 'row' | 'lite' | 'naive' | 'gemm';

/** One tuned launch: the GEMM direction, its geometry and whether a bias is fused. */
export interface ConvTuneShape {
  dir: ConvDir;
  g: ConvGeom;
  bias: boolean;
}

function convFamily(dir: ConvDir): TuneFamily<ConvTuneShape> {
  return {
    name: `conv.${dir}`,
    candidates(gpu, s) {
      const row = dir === 'bwdWeight' ? rowWeightFits(s.g) : rowVariantFits(dir, s.g);
      const base = row ? ['tiled', 'direct', 'row', 'lite', 'naive'] : ['tiled', 'direct', 'naive'];
      return gemmFits(gpu, dir, s.g, s.bias) ? [...base, 'gemm'] : base;
    },
    shapeClass({ g, bias }) {
      const Cg = g.C / g.groups;
      const Og = g.O / g.groups;
      const [M, Ncol, K] = dir === 'fwd' ? [Og, g.N * g.Ho * g.Wo, Cg * g.kh * g.kw]
        : dir === 'bwdData' ? [Cg, g.N * g.H * g.W, Og * g.kh * g.kw]
        : [Og, Cg * g.kh * g.kw, g.N * g.Ho * g.Wo];
      const geom = isPointwise(g) ? 'pw' : `k${g.kh}x${g.kw}s${g.sh}x${g.sw}${g.dh > 1 || g.dw > 1 ? 'd' : ''}`;
      return `${geom}${bias ? 'b' : ''}${g.groups > 1 ? 'g' : ''}:M${bucket(M)}:N${bucket(Ncol)}:K${bucket(K)}:W${bucket(dir === 'bwdData' ? g.W : g.Wo)}`;
    },
    // without tuning: tiles on GPUs; on CPU adapters the row kernel with the small 2x4 block where
    // it fits (a few pipelines that compile quickly; the tuned 'row' blocks run up to ~2x faster but
    // are specialised per width and take seconds each to compile on SwiftShader), else 'direct'
    generic(gpu, s) {
      if (!gpu.isSoftware) return 'tiled';
      return this.candidates(gpu, s).includes('lite') ? 'lite' : 'direct';
    },
    // tier 1: the row kernel with a 2 x 4 register block where it fits (compiles several times faster
    // than the tuned blocks and runs within ~2x of them); elsewhere none (the naive kernel compiles
    // fastest but runs 5-20x slower: long enough on big layers for a browser to declare the GPU hung)
    quick(gpu, s) {
      return this.candidates(gpu, s).includes('lite') ? 'lite' : null;
    },
    bench(gpu, { g, bias }) {
      const nx = g.N * g.C * g.H * g.W;
      const ny = g.N * g.O * g.Ho * g.Wo;
      const nw = g.O * (g.C / g.groups) * g.kh * g.kw;
      const bufs = [nx, ny, nw, g.O].map((n, i) => gpu.pool.acquire(n * 4, `tune conv ${['x', 'y', 'w', 'b'][i]}`));
      const [x, y, w, b] = bufs;
      return {
        run(v) {
          const kind = v as ConvKernelKind;
          if (dir === 'fwd') conv2dForward(gpu, g, x, w, bias ? b : null, y, 'tune conv2d', kind);
          else if (dir === 'bwdData') conv2dBackwardData(gpu, g, y, w, x, 'tune conv2d', kind);
          else conv2dBackwardWeight(gpu, g, y, x, w, 'tune conv2d', bias ? b : null, kind);
        },
        dispose() {
          for (const buf of bufs) gpu.pool.release(buf);
        },
      };
    },
  };
}

/** The tuned families of the three convolution GEMMs (tests enumerate their candidates). */
export const CONV_FAMILIES: Readonly<Record<ConvDir, TuneFamily<ConvTuneShape>>> = {
  fwd: convFamily('fwd'),
  bwdData: convFamily('bwdData'),
  bwdWeight: convFamily('bwdWeight'),
};

/** The variant the tuner picks for one launch (the kernel tests force each candidate in turn). */
export function convKernelFor(gpu: Gpu, dir: ConvDir, g: ConvGeom, bias: boolean): ConvKernelKind {
  return gpu.tuner.pick(CONV_FAMILIES[dir], { dir, g, bias }) as ConvKernelKind;
}

/** Force one variant for all three conv GEMMs (null: back to the tuner), e.g. `forceConvKernel(gpu, 'direct')`. */
export function forceConvKernel(gpu: Gpu, kind: ConvKernelKind | null): void {
  for (const f of Object.values(CONV_FAMILIES)) gpu.tuner.force(f.name, kind);
}

/**
 * The 'naive' variant: one thread per output element, plain loops over the reduction, every size in
 * uniforms and nothing unrolled. Slow, but it compiles in a fraction of the time of the tiled, direct
 * and row kernels (those unroll register blocks), so it is the tier-1 kernel that serves the first
 * steps while the tuned variant compiles in the background (src/gpu/tune.ts, tiered compilation).
 * Bindings as the other variants: fwd (w, x, y, bias?), bwdData (w, dy, dx), bwdWeight (dy, x, dw).
 */
export function naiveConvCode(dir: ConvDir, bias: boolean): string {
  const head = dir === 'bwdWeight' ? bindings('dy', 'x', 'dw', null) : dir === 'fwd' ? bindings('wt', 'x', 'y', bias ? 'read' : null) : bindings('wt', 'dy', 'dx', null);
  const NAIVE_WG = 64;
  const body = dir === 'fwd' ? `
  if (i >= p.N * p.O * p.P) { return; }
  let wo = i % p.Wo;
  let ho = (i / p.Wo) % p.Ho;
  let o = (i / p.P) % p.O;
  let n = i / (p.P * p.O);
  let grp = o / p.Og;
  var acc = ${bias ? 'bias[o]' : '0.0'};
  for (var ci = 0u; ci < p.Cg; ci++) {
    let xb = (n * p.C + grp * p.Cg + ci) * p.HW;
    let wb = (o * p.Cg + ci) * p.khw;
    for (var ki = 0u; ki < p.kh; ki++) {
      let h = i32(ho * p.sh + ki * p.dh) - i32(p.ph);
      if (h < 0 || h >= i32(p.H)) { continue; }
      for (var kj = 0u; kj < p.kw; kj++) {
        let w = i32(wo * p.sw + kj * p.dw) - i32(p.pw);
        if (w < 0 || w >= i32(p.W)) { continue; }
        acc += x[xb + u32(h) * p.W + u32(w)] * wt[wb + ki * p.kw + kj];
      }
    }
  }
  y[i] = acc;` : dir === 'bwdData' ? `
  if (i >= p.N * p.C * p.HW) { return; }
  let w = i % p.W;
  let h = (i / p.W) % p.H;
  let c = (i / p.HW) % p.C;
  let n = i / (p.HW * p.C);
  let grp = c / p.Cg;
  let ci = c % p.Cg;
  var acc = 0.0;
  for (var oi = 0u; oi < p.Og; oi++) {
    let o = grp * p.Og + oi;
    let yb = (n * p.O + o) * p.P;
    let wb = (o * p.Cg + ci) * p.khw;
    for (var ki = 0u; ki < p.kh; ki++) {
      let th = i32(h + p.ph) - i32(ki * p.dh);
      if (th < 0 || u32(th) % p.sh != 0u || u32(th) / p.sh >= p.Ho) { continue; }
      for (var kj = 0u; kj < p.kw; kj++) {
        let tw = i32(w + p.pw) - i32(kj * p.dw);
        if (tw < 0 || u32(tw) % p.sw != 0u || u32(tw) / p.sw >= p.Wo) { continue; }
        acc += dy[yb + (u32(th) / p.sh) * p.Wo + u32(tw) / p.sw] * wt[wb + ki * p.kw + kj];
      }
    }
  }
  dx[i] = acc;` : `
  if (i >= p.O * p.Cg * p.khw) { return; }
  let kj = i % p.kw;
  let ki = (i / p.kw) % p.kh;
  let ci = (i / p.khw) % p.Cg;
  let o = i / (p.khw * p.Cg);
  let c = (o / p.Og) * p.Cg + ci;
  var acc = 0.0;
  for (var n = 0u; n < p.N; n++) {
    let yb = (n * p.O + o) * p.P;
    let xb = (n * p.C + c) * p.HW;
    for (var ho = 0u; ho < p.Ho; ho++) {
      let h = i32(ho * p.sh + ki * p.dh) - i32(p.ph);
      if (h < 0 || h >= i32(p.H)) { continue; }
      for (var wo = 0u; wo < p.Wo; wo++) {
        let w = i32(wo * p.sw + kj * p.dw) - i32(p.pw);
        if (w < 0 || w >= i32(p.W)) { continue; }
        acc += dy[yb + ho * p.Wo + wo] * x[xb + u32(h) * p.W + u32(w)];
      }
    }
  }
  dw[i] = acc;`;
  return `${head}
${mainSig(NAIVE_WG)} {
  ${flatIndex(NAIVE_WG)}${body}
}`;
}

function launchNaive(gpu: Gpu, dir: ConvDir, g: ConvGeom, bufs: GBuf[], bias: boolean, what: string): void {
  const n = dir === 'fwd' ? g.N * g.O * g.Ho * g.Wo : dir === 'bwdData' ? g.N * g.C * g.H * g.W : g.O * (g.C / g.groups) * g.kh * g.kw;
  const pipe = gpu.pipeline(`conv:naive:${dir}:${bias ? 'b' : 'nb'}`, () => naiveConvCode(dir, bias));
  gpu.dispatch(pipe, bufs, uniforms(g, 0, 0, 0, 0, 0, 0), grid1d(n, 64), what);
}

/** Register block of the 'lite' row variant (tier 1): 2 output channels x 4 pixels per thread. */
const LITE_TM = 2;
const LITE_TN = 4;

/** The uniform block and the bindings every conv kernel shares: two inputs, one output, an optional fourth buffer. */
function bindings(a: string, b: string, c: string, fourth: 'read' | 'read_write' | null, fourthName = 'bias'): string {
  return `${STRUCT}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> ${a}: array<f32>;
@group(0) @binding(2) var<storage, read> ${b}: array<f32>;
@group(0) @binding(3) var<storage, read_write> ${c}: array<f32>;
${fourth ? `@group(0) @binding(4) var<storage, ${fourth}> ${fourthName}: array<f32>;` : ''}`;
}

/** Output columns per thread of the direct kernels. */
const DTN = 8;

/** Rows per thread: the smallest of 2, 4, 6, 8 that covers M (6-channel LeNet layers: no idle rows), else 8. */
function directTM(M: number): number {
  return M >= 8 ? 8 : Math.max(2, M + (M & 1));
}

/**
 * The 'direct' implicit GEMM: no workgroup memory, no barriers. Each thread owns a TM x TN block of
 * the output (TM rows of M, TN = 8 consecutive GEMM columns) in scalar registers and walks the
 * reduction with nested (channel, kernel row, kernel column) loops, or (image, row, column) for
 * the weight gradient, so no index is divided inside the loop (except strided data gradients).
 * Per reduction step it loads TM values of the A operand and TN gathered values of B, and issues
 * TM·TN FMAs. Out-of-range rows and columns are clamped for loading and masked at the store;
 * padding taps load index 0 and are selected away (no divergent branches).
 * Threads are numbered (split, group, row block, column block), column blocks fastest (lanes of a
 * workgroup share rows; llvmpipe gathers every lane's load anyway, even at a uniform address).
 */
export function directConvCode(dir: ConvDir, pointwise: boolean, bias: boolean, unitStride: boolean, TM: number, stride2 = false): string {
  // stride 2 (ResNet downsampling) divides by shifting; other strides divide by the uniform
  const dvh = (e: string) => (stride2 ? `(${e} >> 1u)` : `${e} / p.sh`);
  const dvw = (e: string) => (stride2 ? `(${e} >> 1u)` : `${e} / p.sw`);
  const TN = DTN;
  const R = [...Array(TM).keys()];
  const T = [...Array(TN).keys()];
  const L: string[] = [];
  const fmas = (aName: (r: number) => string, bName: (t: number) => string) => fmaBlock(TM, TN, aName, bName);
  let store: (r: number) => string;
  const names: Record<ConvDir, [string, string, string]> = {
    fwd: ['Wt', 'X', 'Y'],
    bwdData: ['Wt', 'dY', 'dX'],
    bwdWeight: ['dY', 'X', 'part'],
  };
  const [an, bn, cn] = names[dir];
  // per-column setup (hoisted out of the reduction): clamped column, its validity and bases
  L.push(`let c0 = cb * ${TN}u;`, `let kBegin = split * p.chunk;`, `let kEnd = min(p.K, kBegin + p.chunk);`);
  L.push(...T.map((t) => `let col${t} = min(c0 + ${t}u, p.Ncol - 1u); let cok${t} = c0 + ${t}u < p.Ncol;`));
  if (dir === 'fwd') {
    L.push(...T.map((t) => `let n${t} = col${t} / p.P; let pix${t} = col${t} % p.P; let xb${t} = (n${t} * p.C + g * p.Cg) * p.HW;`));
    L.push(...R.map((r) => `let wr${r} = (g * p.Og + m${r}) * p.K;`));
    if (pointwise) {
      L.push(`for (var c = 0u; c < p.Cg; c++) {`);
      L.push(...R.map((r) => `  let w${r} = Wt[wr${r} + c];`));
      L.push(...T.map((t) => `  let v${t} = X[xb${t} + c * p.HW + pix${t}];`));
      L.push(...fmas((r) => `w${r}`, (t) => `v${t}`).map((x) => '  ' + x));
      L.push(`}`);
    } else {
      L.push(...T.map((t) => `let hb${t} = i32((pix${t} / p.Wo) * p.sh) - i32(p.ph); let wb${t} = i32((pix${t} % p.Wo) * p.sw) - i32(p.pw);`));
      L.push(`var k = 0u;`);
      L.push(`for (var c = 0u; c < p.Cg; c++) {`);
      L.push(`  for (var i = 0u; i < p.kh; i++) {`);
      L.push(...T.map((t) => `    let h${t} = hb${t} + i32(i * p.dh); let hok${t} = h${t} >= 0 && h${t} < i32(p.H); let ro${t} = xb${t} + c * p.HW + u32(max(h${t}, 0)) * p.W;`));
      L.push(`    for (var j = 0u; j < p.kw; j++) {`);
      L.push(...R.map((r) => `      let w${r} = Wt[wr${r} + k];`));
      L.push(...T.map((t) => `      let x${t} = wb${t} + i32(j * p.dw); let ok${t} = hok${t} && x${t} >= 0 && x${t} < i32(p.W); let v${t} = select(0.0, X[select(0u, ro${t} + u32(x${t}), ok${t})], ok${t});`));
      L.push(...fmas((r) => `w${r}`, (t) => `v${t}`).map((x) => '      ' + x));
      L.push(`      k++;`);
      L.push(`    }`);
      L.push(`  }`);
      L.push(`}`);
    }
    store = (r) => T.map((t) => `if (cok${t}) { Y[(n${t} * p.O + g * p.Og + m${r}) * p.P + pix${t}] = a${r}_${t}${bias ? ` + bias[g * p.Og + m${r}]` : ''}; }`).join(' ');
  } else if (dir === 'bwdData') {
    L.push(...T.map((t) => `let n${t} = col${t} / p.HW; let pix${t} = col${t} % p.HW; let yb${t} = (n${t} * p.O + g * p.Og) * p.P;`));
    // A[m][(o, ij)] = W[g*Og + o][m][ij]
    L.push(...R.map((r) => `let wr${r} = (g * p.Og * p.Cg + m${r}) * p.khw;`));
    if (pointwise) {
      L.push(`for (var o = 0u; o < p.Og; o++) {`);
      L.push(...R.map((r) => `  let w${r} = Wt[wr${r} + o * p.Cg];`));
      L.push(...T.map((t) => `  let v${t} = dY[yb${t} + o * p.P + pix${t}];`));
      L.push(...fmas((r) => `w${r}`, (t) => `v${t}`).map((x) => '  ' + x));
      L.push(`}`);
    } else {
      L.push(...T.map((t) => `let th${t} = i32(pix${t} / p.W + p.ph); let tw${t} = i32(pix${t} % p.W + p.pw);`));
      L.push(`for (var o = 0u; o < p.Og; o++) {`);
      L.push(`  let wo_ = o * p.Cg * p.khw;`);
      L.push(`  for (var i = 0u; i < p.kh; i++) {`);
      if (unitStride) {
        L.push(...T.map((t) => `    let ho${t} = th${t} - i32(i * p.dh); let hok${t} = ho${t} >= 0 && ho${t} < i32(p.Ho); let ro${t} = yb${t} + o * p.P + u32(max(ho${t}, 0)) * p.Wo;`));
      } else {
        L.push(...T.map((t) => `    let hn${t} = th${t} - i32(i * p.dh); let hq${t} = ${dvh(`u32(max(hn${t}, 0))`)}; let hok${t} = hn${t} >= 0 && hq${t} * p.sh == u32(hn${t}) && hq${t} < p.Ho; let ro${t} = yb${t} + o * p.P + hq${t} * p.Wo;`));
      }
      L.push(`    for (var j = 0u; j < p.kw; j++) {`);
      L.push(`      let kk = wo_ + i * p.kw + j;`);
      L.push(...R.map((r) => `      let w${r} = Wt[wr${r} + kk];`));
      if (unitStride) {
        L.push(...T.map((t) => `      let x${t} = tw${t} - i32(j * p.dw); let ok${t} = hok${t} && x${t} >= 0 && x${t} < i32(p.Wo); let v${t} = select(0.0, dY[select(0u, ro${t} + u32(x${t}), ok${t})], ok${t});`));
      } else {
        L.push(...T.map((t) => `      let xn${t} = tw${t} - i32(j * p.dw); let xq${t} = ${dvw(`u32(max(xn${t}, 0))`)}; let ok${t} = hok${t} && xn${t} >= 0 && xq${t} * p.sw == u32(xn${t}) && xq${t} < p.Wo; let v${t} = select(0.0, dY[select(0u, ro${t} + xq${t}, ok${t})], ok${t});`));
      }
      L.push(...fmas((r) => `w${r}`, (t) => `v${t}`).map((x) => '      ' + x));
      L.push(`    }`);
      L.push(`  }`);
      L.push(`}`);
    }
    store = (r) => T.map((t) => `if (cok${t}) { dX[(n${t} * p.C + g * p.Cg + m${r}) * p.HW + pix${t}] = a${r}_${t}; }`).join(' ');
  } else {
    // columns (c, i, j) of the weight; the reduction runs over (n, ho, wo) from kBegin to kEnd
    L.push(...T.map((t) => `let cc${t} = col${t} / p.khw; let ij${t} = col${t} % p.khw; let xo${t} = cc${t} * p.HW;` +
      (pointwise ? '' : ` let di${t} = i32((ij${t} / p.kw) * p.dh) - i32(p.ph); let dj${t} = i32((ij${t} % p.kw) * p.dw) - i32(p.pw);`)));
    L.push(`var n = kBegin / p.P; let pix0 = kBegin % p.P; var ho = pix0 / p.Wo; var wo = pix0 % p.Wo;`);
    L.push(`for (var k = kBegin; k < kEnd; k++) {`);
    L.push(`  let yo = (n * p.O + g * p.Og) * p.P + ho * p.Wo + wo;`);
    L.push(`  let xb = (n * p.C + g * p.Cg) * p.HW;`);
    L.push(...R.map((r) => `  let d${r} = dY[yo + m${r} * p.P];`));
    if (pointwise) {
      L.push(`  let px = ho * p.W + wo;`);
      L.push(...T.map((t) => `  let v${t} = X[xb + xo${t} + px];`));
    } else {
      L.push(`  let hs = i32(ho * p.sh); let ws = i32(wo * p.sw);`);
      L.push(...T.map((t) => `  let h${t} = hs + di${t}; let x${t} = ws + dj${t}; let ok${t} = h${t} >= 0 && h${t} < i32(p.H) && x${t} >= 0 && x${t} < i32(p.W); ` +
        `let v${t} = select(0.0, X[select(0u, xb + xo${t} + u32(h${t}) * p.W + u32(x${t}), ok${t})], ok${t});`));
    }
    L.push(...fmas((r) => `d${r}`, (t) => `v${t}`).map((x) => '  ' + x));
    L.push(`  wo++;`);
    L.push(`  if (wo == p.Wo) { wo = 0u; ho++; if (ho == p.Ho) { ho = 0u; n++; } }`);
    L.push(`}`);
    store = (r) => T.map((t) => `if (cok${t}) { part[split * p.O * p.Ncol + (g * p.Og + m${r}) * p.Ncol + col${t}] = a${r}_${t}; }`).join(' ');
  }
  return directGemmCode({
    TM, TN, decls: bindings(an, bn, cn, bias ? 'read' : null),
    grid: { tilesN: 'p.tilesN', tilesM: 'p.tilesM', groups: 'p.groups', splits: 'p.splits', rows: 'p.M' },
    body: L, store,
  });
}

/** Widest kernel (kw) the row variant unrolls. */
const ROW_MAX_KW = 7;
/** Most output columns per thread in the row variant. */
const ROW_MAX_TN = 16;

/** Columns per thread of the row variant: the row split into the fewest blocks of at most 16, evenly. */
export function rowTN(width: number): number {
  return Math.ceil(width / Math.ceil(width / ROW_MAX_TN));
}

/** True when the row (sliding-window) variant serves this direction and geometry. */
export function rowVariantFits(dir: ConvDir, g: ConvGeom): boolean {
  // square kernels only: SwiftShader did not finish compiling the row kernels of a 3x5 kernel in minutes
  if (dir === 'bwdWeight' || isPointwise(g) || g.kw > ROW_MAX_KW || g.dw !== 1 || g.kh !== g.kw) return false;
  return dir === 'fwd' ? g.sw <= 2 : g.sh === 1 && g.sw === 1;
}

/**
 * The 'row' variant of the direct kernel for stride-1 (along w), dilation-1 rows: each thread owns
 * TM output channels x TN consecutive pixels of ONE output row, so for every (channel, kernel row)
 * the TN·KW input taps it needs are the TN + KW - 1 consecutive values of one input row: they are
 * loaded once into registers and reused KW times (a sliding window), and a kernel row that falls
 * outside the input is skipped as a whole. kw is unrolled (KW is compiled in). Forward (stride 1 or
 * 2 along w: the window is (TN - 1)·stride + KW wide): output rows of Y; data gradient (unit stride):
 * rows of dX gathered from rows of dY with the flipped taps.
 */
export function rowConvCode(dir: 'fwd' | 'bwdData', bias: boolean, TM: number, TN: number, KW: number, SW = 1): string {
  // SW: the forward's stride along w (1 or 2; the data gradient runs with unit stride only)
  const R = [...Array(TM).keys()];
  const T = [...Array(TN).keys()];
  const U = [...Array((TN - 1) * SW + KW).keys()];
  const J = [...Array(KW).keys()];
  const L: string[] = [];
  const fwd = dir === 'fwd';
  // row geometry: the thread's row `orow` (output row for fwd, input row for bwdData) of image n
  const Hout = fwd ? 'p.Ho' : 'p.H';
  const Wout = fwd ? 'p.Wo' : 'p.W';
  L.push(`let wblk = cb % p.wb; let rr = cb / p.wb; let orow = rr % ${Hout}; let n = rr / ${Hout};`);
  L.push(`let w0 = wblk * ${TN}u;`);
  let store: (r: number) => string;
  if (fwd) {
    L.push(...R.map((r) => `let wr${r} = (g * p.Og + m${r}) * p.K;`));
    L.push(`let xb = (n * p.C + g * p.Cg) * p.HW;`);
    L.push(`let hb = i32(orow * p.sh) - i32(p.ph);`);
    L.push(`let ws = i32(w0 * ${SW}u) - i32(p.pw);`);
    L.push(`for (var c = 0u; c < p.Cg; c++) {`);
    L.push(`  for (var i = 0u; i < p.kh; i++) {`);
    L.push(`    let h = hb + i32(i * p.dh);`);
    L.push(`    if (h >= 0 && h < i32(p.H)) {`);
    L.push(`      let rb = xb + c * p.HW + u32(h) * p.W;`);
    L.push(...U.map((u) => `      let x${u} = ws + ${u}; let ok${u} = x${u} >= 0 && x${u} < i32(p.W); let v${u} = select(0.0, X[select(0u, rb + u32(x${u}), ok${u})], ok${u});`));
    L.push(`      let kb = (c * p.kh + i) * ${KW}u;`);
    for (const j of J) {
      L.push(...R.map((r) => `      let w${r}_${j} = Wt[wr${r} + kb + ${j}u];`));
      for (const r of R) for (const t of T) L.push(`      a${r}_${t} = fma(w${r}_${j}, v${t * SW + j}, a${r}_${t});`);
    }
    L.push(`    }`);
    L.push(`  }`);
    L.push(`}`);
    store = (r) => T.map((t) => `if (w0 + ${t}u < p.Wo) { Y[((n * p.O + g * p.Og + m${r}) * p.Ho + orow) * p.Wo + w0 + ${t}u] = a${r}_${t}${bias ? ` + bias[g * p.Og + m${r}]` : ''}; }`).join(' ');
  } else {
    // dX[n, m, orow, w0 + t] += W[o, m, i, j] · dY[n, o, orow + ph - i·dh, w0 + t + pw - j]
    L.push(...R.map((r) => `let wr${r} = (g * p.Og * p.Cg + m${r}) * p.khw;`));
    L.push(`let yb = (n * p.O + g * p.Og) * p.P;`);
    L.push(`let th = i32(orow + p.ph);`);
    L.push(`let ws = i32(w0 + p.pw) - ${KW - 1};`);
    L.push(`for (var o = 0u; o < p.Og; o++) {`);
    L.push(`  for (var i = 0u; i < p.kh; i++) {`);
    L.push(`    let ho = th - i32(i * p.dh);`);
    L.push(`    if (ho >= 0 && ho < i32(p.Ho)) {`);
    L.push(`      let rb = yb + o * p.P + u32(ho) * p.Wo;`);
    // window value u is dY column ws + u; tap j of output t reads column w0 + t + pw - j = ws + (t - j + KW - 1)
    L.push(...U.map((u) => `      let x${u} = ws + ${u}; let ok${u} = x${u} >= 0 && x${u} < i32(p.Wo); let v${u} = select(0.0, dY[select(0u, rb + u32(x${u}), ok${u})], ok${u});`));
    L.push(`      let kb = (o * p.Cg) * p.khw + i * ${KW}u;`);
    for (const j of J) {
      L.push(...R.map((r) => `      let w${r}_${j} = Wt[wr${r} + kb + ${j}u];`));
      for (const r of R) for (const t of T) L.push(`      a${r}_${t} = fma(w${r}_${j}, v${t - j + KW - 1}, a${r}_${t});`);
    }
    L.push(`    }`);
    L.push(`  }`);
    L.push(`}`);
    store = (r) => T.map((t) => `if (w0 + ${t}u < p.W) { dX[((n * p.C + g * p.Cg + m${r}) * p.H + orow) * p.W + w0 + ${t}u] = a${r}_${t}; }`).join(' ');
  }
  const [an, bn, cn] = fwd ? ['Wt', 'X', 'Y'] : ['Wt', 'dY', 'dX'];
  void Wout;
  return directGemmCode({
    TM, TN, decls: bindings(an, bn, cn, bias ? 'read' : null),
    grid: { tilesN: 'p.tilesN', tilesM: 'p.tilesM', groups: 'p.groups', rows: 'p.M' },
    body: L, store,
  });
}

/**
 * Row variant of the weight gradient (stride 1 and dilation 1 along w, kw <= 7): each thread owns
 * TM output channels x one input channel x RH kernel rows (all kh rows when kh·kw <= 16, e.g. 3x3;
 * one row otherwise, e.g. 5x5) x all KW taps, and walks its slice of the N·Ho output rows pixel by
 * pixel: per pixel it loads TM values of dY and RH new input values (one KW-wide window per kernel
 * row slides along), then issues TM·RH·KW FMAs. With `bias`, the same dY values also accumulate
 * the bias gradient (stored by the threads of channel 0, kernel-row block 0), so the conv bias
 * needs no separate reduction. Rows are split over threads; partial sums go to per-split buffers
 * that sumSplits adds in a fixed order (deterministic).
 */
export function rowWeightCode(TM: number, KW: number, RH: number, bias: boolean): string {
  const R = [...Array(TM).keys()];
  const J = [...Array(KW).keys()];
  const A = [...Array(RH).keys()];
  const L: string[] = [];
  const load = (a: number, dst: string, col: string) =>
    `{ let xc = ${col}; let ok = hok${a} && xc >= 0 && xc < i32(p.W); ${dst} = select(0.0, X[select(0u, xr${a} + u32(max(xc, 0)), ok)], ok); }`;
  L.push(`let cr = cb;`, `let rowBegin = split * p.chunk;`);
  L.push(...R.flatMap((r) => A.flatMap((a) => J.map((j) => `var a${r}_${a}_${j} = 0.0;`))));
  if (bias) L.push(...R.map((r) => `var b${r} = 0.0;`));
  L.push(...A.flatMap((a) => J.map((j) => `var v${a}_${j} = 0.0;`)));
  L.push(`let nib = p.kh / ${RH}u;`);
  L.push(`let c = cr / nib; let i0 = (cr % nib) * ${RH}u;`);
  L.push(`let rowEnd = min(p.K, rowBegin + p.chunk);`);
  L.push(`var n = rowBegin / p.Ho; var ho = rowBegin % p.Ho;`);
  L.push(`for (var row = rowBegin; row < rowEnd; row++) {`);
  for (const a of A) {
    L.push(`  let h${a} = i32(ho * p.sh + (i0 + ${a}u) * p.dh) - i32(p.ph);`);
    L.push(`  let hok${a} = h${a} >= 0 && h${a} < i32(p.H);`);
    L.push(`  let xr${a} = (n * p.C + g * p.Cg + c) * p.HW + u32(max(h${a}, 0)) * p.W;`);
  }
  L.push(`  let yr = (n * p.O + g * p.Og) * p.P + ho * p.Wo;`);
  for (const a of A) for (let j = 0; j < KW - 1; j++) L.push(`  ${load(a, `v${a}_${j + 1}`, `${j} - i32(p.pw)`)}`);
  L.push(`  for (var wo = 0u; wo < p.Wo; wo++) {`);
  for (const a of A) {
    L.push(...J.slice(0, KW - 1).map((j) => `    v${a}_${j} = v${a}_${j + 1};`));
    L.push(`    ${load(a, `v${a}_${KW - 1}`, `i32(wo) - i32(p.pw) + ${KW - 1}`)}`);
  }
  L.push(...R.map((r) => `    let d${r} = dY[yr + m${r} * p.P + wo];`));
  for (const r of R) for (const a of A) for (const j of J) L.push(`    a${r}_${a}_${j} = fma(d${r}, v${a}_${j}, a${r}_${a}_${j});`);
  if (bias) L.push(...R.map((r) => `    b${r} += d${r};`));
  L.push(`  }`);
  L.push(`  ho++;`);
  L.push(`  if (ho == p.Ho) { ho = 0u; n++; }`);
  L.push(`}`);
  const store = (r: number) => {
    const st = A.flatMap((a) => J.map((j) => `part[pb + c * p.khw + (i0 + ${a}u) * ${KW}u + ${j}u] = a${r}_${a}_${j};`)).join(' ');
    return `let pb = split * p.O * p.Ncol + (g * p.Og + m${r}) * p.Ncol; ${st}` + (bias ? ` if (cr == 0u) { bpart[split * p.O + g * p.Og + m${r}] = b${r}; }` : '');
  };
  return directGemmCode({
    TM, TN: 0, ownAccumulators: true,
    decls: bindings('dY', 'X', 'part', bias ? 'read_write' : null, 'bpart'),
    grid: { tilesN: 'p.tilesN', tilesM: 'p.tilesM', groups: 'p.groups', splits: 'p.splits', rows: 'p.M' },
    body: L, store,
  });
}

/** Kernel rows per thread of the row weight gradient: all of them when kh·kw <= 16 (3x3), else one. */
export function rowWeightRH(g: ConvGeom): number {
  return g.kh * g.kw <= 16 ? g.kh : 1;
}

/** Row-variant weight gradient: [splits, rows per split] over the N·Ho output rows. */
export function rowWeightSplits(g: ConvGeom, TM = directTM(g.O / g.groups)): [number, number] {
  const Og = g.O / g.groups;
  const rows = g.N * g.Ho;
  const threads = (g.C / g.groups) * (g.kh / rowWeightRH(g)) * Math.ceil(Og / TM) * g.groups;
  const { splits, chunk } = planSplitK(rows, threads, DIRECT_TARGET_THREADS, 1);
  return [splits, chunk];
}

function rowWeightFits(g: ConvGeom): boolean {
  return !isPointwise(g) && g.kw <= ROW_MAX_KW && g.sw === 1 && g.dw === 1 && g.kh === g.kw;
}

/** Threads the direct weight gradient aims for before it splits its reduction. */
const DIRECT_TARGET_THREADS = 2048;
/** Smallest reduction slice per split of the direct weight gradient. */
const DIRECT_MIN_CHUNK = 64;

function launchDirect(
  gpu: Gpu, dir: ConvDir, g: ConvGeom, bufs: GBuf[], bias: boolean,
  M: number, Ncol: number, K: number, splits: number, chunk: number, what: string, row: boolean, lite = false,
): void {
  const TM = lite ? LITE_TM : directTM(M);
  if (row && dir !== 'bwdWeight') {
    const fwd = dir === 'fwd';
    const [rows, width] = fwd ? [g.Ho, g.Wo] : [g.H, g.W];
    const TN = lite ? Math.min(LITE_TN, rowTN(width)) : rowTN(width);
    const wb = Math.ceil(width / TN);
    const SW = fwd ? g.sw : 1;
    const rkey = `conv:row:${dir}:${bias ? 'b' : 'nb'}:tm${TM}:tn${TN}:kw${g.kw}:sw${SW}`;
    const rpipe = gpu.pipeline(rkey, () => rowConvCode(dir, bias, TM, TN, g.kw, SW));
    const tilesN = g.N * rows * wb;
    const tilesM = Math.ceil(M / TM);
    const threads = tilesN * tilesM * g.groups;
    gpu.dispatch(rpipe, bufs, uniforms(g, M, Ncol, K, tilesN, tilesM, chunk, 1, wb), grid1d(Math.ceil(threads / DWG), 1), what);
    return;
  }
  const pw = isPointwise(g);
  const unit = g.sh === 1 && g.sw === 1;
  const s2 = g.sh === 2 && g.sw === 2;
  const key = `conv:direct:${dir}:${pw ? 'pw' : unit ? 's1' : s2 ? 's2' : 'gen'}:${bias ? 'b' : 'nb'}:tm${TM}`;
  const pipe = gpu.pipeline(key, () => directConvCode(dir, pw, bias, unit, TM, s2));
  const tilesN = Math.ceil(Ncol / DTN);
  const tilesM = Math.ceil(M / TM);
  const threads = tilesN * tilesM * g.groups * splits;
  gpu.dispatch(pipe, bufs, uniforms(g, M, Ncol, K, tilesN, tilesM, chunk, splits), grid1d(Math.ceil(threads / DWG), 1), what);
}

/** Check the geometry (positive sizes, groups dividing C and O, output at least 1x1). */
export function checkGeom(op: string, g: ConvGeom): void {
  const pos = ['N', 'C', 'H', 'W', 'O', 'kh', 'kw', 'sh', 'sw', 'dh', 'dw', 'groups'] as const;
  for (const k of pos) {
    if (!Number.isInteger(g[k]) || g[k] < 1) throw shapeError(op, `${k} must be a positive integer, got ${g[k]}`);
  }
  if (!Number.isInteger(g.ph) || !Number.isInteger(g.pw) || g.ph < 0 || g.pw < 0) {
    throw shapeError(op, `padding must be integers >= 0, got [${g.ph},${g.pw}]`);
  }
  if (g.C % g.groups || g.O % g.groups) {
    throw shapeError(op, `groups (${g.groups}) must divide both C (${g.C}) and O (${g.O})`);
  }
  if (g.Ho !== convOutSize(g.H, g.kh, g.sh, g.ph, g.dh) || g.Wo !== convOutSize(g.W, g.kw, g.sw, g.pw, g.dw) || g.Ho < 1 || g.Wo < 1) {
    throw shapeError(op, `inconsistent output size ${g.Ho}x${g.Wo} for input ${g.H}x${g.W}`);
  }
}

function uniforms(g: ConvGeom, M: number, Ncol: number, K: number, tilesN: number, tilesM: number, chunk: number, splits = 1, wb = 0): Uint8Array {
  return new Uniforms()
    .u32(g.N).u32(g.C).u32(g.H).u32(g.W)
    .u32(g.O).u32(g.kh).u32(g.kw).u32(g.kh * g.kw)
    .u32(g.Ho).u32(g.Wo).u32(g.Ho * g.Wo).u32(g.H * g.W)
    .u32(g.sh).u32(g.sw).u32(g.ph).u32(g.pw)
    .u32(g.dh).u32(g.dw).u32(g.groups).u32(g.C / g.groups)
    .u32(g.O / g.groups).u32(M).u32(Ncol).u32(K)
    .u32(tilesN).u32(tilesM).u32(chunk).u32(splits)
    .u32(wb).u32(0).u32(0).u32(0)
    .done();
}

function tileGrid(tiles: number): [number, number] {
  return grid1d(tiles, 1);
}

function needBytes(op: string, b: GBuf, n: number, name: string): void {
  if (b.size < n * 4) throw shapeError(op, `${name} buffer holds ${b.size} bytes, needs ${n * 4}`);
}

// ------------------------------------------------------------------ im2col / col2im + matmul ('gemm')

/**
 * The 'gemm' variant (forward without bias, data and weight gradients; groups 1, not pointwise): the convolution
 * as a batched matrix product run by the tuned matmul kernels (src/kernels/matmul.ts), with the
 * patches in a scratch buffer cols [N, K = C·kh·kw, P = Ho·Wo]:
 *   forward        cols = im2col(x); y_n [O × P] = W [O × K] · cols_n
 *   data gradient  cols_n = Wᵀ [K × O] · dy_n [O × P]; dx = col2im(cols) (a gather: each input pixel
 *                  adds the columns of the output pixels whose window covers it)
 *   weight gradient cols = im2col(x); dw_n [O × K] = dy_n · cols_nᵀ; dw = Σ_n dw_n (in order)
 * The data gradient's GEMM does only the multiply-adds that exist: the gather form of the other
 * variants walks every kernel tap of every input pixel, most of which miss at stride 2 (3 of 4).
 * Costs a scratch buffer of N·K·P words and two passes over it.
 */
const colGeom = `
// the thread's (k, p) of image n: k = (c·kh + ky)·kw + kx on the grid's y, p = oy·Wo + ox
fn tapOf(k: u32) -> vec3u {
  let c = k / p.khw;
  let r = k - c * p.khw;
  let ky = r / p.kw;
  return vec3u(c, ky, r - ky * p.kw);
}`;

const colBindings = (src: string, dst: string) => `${STRUCT}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> ${src}: array<f32>;
@group(0) @binding(2) var<storage, read_write> ${dst}: array<f32>;`;

const im2colCode = () => /* wgsl */ `
${colBindings('X', 'cols')}
${colGeom}
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let q = wid.x * 64u + lid;
  if (q >= p.P) { return; }
  let k = wid.y;
  let n = wid.z;
  let t = tapOf(k);
  let oy = q / p.Wo;
  let ox = q - oy * p.Wo;
  let iy = i32(oy * p.sh + t.y * p.dh) - i32(p.ph);
  let ix = i32(ox * p.sw + t.z * p.dw) - i32(p.pw);
  var v = 0.0;
  if (iy >= 0 && ix >= 0 && iy < i32(p.H) && ix < i32(p.W)) {
    v = X[((n * p.C + t.x) * p.H + u32(iy)) * p.W + u32(ix)];
  }
  cols[(n * p.K + k) * p.P + q] = v;
}`;

const col2imCode = () => /* wgsl */ `
${colBindings('cols', 'dX')}
// output index o with o·s = t (t = i + pad − k·dilation), or -1 (stride 1 and 2 without a division)
fn outIdx(t: i32, s: u32, n: u32) -> i32 {
  if (t < 0) { return -1; }
  var o = t;
  if (s == 2u) {
    if ((t & 1) != 0) { return -1; }
    o = t >> 1u;
  } else if (s != 1u) {
    if (t % i32(s) != 0) { return -1; }
    o = t / i32(s);
  }
  return select(-1, o, o < i32(n));
}
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let q = wid.x * 64u + lid;
  if (q >= p.HW) { return; }
  let c = wid.y;
  let n = wid.z;
  let iy = q / p.W;
  let ix = q - iy * p.W;
  var acc = 0.0;
  if (p.dh == 1u && p.dw == 1u) {
    // undilated (uniform branch): only the taps k ≡ i + pad (mod stride) reach an output pixel; the
    // first is ky0 = (iy + ph) mod sh, output row oy0 = (iy + ph − ky0) / sh, then a step of sh taps is
    // one output row back (one division per axis instead of a test per tap)
    let ty = iy + p.ph;
    let tx = ix + p.pw;
    let ky0 = ty % p.sh;
    let kx0 = tx % p.sw;
    let oy0 = i32(ty / p.sh);
    let ox0 = i32(tx / p.sw);
    var oy = oy0;
    for (var ky = ky0; ky < p.kh && oy >= 0; ky += p.sh) {
      if (oy < i32(p.Ho)) {
        var ox = ox0;
        for (var kx = kx0; kx < p.kw && ox >= 0; kx += p.sw) {
          if (ox < i32(p.Wo)) { acc += cols[(n * p.K + (c * p.kh + ky) * p.kw + kx) * p.P + u32(oy) * p.Wo + u32(ox)]; }
          ox -= 1;
        }
      }
      oy -= 1;
    }
    dX[(n * p.C + c) * p.HW + q] = acc;
    return;
  }
  for (var ky = 0u; ky < p.kh; ky++) {
    let oy = outIdx(i32(iy + p.ph) - i32(ky * p.dh), p.sh, p.Ho);
    if (oy < 0) { continue; }
    for (var kx = 0u; kx < p.kw; kx++) {
      let ox = outIdx(i32(ix + p.pw) - i32(kx * p.dw), p.sw, p.Wo);
      if (ox < 0) { continue; }
      let k = (c * p.kh + ky) * p.kw + kx;
      acc += cols[(n * p.K + k) * p.P + u32(oy) * p.Wo + u32(ox)];
    }
  }
  dX[(n * p.C + c) * p.HW + q] = acc;
}`;

/** Where the 'gemm' variant applies: groups 1, not pointwise, no bias in the forward, cols (and the weight gradient's per-image partials) within one binding. */
export function gemmFits(gpu: Gpu, dir: ConvDir, g: ConvGeom, bias: boolean): boolean {
  if ((dir === 'fwd' && bias) || g.groups !== 1 || isPointwise(g)) return false;
  const words = Math.max(g.N * g.C * g.kh * g.kw * g.Ho * g.Wo, dir === 'bwdWeight' ? g.N * g.O * g.C * g.kh * g.kw : 0);
  const max = gpu.limits.maxComputeWorkgroupsPerDimension;
  return words * 4 <= gpu.maxBindingSize && g.N <= max && g.C * g.kh * g.kw <= max && Math.max(g.C, Math.ceil(g.H * g.W / 64), Math.ceil(g.Ho * g.Wo / 64)) <= max;
}

function launchColGemm(gpu: Gpu, dir: ConvDir, g: ConvGeom, bufs: GBuf[], what: string): void {
  if (!gemmFits(gpu, dir, g, dir === 'fwd' && bufs.length > 3)) throw new Error(`webqat: ${what}: internal: the 'gemm' conv variant does not apply here`);
  const K = g.C * g.kh * g.kw;
  const P = g.Ho * g.Wo;
  const cols = gpu.pool.acquire(g.N * K * P * 4, `${what} patches`);
  const u = uniforms(g, g.O, P, K, 0, 0, 0);
  const [w, a, out] = bufs; // fwd: w, x, y; bwdData: w, dy, dx; bwdWeight: dy, x, per-image dw [N, O, K]
  if (dir === 'fwd') {
    gpu.dispatch(gpu.pipeline('conv:im2col', im2colCode), [a, cols], u, [Math.ceil(P / 64), K, g.N], what);
    mm.matmul(gpu, { a: w, b: cols, c: out, batch: g.N, M: g.O, N: P, K, batchedA: false, batchedB: true, what });
  } else if (dir === 'bwdWeight') {
    gpu.dispatch(gpu.pipeline('conv:im2col', im2colCode), [a, cols], u, [Math.ceil(P / 64), K, g.N], what);
    mm.matmul(gpu, { a: w, b: cols, c: out, batch: g.N, M: g.O, N: K, K: P, transB: true, batchedA: true, batchedB: true, what });
  } else {
    mm.matmul(gpu, { a: w, b: a, c: cols, batch: g.N, M: K, N: P, K: g.O, transA: true, batchedA: false, batchedB: true, what });
    gpu.dispatch(gpu.pipeline('conv:col2im', col2imCode), [cols, out], u, [Math.ceil(g.H * g.W / 64), g.C, g.N], what);
  }
  gpu.pool.release(cols);
}

function launchGemm(
  gpu: Gpu, dir: ConvDir, g: ConvGeom, bufs: GBuf[], bias: boolean,
  M: number, Ncol: number, K: number, splits: number, chunk: number, what: string, kind: ConvKernelKind,
): void {
  if (kind === 'naive') {
    launchNaive(gpu, dir, g, bufs, bias, what);
    return;
  }
  if (kind === 'gemm') {
    launchColGemm(gpu, dir, g, bufs, what);
    return;
  }
  if (kind !== 'tiled') {
    launchDirect(gpu, dir, g, bufs, bias, M, Ncol, K, splits, chunk, what, kind === 'row' || kind === 'lite', kind === 'lite');
    return;
  }
  const t = convTile(M);
  const pw = isPointwise(g);
  const key = `conv:${dir}:${pw ? 'pw' : 'gen'}:${bias ? 'b' : 'nb'}:bm${t.BM}`;
  const pipe = gpu.pipeline(key, () => convCode(dir, pw, bias, t));
  const tilesN = Math.ceil(Ncol / t.BN);
  const tilesM = Math.ceil(M / t.BM);
  const [x, y] = tileGrid(tilesN * tilesM);
  gpu.dispatch(pipe, bufs, uniforms(g, M, Ncol, K, tilesN, tilesM, chunk), [x, y, g.groups * splits], what);
}

/** y[N, O, Ho, Wo] = conv(x[N, C, H, W], w[O, C/groups, kh, kw]) (+ bias[O]). */
export function conv2dForward(gpu: Gpu, g: ConvGeom, x: GBuf, w: GBuf, bias: GBuf | null, y: GBuf, what = 'conv2d', kind?: ConvKernelKind): void {
  checkGeom(what, g);
  const Cg = g.C / g.groups;
  const Og = g.O / g.groups;
  needBytes(what, x, g.N * g.C * g.H * g.W, 'x');
  needBytes(what, w, g.O * Cg * g.kh * g.kw, 'w');
  needBytes(what, y, g.N * g.O * g.Ho * g.Wo, 'y');
  if (bias) needBytes(what, bias, g.O, 'bias');
  const K = Cg * g.kh * g.kw;
  const bufs = bias ? [w, x, y, bias] : [w, x, y];
  kind ??= convKernelFor(gpu, 'fwd', g, !!bias);
  launchGemm(gpu, 'fwd', g, bufs, !!bias, Og, g.N * g.Ho * g.Wo, K, 1, K, what, kind);
}

/** dx[N, C, H, W] = gradient of the convolution with respect to its input, given dy[N, O, Ho, Wo]. */
export function conv2dBackwardData(gpu: Gpu, g: ConvGeom, dy: GBuf, w: GBuf, dx: GBuf, what = 'conv2d backward', kind?: ConvKernelKind): void {
  checkGeom(what, g);
  const Cg = g.C / g.groups;
  const Og = g.O / g.groups;
  needBytes(what, dy, g.N * g.O * g.Ho * g.Wo, 'dy');
  needBytes(what, w, g.O * Cg * g.kh * g.kw, 'w');
  needBytes(what, dx, g.N * g.C * g.H * g.W, 'dx');
  const K = Og * g.kh * g.kw;
  kind ??= convKernelFor(gpu, 'bwdData', g, false);
  launchGemm(gpu, 'bwdData', g, [w, dy, dx], false, Cg, g.N * g.H * g.W, K, 1, K, what, kind);
}

/** Work-group count the weight gradient aims for before splitting its reduction. */
const TARGET_GROUPS = 64;
/** Smallest reduction slice per split of the tiled weight gradient. */
const MIN_CHUNK = 512;

/** How the weight-gradient reduction over N·Ho·Wo is split for a kernel family: [splits, chunk]. */
export function weightSplits(g: ConvGeom, kind: 'tiled' | 'direct' | 'row' = 'tiled'): [number, number] {
  const Og = g.O / g.groups;
  const Ncol = (g.C / g.groups) * g.kh * g.kw;
  const K = g.N * g.Ho * g.Wo;
  if (kind === 'direct') {
    const threads = Math.ceil(Ncol / DTN) * Math.ceil(Og / directTM(Og)) * g.groups;
    const { splits, chunk } = planSplitK(K, threads, DIRECT_TARGET_THREADS, DIRECT_MIN_CHUNK);
    return [splits, chunk];
  }
  const t = convTile(Og);
  const tiles = Math.ceil(Ncol / t.BN) * Math.ceil(Og / t.BM) * g.groups;
  const { splits, chunk } = planSplitK(K, tiles, TARGET_GROUPS, MIN_CHUNK, t.BK);
  return [splits, chunk];
}

/**
 * dw[O, C/groups, kh, kw] = gradient of the convolution with respect to its weight. Deterministic.
 * With `db`, also the bias gradient db[O] = Σ dy over N, Ho, Wo (fused into the row kernel on
 * lavapipe, a separate reduction otherwise).
 */
export function conv2dBackwardWeight(
  gpu: Gpu, g: ConvGeom, dy: GBuf, x: GBuf, dw: GBuf, what = 'conv2d backward', db: GBuf | null = null, kind?: ConvKernelKind,
): void {
  checkGeom(what, g);
  const Cg = g.C / g.groups;
  const Og = g.O / g.groups;
  const Ncol = Cg * g.kh * g.kw;
  const nW = g.O * Ncol;
  needBytes(what, dy, g.N * g.O * g.Ho * g.Wo, 'dy');
  needBytes(what, x, g.N * g.C * g.H * g.W, 'x');
  needBytes(what, dw, nW, 'dw');
  if (db) needBytes(what, db, g.O, 'db');
  const K = g.N * g.Ho * g.Wo;
  kind ??= convKernelFor(gpu, 'bwdWeight', g, !!db);
  const sum = (part: GBuf, out: GBuf, n: number, splits: number) => sumSplits(gpu, part, out, n, splits, what);
  if (kind === 'naive' || kind === 'gemm') {
    if (kind === 'naive') launchNaive(gpu, 'bwdWeight', g, [dy, x, dw], false, what);
    else {
      // dw = Σ_n dy_n [O × P] · cols_nᵀ [P × K]: per-image products, then their sum (fixed order)
      const part = gpu.pool.acquire(g.N * nW * 4, `${what} partials`);
      launchColGemm(gpu, 'bwdWeight', g, [dy, x, part], what);
      sum(part, dw, nW, g.N);
      gpu.pool.release(part);
    }
    if (db) rk.reduce(gpu, 'sum', dy, [g.N, g.O, g.Ho, g.Wo], [0, 2, 3], db);
    return;
  }
  if (kind === 'row' || kind === 'lite') {
    const TM = kind === 'lite' ? LITE_TM : directTM(Og);
    const [splits, chunk] = rowWeightSplits(g, TM);
    const RH = rowWeightRH(g);
    const tilesN = Cg * (g.kh / RH);
    const tilesM = Math.ceil(Og / TM);
    const pipe = gpu.pipeline(`conv:row:bwdWeight:${db ? 'b' : 'nb'}:tm${TM}:kw${g.kw}:rh${RH}`, () => rowWeightCode(TM, g.kw, RH, !!db));
    const part = splits > 1 ? gpu.pool.acquire(splits * nW * 4, `${what} partials`) : dw;
    const bpart = db && splits > 1 ? gpu.pool.acquire(splits * g.O * 4, `${what} bias partials`) : db;
    const threads = tilesN * tilesM * g.groups * splits;
    const bufs = bpart ? [dy, x, part, bpart] : [dy, x, part];
    gpu.dispatch(pipe, bufs, uniforms(g, Og, Ncol, g.N * g.Ho, tilesN, tilesM, chunk, splits), grid1d(Math.ceil(threads / DWG), 1), what);
    if (splits > 1) {
      sum(part, dw, nW, splits);
      gpu.pool.release(part);
      if (db && bpart) {
        sum(bpart, db, g.O, splits);
        gpu.pool.release(bpart);
      }
    }
    return;
  }
  const [splits, chunk] = weightSplits(g, kind);
  if (splits === 1) {
    launchGemm(gpu, 'bwdWeight', g, [dy, x, dw], false, Og, Ncol, K, 1, chunk, what, kind);
  } else {
    const part = gpu.pool.acquire(splits * nW * 4, `${what} partials`);
    launchGemm(gpu, 'bwdWeight', g, [dy, x, part], false, Og, Ncol, K, splits, chunk, what, kind);
    sum(part, dw, nW, splits);
    gpu.pool.release(part);
  }
  if (db) rk.reduce(gpu, 'sum', dy, [g.N, g.O, g.Ho, g.Wo], [0, 2, 3], db);
}
