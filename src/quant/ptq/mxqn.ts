/**
 * MXQN post-training quantization (ALGORITHMS §4.2), no retraining:
 *
 *  1. BN folding: a BatchNorm that directly consumes a Conv2d/Linear output (found by tracing one
 *     forward pass, so any model shape works) is folded into it: W' = W·γ/√(σ²+ε),
 *     b' = (b − μ)·γ/√(σ²+ε) + β; the BN becomes an identity.
 *  2. Calibration in evaluation mode over N batches, every statistic accumulated on the GPU:
 *     pass A: max|x|, min x and a log2 histogram of each quantized layer's input;
 *     pass B: for each layer, Σx² and Σ(x − Q(x))² of every candidate quantizer (fixed point with
 *     f0 − 2..f0 + 3, log with m ∈ {1, 2, 4} and FSR0, FSR0 + 1: the records of quantizers/). Only these
 *     small accumulators are read back.
 *  3. Weights: fixed point, fraction length searched for the best SQNR.
 *  4. Activations: the choice rule of sqnr.ts (mxqn: log only when it beats fixed by > 0.5 dB).
 *  5. Optional bit allocation: while the network SQNR estimate is below a target, the weakest
 *     part (a layer's weights or activations) gets one more bit.
 *  6. Apply: each quantized layer runs Q_A(x) → conv/linear with the quantized, folded weights.
 *
 * Layering: this module calls ops only (ptqQuantize, ptqErrorSums_, ptqHistogram_, ...).
 */
import {
  absMax,
  add,
  addScalar,
  beginScope,
  conv2d,
  copy_,
  div,
  endScope,
  linear,
  maximum,
  min,
  minimum,
  mul,
  noGrad,
  PTQ_HISTOGRAM,
  PTQ_MAX_CANDIDATES,
  ptqErrorSums_,
  ptqHistogram_,
  type PtqQuantizer,
  relu,
  reshape,
  sqrt,
  sub,
  type Tensor,
  tensor,
  tidy,
  zeros,
  accuracyCount,
} from '../../autograd/index.ts';
import { BatchNorm1d, BatchNorm2d, Conv2d, Linear } from '../../nn/layers.ts';
import type { Module } from '../../nn/module.ts';
import { ptqFamilies, ptqMethods, ptqQuantizers, type PtqQuantizerRecord, ptqQuantizersInUse, ptqRecordOf, type Scored } from './quantizers/index.ts';
import { type ActChoice, type AllocPart, chooseActivation, type LogM, networkSqnrDb, type PtqMethod, scoreCandidates, searchFrac, weakestPart } from './sqnr.ts';

export interface PtqOptions {
  method: PtqMethod;
  weightBits: number;
  actBits: number;
  /** the quantizer records to consider, by id or name (default: the registry's default records) */
  quantizers?: readonly string[];
  /** log bases 2^(1/m) to consider (default: the default log records, m = 1, 2, 4) */
  logM?: readonly LogM[];
  /** mxqn keeps fixed point unless log wins by more than this (default 0.5 dB) */
  preferFixedDb?: number;
  /** quantize the first / last conv or linear layer too (default true: PTQ quantizes everything) */
  quantizeFirst?: boolean;
  quantizeLast?: boolean;
  /** bit allocation: raise the weakest part until the network SQNR estimate reaches this (dB) */
  targetSqnrDb?: number;
  /** bit allocation: no part above this many bits (default 16) */
  maxBits?: number;
  /** fold BatchNorm into the preceding conv/linear (default true) */
  foldBn?: boolean;
}

/** The input batches of calibration; called once per pass (yield the same batches each time). */
export type CalibBatches = () => Iterable<Tensor>;

type Target = Conv2d | Linear;

export interface PtqLayer {
  name: string;
  kind: 'conv' | 'linear';
  index: number;
  quantized: boolean;
  /** the BatchNorm folded into this layer, if any */
  foldedBn: string | null;
  weights: number;
  weight: { q: PtqQuantizer; db: number; candidates: Scored[] } | null;
  act: {
    q: PtqQuantizer;
    db: number;
    label: string;
    choice: ActChoice;
    candidates: Scored[];
    maxAbs: number;
    min: number;
    /** counts per bin of PTQ_HISTOGRAM (bin 0: zeros) */
    histogram: number[];
    /** elements seen in calibration */
    count: number;
  } | null;
}

export interface PtqResult {
  method: PtqMethod;
  weightBits: number;
  actBits: number;
  layers: PtqLayer[];
  /** network SQNR estimate over every quantized part (dB) */
  networkSqnrDb: number;
  /** bit-allocation steps taken (layer, part, new bits, network dB after) */
  allocation: { layer: string; part: 'weight' | 'act'; bits: number; networkDb: number }[];
  calibBatches: number;
}

function targets(model: Module): [string, Target][] {
  return model.namedModules().filter((e): e is [string, Target] => e[1] instanceof Conv2d || e[1] instanceof Linear);
}

type Fwd = (x: Tensor, opts?: { relu?: boolean }) => Tensor;
const saved = new WeakMap<Module, (PropertyDescriptor | undefined)[]>();
/** Override a module instance's forward; `unpatch` restores the previous one (patches stack). */
function patch(m: Module, f: Fwd): void {
  const stack = saved.get(m) ?? [];
  stack.push(Object.getOwnPropertyDescriptor(m, 'forward'));
  saved.set(m, stack);
  Object.defineProperty(m, 'forward', { value: f, configurable: true, writable: true });
}
function unpatch(m: Module): void {
  const prev = saved.get(m)?.pop();
  if (prev) Object.defineProperty(m, 'forward', prev);
  else delete (m as unknown as { forward?: Fwd }).forward;
}

function runBatches(model: Module, batches: CalibBatches): number {
  let n = 0;
  for (const x of batches()) {
    noGrad(() => {
      beginScope('ptq calibration');
      try {
        model.call(x);
      } finally {
        endScope();
      }
    });
    n++;
  }
  if (n === 0) throw new Error('webqat: ptq: calibration needs at least one batch');
  return n;
}

/**
 * Fold every BatchNorm that consumes a conv/linear output into that layer (traced on one batch).
 * Returns layer name → { bn name, folded bias } (the bias is a kept tensor; the layer's weight is
 * overwritten in place, its forward uses the folded bias and the BN's forward becomes the identity).
 */
export function foldBatchNorm(model: Module, sample: Tensor): Map<string, { bn: string; bias: Tensor }> {
  const layers = targets(model);
  const bns = model.namedModules().filter((e): e is [string, BatchNorm2d | BatchNorm1d] => e[1] instanceof BatchNorm2d || e[1] instanceof BatchNorm1d);
  const producedBy = new Map<Tensor, string>();
  const consumers = new Map<string, string[]>();
  const pairs = new Map<string, string>(); // layer -> bn
  for (const [name, l] of layers) {
    const orig = l.forward.bind(l);
    patch(l, (x) => {
      const y = orig(x);
      producedBy.set(y, name);
      return y;
    });
  }
  for (const [name, bn] of bns) {
    const orig = bn.forward.bind(bn);
    patch(bn, (x, opts) => {
      const src = producedBy.get(x);
      if (src) consumers.set(src, [...(consumers.get(src) ?? []), name]);
      return orig(x, opts);
    });
  }
  const wasTraining = model.training;
  model.eval();
  try {
    noGrad(() => {
      beginScope('ptq bn trace');
      try {
        model.call(sample);
      } finally {
        endScope();
      }
    });
  } finally {
    for (const [, l] of layers) unpatch(l);
    for (const [, b] of bns) unpatch(b);
    model.train(wasTraining);
  }
  for (const [layer, list] of consumers) if (list.length === 1) pairs.set(layer, list[0]);
  const out = new Map<string, { bn: string; bias: Tensor }>();
  const byName = new Map(model.namedModules());
  for (const [layerName, bnName] of pairs) {
    const l = byName.get(layerName) as Target;
    const bn = byName.get(bnName) as BatchNorm2d | BatchNorm1d;
    const o = l.weight.shape[0];
    const bias = noGrad(() =>
      tidy(() => {
        const s = div(bn.weight, sqrt(addScalar(bn.runningVar, bn.eps)));
        copy_(l.weight, mul(l.weight, reshape(s, [o, ...l.weight.shape.slice(1).map(() => 1)])));
        const b0 = l.bias ?? zeros([o]);
        return add(mul(sub(b0, bn.runningMean), s), bn.bias).keep();
      }, 'ptq bn fold')
    );
    // the folded BN is the identity, or the ReLU a caller fuses into it (`bn.forward(x, { relu: true })`)
    patch(bn, (x, opts) => (opts?.relu ? relu(x) : x));
    if (l instanceof Conv2d) {
      const o = { stride: l.stride, padding: l.padding, dilation: l.dilation, groups: l.groups };
      patch(l, (x) => conv2d(x, l.weight, bias, o));
    } else {
      patch(l, (x) => linear(x, l.weight, bias));
    }
    out.set(layerName, { bn: bnName, bias });
  }
  return out;
}

interface Acc {
  max: Tensor;
  min: Tensor;
  hist: Tensor;
  count: number;
}

const readVals = async (t: Tensor) => Array.from(await t.data() as Float32Array);

/** Accumulate each listed layer's candidate error sums over the calibration batches (pass B). */
/** Candidates in chunks of at most PTQ_MAX_CANDIDATES (one ptqErrorSums_ call each). */
function chunks(cands: readonly PtqQuantizer[]): PtqQuantizer[][] {
  const out: PtqQuantizer[][] = [];
  for (let k = 0; k < cands.length; k += PTQ_MAX_CANDIDATES) out.push(cands.slice(k, k + PTQ_MAX_CANDIDATES));
  return out;
}

/** [Σx², Σe²_0, Σe²_1, ...] over all candidates from the per-chunk accumulators (each holds its own Σx²). */
async function joinSums(accs: Tensor[], parts: PtqQuantizer[][]): Promise<number[]> {
  const vals = await Promise.all(accs.map(readVals));
  return [vals[0][0], ...parts.flatMap((p, j) => vals[j].slice(1, p.length + 1))];
}

/** Accumulate each listed layer's candidate error sums over the calibration batches (pass B). */
async function activationSums(model: Module, list: [string, Target][], cands: (PtqQuantizer[] | null)[], batches: CalibBatches): Promise<(number[] | null)[]> {
  const parts = cands.map((c) => (c ? chunks(c) : null));
  const sums = parts.map((p) => (p ? p.map(() => zeros([PTQ_MAX_CANDIDATES + 1]).keep()) : null));
  try {
    list.forEach(([, l], i) => {
      const p = parts[i];
      const accs = sums[i];
      if (!p || !accs) return;
      const orig = l.forward.bind(l);
      patch(l, (x) => {
        p.forEach((c, j) => ptqErrorSums_(x, c, accs[j]));
        return orig(x);
      });
    });
    try {
      runBatches(model, batches);
    } finally {
      list.forEach(([, l], i) => cands[i] && sums[i] && unpatch(l));
    }
    return await Promise.all(sums.map((s, i) => (s ? joinSums(s, parts[i]!) : null)));
  } finally {
    for (const s of sums) for (const t of s ?? []) t.release('ptq');
  }
}

async function weightSums(w: Tensor, cands: PtqQuantizer[]): Promise<number[]> {
  const parts = chunks(cands);
  const accs = parts.map(() => zeros([PTQ_MAX_CANDIDATES + 1]));
  try {
    parts.forEach((c, j) => ptqErrorSums_(w, c, accs[j]));
    return await joinSums(accs, parts);
  } finally {
    for (const a of accs) a.release('ptq');
  }
}

/** A model quantized after training: its per-layer plan, and the tensors of the quantized layers. */
export class PtqModel {
  private readonly qWeights = new Map<string, Tensor>();

  private constructor(
    readonly model: Module,
    readonly result: PtqResult,
    private readonly folded: Map<string, { bn: string; bias: Tensor }>,
  ) {}

  /**
   * Quantize a trained model in place: BN folded, calibrated, every quantized layer patched to
   * Q_A(x) → conv/linear(Ŵ). `batches` yields the calibration inputs (called once per pass).
   */
  static async quantize(model: Module, batches: CalibBatches, opts: PtqOptions): Promise<PtqModel> {
    if (!ptqMethods().includes(opts.method)) throw new Error(`webqat: ptq: unknown method '${opts.method}' (known: ${ptqMethods().join(', ')})`);
    const inUse = ptqQuantizersInUse({ names: opts.quantizers, logM: opts.logM });
    const weightRecs = inUse.filter((r) => r.roles.weight);
    if (!weightRecs.length) throw new Error(`webqat: ptq: none of the quantizers in use (${inUse.map((r) => r.id).join(', ')}) quantizes weights`);
    // activations: the method's family and the cheapest (reference) family; every family for mxqn and for bit allocation
    const cheapest = Math.min(...inUse.map((r) => r.cost));
    const actRecs = inUse.filter((r) =>
      r.roles.act && (opts.method === 'mxqn' || opts.targetSqnrDb !== undefined || r.family === opts.method || r.cost === cheapest)
    );
    if (opts.method !== 'mxqn' && !actRecs.some((r) => r.family === opts.method)) {
      throw new Error(`webqat: ptq: method '${opts.method}' has no activation quantizer among ${inUse.map((r) => r.id).join(', ')} (families: ${ptqFamilies().join(', ')})`);
    }
    const candidatesOf = (recs: readonly PtqQuantizerRecord[], maxAbs: number, bits: number, signed: boolean): PtqQuantizer[] =>
      recs.flatMap((r) => r.candidates({ maxAbs, signed }, bits));
    const preferFixedDb = opts.preferFixedDb ?? 0.5;
    const maxBits = opts.maxBits ?? 16;
    model.eval();
    // 1. BN folding, traced on the first calibration batch
    let folded = new Map<string, { bn: string; bias: Tensor }>();
    if (opts.foldBn ?? true) {
      const first = batches()[Symbol.iterator]().next();
      if (first.done) throw new Error('webqat: ptq: calibration needs at least one batch');
      folded = foldBatchNorm(model, first.value);
    }
    const list = targets(model);
    if (!list.length) throw new Error('webqat: ptq: the model has no Conv2d or Linear layer to quantize');
    const quantized = list.map((_, i) =>
      !((i === 0 && opts.quantizeFirst === false) || (i === list.length - 1 && list.length > 1 && opts.quantizeLast === false))
    );
    // 2a. ranges and histograms of each quantized layer's input (pass A)
    const accs: (Acc | null)[] = list.map((_, i) =>
      quantized[i] ? { max: zeros([1]).keep(), min: tensor([3.0e38], [1]).keep(), hist: zeros([PTQ_HISTOGRAM.bins]).keep(), count: 0 } : null
    );
    let calibBatches = 0;
    const ranges: { maxAbs: number; min: number; histogram: number[]; count: number }[] = [];
    try {
      list.forEach(([, l], i) => {
        const a = accs[i];
        if (!a) return;
        const orig = l.forward.bind(l);
        patch(l, (x) => {
          copy_(a.max, maximum(a.max, absMax(x)));
          copy_(a.min, minimum(a.min, reshape(min(x), [1])));
          ptqHistogram_(x, a.hist);
          a.count += x.size;
          return orig(x);
        });
      });
      try {
        calibBatches = runBatches(model, batches);
      } finally {
        list.forEach(([, l], i) => accs[i] && unpatch(l));
      }
      for (const a of accs) {
        ranges.push(a ? { maxAbs: (await readVals(a.max))[0], min: (await readVals(a.min))[0], histogram: await readVals(a.hist), count: a.count } : { maxAbs: 0, min: 0, histogram: [], count: 0 });
      }
    } finally {
      for (const a of accs) if (a) for (const t of [a.max, a.min, a.hist]) t.release('ptq');
    }
    // 2b/3/4. per-layer candidates at the current bits, scored; re-scored when bit allocation raises bits
    const wBits = list.map(() => opts.weightBits);
    const aBits = list.map(() => opts.actBits);
    const wMax: number[] = [];
    for (const [, l] of list) {
      const m = noGrad(() => absMax(l.weight));
      try {
        wMax.push((await readVals(m))[0]);
      } finally {
        m.release('ptq');
      }
    }
    const wScore = async (i: number) => {
      const c = candidatesOf(weightRecs, wMax[i], wBits[i], true);
      return scoreCandidates(c, await weightSums(list[i][1].weight, c));
    };
    const aCands = (i: number, bits = aBits[i]) => {
      const r = ranges[i];
      return candidatesOf(actRecs, r.maxAbs, bits, r.min < 0);
    };
    const wScored: (Scored[] | null)[] = [];
    for (let i = 0; i < list.length; i++) wScored.push(quantized[i] ? await wScore(i) : null);
    const aCandList = list.map((_, i) => (quantized[i] ? aCands(i) : null));
    const aSums = await activationSums(model, list, aCandList, batches);
    const aScored = aCandList.map((c, i) => (c ? scoreCandidates(c, aSums[i]!) : null));
    const pick = (i: number) => chooseActivation(opts.method, aScored[i]!, preferFixedDb);
    const parts = (): AllocPart[] =>
      list.flatMap((_, i) =>
        quantized[i]
          ? [{ layer: i, kind: 'weight' as const, bits: wBits[i], db: searchFrac(wScored[i]!).db }, { layer: i, kind: 'act' as const, bits: aBits[i], db: pick(i).chosen.db }]
          : []
      );
    // 5. bit allocation
    const allocation: PtqResult['allocation'] = [];
    if (opts.targetSqnrDb !== undefined) {
      // Scoring an activation at a new width needs a calibration pass (the model forward over every
      // batch). One pass scores the next width of every quantized layer that lacks it, so a raise
      // usually finds its scores ready: passes ≈ the most raises of one layer, not the raises in all.
      // The sums per layer do not depend on which other layers a pass measures: same plan as one
      // pass per raise, bit for bit.
      const aNext: (Scored[] | null)[] = list.map(() => null);
      const scoreNextWidths = async () => {
        const cands = list.map((_, k) => (quantized[k] && !aNext[k] && aBits[k] < maxBits ? aCands(k, aBits[k] + 1) : null));
        const sums = await activationSums(model, list, cands, batches);
        cands.forEach((c, k) => {
          if (c) aNext[k] = scoreCandidates(c, sums[k]!);
        });
      };
      for (let step = 0; step < 8 * list.length; step++) {
        const w = weakestPart(parts(), opts.targetSqnrDb, maxBits);
        if (!w) break;
        const i = w.layer;
        if (w.kind === 'weight') {
          wBits[i]++;
          wScored[i] = await wScore(i);
        } else {
          if (!aNext[i]) await scoreNextWidths();
          aBits[i]++;
          aScored[i] = aNext[i]!;
          aNext[i] = null;
        }
        allocation.push({ layer: list[i][0], part: w.kind, bits: w.kind === 'weight' ? wBits[i] : aBits[i], networkDb: networkSqnrDb(parts().map((p) => p.db)) });
      }
    }
    const layers: PtqLayer[] = list.map(([name, l], i) => {
      const wq = wScored[i] ? searchFrac(wScored[i]!) : null;
      const choice = aScored[i] ? pick(i) : null;
      return {
        name,
        kind: l instanceof Conv2d ? 'conv' : 'linear',
        index: i,
        quantized: quantized[i],
        foldedBn: folded.get(name)?.bn ?? null,
        weights: l.weight.size,
        weight: wq ? { q: wq.q, db: wq.db, candidates: wScored[i]! } : null,
        act: choice
          ? {
            q: choice.chosen.q,
            db: choice.chosen.db,
            label: ptqRecordOf(choice.chosen.q).label(choice.chosen.q),
            choice,
            candidates: aScored[i]!,
            maxAbs: ranges[i].maxAbs,
            min: ranges[i].min,
            histogram: ranges[i].histogram,
            count: ranges[i].count,
          }
          : null,
      };
    });
    const result: PtqResult = {
      method: opts.method,
      weightBits: opts.weightBits,
      actBits: opts.actBits,
      layers,
      networkSqnrDb: networkSqnrDb(parts().map((p) => p.db)),
      allocation,
      calibBatches,
    };
    const pm = new PtqModel(model, result, folded);
    pm.apply(list);
    return pm;
  }

  /** Patch every layer: quantized ones run Q_A(x) → op(Ŵ); folded ones use their folded bias. */
  private apply(list: [string, Target][]): void {
    list.forEach(([name, l], i) => {
      const plan = this.result.layers[i];
      const bias = this.folded.get(name)?.bias ?? l.bias ?? null;
      const wq = plan.weight?.q;
      const w = wq ? noGrad(() => ptqRecordOf(wq).forward(l.weight, wq)).keep() : l.weight;
      if (wq) this.qWeights.set(name, w);
      const act = plan.act?.q;
      const qa = act ? ptqRecordOf(act) : null;
      const input = (x: Tensor) => (act && qa ? qa.forward(x, act) : x);
      if (l instanceof Conv2d) {
        const o = { stride: l.stride, padding: l.padding, dilation: l.dilation, groups: l.groups };
        patch(l, (x) => conv2d(input(x), w, bias, o));
      } else {
        patch(l, (x) => linear(input(x), w, bias));
      }
    });
  }

  /**
   * The quantized model's tensors by name: each conv/linear `weight` holds its quantized values
   * (exactly k·2^{−f}), `bias` the folded bias; folded BatchNorms are left out.
   */
  stateDict(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    const foldedBns = new Set([...this.folded.values()].map((f) => f.bn));
    for (const [name, t] of this.model.stateDict()) {
      if (!foldedBns.has(name.slice(0, name.lastIndexOf('.')))) out.set(name, t);
    }
    for (const [name, w] of this.qWeights) out.set(`${name}.weight`, w);
    for (const [name, f] of this.folded) out.set(`${name}.bias`, f.bias);
    return out;
  }

  /** Release the quantized weights and folded biases (the model's own tensors stay). */
  release(): void {
    for (const t of this.qWeights.values()) t.release('PtqModel.release()');
    for (const f of this.folded.values()) f.bias.release('PtqModel.release()');
    this.qWeights.clear();
    this.folded.clear();
  }
}

/** The per-layer table's activation columns: the default quantizer records, then any other record a layer scored. */
export function ptqActColumns(r: PtqResult): PtqQuantizerRecord[] {
  const used = new Set(r.layers.flatMap((l) => (l.act ? l.act.candidates.map((c) => ptqRecordOf(c.q)) : [])));
  return ptqQuantizers().filter((q) => q.roles.act && (q.default || used.has(q)));
}

/** Top-1 accuracy of a model on (input, label) batches, counted on the GPU (one readback). */
export async function ptqAccuracy(model: Module, batches: Iterable<{ x: Tensor; y: Tensor }>): Promise<{ acc: number; n: number }> {
  const correct = zeros([1]).keep();
  let n = 0;
  model.eval();
  try {
    for (const b of batches) {
      noGrad(() => {
        beginScope('ptq eval');
        try {
          copy_(correct, add(correct, reshape(accuracyCount(model.call(b.x), b.y), [1])));
        } finally {
          endScope();
        }
      });
      n += b.y.size;
    }
    const c = (await readVals(correct))[0];
    return { acc: n ? c / n : 0, n };
  } finally {
    correct.release('ptq');
  }
}
