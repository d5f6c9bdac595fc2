/** inq:B: incremental network quantization, power-of-two weights at B bits (ALGORITHMS §1.5). */
import { IncrementalState, INQQuantizer } from '../inq.ts';
import { type IncrementalLayerState, incrementalTraining } from './incremental.ts';
import { defineMethod, precision, type SpecParts, type WeightLayer, type ParseContext } from './types.ts';

export type InqQuant = {
  method: 'inq';
  bits: number;
};

export const inq = defineMethod({
  id: 'inq',
  names: ['inq'],
  summary: 'incremental power-of-two weights (INQ)',
  ref: '§1.5',
  accepted: ['inq:B (B: 2..8)'],
  examples: ['inq:4'],
  parse(arg: string | undefined, ctx: ParseContext): SpecParts {
    return { weight: { method: 'inq', bits: ctx.intIn('INQ bits', ctx.need(arg, 'a bit width, e.g. inq:5'), 2, 8) }, act: { method: 'none' } };
  },
  canonical: ({ weight }) => `inq:${(weight as InqQuant).bits}`,
  weight: {
    precision: (c: InqQuant) => precision('log', c.bits),
    state: (c: InqQuant, weight): IncrementalLayerState => ({ incremental: new IncrementalState(weight.shape), quantize: new INQQuantizer(c.bits).quantize }),
    forward: (_c: InqQuant, l) => (l.state as IncrementalLayerState).incremental.apply(l.weight),
    release: (_c: InqQuant, l) => (l.state as IncrementalLayerState).incremental.release(),
    training: (_c: InqQuant, layers, ctx) => incrementalTraining(layers, ctx),
  },
});
