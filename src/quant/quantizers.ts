/**
 * The quantizer functions (forward + straight-through backward), composed from the generic
 * differentiable ops: each forward is computed without gradient, then `record()` attaches the STE
 * rule of ALGORITHMS §1 as the backward. Per-layer statistics (mean|W|, max|W| ...) are GPU
 * reductions; nothing is read back.
 *
 * NOTE: these compositions take several element-wise dispatches each; the fused WGSL kernels of
 * src/autograd/ops/quant.ts (written concurrently) can replace them one by one behind the same
 * function signatures.
 */
import {
  abs,
  add,
  affine,
  clamp,
  div,
  exp,
  full,
  ge,
  gt,
  le,
  log,
  lt,
  max,
  mean,
  minimum,
  mul,
  mulScalar,
  noGrad,
  powScalar,
  record,
  reshape,
  sign,
  sqrt,
  square,
  sub,
  sum,
  tanh,
  type Tensor,
} from '../autograd/index.ts';

const MAGIC = 12582912; // 1.5·2^23: (x + M) − M rounds an f32 to the nearest integer, ties to even

/** round half to even (exact for |x| < 2^22), no gradient; two dispatches that store f32 in between */
export function roundHalfEven(x: Tensor): Tensor {
  return noGrad(() => affine(affine(x, 1, MAGIC), 1, -MAGIC));
}

const scalar = (v: number) => full([1], v);

/** sign*(x): +1 for x ≥ 0, −1 otherwise (no gradient) */
export function signStar(x: Tensor): Tensor {
  return noGrad(() => affine(ge(x, scalar(0)), 2, -1));
}

/** STE-identity wrapper: forward `q`, backward passes the gradient to `x` unchanged. */
function steIdentity(op: string, x: Tensor, q: Tensor): Tensor {
  return record(op, [x], q, (g, needs) => [needs[0] ? mulScalar(g, 1) : null]);
}

/** BWN / DoReFa k=1: E·sign*(W), E = mean|W| (stop-gradient); STE identity (§1.2). */
export function bwnWeight(w: Tensor): Tensor {
  const q = noGrad(() => mul(signStar(w), mean(abs(w))));
  return steIdentity('bwn', w, q);
}

/** TWN: Δ = 0.7·mean|W|, α = mean_{|W|>Δ}|W|, Ŵ = α·sign(W)·1[|W|>Δ]; STE identity (§1.3). */
export function twnWeight(w: Tensor): Tensor {
  const q = noGrad(() => {
    const a = abs(w);
    const m = gt(a, mulScalar(mean(a), 0.7));
    const alpha = div(sum(mul(a, m)), affine(sum(m), 1, 1e-12));
    return mul(mul(sign(w), m), alpha);
  });
  return steIdentity('twn', w, q);
}

/** TTQ masks: positive / negative codes with Δ = t·max|W|. */
function ttqMasks(w: Tensor, t: number): { pos: Tensor; neg: Tensor } {
  return noGrad(() => {
    const d = mulScalar(max(abs(w)), t);
    return { pos: gt(w, d), neg: lt(w, mulScalar(d, -1)) };
  });
}

/** TTQ: Ŵ = W_p (W > Δ), −W_n (W < −Δ), 0; Δ = t·max|W| (§1.3). wp, wn: [1]. */
export function ttqWeight(w: Tensor, wp: Tensor, wn: Tensor, t = 0.05): Tensor {
  const { pos, neg } = ttqMasks(w, t);
  const q = noGrad(() => sub(mul(pos, wp), mul(neg, wn)));
  return record('ttq', [w, wp, wn], q, (g, needs) => noGrad(() => {
    const zero = affine(add(pos, neg), -1, 1);
    const gw = needs[0] ? mul(g, add(add(mul(pos, wp), mul(neg, wn)), zero)) : null;
    const gp = needs[1] ? reshape(sum(mul(g, pos)), [1]) : null;
    const gn = needs[2] ? reshape(mulScalar(sum(mul(g, neg)), -1), [1]) : null;
    zero.release();
    return [gw, gp, gn];
  }));
}

/** Initial TTQ scales: mean of |W| over each code's support. */
export function ttqInit(w: Tensor, t = 0.05): { wp: Tensor; wn: Tensor } {
  const { pos, neg } = ttqMasks(w, t);
  return noGrad(() => ({
    wp: reshape(div(sum(mul(w, pos)), affine(sum(pos), 1, 1e-12)), [1]),
    wn: reshape(div(mulScalar(sum(mul(w, neg)), -1), affine(sum(neg), 1, 1e-12)), [1]),
  }));
}

/** DoReFa k-bit weights (k ≥ 2): 2·quantize_k(tanh W/(2·max|tanh W|) + ½) − 1; g·(1 − t²)/m (§1.2). */
export function dorefaWeight(w: Tensor, bits: number): Tensor {
  const levels = 2 ** bits - 1;
  let t!: Tensor;
  let m!: Tensor;
  const q = noGrad(() => {
    t = tanh(w);
    m = max(abs(t));
    const unit = affine(div(t, mulScalar(m, 2)), levels, levels / 2); // w̃·(2^k − 1)
    return affine(roundHalfEven(unit), 2 / levels, -1);
  });
  return record('dorefa_w', [w], q, (g, needs) => [needs[0] ? noGrad(() => div(mul(g, affine(square(t), -1, 1)), m)) : null]);
}

/** DoReFa k-bit activations: quantize_k(clip(x, 0, 1)); g·1[0 ≤ x ≤ 1] (§1.2). k = 32: clip only. */
export function dorefaAct(x: Tensor, bits: number): Tensor {
  const levels = 2 ** bits - 1;
  const q = noGrad(() => {
    const c = clamp(x, 0, 1);
    return bits >= 32 ? c : mulScalar(roundHalfEven(mulScalar(c, levels)), 1 / levels);
  });
  return record('dorefa_a', [x], q, (g, needs) => [needs[0] ? noGrad(() => mul(g, mul(ge(x, scalar(0)), le(x, scalar(1))))) : null]);
}

/** PACT: y = clip(x, 0, α), y_q = round(y·(2^k−1)/α)·α/(2^k−1); g_x = g·1[0 ≤ x < α], g_α = Σ g·1[x ≥ α] (§1.4). */
export function pactAct(x: Tensor, alpha: Tensor, bits: number): Tensor {
  const levels = 2 ** bits - 1;
  const q = noGrad(() => {
    const y = minimum(clamp(x, 0, Number.MAX_VALUE), mul(onesOf(x), alpha));
    return mul(roundHalfEven(mul(y, div(scalar(levels), alpha))), div(alpha, scalar(levels)));
  });
  return record('pact', [x, alpha], q, (g, needs) => noGrad(() => {
    const over = ge(x, alpha);
    const gx = needs[0] ? mul(g, mul(ge(x, scalar(0)), affine(over, -1, 1))) : null;
    const ga = needs[1] ? reshape(sum(mul(g, over)), [1]) : null;
    return [gx, ga];
  }));
}

function onesOf(x: Tensor): Tensor {
  return full(x.shape, 1);
}

/** LSQ range of b bits: unsigned (activations) [0, 2^b − 1]; signed (weights) [−2^{b−1}, 2^{b−1} − 1]. */
export function lsqRange(bits: number, signed: boolean): { qn: number; qp: number } {
  return signed ? { qn: 2 ** (bits - 1), qp: 2 ** (bits - 1) - 1 } : { qn: 0, qp: 2 ** bits - 1 };
}

/** LSQ: v̂ = round(clip(v/s, −Q_N, Q_P))·s with the gradients of §1.4 (g_s scaled by 1/√(N·Q_P)). */
export function lsqQuant(v: Tensor, s: Tensor, bits: number, signed: boolean): Tensor {
  const { qn, qp } = lsqRange(bits, signed);
  let u!: Tensor;
  let r!: Tensor;
  const q = noGrad(() => {
    u = div(v, s);
    r = roundHalfEven(clamp(u, -qn, qp));
    return mul(r, s);
  });
  const scale = 1 / Math.sqrt(v.size * Math.max(qp, 1));
  return record('lsq', [v, s], q, (g, needs) => noGrad(() => {
    const inside = mul(gt(u, scalar(-qn)), lt(u, scalar(qp)));
    const gv = needs[0] ? mul(g, inside) : null;
    // inside: round(u) − u; below: −Q_N; above: Q_P  (r already holds the clipped, rounded value)
    const ds = sub(r, mul(u, inside));
    const gs = needs[1] ? reshape(mulScalar(sum(mul(g, ds)), scale), [1]) : null;
    return [gv, gs];
  }));
}

/** LSQ step initialisation: s = 2·mean|v| / √Q_P. */
export function lsqInit(v: Tensor, bits: number, signed: boolean): Tensor {
  const { qp } = lsqRange(bits, signed);
  return noGrad(() => reshape(mulScalar(mean(abs(v)), 2 / Math.sqrt(Math.max(qp, 1))), [1]));
}

/** Fixed point, b bits incl. sign, fraction length f: clip(round(x·2^f), −2^{b−1}, 2^{b−1}−1)·2^{−f}; STE identity (§1.6). */
export function fixedWeight(w: Tensor, bits: number, frac: number): Tensor {
  const lo = -(2 ** (bits - 1));
  const hi = 2 ** (bits - 1) - 1;
  const q = noGrad(() => mulScalar(clamp(roundHalfEven(mulScalar(w, 2 ** frac)), lo, hi), 2 ** -frac));
  return steIdentity('fixed', w, q);
}

/** The fraction length that covers max|x| with b bits: f = b − 1 − ceil(log2 max|x|). */
export function fixedFracLength(maxAbs: number, bits: number): number {
  return maxAbs > 0 ? bits - 1 - Math.ceil(Math.log2(maxAbs)) : bits - 1;
}

/**
 * Signed log quantization (§1.6): e = round(log2|x|); 0 if x = 0 or e ≤ FSR − 2^{b−1}; else
 * sign(x)·2^{min(e, FSR−1)} (one sign bit, 2^{b−1} magnitude codes incl. zero). STE identity.
 */
export function logWeight(w: Tensor, bits: number, fsr: number): Tensor {
  const lowest = fsr - 2 ** (bits - 1);
  const q = noGrad(() => {
    const a = abs(w);
    const e = roundHalfEven(mulScalar(log(add(a, 1e-30)), 1 / Math.LN2));
    const keep = gt(e, scalar(lowest));
    const mag = exp(mulScalar(minimum(e, full(e.shape, fsr - 1)), Math.LN2));
    return mul(mul(sign(w), mag), keep);
  });
  return steIdentity('log', w, q);
}

// ----------------------------------------------------------------------------------------- SQ

/**
 * tan β for β ∈ [π/4, π/2): 1 / tan(π/2 − β), with tan(u) on u ∈ (0, π/4] from its Taylor series
 * (8 terms: error < 1e-6 at u = π/4). Differentiable in β through ordinary ops.
 */
export function tanOfBeta(beta: Tensor): Tensor {
  const u = affine(beta, -1, Math.PI / 2);
  return div(scalar(1), tanSeries(u));
}

/** cot β = tan(π/2 − β). */
export function cotOfBeta(beta: Tensor): Tensor {
  return tanSeries(affine(beta, -1, Math.PI / 2));
}

const TAN_COEF = [1, 1 / 3, 2 / 15, 17 / 315, 62 / 2835, 1382 / 155925, 21844 / 6081075, 929569 / 638512875, 6404582 / 10854718875];

function tanSeries(u: Tensor): Tensor {
  const u2 = square(u);
  // Horner in u²: u·(c0 + u²(c1 + u²(c2 + ...)))
  let acc = full(u.shape, TAN_COEF[TAN_COEF.length - 1]);
  for (let k = TAN_COEF.length - 2; k >= 0; k--) acc = affine(mul(acc, u2), 1, TAN_COEF[k]);
  return mul(acc, u);
}

/** SQ zero-basin threshold t(β) = α / (1 + tan(β)^{1/p}) (§3.2). */
export function sqThresholdGpu(alpha: Tensor, beta: Tensor, p: 1 | 2): Tensor {
  return noGrad(() => {
    const tb = tanOfBeta(beta);
    return div(alpha, affine(p === 2 ? sqrt(tb) : tb, 1, 1));
  });
}

/**
 * SQ forward quantizer (§3.3): 0 if |w| < t(β), else α·sign(w). Backward: clipped STE
 * g·1[|w| ≤ 2α] to w, and g_α = Σ g·sign(w)·1[|w| ≥ t] (α as a learned scale).
 */
export function sqWeight(w: Tensor, alpha: Tensor, beta: Tensor, p: 1 | 2): Tensor {
  let keep!: Tensor;
  let s!: Tensor;
  const q = noGrad(() => {
    keep = ge(abs(w), sqThresholdGpu(alpha, beta, p));
    s = sign(w);
    return mul(mul(s, keep), alpha);
  });
  return record('sq', [w, alpha], q, (g, needs) => noGrad(() => {
    const gw = needs[0] ? mul(g, le(abs(w), mulScalar(alpha, 2))) : null;
    const ga = needs[1] ? reshape(sum(mul(mul(g, s), keep)), [1]) : null;
    return [gw, ga];
  }));
}

/**
 * SQ regularizer of one layer (§3.2): mean_i min(|w−α|^p, |w+α|^p, tan β·|w|^p) + γ·cot β.
 * Differentiable in w, α and β (autograd through the composed ops).
 */
export function sqRegularizer(w: Tensor, alpha: Tensor, beta: Tensor, p: 1 | 2, gamma: number): Tensor {
  const pw = (x: Tensor) => (p === 2 ? square(x) : abs(x));
  const plus = pw(sub(w, alpha));
  const minus = pw(add(w, alpha));
  const zero = mul(pw(w), tanOfBeta(beta));
  const r = mean(minimum(minimum(plus, minus), zero));
  return add(r, mulScalar(reshape(cotOfBeta(beta), []), gamma));
}
