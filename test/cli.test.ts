/**
 * The `train` command, run as a subprocess with Deno: usage errors exit with code 2 and say what is
 * accepted, --help exits 0, and a tiny real run (--limit) writes its JSON report.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseTrainArgs, UsageError } from '../examples/cli/args.ts';

const MODELS = ['mlp', 'lenet5', 'resnet20', 'sspq20'];

function cli(args: string[], timeout = 120_000): { code: number | null; out: string; err: string } {
  const env = { ...process.env } as Record<string, string>;
  env.VK_ICD_FILENAMES ??= '/usr/share/vulkan/icd.d/lvp_icd.x86_64.json';
  env.XDG_RUNTIME_DIR ??= '/tmp';
  env.NO_COLOR = '1';
  const r = spawnSync('npx', ['deno', 'run', '-A', 'examples/cli/train.ts', ...args], { encoding: 'utf8', env, timeout });
  return { code: r.status, out: r.stdout ?? '', err: r.stderr ?? '' };
}

let dir = '';
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'webqat-cli-'));
});
after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('train argument parsing', () => {
  it('applies per-model defaults and records which flags were given', () => {
    const a = parseTrainArgs([], MODELS);
    assert.equal(a.model, 'lenet5');
    assert.equal(a.dataset, 'mnist');
    assert.equal(a.optimizer, 'adam');
    assert.equal(a.given.size, 0);
    const r = parseTrainArgs(['--model', 'resnet20', '--dataset', 'cifar10', '--lr', '0.05', '--limit', '100'], MODELS);
    assert.equal(r.optimizer, 'sgd');
    assert.equal(r.lr, 0.05);
    assert.equal(r.limit, 100);
    assert.ok(r.given.has('lr') && r.given.has('model') && !r.given.has('epochs'));
  });

  it('rejects unknown flags, models, datasets and bad numbers with exit code 2', () => {
    const usage = (argv: string[], re: RegExp) =>
      assert.throws(() => parseTrainArgs(argv, MODELS), (e: unknown) => e instanceof UsageError && e.exitCode === 2 && re.test(e.message));
    usage(['--bogus'], /unknown option '--bogus'[\s\S]*accepted options: .*--model.*--dataset/);
    usage(['--model', 'vgg'], /unknown model 'vgg'; accepted models: mlp, lenet5, resnet20, sspq20/);
    usage(['--dataset', 'svhn'], /'svhn' is invalid.*mnist, fashion-mnist, cifar10, cifar100/);
    usage(['--epochs', '0'], /--epochs must be an integer >= 1, got '0'/);
    usage(['--lr', 'fast'], /--lr must be a number >= 0, got 'fast'/);
    usage(['--optimizer', 'lion'], /'lion' is invalid.*sgd, adam, adamw/);
    usage(['extra'], /too many arguments|unexpected argument/i);
    assert.throws(() => parseTrainArgs(['--help'], MODELS), (e: unknown) => e instanceof UsageError && e.exitCode === 0 && /--batch-size/.test(e.message));
  });
});

describe('train --quant parsing', () => {
  const usage = (argv: string[], re: RegExp) =>
    assert.throws(() => parseTrainArgs(argv, MODELS), (e: unknown) => e instanceof UsageError && e.exitCode === 2 && re.test(e.message), argv.join(' '));

  it('parses specs; SQ hyperparameters from flags; SSPQ models default to their W1A4', () => {
    assert.equal(parseTrainArgs([], MODELS).quant.name, 'fp');
    const t = parseTrainArgs(['--quant', 'twn'], MODELS);
    assert.equal(t.quant.weight.method, 'twn');
    assert.equal(t.quantizeFirst, false);
    assert.equal(t.quantizeLast, false);
    const sq = parseTrainArgs(['--quant', 'sq', '--sq-lambda', '0.01', '--sq-gamma', '0.002'], MODELS).quant;
    assert.ok(sq.weight.method === 'sq' && sq.weight.lambda === 0.01 && sq.weight.gamma === 0.002, JSON.stringify(sq.weight));
    assert.equal(sq.name, 'sq:lambda=0.01,gamma=0.002');
    const s = parseTrainArgs(['--model', 'sspq20'], MODELS);
    assert.equal(s.quant.name, 'dorefa:w1a4');
    assert.equal(parseTrainArgs(['--model', 'sspq20', '--quant', 'dorefa:w2a8'], MODELS).quant.name, 'dorefa:w2a8');
    assert.equal(parseTrainArgs(['--quant', 'inq:5', '--quantize-first', '--quantize-last'], MODELS).quantizeFirst, true);
  });

  it('unknown specs, bits out of range and SQ hyperparameters out of range: exit 2, listing what is accepted', () => {
    usage(['--quant', 'nosuch'], /--quant 'nosuch': unknown quantizer 'nosuch'\. Accepted: fp, bwn, twn, ttq, sq.*dorefa:wKaK.*inq:B/);
    usage(['--quant', 'dorefa:w9a4'], /weight bits = 9 is out of range \(1\.\.8 or 32\)\. Accepted: fp/);
    usage(['--quant', 'inq:9'], /INQ bits = 9 is out of range \(2\.\.8\)/);
    usage(['--quant', 'sq:gamma=5'], /SQ gamma = 5 is out of range \[0, 1\].*Accepted: fp/);
    usage(['--quant', 'sq', '--sq-lambda', '2'], /--sq-lambda must be a number in \[0, 1\], got '2'.*accepted: 0 <= x <= 1/);
    usage(['--quant', 'sq', '--sq-gamma', '-1'], /--sq-gamma must be a number in \[0, 1\], got '-1'/);
    usage(['--quant', 'sq', '--sq-gamma', 'big'], /--sq-gamma must be a number in \[0, 1\], got 'big'/);
    usage(['--quant', 'twn', '--sq-lambda', '0.1'], /--sq-lambda, --sq-gamma and --sq-beta-lr apply to --quant sq only.*accepted: --quant sq/);
    usage(['--quant', 'pact:a4'], /quantizes activations.*only the SSPQ models.*fp, bwn, twn/);
    usage(['--model', 'sspq20', '--quant', 'twn'], /Accepted for SSPQ models: dorefa:wKaK/);
  });
});

describe('train command (Deno subprocess)', () => {
  it('exits 2 with a message for an unknown flag and an unknown model; 0 for --help', () => {
    const a = cli(['--bogus-flag']);
    assert.equal(a.code, 2, a.err);
    assert.match(a.err, /unknown option '--bogus-flag'/);
    assert.match(a.err, /accepted options: .*--model/);
    const b = cli(['--model', 'nope']);
    assert.equal(b.code, 2, b.err);
    assert.match(b.err, /unknown model 'nope'; accepted models: .*lenet5/);
    const h = cli(['--help']);
    assert.equal(h.code, 0, h.err);
    assert.match(h.out, /--resume <file>/);
  });

  it('exits 2 for a bad --quant spec and bad SQ hyperparameters', () => {
    const a = cli(['--quant', 'ternary']);
    assert.equal(a.code, 2, a.err);
    assert.match(a.err, /unknown quantizer 'ternary'\. Accepted: fp, bwn, twn/);
    const b = cli(['--quant', 'sq', '--sq-lambda', '5']);
    assert.equal(b.code, 2, b.err);
    assert.match(b.err, /--sq-lambda must be a number in \[0, 1\]/);
  });

  it('exits 1 with a clear message when CIFAR has no data directory', () => {
    const r = cli(['--model', 'resnet20', '--dataset', 'cifar10', '--quiet']);
    assert.equal(r.code, 1, r.err);
    assert.match(r.err, /cifar10: no data directory given/);
  });

  it('trains a tiny run and writes the JSON report', async () => {
    const json = join(dir, 'run.json');
    const r = cli(['--model', 'mlp', '--limit', '512', '--test-limit', '200', '--epochs', '1', '--batch-size', '64', '--lr', '0.003', '--json', json, '--quiet']);
    assert.equal(r.code, 0, r.err + r.out);
    assert.match(r.out, /epoch 1\/1 +train loss [\d.]+ acc [\d.]+% +test loss [\d.]+ acc [\d.]+%/);
    const rep = JSON.parse(await readFile(json, 'utf8'));
    assert.equal(rep.status, 'ok');
    assert.equal(rep.epochs.length, 1);
    assert.equal(rep.trainSamples, 512);
    assert.ok(rep.finalTestAcc > 0.3, `accuracy ${rep.finalTestAcc}`);
    assert.equal(typeof rep.adapter, 'string');
    assert.ok(rep.wallSeconds > 0);
  });

  it('trains a tiny SQ-quantized run: per-layer epoch lines, final bits/weight and sizes, --json', async () => {
    const json = join(dir, 'quant.json');
    const r = cli(['--model', 'mlp', '--quant', 'sq', '--sq-lambda', '0.01', '--limit', '512', '--test-limit', '200', '--epochs', '2', '--batch-size', '64', '--lr', '0.003', '--json', json, '--quiet'], 300_000);
    assert.equal(r.code, 0, r.err + r.out);
    // MLP 784-256-128-10: only the middle layer is quantized (first and last stay float)
    assert.match(r.out, /quantization: --quant sq:lambda=0\.01; 1 quantized layer\(s\): layers\.\d+; first\/last layer float\/float/);
    assert.match(r.out, /epoch 2\/2 .*\n +layers\.\d+ +(binary|ternary) +scale +[\d.e-]+ +flips +[\d.]+% +zeros +[\d.]+%/);
    assert.match(r.out, /quantized weights: 32768 of \d+ parameters at [12]\.000 bits\/weight \(SQ: [01] binary, [01] ternary layers/);
    assert.match(r.out, /model size: [\d.]+ KiB as trained \(float32\), [\d.]+ KiB packed/);
    const rep = JSON.parse(await readFile(json, 'utf8'));
    assert.equal(rep.status, 'ok');
    assert.equal(rep.quant.spec, 'sq:lambda=0.01');
    const l = rep.epochs[1].extra.quant.layers[0];
    assert.ok(l.mode === 'binary' || l.mode === 'ternary', l.mode);
    assert.ok(l.flipRatio >= 0 && l.flipRatio <= 1, `flip ratio ${l.flipRatio}`);
    assert.ok(l.scale > 0 && l.sq.tanBeta >= 1, JSON.stringify(l));
    assert.equal(rep.quant.quantizedWeights, 256 * 128);
    assert.equal(rep.quant.floatBytes, rep.parameters * 4);
    // the quantized layer packs at 1 (binary) or 2 (ternary) bits in u32 words plus one f32 scale;
    // its SQ α and β (2 float parameters) fold into that scale and are not stored
    const fin = rep.quant.layers[0];
    assert.equal(rep.quant.packedBytes, rep.quant.floatBytes - 32768 * 4 + (fin.mode === 'binary' ? 1024 * 4 : 2048 * 4) + 4 - 2 * 4);
    assert.equal(rep.quant.bitsPerWeight, fin.mode === 'binary' ? 1 : 2);
    assert.ok(rep.finalTestAcc > 0.3, `accuracy ${rep.finalTestAcc}`);
  });
});
