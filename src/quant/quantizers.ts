/**
 * Quantizer helpers for the layers. The quantizers themselves are the fused GPU ops of
 * src/autograd/ops/quant.ts (one kernel forward, the STE rule of ALGORITHMS §1 backward):
 * quantBinary (BWN), quantTernary (TWN), quantTtq, quantDorefaWeight / quantDorefaAct, quantPact,
 * quantLsq, quantFixed, quantLog, sqQuantize and sqRegularizer (SQ). This file keeps only what
 * those ops do not cover: initial values of the learnable quantizer parameters (TTQ scales, LSQ
 * step) and the host-side range calibration of fixed-point weights.
 */
import { absMax, absMean, affine, div, gt, lt, mul, mulScalar, noGrad, quantLsqRange, reshape, sum, type Tensor } from '../autograd/index.ts';

/** Initial TTQ scales (Δ = t·max|W|): W_p = mean of W over W > Δ, W_n = mean of −W over W < −Δ; [1] each. */
export function ttqInit(w: Tensor, t = 0.05): { wp: Tensor; wn: Tensor } {
  return noGrad(() => {
    const d = mulScalar(reshape(absMax(w), []), t);
    const pos = gt(w, d);
    const neg = lt(w, mulScalar(d, -1));
    return {
      wp: reshape(div(sum(mul(w, pos)), affine(sum(pos), 1, 1e-12)), [1]),
      wn: reshape(div(mulScalar(sum(mul(w, neg)), -1), affine(sum(neg), 1, 1e-12)), [1]),
    };
  });
}

/** LSQ step initialisation s = 2·mean|v| / √Q_P, a [1] tensor (no gradient). */
export function lsqInit(v: Tensor, bits: number, signed: boolean): Tensor {
  const { qp } = quantLsqRange(bits, signed);
  return noGrad(() => mulScalar(absMean(v), 2 / Math.sqrt(Math.max(qp, 1))));
}

/** The fraction length that covers max|x| with b bits: f = b − 1 − ceil(log2 max|x|). */
export function fixedFracLength(maxAbs: number, bits: number): number {
  return maxAbs > 0 ? bits - 1 - Math.ceil(Math.log2(maxAbs)) : bits - 1;
}

/** The full-scale exponent of log weights: FSR = ceil(log2 max|x|) (0 for all-zero weights). */
export function logFullScale(maxAbs: number): number {
  return maxAbs > 0 ? Math.ceil(Math.log2(maxAbs)) : 0;
}
