/**
 * fixed:B: fixed-point weights at B bits (ALGORITHMS §1.6); the fraction length covers max|W|
 * (host calibration: QuantHooks.prepare()).
 */
import { quantFixed } from '../../autograd/index.ts';
import { fixedFracLength } from '../quantizers.ts';
import { defineMethod, precision, type SpecParts, type ParseContext } from './types.ts';

export type FixedQuant = {
  method: 'fixed';
  bits: number;
};

/** A calibrated range: fixed: the fraction length; log: the full-scale exponent. */
export interface RangeState {
  value: number;
  calibrated: boolean;
}

/** max|W| read back from the GPU. */
export async function maxAbsOf(w: { data(): Promise<ArrayLike<number>> }): Promise<number> {
  const d = await w.data();
  let m = 0;
  for (let i = 0; i < d.length; i++) m = Math.max(m, Math.abs(d[i]));
  return m;
}

export const fixed = defineMethod({
  id: 'fixed',
  names: ['fixed'],
  summary: 'fixed-point weights',
  ref: '§1.6',
  accepted: ['fixed:B (B: 2..16)'],
  examples: ['fixed:8'],
  parse(arg: string | undefined, ctx: ParseContext): SpecParts {
    return { weight: { method: 'fixed', bits: ctx.intIn('fixed-point bits', ctx.need(arg, 'a bit width, e.g. fixed:8'), 2, 16) }, act: { method: 'none' } };
  },
  canonical: ({ weight }) => `fixed:${(weight as FixedQuant).bits}`,
  weight: {
    precision: (c: FixedQuant) => precision('fixed', c.bits),
    state: (): RangeState => ({ value: 0, calibrated: false }),
    async calibrate(c: FixedQuant, l) {
      const s = l.state as RangeState;
      s.value = fixedFracLength(await maxAbsOf(l.weight), c.bits);
      s.calibrated = true;
      l.invalidate();
    },
    pack: {
      // the packed file stores B-bit codes relative to the calibrated fraction length
      range(_c, l) {
        const s = l.state as RangeState;
        if (!s.calibrated) throw new Error('webqat: export: fixed-point weights need calibrate() (QuantHooks.prepare() does it) before they can be packed');
        return s.value;
      },
    },
    forward(c: FixedQuant, l) {
      const s = l.state as RangeState;
      if (!s.calibrated) throw new Error('webqat: fixed-point weights need calibrate() (QuantHooks.prepare() does it) before the first forward');
      return quantFixed(l.weight, c.bits, s.value);
    },
  },
});
