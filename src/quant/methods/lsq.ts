/**
 * lsq:wKaK: learned step size quantization of weights (signed, K: 2..8) and activations
 * (unsigned, K: 1..8) (ALGORITHMS §1.4). The steps have role 'step'; the weight step starts at
 * 2·mean|W|/√Q_P, the activation step from the first batch.
 */
import { copy_, noGrad, quantLsq, tensor } from '../../autograd/index.ts';
import { lsqInit } from '../quantizers.ts';
import { defineMethod, precision, type SpecParts, type ParseContext } from './types.ts';

export type LsqQuant = {
  method: 'lsq';
  bits: number;
};

export const lsq = defineMethod({
  id: 'lsq',
  names: ['lsq'],
  summary: 'learned step size (LSQ) k-bit weights and activations',
  ref: '§1.4',
  accepted: ['lsq:wKaK (w 2..8, a 1..8; e.g. lsq:w4a4)'],
  examples: ['lsq:w4a4'],
  parse(arg: string | undefined, ctx: ParseContext): SpecParts {
    const wa = ctx.bitWidths(ctx.need(arg, 'bit widths, e.g. lsq:w4a4'));
    const w = wa.w === undefined ? 32 : ctx.intIn('weight bits', wa.w, 2, 8, [32]);
    const a = wa.a === undefined ? 32 : ctx.intIn('activation bits', wa.a, 1, 8, [32]);
    return { weight: w === 32 ? { method: 'none' } : { method: 'lsq', bits: w }, act: a === 32 ? { method: 'none' } : { method: 'lsq', bits: a } };
  },
  canonical({ weight, act }) {
    const w = weight.method === 'lsq' ? (weight as LsqQuant).bits : 32;
    const a = act.method === 'lsq' ? (act as LsqQuant).bits : 32;
    return `lsq:w${w}a${a}`;
  },
  weight: {
    precision: (c: LsqQuant) => precision('kbit', c.bits),
    params: (c: LsqQuant, weight) => [{ name: 'w_step', role: 'step', init: lsqInit(weight, c.bits, true) }],
    forward: (c: LsqQuant, l) => quantLsq(l.weight, l.param('w_step'), c.bits, true),
  },
  act: {
    precision: (c: LsqQuant) => precision('kbit', c.bits),
    params: () => [{ name: 'act_step', role: 'step', init: tensor([1], [1]) }],
    forward(c: LsqQuant, x, l) {
      const step = l.param('act_step');
      if (l.first) {
        // LSQ initialisation from the first batch: s = 2·mean|x| / √Q_P
        noGrad(() => {
          const init = lsqInit(x, c.bits, false);
          copy_(step, init);
          init.release();
        });
      }
      return quantLsq(x, step, c.bits, false);
    },
  },
});
