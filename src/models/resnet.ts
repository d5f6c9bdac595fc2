/**
 * Residual networks.
 *  - CIFAR ResNet-20/32/44/56 (He et al. 2016, section 4.2): 3x3 conv 16, then three stages of n
 *    BasicBlocks with 16, 32, 64 channels (depth = 6n + 2), global average pooling, a linear head.
 *    Shortcuts: option 'B' (default) = 1x1 conv + BN projection where the shape changes;
 *    option 'A' = parameter-free (stride-2 subsampling and zero channel padding).
 *  - ImageNet ResNet-18/34 (BasicBlock) and ResNet-50 (Bottleneck, stride on the 3x3 conv as in
 *    torchvision): 7x7/2 stem + 3x3/2 max pool, four stages 64..512 (x4 for Bottleneck). The
 *    'small' stem (3x3/1 conv, no max pool) suits 32x32 inputs.
 * Member names follow torchvision (conv1, bn1, layer1.0.conv1, downsample.0, fc ...).
 */
import { add, maxPool2d, pad, relu, type Tensor } from '../autograd/index.ts';
import { SeedSequence } from '../nn/init.ts';
import { BatchNorm2d, Conv2d, GlobalAvgPool, Linear, MaxPool2d, Sequential } from '../nn/layers.ts';
import { Module } from '../nn/module.ts';

export type ShortcutOption = 'A' | 'B';

function conv3x3(cin: number, cout: number, stride: number, seed: number): Conv2d {
  return new Conv2d(cin, cout, 3, { stride, padding: 1, bias: false, seed });
}

function projection(cin: number, cout: number, stride: number, seed: number): Sequential {
  return new Sequential(new Conv2d(cin, cout, 1, { stride, bias: false, seed }), new BatchNorm2d(cout));
}

/** Option A shortcut: subsample by `stride` and zero-pad the channels from `cin` to `cout`. */
class PadShortcut extends Module {
  constructor(readonly cin: number, readonly cout: number, readonly stride: number) {
    super();
  }
  forward(x: Tensor): Tensor {
    const sub = this.stride === 1 ? x : maxPool2d(x, { kernel: 1, stride: this.stride });
    const extra = this.cout - this.cin;
    const lo = Math.floor(extra / 2);
    return pad(sub, [[0, 0], [lo, extra - lo], [0, 0], [0, 0]]);
  }
}

export class BasicBlock extends Module {
  static readonly expansion = 1;
  readonly conv1: Conv2d;
  readonly bn1: BatchNorm2d;
  readonly conv2: Conv2d;
  readonly bn2: BatchNorm2d;
  readonly downsample: Module | null;

  constructor(cin: number, planes: number, stride: number, seeds: SeedSequence, shortcut: ShortcutOption = 'B') {
    super();
    this.conv1 = this.module('conv1', conv3x3(cin, planes, stride, seeds.next()));
    this.bn1 = this.module('bn1', new BatchNorm2d(planes));
    this.conv2 = this.module('conv2', conv3x3(planes, planes, 1, seeds.next()));
    this.bn2 = this.module('bn2', new BatchNorm2d(planes));
    const changes = stride !== 1 || cin !== planes;
    this.downsample = !changes
      ? null
      : shortcut === 'B'
      ? this.module('downsample', projection(cin, planes, stride, seeds.next()))
      : this.module('downsample', new PadShortcut(cin, planes, stride));
  }

  forward(x: Tensor): Tensor {
    const h = this.bn1.forward(this.conv1.forward(x), { relu: true });
    const y = this.bn2.forward(this.conv2.forward(h));
    const s = this.downsample ? this.downsample.forward(x) : x;
    return relu(add(y, s));
  }
}

export class Bottleneck extends Module {
  static readonly expansion = 4;
  readonly conv1: Conv2d;
  readonly bn1: BatchNorm2d;
  readonly conv2: Conv2d;
  readonly bn2: BatchNorm2d;
  readonly conv3: Conv2d;
  readonly bn3: BatchNorm2d;
  readonly downsample: Module | null;

  constructor(cin: number, planes: number, stride: number, seeds: SeedSequence) {
    super();
    const out = planes * Bottleneck.expansion;
    this.conv1 = this.module('conv1', new Conv2d(cin, planes, 1, { bias: false, seed: seeds.next() }));
    this.bn1 = this.module('bn1', new BatchNorm2d(planes));
    this.conv2 = this.module('conv2', conv3x3(planes, planes, stride, seeds.next()));
    this.bn2 = this.module('bn2', new BatchNorm2d(planes));
    this.conv3 = this.module('conv3', new Conv2d(planes, out, 1, { bias: false, seed: seeds.next() }));
    this.bn3 = this.module('bn3', new BatchNorm2d(out));
    this.downsample = stride !== 1 || cin !== out ? this.module('downsample', projection(cin, out, stride, seeds.next())) : null;
  }

  forward(x: Tensor): Tensor {
    const h1 = this.bn1.forward(this.conv1.forward(x), { relu: true });
    const h2 = this.bn2.forward(this.conv2.forward(h1), { relu: true });
    const y = this.bn3.forward(this.conv3.forward(h2));
    const s = this.downsample ? this.downsample.forward(x) : x;
    return relu(add(y, s));
  }
}

export interface CifarResNetOptions {
  inChannels?: number;
  numClasses?: number;
  /** input height = width (default 32); only checked (global pooling makes the net size-agnostic) */
  inputSize?: number;
  seed?: number;
  shortcut?: ShortcutOption;
  /** channels of the three stages (default [16, 32, 64]) */
  widths?: readonly [number, number, number];
}

/** CIFAR ResNet of depth 6n + 2 (20, 32, 44, 56, 110 ...). */
export class CifarResNet extends Module {
  readonly conv1: Conv2d;
  readonly bn1: BatchNorm2d;
  readonly layer1: Sequential;
  readonly layer2: Sequential;
  readonly layer3: Sequential;
  readonly pool: GlobalAvgPool;
  readonly fc: Linear;

  constructor(readonly depth: number, opts: CifarResNetOptions = {}) {
    super();
    if (!Number.isInteger(depth) || depth < 8 || (depth - 2) % 6 !== 0) {
      throw new Error(`webqat: CifarResNet: depth must be 6n + 2 (20, 32, 44, 56, 110 ...), got ${depth}`);
    }
    const n = (depth - 2) / 6;
    const [w1, w2, w3] = opts.widths ?? [16, 32, 64];
    const shortcut = opts.shortcut ?? 'B';
    const size = opts.inputSize ?? 32;
    if (size < 4) throw new Error(`webqat: CifarResNet: input size ${size} is too small (two stride-2 stages need >= 4)`);
    const seeds = new SeedSequence(opts.seed ?? 0);
    this.conv1 = this.module('conv1', conv3x3(opts.inChannels ?? 3, w1, 1, seeds.next()));
    this.bn1 = this.module('bn1', new BatchNorm2d(w1));
    const stage = (cin: number, cout: number, stride: number) => {
      const s = new Sequential();
      for (let b = 0; b < n; b++) s.add(new BasicBlock(b === 0 ? cin : cout, cout, b === 0 ? stride : 1, seeds, shortcut));
      return s;
    };
    this.layer1 = this.module('layer1', stage(w1, w1, 1));
    this.layer2 = this.module('layer2', stage(w1, w2, 2));
    this.layer3 = this.module('layer3', stage(w2, w3, 2));
    this.pool = this.module('pool', new GlobalAvgPool());
    this.fc = this.module('fc', new Linear(w3, opts.numClasses ?? 10, { seed: seeds.next(), init: 'torch-default' }));
  }

  forward(x: Tensor): Tensor {
    let h = this.bn1.forward(this.conv1.forward(x), { relu: true });
    h = this.layer3.forward(this.layer2.forward(this.layer1.forward(h)));
    return this.fc.forward(this.pool.forward(h));
  }
}

export interface ResNetOptions {
  inChannels?: number;
  numClasses?: number;
  /** input height = width (default 224) */
  inputSize?: number;
  seed?: number;
  /** 'imagenet': 7x7/2 conv + 3x3/2 max pool; 'small': 3x3/1 conv, no pool (default: 'small' below 64 px) */
  stem?: 'imagenet' | 'small';
  /** channels of the stem and the first stage (default 64; the stages use width·1, 2, 4, 8) */
  width?: number;
}

/** ImageNet-style ResNet (torchvision layout). */
export class ResNet extends Module {
  readonly conv1: Conv2d;
  readonly bn1: BatchNorm2d;
  readonly maxpool: MaxPool2d | null;
  readonly layer1: Sequential;
  readonly layer2: Sequential;
  readonly layer3: Sequential;
  readonly layer4: Sequential;
  readonly pool: GlobalAvgPool;
  readonly fc: Linear;

  constructor(readonly block: 'basic' | 'bottleneck', readonly blocks: readonly [number, number, number, number], opts: ResNetOptions = {}) {
    super();
    const size = opts.inputSize ?? 224;
    const stem = opts.stem ?? (size < 64 ? 'small' : 'imagenet');
    const seeds = new SeedSequence(opts.seed ?? 0);
    const cin = opts.inChannels ?? 3;
    const w = opts.width ?? 64;
    if (!Number.isInteger(w) || w < 1) throw new Error(`webqat: ResNet: width must be a positive integer, got ${w}`);
    // total downsampling: stem 4 (imagenet) or 1 (small), then 3 stride-2 stages
    const factor = (stem === 'imagenet' ? 4 : 1) * 8;
    if (size < factor) throw new Error(`webqat: ResNet: input size ${size} is too small for the '${stem}' stem (needs >= ${factor})`);
    this.conv1 = this.module('conv1', stem === 'imagenet'
      ? new Conv2d(cin, w, 7, { stride: 2, padding: 3, bias: false, seed: seeds.next() })
      : conv3x3(cin, w, 1, seeds.next()));
    this.bn1 = this.module('bn1', new BatchNorm2d(w));
    this.maxpool = stem === 'imagenet' ? this.module('maxpool', new MaxPool2d(3, { stride: 2, padding: 1 })) : null;
    const expansion = block === 'basic' ? BasicBlock.expansion : Bottleneck.expansion;
    let inPlanes = w;
    const stage = (planes: number, count: number, stride: number) => {
      const s = new Sequential();
      for (let b = 0; b < count; b++) {
        const st = b === 0 ? stride : 1;
        s.add(block === 'basic' ? new BasicBlock(inPlanes, planes, st, seeds) : new Bottleneck(inPlanes, planes, st, seeds));
        inPlanes = planes * expansion;
      }
      return s;
    };
    this.layer1 = this.module('layer1', stage(w, blocks[0], 1));
    this.layer2 = this.module('layer2', stage(2 * w, blocks[1], 2));
    this.layer3 = this.module('layer3', stage(4 * w, blocks[2], 2));
    this.layer4 = this.module('layer4', stage(8 * w, blocks[3], 2));
    this.pool = this.module('pool', new GlobalAvgPool());
    this.fc = this.module('fc', new Linear(8 * w * expansion, opts.numClasses ?? 1000, { seed: seeds.next(), init: 'torch-default' }));
  }

  forward(x: Tensor): Tensor {
    let h = this.bn1.forward(this.conv1.forward(x), { relu: true });
    if (this.maxpool) h = this.maxpool.forward(h);
    h = this.layer4.forward(this.layer3.forward(this.layer2.forward(this.layer1.forward(h))));
    return this.fc.forward(this.pool.forward(h));
  }
}

export const resnet18 = (opts: ResNetOptions = {}) => new ResNet('basic', [2, 2, 2, 2], opts);
export const resnet34 = (opts: ResNetOptions = {}) => new ResNet('basic', [3, 4, 6, 3], opts);
export const resnet50 = (opts: ResNetOptions = {}) => new ResNet('bottleneck', [3, 4, 6, 3], opts);
