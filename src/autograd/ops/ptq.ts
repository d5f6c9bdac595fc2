/**
 * Post-training quantization ops (ALGORITHMS §1.6, §4): the inference fake quantizer (fixed point,
 * or logarithmic with base 2^(1/m), signed or unsigned) as a differentiable op with a clipped
 * straight-through backward, and two in-place calibration accumulators that keep their results on
 * the GPU (quantization-error sums for SQNR, a log2 histogram of |x|).
 */
import * as pk from '../../kernels/ptq.ts';
import { engine } from '../engine.ts';
import { record } from '../tape.ts';
import { Tensor } from '../tensor.ts';
import { checkDtype } from './check.ts';

const gpu = () => engine().gpu;

/**
 * A PTQ quantizer, b bits in total:
 * - fixed: Q(x) = clip(round(x·2^f), lo, hi)·2^{−f}; signed [−2^{b−1}, 2^{b−1}−1], unsigned [0, 2^b−1].
 * - log: e = round(m·log2|x|), output 2^{min(e, m·fsr − 1)/m} or 0 when x = 0 or e is below the
 *   lowest code. Unsigned: 2^b codes (zero + 2^b − 1 levels, negatives give 0); signed: a sign bit
 *   and 2^{b−1} magnitude codes (zero + 2^{b−1} − 1 levels). m levels per octave: 1 (log2), 2 (√2), 4,
 *   8 or 16 (which ones MXQN offers is up to the quantizer records of src/quant/ptq/quantizers).
 */
export type PtqQuantizer =
  | { kind: 'fixed'; bits: number; frac: number; signed: boolean }
  | { kind: 'log'; bits: number; fsr: number; m: number; signed: boolean };

/** Levels per octave a log quantizer may have. */
export const PTQ_LOG_M: readonly number[] = [1, 2, 4, 8, 16];

export const PTQ_MAX_BITS = 16;

function checkQuantizer(op: string, q: PtqQuantizer): void {
  const minBits = q.kind === 'fixed' && !q.signed ? 1 : 2;
  if (!Number.isInteger(q.bits) || q.bits < minBits || q.bits > PTQ_MAX_BITS) {
    throw new Error(`webqat: ${op}: bits must be an integer in ${minBits}..${PTQ_MAX_BITS}, got ${q.bits}`);
  }
  if (q.kind === 'fixed') {
    if (!Number.isInteger(q.frac) || Math.abs(q.frac) > 100) throw new Error(`webqat: ${op}: frac (fraction length) must be an integer in -100..100, got ${q.frac}`);
  } else if (q.kind === 'log') {
    if (!PTQ_LOG_M.includes(q.m)) throw new Error(`webqat: ${op}: m (levels per octave) must be one of ${PTQ_LOG_M.join(', ')}, got ${q.m}`);
    if (!Number.isInteger(q.fsr) || Math.abs(q.fsr) > 100) throw new Error(`webqat: ${op}: fsr (full-scale exponent) must be an integer in -100..100, got ${q.fsr}`);
  } else {
    throw new Error(`webqat: ${op}: unknown quantizer kind ${JSON.stringify((q as { kind: unknown }).kind)}`);
  }
}

/** Integer code range of a fixed-point quantizer. */
export function ptqFixedCodes(bits: number, signed: boolean): { lo: number; hi: number } {
  return signed ? { lo: -(2 ** (bits - 1)), hi: 2 ** (bits - 1) - 1 } : { lo: 0, hi: 2 ** bits - 1 };
}

/** Exponent codes of a log quantizer: top = m·fsr − 1, lowest kept code (below it: 0). */
export function ptqLogCodes(q: Extract<PtqQuantizer, { kind: 'log' }>): { top: number; lowest: number } {
  const levels = q.signed ? 2 ** (q.bits - 1) - 1 : 2 ** q.bits - 1;
  const top = q.m * q.fsr - 1;
  return { top, lowest: top - (levels - 1) };
}

/** The kernel's vec4 form of a quantizer (see kernels/ptq.ts). */
export function ptqQuantizerVec(q: PtqQuantizer): [number, number, number, number] {
  if (q.kind === 'fixed') {
    const { lo, hi } = ptqFixedCodes(q.bits, q.signed);
    return [0, 2 ** q.frac, lo, hi];
  }
  const { top, lowest } = ptqLogCodes(q);
  return [q.signed ? 2 : 1, q.m, top, lowest];
}

/** The representable range [lo, hi] of a quantizer (where the straight-through gradient passes). */
export function ptqRange(q: PtqQuantizer): [number, number] {
  if (q.kind === 'fixed') {
    const { lo, hi } = ptqFixedCodes(q.bits, q.signed);
    return [lo * 2 ** -q.frac, hi * 2 ** -q.frac];
  }
  const top = 2 ** ((q.m * q.fsr - 1) / q.m);
  return [q.signed ? -top : 0, top];
}

/** A short label: `fixed8 f=5`, `log2 6u fsr=2`, `log√2 ...`, `log⁴√2 ...` (the PTQ records' labels). */
export function ptqLabel(q: PtqQuantizer): string {
  if (q.kind === 'fixed') return `fixed${q.bits}${q.signed ? '' : 'u'} f=${q.frac}`;
  const sup: Record<number, string> = { 4: '⁴', 8: '⁸', 16: '¹⁶' };
  const base = q.m === 1 ? 'log2' : q.m === 2 ? 'log√2' : `log${sup[q.m] ?? q.m}√2`;
  return `${base} ${q.bits}${q.signed ? '' : 'u'} fsr=${q.fsr}`;
}

/**
 * Fake-quantize x (inference, any shape). Backward: straight-through inside the representable
 * range, g·1[lo ≤ x ≤ hi] (ptqRange), 0 outside (clipped STE).
 */
export function ptqQuantize(x: Tensor, q: PtqQuantizer): Tensor {
  const op = 'ptqQuantize';
  checkDtype(op, x, 'f32');
  checkQuantizer(op, q);
  const y = Tensor.empty(x.shape, 'f32', op);
  pk.ptqQuantize(gpu(), x.buf, y.buf, x.size, ptqQuantizerVec(q));
  const [lo, hi] = ptqRange(q);
  return record(op, [x], y, (g) => {
    const gx = Tensor.empty(x.shape, 'f32', `${op} backward`);
    pk.ptqQuantizeBackward(gpu(), x.buf, g.buf, gx.buf, x.size, lo, hi);
    return [gx];
  });
}

/** The most quantizers one `ptqErrorSums_` call takes. */
export const PTQ_MAX_CANDIDATES = pk.PTQ_MAX_CANDIDATES;

/**
 * Calibration: acc[0] += Σx², acc[1 + k] += Σ(x − Q_k(x))² for each quantizer (at most 15), on the
 * GPU; `acc` is an f32 tensor of at least quantizers.length + 1 elements. SQNR_k = 10·log10(acc[0] / acc[1+k]).
 * Records nothing (no gradient).
 */
export function ptqErrorSums_(x: Tensor, quantizers: readonly PtqQuantizer[], acc: Tensor): void {
  const op = 'ptqErrorSums_';
  checkDtype(op, x, 'f32');
  checkDtype(op, acc, 'f32');
  if (quantizers.length < 1 || quantizers.length > PTQ_MAX_CANDIDATES) {
    throw new Error(`webqat: ${op}: 1..${PTQ_MAX_CANDIDATES} quantizers per call, got ${quantizers.length}`);
  }
  if (acc.size < quantizers.length + 1) throw new Error(`webqat: ${op}: acc needs ${quantizers.length + 1} elements, got ${acc.describe()}`);
  for (const q of quantizers) checkQuantizer(op, q);
  const cands = Tensor.empty([quantizers.length * 4], 'f32', 'ptq quantizers');
  try {
    gpu().write(cands.buf, new Float32Array(quantizers.flatMap(ptqQuantizerVec)));
    pk.ptqErrorSums(gpu(), x.buf, x.size, cands.buf, quantizers.length, acc.buf);
  } finally {
    cands.release(op);
  }
}

/** Histogram layout of `ptqHistogram_`: bin 0 = exact zeros, bin b ≥ 1 = log2|x| ∈ [lo + (b−1)/perOctave, lo + b/perOctave). */
export const PTQ_HISTOGRAM = Object.freeze({ bins: pk.PTQ_HIST_BINS, perOctave: pk.PTQ_HIST_PER_OCTAVE, log2Lo: pk.PTQ_HIST_LOG2_LO });

/** Calibration: acc[b] += count of x's elements in bin b (PTQ_HISTOGRAM; acc f32 [256]). Records nothing. */
export function ptqHistogram_(x: Tensor, acc: Tensor): void {
  const op = 'ptqHistogram_';
  checkDtype(op, x, 'f32');
  checkDtype(op, acc, 'f32');
  if (acc.size !== PTQ_HISTOGRAM.bins) throw new Error(`webqat: ${op}: acc must have ${PTQ_HISTOGRAM.bins} elements, got ${acc.describe()}`);
  pk.ptqHistogram(gpu(), x.buf, x.size, acc.buf);
}
