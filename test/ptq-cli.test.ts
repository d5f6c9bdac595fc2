/**
 * The `ptq` command: argument errors (exit 2, naming what is wrong), a checkpoint that does not fit
 * --model, a dataset that does not match the model's input, and one tiny real run (Deno subprocess)
 * that prints the per-layer table and writes --json and --save.
 */
import { after, before, describe, it } from 'node:test';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UsageError } from '../examples/cli/args.ts';
import { parsePtqArgs } from '../examples/cli/ptq-args.ts';
import { assert, setup, wq } from './helpers.ts';

const MODELS = ['mlp', 'lenet5', 'resnet20'];

function cli(args: string[], timeout = 180_000): { code: number | null; out: string; err: string } {
  const env = { ...process.env } as Record<string, string>;
  env.VK_ICD_FILENAMES ??= '/usr/share/vulkan/icd.d/lvp_icd.x86_64.json';
  env.XDG_RUNTIME_DIR ??= '/tmp';
  env.NO_COLOR = '1';
  const r = spawnSync('npx', ['deno', 'run', '-A', 'examples/cli/ptq.ts', ...args], { encoding: 'utf8', env, timeout });
  return { code: r.status, out: r.stdout ?? '', err: r.stderr ?? '' };
}

let dir = '';
let lenet = '';
let anonMlp = '';
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'webqat-ptq-'));
  await setup();
  // an (untrained) LeNet-5 checkpoint as `train --save` writes it, and an MLP one without a model name
  const meta = { modelConfig: { inChannels: 1, numClasses: 10, inputSize: 28, seed: 0 }, dataset: 'mnist', seed: 0, epoch: 1, stepInEpoch: 0, step: 0 };
  const m = wq.createModel('lenet5', meta.modelConfig);
  lenet = join(dir, 'lenet.safetensors');
  await wq.saveCheckpoint(lenet, m, null, { ...meta, model: 'lenet5' });
  m.release();
  const p = wq.createModel('mlp', meta.modelConfig);
  anonMlp = join(dir, 'mlp.safetensors');
  await wq.saveCheckpoint(anonMlp, p, null, meta);
  p.release();
});
after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('ptq argument parsing', () => {
  const usage = (argv: string[], re: RegExp) =>
    assert.throws(() => parsePtqArgs(argv, MODELS), (e: unknown) => e instanceof UsageError && e.exitCode === 2 && re.test(e.message), argv.join(' '));

  it('defaults, and each bad value named with what is accepted', () => {
    const a = parsePtqArgs(['--checkpoint', 'x.safetensors'], MODELS);
    assert.equal(a.method, 'mxqn');
    assert.deepEqual([a.weightBits, a.actBits, a.calibBatches], [8, 8, 10]);
    assert.deepEqual(a.logM, [1, 2, 4]);
    assert.equal(parsePtqArgs(['--checkpoint', 'x', '--bits', 'W6A4', '--method', 'log', '--log-m', '2'], MODELS).actBits, 4);
    usage([], /required option '--checkpoint <file>' not specified/);
    usage(['--checkpoint', 'x', '--bits', 'w0a8'], /--bits: bits must be wXaY with X \(weight bits\) and Y \(activation bits\) integers in 2\.\.16, e\.g\. w8a8, got 'w0a8'/);
    usage(['--checkpoint', 'x', '--calib-batches', '0'], /--calib-batches must be an integer >= 1, got '0'/);
    usage(['--checkpoint', 'x', '--method', 'int8'], /'int8' is invalid.*mxqn, fixed, log/);
    usage(['--checkpoint', 'x', '--log-m', '3'], /--log-m must be a comma-separated list of 1, 2, 4/);
    usage(['--checkpoint', 'x', '--model', 'vgg'], /unknown model 'vgg'; accepted models: mlp, lenet5, resnet20/);
    usage(['--checkpoint', 'x', '--dataset', 'svhn'], /'svhn' is invalid.*mnist, fashion-mnist, cifar10, cifar100/);
    assert.throws(() => parsePtqArgs(['--help'], MODELS), (e: unknown) => e instanceof UsageError && e.exitCode === 0 && /--calib-batches/.test(e.message));
  });
});

describe('ptq command (Deno subprocess)', () => {
  it('bad input exits 2 naming what is wrong', () => {
    const bits = cli(['--checkpoint', lenet, '--bits', 'w0a8']);
    assert.equal(bits.code, 2, bits.err);
    assert.match(bits.err, /--bits: .*got 'w0a8'/);
    const cb = cli(['--checkpoint', lenet, '--calib-batches', '0']);
    assert.equal(cb.code, 2, cb.err);
    assert.match(cb.err, /--calib-batches must be an integer >= 1, got '0'/);
    const other = cli(['--checkpoint', lenet, '--model', 'mlp']);
    assert.equal(other.code, 2, other.err);
    assert.match(other.err, /holds a 'lenet5' model, not --model 'mlp'/);
    const misfit = cli(['--checkpoint', anonMlp, '--model', 'lenet5']);
    assert.equal(misfit.code, 2, misfit.err);
    assert.match(misfit.err, /does not fit --model lenet5: .*tensor 'features\.0\.weight' of the model is missing from the checkpoint/);
    const ds = cli(['--checkpoint', lenet, '--dataset', 'cifar10']);
    assert.equal(ds.code, 2, ds.err);
    assert.match(ds.err, /--dataset cifar10 gives 3x32x32 inputs with 10 classes, but the checkpoint's lenet5 was built for 1x28x28 inputs with 10 classes/);
    const fm = cli(['--checkpoint', lenet, '--dataset', 'fashion-mnist']);
    assert.equal(fm.code, 2, fm.err);
    assert.match(fm.err, /was trained on 'mnist', not --dataset 'fashion-mnist'/);
  });

  it('a tiny run prints the table and accuracies, writes --json and --save', async () => {
    const json = join(dir, 'ptq.json');
    const saved = join(dir, 'q.safetensors');
    const r = cli(['--checkpoint', lenet, '--bits', 'w6a6', '--calib-batches', '2', '--calib-batch-size', '50', '--test-limit', '300', '--json', json, '--save', saved]);
    assert.equal(r.code, 0, r.err + r.out);
    assert.match(r.out, /float test accuracy [\d.]+%/);
    assert.match(r.out, /layer +W +f +W dB \| +A +max +oct +fixed +log2 +log√2 +log⁴√2 \| chosen/);
    assert.match(r.out, /features\.0 +6 +-?\d+ +[\d.]+ \| +6 /);
    assert.match(r.out, /quantized test accuracy [\d.]+% \(float [\d.]+%, [+-][\d.]+ pp\)/);
    const rep = JSON.parse(await readFile(json, 'utf8'));
    assert.equal(rep.status, 'ok');
    assert.equal(rep.layers.length, 5);
    assert.equal(rep.testSamples, 300);
    for (const l of rep.layers) {
      assert.equal(l.weight.quantizer.bits, 6);
      assert.equal(l.act.quantizer.bits, 6);
      assert.equal(l.act.candidates.length, 12);
      assert.equal(l.act.histogram.counts.reduce((s: number, v: number) => s + v, 0), l.act.count);
    }
    const file = wq.decodeSafetensors(new Uint8Array(await readFile(saved)));
    assert.equal(file.metadata.format, 'webqat-ptq');
    const plan = JSON.parse(file.metadata.ptq);
    assert.equal(plan[0].name, 'features.0');
    const w = wq.typedArrayOf(file.tensors.get('features.0.weight')!) as Float32Array;
    const f = plan[0].weight.frac;
    assert.ok(Array.from(w).every((v) => Number.isInteger(v * 2 ** f) && Math.abs(v * 2 ** f) <= 32), 'saved weights are 6-bit codes · 2^-f');
  });
});
