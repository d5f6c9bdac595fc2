/**
 * Quantized layers. `QuantConv2d` / `QuantLinear` are Conv2d / Linear whose registered `weight` is
 * the latent float weight; the forward pass uses Ŵ = Q(W). The weight quantizer runs ONCE per
 * training step: Ŵ is cached until (a) the step's memory scope releases it, (b) the gradient has
 * flowed back through it (the optimizer is about to change W), or (c) `invalidate()` is called
 * (QuantHooks does after every optimizer step). In eval mode Ŵ is computed once and kept until
 * the layer trains again. `quantCount` counts quantizer runs (tests and reports read it).
 *
 * What Q is comes from the method's record (src/quant/methods): the layer registers the record's
 * trainable quantizer parameters next to the weight (TTQ `ttq_wp`/`ttq_wn`, SQ `sq_alpha`/`sq_beta`,
 * LSQ `w_step`), each tagged with its role, and keeps the record's per-layer state (ELQ/INQ frozen
 * masks and values, fixed/log calibrated ranges).
 *
 * `quantizeModel(model, spec)` upgrades a model's Conv2d/Linear layers in place (the same objects
 * become QuantConv2d/QuantLinear, so parents' fields and state-dict names stay valid); the first
 * and the last such layer stay float unless asked.
 */
import { conv2d, linear, noGrad, record, type Tensor } from '../autograd/index.ts';
import { Conv2d, Linear, type Conv2dOptions, type LinearOptions } from '../nn/layers.ts';
import { Module } from '../nn/module.ts';
import type { Parameter } from '../nn/parameter.ts';
import { actPartOf, type ActQuant, type WeightQuant, weightPartOf } from './methods/index.ts';
import { type ActPart, type Precision, setParamRole, type WeightLayer, type WeightPart } from './methods/types.ts';
import type { QuantSpec } from './spec.ts';

type Registrar = (name: string, t: Tensor) => Parameter;

/**
 * The weight-quantization state of one layer (shared by QuantConv2d and QuantLinear): the record's
 * weight part (`methods/`), its registered quantizer parameters (by name, each tagged with its
 * role) and its per-layer state. Everything method-specific is in the record.
 */
export class WeightQuantState implements WeightLayer {
  readonly precision: Precision;
  readonly part: WeightPart;
  /** the quantizer parameters this layer registered (state-dict names relative to the layer) */
  readonly qparams: Readonly<Record<string, Parameter>>;
  /** the record's per-layer state (incremental masks, calibrated ranges, ...) */
  readonly state: unknown;
  quantCount = 0;
  private cache: Tensor | null = null;
  private stale = false;
  private evalCache: Tensor | null = null;

  constructor(readonly spec: WeightQuant, readonly weight: Parameter, register: Registrar) {
    this.part = weightPartOf(spec);
    this.precision = this.part.precision(spec);
    weight.precision = this.precision;
    setParamRole(weight, 'weight');
    const qparams: Record<string, Parameter> = {};
    for (const d of this.part.params?.(spec, weight) ?? []) {
      const p = register(d.name, d.init);
      setParamRole(p, d.role, this.part.lrMultiple?.(spec, d.role));
      qparams[d.name] = p;
    }
    this.qparams = qparams;
    this.state = this.part.state?.(spec, weight);
  }

  get channels(): number {
    return this.weight.shape[0];
  }

  /** A registered quantizer parameter (e.g. 'sq_beta'). */
  param(name: string): Parameter {
    const p = Object.hasOwn(this.qparams, name) ? this.qparams[name] : undefined;
    if (!p) throw new Error(`webqat: ${this.spec.method} layer has no quantizer parameter '${name}' (has: ${Object.keys(this.qparams).join(', ') || 'none'})`);
    return p;
  }

  /** Host calibration (fixed/log ranges from max|W|), for the methods that have one. */
  async calibrate(): Promise<void> {
    if (this.part.calibrate) await this.part.calibrate(this.spec, this);
  }

  /** Ŵ = Q(W), differentiable by the quantizer's STE. */
  private compute(): Tensor {
    this.quantCount++;
    return this.part.forward(this.spec, this);
  }

  /** The quantized weight for this step (cached; see the file comment). */
  quantized(training: boolean): Tensor {
    if (this.part.identity) return this.weight;
    if (!training) {
      if (this.evalCache && !this.evalCache.released) return this.evalCache;
      const q = noGrad(() => this.compute());
      // Ŵ = W this step (ELQ/INQ before the first freeze): nothing to cache, and the cache must never
      // hold (and later release) the weight itself
      if (q === this.weight) return q;
      this.evalCache = q.keep();
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
    this.part.release?.(this.spec, this);
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

/** Activation quantizer layer: the record of `spec.method` (DoReFa k-bit, PACT learned clip, LSQ learned step, none). */
export class QuantAct extends Module {
  readonly precision: Precision;
  readonly part: ActPart;
  /** the quantizer parameters this layer registered (e.g. 'pact_alpha', 'act_step') */
  readonly qparams: Readonly<Record<string, Parameter>>;
  private calls = 0;

  constructor(readonly spec: ActQuant) {
    super();
    this.part = actPartOf(spec);
    this.precision = this.part.precision(spec);
    const qparams: Record<string, Parameter> = {};
    for (const d of this.part.params?.(spec) ?? []) {
      const p = this.param(d.name, d.init);
      setParamRole(p, d.role);
      qparams[d.name] = p;
    }
    this.qparams = qparams;
  }

  forward(x: Tensor): Tensor {
    const first = this.calls++ === 0;
    return this.part.forward(this.spec, x, {
      param: (name) => {
        const p = Object.hasOwn(this.qparams, name) ? this.qparams[name] : undefined;
        if (!p) throw new Error(`webqat: QuantAct(${this.spec.method}) has no parameter '${name}'`);
        return p;
      },
      first,
    });
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
  if (weightPartOf(spec.weight).identity) return out;
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
