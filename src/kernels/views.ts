/**
 * Data-moving views: one generic strided copy (serves permute/transpose, slice, pad and concat) and
 * gather with its deterministic scatter-add backward.
 *
 * Strided copy: the launch walks an iteration shape (rank <= 8). For iteration coordinate c,
 *   source coordinate  s_k = c_k + shift_k, valid when 0 <= s_k < bound_k for every k
 *   destination offset = outBase + sum c_k * outStride_k
 *   source offset      = inBase  + sum s_k * inStride_k
 * and writes the source element, or `value` where the source coordinate is out of bounds (padding).
 * Data is moved as raw 32-bit words, so one pipeline serves f32, i32 and u32.
 */
import { grid1d } from '../gpu/index.ts';
import { fmt, type GBuf, type Gpu, MAX_RANK, mainSig, flatIndex, shapeError, stridesOf, Uniforms } from './common.ts';

const stridedCode = () => /* wgsl */ `
struct P { n: u32, rank: u32, inBase: u32, outBase: u32,
  value: u32, pad0: u32, pad1: u32, pad2: u32,
  shape: array<vec4u, 2>, outStride: array<vec4u, 2>, inStride: array<vec4u, 2>,
  shift: array<vec4u, 2>, bound: array<vec4u, 2> }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read_write> y: array<u32>;
${mainSig()} {
  ${flatIndex()}
  if (i >= p.n) { return; }
  var rem = i;
  var src = p.inBase;
  var dst = p.outBase;
  var inside = true;
  for (var k = i32(p.rank) - 1; k >= 0; k--) {
    let d = p.shape[k / 4][k % 4];
    let c = rem % d;
    rem = rem / d;
    dst += c * p.outStride[k / 4][k % 4];
    let s = i32(c) + bitcast<i32>(p.shift[k / 4][k % 4]);
    if (s < 0 || s >= i32(p.bound[k / 4][k % 4])) {
      inside = false;
    } else {
      src += u32(s) * p.inStride[k / 4][k % 4];
    }
  }
  if (inside) {
    y[dst] = x[src];
  } else {
    y[dst] = p.value;
  }
}`;

export interface StridedCopy {
  /** iteration shape (number of elements written = its product) */
  shape: readonly number[];
  /** destination stride per iteration dim (elements) */
  outStride: readonly number[];
  /** source stride per iteration dim (elements) */
  inStride: readonly number[];
  /** source coordinate = iteration coordinate + shift (default 0) */
  shift?: readonly number[];
  /** source coordinate must lie in [0, bound) (default: the iteration shape, always inside) */
  bound?: readonly number[];
  inBase?: number;
  outBase?: number;
  /** raw 32-bit pattern written where the source is out of bounds */
  valueBits?: number;
}

/** Low-level strided copy; see the module comment. */
export function stridedCopy(gpu: Gpu, x: GBuf, y: GBuf, c: StridedCopy, what = 'stridedCopy'): void {
  const r = c.shape.length;
  if (r > MAX_RANK) throw shapeError(what, `rank ${r} > ${MAX_RANK} is not supported (shape ${fmt(c.shape)})`);
  const n = c.shape.reduce((s, d) => s * d, 1);
  if (n === 0) return;
  const pipe = gpu.pipeline('views:strided', stridedCode);
  const u = new Uniforms().u32(n).u32(r).u32(c.inBase ?? 0).u32(c.outBase ?? 0)
    .u32(c.valueBits ?? 0).u32(0).u32(0).u32(0)
    .arr8(c.shape, 1).arr8(c.outStride).arr8(c.inStride)
    .arr8((c.shift ?? []).map((v) => v >>> 0))
    .arr8(c.bound ?? c.shape, 1);
  gpu.dispatch(pipe, [x, y], u.done(), grid1d(n, 256), what);
}

/** The 32-bit pattern of `value` in `dtype`. */
export function valueBits(value: number, dtype: 'f32' | 'i32' | 'u32'): number {
  if (dtype === 'f32') return new Uint32Array(new Float32Array([value]).buffer)[0];
  return value >>> 0;
}

/** Check that `perm` is a permutation of 0..rank-1. */
export function checkPerm(op: string, shape: readonly number[], perm: readonly number[]): void {
  const ok = perm.length === shape.length &&
    perm.every((p) => Number.isInteger(p) && p >= 0 && p < shape.length) && new Set(perm).size === perm.length;
  if (!ok) throw shapeError(op, `perm [${perm.join(',')}] is not a permutation of the axes of shape ${fmt(shape)}`);
}

/** y = x with axes permuted: y.shape[k] = x.shape[perm[k]]. */
export function permute(gpu: Gpu, x: GBuf, shape: readonly number[], perm: readonly number[], y: GBuf): void {
  checkPerm('permute', shape, perm);
  const st = stridesOf(shape);
  const outShape = perm.map((p) => shape[p]);
  stridedCopy(gpu, x, y, { shape: outShape, outStride: stridesOf(outShape), inStride: perm.map((p) => st[p]) }, 'permute');
}

/** y = x[begin : begin + size] per axis (sizes already resolved, in range). */
export function slice(gpu: Gpu, x: GBuf, shape: readonly number[], begin: readonly number[], size: readonly number[], y: GBuf): void {
  const st = stridesOf(shape);
  const inBase = begin.reduce((s, b, k) => s + b * st[k], 0);
  stridedCopy(gpu, x, y, { shape: size, outStride: stridesOf(size), inStride: st, inBase }, 'slice');
}

/** y = x padded with `bits` (a raw 32-bit value): pads[k] = [before, after] (each >= 0). */
export function pad(gpu: Gpu, x: GBuf, shape: readonly number[], pads: readonly (readonly [number, number])[], bits: number, y: GBuf): void {
  const outShape = shape.map((d, k) => d + pads[k][0] + pads[k][1]);
  stridedCopy(gpu, x, y, {
    shape: outShape,
    outStride: stridesOf(outShape),
    inStride: stridesOf(shape),
    shift: pads.map((p) => -p[0]),
    bound: shape,
    valueBits: bits,
  }, 'pad');
}

/** Copy contiguous `x` (shape `shape`) into `y` (shape `outShape`) starting at `offset` along `axis`. */
export function copyInto(gpu: Gpu, x: GBuf, shape: readonly number[], y: GBuf, outShape: readonly number[], axis: number, offset: number): void {
  const ost = stridesOf(outShape);
  stridedCopy(gpu, x, y, { shape, outStride: ost, inStride: stridesOf(shape), outBase: offset * ost[axis] }, 'concat');
}

// ------------------------------------------------------------------ gather

const gatherCode = () => /* wgsl */ `
struct P { n: u32, nIdx: u32, dim: u32, inner: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read> idx: array<i32>;
@group(0) @binding(3) var<storage, read_write> y: array<u32>;
${mainSig()} {
  ${flatIndex()}
  if (i >= p.n) { return; }
  // y viewed as [outer, nIdx, inner]
  let inner = i % p.inner;
  let j = (i / p.inner) % p.nIdx;
  let outer = i / (p.inner * p.nIdx);
  let a = idx[j];
  if (a < 0 || u32(a) >= p.dim) {
    y[i] = 0u;
  } else {
    y[i] = x[(outer * p.dim + u32(a)) * p.inner + inner];
  }
}`;

/**
 * y[outer, j, inner] = x[outer, idx[j], inner], with x viewed as [outer, dim, inner] and y as
 * [outer, nIdx, inner]. Out-of-range indices (negative or >= dim) read as 0.
 */
export function gather(gpu: Gpu, x: GBuf, idx: GBuf, y: GBuf, outer: number, dim: number, inner: number, nIdx: number): void {
  const n = outer * nIdx * inner;
  if (n === 0) return;
  const pipe = gpu.pipeline('views:gather', gatherCode);
  const u = new Uniforms().u32(n).u32(nIdx).u32(dim).u32(inner).done();
  gpu.dispatch(pipe, [x, idx, y], u, grid1d(n, 256), 'gather');
}

const GATHER_TILE = 256;

const gatherBackCode = () => /* wgsl */ `
struct P { n: u32, nIdx: u32, dim: u32, inner: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read> idx: array<i32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;
var<workgroup> tile: array<i32, ${GATHER_TILE}>;
@compute @workgroup_size(${GATHER_TILE})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) l: u32) {
  let i = gid.x + gid.y * nwg.x * ${GATHER_TILE}u;
  // dx viewed as [outer, dim, inner]; each element sums, in index order, the g entries whose index hits it
  let inner = i % p.inner;
  let a = i32((i / p.inner) % p.dim);
  let outer = i / (p.inner * p.dim);
  var acc = 0.0;
  for (var t0 = 0u; t0 < p.nIdx; t0 += ${GATHER_TILE}u) {
    workgroupBarrier();
    if (t0 + l < p.nIdx) { tile[l] = idx[t0 + l]; }
    workgroupBarrier();
    if (i < p.n) {
      let m = min(${GATHER_TILE}u, p.nIdx - t0);
      for (var t = 0u; t < m; t++) {
        if (tile[t] == a) { acc += g[(outer * p.nIdx + t0 + t) * p.inner + inner]; }
      }
    }
  }
  if (i < p.n) { dx[i] = acc; }
}`;

/** Adjoint of gather: dx[outer, a, inner] = sum over j with idx[j] == a of g[outer, j, inner] (deterministic). */
export function gatherBackward(gpu: Gpu, g: GBuf, idx: GBuf, dx: GBuf, outer: number, dim: number, inner: number, nIdx: number): void {
  const n = outer * dim * inner;
  if (n === 0) return;
  const pipe = gpu.pipeline('views:gatherBackward', gatherBackCode);
  const u = new Uniforms().u32(n).u32(nIdx).u32(dim).u32(inner).done();
  gpu.dispatch(pipe, [g, idx, dx], u, grid1d(n, GATHER_TILE), 'gatherBackward');
}
