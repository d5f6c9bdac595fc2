/**
 * Layers: thin modules over the differentiable ops. Each layer that has weights takes a `seed`, so
 * a model initialised from one seed is reproducible; the weights are created on the GPU.
 */
import {
  avgPool2d,
  batchNorm,
  conv2d,
  dropout,
  flatten,
  globalAvgPool,
  linear,
  maxPool2d,
  relu,
  type Tensor,
  zeros,
  ones,
} from '../autograd/index.ts';
import { deriveSeed, initWeight_, type InitName, torchDefault_ } from './init.ts';
import { Module } from './module.ts';
import type { Parameter } from './parameter.ts';

function checkPositiveInt(what: string, name: string, v: number): void {
  if (!Number.isInteger(v) || v <= 0) throw new Error(`webqat: ${what}: ${name} must be a positive integer, got ${v}`);
}

export interface LinearOptions {
  bias?: boolean;
  seed?: number;
  /** weight initialiser (default 'he-normal'); the bias starts at zero unless init is 'torch-default' */
  init?: InitName;
}

/** y = x · Wᵀ + b, W [out, in], x [N, in]. */
export class Linear extends Module {
  readonly weight: Parameter;
  readonly bias: Parameter | null;

  constructor(readonly inFeatures: number, readonly outFeatures: number, opts: LinearOptions = {}) {
    super();
    checkPositiveInt('Linear', 'inFeatures', inFeatures);
    checkPositiveInt('Linear', 'outFeatures', outFeatures);
    const seed = opts.seed ?? 0;
    const init = opts.init ?? 'he-normal';
    this.weight = this.param('weight', initWeight_(zeros([outFeatures, inFeatures]), init, deriveSeed(seed, 0)));
    if (opts.bias ?? true) {
      const b = zeros([outFeatures]);
      if (init === 'torch-default') torchDefault_(b, { seed: deriveSeed(seed, 1), fanIn: inFeatures });
      this.bias = this.param('bias', b);
    } else this.bias = null;
  }

  forward(x: Tensor): Tensor {
    if (x.rank !== 2 || x.shape[1] !== this.inFeatures) {
      throw new Error(`webqat: Linear(${this.inFeatures}, ${this.outFeatures}): expected input [N, ${this.inFeatures}], got ${x.describe()}`);
    }
    return linear(x, this.weight, this.bias ?? undefined);
  }
}

export interface Conv2dLayerOptions {
  stride?: number;
  padding?: number;
  dilation?: number;
  groups?: number;
  bias?: boolean;
  seed?: number;
  /** weight initialiser (default 'he-normal'); the bias starts at zero unless init is 'torch-default' */
  init?: InitName;
}

/** 2-D convolution, NCHW, weight [out, in/groups, k, k]. */
export class Conv2d extends Module {
  readonly weight: Parameter;
  readonly bias: Parameter | null;
  readonly stride: number;
  readonly padding: number;
  readonly dilation: number;
  readonly groups: number;

  constructor(readonly inChannels: number, readonly outChannels: number, readonly kernelSize: number, opts: Conv2dLayerOptions = {}) {
    super();
    checkPositiveInt('Conv2d', 'inChannels', inChannels);
    checkPositiveInt('Conv2d', 'outChannels', outChannels);
    checkPositiveInt('Conv2d', 'kernelSize', kernelSize);
    this.stride = opts.stride ?? 1;
    this.padding = opts.padding ?? 0;
    this.dilation = opts.dilation ?? 1;
    this.groups = opts.groups ?? 1;
    checkPositiveInt('Conv2d', 'stride', this.stride);
    checkPositiveInt('Conv2d', 'dilation', this.dilation);
    checkPositiveInt('Conv2d', 'groups', this.groups);
    if (!Number.isInteger(this.padding) || this.padding < 0) throw new Error(`webqat: Conv2d: padding must be an integer >= 0, got ${this.padding}`);
    if (inChannels % this.groups || outChannels % this.groups) {
      throw new Error(`webqat: Conv2d: groups (${this.groups}) must divide inChannels (${inChannels}) and outChannels (${outChannels})`);
    }
    const seed = opts.seed ?? 0;
    const init = opts.init ?? 'he-normal';
    const w = zeros([outChannels, inChannels / this.groups, kernelSize, kernelSize]);
    this.weight = this.param('weight', initWeight_(w, init, deriveSeed(seed, 0)));
    if (opts.bias ?? true) {
      const b = zeros([outChannels]);
      if (init === 'torch-default') torchDefault_(b, { seed: deriveSeed(seed, 1), fanIn: (inChannels / this.groups) * kernelSize * kernelSize });
      this.bias = this.param('bias', b);
    } else this.bias = null;
  }

  /** Output spatial size for an input of `size` pixels. */
  outSize(size: number): number {
    return Math.floor((size + 2 * this.padding - this.dilation * (this.kernelSize - 1) - 1) / this.stride) + 1;
  }

  forward(x: Tensor): Tensor {
    if (x.rank !== 4 || x.shape[1] !== this.inChannels) {
      throw new Error(`webqat: Conv2d(${this.inChannels}, ${this.outChannels}): expected input [N, ${this.inChannels}, H, W], got ${x.describe()}`);
    }
    return conv2d(x, this.weight, this.bias, {
      stride: this.stride,
      padding: this.padding,
      dilation: this.dilation,
      groups: this.groups,
    });
  }
}

export interface BatchNormLayerOptions {
  eps?: number;
  momentum?: number;
  /** learnable scale and shift (default true) */
  affine?: boolean;
}

/** Batch normalisation over N (and H, W): [N, C, H, W] (BatchNorm2d) or [N, C] (BatchNorm1d). */
abstract class BatchNormBase extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;
  readonly runningMean: Tensor;
  readonly runningVar: Tensor;
  readonly eps: number;
  readonly momentum: number;

  constructor(readonly numFeatures: number, private readonly rank: number, opts: BatchNormLayerOptions) {
    super();
    checkPositiveInt(this.typeName, 'numFeatures', numFeatures);
    this.eps = opts.eps ?? 1e-5;
    this.momentum = opts.momentum ?? 0.1;
    if (opts.affine ?? true) {
      this.weight = this.param('weight', ones([numFeatures]));
      this.bias = this.param('bias', zeros([numFeatures]));
    } else {
      // fixed scale 1 and shift 0, saved as buffers so the state dict stays complete
      this.weight = this.buffer('weight', ones([numFeatures]));
      this.bias = this.buffer('bias', zeros([numFeatures]));
    }
    this.runningMean = this.buffer('running_mean', zeros([numFeatures]));
    this.runningVar = this.buffer('running_var', ones([numFeatures]));
  }

  /**
   * `{ relu: true }`: max(BN(x), 0) with the ReLU fused into the normalisation's passes;
   * `{ dorefaBits: k }`: the DoReFa k-bit activation quantizer fused the same way.
   */
  forward(x: Tensor, opts: { relu?: boolean; dorefaBits?: number } = {}): Tensor {
    if (x.rank !== this.rank || x.shape[1] !== this.numFeatures) {
      const want = this.rank === 4 ? `[N, ${this.numFeatures}, H, W]` : `[N, ${this.numFeatures}]`;
      throw new Error(`webqat: ${this.typeName}(${this.numFeatures}): expected input ${want}, got ${x.describe()}`);
    }
    return batchNorm(x, this.weight, this.bias, this.runningMean, this.runningVar, {
      training: this.training,
      momentum: this.momentum,
      eps: this.eps,
      relu: opts.relu === true,
      dorefaBits: opts.dorefaBits,
    });
  }
}

export class BatchNorm2d extends BatchNormBase {
  constructor(numFeatures: number, opts: BatchNormLayerOptions = {}) {
    super(numFeatures, 4, opts);
  }
}

export class BatchNorm1d extends BatchNormBase {
  constructor(numFeatures: number, opts: BatchNormLayerOptions = {}) {
    super(numFeatures, 2, opts);
  }
}

export class ReLU extends Module {
  forward(x: Tensor): Tensor {
    return relu(x);
  }
}

export class Identity extends Module {
  forward(x: Tensor): Tensor {
    return x;
  }
}

export interface PoolOptions {
  stride?: number;
  padding?: number;
}

export class MaxPool2d extends Module {
  readonly stride: number;
  readonly padding: number;
  constructor(readonly kernel: number, opts: PoolOptions = {}) {
    super();
    checkPositiveInt('MaxPool2d', 'kernel', kernel);
    this.stride = opts.stride ?? kernel;
    this.padding = opts.padding ?? 0;
  }
  outSize(size: number): number {
    return Math.floor((size + 2 * this.padding - this.kernel) / this.stride) + 1;
  }
  forward(x: Tensor): Tensor {
    return maxPool2d(x, { kernel: this.kernel, stride: this.stride, padding: this.padding });
  }
}

export class AvgPool2d extends Module {
  readonly stride: number;
  readonly padding: number;
  constructor(readonly kernel: number, opts: PoolOptions = {}) {
    super();
    checkPositiveInt('AvgPool2d', 'kernel', kernel);
    this.stride = opts.stride ?? kernel;
    this.padding = opts.padding ?? 0;
  }
  outSize(size: number): number {
    return Math.floor((size + 2 * this.padding - this.kernel) / this.stride) + 1;
  }
  forward(x: Tensor): Tensor {
    return avgPool2d(x, { kernel: this.kernel, stride: this.stride, padding: this.padding });
  }
}

/** [N, C, H, W] -> [N, C] (mean over H and W). */
export class GlobalAvgPool extends Module {
  forward(x: Tensor): Tensor {
    return globalAvgPool(x);
  }
}

/** Flatten dimensions from `startDim` on (default: keep the batch dimension). */
export class Flatten extends Module {
  constructor(readonly startDim = 1) {
    super();
  }
  forward(x: Tensor): Tensor {
    return flatten(x, this.startDim);
  }
}

/**
 * Dropout with probability `p` (inverted: kept values scale by 1/(1-p)). Each training-mode call
 * draws a fresh mask from (seed, call counter), so a run is reproducible from the seed.
 */
export class Dropout extends Module {
  /** number of training-mode forward calls so far (part of each call's mask seed) */
  calls = 0;
  readonly seed: number;
  constructor(readonly p = 0.5, opts: { seed?: number } = {}) {
    super();
    if (!(p >= 0 && p < 1)) throw new Error(`webqat: Dropout: p must be in [0, 1), got ${p}`);
    this.seed = opts.seed ?? 0;
  }
  forward(x: Tensor): Tensor {
    if (!this.training || this.p === 0) return x;
    return dropout(x, this.p, deriveSeed(this.seed, this.calls++), true);
  }
}

/** Modules applied in order; children are named '0', '1', ... */
export class Sequential extends Module {
  private readonly layers: Module[] = [];
  constructor(...layers: Module[]) {
    super();
    for (const l of layers) this.add(l);
  }
  add(m: Module): this {
    this.module(String(this.layers.length), m);
    this.layers.push(m);
    return this;
  }
  get length(): number {
    return this.layers.length;
  }
  at(i: number): Module {
    const m = this.layers[i < 0 ? this.layers.length + i : i];
    if (!m) throw new Error(`webqat: Sequential: no layer ${i} (it has ${this.layers.length})`);
    return m;
  }
  [Symbol.iterator](): Iterator<Module> {
    return this.layers[Symbol.iterator]();
  }
  forward(x: Tensor): Tensor {
    let h = x;
    for (const l of this.layers) h = l.forward(h);
    return h;
  }
}

/** Older names of the layer option types (imported directly from this file; the public entry exports the *Layer* names). */
export type Conv2dOptions = Conv2dLayerOptions;
export type BatchNormOptions = BatchNormLayerOptions;
