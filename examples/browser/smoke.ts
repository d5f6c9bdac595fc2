/**
 * Kernel self-test in the browser: runs a set of webqat ops on WebGPU and compares them with
 * plain-TypeScript references (forward and, where it matters, backward). Ops are looked up on the
 * module at run time, so the page keeps working while an op is missing (it is reported as skipped).
 * Results land in `window.__results` for the Playwright suite (e2e/smoke.e2e.mjs).
 */
import * as wq from '../../src/index.ts';
import type { Tensor } from '../../src/index.ts';

interface CheckResult {
  name: string;
  status: 'pass' | 'fail' | 'skip';
  ms: number;
  detail: string;
}

interface SmokeResults {
  done: boolean;
  adapter: string | null;
  runtime: string | null;
  isSoftware: boolean | null;
  error: string | null;
  checks: CheckResult[];
}

const results: SmokeResults = { done: false, adapter: null, runtime: null, isSoftware: null, error: null, checks: [] };
(window as unknown as { __results: SmokeResults }).__results = results;

// ---------------------------------------------------------------- plain-TypeScript references

const rng = wq.mulberry32;

function randArray(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const r = rng(seed);
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * r();
  return a;
}

const size = (s: readonly number[]) => s.reduce((p, d) => p * d, 1);

function strides(shape: readonly number[]): number[] {
  const st = new Array(shape.length).fill(1);
  for (let i = shape.length - 2; i >= 0; i--) st[i] = st[i + 1] * shape[i + 1];
  return st;
}

function broadcastShape(a: readonly number[], b: readonly number[]): number[] {
  const n = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    out.push(da === 1 ? db : da);
  }
  return out;
}

/** Index into a (broadcast) operand of shape `s` for the output multi-index `idx`. */
function bcastIndex(idx: number[], s: readonly number[]): number {
  const off = idx.length - s.length;
  const st = strides(s);
  let k = 0;
  for (let i = 0; i < s.length; i++) k += (s[i] === 1 ? 0 : idx[off + i]) * st[i];
  return k;
}

function unravel(i: number, shape: readonly number[]): number[] {
  const idx = new Array(shape.length).fill(0);
  for (let d = shape.length - 1; d >= 0; d--) {
    idx[d] = i % shape[d];
    i = Math.floor(i / shape[d]);
  }
  return idx;
}

function refBinary(a: Float32Array, sa: number[], b: Float32Array, sb: number[], f: (x: number, y: number) => number) {
  const so = broadcastShape(sa, sb);
  const out = new Float32Array(size(so));
  for (let i = 0; i < out.length; i++) {
    const idx = unravel(i, so);
    out[i] = f(a[bcastIndex(idx, sa)], b[bcastIndex(idx, sb)]);
  }
  return { out, shape: so };
}

/** Reduce `x` over one axis with `f` (initial value `init`). */
function refReduceAxis(x: Float32Array, shape: number[], axis: number, init: number, f: (acc: number, v: number) => number): Float32Array {
  const outer = size(shape.slice(0, axis));
  const n = shape[axis];
  const inner = size(shape.slice(axis + 1));
  const out = new Float32Array(outer * inner);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      let acc = init;
      for (let k = 0; k < n; k++) acc = f(acc, x[(o * n + k) * inner + i]);
      out[o * inner + i] = acc;
    }
  }
  return out;
}

function refMatmul(a: Float32Array, b: Float32Array, m: number, k: number, n: number, transB = false): Float32Array {
  const out = new Float32Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += a[i * k + p] * (transB ? b[j * k + p] : b[p * n + j]);
      out[i * n + j] = s;
    }
  }
  return out;
}

function refSoftmaxCE(logits: Float32Array, labels: Int32Array, n: number, c: number): { loss: number; grad: Float32Array } {
  const grad = new Float32Array(n * c);
  let loss = 0;
  for (let i = 0; i < n; i++) {
    let mx = -Infinity;
    for (let j = 0; j < c; j++) mx = Math.max(mx, logits[i * c + j]);
    let s = 0;
    for (let j = 0; j < c; j++) s += Math.exp(logits[i * c + j] - mx);
    const lse = mx + Math.log(s);
    loss += lse - logits[i * c + labels[i]];
    for (let j = 0; j < c; j++) grad[i * c + j] = (Math.exp(logits[i * c + j] - lse) - (j === labels[i] ? 1 : 0)) / n;
  }
  return { loss: loss / n, grad };
}

function refConv2d(
  x: Float32Array, xs: number[], w: Float32Array, ws: number[], bias: Float32Array | null,
  stride: number, pad: number,
): { out: Float32Array; shape: number[] } {
  const [n, c, h, wd] = xs;
  const [o, , kh, kw] = ws;
  const oh = Math.floor((h + 2 * pad - kh) / stride) + 1;
  const ow = Math.floor((wd + 2 * pad - kw) / stride) + 1;
  const out = new Float32Array(n * o * oh * ow);
  for (let b = 0; b < n; b++) {
    for (let oc = 0; oc < o; oc++) {
      for (let y = 0; y < oh; y++) {
        for (let xx = 0; xx < ow; xx++) {
          let s = bias ? bias[oc] : 0;
          for (let ic = 0; ic < c; ic++) {
            for (let i = 0; i < kh; i++) {
              for (let j = 0; j < kw; j++) {
                const iy = y * stride - pad + i;
                const ix = xx * stride - pad + j;
                if (iy < 0 || iy >= h || ix < 0 || ix >= wd) continue;
                s += x[((b * c + ic) * h + iy) * wd + ix] * w[((oc * c + ic) * kh + i) * kw + j];
              }
            }
          }
          out[((b * o + oc) * oh + y) * ow + xx] = s;
        }
      }
    }
  }
  return { out, shape: [n, o, oh, ow] };
}

/** Largest violation of |a - b| <= atol + rtol·|b|, or null when all are within tolerance. */
function compare(actual: ArrayLike<number>, expected: ArrayLike<number>, atol = 1e-4, rtol = 1e-3): string | null {
  if (actual.length !== expected.length) return `length ${actual.length}, expected ${expected.length}`;
  let worst = -1;
  let worstErr = 0;
  for (let i = 0; i < actual.length; i++) {
    const err = Math.abs(actual[i] - expected[i]);
    const over = err - (atol + rtol * Math.abs(expected[i]));
    if (!(over <= 0) && (worst < 0 || over > worstErr)) {
      worst = i;
      worstErr = Number.isNaN(over) ? Infinity : over;
    }
  }
  return worst < 0 ? null : `element ${worst}: got ${actual[worst]}, expected ${expected[worst]}`;
}

// ---------------------------------------------------------------- the checks

type Ops = Record<string, ((...a: any[]) => any) | undefined>;
const ops = wq as unknown as Ops;

class Skip extends Error {}

function need(...names: string[]): void {
  const missing = names.filter((n) => typeof ops[n] !== 'function');
  if (missing.length) throw new Skip(`not exported yet: ${missing.join(', ')}`);
}

function expectClose(what: string, actual: ArrayLike<number>, expected: ArrayLike<number>, atol?: number, rtol?: number): void {
  const bad = compare(actual, expected, atol, rtol);
  if (bad) throw new Error(`${what}: ${bad}`);
}

function expectShape(what: string, t: Tensor, shape: readonly number[]): void {
  if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
    throw new Error(`${what}: shape [${t.shape.join(',')}], expected [${shape.join(',')}]`);
  }
}

const checks: [string, () => Promise<string>][] = [
  ['add (broadcast [3,1,5] + [4,1])', async () => {
    need('tensor', 'add');
    const sa = [3, 1, 5], sb = [4, 1];
    const a = randArray(size(sa), 1), b = randArray(size(sb), 2);
    const y = ops.add!(wq.tensor(a, sa), wq.tensor(b, sb)) as Tensor;
    const ref = refBinary(a, sa, b, sb, (p, q) => p + q);
    expectShape('add', y, ref.shape);
    expectClose('add', await y.data(), ref.out, 1e-6, 1e-6);
    return `${ref.out.length} values`;
  }],
  ['mul (broadcast [2,3,1] * [1,3,7]) + backward', async () => {
    need('tensor', 'mul', 'sum');
    const sa = [2, 3, 1], sb = [1, 3, 7];
    const a = randArray(size(sa), 3), b = randArray(size(sb), 4);
    const ta = wq.tensor(a, sa, 'f32', true);
    const tb = wq.tensor(b, sb, 'f32', true);
    const y = ops.mul!(ta, tb) as Tensor;
    const ref = refBinary(a, sa, b, sb, (p, q) => p * q);
    expectShape('mul', y, ref.shape);
    expectClose('mul', await y.data(), ref.out, 1e-6, 1e-5);
    (ops.sum!(y) as Tensor).backward();
    // d sum(a*b) / da = b summed over the broadcast axes
    const ga = new Float32Array(size(sa));
    const gb = new Float32Array(size(sb));
    for (let i = 0; i < ref.out.length; i++) {
      const idx = unravel(i, ref.shape);
      ga[bcastIndex(idx, sa)] += b[bcastIndex(idx, sb)];
      gb[bcastIndex(idx, sb)] += a[bcastIndex(idx, sa)];
    }
    if (!ta.grad || !tb.grad) throw new Error('mul backward: no gradient');
    expectClose('mul grad a', await ta.grad.data(), ga, 1e-5, 1e-4);
    expectClose('mul grad b', await tb.grad.data(), gb, 1e-5, 1e-4);
    return 'forward + both gradients';
  }],
  ['reductions (sum / mean / max, axis and all)', async () => {
    need('tensor', 'sum', 'mean', 'max');
    const s = [3, 37, 5];
    const x = randArray(size(s), 5);
    const t = wq.tensor(x, s);
    const s1 = ops.sum!(t, 1) as Tensor;
    expectShape('sum axis 1', s1, [3, 5]);
    expectClose('sum axis 1', await s1.data(), refReduceAxis(x, s, 1, 0, (a, v) => a + v), 1e-4, 1e-4);
    const m = ops.mean!(t) as Tensor;
    const mean = x.reduce((a, v) => a + v, 0) / x.length;
    expectClose('mean (all)', await m.data(), [mean], 1e-5, 1e-4);
    const mx = ops.max!(t, -1) as Tensor;
    expectClose('max axis -1', await mx.data(), refReduceAxis(x, s, 2, -Infinity, Math.max), 0, 0);
    return 'sum, mean, max';
  }],
  ['matmul [17,33]x[33,9] and transB', async () => {
    need('tensor', 'matmul');
    const m = 17, k = 33, n = 9;
    const a = randArray(m * k, 6), b = randArray(k * n, 7), bt = randArray(n * k, 8);
    const y = ops.matmul!(wq.tensor(a, [m, k]), wq.tensor(b, [k, n])) as Tensor;
    expectShape('matmul', y, [m, n]);
    expectClose('matmul', await y.data(), refMatmul(a, b, m, k, n), 1e-4, 1e-3);
    const y2 = ops.matmul!(wq.tensor(a, [m, k]), wq.tensor(bt, [n, k]), { transB: true }) as Tensor;
    expectClose('matmul transB', await y2.data(), refMatmul(a, bt, m, k, n, true), 1e-4, 1e-3);
    return `${m}x${k}x${n}`;
  }],
  ['softmaxCrossEntropy [6,10] + backward', async () => {
    need('tensor', 'softmaxCrossEntropy');
    const n = 6, c = 10;
    const logits = randArray(n * c, 9, -3, 3);
    const labels = Int32Array.from({ length: n }, (_, i) => (i * 7 + 3) % c);
    const tl = wq.tensor(logits, [n, c], 'f32', true);
    const loss = ops.softmaxCrossEntropy!(tl, wq.tensor(labels, [n], 'i32')) as Tensor;
    const ref = refSoftmaxCE(logits, labels, n, c);
    expectClose('loss', await loss.data(), [ref.loss], 1e-5, 1e-4);
    loss.backward();
    if (!tl.grad) throw new Error('softmaxCrossEntropy backward: no gradient');
    expectClose('grad', await tl.grad.data(), ref.grad, 1e-6, 1e-4);
    return `loss ${ref.loss.toFixed(4)}`;
  }],
  ['conv2d [2,3,9,7] * [4,3,3,3], stride 2, padding 1, bias', async () => {
    need('tensor', 'conv2d');
    const xs = [2, 3, 9, 7], ws = [4, 3, 3, 3];
    const x = randArray(size(xs), 10), w = randArray(size(ws), 11), b = randArray(4, 12);
    const y = ops.conv2d!(wq.tensor(x, xs), wq.tensor(w, ws), wq.tensor(b, [4]), { stride: 2, padding: 1 }) as Tensor;
    const ref = refConv2d(x, xs, w, ws, b, 2, 1);
    expectShape('conv2d', y, ref.shape);
    expectClose('conv2d', await y.data(), ref.out, 1e-4, 1e-3);
    return `output [${ref.shape.join(',')}]`;
  }],
  ['maxPool2d [1,2,5,6] kernel 2', async () => {
    need('tensor', 'maxPool2d');
    const s = [1, 2, 5, 6];
    const x = randArray(size(s), 13);
    const y = ops.maxPool2d!(wq.tensor(x, s), { kernel: 2 }) as Tensor;
    const oh = 2, ow = 3;
    const ref = new Float32Array(2 * oh * ow);
    for (let c = 0; c < 2; c++) {
      for (let i = 0; i < oh; i++) {
        for (let j = 0; j < ow; j++) {
          let m = -Infinity;
          for (let a = 0; a < 2; a++) for (let b = 0; b < 2; b++) m = Math.max(m, x[(c * 5 + 2 * i + a) * 6 + 2 * j + b]);
          ref[(c * oh + i) * ow + j] = m;
        }
      }
    }
    expectShape('maxPool2d', y, [1, 2, oh, ow]);
    expectClose('maxPool2d', await y.data(), ref, 0, 0);
    return 'floor mode, odd height';
  }],
  ['packed LeNet-5 (BWN, TWN): exportPacked -> loadPacked equals the float model', async () => {
    need('createModel', 'quantizeModel', 'exportPacked', 'loadPacked');
    const out: string[] = [];
    for (const quant of ['bwn', 'twn']) {
      const model = wq.createModel('lenet5', { seed: 4 });
      wq.quantizeModel(model, wq.parseQuantSpec(quant));
      model.eval();
      const x = randArray(2 * 784, 14, 0, 1);
      const y = wq.noGrad(() => model.forward(wq.tensor(x, [2, 1, 28, 28])));
      const ref = await y.data();
      const ex = await wq.exportPacked(model, { model: 'lenet5', modelConfig: { seed: 4 }, quant, inputShape: [1, 28, 28], numClasses: 10 });
      if (ex.tensorBytes !== ex.report.packedBytes) throw new Error(`${quant}: file tensors ${ex.tensorBytes} B, size report ${ex.report.packedBytes} B`);
      const m = await wq.loadPacked(ex.bytes, { gpu: wq.gpu() });
      expectClose(`packed ${quant} logits`, await m.logits(x, { normalize: false }), ref, 1e-4, 1e-4);
      out.push(`${quant}: ${ex.bytes.length} B file, ${m.memory().bytes} B on the GPU`);
      m.dispose();
      model.release();
    }
    return out.join('; ');
  }],
];

// ---------------------------------------------------------------- runner + page

function row(r: CheckResult): void {
  const tr = document.createElement('tr');
  const cells = [r.name, r.status, r.ms.toFixed(0), r.detail];
  cells.forEach((text, i) => {
    const td = document.createElement('td');
    if (i === 1) td.className = r.status === 'pass' ? 'ok' : r.status;
    if (i === 3) {
      const code = document.createElement('code');
      code.textContent = text;
      td.appendChild(code);
    } else td.textContent = text;
    tr.appendChild(td);
  });
  document.getElementById('rows')!.appendChild(tr);
}

async function main(): Promise<void> {
  const adapterEl = document.getElementById('adapter')!;
  let gpu: wq.Gpu;
  try {
    gpu = await wq.init();
  } catch (e) {
    results.error = (e as Error).message;
    adapterEl.textContent = `No WebGPU: ${results.error}`;
    adapterEl.className = 'fail';
    return;
  }
  results.adapter = gpu.adapter.name;
  results.runtime = gpu.adapter.runtime;
  results.isSoftware = gpu.isSoftware;
  adapterEl.textContent = `Adapter: ${gpu.adapter.name}${gpu.isSoftware ? ' (software rendering: expect slow kernels)' : ''}`;
  for (const [name, fn] of checks) {
    const t0 = performance.now();
    let r: CheckResult;
    wq.beginScope(`smoke: ${name}`);
    try {
      const detail = await fn();
      r = { name, status: 'pass', ms: performance.now() - t0, detail };
    } catch (e) {
      const skip = e instanceof Skip;
      r = { name, status: skip ? 'skip' : 'fail', ms: performance.now() - t0, detail: (e as Error).message };
    } finally {
      wq.endScope();
    }
    results.checks.push(r);
    row(r);
  }
  const n = (s: CheckResult['status']) => results.checks.filter((c) => c.status === s).length;
  document.getElementById('summary')!.textContent = `${n('pass')} passed, ${n('fail')} failed, ${n('skip')} skipped`;
}

main()
  .catch((e) => {
    results.error = (e as Error).stack ?? String(e);
  })
  .finally(() => {
    results.done = true;
  });
