/**
 * The paper-004 study runner (examples/cli/study004.ts): argument errors (exit 2, naming the bad
 * value), the table arithmetic, and one tiny real study (one quantizer × 1 seed, 32 images, 1 epoch)
 * run as a subprocess of the runtime under test (Node + tsx: train runs on Dawn; Deno: on wgpu), whose
 * printed table and --json must have the right shape; a rerun with --resume trains nothing.
 */
import { after, before, describe, it } from 'node:test';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UsageError } from '../examples/cli/args.ts';
import { formatTable, parseStudyArgs, type StudyRun, studyTable, trainArgv } from '../examples/cli/study004.ts';
import { assert } from './helpers.ts';

const MODELS = ['mlp', 'lenet5', 'resnet20'];
const deno = (globalThis as unknown as { Deno?: { execPath(): string } }).Deno;

function study(args: string[], timeout = 240_000): { code: number | null; out: string; err: string } {
  const env = { ...process.env } as Record<string, string>;
  env.XDG_RUNTIME_DIR ??= '/tmp';
  env.NO_COLOR = '1';
  const [bin, pre] = deno
    ? [deno.execPath(), ['run', '-A', '--no-check', 'examples/cli/study004.ts']]
    : [process.execPath, ['--import', 'tsx', 'examples/cli/study004.ts']];
  const r = spawnSync(bin, [...pre, ...args], { encoding: 'utf8', env, timeout });
  return { code: r.status, out: r.stdout ?? '', err: r.stderr ?? '' };
}

let dir = '';
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'webqat-study004-'));
});
after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('study004 arguments', () => {
  const usage = (argv: string[], re: RegExp) =>
    assert.throws(() => parseStudyArgs(argv, MODELS), (e: unknown) => e instanceof UsageError && e.exitCode === 2 && re.test(e.message), argv.join(' '));

  it('defaults: LeNet-5, 2 000 MNIST images, 8 epochs, 3 seeds, fp + five weight quantizers', () => {
    const a = parseStudyArgs([], MODELS);
    assert.deepEqual([a.model, a.dataset, a.limit, a.epochs, a.testLimit], ['lenet5', 'mnist', 2000, 8, undefined]);
    assert.deepEqual(a.seeds, [1, 2, 3]);
    assert.deepEqual(a.quants, ['fp', 'fixed:8', 'fixed:6', 'fixed:5', 'log:5', 'inq:5']);
    // quantized runs quantize the first and last layer too (unless --float-ends); one evaluation at the end
    const f = trainArgv(a, 'fixed:5', 2);
    assert.ok(f.includes('--quantize-first') && f.includes('--quantize-last'), f.join(' '));
    assert.equal(f[f.indexOf('--eval-every') + 1], '8');
    assert.equal(f[f.indexOf('--seed') + 1], '2');
    assert.ok(!trainArgv({ ...a, floatEnds: true }, 'fixed:5', 1).includes('--quantize-first'));
    const b = parseStudyArgs(['--quants', 'fp, log:5', '--seeds', '4', '--', '--lr', '0.01'], MODELS);
    assert.deepEqual([b.quants, b.seeds, b.trainFlags], [['fp', 'log:5'], [4], ['--lr', '0.01']]);
    assert.deepEqual(trainArgv(b, 'fp', 4).slice(-2), ['--lr', '0.01']);
  });

  it('each bad value exits 2 naming it', () => {
    usage(['--quants', 'fp,fixed:1'], /--quants: 'fixed:1' is not accepted: .*fixed-point bits = 1 is out of range \(2\.\.16\)/);
    usage(['--quants', 'fp,bogus'], /--quants: 'bogus' is not accepted: .*unknown quantizer 'bogus'/);
    usage(['--quants', 'fp,fp'], /--quants: a quantizer is repeated/);
    usage(['--quants', ''], /--quants: no quantizer given/);
    usage(['--seeds', '1,x'], /--seeds: 'x' is not a seed/);
    usage(['--seeds', '1,1'], /--seeds: a seed is repeated/);
    usage(['--limit', '0'], /--limit must be an integer >= 1, got '0'/);
    usage(['--model', 'vgg'], /--model: unknown model 'vgg'; accepted models: mlp, lenet5, resnet20/);
    usage(['--dataset', 'svhn'], /'svhn' is invalid/);
    usage(['--resume'], /--resume needs --json/);
    usage(['stray'], /unexpected argument 'stray'/);
    usage(['--', '--lr', 'x'], /flags after `--` are not accepted by train: .*--lr must be a number/);
  });
});

describe('study004 table', () => {
  const run = (quant: string, seed: number, acc: number | null): StudyRun => ({
    quant, seed, command: `${quant} ${seed}`, status: acc === null ? 'failed' : 'ok', testAcc: acc, lastTrainAcc: acc === null ? null : 0.99,
    trainSamples: 10, testSamples: 10, wallSeconds: 1,
  });

  it('mean, sample std (n − 1) and Δ against the first row; a failed run is left out', () => {
    const rows = studyTable(['fp', 'fixed:8'], [1, 2, 3], [
      run('fp', 1, 0.9348), run('fp', 2, 0.927), run('fp', 3, 0.918),
      run('fixed:8', 1, 0.937), run('fixed:8', 2, null), run('fixed:8', 3, 0.9182),
    ]);
    assert.equal(rows[0].n, 3);
    assert.ok(Math.abs(rows[0].mean! - 0.9266) < 1e-9, String(rows[0].mean));
    assert.ok(Math.abs(rows[0].std! - 0.0084071) < 1e-6, String(rows[0].std)); // the reduced study's FP row: 92.66 ± 0.84
    assert.equal(rows[0].deltaPp, null);
    assert.deepEqual(rows[1].testAcc, [0.937, null, 0.9182]);
    assert.equal(rows[1].n, 2);
    assert.ok(Math.abs(rows[1].deltaPp! - 100 * ((0.937 + 0.9182) / 2 - 0.9266)) < 1e-9);
    const md = formatTable(rows).split('\n');
    assert.equal(md.length, 4);
    assert.equal(md[2], '| fp | 1, 2, 3 | 93.48, 92.70, 91.80 | 92.66 ± 0.84 |  | 99.00 |');
    assert.match(md[3], /^\| fixed:8 \| 1, 2, 3 \| 93\.70, -, 91\.82 \| 92\.76 ± 1\.33 \| \+0\.10 \| 99\.00 \|$/);
  });
});

describe('study004 end to end (tiny)', () => {
  it('a bad --quants value: exit 2 naming it, before anything trains', () => {
    const r = study(['--quants', 'fp,fixed:1,log:5', '--seeds', '1'], 60_000);
    assert.equal(r.code, 2, r.err);
    assert.match(r.err, /^study004: --quants: 'fixed:1' is not accepted: .*out of range \(2\.\.16\)/);
    assert.ok(!/== study004: npm run train/.test(r.err), r.err);
    assert.equal(r.out, '');
  });

  it(`trains fixed:8 once (${deno ? 'Deno: wgpu' : 'Node: Dawn'}), prints the table and writes --json; --resume reruns nothing`, async () => {
    const json = join(dir, 'study.json');
    const args = ['--limit', '32', '--test-limit', '32', '--epochs', '1', '--seeds', '1', '--quants', 'fixed:8', '--json', json, '--', '--batch-size', '16'];
    const r = study(args);
    assert.equal(r.code, 0, r.err.slice(-2000));
    assert.match(r.out, /study004: lenet5 on mnist, 32 training images, 1 epochs, 32 test images, seeds 1; every layer quantized/);
    const lines = r.out.split('\n').filter((l) => l.startsWith('|'));
    assert.equal(lines.length, 3, r.out);
    assert.match(lines[0], /^\| weights \(QAT\) \| seeds \| test % per seed \| mean ± std \| Δ vs fixed:8 \(pp\) \| last-epoch train % \(mean\) \|$/);
    assert.match(lines[2], /^\| fixed:8 \| 1 \| \d+\.\d\d \| \d+\.\d\d ± - \|  \| \d+\.\d\d \|$/);
    assert.match(r.err, /== study004: npm run train -- --model lenet5 .* --quant fixed:8 --quantize-first --quantize-last --batch-size 16/);
    const rep = JSON.parse(await readFile(json, 'utf8'));
    assert.equal(rep.command, 'study004');
    assert.deepEqual(rep.config.quants, ['fixed:8']);
    assert.equal(rep.runs.length, 1);
    for (const run of rep.runs) {
      assert.equal(run.status, 'ok');
      assert.equal(run.trainSamples, 32);
      assert.equal(run.testSamples, 32);
      assert.ok(run.testAcc >= 0 && run.testAcc <= 1, String(run.testAcc));
      assert.ok(run.lastTrainAcc >= 0 && run.lastTrainAcc <= 1, String(run.lastTrainAcc));
    }
    assert.equal(rep.table.length, 1);
    assert.equal(rep.table[0].quant, 'fixed:8');
    assert.equal(rep.table[0].mean, rep.runs[0].testAcc);
    assert.match(lines[2], new RegExp(`\\| ${(100 * rep.runs[0].testAcc).toFixed(2)} \\|`));
    // the table printed is the table written; a rerun with --resume keeps the run
    const again = study([...args.slice(0, -3), '--resume', '--', '--batch-size', '16'], 60_000);
    assert.equal(again.code, 0, again.err.slice(-2000));
    assert.equal((again.err.match(/kept from/g) ?? []).length, 1, again.err);
    assert.ok(!/== study004: npm run train/.test(again.err), 'nothing is retrained');
    assert.equal(again.out, r.out);
  });
});
