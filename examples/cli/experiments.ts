/**
 * `npm run experiments -- [--quick] [--measure] [--rows ID,..] [--epochs-mnist N] [--epochs-fashion N] [--sq-gamma G]
 *                         [--train-limit N] [--test-limit N] [--seed S] [--out DIR]`
 *
 * The accuracy table of the QAT issue. Every row is one run of the `train` command (a Deno
 * subprocess with --json), so each row's command can be pasted and rerun as is:
 *  - LeNet-5, TWN variant (32C5-MP2-64C5-MP2-512FC-10) on MNIST, one recipe for fp, twn, bwn and sq
 *    (first and last layer float; Adam 1e-3, cosine, batch 100);
 *  - SSPQ20 W1A4 vs ResNet-20 FP on Fashion-MNIST, one recipe (SGD 0.1, momentum 0.9, weight
 *    decay 1e-4, warm-up + cosine, batch 128).
 * Rows land in DIR/results.json (merged with the rows already there: a row is replaced only by a
 * rerun of the same command) and DIR/RESULTS.md is regenerated from it, after
 * every row. A row is "full" when it trained on the whole training set for the recipe's epochs and
 * was evaluated on the whole test set; anything else is recorded as "reduced" with its subset sizes
 * and epochs.
 *
 *   --quick          reduced rows: 2 000 train / 1 000 test samples, 2 epochs (MNIST) and
 *                    1 024 / 500, 1 epoch (Fashion-MNIST)
 *   --measure        no training: time the training step of every row (2 warm-up steps, then 5
 *                    timed steps ended by a GPU readback) and project the epoch time; SSPQ rows
 *                    are timed with the fused shift·1x1 op and with the unfused pair
 *   --render         no training: regenerate DIR/RESULTS.md from DIR/results.json and DIR/step-times.json
 *   --rows           only these rows (ids: mnist-fp, mnist-twn, mnist-bwn, mnist-sq, fashion-resnet20, fashion-sspq20)
 */
import process from 'node:process';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  Adam,
  cosineLR,
  init,
  loadDataset,
  qat,
  SGD,
  shutdown,
  subset,
  Trainer,
  writeFileAtomic,
} from '../../src/index.ts';
import { createModel } from '../../src/models/index.ts';
import { parseQuantSpec } from '../../src/quant/index.ts';

interface Plan {
  id: string;
  experiment: string;
  model: string;
  dataset: 'mnist' | 'fashion-mnist';
  quant: string;
  /** label of the quantization in the table */
  label: string;
  epochs: number;
  flags: string[];
  batchSize: number;
}

interface Row {
  id: string;
  variant: 'full' | 'reduced';
  experiment: string;
  model: string;
  dataset: string;
  quant: string;
  command: string;
  seed: number;
  epochs: number;
  trainSamples: number;
  testSamples: number;
  wallSeconds: number;
  testAcc: number | null;
  /** average bits per quantized weight (packed); null for float models */
  bitsPerWeight: number | null;
  /** packed bits over all parameters */
  modelBitsPerParam: number | null;
  params: number | null;
  floatKiB: number | null;
  packedKiB: number | null;
  /** per quantized layer: mode (SQ: its decision) and, for SQ, tan β and the zero-basin fraction */
  layers?: { name: string; mode: string; bits: number; weights: number; tanBeta?: number; zeroFraction: number }[];
  perEpoch?: { epoch: number; trainLoss: number; testAcc: number | null; seconds: number }[];
  adapter?: string;
  date: string;
  commit?: string;
  error?: string;
}

/** MNIST recipe epochs (LeNet-5 TWN variant; a full row takes about 35 min on lavapipe, 2 cores). */
const MNIST_EPOCHS = 6;
/** Fashion-MNIST recipe epochs (SSPQ20 vs ResNet-20). */
const FASHION_EPOCHS = 30;
/** SQ's γ in the MNIST table (ALGORITHMS §3.4 sweeps 1e-4..1e-2; larger γ: more binary layers). */
const SQ_GAMMA = 0.003;

const MNIST_RECIPE = ['--optimizer', 'adam', '--lr', '0.001', '--schedule', 'cosine', '--batch-size', '100'];
const FASHION_RECIPE = ['--optimizer', 'sgd', '--lr', '0.1', '--momentum', '0.9', '--weight-decay', '0.0001', '--schedule', 'warmup-cosine', '--batch-size', '128'];

function plans(epochsMnist: number, epochsFashion: number, sqGamma = SQ_GAMMA): Plan[] {
  const mnist = (q: string, label: string): Plan => ({
    id: `mnist-${q}`, experiment: 'LeNet-5 (TWN variant), MNIST', model: 'lenet5-twn', dataset: 'mnist', quant: q, label,
    epochs: epochsMnist, flags: MNIST_RECIPE, batchSize: 100,
  });
  return [
    mnist('fp', 'FP32'),
    mnist('twn', 'TWN (ternary)'),
    mnist('bwn', 'BWN (binary)'),
    { ...mnist('sq', `SQ (adaptive binary/ternary), γ = ${sqGamma}`), quant: `sq:gamma=${sqGamma}` },
    {
      id: 'fashion-resnet20', experiment: 'SSPQ20 vs ResNet-20, Fashion-MNIST', model: 'resnet20', dataset: 'fashion-mnist', quant: 'fp', label: 'FP32',
      epochs: epochsFashion, flags: FASHION_RECIPE, batchSize: 128,
    },
    {
      id: 'fashion-sspq20', experiment: 'SSPQ20 vs ResNet-20, Fashion-MNIST', model: 'sspq20', dataset: 'fashion-mnist', quant: 'dorefa:w1a4', label: 'W1A4 (1x1 convs)',
      epochs: epochsFashion, flags: FASHION_RECIPE, batchSize: 128,
    },
  ];
}

interface Args {
  quick: boolean;
  measure: boolean;
  render: boolean;
  rows: string[] | null;
  epochsMnist: number;
  sqGamma: number;
  epochsFashion: number;
  trainLimit: number | null;
  testLimit: number | null;
  seed: number;
  out: string;
  /** run the paper-004 study (examples/cli/study004.ts) instead of the table */
  study004: boolean;
}

function parseArgs(argv: string[]): Args {
  const o: Args = { quick: false, measure: false, render: false, rows: null, epochsMnist: MNIST_EPOCHS, epochsFashion: FASHION_EPOCHS, sqGamma: SQ_GAMMA, trainLimit: null, testLimit: null, seed: 1, out: 'docs', study004: false };
  const accepted = '--quick, --measure, --render, --rows ID,.., --epochs-mnist N, --epochs-fashion N, --sq-gamma G, --train-limit N, --test-limit N, --seed S, --out DIR, --study004';
  const int = (flag: string, v: string | undefined, min: number): number => {
    const n = Number(v);
    if (v === undefined || !/^\d+$/.test(v) || n < min) throw new Error(`experiments: ${flag} must be an integer >= ${min}, got ${v === undefined ? 'nothing' : `'${v}'`}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--quick') o.quick = true;
    else if (a === '--measure') o.measure = true;
    else if (a === '--render') o.render = true;
    else if (a === '--study004') o.study004 = true;
    else if (a === '--rows') o.rows = (argv[++i] ?? '').split(',').filter(Boolean);
    else if (a === '--epochs-mnist') o.epochsMnist = int(a, argv[++i], 1);
    else if (a === '--epochs-fashion') o.epochsFashion = int(a, argv[++i], 1);
    else if (a === '--sq-gamma') {
      const v = argv[++i];
      o.sqGamma = Number(v);
      if (!v || !(o.sqGamma > 0 && o.sqGamma <= 1)) throw new Error(`experiments: --sq-gamma must be a number in (0, 1], got ${v === undefined ? 'nothing' : `'${v}'`}`);
    }
    else if (a === '--train-limit') o.trainLimit = int(a, argv[++i], 1);
    else if (a === '--test-limit') o.testLimit = int(a, argv[++i], 1);
    else if (a === '--seed') o.seed = int(a, argv[++i], 0);
    else if (a === '--out') {
      const v = argv[++i];
      if (!v) throw new Error('experiments: --out needs a directory');
      o.out = v;
    } else throw new Error(`experiments: unknown option '${a}' (accepted: ${accepted})`);
  }
  const ids = plans(1, 1).map((p) => p.id);
  for (const r of o.rows ?? []) if (!ids.includes(r)) throw new Error(`experiments: --rows: unknown row '${r}' (accepted: ${ids.join(', ')})`);
  return o;
}

/** Run a command, streaming its output to our stderr; resolves with the exit code. */
function run(cmd: string, args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'inherit', 'inherit'] });
    p.on('error', reject);
    p.on('exit', (code) => resolve(code ?? 1));
  });
}

function gitCommit(): Promise<string | undefined> {
  return new Promise((resolve) => {
    let out = '';
    const p = spawn('git', ['rev-parse', '--short=12', 'HEAD'], { stdio: ['ignore', 'pipe', 'ignore'] });
    p.stdout.on('data', (d) => (out += d));
    p.on('error', () => resolve(undefined));
    p.on('exit', (code) => resolve(code === 0 ? out.trim() : undefined));
  });
}

async function trainRow(p: Plan, a: Args, tmp: string): Promise<Row> {
  const trainLimit = a.trainLimit ?? (a.quick ? (p.dataset === 'mnist' ? 2000 : 1024) : null);
  const testLimit = a.testLimit ?? (a.quick ? (p.dataset === 'mnist' ? 1000 : 500) : null);
  const epochs = a.quick && !a.trainLimit ? (p.dataset === 'mnist' ? Math.min(2, p.epochs) : 1) : p.epochs;
  const flags = [
    '--model', p.model, '--dataset', p.dataset, '--quant', p.quant, '--epochs', String(epochs), ...p.flags, '--seed', String(a.seed),
    ...(trainLimit ? ['--limit', String(trainLimit)] : []), ...(testLimit ? ['--test-limit', String(testLimit)] : []),
  ];
  const json = join(tmp, `${p.id}.json`);
  const command = `npm run train -- ${flags.join(' ')}`;
  const recipeEpochs = plans(MNIST_EPOCHS, FASHION_EPOCHS).find((q) => q.id === p.id)?.epochs;
  const full = trainLimit === null && testLimit === null && epochs === recipeEpochs;
  const row: Row = {
    id: p.id, variant: full ? 'full' : 'reduced', experiment: p.experiment, model: p.model, dataset: p.dataset, quant: p.label,
    command, seed: a.seed, epochs, trainSamples: 0, testSamples: 0, wallSeconds: 0, testAcc: null, bitsPerWeight: null,
    modelBitsPerParam: null, params: null, floatKiB: null, packedKiB: null, date: new Date().toISOString(), commit: await gitCommit(),
  };
  console.error(`\n== ${p.id}: ${command}`);
  const t0 = performance.now();
  const code = await run(process.execPath, ['run', '-A', 'examples/cli/train.ts', ...flags, '--json', json, '--quiet']);
  row.wallSeconds = (performance.now() - t0) / 1000;
  let rep: Record<string, any> | null = null;
  try {
    rep = JSON.parse(await readFile(json, 'utf8'));
  } catch {
    // no report: the error below says so
  }
  if (code !== 0 || !rep || rep.status !== 'ok') {
    row.error = rep?.error ?? `train exited with code ${code}`;
    return row;
  }
  row.trainSamples = rep.trainSamples;
  row.testSamples = rep.testSamples;
  row.testAcc = rep.finalTestAcc;
  row.wallSeconds = rep.wallSeconds ?? row.wallSeconds;
  row.params = rep.parameters;
  row.adapter = rep.adapter;
  row.perEpoch = (rep.epochs as any[]).map((m) => ({ epoch: m.epoch, trainLoss: m.trainLoss, testAcc: m.testAcc ?? null, seconds: m.seconds }));
  const q = rep.quant;
  if (q && q.bitsPerWeight !== undefined) {
    row.bitsPerWeight = q.bitsPerWeight;
    row.modelBitsPerParam = q.modelBitsPerParam;
    row.floatKiB = q.floatBytes / 1024;
    row.packedKiB = q.packedBytes / 1024;
    row.layers = (q.layers as any[]).map((l) => ({
      name: l.name, mode: l.mode, bits: l.bits, weights: l.weights, zeroFraction: l.zeroFraction, ...(l.sq ? { tanBeta: l.sq.tanBeta } : {}),
    }));
  } else {
    row.floatKiB = (rep.parameters * 4) / 1024;
    row.packedKiB = row.floatKiB;
  }
  return row;
}

/** Time the training step of a row in-process: 2 warm-up steps (pipeline compilation), then 5 timed steps. */
async function measureRow(p: Plan, a: Args, fused = true): Promise<Record<string, unknown>> {
  const data = await loadDataset(p.dataset);
  const n = p.batchSize * 7;
  const train = subset(data.train, n);
  const [c, h] = train.shape;
  const spec = parseQuantSpec(p.quant);
  const sspq = p.model.startsWith('sspq');
  const model = createModel(p.model, { inChannels: c, inputSize: h, numClasses: train.numClasses, seed: a.seed, ...(sspq ? { wBits: 1, aBits: 4, fused } : {}) } as never);
  // the train command's assembly (quantized layers, role-routed groups, hooked optimizer and loss)
  const adam = p.flags.includes('adam');
  const q = qat(model, spec, { lr: adam ? 1e-3 : 0.1, totalSteps: 1000, optimizer: (g) => (adam ? new Adam(g, { lr: 1e-3 }) : new SGD(g, { lr: 0.1, momentum: 0.9 })) });
  const trainer = new Trainer({
    model, optimizer: q.optimizer, schedule: cosineLR(1000), train, batchSize: p.batchSize, epochs: 1, seed: a.seed,
    loss: q.loss,
  });
  await q.prepare();
  const loader = trainer.trainLoader;
  loader.startEpoch(0);
  const gpu = (await init());
  const t0 = performance.now();
  const b0 = loader.batch(0);
  trainer.trainStep(b0.x, b0.y, b0.size);
  await gpu.sync();
  const first = performance.now() - t0;
  const b1 = loader.batch(1);
  trainer.trainStep(b1.x, b1.y, b1.size);
  await gpu.sync();
  const t1 = performance.now();
  for (let k = 2; k < 7; k++) {
    const b = loader.batch(k);
    trainer.trainStep(b.x, b.y, b.size);
  }
  await gpu.sync();
  const ms = (performance.now() - t1) / 5;
  const stepsPerEpoch = Math.floor(data.train.labels.length / p.batchSize);
  trainer.dispose();
  model.release();
  const r = { id: fused ? p.id : `${p.id}-unfused`, model: p.model, quant: p.quant, batchSize: p.batchSize, firstStepMs: first, msPerStep: ms, samplesPerSec: (1000 * p.batchSize) / ms, projectedEpochMinutes: (ms * stepsPerEpoch) / 60000 };
  console.error(`${r.id}: first step ${first.toFixed(0)} ms, steady ${ms.toFixed(0)} ms/step (${r.samplesPerSec.toFixed(0)} samples/s), projected ${r.projectedEpochMinutes.toFixed(1)} min/epoch`);
  return r;
}

const pct = (v: number | null | undefined) => (v === null || v === undefined ? '-' : (100 * v).toFixed(2));
const fix = (v: number | null | undefined, d = 2) => (v === null || v === undefined ? '-' : v.toFixed(d));

function markdown(rows: Row[], timing: Record<string, any> | null, notes: string[] = []): string {
  const order = plans(1, 1).map((p) => p.id);
  const sorted = [...rows].sort((x, y) => (x.variant === y.variant ? 0 : x.variant === 'full' ? -1 : 1) || order.indexOf(x.id) - order.indexOf(y.id));
  const table = (rs: Row[]) => [
    '| row | model | dataset | quantization | variant | train / test samples | epochs | seed | wall (s) | test acc (%) | bits/weight (quantized) | float32 KiB | packed KiB | params |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
    ...rs.map((r) =>
      `| ${r.id} | ${r.model} | ${r.dataset} | ${r.quant} | ${r.variant} | ${r.trainSamples} / ${r.testSamples} | ${r.epochs} | ${r.seed} | ${fix(r.wallSeconds, 0)} | ` +
      `${r.error ? 'failed' : pct(r.testAcc)} | ${fix(r.bitsPerWeight, 3)} | ${fix(r.floatKiB, 1)} | ${fix(r.packedKiB, 1)} | ${r.params ?? '-'} |`
    ),
  ];
  const lines = [
    '# Results',
    '',
    'Generated by `npm run experiments` (examples/cli/experiments.ts) from `docs/results.json`. Every number below was measured by',
    'the run whose command is listed; nothing is copied from papers. Rows marked **reduced** trained on a subset and/or fewer',
    'epochs than the recipe (see the sample counts and epochs): they exercise the pipeline and are **not** comparable to the',
    "papers' full-training accuracies. Rows marked **full** used the whole training and test sets for the recipe's epochs.",
    '',
    `Recipes (one per experiment, identical across its rows): LeNet-5 TWN variant on MNIST: ${MNIST_EPOCHS} epochs, Adam lr 1e-3, cosine, batch 100,`,
    'first and last layer float (`--quant fp|twn|bwn|sq:gamma=G`; SQ: λ = 1e-3, p = 2, β at 10x the lr). SSPQ20 vs ResNet-20 on Fashion-MNIST: SGD lr 0.1, momentum 0.9,',
    'weight decay 1e-4 (conv/linear weights), linear warm-up + cosine, batch 128; SSPQ20 W1A4 = binary (BWN) 1x1 convs incl.',
    'shortcuts, 4-bit DoReFa activations, float stem/FC/BN/shift.',
    '',
    ...table(sorted),
    '',
    ...(notes.length ? ['## Notes', '', ...notes.map((n) => `- ${n}`), ''] : []),
  ];
  const sq = sorted.filter((r) => r.layers?.some((l) => l.tanBeta !== undefined));
  if (sq.length) {
    lines.push('## SQ per-layer decisions', '');
    for (const r of sq) {
      lines.push(`${r.id} (${r.variant}, ${r.epochs} epochs, ${r.trainSamples} samples): ${fix(r.bitsPerWeight, 3)} bits/weight on average`, '');
      lines.push('| layer | weights | decision | bits | tan β | zero-basin fraction |', '|---|---|---|---|---|---|');
      for (const l of r.layers!) lines.push(`| ${l.name} | ${l.weights} | ${l.mode} | ${l.bits} | ${fix(l.tanBeta, 3)} | ${pct(l.zeroFraction)} % |`);
      lines.push('');
    }
  }
  lines.push('## Per-epoch test accuracy', '');
  for (const r of sorted) {
    if (!r.perEpoch?.length) continue;
    lines.push(`- ${r.id} (${r.variant}): ${r.perEpoch.map((e) => `${e.epoch}: ${pct(e.testAcc)} % (${fix(e.seconds, 0)} s)`).join(', ')}`);
  }
  lines.push('', '## Commands', '');
  for (const r of sorted) lines.push(`- ${r.id} (${r.variant}, ${r.date}${r.commit ? `, commit ${r.commit}` : ''}${r.adapter ? `, ${r.adapter}` : ''}): \`${r.command}\``);
  const failed = sorted.filter((r) => r.error);
  if (failed.length) lines.push('', '## Failures', '', ...failed.map((r) => `- ${r.id} (${r.variant}): ${r.error}`));
  if (timing?.rows?.length) {
    lines.push('', `## Step times (\`npm run experiments -- --measure\`, ${timing.date}, ${timing.adapter})`, '');
    lines.push(
      'First step: pipeline compilation included. Steady: 5 steps after 2 warm-up steps, ended by a GPU readback. Projections multiply',
      "the steady step time by the full dataset's steps per epoch and the recipe's epochs (evaluation excluded).",
      '',
      '| row | batch | first step (ms) | steady ms/step | samples/s | projected min/epoch | recipe epochs | projected full recipe (h) |',
      '|---|---|---|---|---|---|---|---|',
    );
    const recipe = new Map(plans(MNIST_EPOCHS, FASHION_EPOCHS).map((p) => [p.id, p.epochs]));
    for (const t of timing.rows) {
      const e = recipe.get(String(t.id).replace(/-unfused$/, '')) ?? 0;
      lines.push(`| ${t.id} | ${t.batchSize} | ${fix(t.firstStepMs, 0)} | ${fix(t.msPerStep, 0)} | ${fix(t.samplesPerSec, 0)} | ${fix(t.projectedEpochMinutes, 1)} | ${e} | ${fix((t.projectedEpochMinutes * e) / 60, 1)} |`);
    }
  }
  lines.push(
    '',
    'bits/weight: average packed bits per quantized weight (binary 1, ternary 2; SQ layers by their final decision). Packed size:',
    'binary/ternary weights in u32 words plus one f32 scale per layer, every other parameter float32.',
    '',
  );
  return lines.join('\n');
}

async function readJson(path: string): Promise<any | null> {
  try {
    return JSON.parse(await readFile(path, 'utf8'));
  } catch {
    return null;
  }
}

async function writeAll(out: string): Promise<void> {
  const res = (await readJson(`${out}/results.json`)) ?? { rows: [] };
  const timing = await readJson(`${out}/step-times.json`);
  // results.json may carry `notes` (strings) written by whoever ran the table: the conditions of the runs
  // sections measured by other commands (RESULTS-*.md beside it, e.g. RESULTS-ptq.md from `npm run ptq`) are appended as they are
  const extra: string[] = [];
  for (const name of ['RESULTS-ptq.md', 'RESULTS-study004.md']) {
    try {
      extra.push(await readFile(`${out}/${name}`, 'utf8'));
    } catch {
      // not there
    }
  }
  const md = [markdown(res.rows as Row[], timing, (res.notes as string[] | undefined) ?? []), ...extra].join('\n');
  await writeFileAtomic(`${out}/RESULTS.md`, new TextEncoder().encode(md));
}

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2));
  const selected = plans(a.epochsMnist, a.epochsFashion, a.sqGamma).filter((p) => !a.rows || a.rows.includes(p.id));
  const enc = new TextEncoder();
  if (a.render) {
    await writeAll(a.out);
    console.error(`wrote ${a.out}/RESULTS.md`);
    return;
  }
  if (a.study004) {
    // paper 004 ("quantization as a regularizer"): float vs weight QAT on a reduced training set, 3 seeds;
    // --resume keeps finished runs, so an interrupted study continues where it stopped
    const json = `${a.out}/study004.json`;
    const flags = ['--test-limit', String(a.testLimit ?? 5000), '--json', json, '--resume', ...(a.quick ? ['--limit', '256', '--epochs', '1', '--seeds', '1'] : [])];
    console.error(`\n== study004: npm run study004 -- ${flags.join(' ')}`);
    const code = await run(process.execPath, ['run', '-A', 'examples/cli/study004.ts', ...flags]);
    const j = await readJson(json);
    if (!j) throw new Error(`experiments: the study wrote no ${json} (exit code ${code})`);
    const { formatTable, studyTable } = await import('./study004.ts');
    const runs = j.runs as { command: string }[];
    const md = [
      '## Paper 004: quantization as a regularizer (LeNet-5, reduced training set)', '',
      `\`npm run experiments -- --study004\` (runs \`npm run study004 -- ${flags.join(' ')}\`); ${runs.length} runs, each:`, '',
      ...runs.map((r) => `- \`${r.command}\``), '',
      formatTable(studyTable(j.config.quants, j.config.seeds, j.runs)), '',
    ].join('\n');
    await writeFileAtomic(`${a.out}/RESULTS-study004.md`, enc.encode(md));
    await writeAll(a.out);
    console.error(`wrote ${a.out}/RESULTS-study004.md and ${a.out}/RESULTS.md`);
    if (code !== 0) process.exit(code);
    return;
  }
  if (a.measure) {
    const gpu = await init();
    const rows: Record<string, unknown>[] = [];
    for (const p of selected) {
      rows.push(await measureRow(p, a));
      // SSPQ: also the unfused shift -> conv2d pair (the fused shift·1x1 op is the default)
      if (p.model.startsWith('sspq')) rows.push(await measureRow(p, a, false));
    }
    const prev = (await readJson(`${a.out}/step-times.json`))?.rows ?? [];
    const merged = [...prev.filter((r: any) => !rows.some((x) => x.id === r.id)), ...rows];
    await writeFileAtomic(`${a.out}/step-times.json`, enc.encode(JSON.stringify({ date: new Date().toISOString(), adapter: gpu.adapter.name, rows: merged }, null, 2) + '\n'));
    await shutdown();
    await writeAll(a.out);
    return;
  }
  const tmp = await mkdtemp(join(tmpdir(), 'webqat-exp-'));
  try {
    for (const p of selected) {
      const row = await trainRow(p, a, tmp);
      console.error(`${p.id}: ${row.error ? `FAILED: ${row.error}` : `test acc ${pct(row.testAcc)} %, ${fix(row.wallSeconds, 0)} s`}`);
      // merge into results.json now, so a long table keeps every finished row
      const res = (await readJson(`${a.out}/results.json`)) ?? { rows: [] };
      res.rows = [...(res.rows as Row[]).filter((r) => r.command !== row.command), row];
      await writeFileAtomic(`${a.out}/results.json`, enc.encode(JSON.stringify(res, null, 2) + '\n'));
      await writeAll(a.out);
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  console.error(`wrote ${a.out}/RESULTS.md and ${a.out}/results.json`);
}

main().catch((e) => {
  console.error(`experiments: ${(e as Error).message}`);
  process.exit(e instanceof Error && e.message.startsWith('experiments:') ? 2 : 1);
});
