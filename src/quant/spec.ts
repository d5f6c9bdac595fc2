/**
 * Quantizer specs. A spec says how a model's weights and activations are quantized during training
 * and carries a precision tag (Larq-style) per tensor kind; the tags drive the model-size report
 * (bits as trained, bytes as packed) and the packed export.
 *
 * `parseQuantSpec()` reads the CLI's `--quant` values:
 *
 *   fp                          float32 everywhere (also: float, none)
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
 */
import type { PrecisionTag } from '../nn/parameter.ts';

export type PrecisionKind = 'float' | 'binary' | 'ternary' | 'kbit' | 'log' | 'fixed' | 'adaptive';

/** What a tensor is stored/trained as. `bits` is the storage width per value (adaptive: the maximum). */
export interface Precision extends PrecisionTag {
  kind: PrecisionKind;
  bits: number;
}

export const FP32: Precision = Object.freeze({ kind: 'float', bits: 32 }) as Precision;

export interface SQHyper {
  /** regularizer weight λ (per-element normalised), §3.2 */
  lambda: number;
  /** binary bias γ of the γ·cot β term */
  gamma: number;
  /** regularizer exponent p ∈ {1, 2} */
  p: 1 | 2;
  /** initial angle β₀ ∈ [π/4, π/2) (π/4 = symmetric ternary) */
  beta0: number;
  /** fraction of training over which λ ramps linearly from 0 (0 = no warm-up) */
  warmup: number;
  /**
   * β's learning rate as a multiple of the model's (β gets its own parameter group). β is one
   * scalar per layer that must travel from ≈π/4 (ternary) towards π/2 (binary): at the model's lr an
   * Adam step moves it by at most lr, too slow for a short run.
   */
  betaLr: number;
}

export const SQ_DEFAULTS: Readonly<SQHyper> = Object.freeze({ lambda: 1e-3, gamma: 1e-3, p: 2, beta0: Math.PI / 4 + 0.05, warmup: 0.1, betaLr: 10 });

export type WeightQuant =
  | { method: 'none' }
  | { method: 'bwn' }
  | { method: 'twn' }
  | { method: 'ttq'; threshold: number }
  | { method: 'dorefa'; bits: number }
  | ({ method: 'sq' } & SQHyper)
  | { method: 'elq'; mode: 'ternary' | 'binary' }
  | { method: 'inq'; bits: number }
  | { method: 'lsq'; bits: number }
  | { method: 'fixed'; bits: number }
  | { method: 'log'; bits: number };

export type ActQuant =
  | { method: 'none' }
  | { method: 'dorefa'; bits: number }
  | { method: 'pact'; bits: number; alpha0: number }
  | { method: 'lsq'; bits: number };

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

const ACCEPTED = [
  'fp',
  'bwn',
  'twn',
  'ttq',
  'sq[:lambda=1e-3,gamma=1e-3,p=2,beta0=0.835,warmup=0.1,betalr=10]',
  'dorefa:wKaK (K: 1..8 or 32; e.g. dorefa:w1a4)',
  'elq:ternary',
  'elq:binary',
  'inq:B (B: 2..8)',
  'pact:aK[wK] (K: 1..8; e.g. pact:a4)',
  'lsq:wKaK (w 2..8, a 1..8; e.g. lsq:w4a4)',
  'fixed:B (B: 2..16)',
  'log:B (B: 2..8)',
];

function fail(spec: string, why: string): never {
  throw new Error(`webqat: --quant '${spec}': ${why}. Accepted: ${ACCEPTED.join(', ')}`);
}

export function precision(kind: PrecisionKind, bits: number): Precision {
  return { kind, bits };
}

/** The precision tag of a weight quantizer. */
export function weightPrecisionOf(w: WeightQuant): Precision {
  switch (w.method) {
    case 'none':
      return FP32;
    case 'bwn':
      return precision('binary', 1);
    case 'twn':
    case 'ttq':
      return precision('ternary', 2);
    case 'sq':
      return precision('adaptive', 2);
    case 'elq':
      return w.mode === 'binary' ? precision('binary', 1) : precision('ternary', 2);
    case 'dorefa':
      return w.bits === 32 ? FP32 : w.bits === 1 ? precision('binary', 1) : precision('kbit', w.bits);
    case 'lsq':
      return precision('kbit', w.bits);
    case 'inq':
    case 'log':
      return precision('log', w.bits);
    case 'fixed':
      return precision('fixed', w.bits);
  }
}

export function actPrecisionOf(a: ActQuant): Precision {
  if (a.method === 'none' || (a.method === 'dorefa' && a.bits === 32)) return FP32;
  return precision('kbit', a.bits);
}

function intIn(spec: string, what: string, text: string, lo: number, hi: number, also: number[] = []): number {
  if (!/^\d+$/.test(text)) fail(spec, `${what} must be an integer, got '${text}'`);
  const v = Number(text);
  if (!((v >= lo && v <= hi) || also.includes(v))) {
    fail(spec, `${what} = ${v} is out of range (${lo}..${hi}${also.length ? ` or ${also.join(', ')}` : ''})`);
  }
  return v;
}

/** Parse `wKaK` / `aKwK` / `wK` / `aK` into bit widths. */
function parseWA(spec: string, body: string): { w?: string; a?: string } {
  const m = /^(?:w(\d+))?(?:a(\d+))?$/.exec(body) ?? /^(?:a(\d+))(?:w(\d+))$/.exec(body);
  if (!m || body === '') fail(spec, `expected bit widths like 'w1a4', got '${body}'`);
  if (/^a\d+w\d+$/.test(body)) return { a: m[1], w: m[2] };
  return { w: m[1], a: m[2] };
}

function parseSQ(spec: string, body: string | undefined): SQHyper {
  const h: SQHyper = { ...SQ_DEFAULTS };
  if (body === undefined || body === '') return h;
  for (const kv of body.split(',')) {
    const m = /^([a-zA-Zλγβ0-9]+)=(.+)$/.exec(kv.trim());
    if (!m) fail(spec, `SQ options are key=value pairs, got '${kv}'`);
    const key = m[1].toLowerCase();
    const v = Number(m[2]);
    if (!Number.isFinite(v)) fail(spec, `SQ ${key} must be a number, got '${m[2]}'`);
    switch (key) {
      case 'lambda':
      case 'λ':
        if (!(v >= 0 && v <= 1)) fail(spec, `SQ lambda = ${v} is out of range [0, 1] (ALGORITHMS §3.4 sweeps 1e-4..0.1)`);
        h.lambda = v;
        break;
      case 'gamma':
      case 'γ':
        if (!(v >= 0 && v <= 1)) fail(spec, `SQ gamma = ${v} is out of range [0, 1] (ALGORITHMS §3.4 sweeps 1e-4..1e-2)`);
        h.gamma = v;
        break;
      case 'p':
        if (v !== 1 && v !== 2) fail(spec, `SQ p = ${v} must be 1 or 2`);
        h.p = v;
        break;
      case 'beta0':
      case 'β0':
        if (!(v >= Math.PI / 4 && v < Math.PI / 2)) fail(spec, `SQ beta0 = ${v} is out of range [π/4, π/2)`);
        h.beta0 = v;
        break;
      case 'warmup':
        if (!(v >= 0 && v <= 1)) fail(spec, `SQ warmup = ${v} is out of range [0, 1] (a fraction of training)`);
        h.warmup = v;
        break;
      case 'betalr':
        if (!(v > 0 && v <= 1000)) fail(spec, `SQ betalr = ${v} is out of range (0, 1000] (β's learning rate as a multiple of --lr)`);
        h.betaLr = v;
        break;
      default:
        fail(spec, `unknown SQ option '${m[1]}' (lambda, gamma, p, beta0, warmup, betalr)`);
    }
  }
  return h;
}

function canonical(w: WeightQuant, a: ActQuant): string {
  switch (w.method) {
    case 'none':
      if (a.method === 'pact') return `pact:a${a.bits}`;
      if (a.method === 'dorefa') return `dorefa:w32a${a.bits}`;
      if (a.method === 'lsq') return `lsq:w32a${a.bits}`;
      return 'fp';
    case 'bwn':
    case 'twn':
      return w.method;
    case 'ttq':
      return 'ttq';
    case 'sq': {
      const d = SQ_DEFAULTS;
      const opts: string[] = [];
      if (w.lambda !== d.lambda) opts.push(`lambda=${w.lambda}`);
      if (w.gamma !== d.gamma) opts.push(`gamma=${w.gamma}`);
      if (w.p !== d.p) opts.push(`p=${w.p}`);
      if (w.beta0 !== d.beta0) opts.push(`beta0=${w.beta0}`);
      if (w.warmup !== d.warmup) opts.push(`warmup=${w.warmup}`);
      if (w.betaLr !== d.betaLr) opts.push(`betalr=${w.betaLr}`);
      return opts.length ? `sq:${opts.join(',')}` : 'sq';
    }
    case 'dorefa':
      if (a.method === 'pact') return `pact:a${a.bits}w${w.bits}`;
      return `dorefa:w${w.bits}a${a.method === 'dorefa' ? a.bits : 32}`;
    case 'elq':
      return `elq:${w.mode}`;
    case 'inq':
      return `inq:${w.bits}`;
    case 'lsq':
      return `lsq:w${w.bits}a${a.method === 'lsq' ? a.bits : 32}`;
    case 'fixed':
      return `fixed:${w.bits}`;
    case 'log':
      return `log:${w.bits}`;
  }
}

/** Build a spec from its parts (fills in the precision tags and the canonical name). */
export function makeSpec(weight: WeightQuant, act: ActQuant = { method: 'none' }): QuantSpec {
  return { name: canonical(weight, act), weight, act, weightPrecision: weightPrecisionOf(weight), actPrecision: actPrecisionOf(act) };
}

/** Parse a `--quant` value (see the file comment). Throws an error listing the accepted forms. */
export function parseQuantSpec(text: string): QuantSpec {
  const spec = text.trim();
  const colon = spec.indexOf(':');
  const method = (colon < 0 ? spec : spec.slice(0, colon)).toLowerCase();
  const arg = colon < 0 ? undefined : spec.slice(colon + 1).trim().toLowerCase();
  const noArg = () => {
    if (arg !== undefined) fail(spec, `'${method}' takes no argument`);
  };
  const need = (what: string): string => {
    if (arg === undefined || arg === '') fail(spec, `'${method}' needs ${what}`);
    return arg;
  };
  switch (method) {
    case 'fp':
    case 'float':
    case 'fp32':
    case 'none':
      noArg();
      return makeSpec({ method: 'none' });
    case 'bwn':
      noArg();
      return makeSpec({ method: 'bwn' });
    case 'twn':
      noArg();
      return makeSpec({ method: 'twn' });
    case 'ttq':
      noArg();
      return makeSpec({ method: 'ttq', threshold: 0.05 });
    case 'sq':
      return makeSpec({ method: 'sq', ...parseSQ(spec, arg) });
    case 'dorefa': {
      const wa = parseWA(spec, need('bit widths, e.g. dorefa:w1a4'));
      const w = wa.w === undefined ? 32 : intIn(spec, 'weight bits', wa.w, 1, 8, [32]);
      const a = wa.a === undefined ? 32 : intIn(spec, 'activation bits', wa.a, 1, 8, [32]);
      return makeSpec(w === 32 ? { method: 'none' } : { method: 'dorefa', bits: w }, a === 32 ? { method: 'none' } : { method: 'dorefa', bits: a });
    }
    case 'elq': {
      const mode = need("'ternary' or 'binary'");
      if (mode !== 'ternary' && mode !== 'binary') fail(spec, `ELQ mode must be 'ternary' or 'binary', got '${mode}'`);
      return makeSpec({ method: 'elq', mode });
    }
    case 'inq':
      return makeSpec({ method: 'inq', bits: intIn(spec, 'INQ bits', need('a bit width, e.g. inq:5'), 2, 8) });
    case 'pact': {
      const wa = parseWA(spec, need('activation bits, e.g. pact:a4'));
      if (wa.a === undefined) fail(spec, `PACT quantizes activations: give 'aK', e.g. pact:a4`);
      const a = intIn(spec, 'activation bits', wa.a, 1, 8);
      const w = wa.w === undefined ? 32 : intIn(spec, 'weight bits', wa.w, 1, 8, [32]);
      return makeSpec(w === 32 ? { method: 'none' } : { method: 'dorefa', bits: w }, { method: 'pact', bits: a, alpha0: 10 });
    }
    case 'lsq': {
      const wa = parseWA(spec, need('bit widths, e.g. lsq:w4a4'));
      const w = wa.w === undefined ? 32 : intIn(spec, 'weight bits', wa.w, 2, 8, [32]);
      const a = wa.a === undefined ? 32 : intIn(spec, 'activation bits', wa.a, 1, 8, [32]);
      return makeSpec(w === 32 ? { method: 'none' } : { method: 'lsq', bits: w }, a === 32 ? { method: 'none' } : { method: 'lsq', bits: a });
    }
    case 'fixed':
      return makeSpec({ method: 'fixed', bits: intIn(spec, 'fixed-point bits', need('a bit width, e.g. fixed:8'), 2, 16) });
    case 'log':
      return makeSpec({ method: 'log', bits: intIn(spec, 'log bits', need('a bit width, e.g. log:4'), 2, 8) });
    default:
      fail(spec, method === '' ? 'empty spec' : `unknown quantizer '${method}'`);
  }
}

/** The accepted `--quant` forms (for help texts). */
export function acceptedQuantSpecs(): string[] {
  return [...ACCEPTED];
}
