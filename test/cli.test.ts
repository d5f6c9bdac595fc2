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

const MODELS = ['mlp', 'lenet5', 'resnet20'];

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
    usage(['--model', 'vgg'], /unknown model 'vgg'; accepted models: mlp, lenet5, resnet20/);
    usage(['--dataset', 'svhn'], /'svhn' is invalid.*mnist, fashion-mnist, cifar10, cifar100/);
    usage(['--epochs', '0'], /--epochs must be an integer >= 1, got '0'/);
    usage(['--lr', 'fast'], /--lr must be a number >= 0, got 'fast'/);
    usage(['--optimizer', 'lion'], /'lion' is invalid.*sgd, adam, adamw/);
    usage(['extra'], /too many arguments|unexpected argument/i);
    assert.throws(() => parseTrainArgs(['--help'], MODELS), (e: unknown) => e instanceof UsageError && e.exitCode === 0 && /--batch-size/.test(e.message));
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
});
