/**
 * MXQN post-training quantization (src/quant/ptq): SQNR and the fraction-length search against a
 * plain-TS reference, the activation choice rule, the network SQNR and bit-allocation step, BN
 * folding (traced), and a whole small model quantized: plan, outputs, state dict, bit allocation.
 */
import { before, describe, it } from 'node:test';
import { assert, assertClose, randArray, rng, setup, wq } from './helpers.ts';

function rne(v: number): number {
  const f = Math.floor(v);
  const d = v - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** Gaussian-ish data (sum of uniforms), scaled. */
function gauss(n: number, seed: number, scale: number): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => scale * (r() + r() + r() + r() - 2));
}

/** Reference SQNR of signed fixed point b bits, fraction length f, in float64. */
function refFixedDb(x: ArrayLike<number>, bits: number, frac: number): number {
  const lo = -(2 ** (bits - 1));
  const hi = 2 ** (bits - 1) - 1;
  let s = 0;
  let e = 0;
  for (let i = 0; i < x.length; i++) {
    const q = Math.min(Math.max(rne(x[i] * 2 ** frac), lo), hi) / 2 ** frac;
    s += x[i] * x[i];
    e += (x[i] - q) ** 2;
  }
  return 10 * Math.log10(s / e);
}

describe('ptq: SQNR math (plain TypeScript)', () => {
  it('sqnrDb, the max rule, candidates, network SQNR and the weakest part', () => {
    assert.equal(wq.sqnrDb(100, 1), 20);
    assert.equal(wq.sqnrDb(1, 0), wq.SQNR_CAP_DB);
    assert.equal(wq.fracForMax(0.9, 8, true), 7); // ceil(log2 0.9) = 0 → f = 7
    assert.equal(wq.fracForMax(3, 8, false), 6); // ceil(log2 3) = 2 → f = 8 − 2
    assert.equal(wq.fsrForMax(5), 3);
    const fc = wq.fixedCandidates(0.9, 8, true);
    assert.deepEqual(fc.map((q) => (q as { frac: number }).frac), [5, 6, 7, 8, 9, 10]);
    const lc = wq.logCandidates(5, 4, false, [1, 2]);
    assert.deepEqual(lc.map((q) => [(q as { m: number }).m, (q as { fsr: number }).fsr]), [[1, 3], [1, 4], [2, 3], [2, 4]]);
    assertClose([wq.networkSqnrDb([30, 30])], [30 - 10 * Math.log10(2)], 1e-9);
    const parts = [
      { layer: 0, kind: 'weight' as const, bits: 4, db: 20 },
      { layer: 0, kind: 'act' as const, bits: 4, db: 15 },
      { layer: 1, kind: 'act' as const, bits: 8, db: 10 },
    ];
    assert.deepEqual(wq.weakestPart(parts, 40, 16), parts[2]);
    assert.deepEqual(wq.weakestPart(parts, 40, 8), parts[1]); // layer 1 is at the cap
    assert.equal(wq.weakestPart(parts, 5, 16), null); // target met
  });

  it('the activation choice rule: mxqn keeps fixed unless log wins by more than 0.5 dB', () => {
    const fx = (db: number, frac = 4) => ({ q: { kind: 'fixed' as const, bits: 4, frac, signed: false }, db });
    const lg = (db: number, m: 1 | 2 | 4 = 1) => ({ q: { kind: 'log' as const, bits: 4, fsr: 2, m, signed: false }, db });
    const a = [fx(20), fx(21, 5), lg(21.4), lg(19, 2)];
    assert.equal(wq.chooseActivation('mxqn', a).chosen.q.kind, 'fixed');
    assert.equal(wq.chooseActivation('mxqn', a).chosen.db, 21);
    assert.equal(wq.chooseActivation('mxqn', [...a, lg(21.6, 4)]).chosen.db, 21.6);
    assert.equal(wq.chooseActivation('mxqn', a, 0).chosen.db, 21.4);
    assert.equal(wq.chooseActivation('fixed', [...a, lg(40)]).chosen.db, 21);
    const c = wq.chooseActivation('log', a);
    assert.equal(c.chosen.db, 21.4);
    assert.equal(c.log[2]!.db, 19);
    assert.equal(c.fixed!.db, 21);
  });

  it('--bits parsing names what is wrong', () => {
    assert.deepEqual(wq.parseBits('w6a4'), { weightBits: 6, actBits: 4 });
    for (const bad of ['w0a8', 'w8a1', 'w17a8', '8', 'w8', 'a8w8']) {
      assert.throws(() => wq.parseBits(bad), /bits must be wXaY with X \(weight bits\) and Y \(activation bits\) integers in 2\.\.16/, bad);
    }
  });
});

describe('ptq: GPU statistics and the quantized model', () => {
  before(async () => {
    await setup();
  });

  it('fraction-length search on GPU error sums matches the float64 reference', async () => {
    for (const [n, bits, scale] of [[5000, 8, 0.05], [777, 4, 1.3], [20000, 6, 0.2]] as const) {
      const x = gauss(n, n, scale);
      let m = 0;
      for (const v of x) m = Math.max(m, Math.abs(v));
      const cands = wq.fixedCandidates(m, bits, true);
      const t = wq.tensor(x, [n]);
      const acc = wq.zeros([16]);
      wq.ptqErrorSums_(t, cands, acc);
      const scored = wq.scoreCandidates(cands, await acc.data());
      const ref = cands.map((q) => refFixedDb(x, bits, (q as { frac: number }).frac));
      assertClose(scored.map((s) => s.db), ref, 0.01, 0, `SQNR dB n=${n} b=${bits}`);
      const refBest = cands[ref.indexOf(Math.max(...ref))];
      assert.deepEqual(wq.searchFrac(scored).q, refBest, `n=${n} b=${bits}`);
      // the search never does worse than the max rule f0
      assert.ok((refBest as { frac: number }).frac >= wq.fracForMax(m, bits, true), `f ${(refBest as { frac: number }).frac}`);
      t.release();
      acc.release();
    }
  });

  function tinyModel(seed: number): wq.Module {
    const m = new wq.Sequential(
      new wq.Conv2d(1, 4, 3, { padding: 1, seed, bias: false }),
      new wq.BatchNorm2d(4),
      new wq.ReLU(),
      new wq.Conv2d(4, 6, 3, { seed: seed + 1 }),
      new wq.BatchNorm2d(6),
      new wq.ReLU(),
      new wq.Flatten(),
      new wq.Linear(6 * 4 * 4, 5, { seed: seed + 2 }),
    );
    // non-trivial BN statistics and affine parameters
    for (const [name, t] of m.stateDict()) {
      if (!/^[14]\./.test(name)) continue;
      const c = t.size;
      const v = name.endsWith('running_var') ? randArray(c, c + 1, 0.5, 2) : randArray(c, c + name.length, -0.5, 1.5);
      wq.assignData(t, v);
    }
    return m;
  }
  const batches = (k: number) => Array.from({ length: k }, (_, i) => wq.tensor(randArray(8 * 36, 50 + i, -1, 2), [8, 1, 6, 6]).keep());

  it('BN folding (traced) leaves the eval output unchanged and makes the BNs identities', async () => {
    const m = tinyModel(3).eval();
    const [x] = batches(1);
    const before = await wq.noGrad(() => m.call(x)).data();
    const folded = wq.foldBatchNorm(m, x);
    assert.deepEqual([...folded.keys()], ['0', '3']);
    assert.equal(folded.get('0')!.bn, '1');
    const after = await wq.noGrad(() => m.call(x)).data();
    assertClose(after, before, 1e-4, 1e-4, 'folded vs BN');
    for (const f of folded.values()) f.bias.release();
    x.release();
    m.release();
  });

  it('ResNet-20 (residual blocks, 1x1 shortcuts): all 21 BNs fold (traced), W8A8 output stays close to float', async () => {
    const m = wq.createModel('resnet20', { inChannels: 1, inputSize: 8, numClasses: 10, seed: 5 });
    for (const [name, t] of m.stateDict()) {
      if (/running_var$/.test(name)) wq.assignData(t, randArray(t.size, name.length, 0.5, 2));
      else if (/(running_mean|bn\d?\.(weight|bias)|downsample\.1\.(weight|bias))$/.test(name)) wq.assignData(t, randArray(t.size, name.length + 7, -0.5, 1.5));
    }
    m.eval();
    const x = wq.tensor(randArray(2 * 64, 9, -1, 2), [2, 1, 8, 8]).keep();
    const want = await wq.noGrad(() => m.call(x)).data();
    const pm = await wq.PtqModel.quantize(m, () => [x], { method: 'mxqn', weightBits: 8, actBits: 8 });
    const folded = pm.result.layers.filter((l) => l.foldedBn);
    assert.equal(folded.length, 21, pm.result.layers.map((l) => `${l.name}:${l.foldedBn}`).join(' '));
    assert.equal(pm.result.layers.length, 22);
    const got = await wq.noGrad(() => m.call(x)).data();
    const scale = Math.max(...Array.from(want, Math.abs));
    assertClose(got, want, 0.1 * scale, 0, 'resnet20 W8A8 vs float');
    pm.release();
    m.release();
    x.release();
  });

  it('quantizes a small model: plan, outputs close to float, state dict of quantized values', async () => {
    const xs = batches(3);
    const ref = tinyModel(7).eval();
    const wantT = wq.tidy(() => wq.noGrad(() => ref.call(xs[0])));
    const want = await wantT.data();
    wantT.release();
    ref.release();
    const inUse = wq.memory().inUseBuffers;
    for (const [method, bits, tol] of [['mxqn', 12, 0.02], ['fixed', 8, 0.15], ['log', 8, 0.5]] as const) {
      const m = tinyModel(7);
      const pm = await wq.PtqModel.quantize(m, () => xs, { method, weightBits: bits, actBits: bits });
      const r = pm.result;
      assert.equal(r.calibBatches, 3);
      assert.deepEqual(r.layers.map((l) => [l.name, l.kind, l.foldedBn]), [['0', 'conv', '1'], ['3', 'conv', '4'], ['7', 'linear', null]]);
      for (const l of r.layers) {
        assert.ok(l.quantized && l.weight && l.act);
        assert.equal(l.weight.q.kind, 'fixed');
        assert.equal(l.act.q.kind, method === 'log' ? 'log' : 'fixed', `${method} ${l.name}`);
        assert.equal(l.act.count, 3 * (l.index === 0 ? 8 * 36 : l.index === 1 ? 8 * 4 * 36 : 8 * 96));
        assert.equal(l.act.histogram.reduce((s, v) => s + v, 0), l.act.count);
        assert.equal(l.act.q.signed, l.index === 0, 'the raw input is signed, post-ReLU inputs are not');
      }
      assert.ok(r.networkSqnrDb > (method === 'log' ? 10 : 30), `${method}: network SQNR ${r.networkSqnrDb}`);
      const gotT = wq.tidy(() => wq.noGrad(() => m.call(xs[0])));
      const got = await gotT.data();
      gotT.release();
      const scale = Math.max(...Array.from(want, Math.abs));
      assertClose(got, want, tol * scale, 0, `${method} w${bits}a${bits} output`);
      const sd = pm.stateDict();
      assert.ok(![...sd.keys()].some((k) => /^[14]\./.test(k)), 'folded BNs are not in the state dict');
      const w0 = await sd.get('0.weight')!.data();
      const f = (r.layers[0].weight!.q as { frac: number }).frac;
      assert.ok(Array.from(w0).every((v) => Number.isInteger(v * 2 ** f)), 'weights are k·2^-f');
      assert.ok(sd.has('0.bias'), 'the folded bias of a bias-free conv');
      pm.release();
      m.release();
      assert.equal(wq.memory().inUseBuffers, inUse, `${method}: calibration, folding and release leave no GPU buffer in use`);
    }
    for (const x of xs) x.release();
  });

  it('first/last layer option and bit allocation towards a target network SQNR', async () => {
    const xs = batches(2);
    const m = tinyModel(11);
    const pm = await wq.PtqModel.quantize(m, () => xs, { method: 'mxqn', weightBits: 3, actBits: 3, quantizeFirst: false, targetSqnrDb: 30, maxBits: 10 });
    const r = pm.result;
    assert.equal(r.layers[0].quantized, false);
    assert.equal(r.layers[0].weight, null);
    assert.ok(r.allocation.length > 0, 'raised some bits');
    assert.ok(r.networkSqnrDb >= 30, `network SQNR ${r.networkSqnrDb}`);
    // each step raised the weakest part, and the estimate never went down
    for (let k = 1; k < r.allocation.length; k++) assert.ok(r.allocation[k].networkDb >= r.allocation[k - 1].networkDb - 1e-9);
    const bits = r.layers.slice(1).flatMap((l) => [l.weight!.q.bits, l.act!.q.bits]);
    assert.ok(bits.some((b) => b > 3) && bits.every((b) => b <= 10), bits.join(','));
    pm.release();
    m.release();
    for (const x of xs) x.release();
  });
});
