/**
 * The shape of a quantizer record (one per method, `src/quant/methods/*.ts`, listed in `index.ts`).
 * A record holds everything about one method:
 *
 *  - its piece of the `--quant` grammar: the names it answers to, `parse` (with its error messages),
 *    the canonical text of a spec it owns, the forms listed in help texts and an example;
 *  - a weight part and/or an activation part, selected by `spec.weight.method` / `spec.act.method`
 *    equal to the record's `id`. Each part gives its precision tag (Larq-style: drives the size
 *    report and the packing), the trainable quantizer parameters it registers on the layer with a
 *    ROLE tag (the optimizer routes by role), the op it calls in the forward pass, and, for
 *    weights, its training hooks (regularizer, pre/post optimizer-step work, incremental stages),
 *    how the size report reads a layer, and how it packs for export.
 *
 * Generic code (spec.ts, layers.ts, hooks.ts, report.ts, export.ts, qat.ts) only dispatches
 * through these records: adding a quantizer is one file here plus its line in `index.ts`.
 */
import type { Tensor } from '../../autograd/index.ts';
import type { PrecisionTag } from '../../nn/parameter.ts';
import type { Parameter } from '../../nn/parameter.ts';

export type PrecisionKind = 'float' | 'binary' | 'ternary' | 'kbit' | 'log' | 'fixed' | 'adaptive';

/** What a tensor is stored/trained as. `bits` is the storage width per value (adaptive: the maximum). */
export interface Precision extends PrecisionTag {
  kind: PrecisionKind;
  bits: number;
}

export const FP32: Precision = Object.freeze({ kind: 'float', bits: 32 }) as Precision;

export function precision(kind: PrecisionKind, bits: number): Precision {
  return { kind, bits };
}

/**
 * The role of a trainable tensor of a quantized layer; the optimizer routing reads it (see
 * `quantParamGroups`): 'weight' the latent float weight; 'scale' a learned magnitude (TTQ W_p/W_n,
 * SQ α); 'angle' SQ's β (own group at a learning-rate multiple, no weight decay); 'step' an LSQ step
 * size; 'clip' a learned clipping level (PACT α). Every role but 'weight' gets no weight decay.
 */
export type ParamRole = 'weight' | 'scale' | 'angle' | 'step' | 'clip';

const roles = new WeakMap<object, { role: ParamRole; lrMultiple?: number }>();

/**
 * Tag a tensor with its quantizer role and, if its record asks for one, its learning-rate multiple
 * (done by the quantized layers when they register it).
 */
export function setParamRole(t: Tensor, role: ParamRole, lrMultiple?: number): void {
  roles.set(t, lrMultiple === undefined ? { role } : { role, lrMultiple });
}

/** The quantizer role of a tensor, or undefined for ordinary parameters (biases, BN, float layers). */
export function paramRole(t: Tensor): ParamRole | undefined {
  return roles.get(t)?.role;
}

/** The learning-rate multiple its record gave a quantizer parameter (undefined: the model's lr). */
export function paramLrMultiple(t: Tensor): number | undefined {
  return roles.get(t)?.lrMultiple;
}

/** A quantizer parameter a part registers on its layer (name as in the state dict). */
export interface ParamDecl {
  name: string;
  role: ParamRole;
  /** the initial value (a fresh leaf tensor; the layer makes it a parameter) */
  init: Tensor;
}

/** What a weight part sees of one quantized layer. */
export interface WeightLayer<S = unknown> {
  readonly weight: Parameter;
  /** number of output channels (weight.shape[0]) */
  readonly channels: number;
  /** a quantizer parameter this layer registered (throws for an unknown name) */
  param(name: string): Parameter;
  /** the part's per-layer state (from `state()`) */
  readonly state: S;
  /** forget the cached quantized weight */
  invalidate(): void;
}

/** Where a run is, for the training hooks. */
export interface TrainContext {
  /** optimizer steps done so far */
  readonly step: number;
  /** total optimizer steps of the run */
  readonly totalSteps: number;
  /** options given to QuantHooks (method-specific ones are read by their record, e.g. `elq`) */
  readonly opts: Readonly<Record<string, unknown>>;
}

/** A weight method's per-run training behaviour over the layers it quantizes. Every member optional. */
export interface MethodTraining {
  /** steps at which the next incremental portion is frozen */
  readonly stageBoundaries?: readonly number[];
  /** the accumulated incremental fraction at a step */
  fractionAt?(step: number): number;
  /** freeze what `step` calls for; returns the number of weights frozen */
  advance?(step: number): Promise<number>;
  /** a term added to the task loss (a scalar tensor) or null */
  penalty?(ctx: TrainContext): Tensor | null;
  /** after backward, before the optimizer update */
  beforeStep?(ctx: TrainContext): void;
  /** after the optimizer update (ctx.step is already the new count) */
  afterStep?(ctx: TrainContext): void;
}

/** How the size report reads a layer (overrides the precision tag, e.g. SQ's per-layer decision). */
export interface LayerReading {
  mode: string;
  bits: number;
  /** extra fields merged into the layer report (e.g. `sq`) */
  extra?: Record<string, unknown>;
}

export type WeightConfig = {
  method: string;
  [option: string]: unknown;
};

export type ActConfig = {
  method: string;
  [option: string]: unknown;
};

/** The weight-quantizer part of a record (`spec.weight.method === record.id`). */
export interface WeightPart<C extends WeightConfig = WeightConfig, S = unknown> {
  precision(c: C): Precision;
  /** Ŵ = W (float weights): the layer skips caching */
  identity?: boolean;
  /** quantizer parameters registered next to the weight, with their roles */
  params?(c: C, weight: Parameter): ParamDecl[];
  /** per-layer state that is not a parameter (incremental masks, calibrated ranges) */
  state?(c: C, weight: Parameter): S;
  /** host calibration before the first forward (and on demand); called by QuantHooks.prepare() */
  calibrate?(c: C, layer: WeightLayer<S>): Promise<void>;
  /** Ŵ = Q(W), differentiable by the quantizer's STE (the identity method returns W) */
  forward(c: C, layer: WeightLayer<S>): Tensor;
  /** release the per-layer state */
  release?(c: C, layer: WeightLayer<S>): void;
  /** learning-rate multiple of a role's parameters (a role with one gets its own parameter group) */
  lrMultiple?(c: C, role: ParamRole): number | undefined;
  /** the per-run training behaviour (loss term, step hooks, incremental stages) */
  training?(c: C, layers: readonly { name: string; layer: WeightLayer<S> }[], ctx: TrainContext): MethodTraining;
  /** the size report's reading of a layer, from its quantized values (default: the precision tag) */
  read?(c: C, layer: WeightLayer<S>, values: Float32Array): Promise<LayerReading>;
  /**
   * packing: scales per layer ('layer': one, 'channel': one per output channel), a hint for pack
   * errors, and (fixed / log layers, stored as B-bit codes) the calibrated range the codes are
   * relative to: the fraction length f (fixed) or the full-scale exponent FSR (log)
   */
  pack?: { scales?: 'layer' | 'channel'; hint?: string; range?(c: C, layer: WeightLayer<S>): number };
  /** the quantizer label stored in the packed file (default: the method id) */
  label?(c: C): string;
}

/** The activation-quantizer part of a record (`spec.act.method === record.id`). */
export interface ActPart<C extends ActConfig = ActConfig> {
  precision(c: C): Precision;
  params?(c: C): ParamDecl[];
  /** q(x); `layer.param` gives the registered parameters, `first` is true on the first call */
  forward(c: C, x: Tensor, layer: { param(name: string): Parameter; first: boolean }): Tensor;
}

/** A parsed `--quant` value before the precision tags and the name are filled in. */
export interface SpecParts {
  weight: WeightConfig;
  act: ActConfig;
}

/** Raised by a record's parse; spec.ts adds the spec text and the accepted forms. */
export class SpecError extends Error {}

/** Helpers a record's parse gets. */
export interface ParseContext {
  /** the whole `--quant` text (for messages) */
  readonly text: string;
  /** the name before ':' as written (lower case) */
  readonly method: string;
  /** throw a parse error (`why` is completed with the accepted forms) */
  fail(why: string): never;
  /** reject an argument */
  noArg(arg: string | undefined): void;
  /** the argument, or an error "'<method>' needs <what>" */
  need(arg: string | undefined, what: string): string;
  /** an integer in lo..hi (or one of `also`), else an error naming `what` */
  intIn(what: string, text: string, lo: number, hi: number, also?: number[]): number;
  /** 'wKaK' / 'aKwK' / 'wK' / 'aK' -> the bit texts */
  bitWidths(body: string): { w?: string; a?: string };
}

export interface QuantMethod {
  /** the id stored in `spec.weight.method` / `spec.act.method` */
  id: string;
  /** the `--quant` names this record parses (before ':'); the first is the canonical one */
  names: readonly string[];
  /** one line for help texts and docs */
  summary: string;
  /** the forms listed in help texts and parse errors */
  accepted: readonly string[];
  /** a concrete spec for menus (the browser app), or several */
  examples: readonly string[];
  /** the ALGORITHMS.md section */
  ref?: string;
  /** parse the argument after ':' (lower case, trimmed; undefined without ':') */
  parse(arg: string | undefined, ctx: ParseContext): SpecParts;
  /**
   * The canonical text of a spec whose parts this record owns: the record of `act.method` when
   * activations are quantized, else the record of `weight.method`. Must parse back to the same spec.
   */
  canonical(parts: SpecParts): string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  weight?: WeightPart<any, any>;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  act?: ActPart<any>;
}

/** Identity helper that keeps a record's config types (`defineMethod({...})`). */
export function defineMethod<M extends QuantMethod>(m: M): M {
  return m;
}

/** Typed weight part helper. */
export function weightPart<C extends WeightConfig, S = undefined>(p: WeightPart<C, S>): WeightPart<C, S> {
  return p;
}

/** Typed activation part helper. */
export function actPart<C extends ActConfig>(p: ActPart<C>): ActPart<C> {
  return p;
}
