/**
 * Logarithmic quantizers with base 2^(1/m) (ALGORITHMS §1.6, §4.1): e = round(m·log2|x|), output
 * 2^{min(e, m·FSR − 1)/m} or 0 below the lowest code; unsigned (2^b codes) or signed (a sign bit and
 * 2^{b−1} magnitude codes). FSR0 = ceil(log2 max|x|) and FSR0 + 1 are tried. One record per m
 * (log2: m = 1, log√2: m = 2, log⁴√2: m = 4); `logQuantizer(m)` makes another.
 */
import { type PtqQuantizer, ptqLogCodes, ptqQuantize } from '../../../autograd/index.ts';
import { precision } from '../../methods/types.ts';
import { ptqDbText, definePtqQuantizer, type PtqQuantizerRecord } from './types.ts';

export type PtqLog = Extract<PtqQuantizer, { kind: 'log' }>;

/** Full-scale exponent of a log quantizer: FSR = ceil(log2 max|x|) (0 for all zeros). */
export function fsrForMax(maxAbs: number): number {
  return maxAbs > 0 ? Math.ceil(Math.log2(maxAbs)) : 0;
}

/** Log candidates of one m: FSR0 = ceil(log2 max) and FSR0 + 1 (the top level 2^{FSR−1/m} may sit below max). */
export function logCandidatesOf(maxAbs: number, bits: number, signed: boolean, m: number): PtqLog[] {
  const f0 = fsrForMax(maxAbs);
  return [f0, f0 + 1].map((fsr) => ({ kind: 'log', bits, fsr, m, signed }));
}

const SUPERSCRIPT: Record<number, string> = { 3: '³', 4: '⁴', 8: '⁸', 16: '¹⁶' };

/** The base's name: log2 (m = 1), log√2 (2), log⁴√2 (4), log⁸√2 (8). */
export function logBaseName(m: number): string {
  return m === 1 ? 'log2' : m === 2 ? 'log√2' : `log${SUPERSCRIPT[m] ?? `${m}`}√2`;
}

/** The record of the log quantizer with base 2^(1/m) (m levels per octave). */
export function logQuantizer(m: number, opts: { default: boolean; summary?: string }): PtqQuantizerRecord<PtqLog> {
  const base = logBaseName(m);
  return definePtqQuantizer<PtqLog>({
    id: base,
    names: [base, `log-m${m}`],
    summary: opts.summary ?? `logarithmic, base 2^(1/${m}) (${m} level${m > 1 ? 's' : ''} per octave), full-scale exponent FSR0 or FSR0 + 1`,
    ref: '§1.6, §4.1',
    family: 'log',
    cost: 1,
    default: opts.default,
    roles: { weight: false, act: true },
    m,
    owns: (q): q is PtqLog => q.kind === 'log' && q.m === m,
    candidates: (r, bits) => logCandidatesOf(r.maxAbs, bits, r.signed, m),
    precision: (q) => precision('log', q.bits),
    params: (q) => [
      { name: 'clip', role: 'clip', value: 2 ** ((q.m * q.fsr - 1) / q.m) },
      { name: 'ratio', role: 'step', value: 2 ** (1 / q.m) },
    ],
    forward: (x, q) => ptqQuantize(x, q),
    pack: (q) => ({ codes: 'log', bits: q.bits, signed: q.signed, m: q.m, ...ptqLogCodes(q) }),
    label: (q) => `${base} ${q.bits}${q.signed ? '' : 'u'} fsr=${q.fsr}`,
    parse(text) {
      const t = text.trim();
      const k = /^(\d+)(u?) fsr=(-?\d+)$/.exec(t.startsWith(base + ' ') ? t.slice(base.length + 1) : '');
      if (!k) throw new Error(`webqat: ptq: '${text}' is not a ${base} label (${base} B fsr=F or ${base} Bu fsr=F, e.g. ${base} 4u fsr=2)`);
      return { kind: 'log', bits: Number(k[1]), fsr: Number(k[3]), m, signed: k[2] !== 'u' };
    },
    column: { title: base, width: 6, cell: (s) => ptqDbText(s?.db) },
  });
}

export const log2 = logQuantizer(1, { default: true });
export const logSqrt2 = logQuantizer(2, { default: true });
export const log4thRoot2 = logQuantizer(4, { default: true });
