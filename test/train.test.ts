/**
 * Trainer: a tiny model on a tiny synthetic dataset. The loss decreases, GPU buffers stay flat
 * across steps, a run resumed from a mid-epoch checkpoint reproduces the uninterrupted run's losses,
 * and a diverging run stops with a clear error while keeping the last good checkpoint.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as wq from '../src/index.ts';
import { type Dataset, subset, syntheticDataset } from '../src/data/index.ts';
import { Module } from '../src/nn/module.ts';
import type { Parameter } from '../src/nn/parameter.ts';
import { SGD, Adam } from '../src/optim/index.ts';
import { type ProgressEvent, readCheckpoint, Trainer, TrainingDivergedError } from '../src/train/index.ts';
import { setup } from './helpers.ts';

/** y = x · Wᵀ + b from broadcasting ops (no matmul needed). */
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
    const prod = wq.mul(wq.reshape(x, [n, 1, this.inF]), wq.reshape(this.weight, [1, this.outF, this.inF]));
    return wq.add(wq.sum(prod, 2), this.bias);
  }
}

class TinyNet extends Module {
  readonly fc1: Dense;
  readonly fc2: Dense;
  constructor(inF: number, hidden: number, classes: number, seed: number) {
    super();
    this.fc1 = this.module('fc1', new Dense(inF, hidden, seed));
    this.fc2 = this.module('fc2', new Dense(hidden, classes, seed + 1));
  }
  forward(x: wq.Tensor): wq.Tensor {
    const flat = wq.reshape(x, [x.shape[0], x.shape[1] * x.shape[2] * x.shape[3]]);
    return this.fc2.forward(wq.relu(this.fc1.forward(flat)));
  }
}

let dir = '';
let train: Dataset;
let test: Dataset;

before(async () => {
  await setup();
  dir = await mkdtemp(join(tmpdir(), 'webqat-train-'));
  const all = syntheticDataset({ count: 136, shape: [1, 4, 4], numClasses: 3, seed: 5, noise: 0.6 });
  train = subset(all, 96);
  test = { ...all, name: 'synthetic/test', images: all.images.subarray(96 * 16), labels: all.labels.subarray(96) };
});
after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

function makeRun(opts: { initSeed?: number; epochs?: number; checkpointPath?: string; schedule?: (s: number) => number; adam?: boolean; augment?: boolean } = {}) {
  const model = new TinyNet(16, 12, 3, opts.initSeed ?? 1);
  const optimizer = opts.adam
    ? new Adam(model.namedParameters(), { lr: 0.02 })
    : new SGD(model.namedParameters(), { lr: 0.05, momentum: 0.9 });
  const losses: number[] = [];
  const events: ProgressEvent[] = [];
  const trainer = new Trainer({
    model,
    optimizer,
    train,
    test,
    batchSize: 16,
    epochs: opts.epochs ?? 3,
    seed: 42,
    readEvery: 1,
    augment: opts.augment === false ? undefined : { cropPadding: 1, flip: true },
    schedule: opts.schedule,
    checkpointPath: opts.checkpointPath,
    modelName: 'tiny',
    onProgress: (e) => {
      events.push(e);
      if (e.type === 'progress') losses.push(e.loss);
    },
  });
  const dispose = () => {
    trainer.dispose();
    optimizer.release();
    model.release();
  };
  return { model, optimizer, trainer, losses, events, dispose };
}

describe('Trainer', () => {
  it('reduces the loss, reports per-epoch metrics, keeps GPU buffers flat', async () => {
    const run = makeRun({ epochs: 4, augment: false });
    const mem: number[] = [];
    const created: number[] = [];
    const result = await run.trainer.fit({ maxSteps: 9 }); // one epoch (with evaluation) and a half
    await wq.sync();
    mem.push(wq.memory().liveBuffers);
    created.push(wq.memory().created);
    const rest = await run.trainer.fit();
    await wq.sync();
    mem.push(wq.memory().liveBuffers);
    created.push(wq.memory().created);
    assert.deepEqual(result.stoppedAt, { epoch: 1, stepInEpoch: 3 });
    assert.equal(rest.epochs.length, 4);
    assert.equal(run.losses.length, 24);
    const first = run.losses.slice(0, 6).reduce((s, v) => s + v, 0) / 6;
    const last = run.losses.slice(18).reduce((s, v) => s + v, 0) / 6;
    assert.ok(last < first * 0.7, `loss did not decrease: first epoch ${first}, last epoch ${last}`);
    const m = rest.epochs[3];
    assert.equal(m.epoch, 4);
    assert.equal(m.samples, 96);
    assert.ok(Math.abs(m.trainLoss - last) < 1e-4, `epoch mean ${m.trainLoss} vs step mean ${last}`);
    assert.ok(m.testAcc !== undefined && m.testAcc > 0.6, `test accuracy ${m.testAcc}`);
    assert.ok(m.samplesPerSec > 0 && m.seconds > 0);
    assert.equal(rest.finalTestAcc, m.testAcc);
    // after the first steps the pool holds everything a step needs: nothing new is created
    assert.equal(mem[1], mem[0], `live buffers grew from ${mem[0]} to ${mem[1]}`);
    assert.equal(created[1], created[0], `${created[1] - created[0]} GPU buffers were created at steady state`);
    const ev = await run.trainer.evaluate();
    assert.ok(Math.abs(ev.acc - m.testAcc!) < 1e-6 && Math.abs(ev.loss - m.testLoss!) < 1e-5);
    run.dispose();
  });

  for (const adam of [false, true]) {
    it(`resumes from a mid-epoch checkpoint with the same next losses (${adam ? 'Adam' : 'SGD momentum'})`, async () => {
      const full = makeRun({ adam });
      const resFull = await full.trainer.fit();
      full.dispose();
      assert.equal(full.losses.length, 18);

      const first = makeRun({ adam });
      await first.trainer.fit({ maxSteps: 8 });
      const path = join(dir, `mid-${adam}.safetensors`);
      await first.trainer.save(path);
      first.dispose();
      const ck = await readCheckpoint(path);
      assert.equal(ck.meta.epoch, 1);
      assert.equal(ck.meta.stepInEpoch, 2);
      assert.equal(ck.meta.step, 8);
      assert.equal(ck.meta.seed, 42);
      assert.equal(ck.meta.model, 'tiny');

      const second = makeRun({ initSeed: 99, adam }); // different init: everything must come from the checkpoint
      await second.trainer.resume(path);
      const resSecond = await second.trainer.fit();
      second.dispose();
      assert.equal(second.losses.length, 10);
      assert.deepEqual(second.losses, full.losses.slice(8), 'losses after resuming differ from the uninterrupted run');
      assert.equal(resSecond.epochs.length, 3);
      assert.equal(resSecond.epochs[2].trainLoss, resFull.epochs[2].trainLoss);
      assert.equal(resSecond.epochs[1].trainLoss, resFull.epochs[1].trainLoss);
      assert.equal(resSecond.finalTestAcc, resFull.finalTestAcc);
    });
  }

  it('stops on a NaN/Inf loss with a clear error and keeps the last good checkpoint', async () => {
    const path = join(dir, 'diverge.safetensors');
    const run = makeRun({ epochs: 3, checkpointPath: path, schedule: (s) => (s < 6 ? 1 : 1e30) });
    await assert.rejects(run.trainer.fit(), (e: unknown) => {
      assert.ok(e instanceof TrainingDivergedError, String(e));
      assert.match((e as Error).message, /training diverged: the loss became (NaN|Infinity|-Infinity) in epoch 2/);
      assert.match((e as Error).message, /last good checkpoint .*diverge\.safetensors was kept/);
      return true;
    });
    run.dispose();
    const ck = await readCheckpoint(path);
    assert.equal(ck.meta.epoch, 1);
    assert.equal(ck.meta.step, 6);
    for (const [name, t] of ck.tensors) {
      const v = new Float32Array(t.data.slice().buffer);
      assert.ok(v.every(Number.isFinite), `${name} in the kept checkpoint is not finite`);
    }
    assert.deepEqual((await readdir(dir)).filter((f) => f.includes('.tmp')), [], 'temporary files were left behind');
  });
});
