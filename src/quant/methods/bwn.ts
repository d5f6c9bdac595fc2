/** bwn: binary weights α·sign*(W), α = mean|W| per layer (ALGORITHMS §1.3). */
import { quantBinary } from '../../autograd/index.ts';
import { defineMethod, precision, type ParseContext } from './types.ts';

export type BwnQuant = {
  method: 'bwn';
};

export const bwn = defineMethod({
  id: 'bwn',
  names: ['bwn'],
  summary: 'binary weights α·sign(W), α = mean|W| per layer',
  ref: '§1.3',
  accepted: ['bwn'],
  examples: ['bwn'],
  parse(arg: string | undefined, ctx: ParseContext) {
    ctx.noArg(arg);
    return { weight: { method: 'bwn' }, act: { method: 'none' } };
  },
  canonical: () => 'bwn',
  weight: {
    precision: (_c: BwnQuant) => precision('binary', 1),
    forward: (_c: BwnQuant, l) => quantBinary(l.weight),
  },
});
