/**
 * Issue 13, device loss: `device.destroy()` in the middle of an epoch (what a GPU reset, a driver
 * update or a backgrounded tab does) stops the trainer with a DeviceLostError that names the last
 * checkpoint; on a new device, resuming from that checkpoint gives exactly the losses of an
 * uninterrupted run. Own file: it replaces the process's GPU device.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as wq from '../src/index.ts';
import { type Dataset, syntheticDataset } from '../src/data/index.ts';
import { Module } from '../src/nn/module.ts';
import type { Parameter } from '../src/nn/parameter.ts';
import { Adam } from '../src/optim/index.ts';
import { Trainer } from '../src/train/index.ts';
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
    const flat = wq.reshape(x, [n, this.inF]);
    const prod = wq.mul(wq.reshape(flat, [n, 1, this.inF]), wq.reshape(this.weight, [1, this.outF, this.inF]));
    return wq.add(wq.sum(prod, 2), this.bias);
  }
}

let dir = '';
let data: Dataset;
before(async () => {
  await setup();
  dir = await mkdtemp(join(tmpdir(), 'webqat-lost-'));
  data = syntheticDataset({ count: 96, shape: [1, 4, 4], numClasses: 3, seed: 5, noise: 0.6 });
});
after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

function run(checkpointPath: string, onLoss?: (t: Trainer) => void) {
  const model = new Dense(16, 3, 1);
  const optimizer = new Adam(model.namedParameters(), { lr: 0.02 });
  const losses: number[] = [];
  const trainer: Trainer = new Trainer({
    model, optimizer, train: data, batchSize: 16, epochs: 2, seed: 7, readEvery: 1, checkpointPath,
    onProgress: (e) => {
      if (e.type !== 'progress') return;
      losses.push(e.loss);
      if (onLoss) onLoss(trainer);
    },
  });
  return { model, optimizer, trainer, losses };
}

describe('device loss', () => {
  it('device.destroy() mid-epoch stops the trainer with a clear error; resuming on a new device gives the uninterrupted losses', async () => {
    const full = run(join(dir, 'full.safetensors'));
    await full.trainer.fit();
    assert.equal(full.losses.length, 12);
    full.trainer.dispose();
    full.optimizer.release();
    full.model.release();

    const path = join(dir, 'lost.safetensors');
    let destroyed = false;
    const cut = run(path, (t) => {
      if (!destroyed && t.epoch === 1 && t.stepInEpoch >= 2) {
        destroyed = true;
        wq.gpu().device.destroy(); // what a GPU reset does to the device
      }
    });
    await assert.rejects(cut.trainer.fit(), (e: unknown) => {
      assert.ok(e instanceof wq.DeviceLostError, String(e));
      assert.match((e as Error).message, /webqat: the GPU device was lost \(destroyed.*\) in epoch 2 at step \d+; training stopped\. Continue from the last checkpoint: --resume .*lost\.safetensors \(epoch 2\)/);
      return true;
    });
    assert.ok(destroyed);
    // the old device's objects are gone with it: start over on a new device
    await wq.shutdown();
    await wq.init({ tune: wq.policyFromEnv() ?? 'off' }); // as setup(): generic kernels, reproducible
    const again = run(path);
    await again.trainer.resume(path);
    assert.equal(again.trainer.epoch, 1);
    assert.equal(again.trainer.stepInEpoch, 0);
    await again.trainer.fit();
    assert.deepEqual(again.losses, full.losses.slice(6), 'losses after resuming on a new device differ from the uninterrupted run');
    again.trainer.dispose();
    again.optimizer.release();
    again.model.release();
  });
});
