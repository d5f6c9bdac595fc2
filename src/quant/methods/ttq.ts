/**
 * ttq: trained ternary quantization (ALGORITHMS §1.3): Δ = 0.05·max|W|, Ŵ ∈ {−W_n, 0, +W_p} with
 * W_p, W_n trained scales (role 'scale'). Does not pack: the format stores one magnitude per layer.
 */
import { quantTtq } from '../../autograd/index.ts';
import { ttqInit } from '../quantizers.ts';
import { defineMethod, precision, type ParseContext } from './types.ts';

export type TtqQuant = {
  method: 'ttq';
  threshold: number;
};

export const ttq = defineMethod({
  id: 'ttq',
  names: ['ttq'],
  summary: 'trained ternary weights, Δ = 0.05·max|W|, trained W_p, W_n',
  ref: '§1.3',
  accepted: ['ttq'],
  examples: ['ttq'],
  parse(arg: string | undefined, ctx: ParseContext) {
    ctx.noArg(arg);
    return { weight: { method: 'ttq', threshold: 0.05 }, act: { method: 'none' } };
  },
  canonical: () => 'ttq',
  weight: {
    precision: (_c: TtqQuant) => precision('ternary', 2),
    params(c: TtqQuant, weight) {
      const { wp, wn } = ttqInit(weight, c.threshold);
      return [
        { name: 'ttq_wp', role: 'scale', init: wp },
        { name: 'ttq_wn', role: 'scale', init: wn },
      ];
    },
    forward: (c: TtqQuant, l) => quantTtq(l.weight, l.param('ttq_wp'), l.param('ttq_wn'), { threshold: c.threshold }),
    pack: { hint: 'TTQ has separate positive and negative scales, which this format does not store' },
  },
});
