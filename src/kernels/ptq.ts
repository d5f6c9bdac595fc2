/**
 * Post-training quantization kernels (MXQN, ALGORITHMS §1.6, §4): the fake quantizers used at
 * inference (fixed point and logarithmic with base 2^(1/m), signed or unsigned) with their
 * straight-through backward mask, and the two calibration statistics that never read a whole tensor
 * back: per-candidate quantization-error sums (for SQNR) and a log2-binned histogram of |x|.
 *
 * A quantizer is one vec4f `c` (see `ptqQuantizerVec` in autograd/ops/ptq.ts):
 *   c.x = 0 fixed point:  c.y = 2^f, c.z = lowest integer code, c.w = highest integer code
 *   c.x = 1 log unsigned / 2 log signed: c.y = m (levels per octave), c.z = top exponent code,
 *         c.w = lowest exponent code kept (below it: 0)
 *
 * Reductions are two-pass and deterministic: pass 1 writes per-workgroup partials, pass 2 combines
 * them in a fixed order and ADDS the result to an accumulator (calibration spans many batches).
 * The histogram counts in workgroup memory with integer atomics (no float atomics), so its result
 * does not depend on the order either.
 */
import { grid1d } from '../gpu/index.ts';
import { type GBuf, type Gpu, flatIndex, mainSig, shapeError, Uniforms } from './common.ts';

/** Shared WGSL: apply quantizer c to v. */
const QFN = /* wgsl */ `
fn qapply(v: f32, c: vec4f) -> f32 {
  if (c.x == 0.0) { return clamp(round(v * c.y), c.z, c.w) / c.y; }
  var a = abs(v);
  if (c.x == 1.0 && v < 0.0) { a = 0.0; }
  if (a == 0.0) { return 0.0; }
  let e = round(c.y * log2(a));
  if (e < c.w) { return 0.0; }
  let q = exp2(min(e, c.z) / c.y);
  return select(q, sign(v) * q, c.x == 2.0);
}`;

// ------------------------------------------------------------------------------ fake quantizer

const fwdCode = () => /* wgsl */ `
struct P { n: u32, pad0: u32, pad1: u32, pad2: u32, c: vec4f }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;
${QFN}
${mainSig()} {
  ${flatIndex()}
  if (i >= p.n) { return; }
  Y[i] = qapply(X[i], p.c);
}`;

const bwdCode = () => /* wgsl */ `
struct P { n: u32, pad0: u32, pad1: u32, pad2: u32, c: vec4f }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> G: array<f32>;
@group(0) @binding(3) var<storage, read_write> GX: array<f32>;
${mainSig()} {
  ${flatIndex()}
  if (i >= p.n) { return; }
  let v = X[i];
  GX[i] = select(0.0, G[i], v >= p.c.x && v <= p.c.y);
}`;

function checkVec(op: string, c: readonly number[]): void {
  if (c.length !== 4 || !c.every(Number.isFinite)) throw shapeError(op, `the quantizer needs 4 finite numbers, got [${c.join(', ')}]`);
}

/** y[i] = Q_c(x[i]) for n elements. */
export function ptqQuantize(gpu: Gpu, x: GBuf, y: GBuf, n: number, c: readonly number[]): void {
  checkVec('ptqQuantize', c);
  if (n === 0) return;
  const pipe = gpu.pipeline('ptq:quantize', fwdCode);
  const u = new Uniforms().u32(n).u32(0).u32(0).u32(0).f32(c[0]).f32(c[1]).f32(c[2]).f32(c[3]);
  gpu.dispatch(pipe, [x, y], u.done(), grid1d(n, 256), 'ptqQuantize');
}

/** Straight-through backward: gx = g·1[lo ≤ x ≤ hi] (the quantizer's representable range). */
export function ptqQuantizeBackward(gpu: Gpu, x: GBuf, g: GBuf, gx: GBuf, n: number, lo: number, hi: number): void {
  if (n === 0) return;
  const pipe = gpu.pipeline('ptq:quantize:bwd', bwdCode);
  const u = new Uniforms().u32(n).u32(0).u32(0).u32(0).f32(lo).f32(hi).f32(0).f32(0);
  gpu.dispatch(pipe, [x, g, gx], u.done(), grid1d(n, 256), 'ptqQuantize backward');
}

// ------------------------------------------------------------------------------ error sums

/** Most quantizers per error-sum dispatch (slot 0 holds Σx², slots 1..K hold Σ(x − Q_k(x))²). */
export const PTQ_MAX_CANDIDATES = 15;
const SLOTS = PTQ_MAX_CANDIDATES + 1;
const SWG = 64;
const SUM_CHUNK = 4096;

const sumPass1 = () => /* wgsl */ `
struct P { n: u32, k: u32, nChunks: u32, chunk: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> C: array<vec4f>;
@group(0) @binding(3) var<storage, read_write> part: array<f32>;
var<workgroup> sh: array<f32, ${SWG * SLOTS}>;
${QFN}
@compute @workgroup_size(${SWG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) l: u32, @builtin(num_workgroups) nwg: vec3u) {
  let w = wid.x + wid.y * nwg.x;
  var acc: array<f32, ${SLOTS}>;
  for (var k = 0u; k < ${SLOTS}u; k++) { acc[k] = 0.0; }
  if (w < p.nChunks) {
    let j1 = min(p.n, (w + 1u) * p.chunk);
    for (var j = w * p.chunk + l; j < j1; j += ${SWG}u) {
      let v = X[j];
      acc[0] += v * v;
      for (var k = 0u; k < p.k; k++) {
        let e = v - qapply(v, C[k]);
        acc[k + 1u] += e * e;
      }
    }
  }
  for (var k = 0u; k < ${SLOTS}u; k++) { sh[l * ${SLOTS}u + k] = acc[k]; }
  workgroupBarrier();
  for (var s = ${SWG / 2}u; s > 0u; s = s >> 1u) {
    if (l < s) {
      for (var k = 0u; k < ${SLOTS}u; k++) { sh[l * ${SLOTS}u + k] += sh[(l + s) * ${SLOTS}u + k]; }
    }
    workgroupBarrier();
  }
  if (l < ${SLOTS}u && w < p.nChunks) { part[w * ${SLOTS}u + l] = sh[l]; }
}`;

const sumPass2 = () => /* wgsl */ `
struct P { n: u32, k: u32, nChunks: u32, chunk: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> part: array<f32>;
@group(0) @binding(2) var<storage, read_write> acc: array<f32>;
@compute @workgroup_size(${SLOTS})
fn main(@builtin(local_invocation_index) l: u32) {
  if (l > p.k) { return; }
  var s = 0.0;
  for (var c = 0u; c < p.nChunks; c++) { s += part[c * ${SLOTS}u + l]; }
  acc[l] = acc[l] + s;
}`;

/**
 * acc[0] += Σ x², acc[1 + k] += Σ (x − Q_k(x))² for the K quantizers in `cands` (K vec4f, K ≤ 15).
 * `acc` holds at least K + 1 f32.
 */
export function ptqErrorSums(gpu: Gpu, x: GBuf, n: number, cands: GBuf, k: number, acc: GBuf): void {
  if (!Number.isInteger(k) || k < 0 || k > PTQ_MAX_CANDIDATES) {
    throw shapeError('ptqErrorSums', `1..${PTQ_MAX_CANDIDATES} quantizers per call, got ${k}`);
  }
  if (n === 0) return;
  const nChunks = Math.max(1, Math.ceil(n / SUM_CHUNK));
  const chunk = Math.ceil(n / nChunks);
  const u = new Uniforms().u32(n).u32(k).u32(nChunks).u32(chunk).done();
  const part = gpu.pool.acquire(nChunks * SLOTS * 4, 'ptqErrorSums partials');
  gpu.dispatch(gpu.pipeline('ptq:sums:p1', sumPass1), [x, cands, part], u, grid1d(nChunks, 1), 'ptqErrorSums');
  gpu.dispatch(gpu.pipeline('ptq:sums:p2', sumPass2), [part, acc], u, [1, 1, 1], 'ptqErrorSums');
  gpu.pool.release(part);
}

// ------------------------------------------------------------------------------ histogram

/** Histogram bins: bin 0 counts exact zeros; bin b ≥ 1 covers log2|x| ∈ [LO + (b−1)/PER, LO + b/PER), ends clamped. */
export const PTQ_HIST_BINS = 256;
export const PTQ_HIST_PER_OCTAVE = 4;
export const PTQ_HIST_LOG2_LO = -40;
const HWG = 256;
const HIST_CHUNK = 8192;

const histPass1 = () => /* wgsl */ `
struct P { n: u32, nChunks: u32, chunk: u32, pad: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> part: array<f32>;
var<workgroup> h: array<atomic<u32>, ${PTQ_HIST_BINS}>;
@compute @workgroup_size(${HWG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) l: u32, @builtin(num_workgroups) nwg: vec3u) {
  let w = wid.x + wid.y * nwg.x;
  atomicStore(&h[l], 0u);
  workgroupBarrier();
  if (w < p.nChunks) {
    let j1 = min(p.n, (w + 1u) * p.chunk);
    for (var j = w * p.chunk + l; j < j1; j += ${HWG}u) {
      let a = abs(X[j]);
      var b = 0;
      if (a > 0.0) {
        b = clamp(i32(floor(${PTQ_HIST_PER_OCTAVE}.0 * (log2(a) - (${PTQ_HIST_LOG2_LO}.0)))) + 1, 1, ${PTQ_HIST_BINS - 1});
      }
      atomicAdd(&h[b], 1u);
    }
  }
  workgroupBarrier();
  if (w < p.nChunks) { part[w * ${PTQ_HIST_BINS}u + l] = f32(atomicLoad(&h[l])); }
}`;

const histPass2 = () => /* wgsl */ `
struct P { n: u32, nChunks: u32, chunk: u32, pad: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> part: array<f32>;
@group(0) @binding(2) var<storage, read_write> acc: array<f32>;
@compute @workgroup_size(${HWG})
fn main(@builtin(local_invocation_index) l: u32) {
  var s = 0.0;
  for (var c = 0u; c < p.nChunks; c++) { s += part[c * ${PTQ_HIST_BINS}u + l]; }
  acc[l] = acc[l] + s;
}`;

/** acc[b] += number of x elements in bin b (PTQ_HIST_BINS f32 counts; exact below 2^24 per bin). */
export function ptqHistogram(gpu: Gpu, x: GBuf, n: number, acc: GBuf): void {
  if (n === 0) return;
  const nChunks = Math.max(1, Math.ceil(n / HIST_CHUNK));
  const chunk = Math.ceil(n / nChunks);
  const u = new Uniforms().u32(n).u32(nChunks).u32(chunk).u32(0).done();
  const part = gpu.pool.acquire(nChunks * PTQ_HIST_BINS * 4, 'ptqHistogram partials');
  gpu.dispatch(gpu.pipeline('ptq:hist:p1', histPass1), [x, part], u, grid1d(nChunks, 1), 'ptqHistogram');
  gpu.dispatch(gpu.pipeline('ptq:hist:p2', histPass2), [part, acc], u, [1, 1, 1], 'ptqHistogram');
  gpu.pool.release(part);
}
