/**
 * Weight initialisation on the GPU (ops/random.ts: counter-based RNG, reproducible for a seed), and
 * seed derivation so that a model built from one seed gives every layer its own stream.
 */
import { fill_, normal_, shapeStr, type Tensor, uniform_ } from '../autograd/index.ts';

/** Mix `seed` and `k` into a new 32-bit seed (murmur3 finaliser); distinct k give unrelated streams. */
export function deriveSeed(seed: number, k: number): number {
  let h = (Math.imul((seed >>> 0) ^ 0x9e3779b9, 0x85ebca6b) + Math.imul(k >>> 0, 0xc2b2ae35)) >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** A sequence of derived seeds: `next()` gives seed 0, 1, 2 ... of the stream. */
export class SeedSequence {
  private k = 0;
  constructor(readonly seed: number) {}
  next(): number {
    return deriveSeed(this.seed, this.k++);
  }
}

/** fan_in and fan_out of a weight: Linear [out, in]; Conv [out, in/groups, kh, kw] (times the receptive field). */
export function computeFans(shape: readonly number[]): { fanIn: number; fanOut: number } {
  if (shape.length < 2) throw new Error(`webqat: init: cannot compute fan in/out of a tensor with shape ${shapeStr(shape)} (need rank >= 2)`);
  let receptive = 1;
  for (let i = 2; i < shape.length; i++) receptive *= shape[i];
  return { fanIn: shape[1] * receptive, fanOut: shape[0] * receptive };
}

export type FanMode = 'fan_in' | 'fan_out';

export interface KaimingOptions {
  seed?: number;
  mode?: FanMode;
  /** gain (default sqrt(2), the ReLU gain) */
  gain?: number;
}

function fan(t: Tensor, mode: FanMode): number {
  const f = computeFans(t.shape);
  return mode === 'fan_in' ? f.fanIn : f.fanOut;
}

/** Kaiming/He normal: N(0, gain² / fan), fan_in by default, ReLU gain. */
export function heNormal_(t: Tensor, opts: KaimingOptions = {}): Tensor {
  const std = (opts.gain ?? Math.SQRT2) / Math.sqrt(fan(t, opts.mode ?? 'fan_in'));
  return normal_(t, 0, std, opts.seed ?? 0);
}

/** Kaiming/He uniform: U(-b, b), b = gain · sqrt(3 / fan). */
export function heUniform_(t: Tensor, opts: KaimingOptions = {}): Tensor {
  const bound = (opts.gain ?? Math.SQRT2) * Math.sqrt(3 / fan(t, opts.mode ?? 'fan_in'));
  return uniform_(t, -bound, bound, opts.seed ?? 0);
}

export interface GlorotOptions {
  seed?: number;
  gain?: number;
}

/** Glorot/Xavier uniform: U(-b, b), b = gain · sqrt(6 / (fan_in + fan_out)). */
export function glorotUniform_(t: Tensor, opts: GlorotOptions = {}): Tensor {
  const { fanIn, fanOut } = computeFans(t.shape);
  const bound = (opts.gain ?? 1) * Math.sqrt(6 / (fanIn + fanOut));
  return uniform_(t, -bound, bound, opts.seed ?? 0);
}

/** Glorot/Xavier normal: N(0, gain² · 2 / (fan_in + fan_out)). */
export function glorotNormal_(t: Tensor, opts: GlorotOptions = {}): Tensor {
  const { fanIn, fanOut } = computeFans(t.shape);
  const std = (opts.gain ?? 1) * Math.sqrt(2 / (fanIn + fanOut));
  return normal_(t, 0, std, opts.seed ?? 0);
}

/**
 * PyTorch's default for Linear/Conv weights (kaiming_uniform with a = sqrt(5)): U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
 * The same bound is PyTorch's default for their biases (`biasFanIn` = the weight's fan_in).
 */
export function torchDefault_(t: Tensor, opts: { seed?: number; fanIn?: number } = {}): Tensor {
  const f = opts.fanIn ?? computeFans(t.shape).fanIn;
  const bound = 1 / Math.sqrt(f);
  return uniform_(t, -bound, bound, opts.seed ?? 0);
}

export type InitName = 'he-normal' | 'he-normal-fan-out' | 'he-uniform' | 'glorot-uniform' | 'glorot-normal' | 'torch-default' | 'zeros';

/** Apply a named initialiser to a weight. */
export function initWeight_(t: Tensor, init: InitName, seed: number): Tensor {
  switch (init) {
    case 'he-normal':
      return heNormal_(t, { seed });
    case 'he-normal-fan-out':
      return heNormal_(t, { seed, mode: 'fan_out' });
    case 'he-uniform':
      return heUniform_(t, { seed });
    case 'glorot-uniform':
      return glorotUniform_(t, { seed });
    case 'glorot-normal':
      return glorotNormal_(t, { seed });
    case 'torch-default':
      return torchDefault_(t, { seed });
    case 'zeros':
      return fill_(t, 0);
    default:
      throw new Error(`webqat: init: unknown initialiser '${init as string}' (known: he-normal, he-normal-fan-out, he-uniform, glorot-uniform, glorot-normal, torch-default, zeros)`);
  }
}
