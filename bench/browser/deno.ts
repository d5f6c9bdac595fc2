/**
 * The webqat side of the browser benchmark suite, run in Deno (wgpu; lavapipe on a machine without
 * a GPU): the same benchmarks, data, step logic and clock as the page (bench/browser/common.ts,
 * bench/browser/suites/webqat.ts).
 *
 *   deno run -A bench/browser/deno.ts [--json FILE] [--steps N] [--warmup N] [--benches a,b] [--cap-ms MS] [--budget-ms MS] [--profile a,b]
 *
 * `npm run bench` runs this too and folds its figures into the report.
 */
import process from 'node:process';
import { BENCH_ORDER, type BenchName, type BenchResult, isInfer, median, runBench, runInfer, type TrainBenchName } from './common.ts';
import { profileWebqat, type StepProfile } from './suites/webqat-profile.ts';
import { webqatSuite } from './suites/webqat.ts';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  if (i < 0) return undefined;
  const v = process.argv[i + 1];
  if (v === undefined || v.startsWith('--')) throw new Error(`webqat: bench/browser/deno.ts: ${name}: expected a value, got nothing`);
  return v;
}

function posInt(name: string, dflt: number): number {
  const v = arg(name);
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`webqat: bench/browser/deno.ts: ${name}: expected a non-negative integer, got '${v}'`);
  return n;
}

const steps = posInt('--steps', 5);
const warmup = posInt('--warmup', 1);
const capMs = posInt('--cap-ms', 8000);
const budgetMs = posInt('--budget-ms', 0) || Infinity;
const benches = (arg('--benches') ?? BENCH_ORDER.join(',')).split(',').map((s) => s.trim()) as BenchName[];
for (const b of benches) {
  if (!BENCH_ORDER.includes(b)) throw new Error(`webqat: bench/browser/deno.ts: --benches: expected some of ${BENCH_ORDER.join(', ')}, got '${b}'`);
}
const jsonPath = arg('--json');

const suite = webqatSuite();
const t0 = performance.now();
const info = await suite.init();
const initMs = performance.now() - t0;
console.error(`deno: ${info.adapter.name} (${info.backend}), init ${initMs.toFixed(0)} ms`);
const results: BenchResult[] = [];
const tEnd = performance.now() + budgetMs;
for (const b of benches) {
  const left = tEnd - performance.now();
  if (left <= 0) {
    results.push({ library: suite.library, bench: b, status: 'budget', reason: 'time budget (--budget-ms) spent', samples: [] });
    continue;
  }
  const r = isInfer(b) ? await runInfer(suite, b, { steps, warmup, capMs, budgetMs: left }) : await runBench(suite, b, { steps, warmup, capMs, budgetMs: left });
  results.push(r);
  for (const row of r.rows ?? []) {
    console.error(`deno: ${b} ${row.key.padEnd(12)} ${row.status.padEnd(8)} first ${row.firstMs?.toFixed(0) ?? '-'} ms  median ${median(row.samples).toFixed(2)} ms  [${row.samples.map((x) => x.toFixed(1)).join(', ')}]${row.reason ? `  (${row.reason})` : ''}`);
  }
  if (r.rows) continue;
  console.error(
    `deno: ${b.padEnd(8)} ${r.status.padEnd(8)} first ${r.firstMs?.toFixed(0) ?? '-'} ms  median ${median(r.samples).toFixed(1)} ms  ` +
      `[${r.samples.map((x) => x.toFixed(1)).join(', ')}]${r.reason ? `  (${r.reason})` : ''}`,
  );
}
const profile: StepProfile[] = [];
for (const b of (arg('--profile') ?? '').split(',').map((x) => x.trim()).filter(Boolean) as TrainBenchName[]) {
  const p = await profileWebqat(b);
  profile.push(p);
  console.error(`deno: profile ${b}: step ${p.stepMs.toFixed(0)} ms, ${p.dispatches} dispatches, ${p.submits} submits, replay ${p.replayMs.toFixed(0)} ms, ${p.pipelines} pipelines compiled in ${p.compileMs.toFixed(0)} ms`);
  for (const k of p.kernels.slice(0, 10)) console.error(`   ${k.key.padEnd(44)} x${String(k.count).padStart(3)} ${k.totalMs.toFixed(1).padStart(8)} ms  compile ${k.compileMs?.toFixed(0)} ms`);
}
const out = {
  runtime: 'deno',
  deno: (globalThis as unknown as { Deno: { version: Record<string, string> } }).Deno.version,
  info,
  initMs,
  options: { steps, warmup, capMs, budgetMs },
  results,
  profile,
};
const text = JSON.stringify(out, null, 2) + '\n';
if (jsonPath) await (await import('node:fs/promises')).writeFile(jsonPath, text);
else console.log(text);
process.exit(0);
