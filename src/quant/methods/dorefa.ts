/**
 * dorefa:wKaK: DoReFa weights (K = 1: the BWN variant E·sign*(W); K ≥ 2: tanh-normalised k-bit)
 * and activations (clip to [0, 1], k-bit) (ALGORITHMS §1.2). K = 32 leaves that side float;
 * activation quantizers need points built into the model (the SSPQ models).
 */
import { quantDorefaAct, quantDorefaWeight } from '../../autograd/index.ts';
import { defineMethod, FP32, precision, type SpecParts, type ParseContext } from './types.ts';

export type DorefaQuant = {
  method: 'dorefa';
  bits: number;
};

export const dorefa = defineMethod({
  id: 'dorefa',
  names: ['dorefa'],
  summary: 'DoReFa k-bit weights (1 bit: BWN variant) and k-bit activations',
  ref: '§1.2',
  accepted: ['dorefa:wKaK (K: 1..8 or 32; e.g. dorefa:w1a4)'],
  examples: ['dorefa:w1a4'],
  parse(arg: string | undefined, ctx: ParseContext): SpecParts {
    const wa = ctx.bitWidths(ctx.need(arg, 'bit widths, e.g. dorefa:w1a4'));
    const w = wa.w === undefined ? 32 : ctx.intIn('weight bits', wa.w, 1, 8, [32]);
    const a = wa.a === undefined ? 32 : ctx.intIn('activation bits', wa.a, 1, 8, [32]);
    return { weight: w === 32 ? { method: 'none' } : { method: 'dorefa', bits: w }, act: a === 32 ? { method: 'none' } : { method: 'dorefa', bits: a } };
  },
  canonical({ weight, act }) {
    const w = weight.method === 'dorefa' ? (weight as DorefaQuant).bits : 32;
    const a = act.method === 'dorefa' ? (act as DorefaQuant).bits : 32;
    return `dorefa:w${w}a${a}`;
  },
  weight: {
    precision: (c: DorefaQuant) => (c.bits === 32 ? FP32 : c.bits === 1 ? precision('binary', 1) : precision('kbit', c.bits)),
    forward: (c: DorefaQuant, l) => quantDorefaWeight(l.weight, c.bits),
    label: (c: DorefaQuant) => `dorefa:w${c.bits}`,
  },
  act: {
    precision: (c: DorefaQuant) => (c.bits === 32 ? FP32 : precision('kbit', c.bits)),
    forward: (c: DorefaQuant, x) => quantDorefaAct(x, c.bits),
  },
});
