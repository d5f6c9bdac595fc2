/**
 * safetensors writer/reader and checkpoints: round trip, a header any safetensors reader accepts
 * (valid JSON, contiguous offsets, 8-byte aligned), atomic writes that leave no temporary files,
 * model + optimizer state restored exactly, and clear errors for shape mismatches.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as wq from '../src/index.ts';
import { Module } from '../src/nn/module.ts';
import type { Parameter } from '../src/nn/parameter.ts';
import { SGD } from '../src/optim/index.ts';
import {
  decodeSafetensors,
  encodeSafetensors,
  readCheckpoint,
  restoreCheckpoint,
  type SafeTensor,
  safeTensorOf,
  saveCheckpoint,
  typedArrayOf,
} from '../src/train/index.ts';
import { randArray, setup } from './helpers.ts';

class Affine extends Module {
  readonly weight: Parameter;
  readonly bias: Parameter;
  readonly count: wq.Tensor;
  constructor(inF: number, outF: number, seed: number) {
    super();
    this.weight = this.param('weight', wq.randn([outF, inF], seed));
    this.bias = this.param('bias', wq.randn([outF], seed + 1));
    this.count = this.buffer('count', wq.tensor(new Int32Array([seed, 7]), [2], 'i32'));
  }
  forward(x: wq.Tensor): wq.Tensor {
    const [n, f] = x.shape;
    const prod = wq.mul(wq.reshape(x, [n, 1, f]), wq.reshape(this.weight, [1, this.weight.shape[0], f]));
    return wq.add(wq.sum(prod, 2), this.bias);
  }
}

class Net extends Module {
  readonly a: Affine;
  readonly b: Affine;
  constructor(hidden: number, seed: number) {
    super();
    this.a = this.module('a', new Affine(5, hidden, seed));
    this.b = this.module('b', new Affine(hidden, 3, seed + 10));
  }
  forward(x: wq.Tensor): wq.Tensor {
    return this.b.forward(wq.relu(this.a.forward(x)));
  }
}

let dir = '';
before(async () => {
  await setup();
  dir = await mkdtemp(join(tmpdir(), 'webqat-ckpt-'));
});
after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('safetensors', () => {
  it('round-trips F32 / I32 / U32 / U8 tensors and metadata in a valid layout', () => {
    const f = randArray(7 * 3, 1);
    const tensors = new Map<string, SafeTensor>([
      ['layer.weight', safeTensorOf(f, [7, 3])],
      ['ints', safeTensorOf(new Int32Array([-1, 2, -3]), [3])],
      ['scalar', safeTensorOf(new Uint32Array([42]), [])],
      ['bytes', safeTensorOf(new Uint8Array([1, 2, 3, 4, 5]), [5])],
      ['empty', safeTensorOf(new Float32Array(0), [0, 4])],
    ]);
    const bytes = encodeSafetensors(tensors, { epoch: '3', note: 'hello "world"' });
    // the format, read by hand
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    assert.equal(n % 8, 0, 'header length is 8-byte aligned');
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
    assert.deepEqual(header.__metadata__, { epoch: '3', note: 'hello "world"' });
    assert.deepEqual(header['layer.weight'], { dtype: 'F32', shape: [7, 3], data_offsets: [0, 84] });
    const spans = Object.entries(header).filter(([k]) => k !== '__metadata__').map(([, v]) => (v as { data_offsets: number[] }).data_offsets).sort((a, b) => a[0] - b[0]);
    let pos = 0;
    for (const [b, e] of spans) {
      assert.equal(b, pos, 'offsets are contiguous');
      pos = e;
    }
    assert.equal(8 + n + pos, bytes.length, 'the data section ends the file');
    assert.deepEqual(new Float32Array(bytes.slice(8 + n, 8 + n + 84).buffer), f);
    // and through the reader
    const back = decodeSafetensors(bytes);
    assert.deepEqual(back.metadata, { epoch: '3', note: 'hello "world"' });
    assert.deepEqual([...back.tensors.keys()].sort(), [...tensors.keys()].sort());
    assert.deepEqual(typedArrayOf(back.tensors.get('layer.weight')!), f);
    assert.deepEqual(typedArrayOf(back.tensors.get('ints')!), new Int32Array([-1, 2, -3]));
    assert.deepEqual(typedArrayOf(back.tensors.get('scalar')!), new Uint32Array([42]));
    assert.deepEqual(back.tensors.get('scalar')!.shape, []);
    assert.deepEqual(typedArrayOf(back.tensors.get('bytes')!), new Uint8Array([1, 2, 3, 4, 5]));
  });

  it('rejects broken files with a clear message', () => {
    assert.throws(() => decodeSafetensors(new Uint8Array(4), 'x.st'), /x\.st: too short/);
    const good = encodeSafetensors(new Map([['a', safeTensorOf(new Float32Array([1, 2]), [2])]]));
    assert.throws(() => decodeSafetensors(good.subarray(0, good.length - 4), 'cut.st'), /cut\.st: tensor 'a' F32\[2\] has data_offsets \[0, 8\]/);
    const big = good.slice();
    new DataView(big.buffer).setBigUint64(0, 1000000n, true);
    assert.throws(() => decodeSafetensors(big, 'hdr.st'), /hdr\.st: header length 1000000 exceeds the file/);
    const gap = encodeSafetensors(new Map([['a', safeTensorOf(new Float32Array([1, 2]), [2])]]));
    const padded = new Uint8Array(gap.length + 4);
    padded.set(gap);
    assert.throws(() => decodeSafetensors(padded, 'tail.st'), /tail\.st: 4 bytes after the last tensor/);
    assert.throws(() => safeTensorOf(new Float32Array(5), [2, 2]), /5 values for shape \[2,2\]/);
  });
});

describe('checkpoints', () => {
  it('saves atomically and restores model and optimizer state exactly', async () => {
    const model = new Net(4, 1);
    const opt = new SGD(model.namedParameters(), { lr: 0.1, momentum: 0.9 });
    const x = wq.tensor(randArray(6 * 5, 2), [6, 5]);
    const y = wq.tensor(new Int32Array([0, 1, 2, 0, 1, 2]), [6], 'i32');
    for (let s = 0; s < 2; s++) {
      wq.tidy(() => {
        wq.softmaxCrossEntropy(model.forward(x), y).backward();
        opt.step();
        opt.zeroGrad();
      });
    }
    const path = join(dir, 'model.safetensors');
    await writeFile(path, 'old contents');
    await saveCheckpoint(path, model, opt, { model: 'net', modelConfig: { hidden: 4 }, seed: 9, epoch: 2, stepInEpoch: 1, step: 13, extra: { history: [1, 2] } });
    assert.deepEqual(await readdir(dir), ['model.safetensors'], 'no temporary file is left behind');
    const raw = new Uint8Array(await readFile(path));
    const file = decodeSafetensors(raw);
    assert.deepEqual([...file.tensors.keys()].sort(), [
      'a.bias', 'a.count', 'a.weight', 'b.bias', 'b.count', 'b.weight',
      'optimizer.a.bias.momentum_buffer', 'optimizer.a.weight.momentum_buffer', 'optimizer.b.bias.momentum_buffer', 'optimizer.b.weight.momentum_buffer',
    ]);
    assert.equal(file.metadata.optimizer, 'sgd');

    const ck = await readCheckpoint(path);
    assert.deepEqual(ck.meta, { model: 'net', modelConfig: { hidden: 4 }, dataset: undefined, seed: 9, epoch: 2, stepInEpoch: 1, step: 13, extra: { history: [1, 2] } });
    const model2 = new Net(4, 50);
    const opt2 = new SGD(model2.namedParameters(), { lr: 0.1, momentum: 0.9 });
    restoreCheckpoint(ck, model2, opt2);
    for (const [name, t] of model.stateDict()) {
      assert.deepEqual(await model2.stateDict().get(name)!.data(), await t.data(), name);
    }
    // one more identical step on both gives identical weights (momentum state restored too)
    for (const [m, o] of [[model, opt], [model2, opt2]] as const) {
      wq.tidy(() => {
        wq.softmaxCrossEntropy(m.forward(x), y).backward();
        o.step();
        o.zeroGrad();
      });
    }
    assert.deepEqual(await model2.a.weight.data(), await model.a.weight.data());
    for (const m of [model, model2]) m.release();
    opt.release();
    opt2.release();
    x.release();
    y.release();
  });

  it('names the tensor and both shapes when a checkpoint does not fit the model', async () => {
    const model = new Net(4, 1);
    const path = join(dir, 'small.safetensors');
    await saveCheckpoint(path, model, null, { model: 'net', seed: 1, epoch: 0, stepInEpoch: 0, step: 0 });
    const other = new Net(6, 1);
    const ck = await readCheckpoint(path);
    assert.throws(
      () => restoreCheckpoint(ck, other, null),
      (e: Error) => {
        assert.match(e.message, /cannot load checkpoint .*small\.safetensors \(saved for model 'net'\)/);
        assert.match(e.message, /tensor 'a\.weight' has shape F32\[4,5\] in the checkpoint but F32\[6,5\] in the model/);
        assert.match(e.message, /tensor 'b\.weight' has shape F32\[3,4\] in the checkpoint but F32\[3,6\] in the model/);
        return true;
      },
    );
    const opt = new SGD(other.namedParameters(), { lr: 0.1 });
    const same = new Net(4, 3);
    assert.throws(() => restoreCheckpoint(ck, same, opt), /the checkpoint holds no optimizer state/);
    await writeFile(join(dir, 'plain.safetensors'), encodeSafetensors(new Map(), { format: 'other' }));
    await assert.rejects(readCheckpoint(join(dir, 'plain.safetensors')), /plain\.safetensors: not a webqat checkpoint/);
    // a post-training-quantized file (npm run ptq --save) says what it is and what to pass instead
    await writeFile(join(dir, 'ptq.safetensors'), encodeSafetensors(new Map(), { format: 'webqat-ptq' }));
    await assert.rejects(readCheckpoint(join(dir, 'ptq.safetensors')), /ptq\.safetensors: not a webqat checkpoint .*post-training-quantized.*pass the training checkpoint/);
    await assert.rejects(readCheckpoint(join(dir, 'nope.safetensors')), /not found: .*nope\.safetensors/);
    for (const m of [model, other, same]) m.release();
    opt.release();
  });
});
