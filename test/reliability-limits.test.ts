/**
 * Issue 13, minimum limits: every model takes a training step on a device created with WebGPU's
 * default limits only (128 MiB storage bindings, 16 KiB workgroup storage, 256 invocations per
 * workgroup, 8 storage buffers per stage), what many laptops and phones give; and a tensor larger
 * than one storage binding is refused before any GPU work with a message that names the op, the
 * shape, the bytes, the limit and the batch that would fit. Own file: it replaces the process's GPU
 * device (and restores a full-limits one afterwards, for the files that run after it in Deno).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as wq from '../src/index.ts';
import { syntheticDataset } from '../src/data/index.ts';
import { createModel } from '../src/models/index.ts';
import '../src/models/sspq.ts';
import { SGD } from '../src/optim/index.ts';
import { Trainer } from '../src/train/index.ts';
import { setup } from './helpers.ts';

const DEFAULTS = { maxStorageBufferBindingSize: 128 << 20, maxComputeWorkgroupStorageSize: 16384, maxComputeInvocationsPerWorkgroup: 256, maxStorageBuffersPerShaderStage: 8 };
const env = (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env ?? {};
const tune = wq.policyFromEnv() ?? 'off';
// the model steps take a minute on SwiftShader (pipeline compiles): on Dawn they run in the limits
// stage (`npm test -- limits`, WEBQAT_LIMITS=default), not again in the full-limits Node stage
const inDeno = typeof (globalThis as { Deno?: unknown }).Deno !== 'undefined';
const modelSkip = !inDeno && env.WEBQAT_LIMITS !== 'default' ? 'Dawn runs this in the limits stage (npm test -- limits)' : false;

before(async () => {
  await setup();
  await wq.shutdown();
  await wq.init({ limits: 'default', tune });
});
after(async () => {
  await wq.shutdown();
  // the files after this one (Deno runs them in the same process) get the device setup() gives
  await wq.init(env.WEBQAT_LIMITS === 'default' ? { limits: 'default', tune } : { tune });
});

describe('minimum limits: one training step of every model on a default-limits device', () => {
  it('the device has the default limits', () => {
    const l = wq.gpu().limits;
    for (const [k, v] of Object.entries(DEFAULTS)) assert.equal(l[k as keyof GPUSupportedLimits], v, k);
  });

  const models: [string, [number, number], Record<string, unknown>][] = [
    ['mlp', [1, 28], {}],
    ['lenet5', [1, 28], {}],
    ['resnet20', [3, 16], {}],
    ['sspq20', [3, 16], { wBits: 1, aBits: 4 }],
  ];
  for (const [name, [c, h], extra] of models) {
    it(`${name}: a finite loss and updated weights`, { skip: modelSkip }, async () => {
      const model = createModel(name, { inChannels: c, numClasses: 10, inputSize: h, seed: 3, ...extra });
      const optimizer = new SGD(model.namedParameters(), { lr: 0.05, momentum: 0.9 });
      const data = syntheticDataset({ count: 4, shape: [c, h, h], numClasses: 10, seed: 2 });
      const losses: number[] = [];
      const trainer = new Trainer({
        model, optimizer, train: data, batchSize: 2, epochs: 1, seed: 1, readEvery: 1,
        onProgress: (e) => {
          if (e.type === 'progress') losses.push(e.loss);
        },
      });
      const [pname, p] = model.namedParameters()[0];
      const before = await p.data();
      await trainer.fit({ maxSteps: 1 });
      const after = await p.data();
      assert.equal(losses.length, 1, `${name}: one step, one loss`);
      assert.ok(Number.isFinite(losses[0]) && losses[0] > 0, `${name}: loss ${losses[0]}`);
      let moved = 0;
      for (let i = 0; i < before.length; i++) if (before[i] !== after[i]) moved++;
      assert.ok(moved > 0, `${name}: '${pname}' did not change in the step`);
      await wq.sync();
      wq.gpu().throwErrors(); // a kernel over a limit fails validation, reported asynchronously
      trainer.dispose();
      optimizer.release();
      model.release();
    });
  }
});

describe('tensors larger than one storage binding', () => {
  it('are refused before anything runs for them, naming the op, the shape, the bytes, the limit and the batch that fits', async () => {
    const gpu = wq.gpu();
    const x = wq.randn([8, 3, 32, 32], 1);
    const w = wq.randn([64, 3, 3, 3], 2);
    await wq.sync();
    // act as if the device bound at most 1 MiB: the conv output f32[8,64,32,32] needs 2 MiB
    gpu.capBindingSize(1 << 20);
    try {
      assert.equal(gpu.maxBindingSize, 1 << 20);
      const dispatches = gpu.counters.dispatches;
      const live = wq.memory().liveBytes;
      assert.throws(() => wq.conv2d(x, w, null, { padding: 1 }), (e: unknown) => {
        assert.ok(e instanceof wq.BindingSizeError, String(e));
        const err = e as wq.BindingSizeError;
        assert.equal(err.op, 'conv2d');
        assert.deepEqual([...err.shape], [8, 64, 32, 32]);
        assert.equal(err.bytes, 2 << 20);
        assert.equal(err.limit, 1 << 20);
        assert.equal(
          err.message,
          "webqat: conv2d: f32[8,64,32,32] needs 2097152 bytes (2 MiB), more than this device's maxStorageBufferBindingSize " +
            '(1048576 bytes, 1 MiB); nothing was run for it. Use a smaller batch: along its first dimension (8) at most 4 fit in one binding',
        );
        return true;
      });
      assert.equal(gpu.counters.dispatches, dispatches, 'a kernel was launched for the refused op');
      assert.equal(wq.memory().liveBytes, live, 'a buffer was allocated for the refused tensor');
      // a single tensor without a batch to shrink, and data uploads, are refused the same way
      assert.throws(() => wq.zeros([300_000]), /webqat: full\(\): f32\[300000\] needs 1200000 bytes \(1\.1 MiB\), more than .*\(1048576 bytes, 1 MiB\); nothing was run for it\. Use a smaller batch or smaller layers: one tensor of this size does not fit in one binding/);
      assert.throws(() => wq.tensor(new Float32Array(300_000)), wq.BindingSizeError);
      // half the batch fits
      const y = wq.conv2d(wq.slice(x, [0, 0, 0, 0], [4, 3, 32, 32]), w, null, { padding: 1 });
      assert.deepEqual([...y.shape], [4, 64, 32, 32]);
      y.release();
    } finally {
      gpu.capBindingSize(null);
    }
    // the device's own limit again: the full batch runs
    const y = wq.conv2d(x, w, null, { padding: 1 });
    assert.equal((await y.data()).length, 8 * 64 * 32 * 32);
    for (const t of [x, w, y]) t.release();
    assert.throws(() => gpu.capBindingSize(0), /capBindingSize: expected an integer >= 4 or null, got 0/);
  });
});
