/**
 * Pooling over NCHW planes: max and average pooling with a kernel, stride and zero padding, and
 * global average pooling ([N, C, H, W] -> [N, C]).
 *
 *  - max forward: one thread per output; padded positions never win (they are -inf); ties keep
 *    the first position in row-major window order. The winning position (h·W + w inside its plane)
 *    is stored as i32 for the backward.
 *  - max backward (gather, no atomics): one thread per input pixel sums the gradients of the
 *    outputs whose window covers it and whose stored argmax is that pixel.
 *  - average: count_include_pad = true (PyTorch's default): every window divides by kh·kw,
 *    padded zeros included. Backward gathers dy / (kh·kw) from the covering windows.
 *  - global average: one thread per plane (a fixed-order sum), backward broadcasts.
 *
 * Max pooling has two variants per direction, chosen by the autotuner (`POOL_FAMILIES`,
 * src/gpu/tune.ts): 'window' (one thread per output, or per input pixel for the backward: any
 * kernel, stride and padding) and 'tile' (one thread per window, where stride = kernel and there is
 * no padding: no integer division per element, the backward writes each window once).
 */
import { bucket, grid1d, type TuneFamily } from '../gpu/index.ts';
import { flatIndex, type GBuf, type Gpu, mainSig, shapeError, Uniforms } from './common.ts';

export interface PoolGeom {
  N: number;
  C: number;
  H: number;
  W: number;
  kh: number;
  kw: number;
  sh: number;
  sw: number;
  ph: number;
  pw: number;
  Ho: number;
  Wo: number;
}

export function poolOutSize(size: number, k: number, stride: number, pad: number): number {
  return Math.floor((size + 2 * pad - k) / stride) + 1;
}

const STRUCT = `struct P {
  total: u32, H: u32, W: u32, Ho: u32,
  Wo: u32, kh: u32, kw: u32, sh: u32,
  sw: u32, ph: u32, pw: u32, scale: f32,
}`;

type Mode = 'maxFwd' | 'maxBwd' | 'avgFwd' | 'avgBwd';

function windowCode(mode: Mode): string {
  const head = `${STRUCT}
@group(0) @binding(0) var<uniform> p: P;`;
  if (mode === 'maxFwd' || mode === 'avgFwd') {
    const max = mode === 'maxFwd';
    return /* wgsl */ `${head}
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
${max ? '@group(0) @binding(3) var<storage, read_write> arg: array<i32>;' : ''}
${mainSig()} {
  ${flatIndex()}
  if (i >= p.total) { return; }
  let plane = i / (p.Ho * p.Wo);
  let r = i % (p.Ho * p.Wo);
  let h0 = i32(r / p.Wo) * i32(p.sh) - i32(p.ph);
  let w0 = i32(r % p.Wo) * i32(p.sw) - i32(p.pw);
  let base = plane * p.H * p.W;
  ${max ? 'var best = -3.402823e38; var at = -1;' : 'var s = 0.0;'}
  for (var a = 0; a < i32(p.kh); a++) {
    let h = h0 + a;
    if (h < 0 || h >= i32(p.H)) { continue; }
    for (var b = 0; b < i32(p.kw); b++) {
      let w = w0 + b;
      if (w < 0 || w >= i32(p.W)) { continue; }
      let v = x[base + u32(h) * p.W + u32(w)];
      ${max ? 'if (at < 0 || v > best) { best = v; at = h * i32(p.W) + w; }' : 's += v;'}
    }
  }
  ${max ? 'y[i] = best; arg[i] = at;' : 'y[i] = s * p.scale;'}
}`;
  }
  const max = mode === 'maxBwd';
  return /* wgsl */ `${head}
@group(0) @binding(1) var<storage, read> dy: array<f32>;
${max ? '@group(0) @binding(2) var<storage, read> arg: array<i32>;' : ''}
@group(0) @binding(${max ? 3 : 2}) var<storage, read_write> dx: array<f32>;
${mainSig()} {
  ${flatIndex()}
  if (i >= p.total) { return; }
  let plane = i / (p.H * p.W);
  let q = i % (p.H * p.W);
  let th = i32(q / p.W) + i32(p.ph);
  let tw = i32(q % p.W) + i32(p.pw);
  // outputs ho with ho*sh <= th <= ho*sh + kh - 1
  let hoLo = max(0, (th - i32(p.kh) + i32(p.sh)) / i32(p.sh));
  let hoHi = min(i32(p.Ho) - 1, th / i32(p.sh));
  let woLo = max(0, (tw - i32(p.kw) + i32(p.sw)) / i32(p.sw));
  let woHi = min(i32(p.Wo) - 1, tw / i32(p.sw));
  let base = plane * p.Ho * p.Wo;
  var s = 0.0;
  for (var ho = hoLo; ho <= hoHi; ho++) {
    for (var wo = woLo; wo <= woHi; wo++) {
      let o = base + u32(ho) * p.Wo + u32(wo);
      ${max ? 'if (arg[o] == i32(q)) { s += dy[o]; }' : 's += dy[o];'}
    }
  }
  dx[i] = ${max ? 's' : 's * p.scale'};
}`;
}

/**
 * Global average pooling: one thread per plane adds its hw values in order (no workgroup memory and
 * no barrier: CPU implementations switch between every invocation of a workgroup at each barrier,
 * which cost SwiftShader ~60 us per plane with the earlier 64-thread tree; planes are many, N·C).
 */
const gapCode = () => /* wgsl */ `
struct P { planes: u32, hw: u32, scale: f32, pad0: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let plane = gid.x + gid.y * nwg.x * 64u;
  if (plane >= p.planes) { return; }
  var s = 0.0;
  let b = plane * p.hw;
  for (var j = 0u; j < p.hw; j++) { s += x[b + j]; }
  y[plane] = s * p.scale;
}`;

const gapBwdCode = () => /* wgsl */ `
struct P { total: u32, hw: u32, scale: f32, pad0: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;
${mainSig()} {
  ${flatIndex()}
  if (i >= p.total) { return; }
  dx[i] = dy[i / p.hw] * p.scale;
}`;

/** Validate the pooling geometry (PyTorch's rules: padding at most half the kernel, output >= 1). */
export function checkPool(op: string, g: PoolGeom): void {
  for (const k of ['N', 'C', 'H', 'W', 'kh', 'kw', 'sh', 'sw'] as const) {
    if (!Number.isInteger(g[k]) || g[k] < 1) throw shapeError(op, `${k} must be a positive integer, got ${g[k]}`);
  }
  if (!Number.isInteger(g.ph) || !Number.isInteger(g.pw) || g.ph < 0 || g.pw < 0 || 2 * g.ph > g.kh || 2 * g.pw > g.kw) {
    throw shapeError(op, `padding [${g.ph},${g.pw}] must be >= 0 and at most half the kernel ${g.kh}x${g.kw}`);
  }
  if (g.Ho !== poolOutSize(g.H, g.kh, g.sh, g.ph) || g.Wo !== poolOutSize(g.W, g.kw, g.sw, g.pw) || g.Ho < 1 || g.Wo < 1) {
    throw shapeError(op, `inconsistent output size ${g.Ho}x${g.Wo} for input ${g.H}x${g.W}`);
  }
}

function uniforms(g: PoolGeom, total: number, scale: number): Uint8Array {
  return new Uniforms()
    .u32(total).u32(g.H).u32(g.W).u32(g.Ho)
    .u32(g.Wo).u32(g.kh).u32(g.kw).u32(g.sh)
    .u32(g.sw).u32(g.ph).u32(g.pw).f32(scale)
    .done();
}

/**
 * Non-overlapping max pooling (stride = kernel, no padding; LeNet's 2x2/2): one thread per window,
 * planes on the grid's y (and z) so the only index division left is row/column inside a plane,
 * done with a float reciprocal and an exact integer correction (CPU implementations scalarise
 * integer division, which dominated the generic kernels). The backward writes the whole window
 * (the gradient at the argmax, zeros elsewhere), and the windows past the last full one (H % kh
 * rows, W % kw columns) write zeros, so every dx element is written exactly once, no gather.
 */
const tileStruct = `struct P {
  H: u32, W: u32, Ho: u32, Wo: u32,
  kh: u32, kw: u32, wb: u32, nwin: u32,
  invWb: f32, planes: u32, pad0: u32, pad1: u32,
}`;

function tileCode(bwd: boolean): string {
  return /* wgsl */ `${tileStruct}
@group(0) @binding(0) var<uniform> p: P;
${bwd
    ? `@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> arg: array<i32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;`
    : `@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> arg: array<i32>;`}
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let r = wid.x * 64u + lid;
  let plane = wid.y + wid.z * 65535u;
  if (r >= p.nwin || plane >= p.planes) { return; }
  // r / wb with a float reciprocal, corrected to the exact quotient (r < 2^22)
  var bh = u32(f32(r) * p.invWb);
  if (bh * p.wb > r) { bh -= 1u; }
  if ((bh + 1u) * p.wb <= r) { bh += 1u; }
  let bw = r - bh * p.wb;
  let h0 = bh * p.kh;
  let w0 = bw * p.kw;
  let base = plane * p.H * p.W;
${bwd
    ? `  let full = bh < p.Ho && bw < p.Wo;
  var g = 0.0;
  var at = -1;
  if (full) {
    let o = (plane * p.Ho + bh) * p.Wo + bw;
    g = dy[o];
    at = arg[o];
  }
  for (var a = 0u; a < p.kh; a++) {
    let h = h0 + a;
    if (h >= p.H) { break; }
    for (var b = 0u; b < p.kw; b++) {
      let w = w0 + b;
      if (w >= p.W) { break; }
      let q = i32(h * p.W + w);
      dx[base + u32(q)] = select(0.0, g, q == at);
    }
  }`
    : `  var best = -3.402823e38;
  var at = -1;
  for (var a = 0u; a < p.kh; a++) {
    for (var b = 0u; b < p.kw; b++) {
      let q = (h0 + a) * p.W + w0 + b;
      let v = x[base + q];
      if (at < 0 || v > best) { best = v; at = i32(q); }
    }
  }
  let o = (plane * p.Ho + bh) * p.Wo + bw;
  y[o] = best;
  arg[o] = at;`}
}`;
}

/** True when the window-per-thread kernels apply: stride = kernel, no padding, planes of < 2^22 windows. */
export function isTiledPool(g: PoolGeom): boolean {
  return g.sh === g.kh && g.sw === g.kw && g.ph === 0 && g.pw === 0 && Math.ceil(g.H / g.kh) * Math.ceil(g.W / g.kw) < 1 << 22;
}

function tileLaunch(gpu: Gpu, g: PoolGeom, bwd: boolean, bufs: GBuf[], what: string): void {
  // forward: the Ho x Wo full windows; backward: every window that touches the plane (partial ones zero dx)
  const hb = bwd ? Math.ceil(g.H / g.kh) : g.Ho;
  const wb = bwd ? Math.ceil(g.W / g.kw) : g.Wo;
  const nwin = hb * wb;
  const planes = g.N * g.C;
  const u = new Uniforms()
    .u32(g.H).u32(g.W).u32(g.Ho).u32(g.Wo)
    .u32(g.kh).u32(g.kw).u32(wb).u32(nwin)
    .f32(1 / wb).u32(planes).u32(0).u32(0)
    .done();
  const pipe = gpu.pipeline(bwd ? 'pool:maxBwdTile' : 'pool:maxFwdTile', () => tileCode(bwd));
  gpu.dispatch(pipe, bufs, u, [Math.ceil(nwin / 64), Math.min(planes, 65535), Math.ceil(planes / 65535)], what);
}

/** The variants of max pooling (see the top of this file). */
export type PoolKind = 'window' | 'tile';
export type PoolDir = 'fwd' | 'bwd';
export interface PoolTuneShape {
  dir: PoolDir;
  g: PoolGeom;
}

function poolFamily(dir: PoolDir): TuneFamily<PoolTuneShape> {
  return {
    name: `pool.max.${dir}`,
    candidates: (_gpu, { g }) => (isTiledPool(g) ? ['tile', 'window'] : ['window']),
    shapeClass: ({ g }) =>
      `k${g.kh}x${g.kw}s${g.sh}x${g.sw}p${g.ph}x${g.pw}:NC${bucket(g.N * g.C)}:H${bucket(g.H)}:W${bucket(g.W)}`,
    generic: (_gpu, { g }) => (isTiledPool(g) ? 'tile' : 'window'),
    bench(gpu, { g }) {
      const nx = g.N * g.C * g.H * g.W;
      const ny = g.N * g.C * g.Ho * g.Wo;
      const bufs = [nx, ny, ny, nx].map((k, i) => gpu.pool.acquire(k * 4, `tune pool ${i}`));
      const [x, y, arg, dx] = bufs;
      return {
        run(v) {
          if (dir === 'fwd') maxPoolForward(gpu, g, x, y, arg, 'tune maxPool2d', v as PoolKind);
          else maxPoolBackward(gpu, g, y, arg, dx, 'tune maxPool2d', v as PoolKind);
        },
        dispose() {
          for (const b of bufs) gpu.pool.release(b);
        },
      };
    },
  };
}

/** The tuned families of max pooling (tests force each candidate in turn). */
export const POOL_FAMILIES: Readonly<Record<PoolDir, TuneFamily<PoolTuneShape>>> = {
  fwd: poolFamily('fwd'),
  bwd: poolFamily('bwd'),
};

function poolKind(gpu: Gpu, dir: PoolDir, g: PoolGeom, kind?: PoolKind): PoolKind {
  const k = kind ?? (gpu.tuner.pick(POOL_FAMILIES[dir], { dir, g }) as PoolKind);
  if (k === 'tile' && !isTiledPool(g)) throw new Error(`webqat: maxPool2d: internal: the 'tile' variant needs stride = kernel and no padding`);
  return k;
}

/** Max pooling forward: y [N, C, Ho, Wo] and the i32 argmax (position inside the H x W plane). */
export function maxPoolForward(gpu: Gpu, g: PoolGeom, x: GBuf, y: GBuf, argmax: GBuf, what = 'maxPool2d', kind?: PoolKind): void {
  checkPool(what, g);
  if (poolKind(gpu, 'fwd', g, kind) === 'tile') return tileLaunch(gpu, g, false, [x, y, argmax], what);
  const total = g.N * g.C * g.Ho * g.Wo;
  const pipe = gpu.pipeline('pool:maxFwd', () => windowCode('maxFwd'));
  gpu.dispatch(pipe, [x, y, argmax], uniforms(g, total, 1), grid1d(total, 256), what);
}

/** Max pooling backward: dx[i] = Σ dy[o] over outputs o whose window covers i and whose argmax is i. */
export function maxPoolBackward(gpu: Gpu, g: PoolGeom, dy: GBuf, argmax: GBuf, dx: GBuf, what = 'maxPool2d backward', kind?: PoolKind): void {
  checkPool(what, g);
  if (poolKind(gpu, 'bwd', g, kind) === 'tile') return tileLaunch(gpu, g, true, [dy, argmax, dx], what);
  const total = g.N * g.C * g.H * g.W;
  const pipe = gpu.pipeline('pool:maxBwd', () => windowCode('maxBwd'));
  gpu.dispatch(pipe, [dy, argmax, dx], uniforms(g, total, 1), grid1d(total, 256), what);
}

/** Average pooling forward (count_include_pad = true: divide by kh·kw). */
export function avgPoolForward(gpu: Gpu, g: PoolGeom, x: GBuf, y: GBuf, what = 'avgPool2d'): void {
  checkPool(what, g);
  const total = g.N * g.C * g.Ho * g.Wo;
  const pipe = gpu.pipeline('pool:avgFwd', () => windowCode('avgFwd'));
  gpu.dispatch(pipe, [x, y], uniforms(g, total, 1 / (g.kh * g.kw)), grid1d(total, 256), what);
}

export function avgPoolBackward(gpu: Gpu, g: PoolGeom, dy: GBuf, dx: GBuf, what = 'avgPool2d backward'): void {
  checkPool(what, g);
  const total = g.N * g.C * g.H * g.W;
  const pipe = gpu.pipeline('pool:avgBwd', () => windowCode('avgBwd'));
  gpu.dispatch(pipe, [dy, dx], uniforms(g, total, 1 / (g.kh * g.kw)), grid1d(total, 256), what);
}

/** y[plane] = mean of x over each of `planes` contiguous planes of `hw` values. */
export function globalAvgPoolForward(gpu: Gpu, planes: number, hw: number, x: GBuf, y: GBuf, what = 'globalAvgPool'): void {
  if (planes < 1 || hw < 1) throw shapeError(what, `needs a non-empty input, got ${planes} planes of ${hw}`);
  const pipe = gpu.pipeline('pool:gapFwd', gapCode);
  gpu.dispatch(pipe, [x, y], new Uniforms().u32(planes).u32(hw).f32(1 / hw).u32(0).done(), grid1d(planes, 64), what);
}

export function globalAvgPoolBackward(gpu: Gpu, planes: number, hw: number, dy: GBuf, dx: GBuf, what = 'globalAvgPool backward'): void {
  const total = planes * hw;
  const pipe = gpu.pipeline('pool:gapBwd', gapBwdCode);
  gpu.dispatch(pipe, [dy, dx], new Uniforms().u32(total).u32(hw).f32(1 / hw).u32(0).done(), grid1d(total, 256), what);
}
