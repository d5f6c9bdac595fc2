/**
 * xnor: binary weights with one scale per output channel, Ŵ[c] = α_c·sign*(W[c]), α_c = mean|W[c]|
 * (XNOR-Net's weight binarization; BWN with per-channel α, ALGORITHMS §1.3). Identity STE like bwn.
 * Packs as 1-bit words plus one f32 scale per output channel, which the packed format and
 * loadPacked already read; the size report counts those scales.
 */
import { quantBinary } from '../../autograd/index.ts';
import { defineMethod, type ParseContext, precision } from './types.ts';

export type XnorQuant = {
  method: 'xnor';
};

export const xnor = defineMethod({
  id: 'xnor',
  names: ['xnor'],
  summary: 'binary weights α_c·sign(W), α_c = mean|W| per output channel (XNOR-Net weights)',
  ref: '§1.3',
  accepted: ['xnor'],
  examples: ['xnor'],
  parse(arg: string | undefined, ctx: ParseContext) {
    ctx.noArg(arg);
    return { weight: { method: 'xnor' }, act: { method: 'none' } };
  },
  canonical: () => 'xnor',
  weight: {
    precision: (_c: XnorQuant) => precision('binary', 1),
    forward: (_c: XnorQuant, l) => quantBinary(l.weight, { granularity: 'channel' }),
    pack: { scales: 'channel' },
  },
});
