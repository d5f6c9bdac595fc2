/**
 * `npm run tune -- [--models lenet5:64,...] [--write] [--json FILE]` (Deno; or `npx tsx bench/tune.ts`
 * for Dawn): run the autotuner (src/gpu/tune.ts) on this adapter for the kernel shapes of real
 * training and evaluation steps, ignoring the shipped table and the user cache, and print every
 * key's candidates and timings. `--write` merges the winners into src/gpu/tune-defaults.ts under
 * this adapter's class: that is how the shipped default table is made (data, measured, not typed).
 */
import process from 'node:process';
import { readFile, writeFile } from 'node:fs/promises';
import { Command } from 'commander';
import { createModel, init, SGD, shutdown, softmaxCrossEntropy, tensor, beginScope, endScope, noGrad, type Tensor } from '../src/index.ts';
import { SHIPPED } from '../src/gpu/tune-defaults.ts';
import { setFused } from '../src/models/sspq.ts';
import { parseArgs } from './util.ts';

const INPUT: Record<string, [number, number, number]> = {
  lenet5: [1, 28, 28], mlp: [1, 28, 28], resnet20: [3, 32, 32], sspq20: [3, 32, 32],
};

async function main(): Promise<number> {
  const cmd = new Command('tune')
    .option('--models <list>', 'model:batch pairs (training step + evaluation forward)', 'lenet5:64,lenet5:32,lenet5:100,mlp:128,resnet20:32,resnet20:128,sspq20:32,sspq20:128')
    .option('--eval-batch <n>', 'batch of the evaluation forward pass (default: the training batch, as the Trainer does)')
    .option('--write', 'merge the winners into src/gpu/tune-defaults.ts for this adapter class')
    .option('--json <file>', 'write every measured entry here')
    .option('--families <list>', 'time only these families (e.g. conv.fwd,conv.bwdData); the others take the shipped table')
    .option('--from-json <files>', 'measure nothing: merge the winners of earlier --json outputs (comma-separated) with --write')
    .exitOverride();
  const exit = parseArgs(cmd);
  if (exit !== null) return exit;
  const o = cmd.opts();
  if (o.fromJson) {
    const files = String(o.fromJson).split(',');
    const byClass = new Map<string, Record<string, { variant: string }>>();
    for (const f of files) {
      const j = JSON.parse(await readFile(f, 'utf8')) as { adapterClass: string; entries: Record<string, { variant: string }> };
      byClass.set(j.adapterClass, { ...(byClass.get(j.adapterClass) ?? {}), ...j.entries });
    }
    // one copy of the table takes every class, written once (a write per class would start each from the shipped module)
    const table = shippedCopy();
    for (const [cls, entries] of byClass) {
      if (o.write) mergeShipped(table, cls, entries);
      else console.log(`${cls}: ${Object.keys(entries).length} keys (add --write to merge them)`);
    }
    if (o.write) await writeShipped(table);
    return 0;
  }
  const gpu = await init({ tune: 'full' });
  const tuner = gpu.tuner;
  if (o.families) tuner.retune = new Set(String(o.families).split(','));
  else tuner.useShipped = false;
  tuner.ignoreCache();
  console.log(`adapter: ${gpu.adapter.name} (${gpu.adapter.runtime}), class ${gpu.adapterClass}`);
  const t0 = performance.now();
  for (const spec of String(o.models).split(',')) {
    const [name, b] = spec.split(':');
    const batch = Number(b ?? 32);
    const shape = INPUT[name];
    if (!shape || !Number.isInteger(batch) || batch < 1) {
      process.stderr.write(`tune: bad model spec '${spec}' (known: ${Object.keys(INPUT).join(', ')}, as name:batch)\n`);
      return 2;
    }
    for (const fused of name === 'sspq20' ? [true, false] : [true]) {
      const model = createModel(name, { inChannels: shape[0], numClasses: 10, inputSize: shape[1], seed: 1 });
      if (name === 'sspq20') setFused(model, fused);
      const opt = new SGD(model.namedParameters(), { lr: 0.01, momentum: 0.9 });
      const x = tensor(new Float32Array(batch * shape[0] * shape[1] * shape[2]).map((_, i) => Math.sin(i)), [batch, ...shape]).keep();
      const y = tensor(new Int32Array(batch).map((_, i) => i % 10), [batch], 'i32').keep();
      model.train();
      beginScope('tune step');
      let loss: Tensor | undefined;
      try {
        loss = softmaxCrossEntropy(model.call(x), y);
        loss.backward();
        opt.step();
        opt.zeroGrad();
      } finally {
        endScope();
      }
      const r1 = await tuner.tune();
      // evaluation forward at the evaluation batch
      model.eval();
      const eb = o.evalBatch === undefined ? batch : Number(o.evalBatch);
      const xe = tensor(new Float32Array(eb * shape[0] * shape[1] * shape[2]), [eb, ...shape]).keep();
      noGrad(() => model.call(xe).release());
      const r2 = await tuner.tune();
      console.log(`${name}:${batch}${name === 'sspq20' ? (fused ? ' fused' : ' unfused') : ''}: ${r1.keys + r2.keys} keys, ${r1.candidates + r2.candidates} candidates, ${((r1.ms + r2.ms) / 1000).toFixed(1)} s (${r1.clock} clock)`);
      for (const t of [x, y, xe]) t.release();
      opt.release();
      model.release();
      gpu.pool.trim();
    }
  }
  const entries = tuner.entries();
  const keys = Object.keys(entries).sort();
  for (const k of keys) {
    const e = entries[k];
    const cands = Object.entries(e.ms).sort((a, b) => a[1] - b[1]).map(([v, ms]) => `${v} ${ms.toFixed(2)}${e.compileMs?.[v] !== undefined ? `(+${e.compileMs[v].toFixed(0)})` : ''}`);
    console.log(`  ${k.padEnd(60)} -> ${e.variant.padEnd(14)} ${cands.join(', ')}`);
  }
  console.log(`tuned ${keys.length} keys in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  if (o.json) {
    await writeFile(o.json, JSON.stringify({ adapter: gpu.adapter, adapterClass: gpu.adapterClass, date: new Date().toISOString(), entries }, null, 1) + '\n');
    console.log(`wrote ${o.json}`);
  }
  if (o.write) {
    const table = shippedCopy();
    mergeShipped(table, gpu.adapterClass, entries);
    await writeShipped(table);
  }
  await shutdown();
  return 0;
}

/** Merge winners into src/gpu/tune-defaults.ts under an adapter class (exclusions are kept). */
type ShippedTable = Record<string, { winners: Record<string, string>; exclude?: readonly string[] }>;

/** Merge measured winners into `table` (a copy of the shipped table) under one adapter class. */
function mergeShipped(table: ShippedTable, adapterClass: string, entries: Record<string, { variant: string }>): void {
  const cls = table[adapterClass] ?? { winners: {} };
  const merged: Record<string, string> = { ...cls.winners, ...Object.fromEntries(Object.entries(entries).map(([k, e]) => [k, e.variant])) };
  cls.winners = Object.fromEntries(Object.entries(merged).sort(([a], [b]) => a.localeCompare(b)));
  table[adapterClass] = cls;
  console.log(`merged ${Object.keys(entries).length} winners under ${adapterClass}`);
}

/** Rewrite src/gpu/tune-defaults.ts with `table` (the file's head comment and types kept). */
async function writeShipped(table: ShippedTable): Promise<void> {
  const path = 'src/gpu/tune-defaults.ts';
  const src = await readFile(path, 'utf8');
  const head = src.slice(0, src.indexOf('export const SHIPPED'));
  await writeFile(path, `${head}export const SHIPPED: Readonly<Record<string, ShippedClass>> = ${JSON.stringify(table, null, 2)};\n`);
  console.log(`wrote ${path}`);
}

const shippedCopy = (): ShippedTable => JSON.parse(JSON.stringify(SHIPPED));

process.exit(await main());
