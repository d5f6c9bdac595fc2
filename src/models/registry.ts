/** Model registry: build a model by name with the usual options. */
import type { Module } from '../nn/module.ts';
import { LeNet5, LeNet5TWN } from './lenet.ts';
import { MLP } from './mlp.ts';
import { CifarResNet, resnet18, resnet34, resnet50, type ShortcutOption } from './resnet.ts';
import { type SSPQOptions, sspq20, sspq20Wide, sspq34, sspq50 } from './sspq.ts';

export interface ModelOptions {
  /** input channels (default: 1 for mlp/lenet, 3 for ResNets) */
  inChannels?: number;
  /** classes (default 10; 1000 for resnet18/34/50) */
  numClasses?: number;
  /** input height = width (default 28 for mlp/lenet, 32 for CIFAR ResNets, 224 for resnet18/34/50) */
  inputSize?: number;
  seed?: number;
  /** mlp: hidden layer sizes (default [256, 128]) */
  hidden?: readonly number[];
  /** CIFAR ResNets: shortcut option (default 'B') */
  shortcut?: ShortcutOption;
  /** resnet18/34/50: stem (default 'small' below 64 px, else 'imagenet') */
  stem?: 'imagenet' | 'small';
  /** resnet18/34/50: base width (default 64) */
  width?: number;
  /** SSPQ models: 1x1 weight bits (1..8 or 32, default 1), activation bits (default 4), shift kind, fused shift·1x1 op */
  wBits?: number;
  aBits?: number;
  shift?: SSPQOptions['shift'];
  fused?: boolean;
}

/** The registry's options plus the SSPQ ones (wBits, aBits, shift, fused) when a caller passes them. */
const sspqOpts = (x: ModelOptions): SSPQOptions => ({
  inChannels: x.inChannels, numClasses: x.numClasses, inputSize: x.inputSize, seed: x.seed,
  wBits: x.wBits, aBits: x.aBits, shift: x.shift, fused: x.fused,
});

interface Entry {
  description: string;
  build: (o: ModelOptions) => Module;
}

const cifar = (depth: number): Entry => ({
  description: `CIFAR ResNet-${depth} (3 stages 16/32/64, BasicBlock, option-B shortcuts)`,
  build: (o) => new CifarResNet(depth, { inChannels: o.inChannels ?? 3, numClasses: o.numClasses ?? 10, inputSize: o.inputSize ?? 32, seed: o.seed, shortcut: o.shortcut }),
});

const imagenet = (name: string, make: typeof resnet18): Entry => ({
  description: `${name} (ImageNet layout; 'small' stem for small inputs)`,
  build: (o) => make({ inChannels: o.inChannels ?? 3, numClasses: o.numClasses ?? 1000, inputSize: o.inputSize ?? 224, seed: o.seed, stem: o.stem, width: o.width }),
});

const REGISTRY: Record<string, Entry> = {
  mlp: {
    description: 'multi-layer perceptron (Flatten, Linear+ReLU per hidden size, Linear)',
    build: (o) => {
      const c = o.inChannels ?? 1;
      const s = o.inputSize ?? 28;
      return new MLP([c * s * s, ...(o.hidden ?? [256, 128]), o.numClasses ?? 10], { seed: o.seed });
    },
  },
  lenet5: {
    description: 'LeNet-5 (6C5 pad 2 - MP2 - 16C5 - MP2 - 120 - 84 - classes, ReLU)',
    build: (o) => new LeNet5({ inChannels: o.inChannels ?? 1, numClasses: o.numClasses ?? 10, inputSize: o.inputSize ?? 28, seed: o.seed }),
  },
  'lenet5-twn': {
    description: 'LeNet of the TWN paper (32C5 - MP2 - 64C5 - MP2 - 512FC - classes)',
    build: (o) => new LeNet5TWN({ inChannels: o.inChannels ?? 1, numClasses: o.numClasses ?? 10, inputSize: o.inputSize ?? 28, seed: o.seed }),
  },
  resnet20: cifar(20),
  resnet32: cifar(32),
  resnet44: cifar(44),
  resnet56: cifar(56),
  resnet18: imagenet('ResNet-18', resnet18),
  resnet34: imagenet('ResNet-34', resnet34),
  resnet50: imagenet('ResNet-50', resnet50),
  sspq20: { description: 'SSPQ20 (CIFAR; 1x1-shift-1x1 blocks 16/32/64 x 3/3/3, W1A4 1x1 convs, ~34 K params)', build: (x) => sspq20(sspqOpts(x)) },
  'sspq20-wide': { description: 'wide SSPQ20 (CIFAR; 32/64/128 x 3/3/3, W1A4, ~133 K params)', build: (x) => sspq20Wide(sspqOpts(x)) },
  sspq34: { description: 'SSPQ34 (CIFAR-100; 16/32/64/128 x 3/4/6/3, W1A4, ~172 K params)', build: (x) => sspq34({ ...sspqOpts(x), numClasses: x.numClasses ?? 100 }) },
  sspq50: { description: 'SSPQ50 (ImageNet; bottleneck x4, 64..512 x 3/4/6/3, W1A4, ~14.2 M params)', build: (x) => sspq50({ ...sspqOpts(x), numClasses: x.numClasses ?? 1000 }) },
};

/** Names of the registered models. */
export function listModels(): string[] {
  return Object.keys(REGISTRY);
}

/** One-line description of a registered model. */
export function describeModel(name: string): string {
  return entry(name).description;
}

function entry(name: string): Entry {
  const e = Object.hasOwn(REGISTRY, name) ? REGISTRY[name] : undefined;
  if (!e) throw new Error(`webqat: unknown model '${name}'; known models: ${listModels().join(', ')}`);
  return e;
}

/** Build a registered model (weights initialised on the GPU from `seed`). */
export function createModel(name: string, opts: ModelOptions = {}): Module {
  return entry(name).build(opts);
}

/** Register another model (e.g. from src/quant or an application); names must be new. */
export function registerModel(name: string, description: string, build: (o: ModelOptions) => Module): void {
  if (Object.hasOwn(REGISTRY, name)) throw new Error(`webqat: registerModel: '${name}' is already registered`);
  REGISTRY[name] = { description, build };
}
