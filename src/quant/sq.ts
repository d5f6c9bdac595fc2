/**
 * SQ (smart / adaptive binary-ternary quantization, ALGORITHMS §3): per layer a trainable well
 * position α and angle β. The regularizer λ·Σ_l [R_l + γ·cot β_l] is added to the loss; β is
 * clipped to [π/4, π/2 − ε] after every optimizer step; at the end each layer is binary or ternary.
 */
import { add, clamp, copy_, engine, ge, maximum, mulScalar, noGrad, SQ_TAN_BINARY, sqQuantThresholdOf, sqRegularizer, sqStats, sqThresholdOf, type Tensor, tensor, tidy, where } from '../autograd/index.ts';
import type { WeightQuantState } from './layers.ts';

export const SQ_BETA_MIN = Math.PI / 4;
export const SQ_BETA_EPS = 1e-4;
export const SQ_BETA_MAX = Math.PI / 2 - SQ_BETA_EPS;
export { SQ_TAN_BINARY };

/** t(β) = α / (1 + tan(β)^{1/p}). */
export function sqThreshold(alpha: number, beta: number, p: 1 | 2): number {
  return sqThresholdOf(alpha, beta, p);
}

export interface SQLayerDecision {
  mode: 'binary' | 'ternary';
  tanBeta: number;
  threshold: number;
  /** fraction of weights the quantizer sets to 0 (|w| < t(β); 0 when binary) */
  zeroFraction: number;
}

/** The binary/ternary decision of one layer (§3.3). */
export function sqDecide(weights: ArrayLike<number>, alpha: number, beta: number, p: 1 | 2): SQLayerDecision {
  const threshold = sqThreshold(alpha, beta, p);
  let zeros = 0;
  for (let i = 0; i < weights.length; i++) if (Math.abs(weights[i]) < threshold) zeros++;
  return sqDecision(alpha, beta, p, weights.length ? zeros / weights.length : 0);
}

/**
 * The decision from α, β and the fraction of weights in the zero basin |w| < t(β) (§3.3): binary iff
 * tan β ≥ SQ_TAN_BINARY (the quantizer is then α·sign*(w), threshold 0) or no weight is in the basin.
 * Both cases are exact: a layer reported binary has no zero in its quantized weights, so the
 * accuracy measured in training is the accuracy of the packed model. (ALGORITHMS §3.3 also calls a
 * layer with < 0.5 % of its weights in the basin binary; we do not, since those zeros are real.)
 */
export function sqDecision(alpha: number, beta: number, p: 1 | 2, zeroFraction: number): SQLayerDecision {
  const tanBeta = Math.tan(beta);
  const byAngle = tanBeta >= SQ_TAN_BINARY;
  const binary = byAngle || zeroFraction === 0;
  return { mode: binary ? 'binary' : 'ternary', tanBeta, threshold: sqQuantThresholdOf(alpha, beta, p), zeroFraction: byAngle ? 0 : zeroFraction };
}

export interface BitsSummary {
  weights: number;
  /** average bits/weight as packed: binary 1, ternary 2 */
  packedBits: number;
  /** average bits/weight with ternary at log2(3) ≈ 1.585 (the information content) */
  entropyBits: number;
  binaryLayers: number;
  ternaryLayers: number;
}

/** Average bits/weight over layers of n weights each, binary or ternary. */
export function sqBits(layers: readonly { n: number; mode: 'binary' | 'ternary' }[]): BitsSummary {
  let n = 0;
  let packed = 0;
  let ent = 0;
  let b = 0;
  for (const l of layers) {
    n += l.n;
    if (l.mode === 'binary') (packed += l.n), (ent += l.n), b++;
    else (packed += 2 * l.n), (ent += Math.log2(3) * l.n);
  }
  return { weights: n, packedBits: n ? packed / n : 0, entropyBits: n ? ent / n : 0, binaryLayers: b, ternaryLayers: layers.length - b };
}

/** A layer as the SQ helpers read it: its latent weight and its `sq_alpha` / `sq_beta` parameters. */
export interface SQLayerLike {
  readonly weight: Tensor;
  param(name: string): Tensor;
}

/** λ·Σ_l [R_l + γ·cot β_l] over SQ layers (a scalar tensor, differentiable in W, α, β). */
export function sqPenalty(layers: readonly SQLayerLike[], lambda: number, h: { p: 1 | 2; gamma: number }): Tensor | null {
  let total: Tensor | null = null;
  for (const s of layers) {
    const r = sqRegularizer(s.weight, s.param('sq_alpha'), s.param('sq_beta'), { p: h.p, gamma: h.gamma });
    total = total ? add(total, r) : r;
  }
  return total ? mulScalar(total, lambda) : null;
}

/**
 * The smallest β of a binary layer: tan β = 101, a little above SQ_TAN_BINARY so that the f32 β and
 * the GPU's tan() still read as binary.
 */
export const SQ_BETA_BINARY = Math.atan(SQ_TAN_BINARY + 1);

/** [SQ_BETA_BINARY, SQ_BETA_MIN] as kept [1] tensors, one pair per device (made on first use). */
const floorConsts = new WeakMap<object, [Tensor, Tensor]>();
function floorConstants(): [Tensor, Tensor] {
  const g = engine().gpu;
  let c = floorConsts.get(g);
  if (!c || c[0].released) floorConsts.set(g, (c = [tensor([SQ_BETA_BINARY], [1]).keep(), tensor([SQ_BETA_MIN], [1]).keep()]));
  return c;
}

/**
 * Before an optimizer step: per SQ layer, the floor its β keeps after the step — SQ_BETA_BINARY if
 * the layer is binary now (a binary layer stays binary: its decision is made the first time tan β
 * reaches SQ_TAN_BINARY), else π/4. Computed on the GPU; pass the result to `sqClipBeta_`.
 */
export function sqBetaFloors(betas: readonly Tensor[]): Tensor[] {
  const [bin, min] = floorConstants();
  return tidy(() => noGrad(() => betas.map((b) => where(ge(b, bin), bin, min))), 'sq floors');
}

/**
 * Clip every SQ β to [floor, π/2 − ε] after an optimizer step; the floor is π/4, or the per-layer
 * floors from `sqBetaFloors` taken before the step (released here).
 */
export function sqClipBeta_(betas: readonly Tensor[], floors?: readonly (Tensor | null)[]): void {
  tidy(() => noGrad(() => {
    betas.forEach((b, i) => {
      const f = floors?.[i];
      copy_(b, clamp(f ? maximum(b, f) : b, SQ_BETA_MIN, SQ_BETA_MAX));
    });
  }), 'sq clip');
  for (const f of floors ?? []) if (f && !f.released) f.release();
}

/**
 * Each SQ layer's decision (layers of other methods are skipped): the zero-basin count comes from
 * the regularizer kernel (`sqStats`), so only α, β and four statistics are read back per layer.
 */
export async function sqDecisions(states: readonly { name: string; state: WeightQuantState }[]): Promise<(SQLayerDecision & { name: string; n: number; alpha: number; beta: number })[]> {
  const out: (SQLayerDecision & { name: string; n: number; alpha: number; beta: number })[] = [];
  for (const { name, state } of states) {
    if (state.spec.method !== 'sq') continue;
    const p = state.spec.p;
    const alpha = state.param('sq_alpha');
    const beta = state.param('sq_beta');
    const stats = noGrad(() => sqStats(state.weight, alpha, beta, { p }));
    const [st, a, b] = await Promise.all([stats.data(), alpha.data(), beta.data()]);
    stats.release();
    const n = state.weight.size;
    out.push({ name, n, alpha: a[0], beta: b[0], ...sqDecision(a[0], b[0], p, n ? st[3] / n : 0) });
  }
  return out;
}
