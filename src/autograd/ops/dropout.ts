/**
 * dropout(x, p, seed, training): in training, zeroes each element with probability p and scales
 * the kept ones by 1/(1 - p) (inverted dropout); the mask is a hash of (seed, element index) on
 * the GPU, so the same seed gives the same mask and the backward regenerates it (nothing saved).
 * In eval mode (or with p = 0) it is the identity: a copy whose gradient passes straight through.
 */
import * as dk from '../../kernels/dropout.ts';
import { engine } from '../engine.ts';
import { record } from '../tape.ts';
import { Tensor } from '../tensor.ts';
import { checkDtype } from './check.ts';
import { clone } from './creation.ts';

export function dropout(x: Tensor, p: number, seed: number, training: boolean): Tensor {
  const op = 'dropout';
  checkDtype(op, x, 'f32');
  if (typeof p !== 'number' || !(p >= 0 && p < 1)) throw new Error(`webqat: ${op}: p must be in [0, 1), got ${p} (for ${x.describe()})`);
  if (!Number.isInteger(seed)) throw new Error(`webqat: ${op}: seed must be an integer, got ${seed} (for ${x.describe()})`);
  if (!training || p === 0) return record(op, [x], clone(x), (g) => [g]);
  const y = Tensor.empty(x.shape, 'f32', op);
  dk.dropoutApply(engine().gpu, x.buf, y.buf, x.size, p, seed, op);
  return record(op, [x], y, (g) => {
    const dx = Tensor.empty(x.shape, 'f32', `${op} backward`);
    dk.dropoutApply(engine().gpu, g.buf, dx.buf, x.size, p, seed, `${op} backward`);
    return [dx];
  });
}
