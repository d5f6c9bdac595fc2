/**
 * Core contract tests: the README's tensor example runs as written, a 1000-step training loop keeps
 * the live GPU buffers flat, and bad input fails with an error that names the op and the shapes.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as wq from '../src/index.ts';
import { assertClose, randArray, setup } from './helpers.ts';

describe('core', () => {
  before(async () => {
    await setup();
  });
  after(() => wq.sync());

  it('runs the README tensor example and gets its gradient right', async () => {
    const x = wq.tensor([[1, 2, 3], [4, 5, 6]]);
    const w = wq.tensor([0.5, -1, 2], [3], 'f32', true);
    const loss = wq.tidy(() => {
      const y = wq.relu(wq.mul(x, w));
      return wq.mean(y);
    });
    loss.backward();
    // y = relu([[0.5,-2,6],[2,-5,12]]) -> mean = (0.5+6+2+12)/6
    assertClose([await loss.item()], [20.5 / 6], 1e-5, 1e-5, 'loss');
    // d/dw_j = sum_i x_ij [x_ij w_j > 0] / 6
    assertClose(await w.grad!.array(), [5 / 6, 0, 9 / 6], 1e-5, 1e-5, 'grad');
    const m = wq.memory();
    assert.ok(m.liveBuffers >= m.inUseBuffers && m.inUseBuffers > 0, `memory() counters: ${JSON.stringify(m)}`);
    for (const t of [x, w, loss]) t.release();
  });

  it('keeps live GPU buffers flat over 1000 forward+backward steps of an MLP', async () => {
    const B = 16, D = 12, H = 24, C = 5;
    const x = wq.tensor(randArray(B * D, 1), [B, D]);
    const labels = wq.tensor(Int32Array.from({ length: B }, (_, i) => i % C), [B], 'i32');
    const w1 = wq.tensor(randArray(H * D, 2, -0.3, 0.3), [H, D], 'f32', true);
    const b1 = wq.tensor(new Float32Array(H), [H], 'f32', true);
    const w2 = wq.tensor(randArray(C * H, 3, -0.3, 0.3), [C, H], 'f32', true);
    const b2 = wq.tensor(new Float32Array(C), [C], 'f32', true);
    const params = [w1, b1, w2, b2];
    const lr = 0.1;
    const step = (): wq.Tensor => {
      const loss = wq.tidy(() => wq.softmaxCrossEntropy(wq.linear(wq.relu(wq.linear(x, w1, b1)), w2, b2), labels));
      loss.backward();
      wq.noGrad(() =>
        wq.tidy(() => {
          for (const p of params) {
            wq.copy_(p, wq.sub(p, wq.mulScalar(p.grad!, lr)));
            p.grad!.release();
            p.grad = null;
          }
        })
      );
      return loss;
    };
    const first = step();
    const loss0 = await first.item();
    first.release();
    await wq.sync();
    const after1 = wq.memory();
    let last = 0;
    for (let i = 1; i < 1000; i++) {
      const l = step();
      if (i === 999) last = await l.item();
      l.release();
      if (i % 100 === 0) await wq.sync(); // readbacks at a realistic cadence
    }
    await wq.sync();
    const after1000 = wq.memory();
    assert.equal(after1000.liveBuffers, after1.liveBuffers, `live buffers grew: ${after1.liveBuffers} -> ${after1000.liveBuffers}`);
    assert.equal(after1000.inUseBuffers, after1.inUseBuffers, `buffers in use grew: ${after1.inUseBuffers} -> ${after1000.inUseBuffers}`);
    assert.ok(last < loss0 * 0.5, `the MLP should fit its fixed batch: loss ${loss0} -> ${last}`);
    for (const t of [x, labels, ...params]) t.release();
  });

  describe('bad input names the op and the shapes', () => {
    it('matmul with mismatched inner dimensions', () => {
      const a = wq.zeros([2, 3]);
      const b = wq.zeros([4, 5]);
      assert.throws(() => wq.matmul(a, b), (e: Error) => /matmul/.test(e.message) && /\[2,\s?3\]/.test(e.message) && /\[4,\s?5\]/.test(e.message));
      a.release();
      b.release();
    });
    it('add with shapes that do not broadcast', () => {
      const a = wq.zeros([2, 3]);
      const b = wq.zeros([4]);
      assert.throws(() => wq.add(a, b), (e: Error) => /add/.test(e.message) && /\[2,\s?3\]/.test(e.message) && /\[4\]/.test(e.message));
      a.release();
      b.release();
    });
    it('softmaxCrossEntropy with f32 labels (wrong dtype)', () => {
      const logits = wq.zeros([4, 3]);
      const labels = wq.zeros([4]);
      assert.throws(() => wq.softmaxCrossEntropy(logits, labels), (e: Error) => /softmaxCrossEntropy/i.test(e.message) && /i32/.test(e.message) && /f32/.test(e.message));
      logits.release();
      labels.release();
    });
    it('backward() on a non-scalar without a seed gradient', () => {
      const w = wq.tensor([1, 2, 3], [3], 'f32', true);
      const y = wq.mul(w, w);
      assert.throws(() => y.backward(), (e: Error) => /backward/.test(e.message) && /seed/.test(e.message) && /\[3\]/.test(e.message));
      y.release();
      w.release();
    });
    it('use of a released tensor', async () => {
      const a = wq.tensor([1, 2]);
      a.release();
      assert.throws(() => wq.neg(a), /used after release/);
      await assert.rejects(a.data(), /used after release/);
    });
    it('a tensor over the device binding limit', () => {
      const limit = wq.gpu().limits.maxStorageBufferBindingSize;
      assert.throws(() => wq.zeros([Math.floor(limit / 4) + 64]), /maxStorageBufferBindingSize|maxBufferSize/);
    });
  });
});
