import { describe, it, before } from 'node:test';
import { assert, assertClose, randArray, setup, size, wq } from './helpers.ts';
import { Adam, AdamW, decayGroups, Optimizer, SGD, type OptimizerState } from '../src/optim/index.ts';
import { constantLR, cosineLR, lrFactor, multiStepLR, scheduleValues, stepLR, warmup } from '../src/optim/schedule.ts';

// ------------------------------------------------------------ plain-TypeScript references (PyTorch formulas)

interface RefParam {
  w: Float64Array;
  steps: number;
  buf: Float64Array | null; // SGD momentum (null = not created yet, as in PyTorch)
  m: Float64Array;
  v: Float64Array;
}

function refParam(w: Float32Array): RefParam {
  return { w: Float64Array.from(w), steps: 0, buf: null, m: new Float64Array(w.length), v: new Float64Array(w.length) };
}

interface SgdH { lr: number; momentum: number; dampening: number; nesterov: boolean; weightDecay: number }
function refSgd(p: RefParam, g: Float32Array | null, h: SgdH): void {
  if (!g) return; // PyTorch skips parameters whose grad is None
  p.steps++;
  const d = Float64Array.from(g, (gi, i) => gi + h.weightDecay * p.w[i]);
  if (h.momentum !== 0) {
    if (!p.buf) p.buf = Float64Array.from(d);
    else for (let i = 0; i < d.length; i++) p.buf[i] = h.momentum * p.buf[i] + (1 - h.dampening) * d[i];
    for (let i = 0; i < d.length; i++) d[i] = h.nesterov ? d[i] + h.momentum * p.buf[i] : p.buf[i];
  }
  for (let i = 0; i < d.length; i++) p.w[i] -= h.lr * d[i];
}

interface AdamH { lr: number; betas: [number, number]; eps: number; weightDecay: number }
function refAdam(p: RefParam, g: Float32Array | null, h: AdamH, decoupled: boolean): void {
  if (!g) return;
  p.steps++;
  const [b1, b2] = h.betas;
  if (decoupled) for (let i = 0; i < p.w.length; i++) p.w[i] *= 1 - h.lr * h.weightDecay;
  const bc1 = 1 - b1 ** p.steps;
  const bc2 = 1 - b2 ** p.steps;
  for (let i = 0; i < p.w.length; i++) {
    const gi = decoupled ? g[i] : g[i] + h.weightDecay * p.w[i];
    p.m[i] = b1 * p.m[i] + (1 - b1) * gi;
    p.v[i] = b2 * p.v[i] + (1 - b2) * gi * gi;
    p.w[i] -= (h.lr / bc1) * (p.m[i] / (Math.sqrt(p.v[i]) / Math.sqrt(bc2) + h.eps));
  }
}

// ------------------------------------------------------------ fixtures

// odd sizes: a scalar-ish [1], not multiples of 64, one large enough for several workgroups
const SHAPES = [[1], [5, 7], [3], [67, 3], [300, 5], [2, 3, 4]];

function makeParams(seed: number) {
  const host = SHAPES.map((s, i) => randArray(size(s), seed + i, -1, 1));
  const params = SHAPES.map((s, i) => {
    const t = wq.tensor(host[i], s, 'f32', true).keep();
    t.name = `p${i}`;
    return t;
  });
  return { host, params };
}

/** gradient for parameter i at step k; parameter 2 has none for the first two steps, parameter 4 none at step 3 */
function gradFor(i: number, k: number): Float32Array | null {
  if (i === 2 && k < 2) return null;
  if (i === 4 && k === 3) return null;
  return randArray(size(SHAPES[i]), 1000 * k + i, -2, 2);
}

function setGrads(params: wq.Tensor[], k: number): void {
  params.forEach((p, i) => {
    const g = gradFor(i, k);
    if (g) p.grad = wq.tensor(g, p.shape).keep();
  });
}

async function compare(params: wq.Tensor[], refs: RefParam[], what: string, atol = 2e-5): Promise<void> {
  for (let i = 0; i < params.length; i++) assertClose(await params[i].data(), refs[i].w, atol, 1e-4, `${what}: p${i}`);
}

describe('optim', () => {
  before(setup);

  const sgdCases: [string, Omit<SgdH, 'lr'>][] = [
    ['plain', { momentum: 0, dampening: 0, nesterov: false, weightDecay: 0 }],
    ['weight decay', { momentum: 0, dampening: 0, nesterov: false, weightDecay: 0.05 }],
    ['momentum + dampening + wd', { momentum: 0.9, dampening: 0.3, nesterov: false, weightDecay: 0.01 }],
    ['nesterov + wd', { momentum: 0.8, dampening: 0, nesterov: true, weightDecay: 5e-4 }],
  ];
  for (const [name, h] of sgdCases) {
    it(`SGD ${name}: matches the PyTorch formulas over 5 steps (lr changes, params without grad)`, async () => {
      const { host, params } = makeParams(7);
      const refs = host.map(refParam);
      const opt = new SGD(params.map((p) => [p.name!, p] as const), { lr: 0.1, ...h });
      const lrs = [0.1, 0.1, 0.05, 0.2, 0.01];
      for (let k = 0; k < 5; k++) {
        opt.lr = lrs[k];
        setGrads(params, k);
        opt.step();
        opt.zeroGrad();
        params.forEach((_, i) => refSgd(refs[i], gradFor(i, k), { ...h, lr: lrs[k] }));
        await compare(params, refs, `SGD ${name} step ${k}`);
      }
      for (const p of params) assert.equal(p.grad, null, 'zeroGrad drops the gradients');
      opt.release();
      for (const p of params) p.release();
    });
  }

  for (const [cls, decoupled] of [[Adam, false], [AdamW, true]] as const) {
    const name = decoupled ? 'AdamW' : 'Adam';
    it(`${name}: bias-corrected update matches the PyTorch formulas (per-parameter step counts)`, async () => {
      const { host, params } = makeParams(21);
      const refs = host.map(refParam);
      const h: AdamH = { lr: 0.01, betas: [0.8, 0.95], eps: 1e-6, weightDecay: 0.1 };
      const opt = new cls(params.map((p) => [p.name!, p] as const), h);
      for (let k = 0; k < 5; k++) {
        const lr = 0.01 * (1 + k);
        opt.lr = lr;
        setGrads(params, k);
        opt.step();
        opt.zeroGrad();
        params.forEach((_, i) => refAdam(refs[i], gradFor(i, k), { ...h, lr }, decoupled));
        await compare(params, refs, `${name} step ${k}`, 5e-5);
      }
      const sd = opt.stateDict();
      assert.equal(sd.steps.p0, 5);
      assert.equal(sd.steps.p2, 3, 'a parameter without gradient does not count a step');
      assert.equal(sd.steps.p4, 4);
      assertClose(await sd.tensors.get('p3.exp_avg')!.data(), refs[3].m, 1e-5, 1e-4, 'exp_avg');
      assertClose(await sd.tensors.get('p5.exp_avg_sq')!.data(), refs[5].v, 1e-5, 1e-4, 'exp_avg_sq');
      Optimizer.releaseState(sd);
      opt.release();
      for (const p of params) p.release();
    });
  }

  it('parameter groups: own lr and weight decay; one fused dispatch per group; steady state allocates nothing', async () => {
    const gpu = await setup();
    const { host, params } = makeParams(40);
    const refs = host.map(refParam);
    const groupOf = (i: number) => (i % 2 === 0 ? 0 : 1);
    const hs: SgdH[] = [
      { lr: 0.1, momentum: 0.9, dampening: 0, nesterov: false, weightDecay: 0.01 },
      { lr: 0.03, momentum: 0.9, dampening: 0, nesterov: false, weightDecay: 0 },
    ];
    const opt = new SGD(
      [
        { params: params.filter((_, i) => groupOf(i) === 0).map((p) => [p.name!, p] as const), weightDecay: 0.01 },
        { params: params.filter((_, i) => groupOf(i) === 1).map((p) => [p.name!, p] as const), lr: 0.03 },
      ],
      { lr: 0.1, momentum: 0.9 },
    );
    assert.equal(opt.groups.length, 2);
    // steps 4.. give every parameter a gradient, so each group runs as one launch
    const ks = [0, 1, 2, 3, 5, 6, 7];
    let created = 0;
    for (let s = 0; s < ks.length; s++) {
      const k = ks[s];
      wq.tidy(() => setGrads(params, k));
      const d0 = gpu.counters.dispatches;
      opt.step();
      const launches = gpu.counters.dispatches - d0;
      if (k >= 5) assert.equal(launches, 2, 'one dispatch per parameter group');
      opt.zeroGrad();
      params.forEach((_, i) => refSgd(refs[i], gradFor(i, k), hs[groupOf(i)]));
      if (s === 4) created = gpu.pool.stats.created;
      if (s > 4) assert.equal(gpu.pool.stats.created, created, 'no new GPU buffers in steady state');
    }
    await compare(params, refs, 'groups');
    opt.release();
    for (const p of params) p.release();
  });

  it('a group larger than one binding is split into chunks (one launch each) with the same result', async () => {
    const gpu = await setup();
    const { host, params } = makeParams(50);
    const refs = host.map(refParam);
    const h = { lr: 0.01, betas: [0.9, 0.999] as [number, number], eps: 1e-8, weightDecay: 0 };
    Optimizer.arenaLimitBytes = 2048; // [300,5] needs 6144 bytes: too large
    assert.throws(() => new Adam(params, h), /is larger than one storage binding \(2048 bytes\)/);
    Optimizer.arenaLimitBytes = 7168; // 8192 bytes in all: two chunks
    let opt: Adam;
    try {
      opt = new Adam(params.map((p) => [p.name!, p] as const), h);
    } finally {
      Optimizer.arenaLimitBytes = null;
    }
    const chunks = opt.groups[0].chunks.length;
    assert.ok(chunks >= 2, `expected several chunks, got ${chunks}`);
    for (let k = 4; k < 7; k++) {
      setGrads(params, k);
      const d0 = gpu.counters.dispatches;
      opt.step();
      assert.equal(gpu.counters.dispatches - d0, chunks, 'one launch per chunk');
      opt.zeroGrad();
      params.forEach((_, i) => refAdam(refs[i], gradFor(i, k), { ...h }, false));
    }
    await compare(params, refs, 'chunked Adam', 5e-5);
    opt.release();
    for (const p of params) p.release();
  });

  it('stateDict / loadStateDict resume gives the same trajectory', async () => {
    const h = { lr: 0.02, betas: [0.9, 0.99] as [number, number], eps: 1e-8, weightDecay: 0.01 };
    const a = makeParams(60);
    const optA = new AdamW(a.params.map((p) => [p.name!, p] as const), h);
    for (let k = 0; k < 3; k++) {
      setGrads(a.params, k);
      optA.step();
      optA.zeroGrad();
    }
    const sd = optA.stateDict();
    // a second model with A's current weights and a fresh optimizer that loads A's state
    const weights = await Promise.all(a.params.map((p) => p.data()));
    const b = a.params.map((p, i) => {
      const t = wq.tensor(weights[i] as Float32Array, p.shape, 'f32', true).keep();
      t.name = p.name;
      return t;
    });
    const optB = new AdamW(b.map((p) => [p.name!, p] as const), { lr: 0.5 });
    optB.loadStateDict(sd);
    assert.equal(optB.lr, 0.02, 'hyper-parameters are restored');
    for (let k = 3; k < 5; k++) {
      setGrads(a.params, k);
      setGrads(b, k);
      optA.step();
      optB.step();
      optA.zeroGrad();
      optB.zeroGrad();
    }
    for (let i = 0; i < b.length; i++) assertClose(await b[i].data(), await a.params[i].data(), 0, 0, `resumed p${i}`);

    // errors: wrong optimizer type, missing and unexpected keys, wrong shape
    const sgd = new SGD(b.map((p) => [p.name!, p] as const), { lr: 0.1, momentum: 0.9 });
    assert.throws(() => sgd.loadStateDict(sd), /state is for 'adamw', this optimizer is 'sgd'/);
    const bad: OptimizerState = { ...sd, tensors: new Map(sd.tensors) };
    bad.tensors.delete('p1.exp_avg');
    bad.tensors.set('p1.exp_avg_sq', wq.zeros([2, 2]).keep());
    bad.tensors.set('extra.exp_avg', wq.zeros([1]).keep());
    assert.throws(() => optB.loadStateDict(bad), (e: Error) =>
      /missing 'p1\.exp_avg'/.test(e.message) && /'p1\.exp_avg_sq' is f32\[2,2\], the parameter is f32\[5,7\]/.test(e.message) &&
      /unexpected 'extra\.exp_avg'/.test(e.message));
    bad.tensors.get('p1.exp_avg_sq')!.release();
    bad.tensors.get('extra.exp_avg')!.release();
    Optimizer.releaseState(sd);
    for (const o of [optA, optB, sgd]) o.release();
    for (const p of [...a.params, ...b]) p.release();
  });

  it('rejects bad arguments with clear errors', async () => {
    const p = wq.tensor([1, 2, 3], [3], 'f32', true).keep();
    assert.throws(() => new SGD([p, p], { lr: 0.1 }), /appears twice/);
    assert.throws(() => new SGD([p], { lr: 0.1, nesterov: true }), /Nesterov momentum needs momentum > 0/);
    assert.throws(() => new Adam([p], { betas: [1.2, 0.9] }), /betas must be in \[0, 1\)/);
    const opt = new SGD([p], { lr: 0.1 });
    p.grad = wq.zeros([4]).keep();
    assert.throws(() => opt.step(), /gradient tensor#\d+ f32\[4\] does not fit parameter/);
    opt.zeroGrad();
    opt.release();
    assert.throws(() => opt.step(), /used after release/);
    p.release();
  });

  it('schedules: step, multistep, cosine with eta_min, warm-up composed with cosine', () => {
    assert.deepEqual(scheduleValues(stepLR(3, 0.5), 8), [1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25]);
    const ms = scheduleValues(multiStepLR([2, 5], 0.1), 7);
    assertClose(ms, [1, 1, 0.1, 0.1, 0.1, 0.01, 0.01], 1e-12, 0, 'multistep');
    const cos = cosineLR(10, 0.1);
    assertClose([0, 5, 10, 15].map((s) => lrFactor(cos, s)), [1, 0.55, 0.1, 0.1], 1e-12, 0, 'cosine');
    assertClose([lrFactor(cos, 3)], [0.1 + 0.9 * (1 + Math.cos((3 * Math.PI) / 10)) / 2], 1e-12, 0, 'cosine 3');
    const w = warmup(4, cosineLR(6), 0.2);
    const vals = scheduleValues(w, 12);
    assertClose(vals.slice(0, 4), [0.2, 0.4, 0.6, 0.8], 1e-12, 0, 'warm-up');
    assertClose(vals.slice(4), [1, 0.75, 0.25, 0, 0.25, 0.75, 0, 0].map((_, i) => lrFactor(cosineLR(6), i)), 1e-12, 0, 'after warm-up');
    assert.equal(lrFactor((s: number) => 1 / (1 + s), 3), 0.25, 'a plain function is a schedule');
    assert.equal(lrFactor(constantLR(), 99), 1);
    assert.throws(() => stepLR(0), /stepLR: stepSize must be a positive integer/);
    assert.throws(() => lrFactor(cosineLR(3), -1), /cosineLR: step must be >= 0/);
  });

  it('decayGroups: weight decay on weights, none on rank-1 tensors', () => {
    const w = wq.zeros([3, 4], 'f32');
    const b = wq.zeros([3], 'f32');
    const g = decayGroups([['fc.weight', w], ['fc.bias', b]], 5e-4, { lr: 0.2 });
    assert.equal(g.length, 2);
    assert.deepEqual([g[0].weightDecay, g[1].weightDecay, g[0].lr], [5e-4, 0, 0.2]);
    assert.deepEqual([...(g[0].params as [string, wq.Tensor][])].map(([n]) => n), ['fc.weight']);
    assert.deepEqual([...(g[1].params as [string, wq.Tensor][])].map(([n]) => n), ['fc.bias']);
    w.release();
    b.release();
  });

  it('setLrFactor scales each group from its initial lr', async () => {
    const a = wq.tensor([1], [1], 'f32', true).keep();
    const b = wq.tensor([1], [1], 'f32', true).keep();
    const opt = new SGD([{ params: [a], lr: 0.1 }, { params: [b], lr: 0.01 }], { lr: 1 });
    opt.setLrFactor(0.5);
    assert.deepEqual(opt.groups.map((g) => g.options.lr), [0.05, 0.005]);
    opt.release();
    a.release();
    b.release();
  });
});
