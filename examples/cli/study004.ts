/**
 * `npm run study004 -- [--model lenet5] [--dataset mnist] [--limit 2000] [--test-limit 5000] [--epochs 8]
 *                      [--seeds 1,2,3] [--quants fp,fixed:8,fixed:6,fixed:5,log:5,inq:5] [--float-ends]
 *                      [--json OUT] [--resume] [-- TRAIN FLAGS]`
 *
 * Paper 004's study ("quantization as a regularizer", ALGORITHMS.md §6): train the same model on a
 * reduced training set (a recipe that over-fits in float) once per weight quantizer and seed, and
 * print the test accuracy per seed and mean ± sample std per quantizer, with the difference to the
 * first (float) row. Every run is one `train` subprocess (the same runtime as this one: Deno, or Node
 * with tsx) with --json, so each run's command can be pasted and rerun as is; the runs are sequential.
 * Weight-only QAT quantizes every conv/linear layer, first and last included, unless --float-ends.
 * Flags after `--` go to every train run unchanged (e.g. `-- --optimizer sgd --lr 0.05`).
 *
 * --json OUT is rewritten after every run (runs, table, commands); with --resume, runs already in OUT
 * (same command, status ok) are kept and not rerun.
 * Exit codes: 0 done, 1 a run failed (the table still lists the runs that finished), 2 usage error.
 */
import process from 'node:process';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { DATASETS, type DatasetArg, parseTrainArgs, UsageError } from './args.ts';
import { listModels } from '../../src/models/index.ts';
import '../../src/models/sspq.ts';
import { writeFileAtomic } from '../../src/platform/fs.ts';

export const DEFAULT_QUANTS = ['fp', 'fixed:8', 'fixed:6', 'fixed:5', 'log:5', 'inq:5'] as const;

export interface StudyArgs {
  model: string;
  dataset: DatasetArg;
  limit: number;
  testLimit?: number;
  epochs: number;
  seeds: number[];
  quants: string[];
  floatEnds: boolean;
  json?: string;
  resume: boolean;
  /** extra flags for every train run (after `--`) */
  trainFlags: string[];
}

export interface StudyRun {
  quant: string;
  seed: number;
  command: string;
  status: 'ok' | 'failed';
  testAcc: number | null;
  /** training accuracy of the last epoch (as the trainer measured it during that epoch) */
  lastTrainAcc: number | null;
  trainSamples: number | null;
  testSamples: number | null;
  wallSeconds: number;
  adapter?: string;
  error?: string;
}

export interface StudyRow {
  quant: string;
  seeds: number[];
  /** test accuracy (fraction) per seed, in --seeds order; null where that run failed */
  testAcc: (number | null)[];
  n: number;
  mean: number | null;
  /** sample standard deviation (n − 1); null for n < 2 */
  std: number | null;
  /** mean minus the first row's mean, in percentage points; null on the first row */
  deltaPp: number | null;
  lastTrainAccMean: number | null;
}

function intArg(name: string, min: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!/^[+]?\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n < min) throw new InvalidArgumentError(`${name} must be an integer >= ${min}, got '${v}'.`);
    return n;
  };
}

function listArg(v: string): string[] {
  return v.split(',').map((s) => s.trim()).filter((s) => s !== '');
}

export function buildStudyCommand(models: readonly string[]): Command {
  return new Command('study004')
    .description("Paper 004's study: float vs weight-QAT on a reduced training set, several seeds each; mean ± std of test accuracy per quantizer.")
    .addOption(new Option('--model <name>', `model: ${models.join(', ')}`).default('lenet5'))
    .addOption(new Option('--dataset <name>', 'dataset').choices(DATASETS).default('mnist'))
    .option('--limit <n>', 'training images (the first N of the training set)', intArg('--limit', 1), 2000)
    .option('--test-limit <n>', 'test images (the first N; default: the whole test set)', intArg('--test-limit', 1))
    .option('--epochs <n>', 'epochs per run', intArg('--epochs', 1), 8)
    .option('--seeds <list>', 'seeds, comma-separated (each run: one seed)', '1,2,3')
    .option('--quants <list>', `weight quantizers, comma-separated, as train --quant takes them; the first row is the baseline of Δ`, DEFAULT_QUANTS.join(','))
    .option('--float-ends', 'keep the first and last conv/linear layer float (default: every layer is quantized)', false)
    .option('--json <file>', 'write every run and the table here (after each run)')
    .option('--resume', 'keep the runs already in --json (same command, finished) instead of rerunning them', false)
    .helpOption('-h, --help', 'show this help')
    .argument('[trainFlags...]', 'flags after `--`, passed to every train run')
    .showSuggestionAfterError(true);
}

/** Parse argv (without the program name). Throws UsageError: exit 2 naming what is wrong, exit 0 with the help text. */
export function parseStudyArgs(argv: string[], models: readonly string[]): StudyArgs {
  const cmd = buildStudyCommand(models);
  let captured = '';
  cmd.exitOverride();
  cmd.configureOutput({ writeOut: (s) => (captured += s), writeErr: (s) => (captured += s) });
  const dash = argv.indexOf('--');
  const own = dash < 0 ? argv : argv.slice(0, dash);
  const trainFlags = dash < 0 ? [] : argv.slice(dash + 1);
  try {
    cmd.parse(own, { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.help') throw new UsageError(captured || cmd.helpInformation(), 0);
      throw new UsageError(`study004: ${e.message.replace(/^error: /, '')}`);
    }
    throw e;
  }
  if (cmd.args.length) throw new UsageError(`study004: unexpected argument '${cmd.args[0]}' (flags for train go after \`--\`)`);
  const o = cmd.opts();
  if (!models.includes(o.model)) throw new UsageError(`study004: --model: unknown model '${o.model}'; accepted models: ${models.join(', ')}`);
  const seeds = listArg(o.seeds).map((s) => {
    if (!/^\d+$/.test(s) || !Number.isSafeInteger(Number(s))) throw new UsageError(`study004: --seeds: '${s}' is not a seed (accepted: non-negative integers, comma-separated, e.g. 1,2,3)`);
    return Number(s);
  });
  if (!seeds.length) throw new UsageError(`study004: --seeds: no seed given (e.g. --seeds 1,2,3)`);
  if (new Set(seeds).size !== seeds.length) throw new UsageError(`study004: --seeds: a seed is repeated in '${o.seeds}'`);
  const quants = listArg(o.quants);
  if (!quants.length) throw new UsageError(`study004: --quants: no quantizer given (e.g. --quants fp,fixed:8)`);
  if (new Set(quants).size !== quants.length) throw new UsageError(`study004: --quants: a quantizer is repeated in '${o.quants}'`);
  const args: StudyArgs = {
    model: o.model, dataset: o.dataset, limit: o.limit, testLimit: o.testLimit, epochs: o.epochs, seeds, quants,
    floatEnds: o.floatEnds, json: o.json, resume: o.resume, trainFlags,
  };
  if (args.resume && !args.json) throw new UsageError('study004: --resume needs --json (the file whose runs are kept)');
  // every run's flags are checked with train's own parser before anything runs
  for (const q of quants) {
    try {
      parseTrainArgs(trainArgv(args, q, seeds[0]), models);
    } catch (e) {
      if (!(e instanceof UsageError)) throw e;
      const why = e.message.replace(/^train: /, '');
      const own = trainArgv({ ...args, trainFlags: [] }, q, seeds[0]);
      try {
        parseTrainArgs(own, models);
      } catch {
        throw new UsageError(`study004: --quants: '${q}' is not accepted: ${why}`);
      }
      throw new UsageError(`study004: the flags after \`--\` are not accepted by train: ${why}`);
    }
  }
  return args;
}

/** The train flags of one run (without --json / --quiet). */
export function trainArgv(a: StudyArgs, quant: string, seed: number): string[] {
  return [
    '--model', a.model, '--dataset', a.dataset, '--limit', String(a.limit), '--epochs', String(a.epochs),
    ...(a.testLimit ? ['--test-limit', String(a.testLimit)] : []), '--eval-every', String(a.epochs),
    '--seed', String(seed), '--quant', quant, ...(a.floatEnds || quant === 'fp' ? [] : ['--quantize-first', '--quantize-last']),
    ...a.trainFlags,
  ];
}

function mean(xs: number[]): number | null {
  return xs.length ? xs.reduce((s, x) => s + x, 0) / xs.length : null;
}
function sampleStd(xs: number[]): number | null {
  if (xs.length < 2) return null;
  const m = mean(xs)!;
  return Math.sqrt(xs.reduce((s, x) => s + (x - m) ** 2, 0) / (xs.length - 1));
}

/** One row per quantizer (in --quants order) from the runs. */
export function studyTable(quants: string[], seeds: number[], runs: StudyRun[]): StudyRow[] {
  const rows: StudyRow[] = quants.map((q) => {
    const per = seeds.map((s) => runs.find((r) => r.quant === q && r.seed === s && r.status === 'ok') ?? null);
    const acc = per.map((r) => r?.testAcc ?? null);
    const ok = acc.filter((x): x is number => x !== null);
    const tr = per.map((r) => r?.lastTrainAcc ?? null).filter((x): x is number => x !== null);
    return { quant: q, seeds, testAcc: acc, n: ok.length, mean: mean(ok), std: sampleStd(ok), deltaPp: null, lastTrainAccMean: mean(tr) };
  });
  const base = rows[0]?.mean ?? null;
  for (const r of rows.slice(1)) r.deltaPp = base !== null && r.mean !== null ? 100 * (r.mean - base) : null;
  return rows;
}

const p2 = (x: number | null) => (x === null ? '-' : (100 * x).toFixed(2));

/** The table as Markdown (the docs/RESULTS.md form). */
export function formatTable(rows: StudyRow[]): string {
  const lines = [
    '| weights (QAT) | seeds | test % per seed | mean ± std | Δ vs ' + (rows[0]?.quant ?? '-') + ' (pp) | last-epoch train % (mean) |',
    '| --- | --- | --- | --- | --- | --- |',
  ];
  for (const r of rows) {
    const ms = r.mean === null ? '-' : `${p2(r.mean)} ± ${r.std === null ? '-' : (100 * r.std).toFixed(2)}`;
    const d = r.deltaPp === null ? '' : `${r.deltaPp >= 0 ? '+' : ''}${r.deltaPp.toFixed(2)}`;
    lines.push(`| ${r.quant} | ${r.seeds.join(', ')} | ${r.testAcc.map(p2).join(', ')} | ${ms} | ${d} | ${p2(r.lastTrainAccMean)} |`);
  }
  return lines.join('\n');
}

/** How to start `train` under the runtime we run on. */
function trainCommand(): [string, string[]] {
  const trainTs = fileURLToPath(new URL('./train.ts', import.meta.url));
  const deno = (globalThis as unknown as { Deno?: { execPath(): string } }).Deno;
  return deno ? [deno.execPath(), ['run', '-A', trainTs]] : [process.execPath, ['--import', 'tsx', trainTs]];
}

function run(cmd: string, args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    // the child's output goes to our stderr: stdout is the table
    const p = spawn(cmd, args, { stdio: ['ignore', process.stderr, 'inherit'] });
    p.on('error', reject);
    p.on('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
}

async function oneRun(a: StudyArgs, quant: string, seed: number, tmp: string): Promise<StudyRun> {
  const flags = trainArgv(a, quant, seed);
  const command = `npm run train -- ${flags.join(' ')}`;
  const json = join(tmp, `run-${quant.replace(/[^\w.-]/g, '_')}-${seed}.json`);
  process.stderr.write(`\n== study004: ${command}\n`);
  const [bin, pre] = trainCommand();
  const t0 = performance.now();
  const code = await run(bin, [...pre, ...flags, '--json', json, '--quiet']);
  const wallSeconds = (performance.now() - t0) / 1000;
  let rep: Record<string, any> | null = null;
  try {
    rep = JSON.parse(await readFile(json, 'utf8'));
  } catch {
    // no report: the error below says so
  }
  if (code !== 0 || !rep || rep.status !== 'ok' || typeof rep.finalTestAcc !== 'number') {
    return {
      quant, seed, command, status: 'failed', testAcc: null, lastTrainAcc: null, trainSamples: null, testSamples: null, wallSeconds,
      error: rep?.error ?? `train exited with code ${code}`,
    };
  }
  const epochs = (rep.epochs ?? []) as { trainAcc?: number }[];
  return {
    quant, seed, command, status: 'ok', testAcc: rep.finalTestAcc, lastTrainAcc: epochs.at(-1)?.trainAcc ?? null,
    trainSamples: rep.trainSamples ?? null, testSamples: rep.testSamples ?? null, wallSeconds: rep.wallSeconds ?? wallSeconds, adapter: rep.adapter,
  };
}

async function main(argv: string[]): Promise<number> {
  let a: StudyArgs;
  try {
    a = parseStudyArgs(argv, listModels());
  } catch (e) {
    if (e instanceof UsageError) {
      (e.exitCode === 0 ? process.stdout : process.stderr).write(e.message.endsWith('\n') ? e.message : e.message + '\n');
      return e.exitCode;
    }
    throw e;
  }
  let runs: StudyRun[] = [];
  if (a.resume && a.json) {
    try {
      const prev = JSON.parse(await readFile(a.json, 'utf8'));
      runs = ((prev.runs ?? []) as StudyRun[]).filter((r) => r.status === 'ok');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
        process.stderr.write(`study004: --resume: cannot read ${a.json}: ${(e as Error).message}\n`);
        return 2;
      }
    }
  }
  const started = new Date().toISOString();
  const save = async () => {
    if (!a.json) return;
    const out = {
      command: 'study004', started, updated: new Date().toISOString(),
      config: { model: a.model, dataset: a.dataset, limit: a.limit, testLimit: a.testLimit ?? null, epochs: a.epochs, seeds: a.seeds, quants: a.quants, floatEnds: a.floatEnds, trainFlags: a.trainFlags },
      table: studyTable(a.quants, a.seeds, runs),
      runs,
    };
    await writeFileAtomic(a.json, new TextEncoder().encode(JSON.stringify(out, null, 2) + '\n'));
  };
  const tmp = await mkdtemp(join(tmpdir(), 'webqat-study004-'));
  let failed = 0;
  try {
    for (const q of a.quants) {
      for (const s of a.seeds) {
        const command = `npm run train -- ${trainArgv(a, q, s).join(' ')}`;
        if (runs.some((r) => r.command === command && r.status === 'ok')) {
          process.stderr.write(`== study004: kept from ${a.json}: ${command}\n`);
          continue;
        }
        const r = await oneRun(a, q, s, tmp);
        if (r.status !== 'ok') {
          failed++;
          process.stderr.write(`study004: run failed (${q}, seed ${s}): ${r.error}\n`);
        }
        runs = runs.filter((x) => x.command !== command).concat(r);
        await save();
      }
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  await save();
  const rows = studyTable(a.quants, a.seeds, runs);
  const testN = runs.find((r) => r.testSamples !== null)?.testSamples;
  process.stdout.write(
    `study004: ${a.model} on ${a.dataset}, ${a.limit} training images, ${a.epochs} epochs, ` +
      `${testN ?? '?'} test images, seeds ${a.seeds.join(', ')}; ${a.floatEnds ? 'first/last layer float' : 'every layer quantized'}\n\n`,
  );
  process.stdout.write(formatTable(rows) + '\n');
  if (failed) process.stderr.write(`study004: ${failed} run(s) failed\n`);
  return failed ? 1 : 0;
}

// run only as a program (the test imports the parser and the table)
const entry = process.argv[1] ? fileURLToPath(new URL(import.meta.url)) === process.argv[1] || import.meta.url.endsWith(process.argv[1]) : false;
if ((import.meta as { main?: boolean }).main ?? entry) {
  const code = await main(process.argv.slice(2));
  process.exit(code);
}
