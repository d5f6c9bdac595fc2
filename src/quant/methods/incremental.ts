/**
 * Shared by the incremental records (elq, inq): the per-layer frozen mask/values and the run's
 * stage schedule (ALGORITHMS §1.5: 50 → 75 → 87.5 → 100 % frozen, largest |W| first). Not a record.
 */
import { IncrementalSchedule, type IncrementalState } from '../inq.ts';
import type { MethodTraining, TrainContext, WeightLayer } from './types.ts';

export interface IncrementalLayerState {
  incremental: IncrementalState;
  /** host quantizer of the newly frozen weights: (all weights, indices) -> their values */
  quantize: (all: Float32Array, idx: number[]) => Float32Array;
}

/** The stage schedule and `advance` of an incremental method over its layers. */
export function incrementalTraining(
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  layers: readonly { layer: WeightLayer<any> }[],
  ctx: TrainContext,
): MethodTraining & { schedule: IncrementalSchedule } {
  const warmup = (ctx.opts.incrementalWarmup as number | undefined) ?? 0.2;
  const schedule = new IncrementalSchedule(Math.max(1, ctx.totalSteps), undefined, { warmup });
  return {
    schedule,
    stageBoundaries: schedule.boundaries,
    fractionAt: (step) => schedule.fractionAt(step),
    async advance(step) {
      const f = schedule.fractionAt(step);
      let frozen = 0;
      for (const { layer } of layers) {
        const s = layer.state as IncrementalLayerState;
        frozen += await s.incremental.advance(layer.weight, f, s.quantize);
        layer.invalidate();
      }
      return frozen;
    },
  };
}
