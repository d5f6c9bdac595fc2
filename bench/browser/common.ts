/**
 * The cross-library benchmark suite shared by every page (and by the Deno runner): benchmark
 * definitions, synthetic data (fixed seeds, identical bytes for every library), the timing loop and
 * the page-side protocol the Playwright driver (bench/browser/run.mjs) talks to.
 *
 * Every timed step ends with a readback of its result (the loss of a training step, the product of
 * the matmul) through the library's own asynchronous read: the clock stops only after the GPU has
 * finished that step. Each library's `Runner.step()` documents exactly what it awaits.
 */

import { mulberry32 } from '../../src/data/dataset.ts';
export type TrainBenchName = 'matmul' | 'mlp' | 'lenet5' | 'resnet20' | 'sspq20';
/** Inference benchmarks (forward only, batch 1 and 64): see INFER below. */
export type InferBenchName = 'infer-lenet5' | 'infer-sspq20';
export type BenchName = TrainBenchName | InferBenchName;

export interface BenchDef {
  name: TrainBenchName;
  title: string;
  /** input shape of one sample (CHW) or, for matmul, [M, K, N] */
  shape: number[];
  batch: number;
  classes: number;
}

export const BENCHES: Record<TrainBenchName, BenchDef> = {
  matmul: { name: 'matmul', title: 'matmul 1024x1024x1024 (f32)', shape: [1024, 1024, 1024], batch: 1, classes: 0 },
  mlp: { name: 'mlp', title: 'MLP 784-256-128-10, batch 128, train step', shape: [1, 28, 28], batch: 128, classes: 10 },
  lenet5: { name: 'lenet5', title: 'LeNet-5, batch 64 (1x28x28), train step', shape: [1, 28, 28], batch: 64, classes: 10 },
  resnet20: { name: 'resnet20', title: 'ResNet-20 (option B), batch 32 (3x32x32), train step', shape: [3, 32, 32], batch: 32, classes: 10 },
  sspq20: { name: 'sspq20', title: 'SSPQ20 (W1A4), batch 32 (3x32x32), train step', shape: [3, 32, 32], batch: 32, classes: 10 },
};

/** Run order inside a page: the goal benchmarks and the cheap ones first, so a time budget cuts the costly tail. */
export const BENCH_ORDER: BenchName[] = ['lenet5', 'mlp', 'matmul', 'infer-lenet5', 'infer-sspq20', 'resnet20', 'sspq20'];

export const isInfer = (name: string): name is InferBenchName => name === 'infer-lenet5' || name === 'infer-sspq20';


/** The optimizer every library uses: SGD with (heavy-ball) momentum, no weight decay. */
export const OPTIM = { kind: 'sgd-momentum', lr: 0.01, momentum: 0.9 } as const;

/** Synthetic inputs: NCHW float32 in [-1, 1) and int labels in [0, classes), from a fixed seed. */
export interface BenchData {
  def: BenchDef;
  /** NCHW for models; for matmul: A [M, K] */
  x: Float32Array<ArrayBuffer>;
  /** labels (models) */
  y: Int32Array<ArrayBuffer>;
  /** matmul: B [K, N] */
  b?: Float32Array<ArrayBuffer>;
}

export { mulberry32 };

function randomArray(n: number, seed: number): Float32Array<ArrayBuffer> {
  const r = mulberry32(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = r() * 2 - 1;
  return out;
}

export function makeData(name: TrainBenchName): BenchData {
  const def = BENCHES[name];
  if (name === 'matmul') {
    const [m, k, n] = def.shape;
    return { def, x: randomArray(m * k, 11), b: randomArray(k * n, 12), y: new Int32Array(0) };
  }
  const per = def.shape.reduce((a, b) => a * b, 1);
  const x = randomArray(def.batch * per, 21);
  const r = mulberry32(22);
  const y = new Int32Array(def.batch);
  for (let i = 0; i < def.batch; i++) y[i] = Math.floor(r() * def.classes);
  return { def, x, y };
}

/** NCHW -> NHWC (TF.js works channels-last). */
export function toNHWC(x: Float32Array, n: number, c: number, h: number, w: number): Float32Array<ArrayBuffer> {
  const out = new Float32Array(x.length);
  for (let i = 0; i < n; i++) {
    for (let ch = 0; ch < c; ch++) {
      for (let yy = 0; yy < h; yy++) {
        for (let xx = 0; xx < w; xx++) out[((i * h + yy) * w + xx) * c + ch] = x[((i * c + ch) * h + yy) * w + xx];
      }
    }
  }
  return out;
}

/** One prepared benchmark in one library. */
export interface Runner {
  /** Run one step and await its readback; resolves to the loss (training) or a checksum value (matmul). */
  step(): Promise<number>;
  dispose(): void;
  /** parameters of the model (0 for matmul) */
  parameters: number;
  /** anything the reader must know (layout, substitutions) */
  notes?: string;
  /** library-specific figures read after the run (webqat: pipelines per tier, autotuning) */
  stats?(): Record<string, unknown>;
  /**
   * Work done once after the first step and before the warm-up steps (webqat: time the kernel shapes
   * it met, wait for the tier-2 compiles). Timed on its own (`afterFirstMs`): it is neither in the
   * first step nor in page load -> first step, which ends when the first loss has been read back.
   */
  afterFirstStep?(): Promise<void>;
}

export interface LibInfo {
  library: string;
  version: string;
  backend: string;
  adapter: Record<string, unknown>;
  /** how the clock is stopped, in words */
  clock: string;
}

export interface Suite {
  library: string;
  /** acquire the device / start the backend */
  init(): Promise<LibInfo>;
  /** build the model, optimizer and data on the device; throws NotAvailable when the library cannot */
  prepare(data: BenchData): Promise<Runner>;
  /** inference: the forward pass of `data.def.model` at `data.batch`, one call = upload, forward, readback of the logits */
  prepareInfer?(data: InferData, variant: InferVariant): Promise<Runner>;
  /** the inference variants this library runs (default ['float']) */
  inferVariants?: InferVariant[];
}

export class NotAvailable extends Error {}

export interface BenchOptions {
  /** timed steps (each one a sample) */
  steps: number;
  /** untimed steps after the first (their times are kept apart as `warmupMs`) */
  warmup: number;
  /** stop timing once a single step after the first takes longer than this */
  capMs: number;
  /** milliseconds this benchmark may still use (no new step starts that would overrun it) */
  budgetMs?: number;
}

export interface BenchResult {
  library: string;
  bench: BenchName;
  status: 'ok' | 'capped' | 'budget' | 'not-available' | 'error' | 'skipped' | 'timeout';
  reason?: string;
  parameters?: number;
  notes?: string;
  /** build time (model + optimizer + data upload), ms */
  prepareMs?: number;
  /** first step, pipeline/shader compilation included, ms */
  firstMs?: number;
  /** Runner.afterFirstStep (webqat: tuning and waiting for tier 2), ms */
  afterFirstMs?: number;
  /** the untimed warm-up steps, ms */
  warmupMs?: number[];
  /** every timed step, ms */
  samples: number[];
  /** library-specific figures (webqat: pipelines compiled per tier, autotune keys and time) */
  stats?: Record<string, unknown>;
  /** loss (or matmul checksum) after the first and the last step: proof the work ran */
  firstValue?: number;
  lastValue?: number;
  /** inference benchmarks: one entry per variant × batch (the benchmark's own `samples` stay empty) */
  rows?: InferRow[];
}

const now = () => performance.now();

/**
 * First step (compilation included), `warmup` steps, then `steps` timed steps, each ended by the
 * library's readback. A step slower than `capMs` ends the benchmark (status 'capped'); when the
 * warm-up step is already over the cap it is kept as the one sample (its compilation was done by
 * the first step). No step starts that the remaining budget cannot pay for (status 'budget').
 */
export async function runBench(suite: Suite, name: TrainBenchName, o: BenchOptions, log: (s: string) => void = () => {}): Promise<BenchResult> {
  const res: BenchResult = { library: suite.library, bench: name, status: 'ok', samples: [], warmupMs: [] };
  const end = now() + (o.budgetMs ?? Infinity);
  let runner: Runner | null = null;
  const sec = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
  try {
    const data = makeData(name);
    let t = now();
    runner = await suite.prepare(data);
    res.prepareMs = now() - t;
    res.parameters = runner.parameters;
    if (runner.notes) res.notes = runner.notes;
    t = now();
    res.firstValue = await runner.step();
    res.firstMs = now() - t;
    log(`${suite.library} ${name}: first step ${res.firstMs.toFixed(0)} ms`);
    if (runner.afterFirstStep) {
      t = now();
      await runner.afterFirstStep();
      res.afterFirstMs = now() - t;
      log(`${suite.library} ${name}: after the first step (tuning, tier-2 compiles) ${res.afterFirstMs.toFixed(0)} ms`);
    }
    let last = res.firstMs;
    for (let i = 0; i < o.warmup; i++) {
      if (now() + last > end) {
        res.status = 'budget';
        res.reason = `time budget: no room for a step after the first (${sec(res.firstMs)})`;
        return res;
      }
      t = now();
      await runner.step();
      last = now() - t;
      res.warmupMs!.push(last);
      if (last > o.capMs) {
        res.samples.push(last);
        res.status = 'capped';
        res.reason = `a step after the first took ${sec(last)} (> ${sec(o.capMs)} cap); kept as the one sample`;
        return res;
      }
    }
    for (let i = 0; i < o.steps; i++) {
      if (now() + last > end) {
        res.status = 'budget';
        res.reason = `time budget: stopped after ${res.samples.length} of ${o.steps} timed steps`;
        break;
      }
      t = now();
      res.lastValue = await runner.step();
      last = now() - t;
      res.samples.push(last);
      if (last > o.capMs && i < o.steps - 1) {
        res.status = 'capped';
        res.reason = `a step took ${sec(last)} (> ${sec(o.capMs)} cap); stopped after ${i + 1} sample(s)`;
        break;
      }
    }
    log(`${suite.library} ${name}: ${res.samples.map((x) => x.toFixed(1)).join(' ')} ms`);
    if (runner.stats) {
      res.stats = runner.stats();
      log(`${suite.library} ${name}: ${JSON.stringify(res.stats)}`);
    }
  } catch (e) {
    if (e instanceof NotAvailable) {
      res.status = 'not-available';
      res.reason = e.message;
    } else {
      res.status = 'error';
      res.reason = String((e as Error)?.stack ?? e).split('\n').slice(0, 4).join(' | ');
    }
  } finally {
    try {
      runner?.dispose();
    } catch {
      /* a failed dispose must not hide the figures */
    }
  }
  return res;
}

// ------------------------------------------------------------------------------------ inference

/**
 * Inference benchmarks: the forward pass of a model from host pixels to host logits (input upload,
 * every layer, readback of the [batch, classes] logits), at batch 1 and batch 64. webqat runs two
 * variants: `packed` (loadPacked of a packed file exported in the page at the start of the
 * benchmark from the quantized model, src/infer) and `float` (the same quantized model with its
 * quantizers, in eval mode: the training-side model, quantized weights cached). TF.js and jax-js run
 * `float`: the same architecture with ordinary float weights (LeNet-5) or with the quantizers
 * written out as float ops (SSPQ20: binarized 1x1 weights precomputed, DoReFa-4 activations,
 * inference batch norm, the shift as a depthwise 3x3 conv).
 * Weights are random (fixed seeds, no training): timing does not depend on their values.
 */
export type InferVariant = 'packed' | 'float';

export interface InferDef {
  name: InferBenchName;
  model: 'lenet5' | 'sspq20';
  title: string;
  /** one sample, CHW */
  shape: [number, number, number];
  classes: number;
  batches: number[];
  /** webqat's quantizer (--quant spec for quantizeModel, or the SSPQ model options) */
  quant: string;
}

export const INFER: Record<InferBenchName, InferDef> = {
  'infer-lenet5': { name: 'infer-lenet5', model: 'lenet5', title: 'LeNet-5 inference (1x28x28)', shape: [1, 28, 28], classes: 10, batches: [1, 64], quant: 'bwn' },
  'infer-sspq20': { name: 'infer-sspq20', model: 'sspq20', title: 'SSPQ20 W1A4 inference (3x32x32)', shape: [3, 32, 32], classes: 10, batches: [1, 64], quant: 'dorefa:w1a4' },
};

/** Timed calls at batch 1 per timed call at the largest batch (one call there is short). */
export const SMALL_BATCH_STEPS = 4;

export interface InferData {
  def: InferDef;
  batch: number;
  /** NCHW float32 in [0, 1), fixed seed (the first `batch` samples of one 64-sample set) */
  x: Float32Array<ArrayBuffer>;
}

export function makeInferData(name: InferBenchName, batch: number): InferData {
  const def = INFER[name];
  const per = def.shape[0] * def.shape[1] * def.shape[2];
  const r = mulberry32(31);
  const all = new Float32Array(64 * per);
  for (let i = 0; i < all.length; i++) all[i] = r();
  return { def, batch, x: all.slice(0, batch * per) };
}

/** One timed variant × batch of an inference benchmark. */
export interface InferRow {
  variant: InferVariant;
  batch: number;
  /** `${variant} b${batch}` */
  key: string;
  status: BenchResult['status'];
  reason?: string;
  notes?: string;
  prepareMs?: number;
  firstMs?: number;
  /** Runner.afterFirstStep (webqat float: waiting for the tier-2 kernels), ms, not in firstMs */
  afterFirstMs?: number;
  warmupMs: number[];
  samples: number[];
  /** sum of the first sample's logits after the first and the last call: proof the work ran */
  firstValue?: number;
  lastValue?: number;
  stats?: Record<string, unknown>;
}

/**
 * Every variant × batch of one inference benchmark, interleaved: prepare all, one first call each
 * (compilation), `warmup` calls each, then timed calls in turn (packed b1, packed b64, float b1, ...),
 * each call timed alone and ended by the readback of its logits. Batch 1 gets SMALL_BATCH_STEPS
 * times `steps` calls. A row whose call exceeds capMs stops (status 'capped'); no call starts that
 * the budget cannot pay for.
 */
export async function runInfer(suite: Suite, name: InferBenchName, o: BenchOptions, log: (s: string) => void = () => {}): Promise<BenchResult> {
  const res: BenchResult = { library: suite.library, bench: name, status: 'ok', samples: [], rows: [] };
  const end = now() + (o.budgetMs ?? Infinity);
  const def = INFER[name];
  if (!suite.prepareInfer) {
    res.status = 'not-available';
    res.reason = `${suite.library}: no inference runner`;
    return res;
  }
  const live: { row: InferRow; runner: Runner | null; last: number; want: number; open: boolean }[] = [];
  try {
    for (const variant of suite.inferVariants ?? ['float']) {
      for (const batch of def.batches) {
        const row: InferRow = { variant, batch, key: `${variant} b${batch}`, status: 'ok', warmupMs: [], samples: [] };
        res.rows!.push(row);
        const want = batch === Math.min(...def.batches) && def.batches.length > 1 ? o.steps * SMALL_BATCH_STEPS : o.steps;
        const l = { row, runner: null as Runner | null, last: 0, want, open: true };
        live.push(l);
        try {
          if (now() > end) throw new BudgetSpent('time budget spent before this row was prepared');
          const t = now();
          l.runner = await suite.prepareInfer(makeInferData(name, batch), variant);
          row.prepareMs = now() - t;
          if (l.runner.notes) row.notes = l.runner.notes;
          const t1 = now();
          row.firstValue = await l.runner.step();
          row.firstMs = l.last = now() - t1;
          if (l.runner.afterFirstStep) {
            const t2 = now();
            await l.runner.afterFirstStep();
            row.afterFirstMs = now() - t2;
          }
          log(`${suite.library} ${name} ${row.key}: prepare ${row.prepareMs.toFixed(0)} ms, first call ${row.firstMs.toFixed(0)} ms`);
        } catch (e) {
          closeRow(l, e);
        }
      }
    }
    for (let w = 0; w < o.warmup; w++) {
      for (const l of live.filter((x) => x.open)) {
        if (now() + l.last > end) {
          closeRow(l, new BudgetSpent(`time budget: no room for a call after the first (${l.last.toFixed(0)} ms)`));
          continue;
        }
        const t = now();
        try {
          await l.runner!.step();
        } catch (e) {
          closeRow(l, e);
          continue;
        }
        l.last = now() - t;
        l.row.warmupMs.push(l.last);
      }
    }
    for (let i = 0; live.some((l) => l.open && l.row.samples.length < l.want); i++) {
      for (const l of live.filter((x) => x.open && x.row.samples.length < x.want)) {
        if (now() + l.last > end) {
          closeRow(l, new BudgetSpent(`time budget: stopped after ${l.row.samples.length} of ${l.want} timed calls`));
          continue;
        }
        const t = now();
        try {
          l.row.lastValue = await l.runner!.step();
        } catch (e) {
          closeRow(l, e);
          continue;
        }
        l.last = now() - t;
        l.row.samples.push(l.last);
        if (l.last > o.capMs && l.row.samples.length < l.want) {
          l.row.status = 'capped';
          l.row.reason = `a call took ${(l.last / 1000).toFixed(1)} s (> ${(o.capMs / 1000).toFixed(1)} s cap); stopped after ${l.row.samples.length} sample(s)`;
          l.open = false;
        }
      }
    }
    for (const l of live) {
      if (l.runner?.stats) l.row.stats = l.runner.stats();
      log(`${suite.library} ${name} ${l.row.key}: ${l.row.status} [${l.row.samples.map((x) => x.toFixed(1)).join(' ')}] ms`);
    }
  } finally {
    for (const l of live) {
      try {
        l.runner?.dispose();
      } catch {
        /* a failed dispose must not hide the figures */
      }
    }
  }
  // the benchmark's status: ok when every row is; else the first other status
  res.status = res.rows!.find((r) => r.status !== 'ok')?.status ?? 'ok';
  return res;
}

class BudgetSpent extends Error {}

function closeRow(l: { row: InferRow; open: boolean }, e: unknown): void {
  l.open = false;
  if (e instanceof BudgetSpent) {
    l.row.status = 'budget';
    l.row.reason = e.message;
  } else if (e instanceof NotAvailable) {
    l.row.status = 'not-available';
    l.row.reason = e.message;
  } else {
    l.row.status = 'error';
    l.row.reason = String((e as Error)?.stack ?? e).split('\n').slice(0, 4).join(' | ');
  }
}

/** Sum of the first `classes` values (the first sample's logits): the check value of an inference call. */
export function checkValue(logits: ArrayLike<number>, classes: number): number {
  let s = 0;
  for (let i = 0; i < classes; i++) s += Number(logits[i]);
  return s;
}

/** Page load -> first LeNet-5 step: the milestones, each in ms since navigation start. */
export interface LoadTiming {
  library: string;
  /** the entry module started running (bundle fetched, parsed, evaluated) */
  scriptStartMs: number;
  /** device / backend ready */
  initDoneMs: number;
  /** LeNet-5, optimizer and a batch on the device */
  modelReadyMs: number;
  /** the first training step's loss has been read back */
  firstStepMs: number;
  loss: number;
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * The page side: measure page load -> first LeNet-5 step at once (the clock is the page's own,
 * started by the navigation), then wait for the driver's `__bench.run(...)` calls.
 */
export async function startPage(suite: Suite): Promise<void> {
  const scriptStartMs = now();
  const w = globalThis as unknown as { __bench: unknown; __benchReady: Promise<unknown> };
  const status = (s: string) => {
    const el = document.getElementById('status');
    if (el) el.textContent = s;
  };
  let info: LibInfo | null = null;
  const ready = (async () => {
    info = await suite.init();
    const initDoneMs = now();
    const runner = await suite.prepare(makeData('lenet5'));
    const modelReadyMs = now();
    const loss = await runner.step();
    const firstStepMs = now();
    runner.dispose();
    const load: LoadTiming = { library: suite.library, scriptStartMs, initDoneMs, modelReadyMs, firstStepMs, loss };
    status(`${suite.library}: first LeNet-5 step done ${firstStepMs.toFixed(0)} ms after navigation`);
    return { info, load };
  })();
  w.__benchReady = ready.catch((e) => ({ error: String((e as Error)?.stack ?? e) }));
  w.__bench = {
    run: (name: BenchName, o: BenchOptions) => (isInfer(name) ? runInfer(suite, name, o, (s) => console.log(s)) : runBench(suite, name, o, (s) => console.log(s))),
  };
}
