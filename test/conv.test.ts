import { before, describe, it } from 'node:test';
import { assert, assertClose, gradCheck, randArray, setup, size, wq } from './helpers.ts';
import * as ck from '../src/kernels/conv.ts';

interface Cfg {
  N: number;
  C: number;
  H: number;
  W: number;
  O: number;
  k: [number, number];
  s: [number, number];
  p: [number, number];
  d: [number, number];
  g: number;
  bias: boolean;
}

function cfg(N: number, C: number, H: number, W: number, O: number, k: number | [number, number], s: number, p: number | [number, number], d: number, g: number, bias: boolean): Cfg {
  const two = (v: number | [number, number]): [number, number] => (typeof v === 'number' ? [v, v] : v);
  return { N, C, H, W, O, k: two(k), s: two(s), p: two(p), d: two(d), g, bias };
}

function outSize(c: Cfg): [number, number] {
  return [
    Math.floor((c.H + 2 * c.p[0] - c.d[0] * (c.k[0] - 1) - 1) / c.s[0]) + 1,
    Math.floor((c.W + 2 * c.p[1] - c.d[1] * (c.k[1] - 1) - 1) / c.s[1]) + 1,
  ];
}

/** Direct (7-loop) convolution in float64. */
function refConv(c: Cfg, x: ArrayLike<number>, w: ArrayLike<number>, b: ArrayLike<number> | null): Float64Array {
  const [Ho, Wo] = outSize(c);
  const Cg = c.C / c.g;
  const Og = c.O / c.g;
  const [kh, kw] = c.k;
  const y = new Float64Array(c.N * c.O * Ho * Wo);
  for (let n = 0; n < c.N; n++) {
    for (let o = 0; o < c.O; o++) {
      const grp = Math.floor(o / Og);
      for (let ho = 0; ho < Ho; ho++) {
        for (let wo = 0; wo < Wo; wo++) {
          let s = b ? b[o] : 0;
          for (let ci = 0; ci < Cg; ci++) {
            const ch = grp * Cg + ci;
            for (let i = 0; i < kh; i++) {
              const h = ho * c.s[0] - c.p[0] + i * c.d[0];
              if (h < 0 || h >= c.H) continue;
              for (let j = 0; j < kw; j++) {
                const ww = wo * c.s[1] - c.p[1] + j * c.d[1];
                if (ww < 0 || ww >= c.W) continue;
                s += x[((n * c.C + ch) * c.H + h) * c.W + ww] * w[((o * Cg + ci) * kh + i) * kw + j];
              }
            }
          }
          y[((n * c.O + o) * Ho + ho) * Wo + wo] = s;
        }
      }
    }
  }
  return y;
}

/** Reference gradients of sum(y * dy) with respect to x, w and bias. */
function refConvBackward(c: Cfg, x: ArrayLike<number>, w: ArrayLike<number>, dy: ArrayLike<number>) {
  const [Ho, Wo] = outSize(c);
  const Cg = c.C / c.g;
  const Og = c.O / c.g;
  const [kh, kw] = c.k;
  const dx = new Float64Array(c.N * c.C * c.H * c.W);
  const dw = new Float64Array(c.O * Cg * kh * kw);
  const db = new Float64Array(c.O);
  for (let n = 0; n < c.N; n++) {
    for (let o = 0; o < c.O; o++) {
      const grp = Math.floor(o / Og);
      for (let ho = 0; ho < Ho; ho++) {
        for (let wo = 0; wo < Wo; wo++) {
          const g = dy[((n * c.O + o) * Ho + ho) * Wo + wo];
          db[o] += g;
          for (let ci = 0; ci < Cg; ci++) {
            const ch = grp * Cg + ci;
            for (let i = 0; i < kh; i++) {
              const h = ho * c.s[0] - c.p[0] + i * c.d[0];
              if (h < 0 || h >= c.H) continue;
              for (let j = 0; j < kw; j++) {
                const ww = wo * c.s[1] - c.p[1] + j * c.d[1];
                if (ww < 0 || ww >= c.W) continue;
                const xi = ((n * c.C + ch) * c.H + h) * c.W + ww;
                const wi = ((o * Cg + ci) * kh + i) * kw + j;
                dx[xi] += g * w[wi];
                dw[wi] += g * x[xi];
              }
            }
          }
        }
      }
    }
  }
  return { dx, dw, db };
}

const opts = (c: Cfg) => ({ stride: c.s, padding: c.p, dilation: c.d, groups: c.g });
const desc = (c: Cfg) =>
  `N${c.N} C${c.C} ${c.H}x${c.W} O${c.O} k${c.k.join('x')} s${c.s.join('x')} p${c.p.join('x')} d${c.d.join('x')} g${c.g}${c.bias ? ' bias' : ''}`;

/**
 * Run `checkOnce` with each variant the autotuner can pick for this geometry forced in turn ('tiled',
 * 'direct', 'row' where it fits, 'gemm' ...), so every candidate is tested on every backend, not only the winner.
 */
async function checkConfig(c: Cfg, seed: number, all = true): Promise<void> {
  const gpu = wq.gpu();
  if (!all) {
    // the generic kernels only (the configs that run every variant cover the others; the 'row'
    // blocks are specialised per width and take seconds each to compile on SwiftShader)
    await checkOnce(c, seed, 'generic');
    return;
  }
  const g = geomOf(c);
  const dirs = ['fwd', 'bwdData', 'bwdWeight'] as const;
  const cands = Object.fromEntries(dirs.map((d) => [d, gpu.tuner.candidates(ck.CONV_FAMILIES[d], { dir: d, g, bias: c.bias })]));
  for (const v of ['tiled', 'direct', 'row', 'lite', 'naive', 'gemm']) {
    if (!dirs.some((d) => cands[d].includes(v))) continue;
    for (const d of dirs) gpu.tuner.force(ck.CONV_FAMILIES[d].name, cands[d].includes(v) ? v : cands[d][0]);
    try {
      await checkOnce(c, seed, v);
    } finally {
      for (const d of dirs) gpu.tuner.force(ck.CONV_FAMILIES[d].name, null);
    }
  }
}

async function checkOnce(c: Cfg, seed: number, variant: string): Promise<void> {
  const [Ho, Wo] = outSize(c);
  const xs = [c.N, c.C, c.H, c.W];
  const ws = [c.O, c.C / c.g, c.k[0], c.k[1]];
  const xa = randArray(size(xs), seed);
  const wa = randArray(size(ws), seed + 1);
  const ba = c.bias ? randArray(c.O, seed + 2) : null;
  const dya = randArray(c.N * c.O * Ho * Wo, seed + 3);
  const x = wq.tensor(xa, xs, 'f32', true);
  const w = wq.tensor(wa, ws, 'f32', true);
  const b = ba ? wq.tensor(ba, [c.O], 'f32', true) : null;
  const y = wq.conv2d(x, w, b, opts(c));
  assert.deepEqual(y.shape, [c.N, c.O, Ho, Wo], desc(c));
  const what = `${desc(c)} [${variant}]`;
  const K = (c.C / c.g) * c.k[0] * c.k[1];
  assertClose(await y.data(), refConv(c, xa, wa, ba), 1e-4, 1e-4 * Math.sqrt(K), `${what}: forward`);
  const dy = wq.tensor(dya, y.shape);
  y.backward(dy);
  const ref = refConvBackward(c, xa, wa, dya);
  const Kx = (c.O / c.g) * c.k[0] * c.k[1];
  assertClose(await x.grad!.data(), ref.dx, 1e-4, 1e-4 * Math.sqrt(Kx), `${what}: dx`);
  assertClose(await w.grad!.data(), ref.dw, 1e-3, 1e-4 * Math.sqrt(c.N * Ho * Wo), `${what}: dw`);
  if (b) assertClose(await b.grad!.data(), ref.db, 1e-3, 1e-4 * Math.sqrt(c.N * Ho * Wo), `${what}: db`);
  for (const t of [x, w, b, y, dy]) t?.release();
}

describe('conv2d', () => {
  before(setup);

  it('forward and both gradients vs the direct reference (plain convolutions)', async () => {
    const cfgs = [
      cfg(1, 1, 5, 5, 1, 1, 1, 0, 1, 1, false),
      cfg(3, 3, 11, 9, 5, 3, 1, 1, 1, 1, true),
      cfg(3, 5, 13, 12, 7, 5, 2, 2, 1, 1, true),
      cfg(1, 7, 10, 11, 70, 3, 2, 1, 1, 1, false), // M = 70: two tile rows; K = 63: several K steps
      cfg(2, 3, 14, 13, 33, 3, 1, 0, 1, 1, true), // BM = 64 tile, 33 rows used
      cfg(3, 9, 20, 19, 17, 3, 1, 1, 1, 1, true), // many column tiles, BM = 32
      cfg(2, 3, 9, 10, 4, [3, 5], 1, [1, 2], 1, 1, true), // rectangular kernel and padding
      cfg(1, 2, 7, 7, 3, 7, 1, 0, 1, 1, false), // kernel = input: 1x1 output
    ];
    // every variant on the odd, multi-tile, rectangular (no row kernels: square only) and 1x1-output
    // shapes; generic on the rest
    for (let i = 0; i < cfgs.length; i++) await checkConfig(cfgs[i], 10 + 7 * i, [0, 1, 3, 6, 7].includes(i));
  });

  it('dilation, groups and depthwise', async () => {
    const cfgs = [
      cfg(2, 3, 11, 12, 5, 3, 1, 2, 2, 1, true), // dilation 2
      cfg(3, 6, 9, 8, 9, 3, 2, 1, 2, 3, false), // dilation 2, stride 2, groups 3
      cfg(3, 4, 8, 7, 6, 3, 1, 1, 1, 2, true), // groups 2
      cfg(2, 5, 9, 10, 5, 3, 1, 1, 1, 5, true), // depthwise
      cfg(2, 5, 9, 10, 10, 5, 2, 2, 1, 5, false), // depthwise, multiplier 2, stride 2
    ];
    for (let i = 0; i < cfgs.length; i++) await checkConfig(cfgs[i], 100 + 7 * i);
  });

  it('1x1 convolutions (pointwise fast path, strided, grouped)', async () => {
    const cfgs = [
      cfg(3, 5, 7, 9, 67, 1, 1, 0, 1, 1, true), // pointwise, two tile rows
      cfg(2, 6, 5, 5, 4, 1, 1, 0, 1, 2, false), // pointwise grouped
      cfg(2, 4, 9, 9, 8, 1, 2, 0, 1, 1, false), // 1x1 stride 2 (general path)
      cfg(1, 3, 4, 5, 2, 1, 1, 1, 1, 1, true), // 1x1 with padding (general path)
    ];
    for (let i = 0; i < cfgs.length; i++) await checkConfig(cfgs[i], 200 + 7 * i);
    assert.ok(ck.isPointwise({ ...geomOf(cfgs[0]) }));
    assert.ok(!ck.isPointwise({ ...geomOf(cfgs[2]) }));
  });

  it('weight gradient split over the batch (two-pass, deterministic)', async () => {
    const c = cfg(4, 16, 16, 16, 16, 3, 1, 1, 1, 1, true);
    const [splits] = ck.weightSplits(geomOf(c));
    assert.ok(splits > 1, `expected a split reduction, got ${splits}`);
    await checkConfig(c, 300);
    // the same inputs give bit-identical gradients
    const xs = [c.N, c.C, c.H, c.W];
    const ws = [c.O, c.C, 3, 3];
    const run = async () => {
      const x = wq.tensor(randArray(size(xs), 1), xs);
      const w = wq.tensor(randArray(size(ws), 2), ws, 'f32', true);
      const y = wq.conv2d(x, w, null, opts(c));
      wq.sum(y).backward();
      const g = await w.grad!.data();
      x.release();
      w.release();
      y.release();
      return g;
    };
    assert.deepEqual(await run(), await run());
  });

  it('gradCheck for x, w and bias on small configs', async () => {
    const small = [
      cfg(2, 3, 5, 4, 2, 3, 1, 1, 1, 1, true),
      cfg(1, 4, 6, 5, 4, 3, 2, 1, 2, 2, true),
      cfg(2, 2, 3, 3, 2, 1, 1, 0, 1, 1, true),
    ];
    for (const c of small) {
      const xs = [c.N, c.C, c.H, c.W];
      const ws = [c.O, c.C / c.g, c.k[0], c.k[1]];
      await gradCheck(
        ([x, w, b]) => wq.conv2d(x, w, b, opts(c)),
        ([x, w, b]) => refConv(c, x, w, b),
        [
          { data: randArray(size(xs), 5), shape: xs },
          { data: randArray(size(ws), 6), shape: ws },
          { data: randArray(c.O, 7), shape: [c.O] },
        ],
        { what: `conv2d ${desc(c)}` },
      );
    }
  });

  it('every candidate of every conv GEMM is covered: row variants exist for LeNet-like rows', () => {
    const gpu = wq.gpu();
    const g = geomOf(cfg(3, 3, 11, 9, 5, 3, 1, 1, 1, 1, true));
    for (const d of ['fwd', 'bwdData', 'bwdWeight'] as const) {
      const all = ck.CONV_FAMILIES[d].candidates(gpu, { dir: d, g, bias: true });
      // 'gemm' (im2col/col2im + the tuned matmul): both gradients, and the forward without bias
      assert.deepEqual(all, ['tiled', 'direct', 'row', 'lite', 'naive', ...(d === 'fwd' ? [] : ['gemm'])], d);
      const here = gpu.tuner.candidates(ck.CONV_FAMILIES[d], { dir: d, g, bias: true });
      assert.ok(here.every((v) => all.includes(v)) && here.includes('tiled') && here.includes('row'), `${d}: ${here}`);
      assert.ok(all.includes(ck.CONV_FAMILIES[d].generic(gpu, { dir: d, g, bias: true })));
    }
    assert.throws(() => {
      gpu.tuner.force('conv.fwd', 'row');
      try {
        wq.conv2d(wq.zeros([1, 2, 4, 4]), wq.zeros([2, 2, 1, 1]), null);
      } finally {
        gpu.tuner.force('conv.fwd', null);
      }
    }, /conv\.fwd: forced variant 'row' does not apply here/);
  });

  it('bad input names the op and the shapes', () => {
    const x = wq.zeros([2, 4, 5, 5]);
    const w = wq.zeros([6, 2, 3, 3]);
    const bad = (fn: () => unknown, re: RegExp) => assert.throws(fn, (e: Error) => /conv2d/.test(e.message) && re.test(e.message));
    bad(() => wq.conv2d(wq.zeros([4, 5, 5]), w, null), /rank 4.*\[4,5,5\]/);
    bad(() => wq.conv2d(x, wq.zeros([6, 2, 3]), null), /\[6,2,3\]/);
    bad(() => wq.conv2d(x, w, null), /channel mismatch.*C = 4.*2 \* 1/); // groups 1: w expects 2 channels
    bad(() => wq.conv2d(x, w, null, { groups: 3 }), /groups \(3\) must divide/);
    bad(() => wq.conv2d(x, wq.zeros([5, 2, 3, 3]), null, { groups: 2 }), /groups \(2\) must divide.*O \(5\)/);
    bad(() => wq.conv2d(x, wq.zeros([6, 4, 7, 7]), null), /larger than the padded input 5x5.*\[6,4,7,7\]/);
    bad(() => wq.conv2d(x, w, null, { groups: 2, stride: 0 }), /stride.*positive/);
    bad(() => wq.conv2d(x, w, null, { groups: 2, stride: -1 }), /stride/);
    bad(() => wq.conv2d(x, w, wq.zeros([5]), { groups: 2 }), /bias must be \[6\]/);
    bad(() => wq.conv2d(x, w, null, { groups: 2, padding: -1 }), /padding/);
    // the valid call works
    const y = wq.conv2d(x, w, null, { groups: 2, padding: 1 });
    assert.deepEqual(y.shape, [2, 6, 5, 5]);
    for (const t of [x, w, y]) t.release();
  });
});

function geomOf(c: Cfg): ck.ConvGeom {
  const [Ho, Wo] = outSize(c);
  return {
    N: c.N, C: c.C, H: c.H, W: c.W, O: c.O, kh: c.k[0], kw: c.k[1], sh: c.s[0], sw: c.s[1],
    ph: c.p[0], pw: c.p[1], dh: c.d[0], dw: c.d[1], groups: c.g, Ho, Wo,
  };
}
