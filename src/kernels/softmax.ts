/**
 * Row-wise softmax family over the last axis of a [rows, cols] view: softmax, log-softmax, their
 * backward, the fused softmax cross-entropy (per-row loss + saved gradient) and the per-row
 * "argmax == label" count used for accuracy. A workgroup of 64 threads serves 64 / T rows with T
 * threads per row (T = the power of two >= cols, at most 64, so a 10-class row uses 16 threads and
 * a workgroup serves 4 rows); max and sum are segmented workgroup tree reductions (deterministic,
 * no atomics).
 */
import { grid1d } from '../gpu/index.ts';
import { type GBuf, type Gpu, mainSig, flatIndex, shapeError, Uniforms } from './common.ts';

const WG = 64;

/** Shared WGSL: uniform block, workgroup reductions and the row index. */
const HEAD = /* wgsl */ `
struct P { rows: u32, cols: u32, scale: f32, tpr: u32 }
@group(0) @binding(0) var<uniform> p: P;
var<workgroup> red: array<f32, ${WG}>;
// reductions over each segment of p.tpr threads (one row each); every thread gets its row's result
fn wgMax(l: u32, v: f32) -> f32 {
  red[l] = v;
  workgroupBarrier();
  for (var s = p.tpr / 2u; s > 0u; s = s >> 1u) {
    if (l % p.tpr < s) { red[l] = max(red[l], red[l + s]); }
    workgroupBarrier();
  }
  let r = red[l - l % p.tpr];
  workgroupBarrier();
  return r;
}
fn wgSum(l: u32, v: f32) -> f32 {
  red[l] = v;
  workgroupBarrier();
  for (var s = p.tpr / 2u; s > 0u; s = s >> 1u) {
    if (l % p.tpr < s) { red[l] = red[l] + red[l + s]; }
    workgroupBarrier();
  }
  let r = red[l - l % p.tpr];
  workgroupBarrier();
  return r;
}`;

const ROW_MAIN = `@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) l: u32, @builtin(num_workgroups) nwg: vec3u)`;

/** This thread's row and lane (ROW_INDEX), then max and sum(exp(x - max)) of the row (ROW_STATS). */
const ROW_INDEX = /* wgsl */ `
  let row = (wid.x + wid.y * nwg.x) * (${WG}u / p.tpr) + l / p.tpr;
  let lane = l % p.tpr;
  let ok = row < p.rows;`;
const ROW_STATS = /* wgsl */ `${ROW_INDEX}
  let base = row * p.cols;
  var m = -3.402823e38;
  if (ok) { for (var j = lane; j < p.cols; j += p.tpr) { m = max(m, x[base + j]); } }
  m = wgMax(l, m);
  var s = 0.0;
  if (ok) { for (var j = lane; j < p.cols; j += p.tpr) { s += exp(x[base + j] - m); } }
  s = wgSum(l, s);`;

const forwardCode = (log: boolean) => /* wgsl */ `
${HEAD}
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
${ROW_MAIN} {
  ${ROW_STATS}
  let ls = log(s);
  if (ok) {
    for (var j = lane; j < p.cols; j += p.tpr) {
      ${log ? 'y[base + j] = x[base + j] - m - ls;' : 'y[base + j] = exp(x[base + j] - m) / s;'}
    }
  }
}`;

/** Threads per row: the power of two >= cols, between 1 and the workgroup size. */
function threadsPerRow(cols: number): number {
  let t = 1;
  while (t < cols && t < WG) t *= 2;
  return t;
}

function rowUniforms(rows: number, cols: number, scale: number): Uint8Array {
  return new Uniforms().u32(rows).u32(cols).f32(scale).u32(threadsPerRow(cols)).done();
}

function rowGrid(rows: number, cols: number): [number, number] {
  return grid1d(Math.ceil(rows / (WG / threadsPerRow(cols))), 1);
}

function check(op: string, rows: number, cols: number): void {
  if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows < 0 || cols < 1) {
    throw shapeError(op, `needs rows >= 0 and cols >= 1, got [${rows},${cols}]`);
  }
}

/** y = softmax(x) (or log-softmax) over each row of x [rows, cols]. */
export function softmaxRows(gpu: Gpu, x: GBuf, y: GBuf, rows: number, cols: number, log: boolean): void {
  const op = log ? 'logSoftmax' : 'softmax';
  check(op, rows, cols);
  const pipe = gpu.pipeline(`softmax:${log ? 'log' : 'exp'}`, () => forwardCode(log));
  gpu.dispatch(pipe, [x, y], rowUniforms(rows, cols, 0), rowGrid(rows, cols), op);
}

const backwardCode = (log: boolean) => /* wgsl */ `
${HEAD}
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;
${ROW_MAIN} {
  ${ROW_INDEX}
  let base = row * p.cols;
  var d = 0.0;
  if (ok) {
    for (var j = lane; j < p.cols; j += p.tpr) {
      ${log ? 'd += g[base + j];' : 'd += g[base + j] * y[base + j];'}
    }
  }
  d = wgSum(l, d);
  if (ok) {
    for (var j = lane; j < p.cols; j += p.tpr) {
      ${log ? 'dx[base + j] = g[base + j] - exp(y[base + j]) * d;' : 'dx[base + j] = y[base + j] * (g[base + j] - d);'}
    }
  }
}`;

/**
 * Backward of softmaxRows from its output y and upstream g:
 * softmax: dx = y * (g - sum(g * y)); log-softmax: dx = g - exp(y) * sum(g).
 */
export function softmaxRowsBackward(gpu: Gpu, y: GBuf, g: GBuf, dx: GBuf, rows: number, cols: number, log: boolean): void {
  const op = log ? 'logSoftmax backward' : 'softmax backward';
  check(op, rows, cols);
  const pipe = gpu.pipeline(`softmax:back:${log ? 'log' : 'exp'}`, () => backwardCode(log));
  gpu.dispatch(pipe, [y, g, dx], rowUniforms(rows, cols, 0), rowGrid(rows, cols), op);
}

const crossEntropyCode = () => /* wgsl */ `
${HEAD}
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<i32>;
@group(0) @binding(3) var<storage, read_write> loss: array<f32>;
@group(0) @binding(4) var<storage, read_write> grad: array<f32>;
${ROW_MAIN} {
  ${ROW_STATS}
  var label = -1;
  if (ok) { label = labels[row]; }
  let valid = label >= 0 && u32(label) < p.cols;
  if (ok) {
    for (var j = lane; j < p.cols; j += p.tpr) {
      let onehot = select(0.0, 1.0, i32(j) == label);
      grad[base + j] = select(0.0, (exp(x[base + j] - m) / s - onehot) * p.scale, valid);
    }
    if (lane == 0u) {
      var r = 0.0;
      if (valid) { r = log(s) + m - x[base + u32(label)]; }
      loss[row] = r;
    }
  }
}`;

/**
 * Fused softmax cross-entropy forward: loss[r] = logsumexp(x[r]) - x[r, label[r]] and
 * grad[r] = (softmax(x[r]) - onehot(label[r])) * scale. Rows whose label is outside [0, cols)
 * get loss 0 and gradient 0.
 */
export function crossEntropy(gpu: Gpu, x: GBuf, labels: GBuf, loss: GBuf, grad: GBuf, rows: number, cols: number, scale: number): void {
  check('softmaxCrossEntropy', rows, cols);
  const pipe = gpu.pipeline('softmax:xent', crossEntropyCode);
  gpu.dispatch(pipe, [x, labels, loss, grad], rowUniforms(rows, cols, scale), rowGrid(rows, cols), 'softmaxCrossEntropy');
}

const hitsCode = () => /* wgsl */ `
struct P { rows: u32, cols: u32, pad0: u32, pad1: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<i32>;
@group(0) @binding(3) var<storage, read_write> hit: array<f32>;
${mainSig()} {
  ${flatIndex()}
  if (i >= p.rows) { return; }
  let base = i * p.cols;
  var best = 0u;
  var bv = x[base];
  for (var j = 1u; j < p.cols; j++) {
    let v = x[base + j];
    if (v > bv) { bv = v; best = j; }
  }
  hit[i] = select(0.0, 1.0, i32(best) == labels[i]);
}`;

/** hit[r] = 1 when the first arg-max of row r equals label[r], else 0 (one thread per row). */
export function argmaxHits(gpu: Gpu, x: GBuf, labels: GBuf, hit: GBuf, rows: number, cols: number): void {
  check('accuracyCount', rows, cols);
  const pipe = gpu.pipeline('softmax:hits', hitsCode);
  const u = new Uniforms().u32(rows).u32(cols).u32(0).u32(0).done();
  gpu.dispatch(pipe, [x, labels, hit], u, grid1d(rows, 256), 'accuracyCount');
}
