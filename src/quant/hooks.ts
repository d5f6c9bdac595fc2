/**
 * QuantHooks: what a quantized model needs from the training loop, packaged for the Trainer's
 * existing extension points (no Trainer changes). Generic: each quantizer record (src/quant/methods)
 * says what its layers need through `training()`; this class runs those:
 *  - `loss(base)`: the task loss plus the records' penalty terms (SQ: λ·Σ(R_l + γ·cot β_l), λ warmed up);
 *  - `optimizer(opt)`: the optimizer with the records' pre-step hooks (ELQ gradient terms) and
 *    post-step hooks (SQ β clip), invalidating the cached quantized weights, the step counter;
 *  - `stageBoundaries` / `advance(step)`: incremental (ELQ/INQ) stages; call `advance` between
 *    `trainer.fit({ maxSteps: boundary })` segments;
 *  - `prepare()`: host calibrations (fixed/log ranges) before the first forward.
 */
import { add, type Tensor } from '../autograd/index.ts';
import type { Module } from '../nn/module.ts';
import type { ELQOptions } from './elq.ts';
import { quantLayers, type WeightQuantState } from './layers.ts';
import { weightPartOf } from './methods/index.ts';
import type { MethodTraining, TrainContext } from './methods/types.ts';
import type { QuantSpec } from './spec.ts';

/** The optimizer surface the trainer uses. */
export interface StepOptimizer {
  step(): void;
  zeroGrad(): void;
}

export interface QuantHooksOptions {
  /** ELQ: loss-perturbation and weight-approximation weights */
  elq?: ELQOptions;
  /** incremental methods: fraction of training before the first freeze (default 0.2) */
  incrementalWarmup?: number;
  [method: string]: unknown;
}

export class QuantHooks {
  readonly states: { name: string; state: WeightQuantState }[];
  /** optimizer steps seen */
  step = 0;
  /** per weight method in the model, what its record does during training */
  private readonly trainings: MethodTraining[] = [];

  constructor(
    readonly model: Module,
    readonly spec: QuantSpec,
    /** total optimizer steps of the run (λ warm-up, incremental stages) */
    readonly totalSteps: number,
    readonly opts: QuantHooksOptions = {},
  ) {
    this.states = quantLayers(model).map(([name, l]) => ({ name, state: l.wq }));
    // group the layers by weight method (a model may mix, e.g. SSPQ's built-in layers)
    const byMethod = new Map<string, { name: string; state: WeightQuantState }[]>();
    for (const s of this.states) {
      const k = JSON.stringify(s.state.spec);
      if (!byMethod.has(k)) byMethod.set(k, []);
      byMethod.get(k)!.push(s);
    }
    // the spec's method takes part even with no layer in the model (as before: its schedule exists)
    const specKey = JSON.stringify(spec.weight);
    if (!byMethod.has(specKey)) byMethod.set(specKey, []);
    for (const group of byMethod.values()) {
      const cfg = group[0]?.state.spec ?? spec.weight;
      const t = weightPartOf(cfg).training?.(cfg, group.map(({ name, state }) => ({ name, layer: state })), this.context());
      if (t) this.trainings.push(t);
    }
  }

  private context(): TrainContext {
    const self = this;
    return {
      get step() {
        return self.step;
      },
      totalSteps: this.totalSteps,
      opts: this.opts,
    };
  }

  /** Steps at which the incremental quantized fraction grows (empty for other methods). */
  get stageBoundaries(): number[] {
    return this.trainings.flatMap((t) => [...(t.stageBoundaries ?? [])]);
  }

  /** The accumulated incremental fraction at a step (0 without an incremental method). */
  fractionAt(step = this.step): number {
    for (const t of this.trainings) if (t.fractionAt) return t.fractionAt(step);
    return 0;
  }

  /** Host calibration (fixed/log ranges) and the incremental stage for the current step. */
  async prepare(): Promise<void> {
    for (const { state } of this.states) await state.calibrate();
    await this.advance(this.step);
  }

  /** Freeze the incremental fraction that `step` calls for. Returns the number of weights frozen. */
  async advance(step = this.step): Promise<number> {
    let frozen = 0;
    for (const t of this.trainings) if (t.advance) frozen += await t.advance(step);
    return frozen;
  }

  /** Wrap a loss function to add the records' penalty terms (SQ's regularizer). */
  loss(base: (logits: Tensor, labels: Tensor) => Tensor): (logits: Tensor, labels: Tensor) => Tensor {
    const terms = this.trainings.filter((t) => t.penalty);
    if (!terms.length) return base;
    const ctx = this.context();
    return (logits, labels) => {
      let l = base(logits, labels);
      for (const t of terms) {
        const pen = t.penalty!(ctx);
        if (pen) l = add(l, pen);
      }
      return l;
    };
  }

  /** Called after backward, before the optimizer update. */
  beforeStep(): void {
    const ctx = this.context();
    for (const t of this.trainings) t.beforeStep?.(ctx);
  }

  /** Called after the optimizer update. */
  afterStep(): void {
    this.step++;
    const ctx = this.context();
    for (const t of this.trainings) t.afterStep?.(ctx);
    for (const { state } of this.states) state.invalidate();
  }

  /** The optimizer with the hooks around step() (every other member is the optimizer's own). */
  optimizer<O extends StepOptimizer>(opt: O): O {
    return new Proxy(opt, {
      get: (target, prop) => {
        if (prop === 'step') {
          return () => {
            this.beforeStep();
            target.step();
            this.afterStep();
          };
        }
        const v = Reflect.get(target, prop, target);
        return typeof v === 'function' ? v.bind(target) : v;
      },
      set: (target, prop, value) => Reflect.set(target, prop, value, target),
    });
  }
}
