/**
 * batchNorm(x [N, C, H, W] or [N, C], gamma [C], beta [C], runningMean [C], runningVar [C],
 *           { training, momentum = 0.1, eps = 1e-5 })
 *
 * training: normalises with the batch statistics (biased variance) and updates runningMean and
 * runningVar in place (running = (1 - momentum)·running + momentum·batch, unbiased variance for
 * runningVar, as PyTorch). eval: normalises with the running statistics. Differentiable in x,
 * gamma and beta in both modes. The per-channel mean and invstd used by the backward are saved in
 * the output's own GPU buffer (after the output, 256-byte aligned), so they live exactly as long as
 * the output does. The running statistics are state, not inputs: no gradient flows to them.
 */
import * as bk from '../../kernels/batchnorm.ts';
import { ALIGN, subBuffer } from '../../gpu/index.ts';
import { engine } from '../engine.ts';
import { record } from '../tape.ts';
import { shapeStr, Tensor } from '../tensor.ts';

export interface BatchNormOptions {
  training: boolean;
  momentum?: number;
  eps?: number;
  /** fuse a ReLU: max(batchNorm(x), 0) in the same passes, forward and backward (default false) */
  relu?: boolean;
  /**
   * fuse the DoReFa activation quantizer of this many bits (1..8, or 32 for the clip alone):
   * quantDorefaAct(batchNorm(x), bits) in the same passes, bit-identical (not with `relu`)
   */
  dorefaBits?: number;
}

export function batchNorm(
  x: Tensor, gamma: Tensor, beta: Tensor, runningMean: Tensor, runningVar: Tensor, opts: BatchNormOptions,
): Tensor {
  const dorefa = opts?.dorefaBits;
  const op = opts?.relu ? 'batchNorm+relu' : dorefa !== undefined ? 'batchNorm+dorefa' : 'batchNorm';
  if (dorefa !== undefined) {
    if (opts.relu) throw new Error(`webqat: ${op}: relu and dorefaBits cannot both be fused`);
    if (!(Number.isInteger(dorefa) && ((dorefa >= 1 && dorefa <= 8) || dorefa === 32))) {
      throw new Error(`webqat: ${op}: dorefaBits must be an integer in 1..8 or 32, got ${dorefa}`);
    }
  }
  const levels = dorefa === undefined || dorefa === 32 ? 0 : 2 ** dorefa - 1;
  const all = [x, gamma, beta, runningMean, runningVar];
  const desc = () =>
    `x ${x.dtype}${shapeStr(x.shape)}, gamma ${gamma.dtype}${shapeStr(gamma.shape)}, beta ${beta.dtype}${shapeStr(beta.shape)}, ` +
    `runningMean ${runningMean.dtype}${shapeStr(runningMean.shape)}, runningVar ${runningVar.dtype}${shapeStr(runningVar.shape)}`;
  for (const t of all) {
    if (t.released) throw new Error(`webqat: ${op}: ${t.describe()} was used after release`);
  }
  if (all.some((t) => t.dtype !== 'f32')) throw new Error(`webqat: ${op}: expected f32 tensors, got ${desc()}`);
  if ((x.rank !== 4 && x.rank !== 2) || x.size === 0) throw new Error(`webqat: ${op}: x must be a non-empty [N, C, H, W] or [N, C], got ${desc()}`);
  const [N, C] = x.shape;
  const HW = x.rank === 4 ? x.shape[2] * x.shape[3] : 1;
  for (const t of all.slice(1)) {
    if (t.rank !== 1 || t.shape[0] !== C) throw new Error(`webqat: ${op}: gamma, beta, runningMean and runningVar must be [${C}], got ${desc()}`);
  }
  if (!opts || typeof opts.training !== 'boolean') throw new Error(`webqat: ${op}: options { training: boolean } are required, for ${desc()}`);
  const training = opts.training;
  const momentum = opts.momentum ?? 0.1;
  const eps = opts.eps ?? 1e-5;
  if (!(momentum >= 0 && momentum <= 1)) throw new Error(`webqat: ${op}: momentum must be in [0, 1], got ${momentum}`);
  if (!(eps > 0)) throw new Error(`webqat: ${op}: eps must be > 0, got ${eps}`);
  if (training && N * HW < 2) {
    throw new Error(`webqat: ${op}: training needs more than one value per channel (N·H·W = ${N * HW}), got ${desc()}`);
  }
  const g: bk.BnGeom = { N, C, HW };
  const gpu = engine().gpu;
  const n = x.size;
  const yBytes = Math.ceil((n * 4) / ALIGN) * ALIGN;
  // one buffer: the output, then the saved [mean (C), invstd (C)]
  const whole = Tensor.empty([yBytes / 4 + 2 * C], 'f32', op);
  const y = whole.viewAs(x.shape);
  whole.release();
  const saved = () => subBuffer(y.buf, yBytes, 2 * C * 4);
  bk.batchNormStats(gpu, g, x.buf, runningMean.buf, runningVar.buf, saved(), { training, eps, momentum }, op);
  const relu = opts.relu === true;
  bk.batchNormApply(gpu, g, x.buf, gamma.buf, beta.buf, y.buf, yBytes / 4, op, relu ? 'relu' : dorefa !== undefined ? { dorefa: levels } : 'none');
  return record(op, [x, gamma, beta], y, (dy, needs) => {
    const gpu = engine().gpu;
    const dgamma = Tensor.empty([C], 'f32', `${op} backward`);
    const dbeta = Tensor.empty([C], 'f32', `${op} backward`);
    const dx = needs[0] ? Tensor.empty(x.shape, 'f32', `${op} backward`) : null;
    const epi: bk.BnBwdEpi = relu ? { relu: subBuffer(y.buf, 0, n * 4) } : dorefa !== undefined ? { dorefa: levels, beta: beta.buf } : null;
    bk.batchNormBackward(gpu, g, x.buf, dy.buf, gamma.buf, saved(), dgamma.buf, dbeta.buf, dx?.buf ?? null, training, `${op} backward`, epi);
    if (!needs[1]) dgamma.release();
    if (!needs[2]) dbeta.release();
    return [dx, needs[1] ? dgamma : null, needs[2] ? dbeta : null];
  });
}
