/**
 * Packed export and inference (src/quant/export.ts, src/infer, src/kernels/infer.ts): the packed
 * kernels against plain-TypeScript references, packed LeNet-5 (BWN, TWN, SQ ternary and binary)
 * against the float model evaluated with the same quantizers, file size = size report, GPU memory,
 * and the errors for broken files.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import * as wq from '../src/index.ts';
import '../src/models/sspq.ts'; // registers sspq20
import * as k from '../src/kernels/infer.ts';
import { fixedCodes, fixedValues, logCodes, logValues, packBits, packCodes, unpackBits } from '../src/quant/pack.ts';
import type { GBuf } from '../src/gpu/index.ts';
import type { PackedLayerMeta } from '../src/infer/format.ts';
import { assertClose, randArray, rng, setup } from './helpers.ts';

let gpu: wq.Gpu;
before(async () => {
  gpu = await setup();
});

function upload(data: Float32Array | Uint32Array): GBuf {
  const b = gpu.pool.acquire(Math.max(data.byteLength, 4), 'test');
  gpu.write(b, data);
  return b;
}
async function download(b: GBuf, n: number): Promise<Float32Array> {
  return new Float32Array(await gpu.read(b, n * 4));
}

function randCodes(n: number, seed: number, ternary: boolean): Int8Array {
  const r = rng(seed);
  const c = new Int8Array(n);
  for (let i = 0; i < n; i++) {
    const u = r();
    c[i] = ternary ? (u < 1 / 3 ? -1 : u < 2 / 3 ? 0 : 1) : u < 0.5 ? -1 : 1;
  }
  return c;
}

/** Plain-TS conv: y = relu?(conv(x, w)·mult[o] + bias[o]). */
function refConv(x: Float32Array, w: ArrayLike<number>, mult: Float32Array, bias: Float32Array, g: k.ConvGeom, relu: boolean): Float32Array {
  const { Ho, Wo } = k.convOut(g);
  const y = new Float32Array(g.N * g.O * Ho * Wo);
  for (let n = 0; n < g.N; n++) for (let o = 0; o < g.O; o++) for (let oy = 0; oy < Ho; oy++) for (let ox = 0; ox < Wo; ox++) {
    let acc = 0;
    for (let c = 0; c < g.C; c++) for (let ky = 0; ky < g.kh; ky++) for (let kx = 0; kx < g.kw; kx++) {
      const iy = oy * g.stride + ky - g.pad;
      const ix = ox * g.stride + kx - g.pad;
      if (iy < 0 || iy >= g.H || ix < 0 || ix >= g.W) continue;
      acc += x[((n * g.C + c) * g.H + iy) * g.W + ix] * w[((o * g.C + c) * g.kh + ky) * g.kw + kx];
    }
    const v = acc * mult[mult.length === 1 ? 0 : o] + bias[o];
    y[((n * g.O + o) * Ho + oy) * Wo + ox] = relu ? Math.max(v, 0) : v;
  }
  return y;
}

describe('packed kernels vs plain TypeScript', () => {
  for (const mode of ['binary', 'ternary', 'float'] as const) {
    for (const [label, g, relu, perChannel] of [
      ['conv 3x3 stride 2 pad 1, odd sizes', { N: 2, C: 3, H: 7, W: 6, O: 5, kh: 3, kw: 3, stride: 2, pad: 1 }, true, true],
      ['conv 3x3 stride 1 pad 1, width 7, 11 channels (partial pixel and channel blocks)', { N: 2, C: 2, H: 5, W: 7, O: 11, kh: 3, kw: 3, stride: 1, pad: 1 }, false, true],
      ['linear 70 -> 9 (batch 1)', { N: 1, C: 70, H: 1, W: 1, O: 9, kh: 1, kw: 1, stride: 1, pad: 0 }, false, false],
      // 1x1 kernels read 32 (16) input channels per window: 37 channels = a full and a partial window, rows not word-aligned
      ['conv 1x1 stride 2, 37 -> 10 channels, width 9', { N: 2, C: 37, H: 5, W: 9, O: 10, kh: 1, kw: 1, stride: 2, pad: 0 }, true, true],
      ['conv 1x1 pad 1 (zero border)', { N: 1, C: 5, H: 3, W: 4, O: 3, kh: 1, kw: 1, stride: 1, pad: 1 }, false, false],
      ['conv 5x5 pad 2 (LeNet-5 conv1 form: sliding window over the zero border), 1 -> 6 channels', { N: 1, C: 1, H: 12, W: 12, O: 6, kh: 5, kw: 5, stride: 1, pad: 2 }, true, true],
      ['conv 5x5 (LeNet-5 conv2 form), 6 -> 16 channels', { N: 2, C: 6, H: 14, W: 14, O: 16, kh: 5, kw: 5, stride: 1, pad: 0 }, true, false],
      ['conv 1x17 (a kernel row wider than a ternary window: per-weight decode)', { N: 1, C: 2, H: 3, W: 20, O: 3, kh: 1, kw: 17, stride: 1, pad: 0 }, false, true],
    ] as const) {
      it(`${mode} ${label}`, async () => {
        const n = g.O * g.C * g.kh * g.kw;
        const x = randArray(g.N * g.C * g.H * g.W, 1);
        const mult = perChannel ? randArray(g.O, 2, 0.2, 1.5) : new Float32Array([0.37]);
        const bias = randArray(g.O, 3);
        let words: Uint32Array;
        let w: ArrayLike<number>;
        if (mode === 'float') {
          const f = randArray(n, 4);
          w = f;
          words = new Uint32Array(f.buffer);
        } else {
          const codes = randCodes(n, 5, mode === 'ternary');
          w = codes;
          words = packCodes(codes, [n], mode, [1]).words;
        }
        assert.equal(words.length, k.wordsFor(mode, n));
        const { Ho, Wo } = k.convOut(g);
        const bx = upload(x), bw = upload(words), bm = upload(mult), bb = upload(bias);
        const by = gpu.pool.acquire(g.N * g.O * Ho * Wo * 4);
        k.packedConv(gpu, mode, g, bx, bw, bm, mult.length, bb, by, relu);
        const got = await download(by, g.N * g.O * Ho * Wo);
        assertClose(got, refConv(x, w, mult, bias, g, relu), 1e-5, 1e-4, `${mode} ${label}`);
        for (const b of [bx, bw, bm, bb, by]) gpu.pool.release(b);
      });
    }
  }

  // B-bit codes (fixed, log): random codes packed on the host, decoded in the kernel, against the
  // conv of their values (scale 1 in the codes, the layer scale in mult)
  const codeFormats = [{ kind: 'fixed', bits: 6 }, { kind: 'fixed', bits: 8 }, { kind: 'fixed', bits: 16 }, { kind: 'log', bits: 5 }, { kind: 'log', bits: 8 }] as const;
  const codeGeoms = [
    // row path for B·5 ≤ 32 (fixed:6, log:5), per-weight decode beyond (fixed:8, :16, log:8); sliding window
    ['conv 5x5 pad 2, 3 -> 11 channels', { N: 2, C: 3, H: 9, W: 10, O: 11, kh: 5, kw: 5, stride: 1, pad: 2 }, true, true],
    ['conv 3x3 stride 2 pad 1, odd sizes', { N: 1, C: 4, H: 7, W: 6, O: 5, kh: 3, kw: 3, stride: 2, pad: 1 }, false, false],
    // 1x1 / linear: ⌊32/B⌋ input channels per window; 67 is not a multiple of any
    ['linear 67 -> 10 (batch 2)', { N: 2, C: 67, H: 1, W: 1, O: 10, kh: 1, kw: 1, stride: 1, pad: 0 }, true, false],
  ] as const;
  for (const f of codeFormats) {
    for (const [label, g, relu, perChannel] of codeGeoms) {
      it(`${f.kind}:${f.bits} ${label}`, async () => {
        const n = g.O * g.C * g.kh * g.kw;
        const r = rng(50 + f.bits);
        const codes = Uint32Array.from({ length: n }, () => {
          const c = Math.floor(r() * 2 ** f.bits);
          return f.kind === 'log' && c === 2 ** (f.bits - 1) ? 0 : c; // no negative zero
        });
        const w = f.kind === 'fixed' ? fixedValues(codes, f.bits, 1) : logValues(codes, f.bits, 1);
        const words = packBits(codes, f.bits);
        assert.equal(words.length, k.wordsFor(f, n));
        assert.deepEqual([...unpackBits(words, n, f.bits)], [...codes]);
        // log codes span 2^(1-K)..1: scale them up so small powers still matter in the sums
        const x = randArray(g.N * g.C * g.H * g.W, 1);
        const mult = perChannel ? randArray(g.O, 2, 0.2, 1.5) : new Float32Array([f.kind === 'fixed' ? 2 ** -5 : 0.75]);
        const bias = randArray(g.O, 3);
        const { Ho, Wo } = k.convOut(g);
        const bx = upload(x), bw = upload(words), bm = upload(mult), bb = upload(bias);
        const by = gpu.pool.acquire(g.N * g.O * Ho * Wo * 4);
        k.packedConv(gpu, f, g, bx, bw, bm, mult.length, bb, by, relu);
        const got = await download(by, g.N * g.O * Ho * Wo);
        const ref = refConv(x, w, mult, bias, g, relu);
        let mx = 0;
        for (const v of ref) mx = Math.max(mx, Math.abs(v));
        assertClose(got, ref, 1e-5 * Math.max(1, mx), 1e-4, `${f.kind}:${f.bits} ${label}`);
        for (const b of [bx, bw, bm, bb, by]) gpu.pool.release(b);
      });
    }
  }

  it('B-bit codes on the host: fixed and log values -> codes -> values, and the errors', () => {
    // fixed:6, f = 4: q in -32..31
    const fv = [0, 1 / 16, -2, 31 / 16, -1 / 16, 0.5];
    const fc = fixedCodes(fv, 6, 4);
    assert.equal(fc.scale, 1 / 16);
    assert.deepEqual([...fc.codes], [0, 1, 32, 31, 63, 8]);
    assert.deepEqual([...fixedValues(fc.codes, 6, fc.scale)], fv);
    // 6 codes of 6 bits = 36 bits: the 6th code straddles words 0 and 1
    const words = packBits(fc.codes, 6);
    assert.equal(words.length, 2);
    assert.equal(words[1], 8 >>> 2);
    assert.throws(() => fixedCodes([2], 6, 4), /value 0 = 2 is not a 6-bit fixed-point value with fraction length 4 \(q = 32, expected an integer -32\.\.31\)/);
    assert.throws(() => fixedCodes([0.03], 6, 4), /value 0 = 0\.03 is not a 6-bit fixed-point value/);
    // log:5, FSR 1: K = 15, powers 2^-14..2^0, scale 2^0
    const lv = [0, 1, -1, 2 ** -14, -(2 ** -3)];
    const lc = logCodes(lv, 5, 1);
    assert.equal(lc.scale, 1);
    assert.deepEqual([...lc.codes], [0, 15, 16 + 15, 1, 16 + 12]);
    assert.deepEqual([...logValues(lc.codes, 5, lc.scale)], lv);
    assert.throws(() => logCodes([2], 5, 1), /value 0 = 2 is not 0 or ±2\^e with e an integer in -14\.\.0/);
    assert.throws(() => logCodes([0.3], 5, 1), /value 0 = 0\.3 is not 0/);
    assert.throws(() => logValues([16], 5, 1), /invalid code 16 \(negative zero\) at value 0/);
    assert.throws(() => fixedCodes([0], 17, 0), /bits must be an integer 2\.\.16, got 17/);
  });

  it('xnorLinear (countOneBits) equals the ±1 dot product, K not a multiple of 32', async () => {
    const N = 3, K = 70, O = 4;
    const a = randCodes(N * K, 6, false);
    const w = randCodes(O * K, 7, false);
    const words = Math.ceil(K / 32);
    const pack = (c: Int8Array, rows: number) => {
      const out = new Uint32Array(rows * words);
      for (let r = 0; r < rows; r++) out.set(packCodes(c.subarray(r * K, (r + 1) * K), [K], 'binary', [1]).words, r * words);
      return out;
    };
    const mult = randArray(O, 8, 0.5, 1);
    const bias = randArray(O, 9);
    const ref = new Float32Array(N * O);
    for (let n = 0; n < N; n++) for (let o = 0; o < O; o++) {
      let d = 0;
      for (let i = 0; i < K; i++) d += a[n * K + i] * w[o * K + i];
      ref[n * O + o] = Math.max(d * mult[o] + bias[o], 0);
    }
    // the activation bits come from signPack on the GPU; the weights from packCodes on the host
    const ba = upload(Float32Array.from(a, (v) => v * 0.5));
    const bits = gpu.pool.acquire(N * words * 4);
    k.signPack(gpu, N, K, ba, bits);
    const packedA = new Uint32Array(await gpu.read(bits, N * words * 4));
    assert.deepEqual([...packedA], [...pack(a, N)]);
    const bw = upload(pack(w, O)), bm = upload(mult), bb = upload(bias);
    const by = gpu.pool.acquire(N * O * 4);
    k.xnorLinear(gpu, N, K, O, bits, bw, bm, O, bb, by, true);
    assertClose(await download(by, N * O), ref, 1e-5, 1e-5, 'xnor');
    for (const b of [ba, bits, bw, bm, bb, by]) gpu.pool.release(b);
  });

  it('maxPool and softmax', async () => {
    const x = randArray(2 * 5 * 5, 10);
    const bx = upload(x);
    const by = gpu.pool.acquire(2 * 2 * 2 * 4);
    k.maxPool(gpu, 2, 5, 5, 2, 2, bx, by);
    const ref: number[] = [];
    for (let p = 0; p < 2; p++) for (let oy = 0; oy < 2; oy++) for (let ox = 0; ox < 2; ox++) {
      ref.push(Math.max(...[0, 1].flatMap((dy) => [0, 1].map((dx) => x[p * 25 + (oy * 2 + dy) * 5 + ox * 2 + dx]))));
    }
    assertClose(await download(by, 8), ref, 0, 0, 'maxPool');
    const bs = gpu.pool.acquire(8 * 4);
    k.softmax(gpu, 2, 4, by, bs);
    const s = await download(bs, 8);
    for (let r = 0; r < 2; r++) {
      const row = ref.slice(r * 4, r * 4 + 4);
      const m = Math.max(...row);
      const z = row.reduce((t, v) => t + Math.exp(v - m), 0);
      assertClose(s.subarray(r * 4, r * 4 + 4), row.map((v) => Math.exp(v - m) / z), 1e-6, 1e-5, 'softmax');
    }
    for (const b of [bx, by, bs]) gpu.pool.release(b);
  });

  for (const round of [false, true]) {
    it(`activeShift (${round ? 'rounded offsets' : 'bilinear'}), stride 2, odd sizes`, async () => {
      const N = 2, C = 3, H = 7, W = 6, stride = 2;
      const x = randArray(N * C * H * W, 40);
      const offs = randArray(2 * C, 41, -1.6, 1.6);
      const Ho = Math.floor((H - 1) / stride) + 1, Wo = Math.floor((W - 1) / stride) + 1;
      const at = (n: number, c: number, yy: number, xx: number) => (yy < 0 || xx < 0 || yy >= H || xx >= W ? 0 : x[((n * C + c) * H + yy) * W + xx]);
      const ref = new Float32Array(N * C * Ho * Wo);
      for (let n = 0; n < N; n++) for (let c = 0; c < C; c++) for (let h = 0; h < Ho; h++) for (let w = 0; w < Wo; w++) {
        const a = round ? Math.round(offs[c]) : offs[c], b = round ? Math.round(offs[C + c]) : offs[C + c];
        const fa = Math.floor(a), fb = Math.floor(b), dx = a - fa, dy = b - fb;
        const y0 = h * stride + fb, x0 = w * stride + fa;
        ref[((n * C + c) * Ho + h) * Wo + w] = (1 - dx) * (1 - dy) * at(n, c, y0, x0) + dx * (1 - dy) * at(n, c, y0, x0 + 1) + (1 - dx) * dy * at(n, c, y0 + 1, x0) + dx * dy * at(n, c, y0 + 1, x0 + 1);
      }
      const bx = upload(x), bo = upload(offs), by = gpu.pool.acquire(ref.length * 4);
      assert.deepEqual(k.activeShift(gpu, N, C, H, W, stride, bx, bo, by, round), { Ho, Wo });
      assertClose(await download(by, ref.length), ref, 1e-6, 1e-5, 'activeShift');
      for (const b of [bx, bo, by]) gpu.pool.release(b);
    });
  }

  it('launchers validate shapes', () => {
    const b = gpu.pool.acquire(256);
    const g = { N: 1, C: 3, H: 8, W: 8, O: 4, kh: 3, kw: 3, stride: 1, pad: 0 };
    assert.throws(() => k.packedConv(gpu, 'binary', g, b, b, b, 1, b, b, false), /webqat: packedConv: x \[1,3,8,8\] needs 768 bytes/);
    assert.throws(() => k.packedConv(gpu, 'binary', { ...g, H: 2 }, b, b, b, 1, b, b, false), /webqat: packedConv: a 3x3 kernel/);
    assert.throws(() => k.packedConv(gpu, 'ternary', { ...g, H: 4, W: 4 }, b, b, b, 3, b, b, false), /expected 1 or 4 scale factors, got 3/);
    assert.throws(() => k.packedConv(gpu, { kind: 'log', bits: 9 }, { ...g, H: 4, W: 4 }, b, b, b, 1, b, b, false), /webqat: packedConv: log weights need bits 2\.\.8, got 9/);
    // 8·3·3·3 = 216 weights at 16 bits = 108 words, more than the 256-byte buffer
    assert.throws(() => k.packedConv(gpu, { kind: 'fixed', bits: 16 }, { ...g, H: 4, W: 4, O: 8 }, b, b, b, 1, b, b, false), /fixed16 weights \[8,3,3,3\] \(108 words\) needs 432 bytes/);
    gpu.pool.release(b);
  });
});

type Quantized = { model: wq.Module; spec: wq.QuantSpec };

function lenet(quant: string, seed = 3): Quantized {
  const spec = wq.parseQuantSpec(quant);
  const model = wq.createModel('lenet5', { seed });
  wq.quantizeModel(model, spec);
  // non-zero biases, so the epilogue is exercised
  let s = 100;
  for (const [name, p] of model.namedParameters()) if (name.endsWith('.bias')) wq.assignData(p, randArray(p.size, s++, -0.1, 0.1));
  model.eval();
  return { model, spec };
}

async function floatLogits(model: wq.Module, x: Float32Array, n: number): Promise<Float32Array> {
  const xt = wq.tensor(x, [n, 1, 28, 28]);
  const y = wq.noGrad(() => model.forward(xt));
  const out = (await y.data()) as Float32Array;
  xt.release();
  y.release();
  return out;
}

function argmaxRows(v: Float32Array, k: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < v.length / k; i++) {
    let b = 0;
    for (let j = 1; j < k; j++) if (v[i * k + j] > v[i * k + b]) b = j;
    out.push(b);
  }
  return out;
}

const INFO = {
  model: 'lenet5',
  modelConfig: { inChannels: 1, numClasses: 10, inputSize: 28, seed: 3 },
  inputShape: [1, 28, 28] as [number, number, number],
  numClasses: 10,
  normalization: { mean: [0.1307], std: [0.3081] },
};

describe('packed LeNet-5 equals the float model with the same quantizers', () => {
  const cases: [string, string, (m: wq.Module) => void, string][] = [
    ['BWN', 'bwn', () => {}, 'binary'],
    ['TWN', 'twn', () => {}, 'ternary'],
    ['SQ (ternary at β0)', 'sq', () => {}, 'ternary'],
    ['SQ (binary: tan β ≥ 100)', 'sq', (m) => {
      for (const [name, p] of m.namedParameters()) if (name.endsWith('sq_beta')) wq.assignData(p, new Float32Array([Math.atan(200)]));
      for (const [, l] of wq.quantLayers(m)) l.wq.invalidate();
    }, 'binary'],
  ];
  for (const [label, quant, tweak, kind] of cases) {
    it(label, async () => {
      const { model, spec } = lenet(quant);
      tweak(model);
      const n = 5;
      const x = randArray(n * 28 * 28, 11, -0.5, 2.5);
      const ref = await floatLogits(model, x, n);
      const ex = await wq.exportPacked(model, { ...INFO, quant: spec.name });
      // the file holds exactly what the size report counts
      assert.equal(ex.tensorBytes, ex.report.packedBytes);
      assert.deepEqual(ex.layers.map((l) => l.kind), ['float', kind, kind, kind, 'float']);
      const before = wq.memory().liveBytes;
      const m = await wq.loadPacked(ex.bytes, { gpu });
      assert.equal(m.tensorBytes, ex.tensorBytes);
      assert.equal(m.fileBytes, ex.bytes.length);
      // weights held on the GPU: one arena, counted by the pool; the packed layers are far below float32
      assert.equal(wq.memory().liveBytes - before, m.memory().bytes);
      const mem = m.memory().layers;
      const fc1 = mem.find((l) => l.name === 'classifier.1')!;
      assert.ok(fc1.bytes < (400 * 120 * 4) / 8, `classifier.1 holds ${fc1.bytes} bytes on the GPU`);
      const got = await m.logits(x, { normalize: false });
      let scale = 0;
      for (const v of ref) scale = Math.max(scale, Math.abs(v));
      assertClose(got, ref, 1e-4 * Math.max(1, scale), 1e-4, `${label} logits`);
      assert.deepEqual(argmaxRows(got, 10), argmaxRows(ref, 10));
      const probs = await m.predict(x, { normalize: false });
      for (let i = 0; i < n; i++) assert.ok(Math.abs(probs.subarray(i * 10, i * 10 + 10).reduce((s, v) => s + v, 0) - 1) < 1e-5);
      assert.deepEqual(await m.classify(x, { normalize: false }), argmaxRows(ref, 10));
      // normalisation from the file: 0..255 bytes → (x/255 − mean)/std
      const u8 = Uint8Array.from({ length: 28 * 28 }, (_, i) => (i * 37) % 256);
      const norm = Float32Array.from(u8, (v) => (v / 255 - 0.1307) / 0.3081);
      assertClose(await m.logits(u8), await floatLogits(model, norm, 1), 1e-4 * Math.max(1, scale), 1e-4, `${label} uint8 input`);
      const held = m.memory().bytes;
      const live = wq.memory().liveBytes;
      m.dispose();
      assert.equal(wq.memory().liveBytes, live - held);
      assert.equal(m.memory().bytes, 0);
      model.release();
    });
  }

  it('f32 <-> f16 conversion (rounding, subnormals, overflow)', () => {
    const cases: [number, number][] = [[0, 0x0000], [-0, 0x8000], [1, 0x3c00], [-2.5, 0xc100], [65504, 0x7bff], [65520, 0x7c00], [-1e9, 0xfc00],
      [2 ** -24, 0x0001], [2 ** -14, 0x0400], [1 + 2 ** -11, 0x3c00], [1 + 3 * 2 ** -11, 0x3c02], [0.1, 0x2e66]];
    for (const [v, h] of cases) assert.equal(wq.toHalf(v), h, `toHalf(${v})`);
    for (const v of [0.1, -3.14159, 1234.5, 6e-6, 2 ** -20]) assert.ok(Math.abs(wq.fromHalf(wq.toHalf(v)) - v) <= Math.abs(v) * 2 ** -11 + 2 ** -25, `round trip ${v}`);
    assert.ok(Number.isNaN(wq.fromHalf(wq.toHalf(NaN))));
  });

  it('float tensors as F16 (float16): smaller file, logits within half precision', async () => {
    const { model, spec } = lenet('bwn');
    const x = randArray(3 * 784, 12, -0.5, 2.5);
    const ref = await floatLogits(model, x, 3);
    const f32 = await wq.exportPacked(model, { ...INFO, quant: spec.name });
    const f16 = await wq.exportPacked(model, { ...INFO, quant: spec.name, float16: true });
    const file = wq.decodeSafetensors(f16.bytes);
    assert.equal(file.metadata.float_dtype, 'F16');
    assert.equal(file.tensors.get('features.0.weight')!.dtype, 'F16');
    assert.equal(file.tensors.get('features.3.weight')!.dtype, 'U32');
    assert.equal(file.tensors.get('features.3.weight_scale')!.dtype, 'F32');
    // the float layers' 150 + 6 + 840 + 10 values and the packed layers' biases shrink to 2 bytes
    assert.equal(f32.tensorBytes - f16.tensorBytes, 2 * (150 + 6 + 16 + 120 + 84 + 840 + 10));
    const m = await wq.loadPacked(f16.bytes, { gpu });
    let scale = 0;
    for (const v of ref) scale = Math.max(scale, Math.abs(v));
    assertClose(await m.logits(x, { normalize: false }), ref, 2e-2 * Math.max(1, scale), 1e-2, 'f16 logits');
    m.dispose();
    model.release();
  });

  it('TTQ and k-bit layers are refused with a reason', async () => {
    const { model, spec } = lenet('dorefa:w2a32');
    await assert.rejects(wq.exportPacked(model, { ...INFO, quant: spec.name }), /webqat: export: layer 'features\.3' is kbit 2-bit .*k-bit \(DoReFa, LSQ, PACT-style\) weights are not supported yet/);
    const ttq = lenet('ttq');
    // TTQ's positive and negative scales differ once trained; make them differ here
    for (const [name, p] of ttq.model.namedParameters()) if (name.endsWith('ttq_wn')) wq.assignData(p, new Float32Array([0.123]));
    for (const [, l] of wq.quantLayers(ttq.model)) l.wq.invalidate();
    await assert.rejects(wq.exportPacked(ttq.model, { ...INFO, quant: 'ttq' }), /layer 'features\.3' \(ttq\) cannot be packed as ternary \(TTQ has separate positive and negative scales/);
    model.release();
    ttq.model.release();
  });
});

describe('packed LeNet-5 with fixed-point and log weights equals the float model with the same quantizers', () => {
  for (const [quant, kind, bits] of [['fixed:6', 'fixed', 6], ['fixed:8', 'fixed', 8], ['log:5', 'log', 5]] as const) {
    it(quant, async () => {
      const { model, spec } = lenet(quant);
      for (const [, l] of wq.quantLayers(model)) await l.wq.calibrate();
      const n = 5;
      const x = randArray(n * 28 * 28, 13, -0.5, 2.5);
      const ref = await floatLogits(model, x, n);
      const ex = await wq.exportPacked(model, { ...INFO, quant: spec.name });
      assert.equal(ex.tensorBytes, ex.report.packedBytes);
      assert.deepEqual(ex.layers.map((l) => l.kind), ['float', kind, kind, kind, 'float']);
      const file = wq.decodeSafetensors(ex.bytes);
      assert.equal(file.metadata.version, '2');
      const meta = JSON.parse(file.metadata.layers)['classifier.1'];
      assert.equal(meta.bits, bits);
      // 400·120 weights at B bits, one f32 scale: the words are the file's, to the byte
      assert.equal(file.tensors.get('classifier.1.weight')!.data.length, Math.ceil((400 * 120 * bits) / 32) * 4);
      assert.equal(ex.layers.find((l) => l.name === 'classifier.1')!.bytes, Math.ceil((400 * 120 * bits) / 32) * 4 + 4 + 120 * 4);
      // the scale is the power of two of the layer's calibrated range
      const range = [...wq.quantLayers(model)].find(([name]) => name === 'classifier.1')![1].wq.state as { value: number };
      const scale = new Float32Array(file.tensors.get('classifier.1.weight_scale')!.data.slice().buffer)[0];
      assert.equal(scale, kind === 'fixed' ? 2 ** -range.value : 2 ** (range.value - 1));

      const m = await wq.loadPacked(ex.bytes, { gpu });
      assert.equal(m.tensorBytes, ex.tensorBytes);
      // GPU bytes: the packed model's one arena is below the float model's parameters alone
      let paramBytes = 0;
      for (const p of model.parameters()) paramBytes += p.size * 4;
      assert.ok(m.memory().bytes < paramBytes / 2, `packed ${m.memory().bytes} B vs float parameters ${paramBytes} B`);
      const fc1 = m.memory().layers.find((l) => l.name === 'classifier.1')!;
      assert.ok(fc1.bytes <= Math.ceil((400 * 120 * bits) / 32 / 64) * 256 + 2 * 512, `classifier.1 holds ${fc1.bytes} bytes on the GPU`);
      const got = await m.logits(x, { normalize: false });
      let mx = 0;
      for (const v of ref) mx = Math.max(mx, Math.abs(v));
      assertClose(got, ref, 1e-4 * Math.max(1, mx), 1e-4, `${quant} logits`);
      assert.deepEqual(argmaxRows(got, 10), argmaxRows(ref, 10));
      m.dispose();
      model.release();
    });
  }
});

/** Batch norms with non-trivial statistics (so the folding is exercised); then the model's float logits in eval mode on x [n, 3, 8, 8]. */
async function bnModelLogits(model: wq.Module, seed: number, biasLo: number, x: Float32Array, n: number): Promise<Float32Array> {
  for (const [, m] of model.namedModules()) {
    if (!(m instanceof wq.BatchNorm2d)) continue;
    const c = m.numFeatures;
    wq.assignData(m.weight, randArray(c, seed++, 0.5, 1.5));
    wq.assignData(m.bias, randArray(c, seed++, biasLo, 0.4));
    wq.assignData(m.runningMean, randArray(c, seed++, -0.2, 0.2));
    wq.assignData(m.runningVar, randArray(c, seed++, 0.5, 2));
  }
  model.eval();
  const xt = wq.tensor(x, [n, 3, 8, 8]);
  const yt = wq.noGrad(() => model.forward(xt));
  const ref = (await yt.data()) as Float32Array;
  xt.release();
  yt.release();
  return ref;
}

describe('packed SSPQ20 W1A4 equals the float model (BN folded, 4-bit activations, shift, residuals)', () => {
  for (const [label, aBits] of [['W1A4', 4], ['W1A32 (clip only)', 32]] as const) {
    it(label, async () => {
      const config = { inChannels: 3, numClasses: 10, inputSize: 8, seed: 7, wBits: 1, aBits };
      const model = wq.createModel('sspq20', config);
      const n = 2;
      const x = randArray(n * 3 * 8 * 8, 31, -1, 1);
      const ref = await bnModelLogits(model, 200, 0, x, n);
      const ex = await wq.exportPacked(model, { model: 'sspq20', modelConfig: config, quant: 'dorefa:w1a4', inputShape: [3, 8, 8], numClasses: 10 });
      assert.equal(ex.tensorBytes, ex.report.packedBytes);
      assert.equal(ex.layers.filter((l) => l.kind === 'binary').length, 20); // 18 block convs + 2 shortcuts
      const m = await wq.loadPacked(ex.bytes, { gpu });
      const got = await m.logits(x, { normalize: false });
      let scale = 0;
      for (const v of ref) scale = Math.max(scale, Math.abs(v));
      assertClose(got, ref, 1e-4 * Math.max(1, scale), 1e-4, `sspq20 ${label} logits`);
      assert.deepEqual(argmaxRows(got, 10), argmaxRows(ref, 10));
      m.dispose();
      model.release();
    });
  }
});

describe('packed CIFAR ResNet-20 equals the float model (BN folded, residual + ReLU in the epilogue, 1x1 projection shortcuts)', () => {
  for (const quant of ['bwn', 'twn'] as const) {
    it(`resnet20 ${quant}`, async () => {
      const config = { inChannels: 3, numClasses: 10, inputSize: 8, seed: 5 };
      const model = wq.createModel('resnet20', config);
      const spec = wq.parseQuantSpec(quant);
      wq.quantizeModel(model, spec);
      const n = 2;
      const x = randArray(n * 3 * 8 * 8, 41, -1, 1);
      const ref = await bnModelLogits(model, 300, -0.2, x, n);
      const ex = await wq.exportPacked(model, { model: 'resnet20', modelConfig: config, quant, inputShape: [3, 8, 8], numClasses: 10 });
      assert.equal(ex.tensorBytes, ex.report.packedBytes);
      // 18 block convs + 2 projection shortcuts quantized; the stem and fc stay float
      assert.equal(ex.layers.filter((l) => l.kind === (quant === 'bwn' ? 'binary' : 'ternary')).length, 20);
      const m = await wq.loadPacked(ex.bytes, { gpu });
      const got = await m.logits(x, { normalize: false });
      let scale = 0;
      for (const v of ref) scale = Math.max(scale, Math.abs(v));
      assertClose(got, ref, 1e-4 * Math.max(1, scale), 1e-4, `resnet20 ${quant} logits`);
      assert.deepEqual(argmaxRows(got, 10), argmaxRows(ref, 10));
      // GPU bytes of the packed model against the float model's parameters
      let paramBytes = 0;
      for (const p of model.parameters()) paramBytes += p.size * 4;
      assert.ok(m.memory().bytes < paramBytes / 4, `packed ${m.memory().bytes} B vs float parameters ${paramBytes} B`);
      m.dispose();
      model.release();
    });
  }

  it('an option-A (zero-pad) shortcut is refused with the reason', async () => {
    const config = { inChannels: 3, numClasses: 10, inputSize: 8, seed: 5, shortcut: 'A' };
    const model = wq.createModel('resnet20', config as wq.ModelOptions);
    wq.quantizeModel(model, wq.parseQuantSpec('bwn'));
    model.eval();
    const ex = await wq.exportPacked(model, { model: 'resnet20', modelConfig: config, quant: 'bwn', inputShape: [3, 8, 8], numClasses: 10 });
    await assert.rejects(wq.loadPacked(ex.bytes, { gpu }), /resnet20 with shortcut 'A': only option-B/);
    model.release();
  });
});

describe('packed files: bad input is a clear error', () => {
  let good: Uint8Array;
  before(async () => {
    const { model, spec } = lenet('twn');
    good = (await wq.exportPacked(model, { ...INFO, quant: spec.name })).bytes;
  });

  function edit(fn: (tensors: Map<string, wq.SafeTensor>, md: Record<string, string>) => void): Uint8Array {
    const f = wq.decodeSafetensors(good);
    const tensors = new Map([...f.tensors].map(([k, t]) => [k, { ...t, data: t.data.slice() }]));
    const md = { ...f.metadata };
    fn(tensors, md);
    return wq.encodeSafetensors(tensors, md);
  }

  it('a good file loads', async () => {
    const m = await wq.loadPacked(good, { gpu });
    assert.equal(m.meta.model, 'lenet5');
    assert.equal(m.meta.quant, 'twn');
    assert.deepEqual(m.inputShape, [1, 28, 28]);
    m.dispose();
  });

  it('wrong word count for the shape', async () => {
    const bytes = edit((t) => {
      const w = t.get('features.3.weight')!;
      t.set('features.3.weight', { dtype: 'U32', shape: [w.shape[0] - 1], data: w.data.subarray(0, w.data.length - 4) });
    });
    await assert.rejects(wq.loadPacked(bytes, { gpu }), /tensor 'features\.3\.weight' has 149 words, but ternary weights of shape \[16,6,5,5\] \(2400 values\) need 150/);
  });

  it('invalid ternary code 0b10', async () => {
    const bytes = edit((t) => {
      const w = t.get('classifier.1.weight')!;
      const words = new Uint32Array(w.data.buffer, w.data.byteOffset, w.data.length / 4);
      words[3] = (words[3] & ~(3 << 10)) | (2 << 10);
    });
    await assert.rejects(wq.loadPacked(bytes, { gpu }), /tensor 'classifier\.1\.weight': invalid ternary code 0b10 at value 53 \(word 3, bits 10\.\.11\)/);
  });

  it('missing scale', async () => {
    const bytes = edit((t) => t.delete('classifier.3.weight_scale'));
    await assert.rejects(wq.loadPacked(bytes, { gpu }), /tensor 'classifier\.3\.weight_scale' \(the scale of layer 'classifier\.3''s ternary weights\) is missing/);
  });

  it('unknown model name', async () => {
    const bytes = edit((_, md) => (md.model = 'lenet7'));
    await assert.rejects(wq.loadPacked(bytes, { gpu }), /webqat: infer: unknown model 'lenet7'; the inference runtime runs: lenet5, lenet5-twn, mlp/);
  });

  it('unsupported version', async () => {
    const bytes = edit((_, md) => (md.version = '3'));
    await assert.rejects(wq.loadPacked(bytes, { gpu }), /unsupported packed format version '3' \(this webqat 0\.1\.0 reads versions 1 and 2\)/);
    // a binary/ternary file is still written as version 1 (older readers load it); version 2 reads the same
    assert.equal(wq.decodeSafetensors(good).metadata.version, '1');
    const v2 = await wq.loadPacked(edit((_, md) => (md.version = '2')), { gpu });
    v2.dispose();
  });

  it('a training checkpoint, a stray tensor, wrong input count', async () => {
    const ck = edit((_, md) => (md.format = 'webqat-checkpoint'));
    await assert.rejects(wq.loadPacked(ck, { gpu }), /not a webqat packed model .*training checkpoint: run `npm run export/);
    const stray = edit((t) => t.set('extra.weight', { dtype: 'F32', shape: [1], data: new Uint8Array(4) }));
    await assert.rejects(wq.loadPacked(stray, { gpu }), /tensor\(s\) 'extra\.weight' belong to no layer of model 'lenet5'/);
    const m = await wq.loadPacked(good, { gpu });
    await assert.rejects(m.predict(new Float32Array(100)), /webqat: predict: input has 100 values, not a multiple of one \[1,28,28\] sample \(784 values\)/);
    m.dispose();
  });
});

describe('packed fixed / log files: bad input is a clear error', () => {
  const files: Record<string, Uint8Array> = {};
  before(async () => {
    for (const q of ['fixed:6', 'log:5']) {
      const { model, spec } = lenet(q);
      for (const [, l] of wq.quantLayers(model)) await l.wq.calibrate();
      files[q] = (await wq.exportPacked(model, { ...INFO, quant: spec.name })).bytes;
      model.release();
    }
  });

  function edit(q: string, fn: (tensors: Map<string, wq.SafeTensor>, layers: Record<string, PackedLayerMeta>, md: Record<string, string>) => void): Uint8Array {
    const f = wq.decodeSafetensors(files[q]);
    const tensors = new Map([...f.tensors].map(([k, t]) => [k, { ...t, data: t.data.slice() }]));
    const md = { ...f.metadata };
    const layers = JSON.parse(md.layers);
    fn(tensors, layers, md);
    md.layers = JSON.stringify(layers);
    return wq.encodeSafetensors(tensors, md);
  }

  it('the good files load', async () => {
    for (const q of ['fixed:6', 'log:5']) (await wq.loadPacked(files[q], { gpu })).dispose();
  });

  it('wrong word count for shape and bits', async () => {
    const bytes = edit('fixed:6', (t) => {
      const w = t.get('features.3.weight')!;
      t.set('features.3.weight', { dtype: 'U32', shape: [w.shape[0] - 1], data: w.data.subarray(0, w.data.length - 4) });
    });
    // 2400 values at 6 bits = 450 words
    await assert.rejects(wq.loadPacked(bytes, { gpu }), /tensor 'features\.3\.weight' has 449 words, but 6-bit fixed weights of shape \[16,6,5,5\] \(2400 values\) need 450/);
    // the same words declared 8-bit
    const wrongBits = edit('fixed:6', (_, l) => (l['features.3'].bits = 8));
    await assert.rejects(wq.loadPacked(wrongBits, { gpu }), /tensor 'features\.3\.weight' has 450 words, but 8-bit fixed weights of shape \[16,6,5,5\] \(2400 values\) need 600/);
  });

  it('bits out of range or missing', async () => {
    for (const [bits, shown] of [[0, '0'], [17, '17'], [undefined, 'undefined'], [6.5, '6.5']] as const) {
      const bytes = edit('fixed:6', (_, l) => {
        if (bits === undefined) delete l['classifier.1'].bits;
        else l['classifier.1'].bits = bits;
      });
      await assert.rejects(
        wq.loadPacked(bytes, { gpu }),
        new RegExp(`layer 'classifier\\.1' \\(fixed\\) has bits ${shown.replace('.', '\\.')} in metadata 'layers'; fixed layers store 2\\.\\.16 bits per weight`),
      );
    }
    const log9 = edit('log:5', (_, l) => (l['features.3'].bits = 9));
    await assert.rejects(wq.loadPacked(log9, { gpu }), /layer 'features\.3' \(log\) has bits 9 in metadata 'layers'; log layers store 2\.\.8 bits per weight/);
  });

  it('missing or wrong scale', async () => {
    const missing = edit('fixed:6', (t) => t.delete('classifier.3.weight_scale'));
    await assert.rejects(wq.loadPacked(missing, { gpu }), /tensor 'classifier\.3\.weight_scale' \(the scale of layer 'classifier\.3''s fixed weights\) is missing/);
    const notPow2 = edit('log:5', (t) => t.set('classifier.3.weight_scale', { dtype: 'F32', shape: [1], data: new Uint8Array(new Float32Array([0.3]).buffer) }));
    await assert.rejects(wq.loadPacked(notPow2, { gpu }), /tensor 'classifier\.3\.weight_scale' is 0\.30000001192092896; the scale of log weights is a positive power of two/);
    const perChannel = edit('fixed:6', (t) => t.set('classifier.3.weight_scale', { dtype: 'F32', shape: [84], data: new Uint8Array(84 * 4) }));
    await assert.rejects(wq.loadPacked(perChannel, { gpu }), /tensor 'classifier\.3\.weight_scale' is F32\[84\]; fixed weights need F32 \[1\]/);
  });

  it('invalid log code (negative zero), fixed/log layers in a version-1 file', async () => {
    const bytes = edit('log:5', (t) => {
      const w = t.get('classifier.1.weight')!;
      const words = new Uint32Array(w.data.buffer, w.data.byteOffset, w.data.length / 4);
      // value 13: stream bits 65..69 = word 2, bits 1..5
      words[2] = (words[2] & ~(31 << 1)) | (16 << 1);
    });
    await assert.rejects(wq.loadPacked(bytes, { gpu }), /tensor 'classifier\.1\.weight': invalid 5-bit log code 16 \(sign 1, magnitude 0\) at value 13 \(stream bits 65\.\.69\)/);
    const v1 = edit('fixed:6', (_, __, md) => (md.version = '1'));
    await assert.rejects(wq.loadPacked(v1, { gpu }), /layer 'features\.3' is fixed, which needs format version 2 \(the file says version 1\)/);
  });
});
