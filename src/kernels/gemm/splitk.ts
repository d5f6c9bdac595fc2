/**
 * The one split-K planner, and the fixed-order sum of the split partials.
 *
 * A GEMM whose output is small and whose reduction is long (weight gradients: K = N·Ho·Wo) leaves
 * most of the adapter idle with one workgroup per output tile. Split-K cuts K into `splits` slices of
 * `chunk`, each slice accumulated by its own workgroups into its own partial buffer; `sumSplits` then
 * adds the partials in slice order, so results are deterministic (no atomics, no order races).
 */
import { grid1d } from '../../gpu/index.ts';
import { flatIndex, type GBuf, type Gpu, mainSig, Uniforms } from '../common.ts';

export interface SplitPlan {
  splits: number;
  /** K per split; a multiple of `align` (the last split may be shorter) */
  chunk: number;
}

/**
 * Split K when `parallel` independent units (workgroups or threads) fall short of `target`: as
 * many splits as reach the target, none shorter than `minChunk`, each a multiple of `align` long.
 */
export function planSplitK(K: number, parallel: number, target: number, minChunk: number, align = 1): SplitPlan {
  const want = Math.max(1, Math.min(Math.ceil(target / Math.max(1, parallel)), Math.floor(K / minChunk)));
  const chunk = Math.max(align, Math.ceil(Math.ceil(K / want) / align) * align);
  return { splits: Math.ceil(K / chunk), chunk };
}

/** One split over all of K (chunk = K rounded up to `align`). */
export const wholeK = (K: number, align = 1): SplitPlan => planSplitK(K, 1, 1, K, align);

const sumSplitsCode = () => /* wgsl */ `
struct P { n: u32, splits: u32, pad0: u32, pad1: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> part: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
${mainSig()} {
  ${flatIndex()}
  if (i >= p.n) { return; }
  var s = 0.0;
  for (var k = 0u; k < p.splits; k++) { s += part[k * p.n + i]; }
  y[i] = s;
}`;

/** out[i] = Σ_s part[s · n + i] for i < n, s in order. */
export function sumSplits(gpu: Gpu, part: GBuf, out: GBuf, n: number, splits: number, what: string): void {
  const pipe = gpu.pipeline('gemm:sumSplits', sumSplitsCode);
  gpu.dispatch(pipe, [part, out], new Uniforms().u32(n).u32(splits).u32(0).u32(0).done(), grid1d(n, 256), what);
}
