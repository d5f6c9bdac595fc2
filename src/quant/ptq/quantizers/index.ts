/**
 * The PTQ quantizer registry: one record per quantizer (see types.ts), in the order of the table's
 * columns and of the candidate lists. Adding a PTQ quantizer: write `<name>.ts` here (and its test)
 * and add it to PTQ_QUANTIZERS below. The `--method` words are 'mxqn' plus every record's family.
 */
import type { PtqQuantizer } from '../../../autograd/index.ts';
import { fixed } from './fixed.ts';
import { log2, log4thRoot2, logSqrt2 } from './log.ts';
import { log8thRoot2 } from './log8.ts';
import type { PtqQuantizerRecord } from './types.ts';

export const PTQ_QUANTIZERS: readonly PtqQuantizerRecord[] = [fixed, log2, logSqrt2, log4thRoot2, log8thRoot2] as PtqQuantizerRecord[];

const byName = new Map<string, PtqQuantizerRecord>();
for (const r of PTQ_QUANTIZERS) {
  if (PTQ_QUANTIZERS.filter((o) => o.id === r.id).length > 1) throw new Error(`webqat: ptq quantizer registry: two records with id '${r.id}'`);
  for (const n of [r.id, ...r.names]) {
    const other = byName.get(n);
    if (other && other !== r) throw new Error(`webqat: ptq quantizer registry: '${n}' is claimed by '${other.id}' and '${r.id}'`);
    byName.set(n, r);
  }
}
if (!PTQ_QUANTIZERS.some((r) => r.roles.weight && r.default)) throw new Error('webqat: ptq quantizer registry: no default weight quantizer');

/** Every registered PTQ quantizer record, in registry order. */
export function ptqQuantizers(): readonly PtqQuantizerRecord[] {
  return PTQ_QUANTIZERS;
}

/** The record named so (id or one of its names), or undefined. */
export function ptqQuantizerByName(name: string): PtqQuantizerRecord | undefined {
  return byName.get(name);
}

/** The record that owns a quantizer value (throws naming the value when none does). */
export function ptqRecordOf(q: PtqQuantizer): PtqQuantizerRecord {
  const r = PTQ_QUANTIZERS.find((r) => r.owns(q));
  if (!r) throw new Error(`webqat: ptq: no registered PTQ quantizer owns ${JSON.stringify(q)} (known: ${PTQ_QUANTIZERS.map((r) => r.id).join(', ')})`);
  return r;
}

/** A quantizer value's label, by its record. */
export function ptqQuantizerLabel(q: PtqQuantizer): string {
  return ptqRecordOf(q).label(q);
}

/** The families in registry order ('fixed', 'log'): each is a `--method` of its own. */
export function ptqFamilies(): string[] {
  return [...new Set(PTQ_QUANTIZERS.map((r) => r.family))];
}

/** The `--method` words: 'mxqn' (the per-layer SQNR choice over every family) and each family alone. */
export function ptqMethods(): string[] {
  return ['mxqn', ...ptqFamilies()];
}

/** The m values of the registered log records (`--log-m`), default ones first. */
export function ptqLogMs(which: 'all' | 'default' = 'all'): number[] {
  return PTQ_QUANTIZERS.filter((r) => r.m !== undefined && (which === 'all' || r.default)).map((r) => r.m!);
}

/**
 * The records in use: `names` (ids or names, in that order) if given, else the default records;
 * `logM` then keeps (and orders) the log records by m, adding registered ones it names.
 * Throws naming an unknown name or m.
 */
export function ptqQuantizersInUse(opts: { names?: readonly string[]; logM?: readonly number[] } = {}): PtqQuantizerRecord[] {
  let list = opts.names
    ? opts.names.map((n) => {
      const r = byName.get(n);
      if (!r) throw new Error(`webqat: ptq: unknown quantizer '${n}' (known: ${PTQ_QUANTIZERS.map((r) => r.id).join(', ')})`);
      return r;
    })
    : PTQ_QUANTIZERS.filter((r) => r.default);
  if (opts.logM) {
    const logs = opts.logM.map((m) => {
      const r = PTQ_QUANTIZERS.find((r) => r.m === m);
      if (!r) throw new Error(`webqat: ptq: no log quantizer with m = ${m} (registered m: ${ptqLogMs().join(', ')})`);
      return r;
    });
    list = [...list.filter((r) => r.m === undefined), ...logs];
  }
  return [...new Set(list)];
}

export * from './types.ts';
export { fixedCandidates, FRAC_SPAN, fracForMax, type PtqFixed } from './fixed.ts';
export { fsrForMax, logBaseName, logCandidatesOf, logQuantizer, type PtqLog } from './log.ts';
