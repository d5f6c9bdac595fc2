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
export type BenchName = 'matmul' | 'mlp' | 'lenet5' | 'resnet20' | 'sspq20';

export interface BenchDef {
  name: BenchName;
  title: string;
  /** input shape of one sample (CHW) or, for matmul, [M, K, N] */
  shape: number[];
  batch: number;
  classes: number;
}

export const BENCHES: Record<BenchName, BenchDef> = {
  matmul: { name: 'matmul', title: 'matmul 1024x1024x1024 (f32)', shape: [1024, 1024, 1024], batch: 1, classes: 0 },
  mlp: { name: 'mlp', title: 'MLP 784-256-128-10, batch 128, train step', shape: [1, 28, 28], batch: 128, classes: 10 },
  lenet5: { name: 'lenet5', title: 'LeNet-5, batch 64 (1x28x28), train step', shape: [1, 28, 28], batch: 64, classes: 10 },
  resnet20: { name: 'resnet20', title: 'ResNet-20 (option B), batch 32 (3x32x32), train step', shape: [3, 32, 32], batch: 32, classes: 10 },
  sspq20: { name: 'sspq20', title: 'SSPQ20 (W1A4), batch 32 (3x32x32), train step', shape: [3, 32, 32], batch: 32, classes: 10 },
};

/** Run order inside a page: the goal benchmarks and the cheap ones first, so a time budget cuts the costly tail. */
export const BENCH_ORDER: BenchName[] = ['lenet5', 'mlp', 'matmul', 'resnet20', 'sspq20'];

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

export function makeData(name: BenchName): BenchData {
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
  /** the untimed warm-up steps, ms */
  warmupMs?: number[];
  /** every timed step, ms */
  samples: number[];
  /** library-specific figures (webqat: pipelines compiled per tier, autotune keys and time) */
  stats?: Record<string, unknown>;
  /** loss (or matmul checksum) after the first and the last step: proof the work ran */
  firstValue?: number;
  lastValue?: number;
}

const now = () => performance.now();

/**
 * First step (compilation included), `warmup` steps, then `steps` timed steps, each ended by the
 * library's readback. A step slower than `capMs` ends the benchmark (status 'capped'); when the
 * warm-up step is already over the cap it is kept as the one sample (its compilation was done by
 * the first step). No step starts that the remaining budget cannot pay for (status 'budget').
 */
export async function runBench(suite: Suite, name: BenchName, o: BenchOptions, log: (s: string) => void = () => {}): Promise<BenchResult> {
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
    run: (name: BenchName, o: BenchOptions) => runBench(suite, name, o, (s) => console.log(s)),
  };
}
