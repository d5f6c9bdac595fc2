/** Quantized layers (QuantConv2d/QuantLinear, quantizeModel, size report, packing) and the SSPQ models. */
import { before, describe, it } from 'node:test';
import { assert, assertClose, randArray, setup, wq } from './helpers.ts';
import { BatchNorm2d, Conv2d, Linear, Sequential, Flatten, ReLU } from '../src/nn/index.ts';
import { createModel, listModels } from '../src/models/registry.ts';
import { sspq20, sspq20Wide, sspq34, sspq50, sspqParamCount } from '../src/models/sspq.ts';
import { QuantConv2d, QuantLinear, quantizeModel, quantLayers } from '../src/quant/layers.ts';
import { parseQuantSpec } from '../src/quant/spec.ts';
import { SizeReporter } from '../src/quant/report.ts';
import { packWeights, unpackWeights } from '../src/quant/pack.ts';
import { QuantHooks } from '../src/quant/hooks.ts';

describe('quantized layers', () => {
  before(setup);

  it('QuantConv2d forward equals conv2d with the quantized weight; quantizes once per step', async () => {
    const conv = new QuantConv2d(3, 5, 3, { method: 'twn' }, { padding: 1, seed: 7 });
    const x = wq.tensor(randArray(2 * 3 * 6 * 5, 1), [2, 3, 6, 5]);
    wq.beginScope('step 1');
    const y1 = conv.forward(x);
    const y2 = conv.forward(x); // same step: cached
    assert.equal(conv.wq.quantCount, 1);
    const q = await conv.wq.quantized(true).data();
    // reference: the TWN of the latent weight, then a float conv
    const w = (await conv.weight.data()) as Float32Array;
    const m = w.reduce((s, v) => s + Math.abs(v), 0) / w.length;
    const big = Array.from(w).filter((v) => Math.abs(v) > 0.7 * m);
    const alpha = big.reduce((s, v) => s + Math.abs(v), 0) / big.length;
    assertClose(q, Array.from(w, (v) => (Math.abs(v) > 0.7 * m ? Math.sign(v) * alpha : 0)), 1e-6, 1e-5, 'twn weight');
    const ref = wq.conv2d(x, wq.tensor(q, conv.weight.shape), conv.bias, { padding: 1 });
    assertClose(await y1.data(), await ref.data(), 1e-5, 1e-4, 'forward');
    wq.sum(wq.add(y1, y2)).backward();
    assert.ok(conv.weight.grad, 'latent weight gets the STE gradient');
    conv.forward(x); // after backward the cache is stale
    assert.equal(conv.wq.quantCount, 2);
    wq.endScope();
    conv.forward(x); // a new step scope
    assert.equal(conv.wq.quantCount, 3);
    conv.eval();
    conv.forward(x);
    conv.forward(x);
    assert.equal(conv.wq.quantCount, 4, 'eval: one quantization until training resumes');
    conv.release();
  });

  it('quantizeModel keeps the first and last layers float unless asked; tags precisions', () => {
    const build = () => new Sequential(new Conv2d(1, 4, 3, { seed: 1 }), new ReLU(), new Conv2d(4, 4, 1, { seed: 2 }), new Flatten(), new Linear(4 * 4 * 4, 3, { seed: 3 }));
    const a = build();
    assert.deepEqual(quantizeModel(a, parseQuantSpec('bwn')), ['2']);
    assert.ok(a.at(2) instanceof QuantConv2d && !(a.at(0) instanceof QuantConv2d) && !(a.at(4) instanceof QuantLinear));
    assert.equal((a.at(2) as QuantConv2d).weight.precision?.kind, 'binary');
    const b = build();
    assert.deepEqual(quantizeModel(b, parseQuantSpec('ttq'), { quantizeFirst: true, quantizeLast: true }), ['0', '2', '4']);
    assert.ok([...b.stateDict().keys()].includes('2.ttq_wp'));
    a.release();
    b.release();
  });

  it('size report, flip ratio and packed export of a quantized layer', async () => {
    const model = new Sequential(new Conv2d(1, 4, 3, { seed: 1 }), new Conv2d(4, 8, 3, { seed: 2 }), new Conv2d(8, 4, 1, { seed: 3 }));
    quantizeModel(model, parseQuantSpec('twn'));
    const rep = new SizeReporter();
    const r1 = await rep.report(model);
    assert.equal(r1.layers.length, 1);
    const l = r1.layers[0];
    assert.equal(l.mode, 'ternary');
    assert.equal(l.n, 8 * 4 * 9);
    assert.ok(Number.isNaN(l.flipRatio));
    assert.equal(r1.totalParams, 4 * 9 + 4 + 8 * 36 + 8 + 4 * 8 + 4);
    assert.equal(r1.packedBytes, Math.ceil(288 / 16) * 4 + 4 + (r1.totalParams - 288) * 4);
    const r2 = await rep.report(model);
    assert.equal(r2.layers[0].flipRatio, 0);
    const layer = quantLayers(model)[0][1];
    const q = (await layer.wq.quantized(false).data()) as Float32Array;
    const packed = packWeights(q, layer.weight.shape, 'ternary');
    assertClose(unpackWeights(packed), q, 0, 1e-6, 'packed round trip');
    model.release();
  });

  it('SQ hooks: regularizer in the loss, β clipped after the step', async () => {
    const model = new Sequential(new Conv2d(1, 2, 3, { seed: 1 }), new Conv2d(2, 3, 3, { seed: 2 }), new Flatten(), new Linear(3, 2, { seed: 3 }));
    quantizeModel(model, parseQuantSpec('sq:lambda=0.5,warmup=0'));
    const hooks = new QuantHooks(model, parseQuantSpec('sq:lambda=0.5,warmup=0'), 10);
    const st = hooks.states[0].state;
    const base = (l: wq.Tensor) => wq.mean(l);
    const loss = hooks.loss((logits) => base(logits));
    const x = wq.tensor(randArray(5 * 5, 2), [1, 1, 5, 5]);
    const l = loss(model.forward(x), wq.tensor([0], [1], 'i32'));
    l.backward();
    assert.ok(st.param('sq_beta').grad, 'β receives a gradient from the regularizer');
    wq.fill_(st.param('sq_beta'), 3);
    hooks.afterStep();
    assertClose(await st.param('sq_beta').data(), [Math.PI / 2 - 1e-4], 1e-6, 1e-6, 'β clip');
    model.release();
  });
});

describe('SSPQ models', () => {
  before(setup);

  it('parameter counts (conv + shift + FC, BN excluded) match ALGORITHMS §2.4', () => {
    const cases: [string, () => { release(): void; numParameters(): number }, number][] = [
      ['SSPQ20', () => sspq20(), 34010],
      ['wide SSPQ20', () => sspq20Wide(), 132522],
      ['SSPQ34', () => sspq34(), 172404],
    ];
    for (const [name, make, want] of cases) {
      const m = make() as Parameters<typeof sspqParamCount>[0];
      assert.equal(sspqParamCount(m), want, name);
      m.release();
    }
    const big = sspq50();
    assert.equal(sspqParamCount(big), 14194216);
    assert.equal(big.numParameters(), 14262312, 'SSPQ50 incl. BN = 14.26 M');
    const bn = big.modules().filter((m) => m instanceof BatchNorm2d).length;
    assert.ok(bn > 0);
    big.release();
  });

  it('registered in the model registry; 1x1 convs binary, stem and FC float', () => {
    for (const n of ['sspq20', 'sspq20-wide', 'sspq34', 'sspq50']) assert.ok(listModels().includes(n), n);
    const m = createModel('sspq20', { seed: 1 });
    const q = quantLayers(m);
    assert.equal(q.length, 9 * 2 + 2);
    assert.ok(q.every(([, l]) => l.wq.precision.kind === 'binary'));
    m.release();
  });
});

describe('SSPQ training path (GPU)', () => {
  before(setup);

  it('SSPQ20 forward/backward on a small batch: fused shift·1x1 equals the unfused pair; every parameter gets a gradient', async () => {
    const x = wq.tensor(randArray(2 * 1 * 12 * 12, 31), [2, 1, 12, 12]);
    const labels = wq.tensor([3, 7], [2], 'i32');
    const runOnce = async (fused: boolean) => {
      const m = sspq20({ inChannels: 1, numClasses: 10, seed: 5, fused });
      m.train();
      const logits = m.forward(x);
      const loss = wq.softmaxCrossEntropy(logits, labels, 'mean');
      loss.backward();
      const out = { logits: Array.from(await logits.data()), loss: (await loss.data())[0], grads: new Map<string, Float32Array>() };
      for (const [n, p] of m.namedParameters()) out.grads.set(n, p.grad ? ((await p.grad.data()) as Float32Array) : new Float32Array(0));
      m.release();
      return out;
    };
    const a = await runOnce(true);
    const b = await runOnce(false);
    assert.equal(a.logits.length, 20);
    assert.ok(Number.isFinite(a.loss) && a.loss > 0, `loss ${a.loss}`);
    assertClose(a.logits, b.logits, 1e-4, 1e-3, 'fused vs unfused logits');
    for (const [n, g] of b.grads) {
      assert.ok(g.length > 0, `${n} has a gradient`);
      assertClose(a.grads.get(n)!, g, 1e-4, 1e-2, `grad ${n}`);
    }
    // the shift offsets of a block learn (non-zero gradient)
    const gs = a.grads.get('groups.0.blocks.0.shift.shift')!;
    assert.ok(gs.some((v) => v !== 0), 'shift offsets get a non-zero gradient');
  });

  it('activations inside the blocks are on the 4-bit grid and the 1x1 weights are binary', async () => {
    const m = sspq20({ inChannels: 1, numClasses: 10, seed: 6 });
    const block = m.groups.at(0);
    const x = wq.tensor(randArray(1 * 1 * 8 * 8, 33), [1, 1, 8, 8]);
    wq.beginScope('probe');
    const h = (block as unknown as { forward(t: wq.Tensor): wq.Tensor }).forward(m.conv1.forward(x));
    const v = await h.data(); // the group output is A(BN(x)): 4-bit DoReFa levels
    for (const a of v) assert.ok(Math.abs(a * 15 - Math.round(a * 15)) < 1e-4 && a >= 0 && a <= 1, `level ${a}`);
    const q = await quantLayers(m)[0][1].wq.quantized(true).data();
    assert.equal(new Set(Array.from(q, (a) => Math.abs(a).toFixed(6))).size, 1, 'one magnitude: binary');
    wq.endScope();
    m.release();
  });
});
