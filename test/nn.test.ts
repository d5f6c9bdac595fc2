import { describe, it, before } from 'node:test';
import { assert, assertClose, randArray, setup, size, wq } from './helpers.ts';
import { Module } from '../src/nn/module.ts';
import { isParameter, parameter } from '../src/nn/parameter.ts';
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
    assert.deepEqual(net.a.shift.precision ?? null, { kind: 'ternary', bits: 2 });
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
