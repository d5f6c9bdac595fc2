/**
 * The row-reduction engine: a deterministic two-pass reduction of `rows` rows of `rowLen` elements,
 * specialised by a `RowReduceSpec` (bindings, a per-element `contrib` snippet, a per-row `finalize`
 * snippet). No atomics; partials combine in a fixed order. Used by the quantizer statistics and
 * gradient sums (quant.ts) and the shift offsets gradient (shift.ts). Two variants, a tuned family
 * (`ROWREDUCE_FAMILY`, src/gpu/tune.ts):
 *  - 'split' (generic): no workgroup memory, no barrier. Pass 1 runs S threads per row (S up to
 *    256, a power of two); thread s folds the row's elements j = s, s + S, ... (neighbouring threads
 *    read neighbouring elements) into one vec4 partial; pass 2 runs one thread per row that folds
 *    the row's S partials in order and calls `finalize`. CPU implementations switch between all
 *    invocations of a workgroup at every barrier (SwiftShader: several ms per workgroup).
 *  - 'tree': pass 1 gives each workgroup of 128 threads one (row, chunk) pair and reduces it through
 *    workgroup memory; pass 2 gives each row one workgroup that combines the chunk partials.
 */
import { bucket, grid1d, type TuneFamily } from '../gpu/index.ts';
import { type GBuf, type Gpu, Uniforms } from './common.ts';

/** A storage binding of a generated kernel: name, WGSL element type, access. */
export interface Binding {
  name: string;
  type: 'f32' | 'i32' | 'u32' | 'vec4f';
  rw?: boolean;
}

export interface RowReduceSpec {
  /** pipeline cache key (family:variant); both passes derive their keys from it */
  key: string;
  /** how partials combine: sum (vec4 add) or max (component-wise) */
  combine: 'sum' | 'max';
  /** pass-1 bindings, in order (the partials buffer is appended after them) */
  in1: readonly Binding[];
  /** WGSL body of `fn contrib(r: u32, j: u32) -> vec4f` (element j of row r); may write side outputs */
  contrib: string;
  /** pass-2 bindings after the partials (binding 1) */
  in2: readonly Binding[];
  /** WGSL body of `fn finalize(r: u32, acc: vec4f)`: writes the row's result(s) */
  finalize: string;
  /** extra WGSL helper functions visible to both passes */
  helpers?: string;
  /** extra WGSL helpers of pass 1 only (may use the pass-1 bindings) */
  pass1Helpers?: string;
}

const RWG = 128;

export const PSTRUCT = `struct P { rows: u32, rowLen: u32, nChunks: u32, chunk: u32, u: array<vec4u, 2>, f: vec4f, f2: vec4f }
@group(0) @binding(0) var<uniform> p: P;
fn U(k: u32) -> u32 { return p.u[k / 4u][k % 4u]; }`;

function decls(list: readonly Binding[], first: number): string {
  return list
    .map((b, k) => `@group(0) @binding(${first + k}) var<storage, ${b.rw ? 'read_write' : 'read'}> ${b.name}: array<${b.type}>;`)
    .join('\n');
}

const COMB = { sum: (a: string, b: string) => `${a} + ${b}`, max: (a: string, b: string) => `max(${a}, ${b})` };
const INIT = { sum: 'vec4f(0.0)', max: 'vec4f(-3.402823e38)' };

function pass1Code(s: RowReduceSpec): string {
  const comb = COMB[s.combine];
  return /* wgsl */ `
${PSTRUCT}
${decls(s.in1, 1)}
@group(0) @binding(${s.in1.length + 1}) var<storage, read_write> part: array<vec4f>;
var<workgroup> sh: array<vec4f, ${RWG}>;
fn sgnStar(v: f32) -> f32 { return select(-1.0, 1.0, v >= 0.0); }
${s.helpers ?? ''}
${s.pass1Helpers ?? ''}
fn contrib(r: u32, j: u32) -> vec4f {
${s.contrib}
}
@compute @workgroup_size(${RWG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) l: u32, @builtin(num_workgroups) nwg: vec3u) {
  let w = wid.x + wid.y * nwg.x;
  let r = w / p.nChunks;
  let c = w % p.nChunks;
  var acc = ${INIT[s.combine]};
  if (r < p.rows) {
    let j1 = min(p.rowLen, (c + 1u) * p.chunk);
    for (var j = c * p.chunk + l; j < j1; j += ${RWG}u) {
      acc = ${comb('acc', 'contrib(r, j)')};
    }
  }
  sh[l] = acc;
  workgroupBarrier();
  for (var s = ${RWG / 2}u; s > 0u; s = s >> 1u) {
    if (l < s) { sh[l] = ${comb('sh[l]', 'sh[l + s]')}; }
    workgroupBarrier();
  }
  if (l == 0u && r < p.rows) { part[w] = sh[0]; }
}`;
}

function pass2Code(s: RowReduceSpec): string {
  const comb = COMB[s.combine];
  return /* wgsl */ `
${PSTRUCT}
@group(0) @binding(1) var<storage, read> part: array<vec4f>;
${decls(s.in2, 2)}
var<workgroup> sh: array<vec4f, ${RWG}>;
${s.helpers ?? ''}
fn finalize(r: u32, acc: vec4f) {
${s.finalize}
}
@compute @workgroup_size(${RWG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) l: u32, @builtin(num_workgroups) nwg: vec3u) {
  let r = wid.x + wid.y * nwg.x;
  var acc = ${INIT[s.combine]};
  if (r < p.rows) {
    for (var k = l; k < p.nChunks; k += ${RWG}u) {
      acc = ${comb('acc', 'part[r * p.nChunks + k]')};
    }
  }
  sh[l] = acc;
  workgroupBarrier();
  for (var s = ${RWG / 2}u; s > 0u; s = s >> 1u) {
    if (l < s) { sh[l] = ${comb('sh[l]', 'sh[l + s]')}; }
    workgroupBarrier();
  }
  if (l == 0u && r < p.rows) { finalize(r, sh[0]); }
}`;
}

const SWG = 64;

function splitPass1Code(s: RowReduceSpec): string {
  const comb = COMB[s.combine];
  return /* wgsl */ `
${PSTRUCT}
${decls(s.in1, 1)}
@group(0) @binding(${s.in1.length + 1}) var<storage, read_write> part: array<vec4f>;
fn sgnStar(v: f32) -> f32 { return select(-1.0, 1.0, v >= 0.0); }
${s.helpers ?? ''}
${s.pass1Helpers ?? ''}
fn contrib(r: u32, j: u32) -> vec4f {
${s.contrib}
}
// p.nChunks = S threads per row
@compute @workgroup_size(${SWG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let w = gid.x + gid.y * nwg.x * ${SWG}u;
  let r = w / p.nChunks;
  if (r >= p.rows) { return; }
  let t = w - r * p.nChunks;
  var acc = ${INIT[s.combine]};
  for (var j = t; j < p.rowLen; j += p.nChunks) {
    acc = ${comb('acc', 'contrib(r, j)')};
  }
  part[w] = acc;
}`;
}

function splitPass2Code(s: RowReduceSpec): string {
  const comb = COMB[s.combine];
  return /* wgsl */ `
${PSTRUCT}
@group(0) @binding(1) var<storage, read> part: array<vec4f>;
${decls(s.in2, 2)}
${s.helpers ?? ''}
fn finalize(r: u32, acc: vec4f) {
${s.finalize}
}
@compute @workgroup_size(${SWG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let r = gid.x + gid.y * nwg.x * ${SWG}u;
  if (r >= p.rows) { return; }
  var acc = ${INIT[s.combine]};
  for (var k = 0u; k < p.nChunks; k++) {
    acc = ${comb('acc', 'part[r * p.nChunks + k]')};
  }
  finalize(r, acc);
}`;
}

/** Threads per row of the 'split' variant: a power of two, about 8 elements each, at most 256. */
export function splitThreadsFor(rowLen: number): number {
  return Math.min(256, bucket(Math.ceil(Math.max(rowLen, 1) / 8)));
}

/** Elements per pass-1 workgroup before the row is split into more chunks. */
const CHUNK = 2048;

/** Chunks per row: enough to spread long rows over many workgroups, at most 256 per row. */
export function chunksFor(rows: number, rowLen: number): number {
  const byLen = Math.ceil(Math.max(rowLen, 1) / CHUNK);
  const byGrid = Math.max(1, Math.floor((65535 * 64) / Math.max(rows, 1)));
  return Math.max(1, Math.min(byLen, 256, byGrid));
}

/**
 * Run a two-pass deterministic row reduction. `b1` / `b2` are the buffers of `spec.in1` / `spec.in2`
 * in order; `u` are up to 8 u32 parameters (`U(k)` in WGSL) and `f`, `f2` up to 8 f32 (`p.f`, `p.f2`).
 */
export function rowReduce(
  gpu: Gpu, spec: RowReduceSpec, rows: number, rowLen: number,
  b1: readonly GBuf[], b2: readonly GBuf[],
  u: readonly number[] = [], f: readonly number[] = [], what = spec.key, kind?: RowReduceKind,
): void {
  if (b1.length !== spec.in1.length || b2.length !== spec.in2.length) {
    throw new Error(`webqat: ${what}: internal: ${b1.length}/${b2.length} buffers for ${spec.in1.length}/${spec.in2.length} bindings`);
  }
  if (rows === 0) return;
  if ((kind ?? gpu.tuner.pick(ROWREDUCE_FAMILY, { spec, rows, rowLen, u, f })) === 'split') {
    const S = splitThreadsFor(rowLen);
    const uni = new Uniforms().u32(rows).u32(rowLen).u32(S).u32(0).arr8(u);
    for (let k = 0; k < 8; k++) uni.f32(f[k] ?? 0);
    const bytes = uni.done();
    const part = gpu.pool.acquire(rows * S * 16, `${what} partials`);
    gpu.dispatch(gpu.pipeline(`${spec.key}:s1`, () => splitPass1Code(spec)), [...b1, part], bytes, grid1d(rows * S, SWG), what);
    gpu.dispatch(gpu.pipeline(`${spec.key}:s2`, () => splitPass2Code(spec)), [part, ...b2], bytes, grid1d(rows, SWG), what);
    gpu.pool.release(part);
    return;
  }
  const nChunks = chunksFor(rows, rowLen);
  const chunk = Math.max(1, Math.ceil(rowLen / nChunks));
  const uni = new Uniforms().u32(rows).u32(rowLen).u32(nChunks).u32(chunk).arr8(u);
  for (let k = 0; k < 8; k++) uni.f32(f[k] ?? 0);
  const bytes = uni.done();
  const part = gpu.pool.acquire(rows * nChunks * 16, `${what} partials`);
  const p1 = gpu.pipeline(`${spec.key}:p1`, () => pass1Code(spec));
  gpu.dispatch(p1, [...b1, part], bytes, grid1d(rows * nChunks, 1), what);
  const p2 = gpu.pipeline(`${spec.key}:p2`, () => pass2Code(spec));
  gpu.dispatch(p2, [part, ...b2], bytes, grid1d(rows, 1), what);
  gpu.pool.release(part);
}

export type RowReduceKind = 'split' | 'tree';
export interface RowReduceTuneShape {
  spec: RowReduceSpec;
  rows: number;
  rowLen: number;
  u: readonly number[];
  f: readonly number[];
}

/**
 * The row reductions' variants, keyed by the spec and the bucketed rows x row length. Timing runs the
 * spec on scratch buffers of rows·rowLen words each (every spec reads its inputs within that for the
 * shapes it is called with; reads past a buffer's end are clamped by WebGPU, so timing stays safe).
 */
export const ROWREDUCE_FAMILY: TuneFamily<RowReduceTuneShape> = {
  name: 'rowreduce',
  candidates: () => ['split', 'tree'],
  shapeClass: ({ spec, rows, rowLen }) => `${spec.key}:R${bucket(rows)}:L${bucket(rowLen)}`,
  generic: () => 'split',
  bench(gpu, { spec, rows, rowLen, u, f }) {
    const words = Math.min(rows * rowLen + 2 * rows, Math.floor(gpu.maxBindingSize / 4));
    const b1 = spec.in1.map((b) => gpu.pool.acquire(words * 4, `tune rowreduce ${b.name}`));
    const b2 = spec.in2.map((b) => gpu.pool.acquire(Math.max(2 * rows, 4) * 4 * (b.type === 'vec4f' ? 4 : 1), `tune rowreduce ${b.name}`));
    return {
      run: (v) => rowReduce(gpu, spec, rows, rowLen, b1, b2, u, f, `tune ${spec.key}`, v as RowReduceKind),
      dispose() {
        for (const b of [...b1, ...b2]) gpu.pool.release(b);
      },
    };
  },
};
