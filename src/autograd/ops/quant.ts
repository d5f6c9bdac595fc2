/**
 * Quantization ops (ALGORITHMS §1, §3): statistics, straight-through estimators, fused weight and
 * activation quantizers and the SQ regularizer. Every quantizer is one differentiable op whose
 * forward is the quantizer (one fused kernel reading its scale tensors on the GPU: no readback) and
 * whose backward is the STE rule of ALGORITHMS §1.1.
 *
 * Granularity: weights [O, ...] are quantized per layer (one scale) or per output channel (one
 * scale per row O; `granularity: 'channel'`). Learnable parameters (PACT α, LSQ s, TTQ Wp/Wn, SQ α)
 * are tensors of size 1 (per layer) or size O (per channel); their gradient has their shape.
 *
 * Statistics (`absMean` ...) carry no gradient (stop-gradient scales, as in DoReFa/TWN/BWN).
 */
import * as qk from '../../kernels/quant.ts';
import { engine, isGradEnabled, noGrad } from '../engine.ts';
import { record } from '../tape.ts';
import { shapeStr, Tensor } from '../tensor.ts';
import { checkDtype, checkSameShape } from './check.ts';
import { mul } from './elementwise.ts';

const gpu = () => engine().gpu;

export type Granularity = 'layer' | 'channel';

/** rows × rowLen view of x for a granularity (channel = first dimension). */
function rowsOf(op: string, x: Tensor, g: Granularity = 'layer'): [number, number] {
  if (g !== 'layer' && g !== 'channel') throw new Error(`webqat: ${op}: granularity must be 'layer' or 'channel', got ${JSON.stringify(g)}`);
  if (g === 'layer' || x.rank === 0) return [1, x.size];
  const rows = x.shape[0];
  return [rows, rows > 0 ? x.size / rows : 0];
}

/** Check bits is an integer in [lo, hi] (or one of `extra`), with a message naming the op and the range. */
export function checkBits(op: string, bits: number, lo: number, hi: number, extra: readonly number[] = []): void {
  if (!Number.isInteger(bits) || ((bits < lo || bits > hi) && !extra.includes(bits))) {
    const also = extra.length ? ` or ${extra.join(', ')}` : '';
    throw new Error(`webqat: ${op}: bits must be an integer in ${lo}..${hi}${also}, got ${bits}`);
  }
}

/**
 * A parameter tensor of size 1 (per layer) or `rows` (per row); returns its kernel binding.
 * `channelOk`: the op also accepts one value per output channel (x.shape[0]); named in the error.
 */
function paramOf(op: string, name: string, t: Tensor, rows: number, x: Tensor, channelOk = rows > 1): qk.Param {
  checkDtype(op, t, 'f32');
  if (t.size === 1) return { buf: t.buf, perRow: false };
  if (t.size === rows && rows > 1) return { buf: t.buf, perRow: true };
  const o = x.rank > 0 ? x.shape[0] : 1;
  throw new Error(
    `webqat: ${op}: ${name} must have 1 element (per layer)${channelOk && o > 1 ? ` or ${o} (per output channel)` : ''}, got ${t.describe()} for x ${shapeStr(x.shape)}`,
  );
}

/** rows for a parameter: size 1 → per layer, size O = x.shape[0] → per channel. */
function rowsForParam(x: Tensor, t: Tensor): [number, number] {
  if (t.size > 1 && x.rank > 0 && t.size === x.shape[0]) return [x.shape[0], x.size / x.shape[0]];
  return [1, x.size];
}

// ----------------------------------------------------------------------------- statistics

function statOp(kind: qk.StatKind, x: Tensor, g: Granularity): Tensor {
  checkDtype(kind, x, 'f32');
  const [rows, rowLen] = rowsOf(kind, x, g);
  const y = Tensor.empty([rows], 'f32', kind);
  qk.stat(gpu(), kind, x.buf, rows, rowLen, y.buf);
  return y;
}

/** mean|x| per layer ([1]) or per output channel ([O]); no gradient. */
export const absMean = (x: Tensor, granularity: Granularity = 'layer') => statOp('absMean', x, granularity);
/** max|x| per layer ([1]) or per output channel ([O]); no gradient. */
export const absMax = (x: Tensor, granularity: Granularity = 'layer') => statOp('absMax', x, granularity);
/** max|tanh x| per layer ([1]) or per output channel ([O]) (DoReFa weights); no gradient. */
export const tanhAbsMax = (x: Tensor, granularity: Granularity = 'layer') => statOp('tanhAbsMax', x, granularity);

/**
 * Mean of |x| over the elements with |x| > factor·threshold (0 where none), per layer or per output
 * channel. `threshold` has 1 element or one per channel (e.g. `absMean(w, 'channel')`). No gradient.
 * TWN: α = maskedAbsMean(w, absMean(w), { factor: 0.7 }).
 */
export function maskedAbsMean(x: Tensor, threshold: Tensor, opts: { granularity?: Granularity; factor?: number } = {}): Tensor {
  const op = 'maskedAbsMean';
  checkDtype(op, x, 'f32');
  const [rows, rowLen] = rowsOf(op, x, opts.granularity);
  const t = paramOf(op, 'threshold', threshold, rows, x);
  const y = Tensor.empty([rows], 'f32', op);
  qk.stat(gpu(), 'maskedAbsMean', x.buf, rows, rowLen, y.buf, { ...t, factor: opts.factor ?? 1 });
  return y;
}

// ----------------------------------------------------------------------------- STE wrappers

function steWrap(op: string, x: Tensor, q: Tensor, mask: ((g: Tensor) => Tensor) | null): Tensor {
  checkDtype(op, x, 'f32');
  checkDtype(op, q, 'f32');
  checkSameShape(op, x, q);
  const out = q.viewAs(q.shape);
  return record(op, [x], out, (g) => [mask ? mask(g) : g]);
}

function maskGrad(op: string, mode: 'throughClip' | 'clipped', x: Tensor, g: Tensor, f: number[]): Tensor {
  const gx = Tensor.empty(x.shape, 'f32', `${op} backward`);
  qk.quantBackward(gpu(), mode, x.buf, g.buf, gx.buf, x.size, x.size, [], f);
  return gx;
}

/**
 * Straight-through identity: the result has q's values (shares its buffer) and passes the gradient
 * to x unchanged. Compute q without gradient (inside `noGrad`), e.g. `steIdentity(w, noGrad(() => Q(w)))`.
 */
export function steIdentity(x: Tensor, q: Tensor): Tensor {
  return steWrap('steIdentity', x, q, null);
}

/** Clipped (hardtanh) STE: forward q, backward g·1[|x| ≤ c]. */
export function steClipped(x: Tensor, q: Tensor, c = 1): Tensor {
  return steWrap('steClipped', x, q, (g) => maskGrad('steClipped', 'clipped', x, g, [c]));
}

/** STE through a clip: forward q, backward g·1[lo ≤ x ≤ hi]. */
export function steThroughClip(x: Tensor, q: Tensor, lo: number, hi: number): Tensor {
  return steWrap('steThroughClip', x, q, (g) => maskGrad('steThroughClip', 'throughClip', x, g, [lo, hi]));
}

// ----------------------------------------------------------------------------- quantizers

function fwd(op: string, mode: qk.QFwdMode, x: Tensor, rowLen: number, params: qk.Param[], f: number[] = [], u: number[] = []): Tensor {
  const y = Tensor.empty(x.shape, 'f32', op);
  qk.quantForward(gpu(), mode, x.buf, y.buf, x.size, rowLen, params, f, u);
  return y;
}

function bwd(op: string, mode: qk.QBwdMode, x: Tensor, g: Tensor, rowLen: number, params: qk.Param[], f: number[] = []): Tensor {
  const gx = Tensor.empty(x.shape, 'f32', `${op} backward`);
  qk.quantBackward(gpu(), mode, x.buf, g.buf, gx.buf, x.size, rowLen, params, f);
  return gx;
}

/** Gradient of a learnable parameter tensor `t` (its shape) from a per-row sum. */
function paramGrads(mode: qk.GSumMode, x: Tensor, g: Tensor, rows: number, rowLen: number, params: qk.Param[], shapes: Tensor[], f: number[] = [], u: number[] = []): Tensor[] {
  const outs = shapes.map((t) => Tensor.empty(t.shape, 'f32', `${mode} parameter gradient`));
  qk.gradSum(gpu(), mode, x.buf, g.buf, rows, rowLen, params, outs.map((o) => o.buf), f, u);
  return outs;
}

/**
 * DoReFa activation quantizer (§1.2): quantize_k(clip(x, 0, 1)) = round((2^k − 1)·clip(x,0,1))/(2^k − 1);
 * backward g·1[0 ≤ x ≤ 1]. bits 1..8, or 32 for the clip alone (levels {0, 1/(2^k−1), ..., 1}).
 */
export function quantDorefaAct(x: Tensor, bits: number): Tensor {
  const op = 'quantDorefaAct';
  checkDtype(op, x, 'f32');
  checkBits(op, bits, 1, 8, [32]);
  const levels = bits === 32 ? 0 : 2 ** bits - 1;
  const y = fwd(op, 'dorefaAct', x, x.size, [], [levels]);
  return record(op, [x], y, (g) => [bwd(op, 'throughClip', x, g, x.size, [], [0, 1])]);
}

/**
 * DoReFa weight quantizer (§1.2). bits = 1: BWN E·sign*(w), E = mean|w| (per layer, or per output
 * channel), STE identity. bits 2..8: t = tanh w, m = max|t| (stop-gradient), 2·quantize_k(t/(2m) + ½) − 1,
 * backward g·(1 − t²)/m. bits = 32: identity.
 */
export function quantDorefaWeight(w: Tensor, bits: number, opts: { granularity?: Granularity } = {}): Tensor {
  const op = 'quantDorefaWeight';
  checkDtype(op, w, 'f32');
  checkBits(op, bits, 1, 8, [32]);
  if (bits === 1) return quantBinary(w, opts);
  if (bits === 32) return steIdentity(w, noGrad(() => w.viewAs(w.shape)));
  const [rows, rowLen] = rowsOf(op, w, opts.granularity);
  const m = tanhAbsMax(w, opts.granularity);
  const mp: qk.Param = { buf: m.buf, perRow: rows > 1 };
  const y = fwd(op, 'dorefaWeight', w, rowLen, [mp], [2 ** bits - 1]);
  return record(op, [w], y, (g) => [bwd(op, 'dorefaWeight', w, g, rowLen, [mp])]);
}

/**
 * BWN / XNOR binary weights (§1.3): α·sign*(w) with α = mean|w| per layer or per output channel
 * (sign*(0) = +1). Backward: STE identity (tensorpack BWN), or `ste: 'clipped'` for g·1[|w| ≤ 1].
 */
export function quantBinary(w: Tensor, opts: { granularity?: Granularity; ste?: 'identity' | 'clipped' } = {}): Tensor {
  const op = 'quantBinary';
  checkDtype(op, w, 'f32');
  const [rows, rowLen] = rowsOf(op, w, opts.granularity);
  const e = absMean(w, opts.granularity);
  const y = fwd(op, 'binary', w, rowLen, [{ buf: e.buf, perRow: rows > 1 }]);
  const clipped = opts.ste === 'clipped';
  return record(op, [w], y, (g) => [clipped ? bwd(op, 'clipped', w, g, rowLen, [], [1]) : g]);
}

/**
 * TWN ternary weights (§1.3): Δ = factor·mean|w| (factor 0.7), α = mean of |w| over |w| > Δ,
 * Ŵ = α·sign(w)·1[|w| > Δ]; per layer or per output channel; STE identity.
 */
export function quantTernary(w: Tensor, opts: { granularity?: Granularity; factor?: number } = {}): Tensor {
  const op = 'quantTernary';
  checkDtype(op, w, 'f32');
  const factor = opts.factor ?? 0.7;
  const [rows, rowLen] = rowsOf(op, w, opts.granularity);
  const m = absMean(w, opts.granularity);
  const a = maskedAbsMean(w, m, { granularity: opts.granularity, factor });
  const y = fwd(op, 'ternary', w, rowLen, [{ buf: m.buf, perRow: rows > 1 }, { buf: a.buf, perRow: rows > 1 }], [factor]);
  return record(op, [w], y, (g) => [g]);
}

/**
 * TTQ (§1.3): Δ = threshold·max|w| (threshold 0.05); Ŵ = Wp (w > Δ), −Wn (w < −Δ), 0 otherwise.
 * Wp, Wn: learnable positive scales of 1 element (or one per output channel, then Δ is per channel).
 * Gradients: g_w = g·(Wp | 1 | Wn) for positive | zero | negative codes, g_Wp = Σ_{w>Δ} g,
 * g_Wn = −Σ_{w<−Δ} g.
 */
export function quantTtq(w: Tensor, wp: Tensor, wn: Tensor, opts: { threshold?: number } = {}): Tensor {
  const op = 'quantTtq';
  checkDtype(op, w, 'f32');
  const t = opts.threshold ?? 0.05;
  const [rows, rowLen] = rowsForParam(w, wp);
  const pp = paramOf(op, 'Wp', wp, rows, w, true);
  const pn = paramOf(op, 'Wn', wn, rows, w, true);
  if (pp.perRow !== pn.perRow) throw new Error(`webqat: ${op}: Wp and Wn must have the same size, got ${wp.describe()} and ${wn.describe()}`);
  const mx = absMax(w, rows > 1 ? 'channel' : 'layer');
  const pm: qk.Param = { buf: mx.buf, perRow: rows > 1 };
  const y = fwd(op, 'ttq', w, rowLen, [pm, pp, pn], [t]);
  return record(op, [w, wp, wn], y, (g, needs) => {
    const gw = needs[0] ? bwd(op, 'ttq', w, g, rowLen, [pm, pp, pn], [t]) : null;
    if (!needs[1] && !needs[2]) return [gw, null, null];
    const [gp, gn] = paramGrads('ttq', w, g, rows, rowLen, [pm], [wp, wn], [t]);
    return [gw, needs[1] ? gp : (gp.release(), null), needs[2] ? gn : (gn.release(), null)];
  });
}

/**
 * PACT activations (§1.4): y = clip(x, 0, α), y_q = round(y·(2^k − 1)/α)·α/(2^k − 1); g_x = g·1[0 ≤ x < α],
 * g_α = Σ g·1[x ≥ α]. α: 1 element (learnable). bits 1..8.
 */
export function quantPact(x: Tensor, alpha: Tensor, bits: number): Tensor {
  const op = 'quantPact';
  checkDtype(op, x, 'f32');
  checkBits(op, bits, 1, 8);
  const pa = paramOf(op, 'alpha', alpha, 1, x);
  const levels = 2 ** bits - 1;
  const y = fwd(op, 'pact', x, x.size, [pa], [levels]);
  return record(op, [x, alpha], y, (g, needs) => [
    needs[0] ? bwd(op, 'pact', x, g, x.size, [pa]) : null,
    needs[1] ? paramGrads('pact', x, g, 1, x.size, [pa], [alpha])[0] : null,
  ]);
}

/** LSQ integer range: unsigned [0, 2^b − 1]; signed [−2^{b−1}, 2^{b−1} − 1] (Qn is the magnitude of the low end). */
export function quantLsqRange(bits: number, signed: boolean): { qn: number; qp: number } {
  return signed ? { qn: 2 ** (bits - 1), qp: 2 ** (bits - 1) - 1 } : { qn: 0, qp: 2 ** bits - 1 };
}

/**
 * LSQ (§1.4): v̂ = round(clip(v/s, −Qn, Qp))·s with step s (1 element, or one per output channel).
 * g_v = g·1[−Qn < v/s < Qp]; g_s = Σ g·(round(v/s) − v/s | −Qn | Qp) · 1/√(N·Qp), N = elements
 * per step (layer or channel). bits: 1..8 unsigned (activations), 2..8 signed (weights).
 */
export function quantLsq(v: Tensor, s: Tensor, bits: number, signed: boolean): Tensor {
  const op = 'quantLsq';
  checkDtype(op, v, 'f32');
  checkBits(op, bits, signed ? 2 : 1, 8);
  const [rows, rowLen] = rowsForParam(v, s);
  const ps = paramOf(op, 's', s, rows, v, true);
  const { qn, qp } = quantLsqRange(bits, signed);
  const y = fwd(op, 'lsq', v, rowLen, [ps], [qn, qp]);
  const scale = 1 / Math.sqrt(Math.max(rowLen, 1) * qp);
  return record(op, [v, s], y, (g, needs) => [
    needs[0] ? bwd(op, 'lsq', v, g, rowLen, [ps], [qn, qp]) : null,
    needs[1] ? paramGrads('lsq', v, g, rows, rowLen, [ps], [s], [qn, qp, 0, scale])[0] : null,
  ]);
}

/**
 * Dynamic fixed point (§1.6), b bits including the sign, fraction length f:
 * clip(round(x·2^f), −2^{b−1}, 2^{b−1} − 1)·2^{−f}. bits 2..32. Backward STE identity.
 */
export function quantFixed(x: Tensor, bits: number, frac: number): Tensor {
  const op = 'quantFixed';
  checkDtype(op, x, 'f32');
  checkBits(op, bits, 2, 32);
  if (!Number.isInteger(frac)) throw new Error(`webqat: ${op}: frac (fraction length) must be an integer, got ${frac}`);
  const y = fwd(op, 'fixed', x, x.size, [], [2 ** frac, -(2 ** (bits - 1)), 2 ** (bits - 1) - 1]);
  return record(op, [x], y, (g) => [g]);
}

/**
 * Signed logarithmic quantizer (§1.6), b bits = 1 sign bit + 2^{b−1} magnitude codes (zero and
 * 2^{b−1} − 1 powers). e = round(m·log2|x|) with m levels per octave (m = 1: powers of two, m = 2:
 * base √2); output sign(x)·2^{min(e, m·FSR − 1)/m}, or 0 when x = 0 or e < m·FSR − (2^{b−1} − 1).
 * bits 2..8. Backward STE identity.
 */
export function quantLog(x: Tensor, bits: number, fsr: number, opts: { perOctave?: 1 | 2 } = {}): Tensor {
  const op = 'quantLog';
  checkDtype(op, x, 'f32');
  checkBits(op, bits, 2, 8);
  const m = opts.perOctave ?? 1;
  if (m !== 1 && m !== 2) throw new Error(`webqat: ${op}: perOctave must be 1 or 2, got ${m}`);
  if (!Number.isInteger(fsr)) throw new Error(`webqat: ${op}: fsr (full-scale exponent) must be an integer, got ${fsr}`);
  const top = m * fsr - 1;
  const lowest = m * fsr - (2 ** (bits - 1) - 1);
  const y = fwd(op, 'log', x, x.size, [], [m, top, lowest]);
  return record(op, [x], y, (g) => [g]);
}

// ----------------------------------------------------------------------------- SQ

export interface SqOptions {
  /** regularizer power p (1 or 2; default 2) */
  p?: 1 | 2;
  /** binary bias γ of the γ·cot β term (default 0) */
  gamma?: number;
}

function sqArgs(op: string, w: Tensor, alpha: Tensor, beta: Tensor, p: number): void {
  checkDtype(op, w, 'f32');
  for (const [name, t] of [['alpha', alpha], ['beta', beta]] as const) {
    checkDtype(op, t, 'f32');
    if (t.size !== 1) throw new Error(`webqat: ${op}: ${name} must have 1 element (per layer), got ${t.describe()}`);
  }
  if (p !== 1 && p !== 2) throw new Error(`webqat: ${op}: p must be 1 or 2, got ${p}`);
}

/** [α, β] packed into one 2-element buffer for the regularizer kernel. */
function packAB(alpha: Tensor, beta: Tensor): Tensor {
  const ab = Tensor.empty([2], 'f32', 'sq [alpha, beta]');
  gpu().copy(alpha.buf, 0, ab.buf, 0, 4);
  gpu().copy(beta.buf, 0, ab.buf, 4, 4);
  return ab;
}

/** SQ zero-basin threshold t(β) = α/(1 + tan(β)^{1/p}) on the host (for reports and tests). */
export function sqThresholdOf(alpha: number, beta: number, p: 1 | 2 = 2): number {
  const t = Math.tan(beta);
  return alpha / (1 + (p === 2 ? Math.sqrt(t) : t));
}

/**
 * A layer is binary once tan β reaches this (t < α/11 for p = 2): from there on the quantizer's
 * threshold is 0, so the layer trains, evaluates and packs as exactly α·sign*(w).
 */
export const SQ_TAN_BINARY = qk.SQ_TAN_BINARY;

/** The SQ quantizer's threshold: t(β) below SQ_TAN_BINARY, 0 (binary) from there on. */
export function sqQuantThresholdOf(alpha: number, beta: number, p: 1 | 2 = 2): number {
  return Math.tan(beta) >= SQ_TAN_BINARY ? 0 : sqThresholdOf(alpha, beta, p);
}

/**
 * SQ regularizer of one layer (ALGORITHMS §3.2), a scalar tensor []:
 *   R = (1/n)·Σ_i min(|w_i − α|^p, |w_i + α|^p, tan β·|w_i|^p) + γ·cot β
 * with gradients to w ((1/n)·∂r/∂w per element), α and β (β: (1/n)·sec²β·Σ_{zero basin}|w|^p − γ/sin²β).
 * α, β: 1-element tensors. One pass computes the value and every gradient (saved for the backward).
 * Accepts `(w, α, β, { p, gamma })` or the positional form `(w, α, β, p, gamma)`.
 */
export function sqRegularizer(w: Tensor, alpha: Tensor, beta: Tensor, opts: SqOptions | 1 | 2 = {}, gamma?: number): Tensor {
  const op = 'sqRegularizer';
  const o: SqOptions = typeof opts === 'number' ? { p: opts, gamma } : opts;
  const p = o.p ?? 2;
  sqArgs(op, w, alpha, beta, p);
  const g0 = o.gamma ?? 0;
  const ab = packAB(alpha, beta);
  const stats = Tensor.empty([4], 'f32', op);
  const wantGrad = w.requiresGrad && isGradEnabled();
  const dw = wantGrad ? Tensor.empty(w.shape, 'f32', `${op} dR/dw`) : null;
  qk.sqRegularizer(gpu(), w.buf, w.size, ab.buf, p as 1 | 2, g0, stats.buf, dw ? dw.buf : null, null);
  ab.release();
  const r = Tensor.empty([], 'f32', op);
  gpu().copy(stats.buf, 0, r.buf, 0, 4);
  return record(op, [w, alpha, beta], r, (g, needs) => {
    let gw: Tensor | null = null;
    if (needs[0]) {
      if (!dw) throw new Error(`webqat: ${op}: backward to w needs the forward to run with gradients enabled`);
      gw = mul(dw, g);
    }
    if (!needs[1] && !needs[2]) return [gw, null, null];
    const scaled = mul(stats, g); // [R, dα, dβ, count]·g
    const ga = needs[1] ? Tensor.empty(alpha.shape, 'f32', `${op} dalpha`) : null;
    const gb = needs[2] ? Tensor.empty(beta.shape, 'f32', `${op} dbeta`) : null;
    if (ga) gpu().copy(scaled.buf, 4, ga.buf, 0, 4);
    if (gb) gpu().copy(scaled.buf, 8, gb.buf, 0, 4);
    scaled.release();
    return [gw, ga, gb];
  });
}

/**
 * SQ statistics without gradient: [R (as sqRegularizer), ∂R/∂α, ∂R/∂β, number of weights in the
 * zero basin], a [4] tensor (the zero-basin count drives the binary/ternary decision of §3.3).
 */
export function sqStats(w: Tensor, alpha: Tensor, beta: Tensor, opts: SqOptions = {}): Tensor {
  const op = 'sqStats';
  const p = opts.p ?? 2;
  sqArgs(op, w, alpha, beta, p);
  const ab = packAB(alpha, beta);
  const stats = Tensor.empty([4], 'f32', op);
  qk.sqRegularizer(gpu(), w.buf, w.size, ab.buf, p, opts.gamma ?? 0, stats.buf, null, null);
  ab.release();
  return stats;
}

/** Active regularizer branch per weight (i32, w's shape): +1 (well at +α), −1 (well at −α), 0 (zero well). */
export function sqBranches(w: Tensor, alpha: Tensor, beta: Tensor, opts: SqOptions = {}): Tensor {
  const op = 'sqBranches';
  const p = opts.p ?? 2;
  sqArgs(op, w, alpha, beta, p);
  const ab = packAB(alpha, beta);
  const stats = Tensor.empty([4], 'f32', op);
  const br = Tensor.empty(w.shape, 'i32', op);
  qk.sqRegularizer(gpu(), w.buf, w.size, ab.buf, p, 0, stats.buf, null, br.buf);
  ab.release();
  stats.release();
  return br;
}

/**
 * SQ forward quantizer (§3.3): 0 where |w| < t(β) = α/(1 + tan(β)^{1/p}), else α·sign*(w); binary
 * (t = 0) once tan β ≥ SQ_TAN_BINARY, so the layer trains as it will be packed.
 * Backward: clipped STE g·1[|w| ≤ clip·α] (clip = 2, i.e. δ = α) to w, and (α as a learned scale)
 * g_α = Σ g·sign*(w)·1[|w| ≥ t]; β gets no gradient here (it learns through the regularizer).
 */
export function sqQuantize(w: Tensor, alpha: Tensor, beta: Tensor, opts: { p?: 1 | 2; clip?: number } = {}): Tensor {
  const op = 'sqQuantize';
  const p = opts.p ?? 2;
  sqArgs(op, w, alpha, beta, p);
  const clip = opts.clip ?? 2;
  const pa: qk.Param = { buf: alpha.buf, perRow: false };
  const pb: qk.Param = { buf: beta.buf, perRow: false };
  const y = fwd(op, 'sq', w, w.size, [pa, pb], [], [p]);
  return record(op, [w, alpha], y, (g, needs) => [
    needs[0] ? bwd(op, 'sq', w, g, w.size, [pa], [clip]) : null,
    needs[1] ? paramGrads('sq', w, g, 1, w.size, [pa, pb], [alpha], [], [p])[0] : null,
  ]);
}
