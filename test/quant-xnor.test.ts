/** The `xnor` quantizer (src/quant/methods/xnor.ts): per-output-channel binary weights, size report, packed round trip. */
import { before, describe, it } from 'node:test';
import { assert, assertClose, randArray, setup, wq } from './helpers.ts';

describe('quant: xnor (binary weights, one α per output channel)', () => {
  let gpu: wq.Gpu;
  before(async () => {
    gpu = await setup();
  });

  it('parses, tags binary 1 bit, forward = α_c·sign*(W) with α_c = mean|W[c]|, identity STE', async () => {
    const spec = wq.parseQuantSpec('xnor');
    assert.equal(spec.name, 'xnor');
    assert.deepEqual(spec.weightPrecision, { kind: 'binary', bits: 1 });
    assert.throws(() => wq.parseQuantSpec('xnor:2'), /'xnor' takes no argument\. Accepted: .*xnor/);
    const model = new wq.Sequential(new wq.Linear(5, 7, { seed: 1 }), new wq.Linear(7, 4, { seed: 2 }), new wq.Linear(4, 3, { seed: 3 }));
    assert.deepEqual(wq.quantizeModel(model, spec), ['1']);
    const [[, layer]] = wq.quantLayers(model);
    const w = (await layer.weight.data()) as Float32Array;
    const q = layer.wq.quantized(true);
    const ref = new Float32Array(w.length);
    for (let c = 0; c < 4; c++) {
      const row = w.subarray(c * 7, (c + 1) * 7);
      const a = row.reduce((s, v) => s + Math.abs(v), 0) / 7;
      for (let i = 0; i < 7; i++) ref[c * 7 + i] = (row[i] >= 0 ? 1 : -1) * a;
    }
    assertClose(await q.data(), ref, 1e-6, 1e-5, 'xnor forward');
    // four distinct magnitudes: the scale really is per channel
    assert.equal(new Set(Array.from(ref, Math.abs)).size, 4);
    const g = randArray(28, 9);
    wq.sum(wq.mul(q, wq.tensor(g, [4, 7]))).backward();
    assertClose(await layer.weight.grad!.data(), g, 1e-6, 1e-6, 'identity STE');
    model.release();
  });

  it('size report counts one scale per channel; the packed file loads and predicts like the model', async () => {
    const config = { inChannels: 1, numClasses: 10, inputSize: 8, seed: 5, hidden: [48, 24] };
    const model = wq.createModel('mlp', config);
    wq.quantizeModel(model, wq.parseQuantSpec('xnor'), { quantizeLast: true });
    const r = await wq.exportPacked(model, { model: 'mlp', modelConfig: config, quant: 'xnor', inputShape: [1, 8, 8], numClasses: 10 });
    assert.deepEqual(r.layers.map((l) => [l.kind, l.quantizer]), [['float', 'none'], ['binary', 'xnor'], ['binary', 'xnor']]);
    // 48·24 and 24·10 binary weights at 1 bit, 24 and 10 scales; the rest f32
    const expected = 64 * 48 * 4 + 48 * 4 + Math.ceil((48 * 24) / 32) * 4 + 24 * 4 + 24 * 4 + Math.ceil(240 / 32) * 4 + 10 * 4 + 10 * 4;
    assert.equal(r.tensorBytes, expected);
    assert.equal(r.report.packedBytes, expected);
    const m = await wq.loadPacked(r.bytes, { gpu });
    const x = randArray(3 * 64, 21, 0, 1);
    model.eval();
    const xt = wq.tensor(x, [3, 1, 8, 8]);
    const y = wq.noGrad(() => model.forward(xt));
    assertClose(await m.logits(x), (await y.data()) as Float32Array, 1e-4, 1e-4, 'packed logits');
    xt.release();
    y.release();
    m.dispose();
    model.release();
  });
});
