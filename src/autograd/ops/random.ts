/**
 * Random tensors from the counter-based GPU generator (kernels/random.ts). The same (shape, seed,
 * parameters) always gives the same values, on every device and dispatch layout. No autograd.
 */
import * as rnd from '../../kernels/random.ts';
import { engine } from '../engine.ts';
import { type Shape, Tensor } from '../tensor.ts';
import { checkDtype } from './check.ts';

function gpu() {
  return engine().gpu;
}

function checkFinite(op: string, vals: Record<string, number>): void {
  for (const [k, v] of Object.entries(vals)) {
    if (!Number.isFinite(v)) throw new Error(`webqat: ${op}: ${k} must be a finite number, got ${v}`);
  }
}

/** Uniform values in [lo, hi). */
export function rand(shape: Shape, seed: number, lo = 0, hi = 1): Tensor {
  checkFinite('rand', { seed, lo, hi });
  const t = Tensor.empty(shape, 'f32', 'rand');
  rnd.random(gpu(), 'uniform', t.buf, t.size, seed, lo, hi);
  return t;
}

/** Normal values with the given mean and standard deviation (Box-Muller). */
export function randn(shape: Shape, seed: number, mean = 0, std = 1): Tensor {
  checkFinite('randn', { seed, mean, std });
  const t = Tensor.empty(shape, 'f32', 'randn');
  rnd.random(gpu(), 'normal', t.buf, t.size, seed, mean, std);
  return t;
}

/** Overwrite `t` in place with uniform values in [lo, hi). */
export function uniform_(t: Tensor, lo: number, hi: number, seed: number): Tensor {
  checkDtype('uniform_', t, 'f32');
  checkFinite('uniform_', { seed, lo, hi });
  rnd.random(gpu(), 'uniform', t.buf, t.size, seed, lo, hi);
  return t;
}

/** Overwrite `t` in place with normal values. */
export function normal_(t: Tensor, mean: number, std: number, seed: number): Tensor {
  checkDtype('normal_', t, 'f32');
  checkFinite('normal_', { seed, mean, std });
  rnd.random(gpu(), 'normal', t.buf, t.size, seed, mean, std);
  return t;
}

/** f32 mask of 1 (probability keepProb) and 0, e.g. for dropout. */
export function bernoulliMask(shape: Shape, keepProb: number, seed: number): Tensor {
  checkFinite('bernoulliMask', { seed, keepProb });
  if (keepProb < 0 || keepProb > 1) throw new Error(`webqat: bernoulliMask: keepProb must be in [0, 1], got ${keepProb}`);
  const t = Tensor.empty(shape, 'f32', 'bernoulliMask');
  rnd.random(gpu(), 'bernoulli', t.buf, t.size, seed, keepProb, 0);
  return t;
}
