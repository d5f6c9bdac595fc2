/**
 * Shared benchmark helpers: medians, timing GPU work with the clock stopped only after the GPU has
 * finished (`gpu.sync()` awaits `queue.onSubmittedWorkDone()`), and JSON result files.
 */
import type { Gpu } from '../src/index.ts';
import { writeFileAtomic } from '../src/index.ts';
import process from 'node:process';

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export interface TimingOptions {
  /** untimed runs first (pipeline compilation, caches, driver warm-up) */
  warmup?: number;
  /** timed repeats; the result is their median */
  repeats?: number;
  /** launches per timed repeat (amortises submit + sync overhead for short kernels) */
  inner?: number;
}

export interface Timing {
  /** median milliseconds per launch */
  ms: number;
  /** every repeat's milliseconds per launch */
  runs: number[];
  inner: number;
  /**
   * median CPU milliseconds per launch consumed by this process (all its threads, i.e. the software
   * adapter's workers too) while the repeat ran; NaN where /proc is not readable. On a machine shared
   * with other jobs this is the load-insensitive figure: wall time stretches, CPU time does not.
   */
  cpuMs: number;
  /** every repeat's CPU milliseconds per launch */
  cpuRuns: number[];
}

/**
 * CPU time in milliseconds of every live thread of this process (Linux: /proc/self/task/<tid>/schedstat,
 * nanoseconds on CPU), NaN where that is not readable (browsers, other systems).
 */
export function processCpuMs(): number {
  const g = globalThis as {
    Deno?: { readDirSync(p: string): Iterable<{ name: string }>; readTextFileSync(p: string): string };
    process?: { getBuiltinModule?(m: string): unknown };
  };
  let list: (p: string) => string[];
  let read: (p: string) => string;
  if (g.Deno) {
    const d = g.Deno;
    list = (p) => [...d.readDirSync(p)].map((e) => e.name);
    read = (p) => d.readTextFileSync(p);
  } else {
    const fs = g.process?.getBuiltinModule?.('node:fs') as
      | { readdirSync(p: string): string[]; readFileSync(p: string, e: string): string }
      | undefined;
    if (!fs) return NaN;
    list = (p) => fs.readdirSync(p);
    read = (p) => fs.readFileSync(p, 'utf8');
  }
  try {
    let ns = 0;
    for (const tid of list('/proc/self/task')) {
      try {
        ns += Number(read(`/proc/self/task/${tid}/schedstat`).split(' ')[0]);
      } catch {
        // the thread ended between listing and reading
      }
    }
    return ns / 1e6;
  } catch {
    return NaN;
  }
}

/**
 * Time `launch` (which encodes GPU work): warm-up, then `repeats` x (`inner` launches, submit, wait
 * for the GPU to finish). Pending work is drained before each clock start.
 */
export async function timeGpu(gpu: Gpu, launch: () => void, opts: TimingOptions = {}): Promise<Timing> {
  const { warmup = 1, repeats = 5, inner = 1 } = opts;
  for (let i = 0; i < warmup; i++) launch();
  await gpu.sync();
  const runs: number[] = [];
  const cpuRuns: number[] = [];
  for (let r = 0; r < repeats; r++) {
    await gpu.sync();
    const c0 = processCpuMs();
    const t0 = performance.now();
    for (let i = 0; i < inner; i++) launch();
    await gpu.sync();
    runs.push((performance.now() - t0) / inner);
    cpuRuns.push((processCpuMs() - c0) / inner);
  }
  return { ms: median(runs), runs, inner, cpuMs: median(cpuRuns), cpuRuns };
}

/**
 * Pick a launch count so one timed repeat lasts about `targetMs`, from one timed probe launch
 * (after a warm-up launch).
 */
export async function calibrate(gpu: Gpu, launch: () => void, targetMs: number, maxInner = 1000): Promise<number> {
  launch();
  await gpu.sync();
  const t0 = performance.now();
  launch();
  await gpu.sync();
  const ms = Math.max(performance.now() - t0, 1e-3);
  return Math.max(1, Math.min(maxInner, Math.round(targetMs / ms)));
}

/** Write a JSON result file (atomically), creating nothing else. */
export async function writeJson(path: string, data: unknown): Promise<void> {
  await writeFileAtomic(path, new TextEncoder().encode(JSON.stringify(data, null, 2) + '\n'));
}

/** Runtime description for result files. */
export function runtimeInfo(): Record<string, string> {
  const g = globalThis as { Deno?: { version: Record<string, string> }; process?: { version: string } };
  if (g.Deno) return { runtime: 'deno', deno: g.Deno.version.deno, v8: g.Deno.version.v8 };
  if (g.process) return { runtime: 'node', node: g.process.version };
  return { runtime: 'browser' };
}

/**
 * Parse this process's arguments with a commander command built with `.exitOverride()`: null when
 * the run should go on, else the exit code (0 after --help, 2 for a usage error, already printed).
 */
export function parseArgs(cmd: { parse(argv: string[], o: { from: 'user' }): unknown }): number | null {
  try {
    cmd.parse(process.argv.slice(2), { from: 'user' });
    return null;
  } catch (e) {
    const code = (e as { code?: string }).code;
    return code === 'commander.helpDisplayed' || code === 'commander.help' ? 0 : 2;
  }
}
