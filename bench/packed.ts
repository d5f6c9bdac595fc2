/**
 * `npm run bench:packed` (Deno): packed model files and packed inference against the float model.
 *
 * For each run (default LeNet-5 BWN, TWN, SQ on MNIST and SSPQ20 W1A4 on Fashion-MNIST): train a short run with
 * `npm run train -- --save` (or reuse the checkpoint if it exists in --dir), export it with
 * `npm run export`, then evaluate the test set twice — the float model with the same
 * quantizers (what training evaluates) and the packed file through `loadPacked` — and report
 * accuracy, how many images the two classify differently, the max logit difference, file sizes
 * (packed file, float32 checkpoint of the model tensors, size report) and GPU bytes held (packed
 * model: its weight arena; float model: its parameters plus the cached quantized weights of eval),
 * and ms/image of each (batches of 250, after one untimed batch that compiles the pipelines).
 *
 *   npm run bench:packed -- [--runs lenet5:bwn,lenet5:twn,lenet5:sq,sspq20:dorefa:w1a4] [--epochs 1] [--limit 8192]
 *                           [--test-limit 10000] [--dir /tmp/webqat-packed] [--json out.json]
 * (SSPQ20 trains on --limit / 8 samples: a step costs ~30x a LeNet-5 step on a CPU adapter.)
 */
import process from 'node:process';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import * as wq from '../src/index.ts';
import '../src/models/sspq.ts'; // registers sspq20

const cmd = new Command('bench:packed')
  .option('--runs <list>', 'comma-separated model:quant runs', 'lenet5:bwn,lenet5:twn,lenet5:sq,sspq20:dorefa:w1a4')
  .option('--epochs <n>', 'training epochs per model', '1')
  .option('--limit <n>', 'training samples (SSPQ: an eighth)', '8192')
  .option('--test-limit <n>', 'test images evaluated', '10000')
  .option('--dir <dir>', 'where checkpoints and packed files go (reused when present)', '/tmp/webqat-packed')
  .option('--json <file>', 'write the rows as JSON here')
  .parse(process.argv.slice(2), { from: 'user' });
const o = cmd.opts<{ runs: string; epochs: string; limit: string; testLimit: string; dir: string; json?: string }>();
mkdirSync(o.dir, { recursive: true });

function npm(args: string[]): string {
  const r = spawnSync('npm', ['run', '-s', ...args], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
  if (r.status !== 0) throw new Error(`npm run ${args.join(' ')} failed:\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

const gpu = await wq.init();
const per = 28 * 28;
const B = 250;
const sets = new Map<string, { images: Uint8Array; labels: Int32Array; norm: Float32Array }>();
async function testSet(name: string) {
  if (!sets.has(name)) {
    const d = (await wq.loadDataset(name)).test;
    const m = Math.min(Number(o.testLimit), d.labels.length);
    const images = (d.images as Uint8Array).subarray(0, m * per);
    sets.set(name, { images, labels: d.labels.subarray(0, m), norm: Float32Array.from(images, (v) => (v / 255 - d.mean[0]) / d.std[0]) });
  }
  return sets.get(name)!;
}

interface Row {
  model: string;
  dataset: string;
  quant: string;
  layers: string;
  floatAcc: number;
  packedAcc: number;
  disagree: number;
  maxLogitDiff: number;
  packedFileBytes: number;
  packedTensorBytes: number;
  reportPackedBytes: number;
  float32CheckpointBytes: number;
  float32ModelBytes: number;
  gpuPackedBytes: number;
  gpuFloatBytes: number;
  floatParamAndCacheBytes: number;
  packedMsPerImage: number;
  floatMsPerImage: number;
}
const rows: Row[] = [];

for (const run of o.runs.split(',')) {
  const colon = run.indexOf(':');
  const modelName = run.slice(0, colon);
  const quant = run.slice(colon + 1);
  const sspq = modelName.startsWith('sspq');
  const dataset = sspq ? 'fashion-mnist' : 'mnist';
  const { images, labels, norm } = await testSet(dataset);
  const n = labels.length;
  const tag = `${modelName}-${quant.replace(/[^a-z0-9]+/gi, '_')}`;
  const ck = join(o.dir, `${tag}.ck.safetensors`);
  const file = join(o.dir, `${tag}.safetensors`);
  if (!existsSync(ck)) {
    const limit = String(sspq ? Math.max(256, Math.floor(Number(o.limit) / 8)) : Number(o.limit));
    console.error(`training ${modelName} --quant ${quant} on ${dataset} (${o.epochs} epoch(s), ${limit} samples) ...`);
    npm(['train', '--', '--model', modelName, '--dataset', dataset, '--quant', quant, '--epochs', o.epochs, '--limit', limit, '--test-limit', '500', '--save', ck, '--quiet']);
  }
  const ex = JSON.parse(npm(['export', '--', '--checkpoint', ck, '--out', file, '--json']));

  // the float model with the same quantizers, as training evaluates it
  const before = wq.memory().inUseBytes;
  const c = await wq.readCheckpoint(ck);
  const model = wq.createModel(modelName, c.meta.modelConfig as wq.ModelOptions);
  if (!sspq) wq.quantizeModel(model, wq.parseQuantSpec(quant));
  wq.restoreCheckpoint(c, model, null);
  model.eval();
  for (const [, l] of wq.quantLayers(model)) await l.wq.calibrate(); // fixed/log ranges, as the export does
  // float32 checkpoint of the model alone (no optimizer state)
  const floatCk = await wq.encodeCheckpoint(model, null, { ...c.meta });
  const floatLogits = new Float32Array(n * 10);
  // one untimed batch first (pipeline compilation, tier-2 kernels awaited), so ms/image is the steady state
  const warm = wq.tidy(() => wq.noGrad(() => model.forward(wq.tensor(norm.subarray(0, Math.min(B, n) * per), [Math.min(B, n), 1, 28, 28]))));
  await warm.data();
  warm.release();
  await gpu.tuner.settle();
  let t0 = performance.now();
  for (let i = 0; i < n; i += B) {
    const m = Math.min(B, n - i);
    const out = wq.tidy(() => wq.noGrad(() => model.forward(wq.tensor(norm.subarray(i * per, (i + m) * per), [m, 1, 28, 28]))));
    floatLogits.set((await out.data()) as Float32Array, i * 10);
    out.release();
  }
  const floatMs = (performance.now() - t0) / n;
  await wq.sync();
  // memory(): buffers in use after the evaluation = the model's parameters and buffers and the eval
  // cache of its quantized weights (activations went back to the pool); pool size classes round up
  const gpuFloat = wq.memory().inUseBytes - before;
  let paramBytes = 0;
  for (const p of model.parameters()) paramBytes += p.size * 4;
  for (const b of model.buffers()) paramBytes += b.size * 4;
  for (const [, l] of wq.quantLayers(model)) paramBytes += l.weight.size * 4;

  const pm = await wq.loadPacked(file, { gpu });
  const packedLogits = new Float32Array(n * 10);
  await pm.logits(images.subarray(0, Math.min(B, n) * per)); // untimed: compilation
  t0 = performance.now();
  for (let i = 0; i < n; i += B) {
    const m = Math.min(B, n - i);
    packedLogits.set(await pm.logits(images.subarray(i * per, (i + m) * per)), i * 10);
  }
  const packedMs = (performance.now() - t0) / n;
  const argmax = (v: Float32Array, i: number) => {
    let b = 0;
    for (let j = 1; j < 10; j++) if (v[i * 10 + j] > v[i * 10 + b]) b = j;
    return b;
  };
  let fc = 0, pc = 0, dis = 0, md = 0;
  for (let i = 0; i < n; i++) {
    const f = argmax(floatLogits, i), p = argmax(packedLogits, i);
    if (f === labels[i]) fc++;
    if (p === labels[i]) pc++;
    if (f !== p) dis++;
    for (let j = 0; j < 10; j++) md = Math.max(md, Math.abs(floatLogits[i * 10 + j] - packedLogits[i * 10 + j]));
  }
  const row: Row = {
    model: modelName,
    dataset: `${dataset} (${n} test images)`,
    quant,
    layers: ['binary', 'ternary', 'fixed', 'log', 'float']
      .map((k) => [k, ex.layers.filter((l: { kind: string }) => l.kind === k).length] as const)
      .filter(([, c]) => c > 0)
      .map(([k, c]) => `${c} ${k}`)
      .join(', '),
    floatAcc: fc / n,
    packedAcc: pc / n,
    disagree: dis,
    maxLogitDiff: md,
    packedFileBytes: statSync(file).size,
    packedTensorBytes: ex.tensorBytes,
    reportPackedBytes: ex.reportPackedBytes,
    float32CheckpointBytes: floatCk.length,
    float32ModelBytes: ex.float32Bytes,
    gpuPackedBytes: pm.memory().bytes,
    gpuFloatBytes: gpuFloat,
    floatParamAndCacheBytes: paramBytes,
    packedMsPerImage: packedMs,
    floatMsPerImage: floatMs,
  };
  rows.push(row);
  console.log(JSON.stringify(row));
  pm.dispose();
  model.release();
}

const kib = (b: number) => `${(b / 1024).toFixed(1)} KiB`;
console.log(`\nadapter: ${gpu.adapter.name} (${gpu.adapter.runtime})\n`);
console.log('| model | --quant | layers | float acc | packed acc | images classified differently | max logit diff | packed file | float32 checkpoint (model only) | GPU bytes: packed | GPU bytes: float model |');
console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
for (const r of rows) {
  console.log(
    `| ${r.model}, ${r.dataset} | ${r.quant} | ${r.layers} | ${(100 * r.floatAcc).toFixed(2)} % | ${(100 * r.packedAcc).toFixed(2)} % | ${r.disagree} | ${r.maxLogitDiff.toExponential(1)} | ` +
      `${r.packedFileBytes} B (${kib(r.packedFileBytes)}; tensors ${r.packedTensorBytes} B = report ${r.reportPackedBytes} B) | ${r.float32CheckpointBytes} B (${kib(r.float32CheckpointBytes)}) | ` +
      `${r.gpuPackedBytes} B (${kib(r.gpuPackedBytes)}) | ${r.gpuFloatBytes} B (${kib(r.gpuFloatBytes)}) |`,
  );
}
if (o.json) writeFileSync(o.json, JSON.stringify({ adapter: gpu.adapter.name, runtime: gpu.adapter.runtime, rows }, null, 2) + '\n');
await wq.shutdown();
