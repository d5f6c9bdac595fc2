/**
 * Issue 13, in-process: the GPU health checks (NaN/Inf counts, label range), a broken model is
 * never saved nor resumed, bad loss inputs are refused, and atomic writes leave no litter (stale
 * temporary files removed at the next save; SIGINT/SIGTERM during a write remove its temporary
 * file, in a child process of this runtime).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as wq from '../src/index.ts';
import { syntheticDataset, type Dataset } from '../src/data/index.ts';
import { Module } from '../src/nn/module.ts';
import type { Parameter } from '../src/nn/parameter.ts';
import { Adam } from '../src/optim/index.ts';
import {
  decodeSafetensors,
  encodeSafetensors,
  NonFiniteTensorError,
  readCheckpoint,
  restoreCheckpoint,
  saveCheckpoint,
  Trainer,
  TrainingDivergedError,
} from '../src/train/index.ts';
import { checkWritable, removeStaleTempFiles } from '../src/platform/fs.ts';
import { setup } from './helpers.ts';

class Dense extends Module {
  readonly weight: Parameter;
  readonly bias: Parameter;
  constructor(readonly inF: number, readonly outF: number, seed: number) {
    super();
    this.weight = this.param('weight', wq.randn([outF, inF], seed, 0, Math.sqrt(2 / inF)));
    this.bias = this.param('bias', wq.zeros([outF]));
  }
  forward(x: wq.Tensor): wq.Tensor {
    const n = x.shape[0];
    const flat = x.rank === 2 ? x : wq.reshape(x, [n, this.inF]);
    const prod = wq.mul(wq.reshape(flat, [n, 1, this.inF]), wq.reshape(this.weight, [1, this.outF, this.inF]));
    return wq.add(wq.sum(prod, 2), this.bias);
  }
}

let dir = '';
let data: Dataset;
before(async () => {
  await setup();
  dir = await mkdtemp(join(tmpdir(), 'webqat-rel-'));
  data = syntheticDataset({ count: 64, shape: [1, 4, 4], numClasses: 3, seed: 5, noise: 0.6 });
});
after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

const isRuntime = (name: string) => (name === 'deno' ? typeof (globalThis as { Deno?: unknown }).Deno !== 'undefined' : typeof (globalThis as { Deno?: unknown }).Deno === 'undefined');

describe('GPU health checks', () => {
  it('counts NaN/Inf per tensor on the GPU, including large and sub-buffer tensors', async () => {
    const a = new Float32Array(1000).fill(1);
    a[3] = NaN;
    a[999] = Infinity;
    a[500] = -Infinity;
    const b = new Float32Array(70000).fill(-2); // > 256 workgroups' worth of one element each
    b[69999] = NaN;
    b[1] = 3.4e38; // finite, near the top of f32
    const ta = wq.tensor(a, [10, 100]);
    const tb = wq.tensor(b);
    const tc = wq.zeros([5]);
    const ti = wq.tensor(new Int32Array([0x7f800000, -1]), [2], 'i32'); // an Inf bit pattern, but i32: not counted
    const counts = wq.nonFiniteCounts([ta, tb, tc, ti]);
    assert.deepEqual([...(await counts.data())], [3, 1, 0, 0]);
    assert.equal(wq.countNonFinite(a), 3);
    for (const t of [ta, tb, tc, ti, counts]) t.release();
  });

  it('tallies labels outside [0, classes) and names them', async () => {
    const tally = wq.labelTally();
    const ok = wq.tensor(new Int32Array([0, 1, 2, 2]), [4], 'i32');
    wq.checkLabels_(ok, 3, tally);
    const t0 = await tally.data();
    assert.equal(wq.labelTallyMessage(t0, 3, 'training'), null);
    const bad = wq.tensor(new Int32Array([0, 7, -1, 2, 3]), [5], 'i32');
    wq.checkLabels_(bad, 3, tally);
    const t1 = await tally.data();
    assert.deepEqual([...t1], [3, -1, 7]);
    assert.match(wq.labelTallyMessage(t1, 3, 'training')!, /3 training label\(s\) outside \[0, 3\): labels from -1 to 7/);
    await assert.rejects(wq.assertLabelsInRange(bad, 3), /label 7 at index 1 is outside \[0, 3\)/);
    wq.resetLabelTally(tally);
    assert.deepEqual([...(await tally.data())], [0, 0x7fffffff, -0x80000000]);
    for (const t of [tally, ok, bad]) t.release();
  });
});

describe('loss inputs', () => {
  it('refuses fractional or out-of-range values for integer tensors, and the mean of nothing', () => {
    assert.throws(() => wq.tensor([0, 1.5, 2], [3], 'i32'), /tensor\(\): value 1\.5 at index 1 is not a 32-bit integer \(dtype i32\)/);
    assert.throws(() => wq.tensor(new Float32Array([2, NaN]), [2], 'i32'), /value NaN at index 1/);
    assert.throws(() => wq.tensor([-1], [1], 'u32'), /value -1 at index 0 is not an unsigned 32-bit integer/);
    assert.throws(() => wq.tensor([2 ** 31], [1], 'i32'), /value 2147483648 at index 0/);
    const fine = wq.tensor([1, -2, 3], [3], 'i32');
    fine.release();
    const empty = wq.zeros([0, 3]);
    assert.throws(() => wq.mean(empty), /mean: the mean over all axes of .* averages 0 elements \(PyTorch gives NaN\)/);
    assert.throws(() => wq.mean(empty, 0), /mean: the mean over axes \[0\]/);
    empty.release();
  });

  it('the trainer stops with an error naming labels outside the model\'s classes (training and test sets)', async () => {
    // the dataset has 3 classes (its labels were validated on the host), the model only 2 outputs
    const twos = [...data.labels].filter((l) => l === 2).length;
    assert.ok(twos > 0);
    const model = new Dense(16, 2, 1);
    const optimizer = new Adam(model.namedParameters(), { lr: 0.01 });
    const trainer = new Trainer({ model, optimizer, train: data, batchSize: 16, epochs: 1, seed: 1 });
    await assert.rejects(trainer.fit(), new RegExp(`webqat: ${twos} training label\\(s\\) outside \\[0, 2\\): label 2; softmaxCrossEntropy counts such rows as 0`));
    trainer.dispose();
    const t2 = new Trainer({ model, optimizer, train: data, test: data, batchSize: 16, epochs: 1, seed: 1 });
    await assert.rejects(t2.evaluate(), new RegExp(`${twos} test label\\(s\\) outside \\[0, 2\\): label 2`));
    t2.dispose();
    optimizer.release();
    model.release();
  });
});

describe('never save a broken model', () => {
  it('save() checks parameters and optimizer state on the GPU and refuses NaN/Inf, naming the tensor; the previous file stays', async () => {
    const model = new Dense(16, 3, 1);
    const optimizer = new Adam(model.namedParameters(), { lr: 0.01 });
    const path = join(dir, 'broken.safetensors');
    const trainer = new Trainer({ model, optimizer, train: data, batchSize: 16, epochs: 1, seed: 1, checkpointPath: path });
    await trainer.fit();
    const good = await readFile(path);
    const w = new Float32Array(48).fill(0.1);
    w[7] = NaN;
    w[8] = Infinity;
    wq.assignData(model.weight, w);
    await assert.rejects(trainer.save(path), (e: unknown) => {
      assert.ok(e instanceof TrainingDivergedError, String(e));
      assert.match((e as Error).message, /training diverged: 2 NaN\/Inf value\(s\) in the model or optimizer state after epoch 1: 'weight' \(2\)/);
      assert.match((e as Error).message, /The last good checkpoint .*broken\.safetensors was kept/);
      return true;
    });
    assert.deepEqual(await readFile(path), good, 'the good checkpoint was overwritten');
    // the host-side guard in saveCheckpoint too (for callers without a trainer)
    await assert.rejects(
      saveCheckpoint(join(dir, 'direct.safetensors'), model, null, { seed: 1, epoch: 0, stepInEpoch: 0, step: 0 }),
      (e: unknown) => e instanceof NonFiniteTensorError && /refusing to save: tensor 'weight' holds 2 NaN\/Inf value\(s\) of 48/.test((e as Error).message),
    );
    assert.deepEqual((await readdir(dir)).filter((f) => f.startsWith('direct') || f.includes('.tmp')), []);
    trainer.dispose();
    optimizer.release();
    model.release();
  });

  it('resume refuses a checkpoint holding NaN/Inf weights or optimizer state, naming the tensor', async () => {
    const model = new Dense(16, 3, 1);
    const optimizer = new Adam(model.namedParameters(), { lr: 0.01 });
    const path = join(dir, 'ok.safetensors');
    const trainer = new Trainer({ model, optimizer, train: data, batchSize: 16, epochs: 1, seed: 1, checkpointPath: path });
    await trainer.fit();
    // poison one weight and one Adam moment in the file
    const file = decodeSafetensors(new Uint8Array(await readFile(path)));
    const poison = (name: string, v: number) => {
      const t = file.tensors.get(name)!;
      const f = new Float32Array(t.data.slice().buffer);
      f[0] = v;
      t.data = new Uint8Array(f.buffer);
    };
    poison('bias', NaN);
    const keys = [...file.tensors.keys()].filter((k) => k.startsWith('optimizer.') && k.endsWith('exp_avg_sq'));
    assert.ok(keys.length > 0, [...file.tensors.keys()].join(', '));
    poison(keys[0], Infinity);
    const bad = join(dir, 'nan.safetensors');
    await writeFile(bad, encodeSafetensors(file.tensors, file.metadata));
    const ck = await readCheckpoint(bad);
    assert.throws(() => restoreCheckpoint(ck, model, optimizer), (e: Error) => {
      assert.match(e.message, /cannot load checkpoint .*nan\.safetensors/);
      assert.match(e.message, /tensor 'bias' holds 1 NaN\/Inf value\(s\) of 3 \(a diverged run; resume from an earlier checkpoint\)/);
      assert.match(e.message, new RegExp(`tensor '${keys[0].replace(/\./g, '\\.')}' holds 1 NaN/Inf`));
      return true;
    });
    await assert.rejects(trainer.resume(bad), /tensor 'bias' holds 1 NaN\/Inf/);
    trainer.dispose();
    optimizer.release();
    model.release();
  });
});

describe('atomic writes leave no litter', () => {
  it('removes stale temporary files of the same target (dead process) at the next save, not others', async () => {
    const sub = join(dir, 'stale');
    await rm(sub, { recursive: true, force: true });
    await (await import('node:fs/promises')).mkdir(sub);
    const target = join(sub, 'model.safetensors');
    await writeFile(join(sub, '.model.safetensors.tmp-999999999-1700000000000-0'), 'x'.repeat(1000)); // a kill -9 leftover
    await writeFile(join(sub, '.other.bin.tmp-999999999-1700000000000-0'), 'y'); // another target's: kept
    await writeFile(join(sub, '.model.safetensors.tmp-1-1700000000000-0'), 'z'); // pid 1 is alive: a writer in progress, kept
    await wq.writeFileAtomic(target, new Uint8Array([1, 2, 3]));
    assert.deepEqual((await readdir(sub)).sort(), ['.model.safetensors.tmp-1-1700000000000-0', '.other.bin.tmp-999999999-1700000000000-0', 'model.safetensors']);
    assert.equal(await removeStaleTempFiles(target), 0);
  });

  it('checkWritable names the problem before any work: missing directory, not a directory, no file creation, a directory', async () => {
    await assert.rejects(checkWritable(join(dir, 'nope', 'x.json')), /cannot write .*nope\/x\.json: its directory .*nope\/ does not exist/);
    await writeFile(join(dir, 'afile'), 'a');
    await assert.rejects(checkWritable(join(dir, 'afile', 'x.json')), /afile\/ is not a directory/);
    await assert.rejects(checkWritable('/proc/x'), /cannot write \/proc\/x: files cannot be created in \/proc\//);
    await assert.rejects(checkWritable(dir), /it is a directory/);
    await checkWritable(join(dir, 'fine.json'));
    assert.deepEqual((await readdir(dir)).filter((f) => f.includes('fine')), []);
  });

  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    it(`${sig} during a save removes its temporary file and exits ${sig === 'SIGTERM' ? 143 : 130}`, async () => {
      const sub = join(dir, `sig-${sig}`);
      await (await import('node:fs/promises')).mkdir(sub, { recursive: true });
      const target = join(sub, 'big.bin');
      const child = join(dir, 'writer.mts');
      // writes 160 MiB over and over; says "writing" once the first temporary file exists
      await writeFile(
        child,
        `import { writeFileAtomic } from ${JSON.stringify(new URL('../src/platform/fs.ts', import.meta.url).pathname)};\n` +
          `const bytes = new Uint8Array(160 << 20).fill(7);\n` +
          `let first = true;\n` +
          `for (;;) { const p = writeFileAtomic(${JSON.stringify(target)}, bytes); if (first) { console.log('writing'); first = false; } await p; }\n`,
      );
      const deno = isRuntime('deno');
      const denoBin = new URL('../node_modules/.bin/deno', import.meta.url).pathname;
      const proc = deno ? spawn(denoBin, ['run', '-A', '--no-check', child], { stdio: ['ignore', 'pipe', 'pipe'] }) : spawn(process.execPath, ['--import', 'tsx', child], { stdio: ['ignore', 'pipe', 'pipe'] });
      let err = '';
      proc.stderr.on('data', (d) => (err += d));
      const code = await new Promise<number | null>((resolve, reject) => {
        const timer = setTimeout(() => {
          proc.kill('SIGKILL');
          reject(new Error(`the writer did not start: ${err}`));
        }, 60_000);
        proc.stdout.on('data', async (d) => {
          if (!String(d).includes('writing')) return;
          // let it reach the middle of a few writes, with a temporary file on disk
          for (let k = 0; k < 200; k++) {
            if ((await readdir(sub)).some((f) => f.includes('.tmp-'))) break;
            await new Promise((r) => setTimeout(r, 5));
          }
          assert.ok((await readdir(sub)).some((f) => f.includes('.tmp-')), 'no temporary file was seen while writing');
          process.kill(proc.pid!, sig); // not proc.kill(): Deno's ChildProcess would then report the signal instead of the exit code
        });
        proc.on('exit', (c, s) => {
          clearTimeout(timer);
          resolve(c ?? (s ? -1 : null));
        });
      });
      const left = (await readdir(sub)).filter((f) => f.includes('.tmp-'));
      assert.deepEqual(left, [], `temporary files left: ${left.join(', ')} (${err})`);
      assert.equal(code, sig === 'SIGTERM' ? 143 : 130, err);
      const s = await stat(target).catch(() => null);
      if (s) assert.equal(s.size, 160 << 20, 'a torn file');
    });
  }
});

describe('messages', () => {
  it('a tensor used after release: the error names the op that used it and who released it', () => {
    const t = wq.ones([2, 3]);
    t.release('my cleanup');
    assert.throws(() => wq.relu(t), /webqat: relu: tensor#\d+ .*f32\[2,3\] was used after release \(released by my cleanup\)/);
    assert.throws(() => wq.sum(t), /webqat: sum: tensor#\d+ .* was used after release/);
    const u = wq.ones([3]);
    assert.throws(() => wq.add(u, t), /webqat: add: tensor#\d+ .* was used after release/);
    u.release();
  });

  it('a --data-dir without the dataset files names all missing files, in the same order every time', async () => {
    const empty = join(dir, 'empty-data');
    await (await import('node:fs/promises')).mkdir(empty, { recursive: true });
    for (let k = 0; k < 3; k++) {
      await assert.rejects(
        wq.loadDataset('fashion-mnist', { dataDir: empty }),
        (e: Error) => e.message === `webqat: fashion-mnist: 4 of its 4 files not found in ${empty}: train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte (each also tried with .gz)`,
      );
    }
  });
});
