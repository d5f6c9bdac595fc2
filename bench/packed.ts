/**
 * `npm run bench:packed` (Deno): packed model files and packed inference against the float model.
 *
 * For each --quant (default bwn, twn, sq) on LeNet-5 / MNIST: train a short run with
 * `npm run train -- --save` (or reuse the checkpoint if it exists in --dir), export it with
 * `npm run export`, then evaluate the whole MNIST test set twice — the float model with the same
 * quantizers (what training evaluates) and the packed file through `loadPacked` — and report
 * accuracy, how many images the two classify differently, the max logit difference, file sizes
 * (packed file, float32 checkpoint of the model tensors, size report) and GPU bytes held (packed
 * model: its weight arena; float model: its parameters plus the cached quantized weights of eval).
 *
 *   npm run bench:packed -- [--quant bwn,twn,sq] [--epochs 1] [--limit 8192] [--dir /tmp/webqat-packed] [--json out.json]
 */
import process from 'node:process';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import * as wq from '../src/index.ts';

const cmd = new Command('bench:packed')
  .option('--quant <list>', 'comma-separated --quant specs', 'bwn,twn,sq')
  .option('--epochs <n>', 'training epochs per model', '1')
  .option('--limit <n>', 'training samples', '8192')
  .option('--dir <dir>', 'where checkpoints and packed files go (reused when present)', '/tmp/webqat-packed')
  .option('--json <file>', 'write the rows as JSON here')
  .parse(process.argv.slice(2), { from: 'user' });
const o = cmd.opts<{ quant: string; epochs: string; limit: string; dir: string; json?: string }>();
mkdirSync(o.dir, { recursive: true });

function npm(args: string[]): string {
  const r = spawnSync('npm', ['run', '-s', ...args], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
  if (r.status !== 0) throw new Error(`npm run ${args.join(' ')} failed:\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

const gpu = await wq.init();
const data = await wq.loadDataset('mnist');
const test = data.test;
const per = 28 * 28;
const n = test.labels.length;
const norm = Float32Array.from(test.images as Uint8Array, (v) => (v / 255 - wq.MNIST_MEAN) / wq.MNIST_STD);
const B = 500;

interface Row {
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

for (const quant of o.quant.split(',')) {
  const tag = quant.replace(/[^a-z0-9]+/gi, '_');
  const ck = join(o.dir, `lenet5-${tag}.ck.safetensors`);
  const file = join(o.dir, `lenet5-${tag}.safetensors`);
  if (!existsSync(ck)) {
    console.error(`training lenet5 --quant ${quant} (${o.epochs} epoch(s), ${o.limit} samples) ...`);
    npm(['train', '--', '--quant', quant, '--epochs', o.epochs, '--limit', o.limit, '--save', ck, '--quiet']);
  }
  const ex = JSON.parse(npm(['export', '--', '--checkpoint', ck, '--out', file, '--json']));

  // the float model with the same quantizers, as training evaluates it
  const before = wq.memory().inUseBytes;
  const c = await wq.readCheckpoint(ck);
  const model = wq.createModel('lenet5', c.meta.modelConfig as wq.ModelOptions);
  wq.quantizeModel(model, wq.parseQuantSpec(quant));
  wq.restoreCheckpoint(c, model, null);
  model.eval();
  // float32 checkpoint of the model alone (no optimizer state)
  const floatCk = await wq.encodeCheckpoint(model, null, { ...c.meta });
  const floatLogits = new Float32Array(n * 10);
  let t0 = performance.now();
  for (let i = 0; i < n; i += B) {
    const m = Math.min(B, n - i);
    const out = wq.tidy(() => wq.noGrad(() => model.forward(wq.tensor(norm.subarray(i * per, (i + m) * per), [m, 1, 28, 28]))));
    floatLogits.set((await out.data()) as Float32Array, i * 10);
    out.release();
  }
  const floatMs = (performance.now() - t0) / n;
  await wq.sync();
  // memory(): buffers in use after the evaluation = the model's parameters and the eval cache of its
  // quantized weights (activations went back to the pool); pool size classes round each up
  const gpuFloat = wq.memory().inUseBytes - before;
  let paramBytes = 0;
  for (const p of model.parameters()) paramBytes += p.size * 4;
  for (const [, l] of wq.quantLayers(model)) paramBytes += l.weight.size * 4;

  const pm = await wq.loadPacked(file, { gpu });
  const packedLogits = new Float32Array(n * 10);
  t0 = performance.now();
  for (let i = 0; i < n; i += B) {
    const m = Math.min(B, n - i);
    packedLogits.set(await pm.logits(test.images.subarray(i * per, (i + m) * per) as Uint8Array), i * 10);
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
    if (f === test.labels[i]) fc++;
    if (p === test.labels[i]) pc++;
    if (f !== p) dis++;
    for (let j = 0; j < 10; j++) md = Math.max(md, Math.abs(floatLogits[i * 10 + j] - packedLogits[i * 10 + j]));
  }
  const row: Row = {
    quant,
    layers: ex.layers.map((l: { kind: string }) => l.kind).join('/'),
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
console.log(`\nadapter: ${gpu.adapter.name} (${gpu.adapter.runtime}); MNIST test set, ${n} images\n`);
console.log('| --quant | layers | float acc | packed acc | images classified differently | max logit diff | packed file | float32 checkpoint (model only) | GPU bytes: packed | GPU bytes: float model |');
console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
for (const r of rows) {
  console.log(
    `| ${r.quant} | ${r.layers} | ${(100 * r.floatAcc).toFixed(2)} % | ${(100 * r.packedAcc).toFixed(2)} % | ${r.disagree} | ${r.maxLogitDiff.toExponential(1)} | ` +
      `${r.packedFileBytes} B (${kib(r.packedFileBytes)}; tensors ${r.packedTensorBytes} B = report ${r.reportPackedBytes} B) | ${r.float32CheckpointBytes} B (${kib(r.float32CheckpointBytes)}) | ` +
      `${r.gpuPackedBytes} B (${kib(r.gpuPackedBytes)}) | ${r.gpuFloatBytes} B (${kib(r.gpuFloatBytes)}) |`,
  );
}
if (o.json) writeFileSync(o.json, JSON.stringify({ adapter: gpu.adapter.name, runtime: gpu.adapter.runtime, rows }, null, 2) + '\n');
wq.shutdown();
