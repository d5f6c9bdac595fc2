// Packed SSPQ20 inference in Chromium (WebGPU): a model exported in the page with exportPacked and
// loaded with loadPacked (webqat/infer's kernels: binary 1x1 convs decoded from their words, folded
// batch norms, DoReFa activations, the active shift, residuals) against the float model with the same
// quantizers in eval mode, on 6 images: W1A4 gives the same classes, W1A32 (activations clipped, not
// rounded) every logit within float tolerance. (LeNet-5 packed in Chromium: the smoke page's 'packed
// LeNet-5 (BWN, TWN)' check and the app test's drawn digit.) The page is any document of the Vite
// origin; the sources are imported through Vite's /@fs/ route.
import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** In the page: build SSPQ20 (wBits 1, aBits), export it packed, and return both models' logits on 6 images. */
async function runPage(page, aBits) {
  return page.evaluate(async ({ index, sspq, aBits }) => {
    const wq = await import(index);
    await import(sspq); // registers sspq20
    // WEBQAT_TUNE=off's policy: generic kernels, the same on every run
    await wq.init({ tune: 'off' });
    let s = 12345;
    const rnd = () => {
      s = (s + 0x6d2b79f5) | 0;
      let t = Math.imul(s ^ (s >>> 15), 1 | s);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    const arr = (n, lo, hi) => Float32Array.from({ length: n }, () => lo + (hi - lo) * rnd());
    const config = { inChannels: 3, numClasses: 10, inputSize: 32, seed: 7, wBits: 1, aBits };
    const model = wq.createModel('sspq20', config);
    // batch norms with non-trivial affine parameters and running statistics, so the folding is
    // exercised: γ, β random; mean and variance those of the images (one training-mode pass with
    // momentum 1), so the activations spread over the 4-bit levels instead of saturating
    for (const [, m] of model.namedModules()) {
      if (!(m instanceof wq.BatchNorm2d)) continue;
      wq.assignData(m.weight, arr(m.numFeatures, 0.5, 1.5));
      wq.assignData(m.bias, arr(m.numFeatures, 0, 0.4));
      m.momentum = 1;
    }
    // the classifier's bias at 0 and its weights larger, so the classes follow the features
    for (const [name, p] of model.namedParameters()) {
      if (name === 'fc.bias') wq.assignData(p, new Float32Array(p.size));
      if (name === 'fc.weight') wq.assignData(p, arr(p.size, -1, 1));
    }
    const n = 6;
    // images that differ beyond noise (pooled features of pure noise are alike): per image and
    // channel a brightness and a horizontal or vertical ramp, plus noise, in [0, 1]
    const x = new Float32Array(n * 3 * 32 * 32);
    for (let i = 0; i < n * 3; i++) {
      const [b, g, vertical] = [rnd(), rnd() * 2 - 1, rnd() < 0.5];
      for (let p = 0; p < 1024; p++) {
        const ramp = (vertical ? Math.floor(p / 32) : p % 32) / 31 - 0.5;
        x[i * 1024 + p] = Math.min(1, Math.max(0, b + 0.6 * g * ramp + 0.2 * (rnd() - 0.5)));
      }
    }
    const xt = wq.tensor(x, [n, 3, 32, 32]);
    model.train();
    wq.noGrad(() => model.forward(xt)).release();
    model.eval();
    let t = performance.now();
    const yt = wq.noGrad(() => model.forward(xt));
    const ref = Array.from(await yt.data());
    xt.release();
    yt.release();
    const floatMs = performance.now() - t;
    const quant = aBits === 32 ? 'dorefa:w1' : `dorefa:w1a${aBits}`;
    const ex = await wq.exportPacked(model, { model: 'sspq20', modelConfig: config, quant, inputShape: [3, 32, 32], numClasses: 10 });
    const pm = await wq.loadPacked(ex.bytes, { gpu: wq.gpu() });
    t = performance.now();
    const got = Array.from(await pm.logits(x, { normalize: false }));
    const packedMs = performance.now() - t;
    const out = {
      ref,
      got,
      kinds: ex.layers.map((l) => l.kind),
      tensorBytes: ex.tensorBytes,
      reportBytes: ex.report.packedBytes,
      fileBytes: ex.bytes.length,
      gpuBytes: pm.memory().bytes,
      floatMs,
      packedMs,
      adapter: wq.gpu().adapter.name,
    };
    pm.dispose();
    model.release();
    return out;
  }, { index: `/@fs${root}/src/index.ts`, sspq: `/@fs${root}/src/models/sspq.ts`, aBits });
}

const K = 10;
const argmax = (v) => Array.from({ length: v.length / K }, (_, i) => {
  let b = 0;
  for (let j = 1; j < K; j++) if (v[i * K + j] > v[i * K + b]) b = j;
  return b;
});

/** Shared checks and the figures of one comparison. */
function compare(r, label, log) {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < r.ref.length; i++) {
    diff = Math.max(diff, Math.abs(r.ref[i] - r.got[i]));
    scale = Math.max(scale, Math.abs(r.ref[i]));
  }
  const tol = 1e-4 * Math.max(1, scale);
  const close = r.ref.filter((v, i) => Math.abs(v - r.got[i]) <= tol).length;
  log(`${label} on ${r.adapter}: classes float ${argmax(r.ref).join(',')} / packed ${argmax(r.got).join(',')}; max logit diff ${diff.toExponential(2)} ` +
    `(largest |logit| ${scale.toFixed(3)}), ${close} of ${r.ref.length} logits within ${tol.toExponential(1)}; file ${r.fileBytes} B ` +
    `(tensors ${r.tensorBytes} B = size report ${r.reportBytes} B), ${r.gpuBytes} B of weights on the GPU; first call: float ${r.floatMs.toFixed(0)} ms, packed ${r.packedMs.toFixed(0)} ms`);
  assert.equal(r.got.length, 6 * K);
  assert.ok(r.got.every(Number.isFinite), 'packed logits are not all finite');
  // 18 block 1x1 convs + 2 shortcuts binary; the stem and the classifier float
  assert.equal(r.kinds.filter((x) => x === 'binary').length, 20, `layer kinds: ${r.kinds.join(',')}`);
  assert.equal(r.kinds.filter((x) => x === 'float').length, 2, `layer kinds: ${r.kinds.join(',')}`);
  assert.equal(r.tensorBytes, r.reportBytes);
  // the images fall in more than one class (agreement is not trivial)
  assert.ok(new Set(argmax(r.ref)).size > 1, `the float model gives one class for every image: ${argmax(r.ref)}`);
  assert.deepEqual(argmax(r.got), argmax(r.ref));
  return { diff, tol, close };
}

export const tests = [
  {
    name: 'packed SSPQ20 W1A4 (exportPacked -> loadPacked) gives the float model\'s classes; W1A32 its logits',
    timeoutMs: 300_000,
    async run({ page, baseUrl, log }) {
      await page.goto(`${baseUrl}/datasets/index.json`, { waitUntil: 'domcontentloaded' });
      // W1A32 (activations clipped to [0, 1], not rounded): every logit within float tolerance
      const a32 = compare(await runPage(page, 32), 'W1A32', log);
      assert.equal(a32.close, 60, `W1A32: max logit diff ${a32.diff} > ${a32.tol}`);
      // W1A4: the same classes. Where float rounding puts a value on the other side of a 4-bit level
      // boundary in one model and not in the other, that activation moves by 1/15 and the difference
      // propagates (docs/EXPORT.md), so only most logits are within float tolerance
      const a4 = compare(await runPage(page, 4), 'W1A4', log);
      assert.ok(a4.close >= 0.75 * 60, `W1A4: only ${a4.close} of 60 logits within ${a4.tol}`);
    },
  },
];
