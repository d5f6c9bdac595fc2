/**
 * `npm run export` as a Deno subprocess: a checkpoint written here becomes a packed file that
 * loadPacked runs to the same logits as the model; a checkpoint that does not record its quantizer
 * needs --quant (exit 2 without it, 1 when it does not match the checkpoint's tensors).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as wq from '../src/index.ts';
import { assertClose, randArray, setup } from './helpers.ts';

function exportCli(args: string[]): { code: number | null; out: string; err: string } {
  const env = { ...process.env } as Record<string, string>;
  env.VK_ICD_FILENAMES ??= '/usr/share/vulkan/icd.d/lvp_icd.x86_64.json';
  env.XDG_RUNTIME_DIR ??= '/tmp';
  env.NO_COLOR = '1';
  const r = spawnSync('npx', ['deno', 'run', '-A', 'examples/cli/export.ts', ...args], { encoding: 'utf8', env, timeout: 120_000 });
  return { code: r.status, out: r.stdout ?? '', err: r.stderr ?? '' };
}

let dir = '';
let gpu: wq.Gpu;
before(async () => {
  gpu = await setup();
  dir = await mkdtemp(join(tmpdir(), 'webqat-export-'));
});
after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('npm run export', () => {
  it('checkpoint (mlp, TWN, --quant given) -> packed file that predicts like the model', async () => {
    const config = { inChannels: 1, numClasses: 10, inputSize: 8, seed: 5, hidden: [48, 24] };
    const model = wq.createModel('mlp', config);
    wq.quantizeModel(model, wq.parseQuantSpec('twn'), { quantizeLast: true });
    const ck = join(dir, 'mlp.ck.safetensors');
    await wq.saveCheckpoint(ck, model, null, { model: 'mlp', modelConfig: config, dataset: 'mnist', seed: 5, epoch: 1, stepInEpoch: 0, step: 10 });
    const out = join(dir, 'mlp.safetensors');

    const missing = exportCli(['--checkpoint', ck, '--out', out]);
    assert.equal(missing.code, 2, missing.err + missing.out);
    assert.match(missing.err, /does not record its quantizer; give the --quant it was trained with/);
    const wrong = exportCli(['--checkpoint', ck, '--out', out, '--quant', 'sq', '--quantize-last']);
    assert.equal(wrong.code, 1, wrong.err + wrong.out);
    assert.match(wrong.err, /sq_alpha' of the model is missing from the checkpoint.*is --quant sq/);

    const r = exportCli(['--checkpoint', ck, '--out', out, '--quant', 'twn', '--quantize-last', '--json']);
    assert.equal(r.code, 0, r.err + r.out);
    const s = JSON.parse(r.out);
    assert.equal(s.tensorBytes, s.reportPackedBytes);
    assert.equal(s.fileBytes, (await stat(out)).size);
    assert.deepEqual(s.layers.map((l: { kind: string }) => l.kind), ['float', 'ternary', 'ternary']);
    // 48·24 + 24·10 ternary weights at 2 bits, one scale each, the rest f32
    assert.equal(s.tensorBytes, 64 * 48 * 4 + 48 * 4 + Math.ceil((48 * 24) / 16) * 4 + 4 + 24 * 4 + Math.ceil(240 / 16) * 4 + 4 + 10 * 4);

    const m = await wq.loadPacked(out, { gpu });
    assert.equal(m.meta.quant, 'twn');
    assert.deepEqual(m.meta.normalization, { mean: [wq.MNIST_MEAN], std: [wq.MNIST_STD] });
    const x = randArray(3 * 64, 21, 0, 1);
    const norm = Float32Array.from(x, (v) => (v - wq.MNIST_MEAN) / wq.MNIST_STD);
    model.eval();
    const xt = wq.tensor(norm, [3, 1, 8, 8]);
    const y = wq.noGrad(() => model.forward(xt));
    assertClose(await m.logits(x), (await y.data()) as Float32Array, 1e-4, 1e-4, 'mlp logits');
    xt.release();
    y.release();
    m.dispose();
    model.release();
  });

  it('checkpoint (mlp, log:5 in the setup) -> version-2 file of 5-bit codes; ranges calibrated from the trained weights', async () => {
    const config = { inChannels: 1, numClasses: 10, inputSize: 8, seed: 6, hidden: [40, 24] };
    const model = wq.createModel('mlp', config);
    const spec = wq.parseQuantSpec('log:5');
    wq.quantizeModel(model, spec, { quantizeLast: true });
    const ck = join(dir, 'mlp-log.ck.safetensors');
    await wq.saveCheckpoint(ck, model, null, { model: 'mlp', modelConfig: config, dataset: 'mnist', seed: 6, epoch: 1, stepInEpoch: 0, step: 10, setup: { quant: spec.name, quantizeLast: true } });
    const out = join(dir, 'mlp-log.safetensors');
    const r = exportCli(['--checkpoint', ck, '--out', out, '--json']);
    assert.equal(r.code, 0, r.err + r.out);
    const s = JSON.parse(r.out);
    assert.equal(s.tensorBytes, s.reportPackedBytes);
    assert.deepEqual(s.layers.map((l: { kind: string }) => l.kind), ['float', 'log', 'log']);
    // 40·24 and 24·10 weights at 5 bits, one scale each, the rest f32
    assert.equal(s.tensorBytes, 64 * 40 * 4 + 40 * 4 + Math.ceil((40 * 24 * 5) / 32) * 4 + 4 + 24 * 4 + Math.ceil((240 * 5) / 32) * 4 + 4 + 10 * 4);

    const m = await wq.loadPacked(out, { gpu });
    assert.equal(m.meta.quant, 'log:5');
    for (const [, l] of wq.quantLayers(model)) await l.wq.calibrate();
    const x = randArray(3 * 64, 22, 0, 1);
    const norm = Float32Array.from(x, (v) => (v - wq.MNIST_MEAN) / wq.MNIST_STD);
    model.eval();
    const xt = wq.tensor(norm, [3, 1, 8, 8]);
    const y = wq.noGrad(() => model.forward(xt));
    assertClose(await m.logits(x), (await y.data()) as Float32Array, 1e-4, 1e-4, 'mlp log:5 logits');
    xt.release();
    y.release();
    m.dispose();
    model.release();
  });
});
