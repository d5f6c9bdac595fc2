/** fp: float32 everywhere (also: float, fp32, none). The identity weight and activation "quantizer". */
import { defineMethod, FP32, type ParseContext } from './types.ts';

export type NoneQuant = {
  method: 'none';
};

export const fp = defineMethod({
  id: 'none',
  names: ['fp', 'float', 'fp32', 'none'],
  summary: 'float32 weights and activations',
  accepted: ['fp'],
  examples: ['fp'],
  parse(arg: string | undefined, ctx: ParseContext) {
    ctx.noArg(arg);
    return { weight: { method: 'none' }, act: { method: 'none' } };
  },
  canonical: () => 'fp',
  weight: {
    identity: true,
    precision: (_c: NoneQuant) => FP32,
    forward: (_c: NoneQuant, l) => l.weight,
  },
  act: {
    precision: (_c: NoneQuant) => FP32,
    forward: (_c: NoneQuant, x) => x,
  },
});
