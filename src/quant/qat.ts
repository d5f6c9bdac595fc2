/**
 * Quantization-aware training assembly, the one copy of "quantize the model → parameter groups →
 * optimizer → hooks → the Trainer's model/optimizer/loss" (the train command, the browser app,
 * the experiments and the soak benchmark all call `qat()`).
 *
 * Parameter groups are routed by the ROLE tag each quantizer record gives its parameters
 * (src/quant/methods/types.ts `ParamRole`), not by their names: a role whose record asks for a
 * learning-rate multiple (SQ's 'angle' β: `betalr`) gets its own group at that multiple and no
 * weight decay; quantizer parameters (every role but 'weight') never get weight decay.
 */
import { softmaxCrossEntropy, type Tensor } from '../autograd/index.ts';
import type { Module } from '../nn/module.ts';
import type { BaseHyper, ParamGroupSpec } from '../optim/optimizer.ts';
import { QuantHooks, type QuantHooksOptions, type StepOptimizer } from './hooks.ts';
import { quantizeModel, type QuantizeModelOptions, quantLayers } from './layers.ts';
import { paramLrMultiple, paramRole } from './methods/types.ts';
import type { QuantSpec } from './spec.ts';

type Named = [string, Tensor];

/**
 * Optimizer parameter groups for a quantized model: parameters whose record gives their role a
 * learning-rate multiple (SQ β: `betalr`) go into their own group per multiple at `multiple × lr`,
 * no weight decay; every other parameter goes to `groups(rest)` (what the caller builds, e.g.
 * `decayGroups`; default one group), except that quantizer parameters are moved out of any group
 * with weight decay into a trailing group without (`decayGroups` already leaves them undecayed:
 * they are rank-1). `spec` is kept for the call signature; the routing reads the role tags.
 */
export function quantParamGroups(
  named: readonly (readonly [string, Tensor])[],
  _spec: QuantSpec | null,
  lr: number,
  groups: (rest: Named[]) => ParamGroupSpec<BaseHyper>[] = (rest) => [{ params: rest }],
): ParamGroupSpec<BaseHyper>[] {
  const own = new Map<number, Named[]>();
  const rest: Named[] = [];
  for (const [n, t] of named) {
    const m = paramLrMultiple(t);
    if (m === undefined) rest.push([n, t]);
    else {
      if (!own.has(m)) own.set(m, []);
      own.get(m)!.push([n, t]);
    }
  }
  const out = rest.length ? groups(rest) : [];
  const noDecay: Named[] = [];
  for (const g of out) {
    if (!(typeof g.weightDecay === 'number' && g.weightDecay > 0) || !Array.isArray(g.params)) continue;
    const ps = g.params as Named[];
    const quantizer = (e: unknown) => Array.isArray(e) && isQuantizerParam(e[1] as Tensor);
    if (!ps.some(quantizer)) continue;
    noDecay.push(...ps.filter(quantizer));
    g.params = ps.filter((e) => !quantizer(e));
  }
  const kept = out.filter((g) => !Array.isArray(g.params) || g.params.length > 0);
  if (noDecay.length) kept.push({ params: noDecay, weightDecay: 0 });
  for (const [m, ps] of own) kept.push({ params: ps, lr: lr * m, weightDecay: 0 });
  return kept;
}

function isQuantizerParam(t: Tensor): boolean {
  const r = paramRole(t);
  return r !== undefined && r !== 'weight';
}

export interface QatOptions<O extends StepOptimizer> extends QuantizeModelOptions {
  /** the model's learning rate (role multiples are relative to it) */
  lr: number;
  /** total optimizer steps of the run (SQ λ warm-up, incremental stages) */
  totalSteps: number;
  /** build the optimizer from the parameter groups */
  optimizer: (groups: ParamGroupSpec<BaseHyper>[]) => O;
  /** groups of the ordinary parameters (default: one group), e.g. `(rest) => decayGroups(rest, wd)` */
  groups?: (rest: Named[]) => ParamGroupSpec<BaseHyper>[];
  /** the task loss (default softmax cross-entropy, mean) */
  loss?: (logits: Tensor, labels: Tensor) => Tensor;
  /** method options for the hooks (ELQ weights, incremental warm-up) */
  hooks?: QuantHooksOptions;
}

export interface Qat<O extends StepOptimizer> {
  spec: QuantSpec;
  /** every quantized layer of the model (dotted names) */
  layers: string[];
  /** the model came with quantized layers (e.g. SSPQ) and was not quantized here */
  builtIn: boolean;
  groups: ParamGroupSpec<BaseHyper>[];
  /** the optimizer as built (its groups, state, learning rates) */
  rawOptimizer: O;
  /** the optimizer with the quantizer hooks around step(): give this one to the Trainer */
  optimizer: O;
  hooks: QuantHooks;
  /** the task loss plus the quantizers' penalty terms: give this one to the Trainer */
  loss: (logits: Tensor, labels: Tensor) => Tensor;
  /** host calibrations and the incremental stage of the current step (call before the first forward) */
  prepare(): Promise<void>;
}

/**
 * Set a model up for quantization-aware training with `spec`: quantize its Conv2d/Linear layers
 * (unless it has quantized layers built in, like the SSPQ models; the first and last stay float
 * unless asked), build the parameter groups (role routing) and the optimizer, and wrap the
 * optimizer and the loss with the quantizer hooks. Pass `model`, `optimizer` and `loss` to the Trainer
 * and `await prepare()` before training.
 */
export function qat<O extends StepOptimizer>(model: Module, spec: QuantSpec, opts: QatOptions<O>): Qat<O> {
  const builtIn = quantLayers(model).length > 0;
  if (!builtIn) quantizeModel(model, spec, { quantizeFirst: opts.quantizeFirst, quantizeLast: opts.quantizeLast });
  const layers = quantLayers(model).map(([n]) => n);
  const groups = quantParamGroups(model.namedParameters(), spec, opts.lr, opts.groups);
  const rawOptimizer = opts.optimizer(groups);
  const hooks = new QuantHooks(model, spec, opts.totalSteps, opts.hooks);
  return {
    spec,
    layers,
    builtIn,
    groups,
    rawOptimizer,
    optimizer: hooks.optimizer(rawOptimizer),
    hooks,
    loss: hooks.loss(opts.loss ?? ((logits, labels) => softmaxCrossEntropy(logits, labels, 'mean'))),
    prepare: () => hooks.prepare(),
  };
}
