import { before, describe, it } from 'node:test';
import { assert, assertClose, gradCheck, randArray, setup, wq } from './helpers.ts';
import { acceptedQuantSpecs, parseQuantSpec } from '../src/quant/spec.ts';
import { packCodes, packedBytes, packWeights, unpackCodes, unpackWeights } from '../src/quant/pack.ts';
import { IncrementalSchedule, IncrementalState, INQQuantizer, inqLevels, inqQuantizeValue, magnitudeMask } from '../src/quant/inq.ts';
import { ELQQuantizer, elqScale } from '../src/quant/elq.ts';
import { SQ_BETA_BINARY, SQ_BETA_MIN, sqBits, sqDecide, sqDecisions, sqPenalty, sqThreshold } from '../src/quant/sq.ts';
import { SGD } from '../src/optim/index.ts';
import { QuantAct, QuantLinear, quantizeModel } from '../src/quant/layers.ts';
import { QuantHooks } from '../src/quant/hooks.ts';
import { quantParamGroups } from '../src/quant/qat.ts';
import { Linear } from '../src/nn/index.ts';

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
      ['nosuch', /unknown quantizer 'nosuch'/],
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
    // a few weights in the basin are real zeros: the layer stays ternary (no 0.5 % slack)
    const fewZeros = Array.from({ length: 1000 }, (_, i) => (i === 0 ? 0.01 : i % 2 ? 1 : -1));
    const d = sqDecide(fewZeros, 1, Math.PI / 4 + 0.05, 2);
    assert.equal(d.mode, 'ternary');
    assertClose([d.zeroFraction], [1 / 1000]);
    // binary by angle: threshold 0, nothing in the quantizer's zero set
    const byAngle = sqDecide(ternaryish, 1, Math.atan(150), 2);
    assert.deepEqual([byAngle.threshold, byAngle.zeroFraction], [0, 0]);
    const bits = sqBits([{ n: 300, mode: 'binary' }, { n: 100, mode: 'ternary' }]);
    assertClose([bits.packedBits, bits.entropyBits], [(300 + 200) / 400, (300 + 100 * Math.log2(3)) / 400]);
    assert.equal(bits.binaryLayers, 1);
  });
});


describe('quant: layers on the fused quantizer ops (GPU)', () => {
  before(setup);

  const sgnStar = (x: number) => (x >= 0 ? 1 : -1);
  const meanAbs = (v: ArrayLike<number>) => Array.from(v).reduce((s, x) => s + Math.abs(x), 0) / v.length;
  const maxAbs = (v: ArrayLike<number>) => Math.max(...Array.from(v, Math.abs));
  const roundEven = (x: number) => {
    const r = Math.round(x);
    return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
  };

  /** [spec text, reference Ŵ(v), reference ∂(Σ Ŵ·r)/∂W (given v, r)] */
  const cases: [string, (v: Float32Array) => number[], (v: Float32Array, r: Float32Array) => number[]][] = [
    ['bwn', (v) => Array.from(v, (x) => sgnStar(x) * meanAbs(v)), (_v, r) => Array.from(r)],
    ['dorefa:w1a32', (v) => Array.from(v, (x) => sgnStar(x) * meanAbs(v)), (_v, r) => Array.from(r)],
    [
      'twn',
      (v) => {
        const d = 0.7 * meanAbs(v);
        const big = Array.from(v).filter((x) => Math.abs(x) > d);
        const a = meanAbs(big);
        return Array.from(v, (x) => (Math.abs(x) > d ? Math.sign(x) * a : 0));
      },
      (_v, r) => Array.from(r),
    ],
    [
      'ttq',
      (v) => {
        const d = 0.05 * maxAbs(v);
        const pos = Array.from(v).filter((x) => x > d);
        const neg = Array.from(v).filter((x) => x < -d);
        const wp = pos.reduce((s, x) => s + x, 0) / pos.length;
        const wn = -neg.reduce((s, x) => s + x, 0) / neg.length;
        return Array.from(v, (x) => (x > d ? wp : x < -d ? -wn : 0));
      },
      (v, r) => {
        const d = 0.05 * maxAbs(v);
        const pos = Array.from(v).filter((x) => x > d);
        const neg = Array.from(v).filter((x) => x < -d);
        const wp = pos.reduce((s, x) => s + x, 0) / pos.length;
        const wn = -neg.reduce((s, x) => s + x, 0) / neg.length;
        return Array.from(v, (x, i) => r[i] * (x > d ? wp : x < -d ? wn : 1));
      },
    ],
    [
      'dorefa:w2a32',
      (v) => {
        const m = maxAbs(Array.from(v, Math.tanh));
        return Array.from(v, (x) => (2 * roundEven((Math.tanh(x) / (2 * m) + 0.5) * 3)) / 3 - 1);
      },
      (v, r) => {
        const m = maxAbs(Array.from(v, Math.tanh));
        return Array.from(v, (x, i) => (r[i] * (1 - Math.tanh(x) ** 2)) / m);
      },
    ],
    [
      'lsq:w4a32',
      (v) => {
        const s = (2 * meanAbs(v)) / Math.sqrt(7);
        return Array.from(v, (x) => roundEven(Math.min(Math.max(x / s, -8), 7)) * s);
      },
      (v, r) => {
        const s = (2 * meanAbs(v)) / Math.sqrt(7);
        return Array.from(v, (x, i) => (x / s > -8 && x / s < 7 ? r[i] : 0));
      },
    ],
    [
      'fixed:6',
      (v) => {
        const f = 6 - 1 - Math.ceil(Math.log2(maxAbs(v)));
        return Array.from(v, (x) => Math.min(Math.max(roundEven(x * 2 ** f), -32), 31) * 2 ** -f);
      },
      (_v, r) => Array.from(r),
    ],
    [
      'log:4',
      (v) => {
        const fsr = Math.ceil(Math.log2(maxAbs(v)));
        return Array.from(v, (x) => {
          const e = Math.round(Math.log2(Math.abs(x)));
          return x === 0 || e < fsr - 7 ? 0 : Math.sign(x) * 2 ** Math.min(e, fsr - 1);
        });
      },
      (_v, r) => Array.from(r),
    ],
    [
      'sq',
      (v) => {
        const a = meanAbs(v);
        const t = a / (1 + Math.sqrt(Math.tan(Math.PI / 4 + 0.05)));
        return Array.from(v, (x) => (Math.abs(x) < t ? 0 : sgnStar(x) * a));
      },
      (v, r) => {
        const a = meanAbs(v);
        return Array.from(v, (x, i) => (Math.abs(x) <= 2 * a ? r[i] : 0));
      },
    ],
  ];

  it('every weight spec: Ŵ = the reference quantizer, latent gradient = its STE rule', async () => {
    const v = randArray(45, 21, -0.9, 0.9);
    const r = randArray(45, 22);
    for (const [text, ref, refGrad] of cases) {
      const spec = parseQuantSpec(text);
      // a float layer holding v, upgraded in place (learnable quantizer state is initialised from v)
      const base = new Linear(9, 5, { seed: 3 });
      wq.assignData(base.weight, v);
      const lay = QuantLinear.upgrade(base, spec.weight);
      await lay.wq.calibrate();
      const q = lay.wq.quantized(true);
      assertClose(await q.data(), ref(v), 1e-6, 1e-5, `${text} forward`);
      wq.sum(wq.mul(q, wq.tensor(r, [5, 9]))).backward();
      assertClose(await lay.weight.grad!.data(), refGrad(v, r), 1e-5, 1e-4, `${text} STE backward`);
      lay.release();
    }
  });

  it('learnable quantizer parameters get their gradients (TTQ Wp/Wn, SQ α, LSQ step)', async () => {
    const v = randArray(45, 23, -0.9, 0.9);
    for (const [text, names] of [['ttq', ['ttq_wp', 'ttq_wn']], ['sq', ['sq_alpha']], ['lsq:w4a32', ['w_step']]] as const) {
      const base = new Linear(9, 5, { seed: 4 });
      wq.assignData(base.weight, v);
      const lay = QuantLinear.upgrade(base, parseQuantSpec(text).weight);
      wq.sum(lay.wq.quantized(true)).backward();
      const params = new Map(lay.namedParameters());
      for (const n of names) {
        const g = params.get(n)?.grad;
        assert.ok(g, `${text}: ${n} has a gradient`);
        assert.ok(Number.isFinite((await g.data())[0]), `${text}: ${n} gradient finite`);
      }
      if (text === 'ttq') {
        // Σ Ŵ: ∂/∂Wp = #positive codes, ∂/∂Wn = −#negative codes
        const d = 0.05 * maxAbs(v);
        assertClose(await params.get('ttq_wp')!.grad!.data(), [Array.from(v).filter((x) => x > d).length], 1e-4, 1e-5, 'dWp');
        assertClose(await params.get('ttq_wn')!.grad!.data(), [-Array.from(v).filter((x) => x < -d).length], 1e-4, 1e-5, 'dWn');
      }
      if (text === 'sq') {
        const a = meanAbs(v);
        const t = a / (1 + Math.sqrt(Math.tan(Math.PI / 4 + 0.05)));
        assertClose(await params.get('sq_alpha')!.grad!.data(), [Array.from(v).reduce((s, x) => s + (Math.abs(x) >= t ? sgnStar(x) : 0), 0)], 1e-4, 1e-5, 'dα');
      }
      lay.release();
    }
  });

  it('QuantAct: DoReFa 4-bit levels and clip mask, PACT α gradient', async () => {
    const v = randArray(200, 9, -0.5, 1.5);
    const x = wq.tensor(v, [200], 'f32', true);
    const act = new QuantAct({ method: 'dorefa', bits: 4 });
    const y = act.forward(x);
    assertClose(await y.data(), Array.from(v, (a) => roundEven(Math.min(Math.max(a, 0), 1) * 15) / 15), 1e-6, 1e-6, 'dorefa act');
    wq.sum(y).backward();
    assertClose(await x.grad!.data(), Array.from(v, (a) => (a >= 0 && a <= 1 ? 1 : 0)), 0, 0, 'dorefa mask');
    const pact = new QuantAct({ method: 'pact', bits: 2, alpha0: 0.6 });
    const x2 = wq.tensor(v, [200], 'f32', true);
    const yp = pact.forward(x2);
    assertClose(await yp.data(), Array.from(v, (a) => (roundEven((Math.min(Math.max(a, 0), 0.6) * 3) / 0.6) * 0.6) / 3), 1e-5, 1e-5, 'pact');
    wq.sum(yp).backward();
    assertClose(await pact.qparams.pact_alpha.grad!.data(), [Array.from(v).filter((a) => a >= 0.6).length], 1e-4, 1e-5, 'pact dα');
    pact.release();
  });

  it('incremental layers before the first freeze: eval gives W itself and never releases it (size report, then training)', async () => {
    for (const text of ['elq:ternary', 'inq:4']) {
      const model = new wq.Sequential(new Linear(4, 6, { seed: 1 }), new Linear(6, 5, { seed: 2 }), new Linear(5, 3, { seed: 3 }));
      quantizeModel(model, parseQuantSpec(text));
      const [[, layer]] = wq.quantLayers(model);
      await wq.sizeReport(model); // reads quantized(false), as the train command's baseline report does
      assert.equal(layer.wq.quantized(false), layer.weight, text);
      const q = layer.wq.quantized(true); // training resumes: the old code released the eval cache = the weight
      assert.ok(!layer.weight.released, `${text}: weight still alive`);
      assert.equal((await q.data()).length, 30, text);
      model.release();
    }
  });

  it('SQ penalty = λ·(R + γ·cot β) per layer; GPU decisions agree with the host rule', async () => {
    const spec = parseQuantSpec('sq:lambda=0.5,gamma=0.01,warmup=0');
    const model = new wq.Sequential(new Linear(4, 30, { seed: 1 }), new Linear(30, 40, { seed: 2 }), new Linear(40, 3, { seed: 3 }));
    quantizeModel(model, spec);
    const hooks = new QuantHooks(model, spec, 10);
    assert.equal(hooks.states.length, 1);
    const st = hooks.states[0].state;
    const w = await st.weight.data();
    const a = (await st.param('sq_alpha').data())[0];
    const b = (await st.param('sq_beta').data())[0];
    let rsum = 0;
    for (const x of w) rsum += Math.min((x - a) ** 2, (x + a) ** 2, Math.tan(b) * x * x);
    const pen = sqPenalty([st], 0.5, { p: 2, gamma: 0.01 })!;
    assertClose(await pen.data(), [0.5 * (rsum / w.length + 0.01 / Math.tan(b))], 1e-6, 1e-4, 'penalty');
    const [dec] = await sqDecisions(hooks.states);
    const host = sqDecide(w, a, b, 2);
    assert.equal(dec.mode, host.mode);
    assertClose([dec.zeroFraction], [host.zeroFraction], 1e-9, 0, 'zero fraction');
    model.release();
  });

  it('SQ β: own parameter group at betalr × lr; a binary layer stays binary through later steps', async () => {
    const spec = parseQuantSpec('sq:gamma=0,warmup=0,betalr=10');
    const model = new wq.Sequential(new Linear(4, 30, { seed: 1 }), new Linear(30, 40, { seed: 2 }), new Linear(40, 3, { seed: 3 }));
    quantizeModel(model, spec);
    const named = model.namedParameters();
    const groups = quantParamGroups(named, spec, 0.01);
    assert.equal(groups.length, 2);
    assert.deepEqual((groups[1].params as [string, unknown][]).map(([n]) => n), ['1.sq_beta']);
    assert.equal(groups[1].lr, 0.1);
    assert.equal((groups[0].params as unknown[]).length, named.length - 1);
    const hooks = new QuantHooks(model, spec, 10);
    const beta = hooks.states[0].state.param('sq_beta');
    const opt = hooks.optimizer(new SGD(groups, { lr: 0.01 }));
    // one SGD step with ∂/∂β = g moves β by −0.1·g; then the clip
    const stepWith = async (b0: number, g: number) => {
      wq.noGrad(() => wq.copy_(beta, wq.tensor([b0], [1])));
      beta.grad = wq.tensor([g], [1]).keep();
      opt.step();
      return (await beta.data())[0];
    };
    // ternary layer: free to move down to π/4
    assertClose([await stepWith(1.0, 1)], [0.9], 1e-6, 0, 'ternary β step');
    assertClose([await stepWith(0.8, 1)], [SQ_BETA_MIN], 1e-6, 0, 'clipped at π/4');
    // binary layer (tan β ≥ 100): pushed down, it stops at the binary floor
    const b = await stepWith(Math.atan(150), 1);
    assertClose([b], [SQ_BETA_BINARY], 1e-6, 0, 'binary floor');
    assert.ok(Math.tan(b) >= 100, `tan β = ${Math.tan(b)} after the step`);
    // and a binary layer still moves up
    assert.ok((await stepWith(SQ_BETA_BINARY, -0.01)) > SQ_BETA_BINARY);
    model.release();
  });
});
