/**
 * LeNet-5 (classic, with ReLU and max pooling): conv 6@5x5 pad 2 on 28x28 -> pool -> conv 16@5x5 ->
 * pool -> 120 -> 84 -> classes (61,706 parameters for 1x28x28 and 10 classes), and the variant used
 * by the TWN paper: 32C5 - MP2 - 64C5 - MP2 - 512FC - classes.
 */
import type { Tensor } from '../autograd/index.ts';
import { SeedSequence } from '../nn/init.ts';
import { Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sequential } from '../nn/layers.ts';
import { Module } from '../nn/module.ts';

export interface LeNetOptions {
  inChannels?: number;
  numClasses?: number;
  /** input height = width (default 28) */
  inputSize?: number;
  seed?: number;
}

function spatial(name: string, size: number, steps: { k: number; s: number; p: number }[]): number {
  let h = size;
  for (const { k, s, p } of steps) {
    h = Math.floor((h + 2 * p - k) / s) + 1;
    if (h < 1) throw new Error(`webqat: ${name}: input size ${size} is too small (the feature map vanishes)`);
  }
  return h;
}

export class LeNet5 extends Module {
  readonly features: Sequential;
  readonly classifier: Sequential;

  constructor(opts: LeNetOptions = {}) {
    super();
    const c = opts.inChannels ?? 1;
    const classes = opts.numClasses ?? 10;
    const size = opts.inputSize ?? 28;
    const seeds = new SeedSequence(opts.seed ?? 0);
    const h = spatial('LeNet5', size, [{ k: 5, s: 1, p: 2 }, { k: 2, s: 2, p: 0 }, { k: 5, s: 1, p: 0 }, { k: 2, s: 2, p: 0 }]);
    this.features = this.module('features', new Sequential(
      new Conv2d(c, 6, 5, { padding: 2, seed: seeds.next() }),
      new ReLU(),
      new MaxPool2d(2),
      new Conv2d(6, 16, 5, { seed: seeds.next() }),
      new ReLU(),
      new MaxPool2d(2),
    ));
    this.classifier = this.module('classifier', new Sequential(
      new Flatten(),
      new Linear(16 * h * h, 120, { seed: seeds.next() }),
      new ReLU(),
      new Linear(120, 84, { seed: seeds.next() }),
      new ReLU(),
      new Linear(84, classes, { seed: seeds.next() }),
    ));
  }

  forward(x: Tensor): Tensor {
    return this.classifier.forward(this.features.forward(x));
  }
}

/** The LeNet variant of the TWN paper: 32C5 - MP2 - 64C5 - MP2 - 512FC - classes (no padding). */
export class LeNet5TWN extends Module {
  readonly features: Sequential;
  readonly classifier: Sequential;

  constructor(opts: LeNetOptions = {}) {
    super();
    const c = opts.inChannels ?? 1;
    const classes = opts.numClasses ?? 10;
    const size = opts.inputSize ?? 28;
    const seeds = new SeedSequence(opts.seed ?? 0);
    const h = spatial('LeNet5TWN', size, [{ k: 5, s: 1, p: 0 }, { k: 2, s: 2, p: 0 }, { k: 5, s: 1, p: 0 }, { k: 2, s: 2, p: 0 }]);
    this.features = this.module('features', new Sequential(
      new Conv2d(c, 32, 5, { seed: seeds.next() }),
      new ReLU(),
      new MaxPool2d(2),
      new Conv2d(32, 64, 5, { seed: seeds.next() }),
      new ReLU(),
      new MaxPool2d(2),
    ));
    this.classifier = this.module('classifier', new Sequential(
      new Flatten(),
      new Linear(64 * h * h, 512, { seed: seeds.next() }),
      new ReLU(),
      new Linear(512, classes, { seed: seeds.next() }),
    ));
  }

  forward(x: Tensor): Tensor {
    return this.classifier.forward(this.features.forward(x));
  }
}
