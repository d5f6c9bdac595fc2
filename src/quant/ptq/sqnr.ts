/**
 * MXQN host-side math (ALGORITHMS §1.6, §4.2): candidate quantizers from a calibrated range, SQNR
 * from the GPU's error sums, the fraction-length search, the activation choice rule, the network
 * SQNR estimate 1/γ_out = Σ_l (1/γ_W,l + 1/γ_A,l) and the bit-allocation step. Pure TypeScript:
 * the statistics come from `ptqErrorSums_` (no tensor is read back whole).
 */
import type { PtqQuantizer } from '../../autograd/index.ts';
import { logCandidatesOf } from './quantizers/log.ts';
import { ptqFamilies, ptqMethods, ptqRecordOf, type Scored } from './quantizers/index.ts';

/** 'mxqn' or a family of the quantizer registry ('fixed', 'log'). */
export type PtqMethod = string;
/** The `--method` words (from the quantizer registry: 'mxqn', then each family). */
export const PTQ_METHODS: readonly PtqMethod[] = ptqMethods();
/** Levels per octave of a log quantizer (the registered log records: 1, 2, 4). */
export type LogM = number;

/** SQNR values are capped here (an exact quantization has infinite SQNR). */
export const SQNR_CAP_DB = 200;

/** SQNR in dB from Σx² and Σ(x − Q(x))²: 10·log10(signal / noise), capped at SQNR_CAP_DB. */
export function sqnrDb(signal: number, noise: number): number {
  if (!(signal > 0)) return noise > 0 ? -SQNR_CAP_DB : SQNR_CAP_DB;
  if (!(noise > 0)) return SQNR_CAP_DB;
  return Math.max(-SQNR_CAP_DB, Math.min(SQNR_CAP_DB, 10 * Math.log10(signal / noise)));
}

/** Log candidates for each m, in the order given (FSR0 and FSR0 + 1 each). */
export function logCandidates(maxAbs: number, bits: number, signed: boolean, ms: readonly LogM[]): PtqQuantizer[] {
  return ms.flatMap((m) => logCandidatesOf(maxAbs, bits, signed, m));
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

/** Weight quantizer search (fraction length for fixed point): the weight-capable candidate with the highest SQNR. */
export function searchFrac(scored: readonly Scored[]): Scored {
  return bestScored(scored.filter((s) => ptqRecordOf(s.q).roles.weight));
}

/** Per-record bests of one activation's candidates. */
export interface ActChoice {
  chosen: Scored;
  /** best candidate of each quantizer record present, by record id ('fixed', 'log2', 'log√2', ...) */
  best: Record<string, Scored>;
  /** best fixed-point candidate */
  fixed: Scored | null;
  /** best log candidate per m */
  log: Partial<Record<LogM, Scored>>;
}

/**
 * The activation choice rule (§4.2 step 2): mxqn keeps the best candidate of the cheapest family
 * present (fixed point) unless the best costlier candidate (log) wins by more than `preferFixedDb`
 * (hardware cost); a family method ('fixed', 'log') takes the best of its own family.
 */
export function chooseActivation(method: PtqMethod, scored: readonly Scored[], preferFixedDb = 0.5): ActChoice {
  const recs = scored.map((s) => ptqRecordOf(s.q));
  const best: Record<string, Scored> = {};
  const log: Partial<Record<LogM, Scored>> = {};
  scored.forEach((s, k) => {
    const r = recs[k];
    if (!best[r.id] || s.db > best[r.id].db) best[r.id] = s;
    if (r.family === 'log' && r.m !== undefined && (!log[r.m] || s.db > log[r.m]!.db)) log[r.m] = s;
  });
  const fx = scored.filter((_, k) => recs[k].family === 'fixed');
  let chosen: Scored | null = null;
  if (method === 'mxqn') {
    if (scored.length) {
      const cheapest = Math.min(...recs.map((r) => r.cost));
      const base = bestScored(scored.filter((_, k) => recs[k].cost === cheapest));
      const rest = scored.filter((_, k) => recs[k].cost !== cheapest);
      const challenger = rest.length ? bestScored(rest) : null;
      chosen = challenger && challenger.db > base.db + preferFixedDb ? challenger : base;
    }
  } else {
    if (!ptqFamilies().includes(method)) throw new Error(`webqat: ptq: unknown method '${method}' (known: ${ptqMethods().join(', ')})`);
    const own = scored.filter((_, k) => recs[k].family === method);
    chosen = own.length ? bestScored(own) : null;
  }
  if (!chosen) throw new Error(`webqat: ptq: method '${method}' has no candidate of its kind`);
  return { chosen, best, fixed: fx.length ? bestScored(fx) : null, log };
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
