import { before, describe, it } from 'node:test';
import { assert, assertClose, gradCheck, randArray, setup, size, wq } from './helpers.ts';

// ------------------------------------------------------------------------- plain-TS references

const sgnStar = (v: number) => (v >= 0 ? 1 : -1);
/** round half to even (matches WGSL round) */
function rne(v: number): number {
  const f = Math.floor(v);
  const d = v - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

function rowsView(x: ArrayLike<number>, rows: number): number[][] {
  const k = x.length / rows;
  return Array.from({ length: rows }, (_, r) => Array.from({ length: k }, (_, j) => x[r * k + j]));
}
const mean = (a: number[]) => a.reduce((s, v) => s + v, 0) / a.length;

function refAbsMean(x: ArrayLike<number>, rows: number) {
  return rowsView(x, rows).map((r) => mean(r.map(Math.abs)));
}
function refAbsMax(x: ArrayLike<number>, rows: number, f = (v: number) => v) {
  return rowsView(x, rows).map((r) => Math.max(...r.map((v) => Math.abs(f(v)))));
}
function refMasked(x: ArrayLike<number>, rows: number, thr: number[], factor: number) {
  return rowsView(x, rows).map((r, i) => {
    const t = factor * thr[thr.length === 1 ? 0 : i];
    const sel = r.map(Math.abs).filter((a) => a > t);
    return sel.length ? mean(sel) : 0;
  });
}
function refTwn(x: ArrayLike<number>, rows: number) {
  const m = refAbsMean(x, rows);
  const a = refMasked(x, rows, m, 0.7);
  const k = x.length / rows;
  return Array.from(x, (v, i) => {
    const r = Math.floor(i / k);
    return Math.abs(v) > 0.7 * m[r] ? a[r] * Math.sign(v) : 0;
  });
}

/** upstream gradient wt; returns x.grad of sum(op(x) * wt) */
async function gradOf(fn: (xs: wq.Tensor[]) => wq.Tensor, inputs: { data: Float32Array; shape: number[] }[], wt: Float32Array) {
  const xs = inputs.map((i) => wq.tensor(i.data, i.shape, 'f32', true));
  const y = fn(xs);
  const w = wq.tensor(wt, y.shape);
  wq.sum(wq.mul(y, w)).backward();
  const grads = await Promise.all(xs.map((x) => x.grad!.data()));
  for (const x of xs) x.release();
  w.release();
  return grads;
}

describe('quant kernels', () => {
  before(setup);

  it('statistics per layer and per output channel (several chunks, odd sizes)', async () => {
    for (const shape of [[1], [7], [5, 3, 3, 3], [3, 9001], [130, 17]]) {
      const x = randArray(size(shape), 17 + shape.length, -2, 2);
      const t = wq.tensor(x, shape);
      for (const g of ['layer', 'channel'] as const) {
        const rows = g === 'layer' ? 1 : shape[0];
        const tag = `${JSON.stringify(shape)} ${g}`;
        assertClose(await wq.absMean(t, g).data(), refAbsMean(x, rows), 1e-5, 1e-4, `absMean ${tag}`);
        assertClose(await wq.absMax(t, g).data(), refAbsMax(x, rows), 0, 0, `absMax ${tag}`);
        assertClose(await wq.tanhAbsMax(t, g).data(), refAbsMax(x, rows, Math.tanh), 1e-6, 1e-5, `tanhAbsMax ${tag}`);
        const m = wq.absMean(t, g);
        const mh = Array.from(await m.data());
        assertClose(await wq.maskedAbsMean(t, m, { granularity: g, factor: 0.7 }).data(), refMasked(x, rows, mh, 0.7), 1e-5, 1e-4, `maskedAbsMean ${tag}`);
        m.release();
      }
      t.release();
    }
    // empty mask gives 0
    const t = wq.tensor([0.1, -0.2], [2]);
    assert.deepEqual(Array.from(await wq.maskedAbsMean(t, wq.tensor([5], [1])).data()), [0]);
  });

  it('DoReFa activations: 4 bits give at most 16 levels, values and the clip STE', async () => {
    const shape = [3, 5, 7, 11];
    const x = randArray(size(shape), 5, -0.5, 1.5);
    const t = wq.tensor(x, shape);
    const y = await wq.quantDorefaAct(t, 4).data();
    const levels = new Set(Array.from(y));
    assert.ok(levels.size <= 16 && levels.size >= 14, `4-bit levels: ${levels.size}`);
    for (const v of levels) assert.ok(Math.abs(v * 15 - Math.round(v * 15)) < 1e-5, `level ${v} is on the 1/15 grid`);
    assertClose(y, Array.from(x, (v) => rne(Math.min(Math.max(v, 0), 1) * 15) / 15), 1e-6, 0, 'dorefa a4');
    assertClose(await wq.quantDorefaAct(t, 32).data(), Array.from(x, (v) => Math.min(Math.max(v, 0), 1)), 0, 0, 'dorefa a32');
    assert.equal(new Set(await wq.quantDorefaAct(t, 1).data()).size, 2);
    const wt = randArray(size(shape), 6);
    const [gx] = await gradOf(([a]) => wq.quantDorefaAct(a, 2), [{ data: x, shape }], wt);
    assertClose(gx, Array.from(x, (v, i) => (v >= 0 && v <= 1 ? wt[i] : 0)), 0, 0, 'dorefa a backward');
    t.release();
  });

  it('DoReFa weights: 1 bit = mean|w|·sign*, k bits tanh-normalised, backward (1 - t²)/m', async () => {
    const shape = [6, 4, 3, 3];
    const x = randArray(size(shape), 8, -1.5, 1.5);
    x[3] = 0; // sign*(0) = +1
    const t = wq.tensor(x, shape);
    const e = refAbsMean(x, 1)[0];
    assertClose(await wq.quantDorefaWeight(t, 1).data(), Array.from(x, (v) => e * sgnStar(v)), 1e-6, 1e-5, 'w1');
    const m = refAbsMax(x, 1, Math.tanh)[0];
    for (const k of [2, 3, 8]) {
      const L = 2 ** k - 1;
      const ref = Array.from(x, (v) => (2 * rne((Math.tanh(v) / (2 * m) + 0.5) * L)) / L - 1);
      const got = await wq.quantDorefaWeight(t, k).data();
      assertClose(got, ref, 1e-5, 0, `w${k}`);
      assert.ok(new Set(got).size <= L + 1);
    }
    const wt = randArray(size(shape), 9);
    const [g3] = await gradOf(([a]) => wq.quantDorefaWeight(a, 3), [{ data: x, shape }], wt);
    assertClose(g3, Array.from(x, (v, i) => (wt[i] * (1 - Math.tanh(v) ** 2)) / m), 1e-6, 1e-4, 'w3 backward');
    const [g1] = await gradOf(([a]) => wq.quantDorefaWeight(a, 1), [{ data: x, shape }], wt);
    assertClose(g1, wt, 0, 0, 'w1 backward (identity)');
    assertClose(await wq.quantDorefaWeight(t, 32).data(), x, 0, 0, 'w32');
    t.release();
  });

  it('binary (BWN/XNOR) per layer and per channel; clipped STE', async () => {
    const shape = [5, 3, 7];
    const x = randArray(size(shape), 12, -2, 2);
    const t = wq.tensor(x, shape);
    const e = refAbsMean(x, 5);
    assertClose(await wq.quantBinary(t, { granularity: 'channel' }).data(), Array.from(x, (v, i) => e[Math.floor(i / 21)] * sgnStar(v)), 1e-6, 1e-5);
    const wt = randArray(size(shape), 13);
    const [g] = await gradOf(([a]) => wq.quantBinary(a, { ste: 'clipped' }), [{ data: x, shape }], wt);
    assertClose(g, Array.from(x, (v, i) => (Math.abs(v) <= 1 ? wt[i] : 0)), 0, 0, 'clipped STE');
    t.release();
  });

  it('TWN on a fixed vector gives the known Δ and α; per channel vs reference', async () => {
    const w = [0.1, -0.2, 0.9, -1.2, 0.05, 0.6, -0.4, 0.0];
    // mean|w| = 3.45/8 = 0.43125, Δ = 0.301875, {0.9, 1.2, 0.6, 0.4} -> α = 0.775
    const t = wq.tensor(w, [8]);
    assertClose(await wq.absMean(t).data(), [0.43125], 1e-7, 1e-6);
    assertClose(await wq.maskedAbsMean(t, wq.absMean(t), { factor: 0.7 }).data(), [0.775], 1e-7, 1e-6);
    assertClose(await wq.quantTernary(t).data(), [0, 0, 0.775, -0.775, 0, 0.775, -0.775, 0], 1e-6, 1e-6, 'twn');
    const shape = [7, 33];
    const x = randArray(size(shape), 21, -1, 1);
    const u = wq.tensor(x, shape);
    assertClose(await wq.quantTernary(u, { granularity: 'channel' }).data(), refTwn(x, 7), 1e-6, 1e-5, 'twn per channel');
    const wt = randArray(size(shape), 22);
    const [g] = await gradOf(([a]) => wq.quantTernary(a), [{ data: x, shape }], wt);
    assertClose(g, wt, 0, 0, 'twn STE identity');
  });

  it('TTQ: codes, g_w = g·(Wp|1|Wn), Wp/Wn gradients vs finite differences', async () => {
    const shape = [4, 25];
    const x = randArray(size(shape), 31, -1, 1);
    const mx = refAbsMax(x, 1)[0];
    const d = 0.3 * mx;
    const ref = ([w, p, n]: Float64Array[]) => Array.from(w, (v) => (v > d ? p[0] : v < -d ? -n[0] : 0));
    await gradCheck(([w, p, n]) => wq.quantTtq(w, p, n, { threshold: 0.3 }), ref, [
      { data: x, shape, grad: false },
      { data: new Float32Array([0.8]), shape: [1] },
      { data: new Float32Array([0.6]), shape: [1] },
    ], { what: 'ttq scales' });
    const wt = randArray(size(shape), 99);
    const [gw] = await gradOf(([w, p, n]) => wq.quantTtq(w, p, n, { threshold: 0.3 }),
      [{ data: x, shape }, { data: new Float32Array([0.8]), shape: [1] }, { data: new Float32Array([0.6]), shape: [1] }], wt);
    assertClose(gw, Array.from(x, (v, i) => wt[i] * (v > d ? 0.8 : v < -d ? 0.6 : 1)), 1e-7, 1e-6, 'ttq g_w');
  });

  it('PACT: values, g_x mask and g_α', async () => {
    const shape = [3, 41];
    const x = randArray(size(shape), 41, -1, 3);
    const a = 1.7;
    const L = 15;
    const t = wq.tensor(x, shape);
    const al = wq.tensor([a], [1]);
    const ref = Array.from(x, (v) => (rne((Math.min(Math.max(v, 0), a) * L) / a) * a) / L);
    assertClose(await wq.quantPact(t, al, 4).data(), ref, 1e-5, 1e-5, 'pact');
    const wt = randArray(size(shape), 42);
    const [gx, ga] = await gradOf(([x, al]) => wq.quantPact(x, al, 4), [{ data: x, shape }, { data: new Float32Array([a]), shape: [1] }], wt);
    assertClose(gx, Array.from(x, (v, i) => (v >= 0 && v < a ? wt[i] : 0)), 0, 0, 'pact g_x');
    assertClose(ga, [Array.from(x).reduce((s, v, i) => s + (v >= a ? wt[i] : 0), 0)], 1e-5, 1e-5, 'pact g_alpha');
  });

  it('LSQ: values, g_v, g_s with the 1/sqrt(N·Qp) scale (per layer and per channel)', async () => {
    for (const [signed, bits, shape, perCh] of [[true, 3, [6, 20], false], [false, 4, [2, 3, 5, 7], false], [true, 2, [5, 9], true]] as const) {
      const x = randArray(size(shape), 50 + bits, -2, 2);
      const rows = perCh ? shape[0] : 1;
      const sv = Float32Array.from({ length: rows }, (_, r) => 0.23 + 0.05 * r);
      const qn = signed ? 2 ** (bits - 1) : 0;
      const qp = signed ? 2 ** (bits - 1) - 1 : 2 ** bits - 1;
      const k = x.length / rows;
      const ref = Array.from(x, (v, i) => rne(Math.min(Math.max(v / sv[Math.floor(i / k)], -qn), qp)) * sv[Math.floor(i / k)]);
      const t = wq.tensor(x, [...shape]);
      const s = wq.tensor(sv, [rows]);
      assertClose(await wq.quantLsq(t, s, bits, signed).data(), ref, 1e-6, 1e-5, `lsq ${bits}`);
      const wt = randArray(x.length, 7);
      const [gv, gs] = await gradOf(([a, b]) => wq.quantLsq(a, b, bits, signed), [{ data: x, shape: [...shape] }, { data: sv, shape: [rows] }], wt);
      const inside = (u: number) => u > -qn && u < qp;
      assertClose(gv, Array.from(x, (v, i) => (inside(v / sv[Math.floor(i / k)]) ? wt[i] : 0)), 0, 0, 'lsq g_v');
      const gsRef = new Array(rows).fill(0);
      x.forEach((v, i) => {
        const r = Math.floor(i / k);
        const u = v / sv[r];
        gsRef[r] += wt[i] * (u <= -qn ? -qn : u >= qp ? qp : rne(u) - u);
      });
      assertClose(gs, gsRef.map((g) => g / Math.sqrt(k * qp)), 1e-5, 1e-4, 'lsq g_s');
    }
  });

  it('fixed-point and log quantizers', async () => {
    const x = randArray(200, 61, -3, 3);
    x[0] = 0;
    const t = wq.tensor(x, [200]);
    const fx = Array.from(x, (v) => Math.min(Math.max(rne(v * 2 ** 4), -128), 127) / 16);
    assertClose(await wq.quantFixed(t, 8, 4).data(), fx, 0, 0, 'fixed 8.4');
    for (const m of [1, 2] as const) {
      const bits = 4;
      const fsr = 2;
      const top = m * fsr - 1;
      const low = m * fsr - (2 ** (bits - 1) - 1);
      const ref = Array.from(x, (v) => {
        if (v === 0) return 0;
        const e = rne(m * Math.log2(Math.abs(v)));
        return e < low ? 0 : Math.sign(v) * 2 ** (Math.min(e, top) / m);
      });
      const got = await wq.quantLog(t, bits, fsr, { perOctave: m }).data();
      assertClose(got, ref, 1e-6, 1e-5, `log m=${m}`);
      assert.ok(new Set(Array.from(got, Math.abs)).size <= 2 ** (bits - 1), 'magnitude codes');
    }
    const [g] = await gradOf(([a]) => wq.quantFixed(a, 8, 4), [{ data: x, shape: [200] }], randArray(200, 3));
    assertClose(g, randArray(200, 3), 0, 0, 'fixed STE identity');
  });

  it('STE wrappers: identity, clipped, through-clip', async () => {
    const x = randArray(64, 71, -2, 2);
    const wt = randArray(64, 72);
    const q = (a: wq.Tensor) => wq.noGrad(() => wq.sign(a));
    const [g1] = await gradOf(([a]) => wq.steIdentity(a, q(a)), [{ data: x, shape: [64] }], wt);
    assertClose(g1, wt, 0, 0, 'identity');
    const [g2] = await gradOf(([a]) => wq.steClipped(a, q(a), 1), [{ data: x, shape: [64] }], wt);
    assertClose(g2, Array.from(x, (v, i) => (Math.abs(v) <= 1 ? wt[i] : 0)), 0, 0, 'clipped');
    const [g3] = await gradOf(([a]) => wq.steThroughClip(a, q(a), -0.5, 1.5), [{ data: x, shape: [64] }], wt);
    assertClose(g3, Array.from(x, (v, i) => (v >= -0.5 && v <= 1.5 ? wt[i] : 0)), 0, 0, 'through clip');
  });

  // ------------------------------------------------------------------------------- SQ

  const refR = (w: ArrayLike<number>, a: number, b: number, p: number, gamma: number) => {
    let s = 0;
    for (const v of Array.from(w)) s += Math.min(Math.abs(v - a) ** p, Math.abs(v + a) ** p, Math.tan(b) * Math.abs(v) ** p);
    return s / w.length + gamma / Math.tan(b);
  };

  /** weights away from the branch boundaries (|w| = t and w = 0) and from α */
  function sqWeights(n: number, seed: number, a: number, b: number, p: 1 | 2): Float32Array {
    const t = wq.sqThresholdOf(a, b, p);
    return randArray(n, seed, -2 * a, 2 * a).map((v) => {
      let u = v;
      if (Math.abs(Math.abs(u) - t) < 0.03) u += 0.07;
      if (Math.abs(u) < 0.02) u += 0.05;
      if (Math.abs(Math.abs(u) - a) < 0.02) u += 0.05;
      return u;
    });
  }

  for (const p of [1, 2] as const) {
    it(`SQ regularizer p=${p}: value, branches, gradients to w, α, β vs finite differences`, async () => {
      const a = 0.6;
      const b = 1.0;
      const gamma = 1e-2;
      const shape = [5, 3, 3, 3];
      const w = sqWeights(size(shape), 80 + p, a, b, p);
      const wt = wq.tensor(w, shape);
      const at = wq.tensor([a], [1]);
      const bt = wq.tensor([b], [1]);
      const r = wq.sqRegularizer(wt, at, bt, { p, gamma });
      assert.deepEqual(r.shape, []);
      assertClose([await r.item()], [refR(w, a, b, p, gamma)], 1e-6, 1e-5, 'R');
      const t = wq.sqThresholdOf(a, b, p);
      const br = await wq.sqBranches(wt, at, bt, { p }).data();
      assert.deepEqual(Array.from(br), Array.from(w, (v) => (Math.abs(v) < t ? 0 : v >= 0 ? 1 : -1)));
      const st = await wq.sqStats(wt, at, bt, { p, gamma }).data();
      assert.equal(st[3], Array.from(w).filter((v) => Math.abs(v) < t).length);
      await gradCheck(([x, al, be]) => wq.reshape(wq.sqRegularizer(x, al, be, { p, gamma }), [1]),
        ([x, al, be]) => [refR(x, al[0], be[0], p, gamma)],
        [{ data: w, shape }, { data: new Float32Array([a]), shape: [1] }, { data: new Float32Array([b]), shape: [1] }],
        { what: `sq reg p=${p}`, eps: 1e-3, atol: 1e-4, rtol: 1e-2 });
      // positional form
      assertClose([await wq.sqRegularizer(wt, at, bt, p, gamma).item()], [refR(w, a, b, p, gamma)], 1e-6, 1e-5, 'R positional');
    });
  }

  it('SQ regularizer on a long tensor (several chunks); equilibrium tan²β* = γn/Σ_Z|w|^p', async () => {
    const n = 20000;
    const a = 1;
    const w = randArray(n, 90, -2, 2);
    const t = wq.tensor(w, [n]);
    const at = wq.tensor([a], [1]);
    const zmass = (b: number) => Array.from(w).filter((v) => Math.abs(v) < wq.sqThresholdOf(a, b, 2)).reduce((s, v) => s + v * v, 0);
    const b = 1.2;
    const gamma = 0.05;
    const bt = wq.tensor([b], [1], 'f32', true);
    const r = wq.sqRegularizer(t, at, bt, { p: 2, gamma });
    assertClose([await r.item()], [refR(w, a, b, 2, gamma)], 1e-5, 1e-4, 'R long');
    r.backward();
    const gb = await bt.grad!.item();
    const ref = zmass(b) / n / Math.cos(b) ** 2 - gamma / Math.sin(b) ** 2;
    assertClose([gb], [ref], 1e-5, 1e-4, 'dR/dbeta');
    // at β* with tan²β* = γn/Σ_Z|w|² (for the zero set at β), the β gradient vanishes
    const tb2 = (gamma * n) / zmass(b);
    assert.ok(Number.isFinite(tb2) && tb2 > 0);
  });

  it('SQ quantizer: basins, clipped STE, α gradient', async () => {
    const a = 0.5;
    const b = 1.1;
    const shape = [4, 30];
    const w = sqWeights(size(shape), 95, a, b, 2);
    const t = wq.sqThresholdOf(a, b, 2);
    const wt = wq.tensor(w, shape);
    const q = await wq.sqQuantize(wt, wq.tensor([a], [1]), wq.tensor([b], [1])).data();
    assertClose(q, Array.from(w, (v) => (Math.abs(v) < t ? 0 : a * sgnStar(v))), 1e-7, 0, 'sq forward');
    const up = randArray(size(shape), 96);
    const [gw, ga] = await gradOf(([x, al]) => wq.sqQuantize(x, al, wq.tensor([b], [1])), [{ data: w, shape }, { data: new Float32Array([a]), shape: [1] }], up);
    assertClose(gw, Array.from(w, (v, i) => (Math.abs(v) <= 2 * a ? up[i] : 0)), 0, 0, 'sq g_w');
    assertClose(ga, [Array.from(w).reduce((s, v, i) => s + (Math.abs(v) >= t ? up[i] * sgnStar(v) : 0), 0)], 1e-5, 1e-5, 'sq g_alpha');
  });

  it('SQ quantizer: binary (threshold 0) once tan β ≥ SQ_TAN_BINARY', async () => {
    const a = 0.5;
    const shape = [3, 41];
    const w = randArray(size(shape), 97, -0.02, 0.02); // all well inside the ternary basin at β = π/4
    const below = Math.atan(wq.SQ_TAN_BINARY * 0.99);
    const at = Math.atan(wq.SQ_TAN_BINARY * 1.01);
    assert.ok(wq.sqQuantThresholdOf(a, below, 2) > 0.04 && wq.sqQuantThresholdOf(a, at, 2) === 0);
    const wt = wq.tensor(w, shape);
    const qBelow = await wq.sqQuantize(wt, wq.tensor([a], [1]), wq.tensor([below], [1])).data();
    const qAt = await wq.sqQuantize(wt, wq.tensor([a], [1]), wq.tensor([at], [1])).data();
    assertClose(qBelow, Array.from(w, () => 0), 0, 0, 'sq just below binary: all zero');
    assertClose(qAt, Array.from(w, (v) => a * sgnStar(v)), 1e-7, 0, 'sq binary: α·sign*(w)');
    const up = randArray(size(shape), 98);
    const [, ga] = await gradOf(([x, al]) => wq.sqQuantize(x, al, wq.tensor([at], [1])), [{ data: w, shape }, { data: new Float32Array([a]), shape: [1] }], up);
    assertClose(ga, [Array.from(w).reduce((s, v, i) => s + up[i] * sgnStar(v), 0)], 1e-5, 1e-5, 'sq binary g_alpha');
  });

  it('errors name the op and the accepted range or shape', () => {
    const x = wq.tensor([1, 2, 3, 4], [2, 2]);
    assert.throws(() => wq.quantDorefaAct(x, 0), /quantDorefaAct: bits must be an integer in 1\.\.8 or 32, got 0/);
    assert.throws(() => wq.quantDorefaWeight(x, 9), /quantDorefaWeight: bits must be an integer in 1\.\.8 or 32, got 9/);
    assert.throws(() => wq.quantLsq(x, wq.tensor([1], [1]), 1, true), /quantLsq: bits must be an integer in 2\.\.8, got 1/);
    assert.throws(() => wq.quantFixed(x, 33, 0), /quantFixed: bits must be an integer in 2\.\.32, got 33/);
    assert.throws(() => wq.quantLog(x, 1.5, 0), /quantLog: bits must be an integer in 2\.\.8, got 1.5/);
    assert.throws(() => wq.quantPact(x, wq.tensor([1, 2, 3], [3]), 4), /quantPact: alpha must have 1 element.*\[3\]/);
    assert.throws(() => wq.quantTtq(x, wq.tensor([1, 1, 1], [3]), wq.tensor([1], [1])), /quantTtq: Wp must have 1 element \(per layer\) or 2 \(per output channel\)/);
    assert.throws(() => wq.sqRegularizer(x, wq.tensor([1, 1], [2]), wq.tensor([1], [1])), /sqRegularizer: alpha must have 1 element/);
    assert.throws(() => wq.sqQuantize(x, wq.tensor([1], [1]), wq.tensor([1], [1]), { p: 3 as 2 }), /sqQuantize: p must be 1 or 2, got 3/);
    assert.throws(() => wq.steIdentity(x, wq.tensor([1, 2], [2])), /steIdentity: shapes \[2,2\] and \[2\] must match/);
    assert.throws(() => wq.absMean(wq.tensor([1], [1], 'i32')), /absMean: expected dtype f32/);
    assert.throws(() => wq.absMean(x, 'row' as 'layer'), /absMean: granularity must be 'layer' or 'channel'/);
  });
});
