/**
 * sq: adaptive binary/ternary weights (SQ, ALGORITHMS §3). Per layer a trained well position α
 * (role 'scale') and angle β (role 'angle': its own parameter group at `betalr` × lr, no weight
 * decay). The regularizer λ·Σ_l [R_l + γ·cot β_l] (λ warmed up) is added to the loss; β is clipped
 * to [floor, π/2 − ε] after every optimizer step (a binary layer stays binary); the size report
 * and the export read each layer's binary/ternary decision.
 *
 *   sq[:lambda=1e-3,gamma=1e-3,p=2,beta0=0.835,warmup=0.1,betalr=10]
 */
import { absMean, noGrad, sqQuantize, type Tensor, tensor } from '../../autograd/index.ts';
import { sqBetaFloors, sqClipBeta_, sqDecision, sqPenalty } from '../sq.ts';
import { defineMethod, precision, type ParseContext } from './types.ts';

export type SQHyper = {
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
};

export const SQ_DEFAULTS: Readonly<SQHyper> = Object.freeze({ lambda: 1e-3, gamma: 1e-3, p: 2, beta0: Math.PI / 4 + 0.05, warmup: 0.1, betaLr: 10 });

export type SqQuant = { method: 'sq' } & SQHyper;

/** The SQ λ at optimizer step `step` of `totalSteps` (linear warm-up over `warmup`·totalSteps). */
export function sqLambdaAt(c: SQHyper, step: number, totalSteps: number): number {
  const ramp = c.warmup * totalSteps;
  return ramp > 0 ? c.lambda * Math.min(1, (step + 1) / ramp) : c.lambda;
}

const OPTIONS = 'lambda, gamma, p, beta0, warmup, betalr';

export const sq = defineMethod({
  id: 'sq',
  names: ['sq'],
  summary: 'adaptive binary/ternary weights (SQ): trained α, β per layer, regularizer λ·Σ(R + γ·cot β)',
  ref: '§3',
  accepted: ['sq[:lambda=1e-3,gamma=1e-3,p=2,beta0=0.835,warmup=0.1,betalr=10]'],
  examples: ['sq'],
  parse(arg: string | undefined, ctx: ParseContext) {
    const h: SQHyper = { ...SQ_DEFAULTS };
    if (arg !== undefined && arg !== '') {
      for (const kv of arg.split(',')) {
        const m = /^([a-zA-Zλγβ0-9]+)=(.+)$/.exec(kv.trim());
        if (!m) ctx.fail(`SQ options are key=value pairs, got '${kv}'`);
        const key = m[1].toLowerCase();
        const v = Number(m[2]);
        if (!Number.isFinite(v)) ctx.fail(`SQ ${key} must be a number, got '${m[2]}'`);
        switch (key) {
          case 'lambda':
          case 'λ':
            if (!(v >= 0 && v <= 1)) ctx.fail(`SQ lambda = ${v} is out of range [0, 1] (ALGORITHMS §3.4 sweeps 1e-4..0.1)`);
            h.lambda = v;
            break;
          case 'gamma':
          case 'γ':
            if (!(v >= 0 && v <= 1)) ctx.fail(`SQ gamma = ${v} is out of range [0, 1] (ALGORITHMS §3.4 sweeps 1e-4..1e-2)`);
            h.gamma = v;
            break;
          case 'p':
            if (v !== 1 && v !== 2) ctx.fail(`SQ p = ${v} must be 1 or 2`);
            h.p = v as 1 | 2;
            break;
          case 'beta0':
          case 'β0':
            if (!(v >= Math.PI / 4 && v < Math.PI / 2)) ctx.fail(`SQ beta0 = ${v} is out of range [π/4, π/2)`);
            h.beta0 = v;
            break;
          case 'warmup':
            if (!(v >= 0 && v <= 1)) ctx.fail(`SQ warmup = ${v} is out of range [0, 1] (a fraction of training)`);
            h.warmup = v;
            break;
          case 'betalr':
            if (!(v > 0 && v <= 1000)) ctx.fail(`SQ betalr = ${v} is out of range (0, 1000] (β's learning rate as a multiple of --lr)`);
            h.betaLr = v;
            break;
          default:
            ctx.fail(`unknown SQ option '${m[1]}' (${OPTIONS})`);
        }
      }
    }
    return { weight: { method: 'sq', ...h }, act: { method: 'none' } };
  },
  canonical({ weight }) {
    const w = weight as SqQuant;
    const d = SQ_DEFAULTS;
    const opts: string[] = [];
    if (w.lambda !== d.lambda) opts.push(`lambda=${w.lambda}`);
    if (w.gamma !== d.gamma) opts.push(`gamma=${w.gamma}`);
    if (w.p !== d.p) opts.push(`p=${w.p}`);
    if (w.beta0 !== d.beta0) opts.push(`beta0=${w.beta0}`);
    if (w.warmup !== d.warmup) opts.push(`warmup=${w.warmup}`);
    if (w.betaLr !== d.betaLr) opts.push(`betalr=${w.betaLr}`);
    return opts.length ? `sq:${opts.join(',')}` : 'sq';
  },
  weight: {
    precision: (_c: SqQuant) => precision('adaptive', 2),
    params: (c: SqQuant, weight) => [
      { name: 'sq_alpha', role: 'scale', init: noGrad(() => absMean(weight)) },
      { name: 'sq_beta', role: 'angle', init: tensor([c.beta0], [1]) },
    ],
    forward: (c: SqQuant, l) => sqQuantize(l.weight, l.param('sq_alpha'), l.param('sq_beta'), { p: c.p }),
    lrMultiple: (c: SqQuant, role) => (role === 'angle' ? c.betaLr : undefined),
    training(c: SqQuant, layers) {
      const sqLayers = layers.map(({ layer }) => layer);
      const betas = sqLayers.map((l) => l.param('sq_beta'));
      let floors: (Tensor | null)[] | undefined;
      return {
        penalty: (ctx) => sqPenalty(sqLayers, sqLambdaAt(c, ctx.step, ctx.totalSteps), c),
        beforeStep: () => {
          floors = sqBetaFloors(betas);
        },
        afterStep: () => {
          sqClipBeta_(betas, floors);
          floors = undefined;
        },
      };
    },
    async read(c: SqQuant, l, values) {
      // the quantized weight is 0 exactly in the zero basin |w| < t(β), so its zeros give the decision
      const [a, b] = await Promise.all([l.param('sq_alpha').data(), l.param('sq_beta').data()]);
      let z = 0;
      for (const v of values) if (v === 0) z++;
      const d = sqDecision(a[0], b[0], c.p, values.length ? z / values.length : 0);
      return {
        mode: d.mode,
        bits: d.mode === 'binary' ? 1 : 2,
        extra: { sq: { alpha: a[0], beta: b[0], tanBeta: d.tanBeta, threshold: d.threshold, zeroFraction: d.zeroFraction } },
      };
    },
  },
});
