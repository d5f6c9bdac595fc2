/**
 * Parameters: leaf tensors that a module owns and an optimizer updates. A parameter is an ordinary
 * `Tensor` (so every op takes it) branded with `isParameter`, kept across memory scopes, with
 * `requiresGrad` set, a name, and an optional precision tag that the quantization layer fills in
 * (the size report and the packed export read it).
 */
import { type Tensor } from '../autograd/index.ts';

/** How a parameter is stored/trained: float32 by default; quantizers set e.g. { kind: 'ternary', bits: 2 }. */
export interface PrecisionTag {
  kind: 'float' | 'binary' | 'ternary' | 'int' | 'log' | 'fixed' | (string & {});
  bits: number;
  /** free-form extras (scale granularity, signedness ...) */
  [extra: string]: unknown;
}

export const FLOAT32: PrecisionTag = Object.freeze({ kind: 'float', bits: 32 });

export type Parameter = Tensor & {
  readonly isParameter: true;
  precision?: PrecisionTag;
};

/**
 * Turn a leaf f32 tensor into a parameter (in place: the same object is returned, typed as a
 * Parameter). It requires grad and survives every memory scope until released explicitly.
 */
export function parameter(t: Tensor, name?: string, precision?: PrecisionTag): Parameter {
  if (t.released) throw new Error(`webqat: parameter: ${t.describe()} was already released`);
  if (t.dtype !== 'f32') throw new Error(`webqat: parameter: parameters are f32, got ${t.describe()}`);
  if (t.node) throw new Error(`webqat: parameter: ${t.describe()} is the output of an op; a parameter must be a leaf tensor`);
  t.requiresGrad = true;
  t.keep();
  if (name !== undefined) t.name = name;
  const p = t as Parameter;
  (p as { isParameter: true }).isParameter = true;
  if (precision) p.precision = precision;
  return p;
}

export function isParameter(t: unknown): t is Parameter {
  return typeof t === 'object' && t !== null && (t as { isParameter?: unknown }).isParameter === true;
}
