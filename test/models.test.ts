import { describe, it, before } from 'node:test';
import { assert, randArray, setup, wq } from './helpers.ts';

/** Parameters of a CIFAR ResNet of depth 6n+2, computed from the architecture (BN: 2 per channel). */
function cifarResNetParams(depth: number, classes: number, cin: number, shortcut: 'A' | 'B'): number {
  const n = (depth - 2) / 6;
  const w = [16, 32, 64];
  const conv = (ci: number, co: number, k: number) => ci * co * k * k;
  const bn = (c: number) => 2 * c;
  let total = conv(cin, 16, 3) + bn(16);
  let prev = 16;
  for (const c of w) {
    for (let b = 0; b < n; b++) {
      const ci = b === 0 ? prev : c;
      total += conv(ci, c, 3) + bn(c) + conv(c, c, 3) + bn(c);
      if (ci !== c && shortcut === 'B') total += conv(ci, c, 1) + bn(c); // projection where the shape changes
    }
    prev = c;
  }
  return total + 64 * classes + classes;
}

describe('models', () => {
  before(setup);

  it('registry lists the models and rejects unknown names with the known ones', () => {
    const names = wq.listModels();
    for (const n of ['mlp', 'lenet5', 'lenet5-twn', 'resnet20', 'resnet32', 'resnet44', 'resnet56', 'resnet18', 'resnet34', 'resnet50']) {
      assert.ok(names.includes(n), n);
    }
    assert.throws(() => wq.createModel('resnet21'), /unknown model 'resnet21'; known models: mlp, lenet5, .*resnet50/);
  });

  it('the SSPQ models are in the static registry (no import of src/models/sspq.ts needed)', () => {
    for (const n of ['sspq20', 'sspq20-wide', 'sspq34', 'sspq50']) assert.ok(wq.listModels().includes(n), n);
    const m = wq.createModel('sspq20', { wBits: 2, aBits: 8, seed: 3 });
    assert.ok(m instanceof wq.SSPQCifar);
    assert.equal(wq.sspqParamCount(m), 34010);
    assert.ok(wq.quantLayers(m).every(([, l]) => l.wq.spec.method === 'dorefa' && l.wq.precision.bits === 2));
    m.release();
  });

  it('parameter counts: LeNet-5 61,706; LeNet TWN; MLP', () => {
    const lenet = wq.createModel('lenet5');
    assert.equal(lenet.numParameters(), 61706);
    lenet.release();
    const twn = wq.createModel('lenet5-twn');
    // 32C5 (1->32) + 64C5 + FC 64*4*4 -> 512 + FC 512 -> 10
    assert.equal(twn.numParameters(), (25 * 32 + 32) + (32 * 25 * 64 + 64) + (1024 * 512 + 512) + (512 * 10 + 10));
    twn.release();
    const mlp = wq.createModel('mlp', { hidden: [30, 20], inputSize: 6, inChannels: 2 });
    assert.equal(mlp.numParameters(), 72 * 30 + 30 + 30 * 20 + 20 + 20 * 10 + 10);
    mlp.release();
  });

  it('parameter counts: CIFAR ResNet-20/32/44/56 (option B) from the architecture formula', () => {
    const expected20 = cifarResNetParams(20, 10, 3, 'B');
    assert.equal(expected20, 272474); // ≈ 0.27 M
    for (const d of [20, 32, 44, 56]) {
      const m = wq.createModel(`resnet${d}`);
      assert.equal(m.numParameters(), cifarResNetParams(d, 10, 3, 'B'), `resnet${d}`);
      m.release();
    }
    const a = new wq.CifarResNet(20, { shortcut: 'A' });
    assert.equal(a.numParameters(), cifarResNetParams(20, 10, 3, 'A'));
    a.release();
    const mnist = wq.createModel('resnet20', { inChannels: 1, numClasses: 7 });
    assert.equal(mnist.numParameters(), cifarResNetParams(20, 7, 1, 'B'));
    mnist.release();
  });

  it('parameter counts: ResNet-18 11,689,512; ResNet-50 25,557,032 (ImageNet, 1000 classes)', () => {
    for (const [name, n] of [['resnet18', 11689512], ['resnet50', 25557032]] as const) {
      const m = wq.createModel(name);
      assert.equal(m.numParameters(), n, name);
      m.release();
    }
    // small stem: 3x3 instead of 7x7 on the first conv
    const small = wq.createModel('resnet18', { inputSize: 32, numClasses: 10 });
    assert.equal(small.numParameters(), 11689512 - 3 * 64 * 49 + 3 * 64 * 9 - (512 * 1000 + 1000) + (512 * 10 + 10));
    small.release();
    // ResNet-34 at width 16: the same formula as torchvision's layout with every width divided by 4
    const r34 = wq.createModel('resnet34', { width: 16, numClasses: 10 });
    const conv = (ci: number, co: number, k: number) => ci * co * k * k;
    let expect = conv(3, 16, 7) + 32;
    let cin = 16;
    [3, 4, 6, 3].forEach((blocks, s) => {
      const c = 16 << s;
      for (let b = 0; b < blocks; b++) {
        const ci = b === 0 ? cin : c;
        expect += conv(ci, c, 3) + 2 * c + conv(c, c, 3) + 2 * c;
        if (ci !== c) expect += conv(ci, c, 1) + 2 * c;
      }
      cin = c;
    });
    expect += 128 * 10 + 10;
    assert.equal(r34.numParameters(), expect);
    r34.release();
  });

  it('state dict names follow torchvision', () => {
    const m = wq.createModel('resnet20');
    const keys = [...m.stateDict().keys()];
    for (const k of ['conv1.weight', 'bn1.weight', 'bn1.running_mean', 'layer1.0.conv1.weight', 'layer2.0.downsample.0.weight', 'layer2.0.downsample.1.running_var', 'fc.weight', 'fc.bias']) {
      assert.ok(keys.includes(k), k);
    }
    m.release();
  });

  it('same seed, same weights; another seed, other weights', async () => {
    const a = wq.createModel('lenet5', { seed: 3 });
    const b = wq.createModel('lenet5', { seed: 3 });
    const c = wq.createModel('lenet5', { seed: 4 });
    const wa = await a.parameters()[0].array();
    assert.deepEqual(await b.parameters()[0].array(), wa);
    assert.notDeepEqual(await c.parameters()[0].array(), wa);
    // layers get distinct streams
    const [w1, w2] = [await a.parameters()[2].array(), await a.parameters()[0].array()];
    assert.notDeepEqual(w1.slice(0, 10), w2.slice(0, 10));
    for (const m of [a, b, c]) m.release();
  });

  const shapes: [string, wq.ModelOptions, number[], number[]][] = [
    ['mlp', {}, [3, 1, 28, 28], [3, 10]],
    ['lenet5', {}, [2, 1, 28, 28], [2, 10]],
    ['lenet5-twn', {}, [2, 1, 28, 28], [2, 10]],
    ['resnet20', { inChannels: 1, inputSize: 16 }, [2, 1, 16, 16], [2, 10]],
    // the ImageNet layouts at width 8 or 4 (x4 channels for Bottleneck) keep the software GPU fast
    ['resnet18', { inputSize: 32, stem: 'imagenet', numClasses: 5, width: 8 }, [2, 3, 32, 32], [2, 5]],
    ['resnet50', { inputSize: 32, stem: 'imagenet', numClasses: 4, width: 4 }, [2, 3, 32, 32], [2, 4]],
    ['resnet18', { inputSize: 16, numClasses: 3, width: 4, inChannels: 1 }, [2, 1, 16, 16], [2, 3]],
  ];
  for (const [name, opts, inShape, outShape] of shapes) {
    it(`${name}: forward gives ${JSON.stringify(outShape)}, backward reaches every parameter`, async () => {
      const m = wq.createModel(name, opts);
      const x = wq.tensor(randArray(inShape.reduce((s, d) => s * d, 1), 5), inShape);
      const labels = wq.tensor(new Int32Array(outShape[0]).map((_, i) => i % outShape[1]), [outShape[0]], 'i32');
      const loss = wq.tidy(() => {
        const y = m.call(x);
        assert.deepEqual([...y.shape], outShape);
        const l = wq.crossEntropy(y, labels);
        l.backward();
        return l;
      });
      const v = await loss.item();
      assert.ok(Number.isFinite(v), `loss ${v}`);
      for (const [n, p] of m.namedParameters()) assert.ok(p.grad, `${name}: ${n} has a gradient`);
      m.eval();
      const y2 = wq.tidy(() => m.call(x));
      assert.ok((await y2.array()).every(Number.isFinite));
      for (const t of [x, labels, loss, y2]) t.release();
      m.release();
    });
  }

  it('an MLP trains: the loss falls over 30 SGD steps on a separable problem', async () => {
    // two Gaussian blobs per class in 8-D, 3 classes
    const N = 48;
    const D = 8;
    const C = 3;
    const xs = new Float32Array(N * D);
    const ys = new Int32Array(N);
    const noise = randArray(N * D, 77, -0.5, 0.5);
    for (let i = 0; i < N; i++) {
      ys[i] = i % C;
      for (let d = 0; d < D; d++) xs[i * D + d] = (d % C === ys[i] ? 1.5 : -0.5) + noise[i * D + d];
    }
    const x = wq.tensor(xs, [N, D]);
    const y = wq.tensor(ys, [N], 'i32');
    const model = new wq.MLP([D, 16, C], { seed: 1 });
    const opt = new wq.SGD(model.namedParameters(), { lr: 0.1, momentum: 0.9 });
    const losses: number[] = [];
    for (let s = 0; s < 30; s++) {
      const l = wq.tidy(() => {
        const loss = wq.crossEntropy(model.call(x), y);
        loss.backward();
        return loss;
      });
      opt.step();
      opt.zeroGrad();
      losses.push(await l.item());
      l.release();
    }
    assert.ok(losses[29] < 0.5 * losses[0], `loss ${losses[0]} -> ${losses[29]}`);
    assert.ok(losses[29] < 0.3, `final loss ${losses[29]}`);
    model.release();
    opt.release();
    x.release();
    y.release();
  });
});
