/** Multi-layer perceptron: Flatten, then Linear + ReLU for each hidden size, then a Linear head. */
import type { Tensor } from '../autograd/index.ts';
import { SeedSequence } from '../nn/init.ts';
import { Dropout, Flatten, Linear, ReLU, Sequential } from '../nn/layers.ts';
import { Module } from '../nn/module.ts';

export interface MlpOptions {
  seed?: number;
  /** dropout probability after each hidden activation (default 0: none) */
  dropout?: number;
}

export class MLP extends Module {
  readonly layers: Sequential;

  /** `sizes` = [inputs, hidden..., outputs], e.g. [784, 256, 128, 10]. */
  constructor(readonly sizes: readonly number[], opts: MlpOptions = {}) {
    super();
    if (sizes.length < 2) throw new Error(`webqat: MLP: sizes needs at least [inputs, outputs], got [${sizes.join(',')}]`);
    const seeds = new SeedSequence(opts.seed ?? 0);
    this.layers = this.module('layers', new Sequential(new Flatten()));
    for (let i = 0; i + 1 < sizes.length; i++) {
      this.layers.add(new Linear(sizes[i], sizes[i + 1], { seed: seeds.next() }));
      if (i + 2 < sizes.length) {
        this.layers.add(new ReLU());
        if (opts.dropout) this.layers.add(new Dropout(opts.dropout, { seed: seeds.next() }));
      }
    }
  }

  forward(x: Tensor): Tensor {
    return this.layers.forward(x);
  }
}
