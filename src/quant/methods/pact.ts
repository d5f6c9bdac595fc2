/**
 * pact:aK[wK]: PACT activations with a learned clipping level α (role 'clip', starts at 10),
 * optionally DoReFa k-bit weights (ALGORITHMS §1.4). Activation points must be built into the model.
 */
import { quantPact, tensor } from '../../autograd/index.ts';
import type { DorefaQuant } from './dorefa.ts';
import { defineMethod, precision, type SpecParts, type ParseContext } from './types.ts';

export type PactQuant = {
  method: 'pact';
  bits: number;
  alpha0: number;
};

export const pact = defineMethod({
  id: 'pact',
  names: ['pact'],
  summary: 'PACT k-bit activations with a learned clip α (optional DoReFa weights)',
  ref: '§1.4',
  accepted: ['pact:aK[wK] (K: 1..8; e.g. pact:a4)'],
  examples: ['pact:a4'],
  parse(arg: string | undefined, ctx: ParseContext): SpecParts {
    const wa = ctx.bitWidths(ctx.need(arg, 'activation bits, e.g. pact:a4'));
    if (wa.a === undefined) ctx.fail(`PACT quantizes activations: give 'aK', e.g. pact:a4`);
    const a = ctx.intIn('activation bits', wa.a, 1, 8);
    const w = wa.w === undefined ? 32 : ctx.intIn('weight bits', wa.w, 1, 8, [32]);
    return { weight: w === 32 ? { method: 'none' } : { method: 'dorefa', bits: w }, act: { method: 'pact', bits: a, alpha0: 10 } };
  },
  canonical: ({ weight, act }) => `pact:a${(act as PactQuant).bits}${weight.method === 'dorefa' ? `w${(weight as DorefaQuant).bits}` : ''}`,
  act: {
    precision: (c: PactQuant) => precision('kbit', c.bits),
    params: (c: PactQuant) => [{ name: 'pact_alpha', role: 'clip', init: tensor([c.alpha0], [1]) }],
    forward: (c: PactQuant, x, l) => quantPact(x, l.param('pact_alpha'), c.bits),
  },
});
