/**
 * QuantHooks: what a quantized model needs from the training loop, packaged for the Trainer's
 * existing extension points (no Trainer changes):
 *  - `loss(base)`: the task loss plus the SQ regularizer λ·Σ(R_l + γ·cot β_l) (λ warmed up);
 *  - `optimizer(opt)`: the optimizer with a pre-step hook (ELQ gradient terms) and a post-step hook
 *    (SQ β clip, invalidating the cached quantized weights, the step counter);
 *  - `stageBoundaries` / `advance(step)`: the incremental (ELQ/INQ) stages; call `advance` between
 *    `trainer.fit({ maxSteps: boundary })` segments;
 *  - `prepare()`: host calibrations (fixed/log ranges) before the first forward.
 */
import { add, type Tensor } from '../autograd/index.ts';
import type { Module } from '../nn/module.ts';
import { elqAdjustGrad_, type ELQOptions } from './elq.ts';
import { IncrementalSchedule } from './inq.ts';
import { quantLayers, type WeightQuantState } from './layers.ts';
import { sqBetaFloors, sqClipBeta_, sqPenalty } from './sq.ts';
import type { QuantSpec } from './spec.ts';

/** The optimizer surface the trainer uses. */
export interface StepOptimizer {
  step(): void;
  zeroGrad(): void;
}

export class QuantHooks {
  readonly states: { name: string; state: WeightQuantState }[];
  /** optimizer steps seen */
  step = 0;
  readonly schedule: IncrementalSchedule | null;
  /** SQ: each layer's β floor for the coming step (binary layers stay binary) */
  private sqFloors: (Tensor | null)[] | undefined;

  constructor(
    readonly model: Module,
    readonly spec: QuantSpec,
    /** total optimizer steps of the run (λ warm-up, incremental stages) */
    readonly totalSteps: number,
    readonly opts: { elq?: ELQOptions; incrementalWarmup?: number } = {},
  ) {
    this.states = quantLayers(model).map(([name, l]) => ({ name, state: l.wq }));
    const m = spec.weight.method;
    this.schedule = m === 'elq' || m === 'inq' ? new IncrementalSchedule(Math.max(1, totalSteps), undefined, { warmup: opts.incrementalWarmup ?? 0.2 }) : null;
  }

  /** Steps at which the incremental quantized fraction grows (empty for other methods). */
  get stageBoundaries(): number[] {
    return this.schedule ? [...this.schedule.boundaries] : [];
  }

  /** Host calibration (fixed/log ranges) and the incremental stage for the current step. */
  async prepare(): Promise<void> {
    for (const { state } of this.states) await state.calibrate();
    await this.advance(this.step);
  }

  /** Freeze the incremental fraction that `step` calls for. Returns the number of weights frozen. */
  async advance(step = this.step): Promise<number> {
    if (!this.schedule) return 0;
    const f = this.schedule.fractionAt(step);
    let frozen = 0;
    for (const { state } of this.states) {
      if (!state.incremental) continue;
      const q = state.elq ? state.elq.quantize : state.inq!.quantize;
      frozen += await state.incremental.advance(state.weight, f, q);
      state.invalidate();
    }
    return frozen;
  }

  /** The SQ λ at the current step (linear warm-up). */
  get sqLambda(): number {
    const w = this.spec.weight;
    if (w.method !== 'sq') return 0;
    const ramp = w.warmup * this.totalSteps;
    return ramp > 0 ? w.lambda * Math.min(1, (this.step + 1) / ramp) : w.lambda;
  }

  /** Wrap a loss function to add the SQ regularizer. */
  loss(base: (logits: Tensor, labels: Tensor) => Tensor): (logits: Tensor, labels: Tensor) => Tensor {
    if (this.spec.weight.method !== 'sq') return base;
    return (logits, labels) => {
      const l = base(logits, labels);
      const pen = sqPenalty(this.states.map((s) => s.state), this.sqLambda);
      return pen ? add(l, pen) : l;
    };
  }

  /** Called after backward, before the optimizer update. */
  beforeStep(): void {
    if (this.spec.weight.method === 'sq') this.sqFloors = sqBetaFloors(this.states.map((s) => s.state));
    if (this.spec.weight.method === 'elq') {
      for (const { state } of this.states) if (state.incremental && state.elq) elqAdjustGrad_(state.weight, state.incremental, state.elq, this.opts.elq);
    }
  }

  /** Called after the optimizer update. */
  afterStep(): void {
    this.step++;
    if (this.spec.weight.method === 'sq') sqClipBeta_(this.states.map((s) => s.state), this.sqFloors);
    this.sqFloors = undefined;
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
