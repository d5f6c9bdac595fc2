import { before, describe, it } from 'node:test';
import { assert, assertClose, gradCheck, randArray, setup, wq } from './helpers.ts';
import { acceptedQuantSpecs, parseQuantSpec } from '../src/quant/spec.ts';
import { packCodes, packedBytes, packWeights, unpackCodes, unpackWeights } from '../src/quant/pack.ts';
import { IncrementalSchedule, IncrementalState, INQQuantizer, inqLevels, inqQuantizeValue, magnitudeMask } from '../src/quant/inq.ts';
import { ELQQuantizer, elqScale } from '../src/quant/elq.ts';
import { sqBits, sqDecide, sqThreshold } from '../src/quant/sq.ts';
import * as Q from '../src/quant/quantizers.ts';

describe('quant: spec parsing', () => {
  it('parses every accepted form with its precision tag', () => {
    const cases: [string, string, string, number, string, number][] = [
      // text, weight method, weight kind, weight bits, act method, act bits
      ['fp', 'none', 'float', 32, 'none', 32],
      ['bwn', 'bwn', 'binary', 1, 'none', 32],
      ['twn', 'twn', 'ternary', 2, 'none', 32],
      ['ttq', 'ttq', 'ternary', 2, 'none', 32],
      ['sq', 'sq', 'adaptive', 2, 'none', 32],
      ['dorefa:w1a4', 'dorefa', 'binary', 1, 'dorefa', 4],
      ['dorefa:w2a8', 'dorefa', 'kbit', 2, 'dorefa', 8],
      ['elq:ternary', 'elq', 'ternary', 2, 'none', 32],
      ['elq:binary', 'elq', 'binary', 1, 'none', 32],
      ['inq:5', 'inq', 'log', 5, 'none', 32],
      ['pact:a4', 'none', 'float', 32, 'pact', 4],
      ['lsq:w4a4', 'lsq', 'kbit', 4, 'lsq', 4],
      ['fixed:8', 'fixed', 'fixed', 8, 'none', 32],
      ['log:4', 'log', 'log', 4, 'none', 32],
    ];
    for (const [text, wm, wk, wb, am, ab] of cases) {
      const s = parseQuantSpec(text);
      assert.equal(s.weight.method, wm, text);
      assert.equal(s.weightPrecision.kind, wk, text);
      assert.equal(s.weightPrecision.bits, wb, text);
      assert.equal(s.act.method, am, text);
      assert.equal(s.actPrecision.bits, ab, text);
      // the canonical name parses back to the same spec
      assert.deepEqual(parseQuantSpec(s.name), s, `${text} -> ${s.name}`);
    }
    const sq = parseQuantSpec('sq:lambda=0.01,gamma=1e-4,p=1');
    assert.ok(sq.weight.method === 'sq' && sq.weight.lambda === 0.01 && sq.weight.gamma === 1e-4 && sq.weight.p === 1);
    assert.ok(acceptedQuantSpecs().length >= 12);
  });

  it('rejects bad specs with a message listing what is accepted', () => {
    const bad: [string, RegExp][] = [
      ['xnor', /unknown quantizer 'xnor'/],
      ['', /empty spec/],
      ['dorefa:w9a4', /weight bits = 9 is out of range/],
      ['dorefa:w1a0', /activation bits = 0 is out of range/],
      ['dorefa', /needs bit widths/],
      ['inq:1', /INQ bits = 1 is out of range/],
      ['inq:x', /must be an integer/],
      ['elq:quaternary', /'ternary' or 'binary'/],
      ['lsq:w1a4', /weight bits = 1 is out of range/],
      ['fixed:32', /out of range/],
      ['bwn:2', /takes no argument/],
      ['sq:lambda=2', /lambda = 2 is out of range/],
      ['sq:gamma=-1', /gamma = -1 is out of range/],
      ['sq:p=3', /p = 3 must be 1 or 2/],
      ['sq:beta0=0.1', /beta0 = 0.1 is out of range/],
      ['sq:delta=1', /unknown SQ option/],
      ['pact:w4', /give 'aK'/],
    ];
    for (const [text, re] of bad) {
      assert.throws(() => parseQuantSpec(text), (e: Error) => re.test(e.message) && /Accepted: fp, bwn, twn/.test(e.message), text);
    }
  });
});

describe('quant: packed export', () => {
  it('binary and ternary round trips (per layer and per channel, odd sizes)', () => {
    for (const [shape, kind, perChannel] of [
      [[37], 'binary', false],
      [[3, 5, 3, 3], 'binary', true],
      [[33], 'ternary', false],
      [[4, 7], 'ternary', true],
      [[1], 'ternary', false],
    ] as [number[], 'binary' | 'ternary', boolean][]) {
      const n = shape.reduce((a, b) => a * b, 1);
      const r = randArray(n, n + 1);
      const groups = perChannel ? shape[0] : 1;
      const scales = Array.from({ length: groups }, (_, g) => 0.1 + 0.05 * g);
      const vals = new Float32Array(n);
      for (let i = 0; i < n; i++) {
        const s = scales[Math.floor(i / (n / groups))];
        const c = kind === 'binary' ? (r[i] >= 0 ? 1 : -1) : r[i] > 0.33 ? 1 : r[i] < -0.33 ? -1 : 0;
        vals[i] = c * s;
      }
      const p = packWeights(vals, shape, kind, { perChannel });
      assert.equal(p.words.length, Math.ceil(n / (kind === 'binary' ? 32 : 16)));
      assertClose(unpackWeights(p), vals, 0, 1e-6, `${kind} ${shape}`);
    }
  });

  it('bit layout and sizes', () => {
    const p = packCodes([1, -1, 0, 1, -1], [5], 'ternary', [2]);
    assert.equal(p.words[0], 0b11_01_00_11_01);
    assert.deepEqual(Array.from(unpackCodes(p)), [1, -1, 0, 1, -1]);
    const b = packCodes([1, -1, -1, 1], [4], 'binary', [1]);
    assert.equal(b.words[0], 0b1001);
    assert.equal(packedBytes(100, 'binary', 1), 4 * 4 + 4);
    assert.equal(packedBytes(100, 'ternary', 10), 7 * 4 + 40);
  });

  it('rejects values that are not binary/ternary and invalid codes', () => {
    assert.throws(() => packWeights(Float32Array.from([0.5, -0.5, 0.25]), [3], 'ternary'), /value 2 = 0.25 is not ±0.5/);
    assert.throws(() => packWeights(Float32Array.from([0.5, 0]), [2], 'binary'), /value 1 is 0 in a binary tensor/);
    assert.throws(() => packCodes([2], [1], 'ternary', [1]), /ternary code 0 is 2/);
    assert.throws(() => unpackCodes({ kind: 'ternary', shape: [1], words: Uint32Array.of(2), scales: Float32Array.of(1) }), /invalid ternary code/);
  });
});

describe('quant: incremental (INQ/ELQ) and SQ accounting', () => {
  before(setup);

  it('INQ levels and adjacent-level rounding', () => {
    const { n1, n2, levels } = inqLevels(0.9, 5); // n1 = floor(log2(1.2)) = 0, n2 = 0 + 1 - 8 = -7
    assert.equal(n1, 0);
    assert.equal(n2, -7);
    assert.equal(levels.length, 8);
    assert.equal(inqQuantizeValue(0.9, levels), 1);
    assert.equal(inqQuantizeValue(-0.74, levels), -0.5);
    assert.equal(inqQuantizeValue(0.76, levels), 1);
    assert.equal(inqQuantizeValue(2 ** -7 * 0.49, levels), 0);
    assert.equal(inqQuantizeValue(2 ** -7 * 0.5, levels), 2 ** -7);
  });

  it('schedule fractions 50 -> 75 -> 87.5 -> 100 % and magnitude partition', () => {
    const s = new IncrementalSchedule(120, undefined, { warmup: 0 });
    // 3 partial stages of 1 unit + final of 2 units = 5 units of 24 steps
    assert.deepEqual(s.boundaries, [0, 24, 48, 72]);
    assert.deepEqual([0, 23, 24, 47, 48, 71, 72, 119].map((k) => s.fractionAt(k)), [0.5, 0.5, 0.75, 0.75, 0.875, 0.875, 1, 1]);
    const w = new IncrementalSchedule(100, undefined, { warmup: 0.2 });
    assert.equal(w.fractionAt(19), 0);
    assert.equal(w.fractionAt(20), 0.5);
    const vals = [0.1, -0.9, 0.5, -0.3, 0.7, 0.05, -0.6, 0.2];
    const m50 = magnitudeMask(vals, 0.5);
    assert.deepEqual(Array.from(m50), [0, 1, 0, 0, 1, 0, 1, 0].map((v, i) => (i === 2 ? 1 : v)));
    const m75 = magnitudeMask(vals, 0.75, m50);
    assert.equal(m75.reduce((a, b) => a + b, 0), 6);
    for (let i = 0; i < vals.length; i++) if (m50[i]) assert.equal(m75[i], 1);
  });

  it('IncrementalState freezes quantized values and blocks their gradient (GPU)', async () => {
    const vals = randArray(40, 5);
    const w = wq.tensor(vals, [5, 8], 'f32', true);
    const st = new IncrementalState([5, 8]);
    const inq = new INQQuantizer(4);
    for (const f of [0.5, 0.75, 0.875, 1]) {
      await st.advance(w, f, inq.quantize);
      const frozen = Array.from(st.mask).filter((m) => m).length;
      assert.equal(frozen, Math.round(f * 40), `fraction ${f}`);
      const y = st.apply(w);
      wq.sum(y).backward();
      const g = await w.grad!.data();
      const yv = await y.data();
      for (let i = 0; i < 40; i++) {
        assert.equal(g[i], st.mask[i] ? 0 : 1, `grad ${i} at ${f}`);
        assertClose([yv[i]], [st.mask[i] ? inqQuantizeValue(vals[i], inq.levels!) : vals[i]], 1e-6, 1e-6, `value ${i} at ${f}`);
      }
      w.grad!.release();
      w.grad = null;
    }
    st.release();
    w.release();
  });

  it('ELQ scales: TWN rule for ternary, mean|W| for binary', () => {
    const v = [1, -0.5, 0.1, -0.05, 0.8, 0];
    const mean = 2.45 / 6;
    const t = elqScale(v, 'ternary');
    assertClose([t.delta, t.alpha], [0.7 * mean, (1 + 0.5 + 0.8) / 3]);
    assertClose([elqScale(v, 'binary').alpha], [mean]);
    const q = new ELQQuantizer('ternary');
    assert.deepEqual(Array.from(q.quantize(Float32Array.from(v), [0, 1, 2])).map((x) => Math.round(x * 1e4) / 1e4), [0.7667, -0.7667, 0]);
  });

  it('SQ decision and bits/weight accounting on crafted weights', () => {
    // threshold at β = π/4, p = 2: α/2
    assertClose([sqThreshold(1, Math.PI / 4, 2)], [0.5]);
    const ternaryish = Array.from({ length: 100 }, (_, i) => (i % 3 === 0 ? 0.01 : i % 3 === 1 ? 1 : -1));
    const binaryish = Array.from({ length: 100 }, (_, i) => (i % 2 ? 1 : -1));
    const a = sqDecide(ternaryish, 1, Math.PI / 4 + 0.05, 2);
    assert.equal(a.mode, 'ternary');
    assertClose([a.zeroFraction], [34 / 100]);
    assert.equal(sqDecide(binaryish, 1, Math.PI / 4 + 0.05, 2).mode, 'binary'); // empty zero basin
    assert.equal(sqDecide(ternaryish, 1, Math.atan(150), 2).mode, 'binary'); // tan β ≥ 100
    const bits = sqBits([{ n: 300, mode: 'binary' }, { n: 100, mode: 'ternary' }]);
    assertClose([bits.packedBits, bits.entropyBits], [(300 + 200) / 400, (300 + 100 * Math.log2(3)) / 400]);
    assert.equal(bits.binaryLayers, 1);
  });
});

describe('quant: quantizer ops (GPU, composed)', () => {
  before(setup);

  it('roundHalfEven matches WGSL/torch round', async () => {
    const x = Float32Array.from([0.5, 1.5, 2.5, -0.5, -1.5, 2.4999, 7.6, -3.2, 0]);
    const r = await Q.roundHalfEven(wq.tensor(x, [x.length])).data();
    assert.deepEqual(Array.from(r), [0, 2, 2, -0, -2, 2, 8, -3, 0].map((v) => v + 0));
  });

  it('BWN / TWN / TTQ forward vs reference, STE backward', async () => {
    const v = randArray(45, 3);
    const w = wq.tensor(v, [5, 9], 'f32', true);
    const meanAbs = v.reduce((s, x) => s + Math.abs(x), 0) / v.length;
    assertClose(await Q.bwnWeight(w).data(), Array.from(v, (x) => (x >= 0 ? meanAbs : -meanAbs)), 1e-6, 1e-5, 'bwn');
    const d = 0.7 * meanAbs;
    const big = Array.from(v).filter((x) => Math.abs(x) > d);
    const alpha = big.reduce((s, x) => s + Math.abs(x), 0) / big.length;
    assertClose(await Q.twnWeight(w).data(), Array.from(v, (x) => (Math.abs(x) > d ? Math.sign(x) * alpha : 0)), 1e-6, 1e-5, 'twn');
    const y = Q.twnWeight(w);
    wq.sum(wq.mul(y, wq.tensor(v, [5, 9]))).backward();
    assertClose(await w.grad!.data(), v, 1e-6, 1e-6, 'twn STE');
    // TTQ: gradients to W_p and W_n
    const wp = wq.tensor([0.7], [1], 'f32', true);
    const wn = wq.tensor([0.4], [1], 'f32', true);
    const mx = Math.max(...Array.from(v, Math.abs));
    const t = Q.ttqWeight(w, wp, wn, 0.3);
    assertClose(await t.data(), Array.from(v, (x) => (x > 0.3 * mx ? 0.7 : x < -0.3 * mx ? -0.4 : 0)), 1e-6, 1e-5, 'ttq');
    wq.sum(t).backward();
    assertClose(await wp.grad!.data(), [Array.from(v).filter((x) => x > 0.3 * mx).length], 1e-4, 1e-5, 'ttq dWp');
    assertClose(await wn.grad!.data(), [-Array.from(v).filter((x) => x < -0.3 * mx).length], 1e-4, 1e-5, 'ttq dWn');
  });

  it('DoReFa activations: 16 levels at 4 bits, clip mask backward', async () => {
    const v = randArray(200, 9, -0.5, 1.5);
    const x = wq.tensor(v, [200], 'f32', true);
    const y = Q.dorefaAct(x, 4);
    const got = await y.data();
    const ref = Array.from(v, (a) => Math.round(Math.min(Math.max(a, 0), 1) * 15) / 15);
    assertClose(got, ref, 1e-6, 1e-6, 'dorefa act');
    assert.ok(new Set(Array.from(got, (a) => Math.round(a * 15))).size <= 16);
    wq.sum(y).backward();
    assertClose(await x.grad!.data(), Array.from(v, (a) => (a >= 0 && a <= 1 ? 1 : 0)), 0, 0, 'dorefa mask');
  });

  it('DoReFa 2-bit weights and LSQ / PACT forward values', async () => {
    const v = randArray(30, 4);
    const w = wq.tensor(v, [30], 'f32', true);
    const t = Array.from(v, Math.tanh);
    const m = Math.max(...t.map(Math.abs));
    const refW = t.map((a) => (2 * Math.round((a / (2 * m) + 0.5) * 3)) / 3 - 1);
    assertClose(await Q.dorefaWeight(w, 2).data(), refW, 1e-5, 1e-5, 'dorefa w2');
    const s = wq.tensor([0.2], [1], 'f32', true);
    const refL = Array.from(v, (a) => Math.round(Math.min(Math.max(a / 0.2, -8), 7)) * 0.2);
    assertClose(await Q.lsqQuant(w, s, 4, true).data(), refL, 1e-5, 1e-5, 'lsq');
    const al = wq.tensor([0.6], [1], 'f32', true);
    const refP = Array.from(v, (a) => (Math.round((Math.min(Math.max(a, 0), 0.6) * 3) / 0.6) * 0.6) / 3);
    assertClose(await Q.pactAct(w, al, 2).data(), refP, 1e-5, 1e-5, 'pact');
  });

  it('SQ: tan β series, quantizer, regularizer gradient vs finite differences', async () => {
    const betas = [Math.PI / 4, 1.0, 1.3, 1.55];
    assertClose(await Q.tanOfBeta(wq.tensor(betas, [4])).data(), betas.map(Math.tan), 1e-5, 1e-4, 'tan');
    const v = randArray(24, 12).map((x) => (Math.abs(Math.abs(x) - 0.27) < 0.03 ? x + 0.1 : x));
    const w = wq.tensor(v, [24], 'f32', true);
    const alpha = wq.tensor([0.6], [1], 'f32', true);
    const beta = wq.tensor([1.0], [1], 'f32', true);
    const thr = sqThreshold(0.6, 1.0, 2);
    assertClose(await Q.sqWeight(w, alpha, beta, 2).data(), Array.from(v, (x) => (Math.abs(x) < thr ? 0 : Math.sign(x) * 0.6)), 1e-6, 1e-5, 'sq Q');
    const ref = (ws: Float64Array, a: number, b: number) => {
      let r = 0;
      for (const x of ws) r += Math.min((x - a) ** 2, (x + a) ** 2, Math.tan(b) * x * x);
      return [r / ws.length + 1e-2 / Math.tan(b)];
    };
    await gradCheck(
      ([ww, aa, bb]) => Q.sqRegularizer(ww, aa, bb, 2, 1e-2),
      ([ww, aa, bb]) => ref(ww, aa[0], bb[0]),
      [{ data: Float32Array.from(v), shape: [24] }, { data: Float32Array.of(0.6), shape: [1] }, { data: Float32Array.of(1.0), shape: [1] }],
      { what: 'sq regularizer', eps: 1e-3 },
    );
  });
});
