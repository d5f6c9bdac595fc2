import { before, describe, it } from 'node:test';
import { assert, assertClose, randArray, setup, wq } from './helpers.ts';
import { dropoutMaskRef } from '../src/kernels/dropout.ts';

describe('dropout', () => {
  before(setup);

  it('training: keep rate, 1/(1-p) scaling, bit-exact mask vs the TypeScript twin', async () => {
    const n = 40000;
    const xa = randArray(n, 1, 0.5, 1.5); // no zeros, so a zero output means dropped
    const x = wq.tensor(xa, [8, 50, 100]);
    for (const [p, seed] of [[0.5, 1], [0.1, 2], [0.9, 3], [0.25, 2 ** 40 + 7]]) {
      const y = await wq.dropout(x, p, seed, true).data();
      const ref = dropoutMaskRef(n, p, seed);
      let kept = 0;
      for (let i = 0; i < n; i++) {
        const k = y[i] !== 0;
        assert.equal(k ? 1 : 0, ref[i], `p=${p} seed=${seed}: element ${i} differs from the reference mask`);
        if (k) {
          kept++;
          assert.ok(Math.abs(y[i] - xa[i] / (1 - p)) <= 1e-6 * Math.abs(y[i]), `p=${p}: kept value ${y[i]} vs ${xa[i] / (1 - p)}`);
        }
      }
      // binomial standard deviation sqrt(n p (1-p)) <= 100: allow 5 sigma
      assert.ok(Math.abs(kept - n * (1 - p)) < 5 * Math.sqrt(n * p * (1 - p)), `p=${p}: kept ${kept} of ${n}`);
    }
    x.release();
  });

  it('masks are deterministic per seed and independent across seeds and positions', async () => {
    const n = 20000;
    const x = wq.ones([n]);
    const a1 = await wq.dropout(x, 0.5, 42, true).data();
    const a2 = await wq.dropout(x, 0.5, 42, true).data();
    const b = await wq.dropout(x, 0.5, 43, true).data();
    assert.deepEqual(a1, a2);
    let same = 0;
    let adjacent = 0;
    for (let i = 0; i < n; i++) {
      if ((a1[i] !== 0) === (b[i] !== 0)) same++;
      if (i > 0 && (a1[i] !== 0) === (a1[i - 1] !== 0)) adjacent++;
    }
    // independent fair coins agree half the time (sd 71 for n = 20000)
    assert.ok(Math.abs(same - n / 2) < 400, `seeds 42 and 43 agree on ${same} of ${n}`);
    assert.ok(Math.abs(adjacent - n / 2) < 400, `neighbours agree on ${adjacent} of ${n}`);
    x.release();
  });

  it('backward multiplies by the same mask and scale', async () => {
    const n = 3001;
    const x = wq.tensor(randArray(n, 5, 0.5, 1.5), [n], 'f32', true);
    const y = wq.dropout(x, 0.3, 9, true);
    const dya = randArray(n, 6);
    y.backward(wq.tensor(dya, [n]));
    const mask = dropoutMaskRef(n, 0.3, 9);
    assertClose(await x.grad!.data(), Array.from(dya, (g, i) => (mask[i] ? g / 0.7 : 0)), 1e-6, 1e-5, 'dropout dx');
    x.release();
    y.release();
  });

  it('eval mode and p = 0 are the identity (gradient passes through)', async () => {
    const xa = randArray(37, 7);
    for (const [p, training] of [[0.5, false], [0, true]] as const) {
      const x = wq.tensor(xa, [37], 'f32', true);
      const y = wq.dropout(x, p, 1, training);
      assert.notEqual(y, x);
      assertClose(await y.data(), xa, 0, 0, 'identity');
      wq.sum(y).backward();
      assertClose(await x.grad!.data(), new Float32Array(37).fill(1), 0, 0, 'identity gradient');
      x.release();
      y.release();
    }
  });

  it('bad input names the op', () => {
    const x = wq.zeros([4, 5]);
    const bad = (fn: () => unknown, re: RegExp) => assert.throws(fn, (e: Error) => /dropout/.test(e.message) && re.test(e.message));
    bad(() => wq.dropout(x, 1, 0, true), /p must be in \[0, 1\), got 1.*\[4,5\]/);
    bad(() => wq.dropout(x, -0.1, 0, true), /p must be in/);
    bad(() => wq.dropout(x, Number.NaN, 0, false), /p must be in/);
    bad(() => wq.dropout(x, 0.5, 1.5, true), /seed must be an integer/);
    bad(() => wq.dropout(wq.zeros([3], 'i32'), 0.5, 1, true), /f32.*i32/);
    x.release();
  });
});
