import { describe, it, before } from 'node:test';
import { assert, assertClose, setup, wq } from './helpers.ts';

describe('autograd tape', () => {
  before(setup);

  it('gradients accumulate across two backward() calls', async () => {
    const x = wq.tensor([1, -2, 3], [3], 'f32', true);
    // the same graph walked twice: d/dx sum(x^2) = 2x, twice
    const loss = wq.sum(wq.mul(x, x));
    loss.backward();
    assertClose(await x.grad!.data(), [2, -4, 6], 0, 0, 'first backward');
    loss.backward();
    assertClose(await x.grad!.data(), [4, -8, 12], 0, 0, 'second backward on the same graph');
    // a fresh graph adds onto the existing .grad
    wq.sum(wq.mulScalar(x, 3)).backward();
    assertClose(await x.grad!.data(), [7, -5, 15], 0, 0, 'third backward, new graph');
  });

  it('a tensor used twice in one graph gets the sum of both gradients', async () => {
    const x = wq.tensor([0.5, 2], [2], 'f32', true);
    const w = wq.tensor([3, -1], [2], 'f32', true);
    // loss = sum(x * w + x) -> dx = w + 1, dw = x
    wq.sum(wq.add(wq.mul(x, w), x)).backward();
    assertClose(await x.grad!.data(), [4, 0], 0, 0, 'dx');
    assertClose(await w.grad!.data(), [0.5, 2], 0, 0, 'dw');
    // diamond: y = exp(x); loss = sum(y * y + y) -> dx = (2y + 1) * y
    const z = wq.tensor([0.1, -0.3], [2], 'f32', true);
    const y = wq.exp(z);
    wq.sum(wq.add(wq.mul(y, y), y)).backward();
    const e = [Math.exp(0.1), Math.exp(-0.3)];
    assertClose(await z.grad!.data(), e.map((v) => (2 * v + 1) * v), 1e-6, 1e-5, 'diamond');
  });

  it('noGrad() records nothing', () => {
    const x = wq.tensor([1, 2], [2], 'f32', true);
    const y = wq.noGrad(() => wq.sum(wq.mul(x, x)));
    assert.equal(y.requiresGrad, false);
    assert.equal(y.node, null);
    assert.equal(wq.isGradEnabled(), true, 'grad mode restored');
    assert.throws(() => y.backward(), /does not require grad/);
    // grad mode is restored even when the function throws
    assert.throws(() => wq.noGrad(() => { throw new Error('boom'); }), /boom/);
    assert.equal(wq.isGradEnabled(), true);
    // with grad enabled the same expression records a node
    const z = wq.sum(wq.mul(x, x));
    assert.ok(z.requiresGrad && z.node?.op === 'sum');
  });

  it('tidy() releases intermediates, keeps returned tensors and leaf parameters', async () => {
    await wq.sync();
    const before = wq.memory().inUseBuffers;
    let param: wq.Tensor | undefined;
    let inner: wq.Tensor | undefined;
    const out = wq.tidy(() => {
      param = wq.tensor([1, 2, 3], [3], 'f32', true); // leaf parameter
      const a = wq.mulScalar(param, 2); // intermediate
      inner = wq.exp(a); // intermediate
      return { result: wq.sum(inner) };
    });
    // the returned tensor still has a graph: the intermediates backward() needs stay alive with it
    assert.equal(inner!.released, false, 'graph intermediate kept for backward()');
    assert.equal(param!.released, false, 'leaf parameter kept');
    assert.equal(out.result.released, false, 'returned tensor kept');
    assert.equal(wq.memory().inUseBuffers, before + 4, 'parameter, two graph intermediates, result');
    assertClose([await out.result.item()], [Math.exp(2) + Math.exp(4) + Math.exp(6)], 1e-3, 1e-5, 'result');
    out.result.backward();
    assert.equal(inner!.released, true, 'intermediates released by backward()');
    assert.equal(wq.memory().inUseBuffers, before + 3, 'parameter, its gradient and the result remain');
    assertClose(await param!.grad!.data(), [2 * Math.exp(2), 2 * Math.exp(4), 2 * Math.exp(6)], 1e-3, 1e-5, 'd/dp');
    assert.throws(() => out.result.backward(), /was released before backward\(\)/, 'a second backward() names the problem');
    // a scope result that is released without backward() frees its graph too
    const dropped = wq.tidy(() => wq.sum(wq.exp(wq.mulScalar(param!, 3))));
    dropped.release();
    assert.equal(wq.memory().inUseBuffers, before + 3, 'released result frees its graph');
    // kept tensors survive; nested scopes hand returned tensors to the parent
    const kept = wq.tidy(() => {
      const k = wq.full([4], 1).keep();
      const n = wq.tidy(() => wq.addScalar(k, 1));
      assert.equal(n.released, false);
      return [n];
    });
    assert.equal(kept[0].released, false);
    assert.deepEqual(await kept[0].array(), [2, 2, 2, 2]);
    // a training step inside tidy leaves only the gradient behind
    const p = wq.tensor([0.5, -0.5], [2], 'f32', true);
    const base = wq.memory().inUseBuffers;
    wq.tidy(() => wq.sum(wq.square(wq.mul(p, p))).backward());
    assert.equal(wq.memory().inUseBuffers, base + 1, 'step leaves only p.grad');
    wq.tidy(() => wq.sum(wq.square(wq.mul(p, p))).backward());
    assert.equal(wq.memory().inUseBuffers, base + 1, 'second step: flat');
    assertClose(await p.grad!.data(), [1, -1], 1e-6, 1e-5, 'accumulated 4x^3 twice');
  });

  it('backward() errors: non-scalar without seed, wrong seed shape', async () => {
    const x = wq.tensor([1, 2, 3, 4, 5, 6], [2, 3], 'f32', true);
    const y = wq.mulScalar(x, 2);
    assert.throws(() => y.backward(), /backward\(\) on non-scalar .*f32\[2,3\] needs a seed gradient of shape \[2,3\]/);
    assert.throws(() => y.backward(wq.ones([3])), /seed gradient shape \[3\] does not match .*\[2,3\]/);
    // the right seed works
    y.backward(wq.full([2, 3], 0.5));
    assertClose(await x.grad!.data(), [1, 1, 1, 1, 1, 1], 0, 0, 'seeded backward');
  });

  it('use after release throws "used after release"', () => {
    const t = wq.tensor([1, 2]);
    t.release();
    assert.throws(() => wq.exp(t), /used after release/);
    assert.throws(() => t.buf, /used after release \(released by release\(\)\)/);
    const x = wq.tensor([1, 2], [2], 'f32', true);
    const y = wq.sum(wq.exp(x));
    y.release();
    assert.throws(() => y.backward(), /used after release/);
    const scoped = wq.tidy(() => {
      const s = wq.exp(x);
      return () => s;
    });
    assert.throws(() => wq.neg(scoped()), /used after release \(released by the end of scope 'tidy'\)/);
  });
});
