/**
 * SSPQ: spatial-shift point-wise quantized ResNets (Kim et al., IEEE Access 2020; ALGORITHMS §2).
 * Every 3×3 convolution of the residual blocks is replaced by 1×1 conv → BN → k-bit activation →
 * active shift (ASL, learnable per-channel sub-pixel shift, carries the stride) → 1×1 conv → BN.
 * All 1×1 convolutions (both block convs and the projection shortcuts) have quantized weights
 * (DoReFa: 1 bit = BWN E·sign*(W)); activations are DoReFa k-bit (default 4); the stem, the FC
 * head, BN and the shift parameters stay float32.
 *
 *   block(x; preact):  h = preact ? A(BN_pre(x)) : x
 *                      u = BN_b(Conv1x1_b(Shift(A(BN_a(Conv1x1_a(h))))))
 *                      return u + (Conv1x1_s(x) if C_in ≠ C_out or stride ≠ 1 else x)
 *   group:             blocks (the first without preact, stride on the first), then A(BN_last(x))
 *
 * CIFAR form (SSPQ20, wide SSPQ20, SSPQ34): 3×3 stem conv (no BN/act), m = C_out = width.
 * ImageNet form (SSPQ50): 7×7/2 stem + BN + ReLU + 3×3/2 max pool, bottleneck m = width,
 * C_out = 4·width. Parameter counts (conv + shift + FC, BN excluded) match §2.4: SSPQ20 34 010.
 */
import { activeShift, add, relu, shiftConv1x1, type Tensor, uniform_, zeros } from '../autograd/index.ts';
import { SeedSequence } from '../nn/init.ts';
import { BatchNorm2d, Conv2d, GlobalAvgPool, Linear, MaxPool2d, Sequential } from '../nn/layers.ts';
import { Module } from '../nn/module.ts';
import type { Parameter } from '../nn/parameter.ts';
import { QuantAct, QuantConv2d } from '../quant/layers.ts';
import type { WeightQuant } from '../quant/spec.ts';

export interface SSPQOptions {
  inChannels?: number;
  numClasses?: number;
  inputSize?: number;
  seed?: number;
  /** weight bits of the 1×1 convs (default 1 = BWN; 32 = float) */
  wBits?: number;
  /** activation bits (default 4; 32 = clip only) */
  aBits?: number;
  /** 'active' (ASL, bilinear, learnable; default) or 'sparse' (rounded in the forward pass) */
  shift?: 'active' | 'sparse';
  /**
   * run shift → conv_b as the fused shift·1×1 op (`shiftConv1x1`, default true) instead of the
   * shift op followed by conv2d; both compute the same function
   */
  fused?: boolean;
}

/**
 * Active shift layer: per-channel learnable (a_c, b_c) in a [2, C] parameter (row 0 = x, row 1 =
 * y), initialised U(−√0.5, √0.5); the stride is applied here (the `activeShift` op; 'sparse' rounds
 * the offsets in the forward pass).
 */
export class ActiveShift extends Module {
  readonly shift: Parameter;
  constructor(readonly channels: number, readonly stride = 1, readonly mode: 'active' | 'sparse' = 'active', seed = 0) {
    super();
    this.shift = this.param('shift', uniform_(zeros([2, channels]), -Math.SQRT1_2, Math.SQRT1_2, seed));
  }
  forward(x: Tensor): Tensor {
    return activeShift(x, this.shift, { stride: this.stride, round: this.mode === 'sparse' });
  }

  /** conv(shift(x)) for a 1×1 conv without bias, as one fused op (`shiftConv1x1`). */
  forwardConv1x1(x: Tensor, w: Tensor): Tensor {
    return shiftConv1x1(x, this.shift, w, { stride: this.stride, round: this.mode === 'sparse' });
  }
}

const bn = (c: number) => new BatchNorm2d(c, { momentum: 0.1, eps: 1e-4 });

/** act(bn(x)); a DoReFa activation is fused into the normalisation's passes (bit-identical, one pass fewer each way). */
function bnAct(norm: BatchNorm2d, act: QuantAct, x: Tensor): Tensor {
  const s = act.spec as { method: string; bits?: number };
  return s.method === 'dorefa' && s.bits !== undefined ? norm.forward(x, { dorefaBits: s.bits }) : act.forward(norm.forward(x));
}

export class SSPQBlock extends Module {
  readonly bnPre: BatchNorm2d | null;
  readonly actPre: QuantAct | null;
  readonly conv_a: QuantConv2d;
  readonly bn_a: BatchNorm2d;
  readonly act_a: QuantAct;
  readonly shift: ActiveShift;
  readonly conv_b: QuantConv2d;
  readonly bn_b: BatchNorm2d;
  readonly shortcut: QuantConv2d | null;
  /** shift → conv_b as one fused op */
  fused = true;

  constructor(cin: number, m: number, cout: number, stride: number, preact: boolean, wq: WeightQuant, aBits: number, seeds: SeedSequence, shiftMode: 'active' | 'sparse') {
    super();
    const act = () => new QuantAct(aBits >= 32 ? { method: 'dorefa', bits: 32 } : { method: 'dorefa', bits: aBits });
    const conv1x1 = (i: number, o: number, s = 1) => new QuantConv2d(i, o, 1, wq, { stride: s, bias: false, seed: seeds.next(), init: 'he-normal-fan-out' });
    this.bnPre = preact ? this.module('bn_pre', bn(cin)) : null;
    this.actPre = preact ? this.module('act_pre', act()) : null;
    this.conv_a = this.module('conv_a', conv1x1(cin, m));
    this.bn_a = this.module('bn_a', bn(m));
    this.act_a = this.module('act_a', act());
    this.shift = this.module('shift', new ActiveShift(m, stride, shiftMode, seeds.next()));
    this.conv_b = this.module('conv_b', conv1x1(m, cout));
    this.bn_b = this.module('bn_b', bn(cout));
    this.shortcut = cin !== cout || stride !== 1 ? this.module('shortcut', conv1x1(cin, cout, stride)) : null;
  }

  forward(x: Tensor): Tensor {
    const h = this.bnPre && this.actPre ? bnAct(this.bnPre, this.actPre, x) : x;
    let u = bnAct(this.bn_a, this.act_a, this.conv_a.forward(h));
    const v = this.fused ? this.shift.forwardConv1x1(u, this.conv_b.wq.quantized(this.training)) : this.conv_b.forward(this.shift.forward(u));
    u = this.bn_b.forward(v);
    return add(u, this.shortcut ? this.shortcut.forward(x) : x);
  }
}

/** A group of SSPQ blocks ending in BN + quantized activation. */
export class SSPQGroup extends Module {
  readonly blocks: Sequential;
  readonly bn_last: BatchNorm2d;
  readonly act_last: QuantAct;
  constructor(cin: number, width: number, expansion: number, count: number, stride: number, wq: WeightQuant, aBits: number, seeds: SeedSequence, shiftMode: 'active' | 'sparse') {
    super();
    const cout = width * expansion;
    this.blocks = this.module('blocks', new Sequential());
    for (let i = 0; i < count; i++) {
      this.blocks.add(new SSPQBlock(i === 0 ? cin : cout, width, cout, i === 0 ? stride : 1, i !== 0, wq, aBits, seeds, shiftMode));
    }
    this.bn_last = this.module('bn_last', bn(cout));
    this.act_last = this.module('act_last', new QuantAct({ method: 'dorefa', bits: aBits >= 32 ? 32 : aBits }));
  }
  forward(x: Tensor): Tensor {
    return bnAct(this.bn_last, this.act_last, this.blocks.forward(x));
  }
}

function weightSpec(wBits: number): WeightQuant {
  if (!Number.isInteger(wBits) || !((wBits >= 1 && wBits <= 8) || wBits === 32)) throw new Error(`webqat: SSPQ: wBits must be 1..8 or 32, got ${wBits}`);
  return wBits === 32 ? { method: 'none' } : { method: 'dorefa', bits: wBits };
}

function checkABits(aBits: number): void {
  if (!Number.isInteger(aBits) || !((aBits >= 1 && aBits <= 8) || aBits === 32)) throw new Error(`webqat: SSPQ: aBits must be 1..8 or 32, got ${aBits}`);
}

/** CIFAR-form SSPQ (SSPQ20: widths 16/32/64 × 3/3/3; wide: 32/64/128; SSPQ34: 16..128 × 3/4/6/3). */
export class SSPQCifar extends Module {
  readonly conv1: Conv2d;
  readonly groups: Sequential;
  readonly pool: GlobalAvgPool;
  readonly fc: Linear;
  constructor(readonly widths: readonly number[], readonly counts: readonly number[], opts: SSPQOptions = {}) {
    super();
    if (widths.length !== counts.length || widths.length === 0) throw new Error(`webqat: SSPQ: widths (${widths}) and block counts (${counts}) must have the same length`);
    const wq = weightSpec(opts.wBits ?? 1);
    const aBits = opts.aBits ?? 4;
    checkABits(aBits);
    const seeds = new SeedSequence(opts.seed ?? 0);
    this.conv1 = this.module('conv1', new Conv2d(opts.inChannels ?? 3, widths[0], 3, { padding: 1, bias: false, seed: seeds.next(), init: 'he-normal' }));
    this.groups = this.module('groups', new Sequential());
    let cin = widths[0];
    widths.forEach((w, g) => {
      this.groups.add(new SSPQGroup(cin, w, 1, counts[g], g === 0 ? 1 : 2, wq, aBits, seeds, opts.shift ?? 'active'));
      cin = w;
    });
    this.pool = this.module('pool', new GlobalAvgPool());
    this.fc = this.module('fc', new Linear(cin, opts.numClasses ?? 10, { seed: seeds.next(), init: 'torch-default' }));
    setFused(this, opts.fused ?? true);
  }
  forward(x: Tensor): Tensor {
    return this.fc.forward(this.pool.forward(this.groups.forward(this.conv1.forward(x))));
  }
}

/** ImageNet-form SSPQ50 (bottleneck ×4, widths 64..512 × 3/4/6/3). */
export class SSPQ50 extends Module {
  readonly conv1: Conv2d;
  readonly bn1: BatchNorm2d;
  readonly maxpool: MaxPool2d;
  readonly groups: Sequential;
  readonly pool: GlobalAvgPool;
  readonly fc: Linear;
  constructor(opts: SSPQOptions = {}) {
    super();
    const wq = weightSpec(opts.wBits ?? 1);
    const aBits = opts.aBits ?? 4;
    checkABits(aBits);
    const seeds = new SeedSequence(opts.seed ?? 0);
    this.conv1 = this.module('conv1', new Conv2d(opts.inChannels ?? 3, 64, 7, { stride: 2, padding: 3, bias: false, seed: seeds.next(), init: 'he-normal-fan-out' }));
    this.bn1 = this.module('bn1', bn(64));
    this.maxpool = this.module('maxpool', new MaxPool2d(3, { stride: 2, padding: 1 }));
    this.groups = this.module('groups', new Sequential());
    let cin = 64;
    ([64, 128, 256, 512] as const).forEach((w, g) => {
      this.groups.add(new SSPQGroup(cin, w, 4, [3, 4, 6, 3][g], g === 0 ? 1 : 2, wq, aBits, seeds, opts.shift ?? 'active'));
      cin = 4 * w;
    });
    this.pool = this.module('pool', new GlobalAvgPool());
    this.fc = this.module('fc', new Linear(cin, opts.numClasses ?? 1000, { seed: seeds.next(), init: 'torch-default' }));
    setFused(this, opts.fused ?? true);
  }
  forward(x: Tensor): Tensor {
    const h = this.maxpool.forward(this.bn1.forward(this.conv1.forward(x), { relu: true }));
    return this.fc.forward(this.pool.forward(this.groups.forward(h)));
  }
}

/** Switch every SSPQ block of a model between the fused shift·1×1 op and the unfused pair. */
export function setFused(model: Module, fused: boolean): void {
  for (const m of model.modules()) if (m instanceof SSPQBlock) m.fused = fused;
}

export const sspq20 = (o: SSPQOptions = {}) => new SSPQCifar([16, 32, 64], [3, 3, 3], o);
export const sspq20Wide = (o: SSPQOptions = {}) => new SSPQCifar([32, 64, 128], [3, 3, 3], o);
export const sspq34 = (o: SSPQOptions = {}) => new SSPQCifar([16, 32, 64, 128], [3, 4, 6, 3], { ...o, numClasses: o.numClasses ?? 100 });
export const sspq50 = (o: SSPQOptions = {}) => new SSPQ50(o);

/** Conv + shift + FC parameters (BN excluded), the count of ALGORITHMS §2.4. */
export function sspqParamCount(model: Module): number {
  let n = 0;
  for (const [, m] of model.namedModules()) {
    if (m instanceof BatchNorm2d) continue;
    for (const [name, p] of m.namedParameters()) if (!name.includes('.')) n += p.size;
  }
  return n;
}

/**
 * The SSPQ models (sspq20, sspq20-wide, sspq34, sspq50) are in the static model registry
 * (registry.ts), so `createModel('sspq20')` works from the package entry without importing this
 * file. Kept for callers written against the old side-effect registration; does nothing.
 */
export function registerSSPQModels(): void {}
