/**
 * Quantizer specs. A spec says how a model's weights and activations are quantized during training
 * and carries a precision tag (Larq-style) per tensor kind; the tags drive the model-size report
 * (bits as trained, bytes as packed) and the packed export.
 *
 * `parseQuantSpec()` reads the CLI's `--quant` values. The grammar is the union of the records in
 * src/quant/methods (one per method: its names, parse and error messages, canonical text):
 *
 *   fp                          float32 everywhere (also: float, fp32, none)
 *   bwn                         binary weights  α·sign*(W), α = mean|W|            (ALGORITHMS §1.3)
 *   twn                         ternary weights, Δ = 0.7·mean|W|                    (§1.3)
 *   ttq                         trained ternary, Δ = 0.05·max|W|, trained W_p, W_n  (§1.3)
 *   sq[:lambda=..,gamma=..,p=..,beta0=..,warmup=..,betalr=..]
 *                               adaptive binary/ternary (SQ)                        (§3)
 *   dorefa:w1a4                 DoReFa weights (k = 1 BWN variant, k >= 2 tanh) and activations (§1.2)
 *   elq:ternary | elq:binary    explicit loss-error-aware, incremental              (§5)
 *   inq:5                       incremental power-of-two weights, 5 bits            (§1.5)
 *   pact:a4[w4]                 PACT activations (learned clip), optional DoReFa weights (§1.4)
 *   lsq:w4a4                    learned step size, weights and activations          (§1.4)
 *   fixed:8                     fixed-point weights, 8 bits                          (§1.6)
 *   log:4                       logarithmic (power-of-two) weights, 4 bits           (§1.6)
 *   (and every record added since: `acceptedQuantSpecs()`)
 */
import { actPartOf, type ActQuant, methodById, methodByName, quantMethods, type WeightQuant, weightPartOf } from './methods/index.ts';
import { FP32, type ParseContext, type Precision, SpecError } from './methods/types.ts';

export { FP32, precision, type Precision, type PrecisionKind } from './methods/types.ts';
export { SQ_DEFAULTS, type SQHyper } from './methods/sq.ts';
export type { ActQuant, WeightQuant } from './methods/index.ts';

export interface QuantSpec {
  /** canonical text form (parseQuantSpec(spec.name) gives the same spec) */
  name: string;
  weight: WeightQuant;
  act: ActQuant;
  /** precision of quantized weights (adaptive for SQ: decided per layer during training) */
  weightPrecision: Precision;
  /** precision of quantized activations */
  actPrecision: Precision;
}

function accepted(): string[] {
  return quantMethods().flatMap((m) => m.accepted);
}

function fail(spec: string, why: string): never {
  throw new Error(`webqat: --quant '${spec}': ${why}. Accepted: ${accepted().join(', ')}`);
}

/** The precision tag of a weight quantizer. */
export function weightPrecisionOf(w: WeightQuant | { method: string }): Precision {
  return weightPartOf(w).precision(w);
}

/** The precision tag of an activation quantizer. */
export function actPrecisionOf(a: ActQuant | { method: string }): Precision {
  return a.method === 'none' ? FP32 : actPartOf(a).precision(a);
}

/**
 * The canonical text of a spec: the record of the activation quantizer names it when activations
 * are quantized, else the record of the weight quantizer.
 */
function canonical(w: WeightQuant, a: ActQuant): string {
  const owner = methodById(a.method !== 'none' ? a.method : w.method);
  if (!owner) throw new Error(`webqat: makeSpec: unknown quantizer '${a.method !== 'none' ? a.method : w.method}'`);
  return owner.canonical({ weight: w, act: a });
}

/** Build a spec from its parts (fills in the precision tags and the canonical name). */
export function makeSpec(weight: WeightQuant, act: ActQuant = { method: 'none' }): QuantSpec {
  return { name: canonical(weight, act), weight, act, weightPrecision: weightPrecisionOf(weight), actPrecision: actPrecisionOf(act) };
}

function context(spec: string, method: string): ParseContext {
  const ctx: ParseContext = {
    text: spec,
    method,
    fail: (why) => fail(spec, why),
    noArg(arg) {
      if (arg !== undefined) fail(spec, `'${method}' takes no argument`);
    },
    need(arg, what) {
      if (arg === undefined || arg === '') fail(spec, `'${method}' needs ${what}`);
      return arg;
    },
    intIn(what, text, lo, hi, also = []) {
      if (!/^\d+$/.test(text)) fail(spec, `${what} must be an integer, got '${text}'`);
      const v = Number(text);
      if (!((v >= lo && v <= hi) || also.includes(v))) {
        fail(spec, `${what} = ${v} is out of range (${lo}..${hi}${also.length ? ` or ${also.join(', ')}` : ''})`);
      }
      return v;
    },
    bitWidths(body) {
      const m = /^(?:w(\d+))?(?:a(\d+))?$/.exec(body) ?? /^(?:a(\d+))(?:w(\d+))$/.exec(body);
      if (!m || body === '') fail(spec, `expected bit widths like 'w1a4', got '${body}'`);
      if (/^a\d+w\d+$/.test(body)) return { a: m[1], w: m[2] };
      return { w: m[1], a: m[2] };
    },
  };
  return ctx;
}

/** Parse a `--quant` value (see the file comment). Throws an error listing the accepted forms. */
export function parseQuantSpec(text: string): QuantSpec {
  const spec = text.trim();
  const colon = spec.indexOf(':');
  const method = (colon < 0 ? spec : spec.slice(0, colon)).toLowerCase();
  const arg = colon < 0 ? undefined : spec.slice(colon + 1).trim().toLowerCase();
  const rec = methodByName(method);
  if (!rec) fail(spec, method === '' ? 'empty spec' : `unknown quantizer '${method}'`);
  let parts;
  try {
    parts = rec.parse(arg, context(spec, method));
  } catch (e) {
    if (e instanceof SpecError) fail(spec, e.message);
    throw e;
  }
  return makeSpec(parts.weight as WeightQuant, parts.act as ActQuant);
}

/** The accepted `--quant` forms (for help texts). */
export function acceptedQuantSpecs(): string[] {
  return accepted();
}

/** Concrete specs for menus (the browser app): each record's examples, in registry order. */
export function quantExamples(): string[] {
  return quantMethods().flatMap((m) => m.examples);
}

/** Weight-only `--quant` forms (models without activation quantizer points accept these): 'fp', 'bwn', ..., 'dorefa:wK', 'inq:B'. */
export function weightOnlyQuantSpecs(): string[] {
  const out: string[] = [];
  for (const m of quantMethods()) {
    if (!m.weight) continue;
    for (const a of m.accepted) {
      const form = a.split(/[\s[]/)[0].replace(/wKaK$/, 'wK');
      if (!out.includes(form)) out.push(form);
    }
  }
  return out;
}
