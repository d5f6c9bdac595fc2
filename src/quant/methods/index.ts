/**
 * The quantizer registry: one record per method (see types.ts). The order is the order of help
 * texts and menus. Adding a quantizer: write `src/quant/methods/<name>.ts` (and its test) and add
 * it to METHODS below.
 */
import { bwn } from './bwn.ts';
import { dorefa } from './dorefa.ts';
import { elq } from './elq.ts';
import { fixed } from './fixed.ts';
import { fp } from './fp.ts';
import { inq } from './inq.ts';
import { log } from './log.ts';
import { lsq } from './lsq.ts';
import { pact } from './pact.ts';
import { sq } from './sq.ts';
import { ttq } from './ttq.ts';
import { twn } from './twn.ts';
import type { ActPart, QuantMethod, WeightPart } from './types.ts';
import { xnor } from './xnor.ts';

export const METHODS = [fp, bwn, twn, ttq, sq, dorefa, elq, inq, pact, lsq, fixed, log, xnor] as const;

type Method = (typeof METHODS)[number];
type WeightOf<M> = M extends { weight: WeightPart<infer C, infer _S> } ? C : never;
type ActOf<M> = M extends { act: ActPart<infer C> } ? C : never;

/** A weight quantizer configuration (`method` = the record id; the rest its options). */
export type WeightQuant = WeightOf<Method>;
/** An activation quantizer configuration. */
export type ActQuant = ActOf<Method>;

const byId = new Map<string, QuantMethod>();
const byName = new Map<string, QuantMethod>();
for (const m of METHODS as readonly QuantMethod[]) {
  if (byId.has(m.id)) throw new Error(`webqat: quantizer registry: two records with id '${m.id}'`);
  byId.set(m.id, m);
  for (const n of m.names) {
    if (byName.has(n)) throw new Error(`webqat: quantizer registry: '${n}' is claimed by '${byName.get(n)!.id}' and '${m.id}'`);
    byName.set(n, m);
  }
}

/** Every registered record, in registry order. */
export function quantMethods(): readonly QuantMethod[] {
  return METHODS;
}

/** The record with this id (the `method` of a weight or activation config), or undefined. */
export function methodById(id: string): QuantMethod | undefined {
  return byId.get(id);
}

/** The record that parses this `--quant` name (before ':'), or undefined. */
export function methodByName(name: string): QuantMethod | undefined {
  return byName.get(name);
}

/** The weight part of a config's record (throws naming the method when there is none). */
export function weightPartOf(c: { method: string }): WeightPart {
  const p = byId.get(c.method)?.weight;
  if (!p) throw new Error(`webqat: '${c.method}' is not a registered weight quantizer (known: ${METHODS.filter((m) => 'weight' in m).map((m) => m.id).join(', ')})`);
  return p;
}

/** The activation part of a config's record. */
export function actPartOf(c: { method: string }): ActPart {
  const p = byId.get(c.method)?.act;
  if (!p) throw new Error(`webqat: '${c.method}' is not a registered activation quantizer (known: ${METHODS.filter((m) => 'act' in m).map((m) => m.id).join(', ')})`);
  return p;
}

export * from './types.ts';
export { SQ_DEFAULTS, sqLambdaAt, type SQHyper } from './sq.ts';
