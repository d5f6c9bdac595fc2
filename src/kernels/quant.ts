/**
 * Quantization kernels (ALGORITHMS §1, §3, §9): deterministic row reductions (per layer or per
 * output channel: mean|w|, max|w|, max|tanh w|, thresholded means, STE gradient sums), fused
 * element-wise quantizers that read their scale(s) from small GPU tensors (no host readback), the
 * matching straight-through backward masks, and the SQ regularizer pass.
 *
 * Rows: a weight tensor [O, ...] is viewed as `rows` x `rowLen` (rows = O per output channel, 1 per
 * layer). A parameter tensor (scale, threshold statistic, step ...) is either one value or one value
 * per row; the launcher passes a per-parameter flag so both kinds can be mixed in one dispatch.
 *
 * The reductions run on the row-reduction engine of rowreduce.ts (shared with the shift kernels).
 */
import { grid1d } from '../gpu/index.ts';
import { type GBuf, type Gpu, mainSig, flatIndex, Uniforms } from './common.ts';
import { type Binding, PSTRUCT, rowReduce, type RowReduceSpec } from './rowreduce.ts';

// ------------------------------------------------------------------------------ statistics

export type StatKind = 'absMean' | 'absMax' | 'tanhAbsMax' | 'maskedAbsMean';

const STAT_SPECS: Record<StatKind, RowReduceSpec> = {
  absMean: {
    key: 'quant:stat:absMean', combine: 'sum',
    in1: [{ name: 'x', type: 'f32' }], contrib: '  return vec4f(abs(x[r * p.rowLen + j]), 0.0, 0.0, 0.0);',
    in2: [{ name: 'y', type: 'f32', rw: true }], finalize: '  y[r] = acc.x / f32(max(p.rowLen, 1u));',
  },
  absMax: {
    key: 'quant:stat:absMax', combine: 'max',
    in1: [{ name: 'x', type: 'f32' }], contrib: '  return vec4f(abs(x[r * p.rowLen + j]));',
    in2: [{ name: 'y', type: 'f32', rw: true }], finalize: '  y[r] = max(acc.x, 0.0);',
  },
  tanhAbsMax: {
    key: 'quant:stat:tanhAbsMax', combine: 'max',
    in1: [{ name: 'x', type: 'f32' }], contrib: '  return vec4f(abs(tanh(clamp(x[r * p.rowLen + j], -30.0, 30.0))));',
    in2: [{ name: 'y', type: 'f32', rw: true }], finalize: '  y[r] = max(acc.x, 0.0);',
  },
  // mean of |x| over |x| > factor · T[row or 0]  (U(0): T is per row; p.f.x: factor); 0 if empty
  maskedAbsMean: {
    key: 'quant:stat:maskedAbsMean', combine: 'sum',
    in1: [{ name: 'x', type: 'f32' }, { name: 'T', type: 'f32' }],
    contrib: `  let a = abs(x[r * p.rowLen + j]);
  let thr = p.f.x * T[select(0u, r, U(0u) == 1u)];
  return select(vec4f(0.0), vec4f(a, 1.0, 0.0, 0.0), a > thr);`,
    in2: [{ name: 'y', type: 'f32', rw: true }], finalize: '  y[r] = select(0.0, acc.x / max(acc.y, 1.0), acc.y > 0.0);',
  },
};

/**
 * Per-row statistic of x viewed as [rows, rowLen] into y [rows]. `threshold` (maskedAbsMean only)
 * holds one value or one per row; the mask is |x| > factor · threshold.
 */
export function stat(
  gpu: Gpu, kind: StatKind, x: GBuf, rows: number, rowLen: number, y: GBuf,
  threshold?: { buf: GBuf; perRow: boolean; factor: number },
): void {
  const spec = STAT_SPECS[kind];
  if (kind === 'maskedAbsMean') {
    if (!threshold) throw new Error('webqat: maskedAbsMean: a threshold tensor is required');
    rowReduce(gpu, spec, rows, rowLen, [x, threshold.buf], [y], [threshold.perRow ? 1 : 0], [threshold.factor], kind);
  } else {
    rowReduce(gpu, spec, rows, rowLen, [x], [y], [], [], kind);
  }
}

// ------------------------------------------------------------------------------ element-wise maps

/** A parameter tensor of a fused map: its buffer and whether it holds one value per row. */
export interface Param {
  buf: GBuf;
  perRow: boolean;
}

/**
 * Forward quantizers. Each is a WGSL expression of `v` (the element), `P0(c)..P3(c)` (parameter
 * tensors at row c) and `p.f` / `p.f2` / `U(k)` (scalars), evaluated in a body where `c` is the row.
 */
export const QFWD = {
  // p.f.x = levels L (0: clip only)
  dorefaAct: { params: 0, body: 'let cl = clamp(v, 0.0, 1.0); return select(cl, round(cl * p.f.x) / p.f.x, p.f.x > 0.0);' },
  // P0 = max|tanh w|; p.f.x = L
  dorefaWeight: {
    params: 1,
    body: 'let m = max(P0(c), 1e-30); let t = tanh(clamp(v, -30.0, 30.0)); return 2.0 * round((t / (2.0 * m) + 0.5) * p.f.x) / p.f.x - 1.0;',
  },
  // P0 = scale E (mean|w|)
  binary: { params: 1, body: 'return P0(c) * sgnStar(v);' },
  // P0 = mean|w| (Δ = p.f.x · P0), P1 = α
  ternary: { params: 2, body: 'return select(0.0, P1(c) * sign(v), abs(v) > p.f.x * P0(c));' },
  // P0 = max|w| (Δ = p.f.x · P0), P1 = Wp, P2 = Wn
  ttq: { params: 3, body: 'let d = p.f.x * P0(c); return select(select(0.0, -P2(c), v < -d), P1(c), v > d);' },
  // P0 = α; p.f.x = L
  pact: { params: 1, body: 'let a = P0(c); let y = clamp(v, 0.0, a); return round(y * p.f.x / a) * a / p.f.x;' },
  // P0 = s; p.f.x = Qn, p.f.y = Qp
  lsq: { params: 1, body: 'let s = P0(c); return round(clamp(v / s, -p.f.x, p.f.y)) * s;' },
  // p.f.x = 2^f, p.f.y = lo, p.f.z = hi
  fixed: { params: 0, body: 'return clamp(round(v * p.f.x), p.f.y, p.f.z) / p.f.x;' },
  // signed log: p.f.x = m (levels per octave), p.f.y = top exponent code m·(FSR−1), p.f.z = lowest kept code
  log: {
    params: 0,
    body: `let a = abs(v);
  if (a == 0.0) { return 0.0; }
  let e = round(p.f.x * log2(a));
  if (e <= p.f.z - 1.0) { return 0.0; }
  return sign(v) * exp2(min(e, p.f.y) / p.f.x);`,
  },
  // SQ: P0 = α, P1 = β; U(4) = p; 0 if |w| < α/(1 + tan(β)^{1/p}) else α·sign*(w)
  sq: { params: 2, body: 'let a = P0(c); return select(a * sgnStar(v), 0.0, abs(v) < sqThreshold(a, P1(c)));' },
} as const;
export type QFwdMode = keyof typeof QFWD;

/** Backward masks / derivatives: expression of v, g and parameters, like QFWD. */
export const QBWD = {
  // p.f.x ≤ v ≤ p.f.y
  throughClip: { params: 0, body: 'return select(0.0, g, v >= p.f.x && v <= p.f.y);' },
  // |v| ≤ p.f.x
  clipped: { params: 0, body: 'return select(0.0, g, abs(v) <= p.f.x);' },
  // P0 = m: g·(1 − t²)/m
  dorefaWeight: { params: 1, body: 'let t = tanh(clamp(v, -30.0, 30.0)); return g * (1.0 - t * t) / max(P0(c), 1e-30);' },
  // P0 = max|w|, P1 = Wp, P2 = Wn (Δ = p.f.x · P0)
  ttq: { params: 3, body: 'let d = p.f.x * P0(c); return g * select(select(1.0, P2(c), v < -d), P1(c), v > d);' },
  // P0 = α: 0 ≤ v < α
  pact: { params: 1, body: 'return select(0.0, g, v >= 0.0 && v < P0(c));' },
  // P0 = s: −Qn < v/s < Qp
  lsq: { params: 1, body: 'let u = v / P0(c); return select(0.0, g, u > -p.f.x && u < p.f.y);' },
  // SQ clipped STE: P0 = α: |v| ≤ p.f.x · α
  sq: { params: 1, body: 'return select(0.0, g, abs(v) <= p.f.x * P0(c));' },
} as const;
export type QBwdMode = keyof typeof QBWD;

/** SQ: a layer with tan β at or above this is binary (its quantizer threshold is 0). */
export const SQ_TAN_BINARY = 100;

/** tan(β)^{1/p} based zero-basin threshold (p = U(4)); the quantizer's is 0 once binary. */
const SQ_HELPERS = `
fn tanPow(beta: f32) -> f32 { let t = tan(beta); return select(t, sqrt(max(t, 0.0)), U(4u) == 2u); }
fn sqThreshold(a: f32, beta: f32) -> f32 { return select(a / (1.0 + tanPow(beta)), 0.0, tan(beta) >= ${SQ_TAN_BINARY.toFixed(1)}); }`;

function paramDecls(n: number, first: number): string {
  let s = '';
  for (let k = 0; k < n; k++) {
    s += `@group(0) @binding(${first + k}) var<storage, read> A${k}: array<f32>;\n`;
    s += `fn P${k}(c: u32) -> f32 { return A${k}[select(0u, c, U(${k}u) == 1u)]; }\n`;
  }
  return s;
}

const mapCode = (body: string, nParams: number, withGrad: boolean) => /* wgsl */ `
struct P { n: u32, rowLen: u32, pad0: u32, pad1: u32, u: array<vec4u, 2>, f: vec4f, f2: vec4f }
@group(0) @binding(0) var<uniform> p: P;
fn U(k: u32) -> u32 { return p.u[k / 4u][k % 4u]; }
fn sgnStar(v: f32) -> f32 { return select(-1.0, 1.0, v >= 0.0); }
${SQ_HELPERS}
@group(0) @binding(1) var<storage, read> X: array<f32>;
${withGrad ? '@group(0) @binding(2) var<storage, read> G: array<f32>;' : ''}
${paramDecls(nParams, withGrad ? 3 : 2)}
@group(0) @binding(${nParams + (withGrad ? 3 : 2)}) var<storage, read_write> Y: array<f32>;
fn f(v: f32, ${withGrad ? 'g: f32, ' : ''}c: u32) -> f32 {
  ${body}
}
${mainSig()} {
  ${flatIndex()}
  if (i >= p.n) { return; }
  Y[i] = f(X[i], ${withGrad ? 'G[i], ' : ''}i / max(p.rowLen, 1u));
}`;

function mapUniforms(n: number, rowLen: number, params: readonly Param[], f: readonly number[], u: readonly number[]): Uint8Array {
  const flags = params.map((q) => (q.perRow ? 1 : 0));
  const uu = [0, 0, 0, 0, 0, 0, 0, 0];
  for (let k = 0; k < flags.length; k++) uu[k] = flags[k];
  for (let k = 0; k < u.length; k++) uu[4 + k] = u[k];
  const uni = new Uniforms().u32(n).u32(rowLen).u32(0).u32(0).arr8(uu);
  for (let k = 0; k < 8; k++) uni.f32(f[k] ?? 0);
  return uni.done();
}

/**
 * y = Q(x) for x viewed as [n / rowLen, rowLen]. `f`: up to 8 f32 scalars (p.f, p.f2); `u`: up to
 * 4 u32 scalars, read as U(4)..U(7) (U(0)..U(3) are the per-row flags of the parameters).
 */
export function quantForward(
  gpu: Gpu, mode: QFwdMode, x: GBuf, y: GBuf, n: number, rowLen: number,
  params: readonly Param[], f: readonly number[] = [], u: readonly number[] = [],
): void {
  const spec = QFWD[mode];
  if (params.length !== spec.params) throw new Error(`webqat: quant ${mode}: internal: ${params.length} parameters, expected ${spec.params}`);
  const pipe = gpu.pipeline(`quant:fwd:${mode}`, () => mapCode(spec.body, spec.params, false));
  gpu.dispatch(pipe, [x, ...params.map((q) => q.buf), y], mapUniforms(n, rowLen, params, f, u), grid1d(n, 256), mode);
}

/** gx = STE backward of `mode` at x given the upstream gradient g. */
export function quantBackward(
  gpu: Gpu, mode: QBwdMode, x: GBuf, g: GBuf, gx: GBuf, n: number, rowLen: number,
  params: readonly Param[], f: readonly number[] = [], u: readonly number[] = [],
): void {
  const spec = QBWD[mode];
  if (params.length !== spec.params) throw new Error(`webqat: quant ${mode} backward: internal: ${params.length} parameters, expected ${spec.params}`);
  const pipe = gpu.pipeline(`quant:bwd:${mode}`, () => mapCode(spec.body, spec.params, true));
  gpu.dispatch(pipe, [x, g, ...params.map((q) => q.buf), gx], mapUniforms(n, rowLen, params, f, u), grid1d(n, 256), `${mode} backward`);
}

// ------------------------------------------------------------------------------ gradient sums

/**
 * Learnable-parameter gradients of the quantizers: per-row sums of an expression of (v, g) with
 * parameters T0..T2 (index select(0, r, U(k) == 1)). Outputs `y0` (and `y1` for TTQ) per row,
 * multiplied by p.f.w (a gradient scale, e.g. LSQ's 1/sqrt(N·Qp)).
 */
const GSUM = {
  // T0 = max|w| (Δ = p.f.x · T0): (Σ g·1[v > Δ], −Σ g·1[v < −Δ])
  ttq: { params: 1, outs: 2, expr: 'let d = p.f.x * T(0u, r); return vec4f(select(0.0, g, v > d), select(0.0, -g, v < -d), 0.0, 0.0);' },
  // T0 = α: Σ g·1[v ≥ α]
  pact: { params: 1, outs: 1, expr: 'return vec4f(select(0.0, g, v >= T(0u, r)), 0.0, 0.0, 0.0);' },
  // T0 = s: Σ g·(round(u) − u inside, −Qn below, Qp above), u = v/s (p.f.x = Qn, p.f.y = Qp)
  lsq: {
    params: 1, outs: 1,
    expr: `let u = v / T(0u, r);
  var d = round(u) - u;
  if (u <= -p.f.x) { d = -p.f.x; }
  if (u >= p.f.y) { d = p.f.y; }
  return vec4f(g * d, 0.0, 0.0, 0.0);`,
  },
  // SQ forward scale: T0 = α, T1 = β: Σ g·sign*(v)·1[|v| ≥ t(β)]
  sq: {
    params: 2, outs: 1,
    expr: 'return vec4f(select(0.0, g * sgnStar(v), abs(v) >= sqThreshold(T(0u, r), T(1u, r))), 0.0, 0.0, 0.0);',
  },
} as const;
export type GSumMode = keyof typeof GSUM;

function gsumSpec(mode: GSumMode): RowReduceSpec {
  const s = GSUM[mode];
  const params: Binding[] = [];
  for (let k = 0; k < s.params; k++) params.push({ name: `T${k}`, type: 'f32' });
  // T(k, r): parameter k at row r
  const pick = params.map((_, k) => `if (k == ${k}u) { return T${k}[select(0u, r, U(${k}u) == 1u)]; }`).join('\n  ');
  return {
    key: `quant:gsum:${mode}`,
    combine: 'sum',
    in1: [{ name: 'x', type: 'f32' }, { name: 'gr', type: 'f32' }, ...params],
    helpers: SQ_HELPERS,
    contrib: `  let v = x[r * p.rowLen + j];
  let g = gr[r * p.rowLen + j];
  ${s.expr}`,
    in2: s.outs === 2 ? [{ name: 'y0', type: 'f32', rw: true }, { name: 'y1', type: 'f32', rw: true }] : [{ name: 'y0', type: 'f32', rw: true }],
    finalize: s.outs === 2 ? '  y0[r] = acc.x * p.f.w;\n  y1[r] = acc.y * p.f.w;' : '  y0[r] = acc.x * p.f.w;',
    pass1Helpers: `fn T(k: u32, r: u32) -> f32 {\n  ${pick}\n  return 0.0;\n}`,
  };
}

const gsumCache = new Map<GSumMode, RowReduceSpec>();

/** Per-row parameter gradient sums (see GSUM). `outs`: one buffer ([rows]) per output of the mode. */
export function gradSum(
  gpu: Gpu, mode: GSumMode, x: GBuf, g: GBuf, rows: number, rowLen: number,
  params: readonly Param[], outs: readonly GBuf[], f: readonly number[] = [], u: readonly number[] = [],
): void {
  const s = GSUM[mode];
  if (params.length !== s.params || outs.length !== s.outs) throw new Error(`webqat: ${mode} gradient sum: internal: wrong buffer count`);
  let spec = gsumCache.get(mode);
  if (!spec) gsumCache.set(mode, (spec = gsumSpec(mode)));
  const uu = [0, 0, 0, 0, 0, 0, 0, 0];
  params.forEach((q, k) => (uu[k] = q.perRow ? 1 : 0));
  u.forEach((v, k) => (uu[4 + k] = v));
  const ff = [f[0] ?? 0, f[1] ?? 0, f[2] ?? 0, f[3] ?? 1];
  rowReduce(gpu, spec, rows, rowLen, [x, g, ...params.map((q) => q.buf)], outs, uu, ff, `${mode} gradient`);
}

// ------------------------------------------------------------------------------ SQ regularizer

function sqRegSpec(writeDw: boolean, writeBranch: boolean): RowReduceSpec {
  const in1: Binding[] = [{ name: 'w', type: 'f32' }, { name: 'AB', type: 'f32' }];
  if (writeDw) in1.push({ name: 'dw', type: 'f32', rw: true });
  if (writeBranch) in1.push({ name: 'br', type: 'i32', rw: true });
  return {
    key: `quant:sqreg:${writeDw ? 'dw' : ''}${writeBranch ? 'br' : ''}`,
    combine: 'sum',
    in1,
    helpers: `
fn powp(a: f32) -> f32 { return select(a, a * a, U(4u) == 2u); }
// d/du |u|^p = p·|u|^{p−1}·sign(u)
fn dpowp(u: f32) -> f32 { return select(sign(u), 2.0 * u, U(4u) == 2u); }`,
    // AB = [α, β]. Branches: +1 (well at +α), −1 (well at −α), 0 (zero well); ties go to ±.
    contrib: `  let i = j;
  let v = w[i];
  let a = AB[0];
  let tb = tan(AB[1]);
  let rp = powp(abs(v - a));
  let rm = powp(abs(v + a));
  let rz = tb * powp(abs(v));
  var val = rp; var dv = dpowp(v - a); var da = -dpowp(v - a); var b = 1;
  if (rm < rp) { val = rm; dv = dpowp(v + a); da = dpowp(v + a); b = -1; }
  var zmass = 0.0;
  if (rz < val) { val = rz; dv = tb * dpowp(v); da = 0.0; b = 0; zmass = powp(abs(v)); }
  ${writeDw ? 'dw[i] = dv * p.f.y;' : ''}
  ${writeBranch ? 'br[i] = b;' : ''}
  return vec4f(val, da, zmass, select(0.0, 1.0, b == 0));`,
    in2: [{ name: 'AB2', type: 'f32' }, { name: 'out', type: 'f32', rw: true }],
    // out = [R + γ·cot β, ∂/∂α, ∂/∂β, zero-basin count]; R = mean r; p.f.x = γ, p.f.y = 1/n
    finalize: `  let beta = AB2[1];
  let s = sin(beta);
  let c = cos(beta);
  out[0] = acc.x * p.f.y + p.f.x * c / s;
  out[1] = acc.y * p.f.y;
  out[2] = acc.z * p.f.y / (c * c) - p.f.x / (s * s);
  out[3] = acc.w;`,
  };
}

const sqCache = new Map<string, RowReduceSpec>();

/**
 * SQ regularizer of one layer (ALGORITHMS §3.2) in one pass over w (n elements):
 * out[0] = mean_i r(w_i) + γ·cot β, out[1] = ∂/∂α, out[2] = ∂/∂β, out[3] = zero-basin count;
 * optional per-element ∂R/∂w = (1/n)·∂r/∂w into `dw` and branch ids (i32) into `branch`.
 * `ab` holds [α, β] (two floats).
 */
export function sqRegularizer(
  gpu: Gpu, w: GBuf, n: number, ab: GBuf, p: 1 | 2, gamma: number, out: GBuf,
  dw: GBuf | null, branch: GBuf | null,
): void {
  const key = `${dw ? 1 : 0}${branch ? 1 : 0}`;
  let spec = sqCache.get(key);
  if (!spec) sqCache.set(key, (spec = sqRegSpec(!!dw, !!branch)));
  const b1 = [w, ab];
  if (dw) b1.push(dw);
  if (branch) b1.push(branch);
  rowReduce(gpu, spec, 1, n, b1, [ab, out], [0, 0, 0, 0, p], [gamma, n > 0 ? 1 / n : 0], 'sqRegularizer');
}
