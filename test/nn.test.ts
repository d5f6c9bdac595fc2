import { describe, it, before } from 'node:test';
import { assert, assertClose, randArray, setup, size, wq } from './helpers.ts';
import { Module } from '../src/nn/module.ts';
import { isParameter, type Parameter, parameter } from '../src/nn/parameter.ts';
import { AvgPool2d, BatchNorm1d, BatchNorm2d, Conv2d, Dropout, Flatten, GlobalAvgPool, Identity, Linear, MaxPool2d, ReLU, Sequential } from '../src/nn/layers.ts';
import { crossEntropy, mseLoss } from '../src/nn/loss.ts';
import { computeFans, deriveSeed, glorotNormal_, glorotUniform_, heNormal_, heUniform_, SeedSequence } from '../src/nn/init.ts';

/** A tiny module built from existing ops only: y = relu(x * scale + shift), with a running counter buffer. */
class Affine extends Module {
  readonly scale: wq.Tensor;
  readonly shift: wq.Tensor;
  readonly count: wq.Tensor;
  constructor(n: number, seed: number) {
    super();
    this.scale = this.param('scale', wq.tensor(randArray(n, seed, 0.5, 1.5), [n]));
    this.shift = this.param('shift', wq.tensor(randArray(n, seed + 1), [n]), { kind: 'ternary', bits: 2 });
    this.count = this.buffer('count', wq.zeros([1]));
  }
  forward(x: wq.Tensor): wq.Tensor {
    return wq.relu(wq.add(wq.mul(x, this.scale), this.shift));
  }
}

class Net extends Module {
  readonly a: Affine;
  readonly b: Affine;
  readonly head: wq.Tensor;
  constructor(seed: number) {
    super();
    this.a = this.module('a', new Affine(5, seed));
    this.b = this.module('b', new Affine(5, seed + 10));
    this.head = this.param('head', wq.tensor(randArray(15, seed + 20), [3, 5]));
  }
  forward(x: wq.Tensor): wq.Tensor {
    return wq.sum(wq.mul(this.b.forward(this.a.forward(x)), this.head), [1]);
  }
}

async function values(m: Module): Promise<Map<string, number[]>> {
  const out = new Map<string, number[]>();
  for (const [k, t] of m.stateDict()) out.set(k, await t.array());
  return out;
}

describe('nn: Module', () => {
  before(setup);

  it('registers parameters, buffers and children by dotted name', () => {
    const net = new Net(1);
    assert.deepEqual(net.namedParameters().map(([n]) => n), ['head', 'a.scale', 'a.shift', 'b.scale', 'b.shift']);
    assert.deepEqual(net.namedBuffers().map(([n]) => n), ['a.count', 'b.count']);
    assert.deepEqual([...net.stateDict().keys()], ['head', 'a.scale', 'a.shift', 'b.scale', 'b.shift', 'a.count', 'b.count']);
    assert.deepEqual(net.namedModules().map(([n, m]) => `${n}:${m.typeName}`), [':Net', 'a:Affine', 'b:Affine']);
    assert.equal(net.numParameters(), 15 + 4 * 5);
    for (const p of net.parameters()) {
      assert.ok(isParameter(p));
      assert.equal(p.requiresGrad, true);
    }
    assert.equal(net.a.count.requiresGrad, false, 'buffers are not trained');
    assert.deepEqual((net.a.shift as Parameter).precision ?? null, { kind: 'ternary', bits: 2 });
    assert.match(net.summary(), /total: 35 parameters/);
    // train / eval propagate
    net.eval();
    assert.ok(net.modules().every((m) => !m.training));
    net.train();
    assert.ok(net.modules().every((m) => m.training));
    // duplicate / invalid names
    class Dup extends Module {
      constructor() {
        super();
        this.param('w', wq.zeros([1]));
        this.buffer('w', wq.zeros([1]));
      }
      forward(x: wq.Tensor) {
        return x;
      }
    }
    assert.throws(() => new Dup(), /Dup: 'w' is already registered/);
    net.release();
  });

  it('parameters survive tidy scopes; forward/backward reaches every parameter', async () => {
    const net = wq.tidy(() => new Net(3));
    for (const p of net.parameters()) assert.equal(p.released, false);
    const x = wq.tensor(randArray(15, 4), [3, 5]);
    wq.tidy(() => {
      const loss = wq.sum(net.call(x));
      loss.backward();
    });
    for (const [n, p] of net.namedParameters()) assert.ok(p.grad && !p.grad.released, `${n} has a gradient`);
    net.release();
    for (const p of net.parameters()) assert.equal(p.released, true);
    for (const b of net.buffers()) assert.equal(b.released, true);
    x.release();
  });

  it('stateDict / loadStateDict round trip', async () => {
    const src = new Net(5);
    const dst = new Net(6);
    const before = await values(src);
    assert.notDeepEqual(await values(dst), before);
    dst.loadStateDict(src.stateDict());
    assert.deepEqual(await values(dst), before);
    // also from a plain object, and copies are independent
    const other = new Net(7);
    other.loadStateDict(Object.fromEntries(src.stateDict()));
    wq.fill_(src.head, 0);
    assert.deepEqual((await values(other)).get('head'), before.get('head'));
    for (const m of [src, dst, other]) m.release();
  });

  it('loadStateDict errors name the tensor and both shapes, missing and unexpected keys', () => {
    const net = new Net(8);
    const sd = new Map(net.stateDict());
    const wrong = wq.zeros([5, 3]);
    sd.set('head', wrong);
    assert.throws(() => net.loadStateDict(sd), /'head' has shape f32\[3,5\] in the model but f32\[5,3\] in the state dict/);
    sd.set('head', net.head);
    sd.delete('b.count');
    assert.throws(() => net.loadStateDict(sd), /missing key\(s\): b\.count/);
    const extra = wq.zeros([1]);
    sd.set('c.scale', extra);
    assert.throws(() => net.loadStateDict(sd), (e: Error) => /missing key\(s\): b\.count/.test(e.message) && /unexpected key\(s\): c\.scale/.test(e.message));
    // non-strict ignores missing/unexpected keys but still checks shapes
    net.loadStateDict(sd, { strict: false });
    sd.set('a.scale', wrong);
    assert.throws(() => net.loadStateDict(sd, { strict: false }), /'a\.scale' has shape f32\[5\] in the model but f32\[5,3\]/);
    wrong.release();
    extra.release();
    net.release();
  });

  it('parameter() rejects op outputs and non-f32 tensors', () => {
    const a = wq.tensor([1, 2], [2], 'f32', true);
    const b = wq.mulScalar(a, 2);
    assert.throws(() => parameter(b), /is the output of an op; a parameter must be a leaf/);
    const i = wq.tensor([1, 2], [2], 'i32');
    assert.throws(() => parameter(i), /parameters are f32/);
    for (const t of [a, b, i]) t.release();
  });
});

describe('nn: init', () => {
  before(setup);

  function stats(v: ArrayLike<number>) {
    let m = 0;
    for (let i = 0; i < v.length; i++) m += v[i];
    m /= v.length;
    let s = 0;
    let lo = Infinity;
    let hi = -Infinity;
    for (let i = 0; i < v.length; i++) {
      s += (v[i] - m) ** 2;
      lo = Math.min(lo, v[i]);
      hi = Math.max(hi, v[i]);
    }
    return { mean: m, std: Math.sqrt(s / v.length), lo, hi };
  }

  it('fans of Linear and Conv weights', () => {
    assert.deepEqual(computeFans([10, 20]), { fanIn: 20, fanOut: 10 });
    assert.deepEqual(computeFans([16, 8, 3, 3]), { fanIn: 72, fanOut: 144 });
    assert.throws(() => computeFans([5]), /cannot compute fan in\/out of a tensor with shape \[5\]/);
  });

  it('he / glorot initialisers have the right spread and are reproducible from the seed', async () => {
    const shape = [64, 32, 3, 3]; // fan_in 288, fan_out 576
    const n = size(shape);
    const cases: [string, (t: wq.Tensor, seed: number) => wq.Tensor, 'normal' | 'uniform', number][] = [
      ['heNormal_', (t, seed) => heNormal_(t, { seed }), 'normal', Math.sqrt(2 / 288)],
      ['heNormal_ fan_out', (t, seed) => heNormal_(t, { seed, mode: 'fan_out' }), 'normal', Math.sqrt(2 / 576)],
      ['heUniform_', (t, seed) => heUniform_(t, { seed }), 'uniform', Math.sqrt(2) * Math.sqrt(3 / 288)],
      ['glorotUniform_', (t, seed) => glorotUniform_(t, { seed }), 'uniform', Math.sqrt(6 / (288 + 576))],
      ['glorotNormal_', (t, seed) => glorotNormal_(t, { seed }), 'normal', Math.sqrt(2 / (288 + 576))],
    ];
    for (const [name, init, kind, s] of cases) {
      const t = init(wq.zeros(shape), 42);
      const v = await t.data();
      const st = stats(v);
      const std = kind === 'normal' ? s : s / Math.sqrt(3); // s is the bound for uniform
      assert.ok(Math.abs(st.mean) < 0.05 * std, `${name}: mean ${st.mean}`);
      assert.ok(Math.abs(st.std / std - 1) < 0.03, `${name}: std ${st.std}, expected ${std}`);
      if (kind === 'uniform') assert.ok(st.lo >= -s && st.hi <= s, `${name}: values within ±${s}`);
      const again = await init(wq.zeros(shape), 42).data();
      assert.deepEqual(Array.from(again), Array.from(v), `${name}: same seed, same values`);
      const other = await init(wq.zeros(shape), 43).data();
      assert.notDeepEqual(Array.from(other.slice(0, 16)), Array.from(v.slice(0, 16)), `${name}: another seed differs`);
      assert.equal(v.length, n);
    }
  });

  it('derived seeds are distinct and deterministic', () => {
    const a = new SeedSequence(7);
    const b = new SeedSequence(7);
    const xs = Array.from({ length: 100 }, () => a.next());
    assert.deepEqual(xs, Array.from({ length: 100 }, () => b.next()));
    assert.equal(new Set(xs).size, 100);
    assert.notEqual(deriveSeed(1, 0), deriveSeed(2, 0));
    for (const x of xs) assert.ok(Number.isInteger(x) && x >= 0 && x < 2 ** 32);
  });
});

// ------------------------------------------------------------ layers vs plain-TypeScript references

function refLinear(x: Float32Array, w: Float32Array, b: Float32Array | null, N: number, I: number, O: number): Float64Array {
  const y = new Float64Array(N * O);
  for (let n = 0; n < N; n++) {
    for (let o = 0; o < O; o++) {
      let s = b ? b[o] : 0;
      for (let i = 0; i < I; i++) s += x[n * I + i] * w[o * I + i];
      y[n * O + o] = s;
    }
  }
  return y;
}

function refConv(
  x: Float32Array, [N, C, H, W]: number[], w: Float32Array, [O, , K]: number[], b: Float32Array | null,
  o: { stride: number; padding: number; dilation: number; groups: number },
): { y: Float64Array; shape: number[] } {
  const Ho = Math.floor((H + 2 * o.padding - o.dilation * (K - 1) - 1) / o.stride) + 1;
  const Wo = Math.floor((W + 2 * o.padding - o.dilation * (K - 1) - 1) / o.stride) + 1;
  const cg = C / o.groups;
  const og = O / o.groups;
  const y = new Float64Array(N * O * Ho * Wo);
  for (let n = 0; n < N; n++) for (let oc = 0; oc < O; oc++) {
    const g = Math.floor(oc / og);
    for (let i = 0; i < Ho; i++) for (let j = 0; j < Wo; j++) {
      let s = b ? b[oc] : 0;
      for (let c = 0; c < cg; c++) for (let ki = 0; ki < K; ki++) for (let kj = 0; kj < K; kj++) {
        const hi = i * o.stride - o.padding + ki * o.dilation;
        const wj = j * o.stride - o.padding + kj * o.dilation;
        if (hi < 0 || hi >= H || wj < 0 || wj >= W) continue;
        s += x[((n * C + g * cg + c) * H + hi) * W + wj] * w[((oc * cg + c) * K + ki) * K + kj];
      }
      y[((n * O + oc) * Ho + i) * Wo + j] = s;
    }
  }
  return { y, shape: [N, O, Ho, Wo] };
}

function refPool(x: Float32Array, [N, C, H, W]: number[], k: number, s: number, p: number, kind: 'max' | 'avg'): Float64Array {
  const Ho = Math.floor((H + 2 * p - k) / s) + 1;
  const Wo = Math.floor((W + 2 * p - k) / s) + 1;
  const y = new Float64Array(N * C * Ho * Wo);
  for (let nc = 0; nc < N * C; nc++) for (let i = 0; i < Ho; i++) for (let j = 0; j < Wo; j++) {
    let acc = kind === 'max' ? -Infinity : 0;
    for (let a = 0; a < k; a++) for (let bb = 0; bb < k; bb++) {
      const hi = i * s - p + a;
      const wj = j * s - p + bb;
      if (hi < 0 || hi >= H || wj < 0 || wj >= W) continue;
      const v = x[(nc * H + hi) * W + wj];
      acc = kind === 'max' ? Math.max(acc, v) : acc + v;
    }
    y[(nc * Ho + i) * Wo + j] = kind === 'max' ? acc : acc / (k * k);
  }
  return y;
}

describe('nn: layers', () => {
  before(setup);

  it('Linear: forward vs reference (with and without bias), gradients reach weight and bias', async () => {
    for (const [N, I, O, bias] of [[1, 1, 1, true], [5, 7, 3, true], [33, 70, 9, false]] as const) {
      const lin = new Linear(I, O, { bias, seed: N });
      assert.deepEqual([...lin.weight.shape], [O, I]);
      const xd = randArray(N * I, 9);
      const x = wq.tensor(xd, [N, I]);
      const y = lin.call(x);
      const w = (await lin.weight.data()) as Float32Array;
      const b = lin.bias ? ((await lin.bias.data()) as Float32Array) : null;
      assertClose(await y.data(), refLinear(xd, w, b, N, I, O), 1e-4, 1e-4, `Linear ${N}x${I}->${O}`);
      wq.sum(y).backward();
      assert.ok(lin.weight.grad && (!lin.bias || lin.bias.grad));
      lin.release();
      x.release();
      y.release();
    }
    const lin = new Linear(4, 2);
    const bad = wq.zeros([3, 5]);
    assert.throws(() => lin.call(bad), /Linear\(4, 2\): expected input \[N, 4\], got tensor#\d+ f32\[3,5\]/);
    bad.release();
    lin.release();
  });

  it('Conv2d: stride, padding, dilation, groups, bias vs reference', async () => {
    const cases: [number[], number, number, { stride: number; padding: number; dilation: number; groups: number; bias: boolean }][] = [
      [[1, 1, 5, 5], 2, 3, { stride: 1, padding: 0, dilation: 1, groups: 1, bias: true }],
      [[2, 3, 9, 7], 4, 3, { stride: 2, padding: 1, dilation: 1, groups: 1, bias: true }],
      [[1, 4, 8, 8], 6, 3, { stride: 1, padding: 2, dilation: 2, groups: 2, bias: false }],
      [[2, 4, 6, 6], 4, 1, { stride: 2, padding: 0, dilation: 1, groups: 4, bias: true }],
    ];
    for (const [xs, O, K, o] of cases) {
      const conv = new Conv2d(xs[1], O, K, { ...o, seed: O + K });
      const xd = randArray(size(xs), O);
      const x = wq.tensor(xd, xs);
      if (o.bias) wq.uniform_(conv.bias!, -1, 1, 5);
      const y = conv.call(x);
      const ref = refConv(xd, xs, (await conv.weight.data()) as Float32Array, [...conv.weight.shape], o.bias ? ((await conv.bias!.data()) as Float32Array) : null, o);
      assert.deepEqual([...y.shape], ref.shape);
      assert.equal(conv.outSize(xs[2]), ref.shape[2]);
      assertClose(await y.data(), ref.y, 1e-4, 1e-4, `Conv2d ${JSON.stringify(xs)} ${JSON.stringify(o)}`);
      conv.release();
      x.release();
      y.release();
    }
    assert.throws(() => new Conv2d(3, 4, 3, { groups: 2 }), /groups \(2\) must divide inChannels \(3\) and outChannels \(4\)/);
  });

  it('BatchNorm2d / BatchNorm1d: batch statistics and running-stat update in training, running stats in eval', async () => {
    for (const [shape, mk] of [[[3, 2, 4, 5], (c: number) => new BatchNorm2d(c, { momentum: 0.2 })], [[6, 3], (c: number) => new BatchNorm1d(c, { momentum: 0.2 })]] as const) {
      const [N, C] = shape;
      const hw = shape.length === 4 ? shape[2] * shape[3] : 1;
      const bn = mk(C);
      wq.uniform_(bn.weight, 0.5, 1.5, 1);
      wq.uniform_(bn.bias, -0.5, 0.5, 2);
      const gamma = await bn.weight.data();
      const beta = await bn.bias.data();
      const xd = randArray(size(shape), 4, -2, 3);
      const x = wq.tensor(xd, shape);
      const y = bn.call(x);
      const idx = (n: number, c: number, k: number) => (n * C + c) * hw + k;
      const expect = new Float64Array(xd.length);
      const rm = new Float64Array(C);
      const rv = new Float64Array(C);
      for (let c = 0; c < C; c++) {
        let m = 0;
        for (let n = 0; n < N; n++) for (let k = 0; k < hw; k++) m += xd[idx(n, c, k)];
        m /= N * hw;
        let v = 0;
        for (let n = 0; n < N; n++) for (let k = 0; k < hw; k++) v += (xd[idx(n, c, k)] - m) ** 2;
        const cnt = N * hw;
        for (let n = 0; n < N; n++) for (let k = 0; k < hw; k++) {
          expect[idx(n, c, k)] = ((xd[idx(n, c, k)] - m) / Math.sqrt(v / cnt + 1e-5)) * gamma[c] + beta[c];
        }
        rm[c] = 0.8 * 0 + 0.2 * m;
        rv[c] = 0.8 * 1 + 0.2 * (v / (cnt - 1));
      }
      assertClose(await y.data(), expect, 1e-4, 1e-4, `${bn.typeName} train`);
      assertClose(await bn.runningMean.data(), rm, 1e-5, 1e-4, 'running_mean');
      assertClose(await bn.runningVar.data(), rv, 1e-5, 1e-4, 'running_var');
      bn.eval();
      const ye = bn.call(x);
      const ee = Float64Array.from(xd, (v, i) => {
        const c = Math.floor(i / hw) % C;
        return ((v - rm[c]) / Math.sqrt(rv[c] + 1e-5)) * gamma[c] + beta[c];
      });
      assertClose(await ye.data(), ee, 1e-4, 1e-4, `${bn.typeName} eval`);
      assert.deepEqual(bn.namedParameters().map(([n]) => n), ['weight', 'bias']);
      assert.deepEqual(bn.namedBuffers().map(([n]) => n), ['running_mean', 'running_var']);
      for (const t of [x, y, ye]) t.release();
      bn.release();
    }
  });

  it('MaxPool2d, AvgPool2d, GlobalAvgPool, Flatten, ReLU, Identity, Sequential', async () => {
    const xs = [2, 3, 7, 6];
    const xd = randArray(size(xs), 12);
    const x = wq.tensor(xd, xs);
    const mp = new MaxPool2d(3, { stride: 2, padding: 1 });
    assertClose(await mp.call(x).data(), refPool(xd, xs, 3, 2, 1, 'max'), 1e-6, 0, 'MaxPool2d 3/2/1');
    assertClose(await new MaxPool2d(2).call(x).data(), refPool(xd, xs, 2, 2, 0, 'max'), 1e-6, 0, 'MaxPool2d 2');
    assertClose(await new AvgPool2d(2).call(x).data(), refPool(xd, xs, 2, 2, 0, 'avg'), 1e-5, 1e-5, 'AvgPool2d 2');
    assertClose(await new AvgPool2d(3, { stride: 1 }).call(x).data(), refPool(xd, xs, 3, 1, 0, 'avg'), 1e-5, 1e-5, 'AvgPool2d 3/1');
    const gap = await new GlobalAvgPool().call(x).data();
    const gref = new Float64Array(6);
    for (let nc = 0; nc < 6; nc++) for (let k = 0; k < 42; k++) gref[nc] += xd[nc * 42 + k] / 42;
    assertClose(gap, gref, 1e-5, 1e-5, 'GlobalAvgPool');
    const seq = new Sequential(new ReLU(), new Identity(), new Flatten());
    const f = seq.call(x);
    assert.deepEqual([...f.shape], [2, 126]);
    assertClose(await f.data(), Array.from(xd, (v) => Math.max(v, 0)), 0, 0, 'ReLU+Flatten');
    assert.equal(seq.length, 3);
    assert.ok(seq.at(-1) instanceof Flatten);
    assert.deepEqual(seq.namedChildren().map(([n]) => n), ['0', '1', '2']);
    x.release();
  });

  it('Dropout: identity in eval; in training a deterministic mask per (seed, call) with kept values scaled', async () => {
    const x = wq.ones([40, 50]);
    const d = new Dropout(0.25, { seed: 9 });
    const a = await d.call(x).data();
    const b = await d.call(x).data();
    const kept = Array.from(a).filter((v) => v !== 0);
    assert.ok(kept.every((v) => Math.abs(v - 1 / 0.75) < 1e-6), 'kept values are scaled by 1/(1-p)');
    const frac = kept.length / a.length;
    assert.ok(Math.abs(frac - 0.75) < 0.05, `keep fraction ${frac}`);
    assert.notDeepEqual(Array.from(a), Array.from(b), 'each call draws a new mask');
    const d2 = new Dropout(0.25, { seed: 9 });
    assert.deepEqual(Array.from(await d2.call(x).data()), Array.from(a), 'same seed and call count, same mask');
    d.eval();
    assert.deepEqual(Array.from(await d.call(x).data()), Array.from(await x.data()));
    assert.throws(() => new Dropout(1), /p must be in \[0, 1\)/);
    x.release();
  });

  it('crossEntropy and mseLoss', async () => {
    const logits = randArray(12, 3);
    const lt = wq.tensor(logits, [4, 3]);
    const labels = wq.tensor(new Int32Array([0, 2, 1, 2]), [4], 'i32');
    let ref = 0;
    for (let n = 0; n < 4; n++) {
      const row = Array.from(logits.slice(n * 3, n * 3 + 3));
      const m = Math.max(...row);
      const lse = m + Math.log(row.reduce((s, v) => s + Math.exp(v - m), 0));
      ref += lse - row[[0, 2, 1, 2][n]];
    }
    assertClose([await crossEntropy(lt, labels).item()], [ref / 4], 1e-5, 1e-5, 'crossEntropy');
    const t = wq.tensor(randArray(12, 4), [4, 3]);
    const td = await t.data();
    let se = 0;
    for (let i = 0; i < 12; i++) se += (logits[i] - td[i]) ** 2;
    assertClose([await mseLoss(lt, t).item()], [se / 12], 1e-5, 1e-5, 'mseLoss');
    assertClose([await mseLoss(lt, t, 'sum').item()], [se], 1e-4, 1e-5, 'mseLoss sum');
  });
});
