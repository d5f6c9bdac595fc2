/**
 * ELQ: explicit loss-error-aware quantization (Zhou et al. CVPR 2018), as reconstructed in
 * ALGORITHMS §5.2 (the paper's equations are not public; this is our implementable reading).
 *
 *  - Weights become α_l·T_l, T ∈ {−1, 0, +1} (ternary) or {−1, +1} (binary), one α per layer.
 *  - Incremental (INQ-style, see inq.ts): 50 → 75 → 87.5 → 100 % of each layer's weights are
 *    quantized and frozen, largest |W| first; the rest trains in float.
 *  - The free weights are trained with J = E + λ_E·|ΔE| + λ_W·‖W − Q(W)‖²/n, where Q(W) is what the
 *    free weights would be quantized to and ΔE ≈ ⟨g, Q(W) − W⟩ (first order, g = ∂E/∂W treated
 *    as a constant) is the loss change that quantizing them would cause. Its gradient is
 *    −sign(ΔE)·g, so the task gradient becomes g·(1 − λ_E·sign(ΔE_l)) + 2λ_W·(W − Q(W))/n.
 *    This runs on the GPU between backward and the optimizer step (see `QuantHooks`), per layer.
 *  - Our choices [D]: Δ and α are solved once, at the first freeze, from the whole layer (TWN rule
 *    Δ = 0.7·mean|W|, α = mean_{|w|>Δ}|w|; binary α = mean|W|), so a layer ends with one α;
 *    λ_W = 1e-4 / mean|W|² (scale-free) as in §5.2; λ_E defaults to 0.5, not 1: with λ_E = 1 the
 *    factor (1 − λ_E·sign ΔE) switches the whole task gradient of a layer off whenever ΔE > 0.
 */
import { abs, add, affine, copy_, full, gt, mul, noGrad, sign, sub, sum, type Tensor, tidy } from '../autograd/index.ts';
import type { IncrementalState } from './inq.ts';

export interface ELQOptions {
  /** loss-perturbation weight λ_E (default 0.5, see the file comment) */
  lambdaE?: number;
  /** weight-approximation weight; default 1e-4 / mean|W|² at the first freeze */
  lambdaW?: number;
}

/** Closed-form ternary/binary scale and threshold of a layer (TWN / BWN rules). */
export function elqScale(values: ArrayLike<number>, mode: 'ternary' | 'binary'): { alpha: number; delta: number } {
  const n = values.length;
  let s = 0;
  for (let i = 0; i < n; i++) s += Math.abs(values[i]);
  const meanAbs = n ? s / n : 0;
  if (mode === 'binary') return { alpha: meanAbs, delta: 0 };
  const delta = 0.7 * meanAbs;
  let m = 0;
  let c = 0;
  for (let i = 0; i < n; i++) {
    const a = Math.abs(values[i]);
    if (a > delta) (m += a), c++;
  }
  return { alpha: c ? m / c : 0, delta };
}

/** The ELQ quantizer of one layer (host side: used when weights are frozen). */
export class ELQQuantizer {
  alpha = 0;
  delta = 0;
  meanAbs = 0;
  solved = false;
  constructor(readonly mode: 'ternary' | 'binary') {}

  solve(all: ArrayLike<number>): void {
    const r = elqScale(all, this.mode);
    this.alpha = r.alpha;
    this.delta = r.delta;
    let s = 0;
    for (let i = 0; i < all.length; i++) s += Math.abs(all[i]);
    this.meanAbs = all.length ? s / all.length : 0;
    this.solved = true;
  }

  value(w: number): number {
    if (this.mode === 'binary') return w >= 0 ? this.alpha : -this.alpha;
    return Math.abs(w) > this.delta ? (w > 0 ? this.alpha : -this.alpha) : 0;
  }

  quantize = (all: Float32Array, idx: number[]): Float32Array => {
    if (!this.solved) this.solve(all);
    return Float32Array.from(idx, (i) => this.value(all[i]));
  };

  /** Q(W) on the GPU (no gradient): α·sign(W) (binary) or α·sign(W)·1[|W| > Δ] (ternary). */
  quantizeGpu(w: Tensor): Tensor {
    return noGrad(() => {
      const s = sign(w);
      if (this.mode === 'binary') return affine(s, this.alpha, 0);
      const d = full([1], this.delta);
      return mul(affine(s, this.alpha, 0), gt(abs(w), d));
    });
  }
}

/**
 * Replace `w.grad` by the ELQ gradient of the free weights (see the file comment). Call after
 * backward, before the optimizer step. Runs on the GPU, reads nothing back.
 */
export function elqAdjustGrad_(w: Tensor, state: IncrementalState, q: ELQQuantizer, opts: ELQOptions = {}): void {
  const g = w.grad;
  if (!g || !q.solved || state.fraction >= 1) return;
  const lambdaE = opts.lambdaE ?? 0.5;
  const lambdaW = opts.lambdaW ?? (q.meanAbs > 0 ? 1e-4 / (q.meanAbs * q.meanAbs) : 0);
  tidy(() => noGrad(() => {
    const d = mul(sub(q.quantizeGpu(w), w), state.freeMask); // Q(W) − W on free weights
    const dE = sum(mul(g, d)); // ΔE_l (first order)
    const factor = affine(sign(dE), -lambdaE, 1); // 1 − λ_E·sign(ΔE)
    const out = add(mul(g, factor), affine(d, (-2 * lambdaW) / w.size, 0));
    copy_(g, mul(out, state.freeMask));
  }), 'elq grad');
}
