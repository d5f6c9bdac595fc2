/** twn: ternary weights, Δ = 0.7·mean|W|, α = mean of |W| over |W| > Δ, per layer (ALGORITHMS §1.3). */
import { quantTernary } from '../../autograd/index.ts';
import { defineMethod, precision, type ParseContext } from './types.ts';

export type TwnQuant = {
  method: 'twn';
};

export const twn = defineMethod({
  id: 'twn',
  names: ['twn'],
  summary: 'ternary weights, Δ = 0.7·mean|W|',
  ref: '§1.3',
  accepted: ['twn'],
  examples: ['twn'],
  parse(arg: string | undefined, ctx: ParseContext) {
    ctx.noArg(arg);
    return { weight: { method: 'twn' }, act: { method: 'none' } };
  },
  canonical: () => 'twn',
  weight: {
    precision: (_c: TwnQuant) => precision('ternary', 2),
    forward: (_c: TwnQuant, l) => quantTernary(l.weight),
  },
});
