/**
 * Incremental quantization (INQ, Zhou et al. 2017; ALGORITHMS §1.5) and the machinery ELQ reuses.
 *
 * Each quantized layer keeps, next to its latent float weight W, a mask F (1 = frozen) and the
 * frozen quantized values Q (0 where not frozen). The forward pass uses
 *     Ŵ = W ⊙ (1 − F) + Q
 * so frozen weights keep their quantized value and get no gradient (INQ's W ← W − lr·(∂E/∂W ⊙ T),
 * T = 1 − F), while the rest trains in float. At each stage boundary the largest-|W| part of the
 * still-free weights is quantized and frozen, so the accumulated quantized portion goes
 * 50 % → 75 % → 87.5 % → 100 %. The partition and the quantization run on the host (4 times per
 * run; the weights are read back once per stage), the per-step work is two element-wise ops.
 */
import { add, assignData, mul, noGrad, ones, type Tensor, zeros } from '../autograd/index.ts';

/** Accumulated quantized portions (INQ, ELQ). */
export const INCREMENTAL_FRACTIONS: readonly number[] = Object.freeze([0.5, 0.75, 0.875, 1]);

/** The INQ level set for max|W| = s and b bits: P = {0, ±2^n2, ..., ±2^n1}. */
export function inqLevels(maxAbs: number, bits: number): { n1: number; n2: number; levels: number[] } {
  if (!Number.isInteger(bits) || bits < 2 || bits > 8) throw new Error(`webqat: inqLevels: bits must be 2..8, got ${bits}`);
  if (!(maxAbs > 0)) return { n1: 0, n2: 0, levels: [] };
  const n1 = Math.floor(Math.log2((4 * maxAbs) / 3));
  const n2 = n1 + 1 - 2 ** (bits - 1) / 2;
  const levels: number[] = [];
  for (let e = n2; e <= n1; e++) levels.push(2 ** e);
  return { n1, n2, levels };
}

/**
 * Quantize one value to the INQ levels (ascending positive powers of two): β·sign(w) when
 * (α_prev + β)/2 ≤ |w| < 3β/2 (α_prev: the next smaller level, 0 below the smallest), else 0.
 */
export function inqQuantizeValue(w: number, levels: readonly number[]): number {
  const a = Math.abs(w);
  for (let k = levels.length - 1; k >= 0; k--) {
    const beta = levels[k];
    const prev = k > 0 ? levels[k - 1] : 0;
    if (a >= (prev + beta) / 2 && a < (3 * beta) / 2) return w < 0 ? -beta : beta;
  }
  return 0;
}

/**
 * Mark the `fraction` of all weights with the largest |w| as frozen, keeping those already frozen:
 * returns the new mask (1 = frozen). Ties break by index, so the result is deterministic.
 */
export function magnitudeMask(values: ArrayLike<number>, fraction: number, previous?: ArrayLike<number>): Uint8Array {
  if (!(fraction >= 0 && fraction <= 1)) throw new Error(`webqat: magnitudeMask: fraction must be in [0, 1], got ${fraction}`);
  const n = values.length;
  const mask = new Uint8Array(n);
  let frozen = 0;
  if (previous) {
    for (let i = 0; i < n; i++) if (previous[i]) (mask[i] = 1), frozen++;
  }
  const target = Math.min(n, Math.round(fraction * n));
  if (frozen >= target) return mask;
  const free: number[] = [];
  for (let i = 0; i < n; i++) if (!mask[i]) free.push(i);
  free.sort((i, j) => Math.abs(values[j]) - Math.abs(values[i]) || i - j);
  for (let k = 0; k < target - frozen; k++) mask[free[k]] = 1;
  return mask;
}

/**
 * Where in the schedule a run is: `warmup` (a fraction of training, float) first, then one unit per
 * partial stage and `finalFactor` units for the last (100 %) stage.
 */
export class IncrementalSchedule {
  readonly boundaries: number[];
  constructor(
    readonly totalSteps: number,
    readonly fractions: readonly number[] = INCREMENTAL_FRACTIONS,
    readonly opts: { warmup?: number; finalFactor?: number } = {},
  ) {
    if (!Number.isInteger(totalSteps) || totalSteps < 1) throw new Error(`webqat: IncrementalSchedule: totalSteps must be a positive integer, got ${totalSteps}`);
    for (let i = 0; i < fractions.length; i++) {
      const f = fractions[i];
      if (!(f > 0 && f <= 1) || (i > 0 && f <= fractions[i - 1])) {
        throw new Error(`webqat: IncrementalSchedule: fractions must increase within (0, 1], got ${fractions.join(', ')}`);
      }
    }
    const warm = opts.warmup ?? 0;
    if (!(warm >= 0 && warm < 1)) throw new Error(`webqat: IncrementalSchedule: warmup must be in [0, 1), got ${warm}`);
    const final = opts.finalFactor ?? 2;
    const units = fractions.length - 1 + final;
    const start = Math.round(warm * totalSteps);
    const per = (totalSteps - start) / units;
    // boundaries[k]: the step at which fractions[k] becomes active
    this.boundaries = fractions.map((_, k) => Math.min(totalSteps - 1, Math.round(start + k * per)));
  }

  /** The accumulated quantized fraction at optimizer step `step` (0 before the first boundary). */
  fractionAt(step: number): number {
    let f = 0;
    for (let k = 0; k < this.fractions.length; k++) if (step >= this.boundaries[k]) f = this.fractions[k];
    return f;
  }
}

/**
 * The per-layer incremental state: frozen mask and values on the GPU. `quantize` maps the layer's
 * float weights (all of them, for statistics) and the indices to freeze to their quantized values.
 */
export class IncrementalState {
  /** 1 − F (1 where the weight still trains) */
  readonly freeMask: Tensor;
  /** Q: frozen quantized values, 0 elsewhere */
  readonly frozen: Tensor;
  /** host copy of F */
  mask: Uint8Array;
  /** host copy of Q */
  values: Float32Array;
  fraction = 0;

  constructor(readonly shape: readonly number[]) {
    const n = shape.reduce((s, d) => s * d, 1);
    this.freeMask = ones(shape).keep();
    this.frozen = zeros(shape).keep();
    this.mask = new Uint8Array(n);
    this.values = new Float32Array(n);
  }

  /** Ŵ = W ⊙ (1 − F) + Q (differentiable in W; frozen weights get no gradient). */
  apply(w: Tensor): Tensor {
    if (this.fraction === 0) return w;
    return add(mul(w, this.freeMask), this.frozen);
  }

  /**
   * Freeze up to `fraction` of the weights (largest |W| among the free ones first) with values from
   * `quantize(all weights, newly frozen indices) -> their values`.
   */
  async advance(w: Tensor, fraction: number, quantize: (all: Float32Array, idx: number[]) => Float32Array): Promise<number> {
    if (fraction <= this.fraction) return 0;
    const data = (await w.data()) as Float32Array;
    const mask = magnitudeMask(data, fraction, this.mask);
    const idx: number[] = [];
    for (let i = 0; i < mask.length; i++) if (mask[i] && !this.mask[i]) idx.push(i);
    const q = quantize(data, idx);
    for (let k = 0; k < idx.length; k++) this.values[idx[k]] = q[k];
    this.mask = mask;
    this.fraction = fraction;
    const free = new Float32Array(mask.length);
    for (let i = 0; i < mask.length; i++) free[i] = mask[i] ? 0 : 1;
    noGrad(() => {
      assignData(this.freeMask, free);
      assignData(this.frozen, this.values);
    });
    return idx.length;
  }

  release(): void {
    this.freeMask.release();
    this.frozen.release();
  }
}

/** The INQ weight quantizer of one layer: levels fixed from max|W| at the first freeze. */
export class INQQuantizer {
  levels: number[] | null = null;
  constructor(readonly bits: number) {}
  quantize = (all: Float32Array, idx: number[]): Float32Array => {
    if (!this.levels) {
      let s = 0;
      for (const v of all) s = Math.max(s, Math.abs(v));
      this.levels = inqLevels(s, this.bits).levels;
    }
    const levels = this.levels;
    return Float32Array.from(idx, (i) => inqQuantizeValue(all[i], levels));
  };
}
