/**
 * elq:ternary | elq:binary: explicit loss-error-aware quantization (ALGORITHMS §5), incremental:
 * the frozen part is α·T (one α per layer, solved at the first freeze), the free weights train with
 * the ELQ gradient terms (applied between backward and the optimizer step).
 */
import { ELQQuantizer, elqAdjustGrad_, type ELQOptions } from '../elq.ts';
import { IncrementalState } from '../inq.ts';
import { type IncrementalLayerState, incrementalTraining } from './incremental.ts';
import { defineMethod, precision, type SpecParts, type ParseContext } from './types.ts';

export type ElqQuant = {
  method: 'elq';
  mode: 'ternary' | 'binary';
};

export interface ElqState extends IncrementalLayerState {
  elq: ELQQuantizer;
}

export const elq = defineMethod({
  id: 'elq',
  names: ['elq'],
  summary: 'explicit loss-error-aware incremental binary/ternary weights',
  ref: '§5',
  accepted: ['elq:ternary', 'elq:binary'],
  examples: ['elq:ternary', 'elq:binary'],
  parse(arg: string | undefined, ctx: ParseContext): SpecParts {
    const mode = ctx.need(arg, "'ternary' or 'binary'");
    if (mode !== 'ternary' && mode !== 'binary') ctx.fail(`ELQ mode must be 'ternary' or 'binary', got '${mode}'`);
    return { weight: { method: 'elq', mode }, act: { method: 'none' } };
  },
  canonical: ({ weight }) => `elq:${(weight as ElqQuant).mode}`,
  weight: {
    precision: (c: ElqQuant) => (c.mode === 'binary' ? precision('binary', 1) : precision('ternary', 2)),
    state(c: ElqQuant, weight): ElqState {
      const q = new ELQQuantizer(c.mode);
      return { incremental: new IncrementalState(weight.shape), elq: q, quantize: q.quantize };
    },
    forward: (_c: ElqQuant, l) => (l.state as ElqState).incremental.apply(l.weight),
    release: (_c: ElqQuant, l) => (l.state as ElqState).incremental.release(),
    training(_c: ElqQuant, layers, ctx) {
      const t = incrementalTraining(layers, ctx);
      return {
        ...t,
        beforeStep: () => {
          const opts = ctx.opts.elq as ELQOptions | undefined;
          for (const { layer } of layers) {
            const s = layer.state as ElqState;
            elqAdjustGrad_(layer.weight, s.incremental, s.elq, opts);
          }
        },
      };
    },
  },
});
