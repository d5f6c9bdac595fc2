/**
 * The kernel autotuner (Burn's model): which variant of a heavy kernel runs is data, not code.
 *
 * A kernel family (conv forward, conv data gradient, matmul, fused shift·1x1, ...) declares, next to
 * its kernels, a `TuneFamily`:
 *  - `candidates(gpu, shape)`: the variants that apply to this shape and fit the device;
 *  - `shapeClass(shape)`: a bucketed description of the shape. The tune key is
 *    `family|shapeClass`, stored per adapter identity and webqat version;
 *  - `generic(gpu, shape)`: the variant that runs when tuning is off or before the key is measured;
 *  - `quick(gpu, shape)` (optional): tier 1 of tiered compilation, a kernel that compiles quickly
 *    and runs while the picked variant's pipelines compile in the background;
 *  - `bench(gpu, shape)`: scratch buffers of that shape and a function that encodes one launch of a
 *    variant on them, so candidates can be timed without touching the caller's tensors.
 *
 * `pick(family, shape)` returns, in order: a variant forced by a test or benchmark, the cached winner
 * of this adapter, the shipped default table's entry (measured on the adapters we can run: see
 * tune-defaults.ts), the generic variant. With policy 'full', a key found in neither cache is queued,
 * and `tune()` (called by the Trainer at a step boundary, or by the user) times its candidates on
 * this adapter: GPU timestamps when the device has 'timestamp-query', else a readback-fenced wall
 * clock. Compile time is measured too (the first launch minus a steady one) and counted in the score
 * (amortised over `AMORTISE` launches). Winners are saved to the cache (a JSON file under the user's
 * cache folder in Deno/Node, IndexedDB in the browser: src/platform/store.ts).
 *
 * Policies (`WEBQAT_TUNE=off|cache|full`, or `init({ tune })`):
 *  - 'off':   the generic variant only; no cache, no shipped table, no timing (reproducible);
 *  - 'cache': cache, then shipped table, then generic; never times;
 *  - 'full':  as 'cache', and unknown keys are timed at the next `tune()` (the default).
 */
import { getEnv, loadStore, saveStore } from '../platform/store.ts';
import type { Gpu } from './context.ts';
import { VERSION } from '../version.ts';
import { SHIPPED } from './tune-defaults.ts';

export type TunePolicy = 'off' | 'cache' | 'full';

/** A measured candidate set for one key. */
export interface TuneEntry {
  /** the winner */
  variant: string;
  /** steady-state ms per launch of each candidate */
  ms: Record<string, number>;
  /** compile (first-launch overhead) ms of each candidate */
  compileMs?: Record<string, number>;
  /** 'timestamp' (GPU timestamp queries) or 'wall' (readback-fenced wall clock) */
  clock?: 'timestamp' | 'wall';
  /** candidates not timed, and why (a compile that ran past its budget): never picked, never retried */
  skipped?: Record<string, string>;
}

export interface TuneBench {
  /** encode one launch of `variant` on the scratch buffers */
  run(variant: string): void;
  /** release the scratch buffers */
  dispose(): void;
}

export interface TuneFamily<S> {
  readonly name: string;
  candidates(gpu: Gpu, shape: S): readonly string[];
  shapeClass(shape: S): string;
  generic(gpu: Gpu, shape: S): string;
  /**
   * Tier 1 (optional): a variant that compiles quickly (no unrolled register blocks) and is not
   * much slower, or null where there is none for this shape. Until the picked variant's pipelines
   * are compiled, this one runs and they compile in the background.
   */
  quick?(gpu: Gpu, shape: S): string | null;
  bench(gpu: Gpu, shape: S): TuneBench;
}


/**
 * Compile budget of a candidate while tuning: at least `COMPILE_FLOOR_MS`, or `COMPILE_RATIO` times the
 * quickest compile of the key so far. Some compilers take minutes (and gigabytes) on a particular
 * unrolled kernel (SwiftShader on the stride-2 row kernel); such a candidate is skipped, not waited for.
 */
export const COMPILE_FLOOR_MS = 20_000;
export const COMPILE_RATIO = 20;

/** Whether `p` settles within `ms` (it is not cancelled: a compile cannot be). */
async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<boolean>((res) => { timer = setTimeout(() => res(false), Math.min(ms, 2 ** 31 - 1)); });
  try {
    return await Promise.race([p.then(() => true), late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Launches over which a candidate's compile time is spread when scores are compared. */
export const AMORTISE = 1000;
const STORE = 'tune';
/** Tier-2 pipelines compiled in the background at once. */
const MAX_BACKGROUND = 2;
const FORMAT = 'webqat-tune';

interface Job {
  family: TuneFamily<unknown>;
  shape: unknown;
  key: string;
}

export interface TuneReport {
  keys: number;
  candidates: number;
  ms: number;
  clock: 'timestamp' | 'wall' | 'none';
}

/** Policy from the environment (`WEBQAT_TUNE`), default 'full'. Throws on an unknown value. */
export function policyFromEnv(): TunePolicy | undefined {
  const v = getEnv('WEBQAT_TUNE');
  if (v === undefined || v === '') return undefined;
  if (v === 'off' || v === 'cache' || v === 'full') return v;
  throw new Error(`webqat: WEBQAT_TUNE must be off, cache or full, got '${v}'`);
}

const now = () => (typeof performance !== 'undefined' ? performance.now() : Date.now());
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

export class Tuner {
  /** winners measured on this adapter (from the cache file and this process) */
  private table = new Map<string, TuneEntry>();
  private queue = new Map<string, Job>();
  private forced = new Map<string, string>();
  private loaded: Promise<void> | null = null;
  /** what the cache load said (for messages and tests) */
  cacheWhere = '';
  cacheWarning: string | null = null;
  /** figures of this process: keys timed, candidate launches timed, ms spent */
  readonly stats = {
    tunedKeys: 0, timedCandidates: 0, tuneMs: 0, cacheHits: 0, shippedHits: 0, genericPicks: 0,
    /** launches served by a tier-1 (quick) variant while the picked one compiled */
    quickPicks: 0,
    /** pipelines compiled in the background for tier 2, and the ms from the first request until all were ready */
    tier2Pipelines: 0, tier2Ms: 0,
  };
  /** tiered compilation (off with policy 'off'): see `TuneFamily.quick` */
  tiered = true;
  private ready = new Set<string>();
  private inflight = new Set<Promise<unknown>>();
  private tier2Start = 0;
  private deferred = new Map<string, () => string>();
  /** use the shipped default table (bench/tune.ts turns it off to measure every key) */
  useShipped = true;
  /** families whose shipped winners are ignored (timed again with policy 'full'): `npm run tune -- --families` */
  retune: ReadonlySet<string> | null = null;
  /** A candidate's compile budget while tuning, from the quickest compile of the key so far (0: never wait). */
  compileBudget = (quickestMs: number): number => Math.max(COMPILE_FLOOR_MS, Number.isFinite(quickestMs) ? COMPILE_RATIO * quickestMs : 0);
  /** pick log: key -> variant used (for reports) */
  readonly picks = new Map<string, string>();

  constructor(
    private readonly gpu: Gpu,
    /** the policy (tests switch it to 'off' to pin the generic kernels) */
    public policy: TunePolicy = 'full',
    private readonly warn: (m: string) => void = (m) => console.warn(m),
    /** the store's name (a file `NAME.json` in the cache folder; tests use their own) */
    readonly store = STORE,
  ) {}

  /** The cache's slot for this adapter and this webqat version. */
  get slot(): string {
    return `${VERSION}|${this.gpu.adapterId}`;
  }

  /** Read the cache (once). A corrupt or foreign file is ignored with a warning. */
  load(): Promise<void> {
    if (this.policy === 'off') return Promise.resolve();
    this.loaded ??= (async () => {
      const { text, where, error } = await loadStore(this.store);
      this.cacheWhere = where;
      if (error) this.cacheWarning = `webqat: the kernel tune cache ${where} cannot be read (${error}); ignoring it`;
      else if (text !== null) {
        const slot = parseCache(text, this.slot);
        if (typeof slot === 'string') this.cacheWarning = `webqat: ignoring the kernel tune cache ${where}: ${slot}`;
        else for (const [k, e] of Object.entries(slot)) this.table.set(k, e);
      }
      if (this.cacheWarning) this.warn(this.cacheWarning);
    })();
    return this.loaded;
  }

  /** Forget the loaded cache entries (re-measure everything this process meets; bench/tune.ts). */
  ignoreCache(): void {
    this.table.clear();
  }

  /** Force a family's variant (tests, benchmarks); null restores the tuned choice. */
  force(family: string, variant: string | null): void {
    if (variant === null) this.forced.delete(family);
    else this.forced.set(family, variant);
  }

  forcedVariant(family: string): string | undefined {
    return this.forced.get(family);
  }

  /**
   * Whether the shipped table excludes a variant on this adapter class: entries `family:variant`
   * (everywhere) or `family:variant@prefix` (shape classes starting with `prefix`).
   */
  excluded(family: string, variant: string, shapeClass?: string): boolean {
    const ex = SHIPPED[this.gpu.adapterClass]?.exclude;
    if (!ex) return false;
    const id = `${family}:${variant}`;
    return ex.some((e) => {
      const at = e.indexOf('@');
      if (at < 0) return e === id;
      return e.slice(0, at) === id && (shapeClass === undefined || shapeClass.startsWith(e.slice(at + 1)));
    });
  }

  /** A family's candidates for a shape on this adapter (minus the shipped table's exclusions). */
  candidates<S>(family: TuneFamily<S>, shape: S): string[] {
    const cls = family.shapeClass(shape);
    return family.candidates(this.gpu, shape).filter((v) => !this.excluded(family.name, v, cls));
  }

  /** The variant to launch for this shape. */
  pick<S>(family: TuneFamily<S>, shape: S): string {
    const cands = this.candidates(family, shape);
    const f = this.forced.get(family.name);
    if (f !== undefined) {
      if (!cands.includes(f)) {
        throw new Error(`webqat: ${family.name}: forced variant '${f}' does not apply here (candidates: ${cands.join(', ')})`);
      }
      return f;
    }
    const key = `${family.name}|${family.shapeClass(shape)}`;
    let v: string | undefined;
    if (this.policy !== 'off') {
      const e = this.table.get(key);
      if (e && cands.includes(e.variant)) {
        v = e.variant;
        this.stats.cacheHits++;
      } else {
        const s = this.useShipped && !this.retune?.has(family.name) ? SHIPPED[this.gpu.adapterClass]?.winners[key] : undefined;
        if (s && cands.includes(s)) {
          v = s;
          this.stats.shippedHits++;
        } else if (this.policy === 'full' && cands.length > 1 && !this.queue.has(key)) {
          this.queue.set(key, { family: family as TuneFamily<unknown>, shape, key });
        }
      }
    }
    if (v === undefined) {
      v = family.generic(this.gpu, shape);
      // the generic choice is excluded here (e.g. a kernel this adapter compiles for minutes): first candidate
      if (!cands.includes(v)) v = cands[0];
      this.stats.genericPicks++;
    }
    if (this.tiered && this.policy !== 'off' && family.quick && !this.gpu.isCollecting) v = this.tier(family, shape, key, v, cands);
    this.picks.set(key, v);
    return v;
  }

  /**
   * Tiered compilation: `v` runs only once its pipelines are compiled; until then the family's quick
   * variant runs and `v`'s pipelines compile in the background (createComputePipelineAsync).
   */
  private tier<S>(family: TuneFamily<S>, shape: S, key: string, v: string, cands: readonly string[]): string {
    const q = family.quick!(this.gpu, shape);
    if (q === null || q === v || !cands.includes(q)) return v;
    const rk = `${key}|${v}|${JSON.stringify(shape)}`;
    if (this.ready.has(rk)) return v;
    const todo = this.gpu.collect(() => {
      const b = family.bench(this.gpu, shape);
      try {
        b.run(v);
      } finally {
        b.dispose();
      }
    });
    if (todo.size === 0) {
      this.ready.add(rk);
      return v;
    }
    // compiled after the step's readback (`kick`), so tier 2 does not compete with the first step
    for (const [k, code] of todo) if (!this.gpu.isCompiling(k)) this.deferred.set(k, code);
    this.stats.quickPicks++;
    return q;
  }

  /**
   * Start compiling the deferred tier-2 pipelines in the background (createComputePipelineAsync).
   * Called when a readback completes (the step that needed them has run on tier 1) and by `settle`.
   */
  kick(): void {
    if (this.deferred.size === 0) return;
    if (this.inflight.size === 0) this.tier2Start = now();
    // a few at a time: on a CPU adapter every compile takes a core and memory, and the steps go on
    while (this.inflight.size < MAX_BACKGROUND && this.deferred.size > 0) {
      const [k, code] = this.deferred.entries().next().value as [string, () => string];
      this.deferred.delete(k);
      if (this.gpu.isCompiling(k)) continue;
      this.stats.tier2Pipelines++;
      const done = () => {
        this.inflight.delete(p);
        if (this.inflight.size === 0 && this.deferred.size === 0) this.stats.tier2Ms += now() - this.tier2Start;
        this.kick();
      };
      const p: Promise<unknown> = this.gpu.compileAsync(k, code).then(done, (e) => {
        this.warn(`webqat: background compilation of ${k} failed: ${(e as Error).message}`);
        done();
      });
      this.inflight.add(p);
    }
  }

  /** Pipelines still compiling in the background (tier 2). */
  get compiling(): number {
    return this.inflight.size + this.deferred.size;
  }

  /** Resolve once every background compilation has finished (benchmarks: time the steady state). */
  async settle(): Promise<void> {
    this.kick();
    while (this.inflight.size > 0 || this.deferred.size > 0) {
      if (this.inflight.size === 0) this.kick();
      await Promise.all([...this.inflight]);
    }
  }

  /** Keys waiting to be timed. */
  get pending(): number {
    return this.queue.size;
  }

  /** The measured (or loaded) entry of a key. */
  entry(key: string): TuneEntry | undefined {
    return this.table.get(key);
  }

  /** Every measured or cached entry of this adapter. */
  entries(): Record<string, TuneEntry> {
    return Object.fromEntries(this.table);
  }

  /**
   * Time the candidates of every queued key on this adapter, keep the winners and save the cache.
   * Call it at a step boundary (nothing else may be encoding).
   */
  async tune(): Promise<TuneReport> {
    const report: TuneReport = { keys: 0, candidates: 0, ms: 0, clock: 'none' };
    if (this.queue.size === 0) return report;
    const t0 = now();
    await this.gpu.sync();
    const jobs = [...this.queue.values()];
    this.queue.clear();
    for (const job of jobs) {
      const entry = await this.measure(job);
      if (!entry) continue;
      this.table.set(job.key, entry);
      report.keys++;
      report.candidates += Object.keys(entry.ms).length;
      report.clock = entry.clock ?? 'wall';
    }
    report.ms = now() - t0;
    this.stats.tunedKeys += report.keys;
    this.stats.timedCandidates += report.candidates;
    this.stats.tuneMs += report.ms;
    if (report.keys > 0) await this.save();
    return report;
  }

  private async measure(job: Job): Promise<TuneEntry | null> {
    const cands = this.candidates(job.family, job.shape);
    if (cands.length < 2) return null;
    const bench = job.family.bench(this.gpu, job.shape);
    const ms: Record<string, number> = {};
    const compileMs: Record<string, number> = {};
    const skipped: Record<string, string> = {};
    let clock: 'timestamp' | 'wall' = 'wall';
    let bestOne = Infinity;
    let quickestCompile = Infinity;
    try {
      for (const v of cands) {
        // compile the candidate's pipelines first (in parallel, in the background), within a budget
        const todo = this.gpu.collect(() => bench.run(v));
        let t = now();
        if (todo.size > 0) {
          const budget = this.compileBudget(quickestCompile);
          const ok = budget > 0 && (await within(Promise.all([...todo].map(([k, c]) => this.gpu.compileAsync(k, c))), budget));
          if (!ok) {
            skipped[v] = `compile took more than ${Math.round(budget)} ms`;
            this.warn(`webqat: tuning ${job.key}: skipped '${v}' (${skipped[v]} on this adapter)`);
            continue;
          }
        }
        const compiled = now() - t;
        quickestCompile = Math.min(quickestCompile, compiled);
        // first launch (first-dispatch work some drivers defer), then one fenced launch
        t = now();
        bench.run(v);
        await this.gpu.sync();
        const first = now() - t;
        t = now();
        bench.run(v);
        await this.gpu.sync();
        const one = Math.max(now() - t, 0.01);
        compileMs[v] = compiled + Math.max(0, first - one);
        if (one > 3 * bestOne) {
          ms[v] = one; // clearly slower than the best so far: no more samples
          continue;
        }
        bestOne = Math.min(bestOne, one);
        // steady launches: repeats for ~10 ms per sample (at most 8); 3 samples, 1 for slow kernels
        const reps = Math.max(1, Math.min(8, Math.round(10 / one)));
        const samples: number[] = [];
        for (let k = one > 20 ? 1 : 3; k > 0; k--) {
          const launch = () => { for (let r = 0; r < reps; r++) bench.run(v); };
          t = now();
          const gpuMs = this.gpu.features.has('timestamp-query') ? await this.gpu.timeGpu(launch) : null;
          if (gpuMs === null) {
            launch();
            await this.gpu.sync();
          }
          const wall = now() - t;
          // GPU timestamps where the adapter has them and they are consistent with the fenced wall clock
          // (some drivers scale them wrongly); otherwise the wall clock
          if (gpuMs !== null && gpuMs > 0 && gpuMs <= wall * 1.1) {
            samples.push(gpuMs / reps);
            clock = 'timestamp';
          } else {
            samples.push(wall / reps);
          }
        }
        ms[v] = median(samples);
      }
    } finally {
      bench.dispose();
    }
    const timed = cands.filter((v) => ms[v] !== undefined);
    // nothing compiled within its budget: keep the generic variant (recorded, so it is not retried)
    if (timed.length === 0) return { variant: job.family.generic(this.gpu, job.shape), ms, compileMs, clock, skipped };
    let best = timed[0];
    const score = (v: string) => ms[v] + compileMs[v] / AMORTISE;
    for (const v of timed) if (score(v) < score(best)) best = v;
    return { variant: best, ms, compileMs, clock, ...(Object.keys(skipped).length > 0 ? { skipped } : {}) };
  }

  /** Write this adapter's entries into the cache (other adapters' and versions' slots are kept). */
  async save(): Promise<void> {
    if (this.policy === 'off') return;
    try {
      const { text } = await loadStore(this.store);
      let all: Record<string, Record<string, TuneEntry>> = {};
      if (text) {
        try {
          const j = JSON.parse(text);
          if (j && j.format === FORMAT && j.slots && typeof j.slots === 'object') all = j.slots;
        } catch {
          // corrupt: replaced below
        }
      }
      all[this.slot] = Object.fromEntries(this.table);
      this.cacheWhere = await saveStore(this.store, JSON.stringify({ format: FORMAT, slots: all }, null, 1));
    } catch (e) {
      this.warn(`webqat: cannot save the kernel tune cache (${(e as Error).message}); tuned variants are kept for this process only`);
    }
  }
}

/** This slot's entries of a cache file's text, or why the file is ignored. */
export function parseCache(text: string, slot: string): Record<string, TuneEntry> | string {
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch (e) {
    return `not JSON (${(e as Error).message})`;
  }
  const o = j as { format?: unknown; slots?: unknown };
  if (!o || typeof o !== 'object' || o.format !== FORMAT || !o.slots || typeof o.slots !== 'object') {
    return `not a webqat tune cache (no "format": "${FORMAT}")`;
  }
  const s = (o.slots as Record<string, unknown>)[slot];
  if (s === undefined) return {};
  if (!s || typeof s !== 'object') return `slot ${slot} is not an object`;
  const out: Record<string, TuneEntry> = {};
  for (const [k, e] of Object.entries(s as Record<string, unknown>)) {
    const en = e as TuneEntry;
    if (!en || typeof en.variant !== 'string' || !en.ms || typeof en.ms !== 'object') return `entry ${k} is malformed`;
    out[k] = en;
  }
  return out;
}

/** Bucket a size for shape classes: powers of two (1, 2, 4, ...) up to the size. */
export function bucket(n: number): number {
  return n <= 1 ? 1 : 2 ** Math.ceil(Math.log2(n));
}
