/**
 * Quantized layers. `QuantConv2d` / `QuantLinear` are Conv2d / Linear whose registered `weight` is
 * the latent float weight; the forward pass uses Ŵ = Q(W). The weight quantizer runs ONCE per
 * training step: Ŵ is cached until (a) the step's memory scope releases it, (b) the gradient has
 * flowed back through it (the optimizer is about to change W), or (c) `invalidate()` is called
 * (QuantHooks does after every optimizer step). In eval mode Ŵ is computed once and kept until
 * the layer trains again. `quantCount` counts quantizer runs (tests and reports read it).
 *
 * Trainable quantizer state is registered as parameters of the layer: TTQ `wp`/`wn`, SQ
 * `sq_alpha`/`sq_beta`, LSQ `w_step`. ELQ/INQ keep their frozen mask/values as GPU tensors.
 *
 * `quantizeModel(model, spec)` upgrades a model's Conv2d/Linear layers in place (the same objects
 * become QuantConv2d/QuantLinear, so parents' fields and state-dict names stay valid); the first
 * and the last such layer stay float unless asked.
 */
import {
  absMean,
  conv2d,
  copy_,
  linear,
  noGrad,
  quantBinary,
  quantDorefaAct,
  quantDorefaWeight,
  quantFixed,
  quantLog,
  quantLsq,
  quantPact,
  quantTernary,
  quantTtq,
  record,
  sqQuantize,
  type Tensor,
  tensor,
} from '../autograd/index.ts';
import { Conv2d, Linear, type Conv2dOptions, type LinearOptions } from '../nn/layers.ts';
import { Module } from '../nn/module.ts';
import type { Parameter } from '../nn/parameter.ts';
import { ELQQuantizer } from './elq.ts';
import { IncrementalState, INQQuantizer } from './inq.ts';
import { fixedFracLength, logFullScale, lsqInit, ttqInit } from './quantizers.ts';
import { type ActQuant, FP32, type Precision, type QuantSpec, type WeightQuant, weightPrecisionOf } from './spec.ts';

type Registrar = (name: string, t: Tensor) => Parameter;

/** The weight-quantization state of one layer (shared by QuantConv2d and QuantLinear). */
export class WeightQuantState {
  readonly precision: Precision;
  wp?: Parameter;
  wn?: Parameter;
  sqAlpha?: Parameter;
  sqBeta?: Parameter;
  step?: Parameter;
  incremental?: IncrementalState;
  elq?: ELQQuantizer;
  inq?: INQQuantizer;
  /** fixed: fraction length; log: full-scale exponent (host-calibrated, see calibrate()) */
  frac = 0;
  fsr = 0;
  calibrated = false;
  quantCount = 0;
  private cache: Tensor | null = null;
  private stale = false;
  private evalCache: Tensor | null = null;

  constructor(readonly spec: WeightQuant, readonly weight: Parameter, register: Registrar) {
    this.precision = weightPrecisionOf(spec);
    weight.precision = this.precision;
    switch (spec.method) {
      case 'ttq': {
        const { wp, wn } = ttqInit(weight, spec.threshold);
        this.wp = register('ttq_wp', wp);
        this.wn = register('ttq_wn', wn);
        break;
      }
      case 'sq': {
        this.sqAlpha = register('sq_alpha', noGrad(() => absMean(weight)));
        this.sqBeta = register('sq_beta', tensor([spec.beta0], [1]));
        break;
      }
      case 'lsq':
        this.step = register('w_step', lsqInit(weight, spec.bits, true));
        break;
      case 'elq':
        this.incremental = new IncrementalState(weight.shape);
        this.elq = new ELQQuantizer(spec.mode);
        break;
      case 'inq':
        this.incremental = new IncrementalState(weight.shape);
        this.inq = new INQQuantizer(spec.bits);
        break;
    }
  }

  /** Host calibration of fixed/log ranges from max|W| (done once at the first use, and on demand). */
  async calibrate(): Promise<void> {
    if (this.spec.method !== 'fixed' && this.spec.method !== 'log') return;
    const d = await this.weight.data();
    let m = 0;
    for (const v of d) m = Math.max(m, Math.abs(v));
    if (this.spec.method === 'fixed') this.frac = fixedFracLength(m, this.spec.bits);
    else this.fsr = logFullScale(m);
    this.calibrated = true;
    this.invalidate();
  }

  /** Ŵ = Q(W), differentiable by the quantizer's STE. */
  private compute(): Tensor {
    const w = this.weight;
    const s = this.spec;
    this.quantCount++;
    switch (s.method) {
      case 'none':
        return w;
      case 'bwn':
        return quantBinary(w);
      case 'twn':
        return quantTernary(w);
      case 'ttq':
        return quantTtq(w, this.wp!, this.wn!, { threshold: s.threshold });
      case 'sq':
        return sqQuantize(w, this.sqAlpha!, this.sqBeta!, { p: s.p });
      case 'dorefa':
        return quantDorefaWeight(w, s.bits);
      case 'lsq':
        return quantLsq(w, this.step!, s.bits, true);
      case 'elq':
      case 'inq':
        return this.incremental!.apply(w);
      case 'fixed':
        if (!this.calibrated) throw new Error('webqat: fixed-point weights need calibrate() (QuantHooks.prepare() does it) before the first forward');
        return quantFixed(w, s.bits, this.frac);
      case 'log':
        if (!this.calibrated) throw new Error('webqat: log weights need calibrate() (QuantHooks.prepare() does it) before the first forward');
        return quantLog(w, s.bits, this.fsr);
    }
  }

  /** The quantized weight for this step (cached; see the file comment). */
  quantized(training: boolean): Tensor {
    if (this.spec.method === 'none') return this.weight;
    if (!training) {
      if (this.evalCache && !this.evalCache.released) return this.evalCache;
      this.evalCache = noGrad(() => this.compute()).keep();
      return this.evalCache;
    }
    if (this.evalCache) {
      this.evalCache.release('training resumed');
      this.evalCache = null;
    }
    if (this.cache && !this.cache.released && !this.stale) return this.cache;
    const q = this.compute();
    this.stale = false;
    // a pass-through node that marks the cache stale once the gradient has gone through it
    const view = q.viewAs(q.shape);
    this.cache = q === this.weight ? q : record('quant_cache', [q], view, (g, needs) => {
      this.stale = true;
      return [needs[0] ? g : null];
    });
    if (this.cache !== view) view.release();
    return this.cache;
  }

  /** Forget the cached Ŵ (the latent weights or the quantizer state changed). */
  invalidate(): void {
    this.stale = true;
    if (this.evalCache) {
      this.evalCache.release('invalidate()');
      this.evalCache = null;
    }
  }

  release(): void {
    this.invalidate();
    this.incremental?.release();
  }
}

/** Conv2d with quantized weights (weight = latent float weight). */
export class QuantConv2d extends Conv2d {
  declare wq: WeightQuantState;

  constructor(inChannels: number, outChannels: number, kernelSize: number, spec: WeightQuant, opts: Conv2dOptions = {}) {
    super(inChannels, outChannels, kernelSize, opts);
    QuantConv2d.attach(this, spec);
  }

  /** Turn an existing Conv2d into a QuantConv2d in place. */
  static upgrade(conv: Conv2d, spec: WeightQuant): QuantConv2d {
    Object.setPrototypeOf(conv, QuantConv2d.prototype);
    return QuantConv2d.attach(conv as QuantConv2d, spec);
  }

  private static attach(layer: QuantConv2d, spec: WeightQuant): QuantConv2d {
    layer.wq = new WeightQuantState(spec, layer.weight, (n, t) => layer.param(n, t));
    return layer;
  }

  get typeName(): string {
    return 'QuantConv2d';
  }

  forward(x: Tensor): Tensor {
    if (x.rank !== 4 || x.shape[1] !== this.inChannels) {
      throw new Error(`webqat: QuantConv2d(${this.inChannels}, ${this.outChannels}): expected input [N, ${this.inChannels}, H, W], got ${x.describe()}`);
    }
    return conv2d(x, this.wq.quantized(this.training), this.bias, {
      stride: this.stride,
      padding: this.padding,
      dilation: this.dilation,
      groups: this.groups,
    });
  }
}

/** Linear with quantized weights. */
export class QuantLinear extends Linear {
  declare wq: WeightQuantState;

  constructor(inFeatures: number, outFeatures: number, spec: WeightQuant, opts: LinearOptions = {}) {
    super(inFeatures, outFeatures, opts);
    QuantLinear.attach(this, spec);
  }

  static upgrade(lin: Linear, spec: WeightQuant): QuantLinear {
    Object.setPrototypeOf(lin, QuantLinear.prototype);
    return QuantLinear.attach(lin as QuantLinear, spec);
  }

  private static attach(layer: QuantLinear, spec: WeightQuant): QuantLinear {
    layer.wq = new WeightQuantState(spec, layer.weight, (n, t) => layer.param(n, t));
    return layer;
  }

  get typeName(): string {
    return 'QuantLinear';
  }

  forward(x: Tensor): Tensor {
    if (x.rank !== 2 || x.shape[1] !== this.inFeatures) {
      throw new Error(`webqat: QuantLinear(${this.inFeatures}, ${this.outFeatures}): expected input [N, ${this.inFeatures}], got ${x.describe()}`);
    }
    return linear(x, this.wq.quantized(this.training), this.bias ?? undefined);
  }
}

/** Activation quantizer layer: DoReFa k-bit (clip to [0,1]), PACT (learned clip α) or LSQ (learned step). */
export class QuantAct extends Module {
  readonly precision: Precision;
  readonly alpha: Parameter | null = null;
  readonly step: Parameter | null = null;
  private stepInit = false;

  constructor(readonly spec: ActQuant) {
    super();
    this.precision = spec.method === 'none' ? FP32 : { kind: 'kbit', bits: spec.bits };
    if (spec.method === 'pact') this.alpha = this.param('pact_alpha', tensor([spec.alpha0], [1]));
    if (spec.method === 'lsq') this.step = this.param('act_step', tensor([1], [1]));
  }

  forward(x: Tensor): Tensor {
    const s = this.spec;
    switch (s.method) {
      case 'none':
        return x;
      case 'dorefa':
        return quantDorefaAct(x, s.bits);
      case 'pact':
        return quantPact(x, this.alpha!, s.bits);
      case 'lsq':
        if (!this.stepInit) {
          // LSQ initialisation from the first batch: s = 2·mean|x| / √Q_P
          this.stepInit = true;
          noGrad(() => {
            const init = lsqInit(x, s.bits, false);
            copy_(this.step!, init);
            init.release();
          });
        }
        return quantLsq(x, this.step!, s.bits, false);
    }
  }
}

export interface QuantizeModelOptions {
  /** quantize the first conv/linear layer too (default false) */
  quantizeFirst?: boolean;
  /** quantize the last conv/linear layer too (default false) */
  quantizeLast?: boolean;
}

/** Every quantized layer of a model, with its dotted name. */
export function quantLayers(model: Module): [string, QuantConv2d | QuantLinear][] {
  return model.namedModules().filter((e): e is [string, QuantConv2d | QuantLinear] => e[1] instanceof QuantConv2d || e[1] instanceof QuantLinear);
}

/**
 * Quantize a model's weights in place: each Conv2d/Linear (except the first and last, unless
 * asked) becomes a QuantConv2d/QuantLinear with `spec.weight`. Activation quantization needs
 * points in the model's forward pass and is built into the models that use it (SSPQ); this
 * function does not insert activation quantizers. Returns the names of the layers quantized.
 */
export function quantizeModel(model: Module, spec: QuantSpec, opts: QuantizeModelOptions = {}): string[] {
  const layers = model.namedModules().filter(([, m]) => (m instanceof Conv2d || m instanceof Linear));
  const out: string[] = [];
  if (spec.weight.method === 'none') return out;
  layers.forEach(([name, m], i) => {
    if (m instanceof QuantConv2d || m instanceof QuantLinear) return;
    if (i === 0 && !opts.quantizeFirst) return;
    if (i === layers.length - 1 && layers.length > 1 && !opts.quantizeLast) return;
    if (m instanceof Conv2d) QuantConv2d.upgrade(m, spec.weight);
    else QuantLinear.upgrade(m as Linear, spec.weight);
    out.push(name);
  });
  return out;
}
