/**
 * Fixed point Q_fx (ALGORITHMS §1.6, §4.1): Q(x) = clip(round(x·2^f), lo, hi)·2^{−f}, b bits,
 * signed [−2^{b−1}, 2^{b−1} − 1] or unsigned [0, 2^b − 1]; the fraction length f is searched around
 * the max rule f0 (f0 − 2 .. f0 + 3). MXQN's base family: weights always, activations by SQNR.
 */
import { type PtqQuantizer, ptqFixedCodes, ptqQuantize } from '../../../autograd/index.ts';
import { precision } from '../../methods/types.ts';
import { ptqDbText, definePtqQuantizer } from './types.ts';

export type PtqFixed = Extract<PtqQuantizer, { kind: 'fixed' }>;

/**
 * The fraction length whose integer part covers max|x| (§1.6): signed f = b − 1 − ceil(log2 max|x|),
 * unsigned f = b − ceil(log2 max x). An all-zero tensor gets f = b − 1 (signed) or b.
 */
export function fracForMax(maxAbs: number, bits: number, signed: boolean): number {
  const top = signed ? bits - 1 : bits;
  return maxAbs > 0 ? top - Math.ceil(Math.log2(maxAbs)) : top;
}

/** Fraction lengths searched around f0 (the max rule): f0 + FRAC_SPAN[0] .. f0 + FRAC_SPAN[1]. */
export const FRAC_SPAN: readonly [number, number] = [-2, 3];

/** Fixed-point candidates f0 − 2 .. f0 + 3 (more fraction bits clip the tail but refine the bulk). */
export function fixedCandidates(maxAbs: number, bits: number, signed: boolean, span = FRAC_SPAN): PtqFixed[] {
  const f0 = fracForMax(maxAbs, bits, signed);
  const out: PtqFixed[] = [];
  for (let d = span[0]; d <= span[1]; d++) out.push({ kind: 'fixed', bits, frac: f0 + d, signed });
  return out;
}

export const fixed = definePtqQuantizer<PtqFixed>({
  id: 'fixed',
  names: ['fixed'],
  summary: 'fixed point, b bits, fraction length f searched around the max rule',
  ref: '§1.6, §4.1',
  family: 'fixed',
  cost: 0,
  default: true,
  roles: { weight: true, act: true },
  owns: (q): q is PtqFixed => q.kind === 'fixed',
  candidates: (r, bits) => fixedCandidates(r.maxAbs, bits, r.signed),
  precision: (q) => precision('fixed', q.bits),
  params: (q) => [
    { name: 'step', role: 'step', value: 2 ** -q.frac },
    { name: 'clip', role: 'clip', value: ptqFixedCodes(q.bits, q.signed).hi * 2 ** -q.frac },
  ],
  forward: (x, q) => ptqQuantize(x, q),
  pack: (q) => ({ codes: 'int', bits: q.bits, signed: q.signed, ...ptqFixedCodes(q.bits, q.signed), step: 2 ** -q.frac }),
  label: (q) => `fixed${q.bits}${q.signed ? '' : 'u'} f=${q.frac}`,
  parse(text) {
    const m = /^fixed(\d+)(u?) f=(-?\d+)$/.exec(text.trim());
    if (!m) throw new Error(`webqat: ptq: '${text}' is not a fixed-point label (fixedB f=F or fixedBu f=F, e.g. fixed8u f=3)`);
    return { kind: 'fixed', bits: Number(m[1]), frac: Number(m[3]), signed: m[2] !== 'u' };
  },
  column: { title: 'fixed', width: 11, cell: (s) => (s ? `${ptqDbText(s.db)} f=${(s.q as PtqFixed).frac}` : '-') },
});
