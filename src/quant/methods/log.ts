/**
 * log:B: logarithmic (power-of-two) weights at B bits (ALGORITHMS §1.6); the full-scale exponent
 * covers max|W| (host calibration: QuantHooks.prepare()).
 */
import { quantLog } from '../../autograd/index.ts';
import { logFullScale } from '../quantizers.ts';
import { maxAbsOf, type RangeState } from './fixed.ts';
import { defineMethod, precision, type SpecParts, type ParseContext } from './types.ts';

export type LogQuant = {
  method: 'log';
  bits: number;
};

export const log = defineMethod({
  id: 'log',
  names: ['log'],
  summary: 'logarithmic (power-of-two) weights',
  ref: '§1.6',
  accepted: ['log:B (B: 2..8)'],
  examples: ['log:4'],
  parse(arg: string | undefined, ctx: ParseContext): SpecParts {
    return { weight: { method: 'log', bits: ctx.intIn('log bits', ctx.need(arg, 'a bit width, e.g. log:4'), 2, 8) }, act: { method: 'none' } };
  },
  canonical: ({ weight }) => `log:${(weight as LogQuant).bits}`,
  weight: {
    precision: (c: LogQuant) => precision('log', c.bits),
    state: (): RangeState => ({ value: 0, calibrated: false }),
    async calibrate(_c: LogQuant, l) {
      const s = l.state as RangeState;
      s.value = logFullScale(await maxAbsOf(l.weight));
      s.calibrated = true;
      l.invalidate();
    },
    pack: {
      // the packed file stores B-bit codes relative to the calibrated full-scale exponent
      range(_c, l) {
        const s = l.state as RangeState;
        if (!s.calibrated) throw new Error('webqat: export: log weights need calibrate() (QuantHooks.prepare() does it) before they can be packed');
        return s.value;
      },
    },
    forward(c: LogQuant, l) {
      const s = l.state as RangeState;
      if (!s.calibrated) throw new Error('webqat: log weights need calibrate() (QuantHooks.prepare() does it) before the first forward');
      return quantLog(l.weight, c.bits, s.value);
    },
  },
});
