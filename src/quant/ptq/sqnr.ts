/**
 * MXQN host-side math (ALGORITHMS §1.6, §4.2): candidate quantizers from a calibrated range, SQNR
 * from the GPU's error sums, the fraction-length search, the activation choice rule, the network
 * SQNR estimate 1/γ_out = Σ_l (1/γ_W,l + 1/γ_A,l) and the bit-allocation step. Pure TypeScript:
 * the statistics come from `ptqErrorSums_` (no tensor is read back whole).
 */
import type { PtqQuantizer } from '../../autograd/index.ts';

export type PtqMethod = 'mxqn' | 'fixed' | 'log';
export const PTQ_METHODS: readonly PtqMethod[] = ['mxqn', 'fixed', 'log'];
export type LogM = 1 | 2 | 4;

/** SQNR values are capped here (an exact quantization has infinite SQNR). */
export const SQNR_CAP_DB = 200;

/** SQNR in dB from Σx² and Σ(x − Q(x))²: 10·log10(signal / noise), capped at SQNR_CAP_DB. */
export function sqnrDb(signal: number, noise: number): number {
  if (!(signal > 0)) return noise > 0 ? -SQNR_CAP_DB : SQNR_CAP_DB;
  if (!(noise > 0)) return SQNR_CAP_DB;
  return Math.max(-SQNR_CAP_DB, Math.min(SQNR_CAP_DB, 10 * Math.log10(signal / noise)));
}

/**
 * The fraction length whose integer part covers max|x| (§1.6): signed f = b − 1 − ceil(log2 max|x|),
 * unsigned f = b − ceil(log2 max x). An all-zero tensor gets f = b − 1 (signed) or b.
 */
export function fracForMax(maxAbs: number, bits: number, signed: boolean): number {
  const top = signed ? bits - 1 : bits;
  return maxAbs > 0 ? top - Math.ceil(Math.log2(maxAbs)) : top;
}

/** Full-scale exponent of a log quantizer: FSR = ceil(log2 max|x|) (0 for all zeros). */
export function fsrForMax(maxAbs: number): number {
  return maxAbs > 0 ? Math.ceil(Math.log2(maxAbs)) : 0;
}

/** Fraction lengths searched around f0 (the max rule): f0 + FRAC_SPAN[0] .. f0 + FRAC_SPAN[1]. */
export const FRAC_SPAN: readonly [number, number] = [-2, 3];

/** Fixed-point candidates f0 − 2 .. f0 + 3 (more fraction bits clip the tail but refine the bulk). */
export function fixedCandidates(maxAbs: number, bits: number, signed: boolean, span = FRAC_SPAN): PtqQuantizer[] {
  const f0 = fracForMax(maxAbs, bits, signed);
  const out: PtqQuantizer[] = [];
  for (let d = span[0]; d <= span[1]; d++) out.push({ kind: 'fixed', bits, frac: f0 + d, signed });
  return out;
}

/** Log candidates: for each m, FSR0 = ceil(log2 max) and FSR0 + 1 (the top level 2^{FSR−1/m} may sit below max). */
export function logCandidates(maxAbs: number, bits: number, signed: boolean, ms: readonly LogM[]): PtqQuantizer[] {
  const f0 = fsrForMax(maxAbs);
  const out: PtqQuantizer[] = [];
  for (const m of ms) for (const fsr of [f0, f0 + 1]) out.push({ kind: 'log', bits, fsr, m, signed });
  return out;
}

/** A candidate with its SQNR. */
export interface Scored {
  q: PtqQuantizer;
  db: number;
}

/** Score candidates from error sums laid out as ptqErrorSums_ writes them: [Σx², Σe²_0, Σe²_1, ...]. */
export function scoreCandidates(cands: readonly PtqQuantizer[], sums: ArrayLike<number>): Scored[] {
  return cands.map((q, k) => ({ q, db: sqnrDb(sums[0], sums[k + 1]) }));
}

/** The best of a list (highest SQNR; the first on ties). */
export function bestScored(list: readonly Scored[]): Scored {
  if (!list.length) throw new Error('webqat: ptq: no candidates to choose from');
  return list.reduce((b, s) => (s.db > b.db ? s : b));
}

/** Weight fraction-length search: the fixed-point candidate with the highest SQNR. */
export function searchFrac(scored: readonly Scored[]): Scored {
  return bestScored(scored.filter((s) => s.q.kind === 'fixed'));
}

/** Per-family bests of one activation's candidates. */
export interface ActChoice {
  chosen: Scored;
  fixed: Scored | null;
  /** best log candidate per m */
  log: Partial<Record<LogM, Scored>>;
}

/**
 * The activation choice rule (§4.2 step 2): mxqn takes the highest SQNR among fixed and log
 * candidates, but keeps fixed point unless log wins by more than `preferFixedDb` (hardware cost);
 * 'fixed' and 'log' take the best of their own family.
 */
export function chooseActivation(method: PtqMethod, scored: readonly Scored[], preferFixedDb = 0.5): ActChoice {
  const fx = scored.filter((s) => s.q.kind === 'fixed');
  const lg = scored.filter((s) => s.q.kind === 'log');
  const bestFx = fx.length ? bestScored(fx) : null;
  const bestLog = lg.length ? bestScored(lg) : null;
  const log: Partial<Record<LogM, Scored>> = {};
  for (const s of lg) {
    const m = (s.q as Extract<PtqQuantizer, { kind: 'log' }>).m;
    if (!log[m] || s.db > log[m]!.db) log[m] = s;
  }
  let chosen: Scored | null;
  if (method === 'fixed') chosen = bestFx;
  else if (method === 'log') chosen = bestLog;
  else if (!bestLog) chosen = bestFx;
  else if (!bestFx) chosen = bestLog;
  else chosen = bestLog.db > bestFx.db + preferFixedDb ? bestLog : bestFx;
  if (!chosen) throw new Error(`webqat: ptq: method '${method}' has no candidate of its kind`);
  return { chosen, fixed: bestFx, log };
}

/** Network SQNR estimate (dB) from per-layer weight and activation SQNRs (dB): 1/γ = Σ 1/γ_i. */
export function networkSqnrDb(partsDb: readonly number[]): number {
  if (!partsDb.length) return SQNR_CAP_DB;
  const inv = partsDb.reduce((s, db) => s + 10 ** (-db / 10), 0);
  return sqnrDb(1, inv);
}

/** One quantized tensor in the bit-allocation loop. */
export interface AllocPart {
  layer: number;
  kind: 'weight' | 'act';
  bits: number;
  db: number;
}

/**
 * The bit-allocation step (§4.2 step 3): the part with the lowest SQNR that can still grow
 * (bits < maxBits), or null when the network SQNR already meets the target or nothing can grow.
 */
export function weakestPart(parts: readonly AllocPart[], targetDb: number, maxBits: number): AllocPart | null {
  if (networkSqnrDb(parts.map((p) => p.db)) >= targetDb) return null;
  const open = parts.filter((p) => p.bits < maxBits);
  if (!open.length) return null;
  return open.reduce((w, p) => (p.db < w.db ? p : w));
}

/** Parse `wXaY` (bits of weights and activations, each 2..16). */
export function parseBits(text: string): { weightBits: number; actBits: number } {
  const m = /^w(\d+)a(\d+)$/i.exec(text.trim());
  const ok = (b: number) => Number.isInteger(b) && b >= 2 && b <= 16;
  if (!m || !ok(Number(m[1])) || !ok(Number(m[2]))) {
    throw new Error(`webqat: ptq: bits must be wXaY with X (weight bits) and Y (activation bits) integers in 2..16, e.g. w8a8, got '${text}'`);
  }
  return { weightBits: Number(m[1]), actBits: Number(m[2]) };
}
