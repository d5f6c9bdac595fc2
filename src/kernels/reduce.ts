/**
 * Reductions over any set of axes: sum, mean, max, min, argmax, argmin.
 * The input is viewed as [kept..., reduced...] through strides (adjacent axes of the same kind are
 * merged first, so a full or trailing reduction walks memory linearly). Each workgroup of 64 threads
 * strides over a range of the reduced elements and combines in workgroup memory (a deterministic
 * tree, no atomics). When there are few outputs and many reduced elements (e.g. 1M -> 1), the
 * reduced range is split into chunks: pass 1 writes one partial per (output, chunk), pass 2 reduces
 * the partials — the result is deterministic (fixed order) and the work spreads over many
 * workgroups. argmax/argmin always use one pass.
 */
import { grid1d } from '../gpu/index.ts';
import { fmt, type GBuf, type Gpu, shapeError, stridesOf, Uniforms } from './common.ts';

export type ReduceOp = 'sum' | 'mean' | 'max' | 'min' | 'argmax' | 'argmin';

const INIT: Record<ReduceOp, string> = {
  sum: '0.0', mean: '0.0', max: '-3.402823e38', min: '3.402823e38', argmax: '-3.402823e38', argmin: '3.402823e38',
};

const WG = 64;

const code = (op: ReduceOp) => {
  const isArg = op === 'argmax' || op === 'argmin';
  const better = op === 'argmax' || op === 'max' ? '>' : '<';
  const combine = op === 'sum' || op === 'mean' ? 'acc = acc + v;' : isArg
    ? `if (v ${better} acc || (v == acc && j < accI)) { acc = v; accI = j; }`
    : `acc = ${op}(acc, v);`;
  const combineShared = op === 'sum' || op === 'mean' ? 'sv[l] = sv[l] + sv[l + s];' : isArg
    ? `if (sv[l + s] ${better} sv[l] || (sv[l + s] == sv[l] && si[l + s] < si[l])) { sv[l] = sv[l + s]; si[l] = si[l + s]; }`
    : `sv[l] = ${op}(sv[l], sv[l + s]);`;
  return /* wgsl */ `
struct P { nOut: u32, nRed: u32, rankO: u32, rankR: u32,
  shapeO: array<vec4u, 2>, strideO: array<vec4u, 2>, shapeR: array<vec4u, 2>, strideR: array<vec4u, 2>,
  scale: f32, nChunks: u32, chunk: u32, pad0: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<${isArg ? 'i32' : 'f32'}>;
var<workgroup> sv: array<f32, ${WG}>;
var<workgroup> si: array<u32, ${WG}>;
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) l: u32, @builtin(num_workgroups) nwg: vec3u) {
  let w = wid.x + wid.y * nwg.x;
  // workgroup w reduces chunk c of output o: reduced indices [c * chunk, min((c + 1) * chunk, nRed))
  let o = w / p.nChunks;
  let c = w % p.nChunks;
  let jEnd = min(p.nRed, (c + 1u) * p.chunk);
  var base = 0u;
  if (o < p.nOut) {
    var rem = o;
    for (var k = i32(p.rankO) - 1; k >= 0; k--) {
      let d = p.shapeO[k / 4][k % 4];
      base += (rem % d) * p.strideO[k / 4][k % 4];
      rem = rem / d;
    }
  }
  var acc: f32 = ${INIT[op]};
  var accI: u32 = 0xffffffffu;
  for (var j = c * p.chunk + l; j < jEnd; j += ${WG}u) {
    var rem = j; var off = base;
    for (var k = i32(p.rankR) - 1; k >= 0; k--) {
      let d = p.shapeR[k / 4][k % 4];
      off += (rem % d) * p.strideR[k / 4][k % 4];
      rem = rem / d;
    }
    let v = x[off];
    ${combine}
  }
  sv[l] = acc; si[l] = accI;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s = s >> 1u) {
    if (l < s) { ${combineShared} }
    workgroupBarrier();
  }
  if (l == 0u && o < p.nOut) {
    ${isArg ? 'y[w] = i32(si[0]);' : op === 'mean' ? 'y[w] = sv[0] * p.scale;' : 'y[w] = sv[0];'}
  }
}`;
};

/** Normalise axes (negative allowed) and check them; returns sorted unique axes. */
export function normAxes(op: string, shape: readonly number[], axes?: number | readonly number[]): number[] {
  if (axes === undefined) return shape.map((_, i) => i);
  const list = typeof axes === 'number' ? [axes] : [...axes];
  const r = shape.length;
  const out = new Set<number>();
  for (const a of list) {
    const k = a < 0 ? a + r : a;
    if (!Number.isInteger(k) || k < 0 || k >= r) throw shapeError(op, `axis ${a} is out of range for shape ${fmt(shape)}`);
    out.add(k);
  }
  return [...out].sort((x, y) => x - y);
}

/** Merge adjacent axes of the same kind (both reduced or both kept) and drop size-1 axes. */
function collapse(shape: readonly number[], axes: readonly number[]) {
  const st = stridesOf(shape);
  const shapeO: number[] = [];
  const strideO: number[] = [];
  const shapeR: number[] = [];
  const strideR: number[] = [];
  let prev: boolean | null = null;
  for (let i = 0; i < shape.length; i++) {
    if (shape[i] === 1) continue;
    const red = axes.includes(i);
    const [sh, sd] = red ? [shapeR, strideR] : [shapeO, strideO];
    if (prev === red) {
      // contiguous with the previous kept/reduced axis: merge (row-major, so the inner stride survives)
      sh[sh.length - 1] *= shape[i];
      sd[sd.length - 1] = st[i];
    } else {
      sh.push(shape[i]);
      sd.push(st[i]);
    }
    prev = red;
  }
  return { shapeO, strideO, shapeR, strideR };
}

/** Reduced elements handled by one workgroup in the chunked first pass. */
const CHUNK = 4096;
/** Use the two-pass path when outputs are fewer than this and the reduction is long. */
const FEW_OUTPUTS = 64;

function launch(
  gpu: Gpu, op: ReduceOp, x: GBuf, y: GBuf,
  shapeO: number[], strideO: number[], shapeR: number[], strideR: number[],
  nChunks: number, chunk: number, scale: number,
): void {
  const nOut = shapeO.reduce((s, d) => s * d, 1);
  const nRed = shapeR.reduce((s, d) => s * d, 1);
  const pipe = gpu.pipeline(`reduce:${op}`, () => code(op));
  const u = new Uniforms().u32(nOut).u32(nRed).u32(shapeO.length).u32(shapeR.length)
    .arr8(shapeO, 1).arr8(strideO).arr8(shapeR, 1).arr8(strideR)
    .f32(scale).u32(nChunks).u32(chunk).u32(0);
  gpu.dispatch(pipe, [x, y], u.done(), grid1d(nOut * nChunks, 1), op);
}

/**
 * Reduce `x` (shape `shape`) over `axes` into `y` (shape = kept dims, in order).
 * argmax/argmin write i32 indices into the flattened reduced sub-space.
 */
export function reduce(gpu: Gpu, op: ReduceOp, x: GBuf, shape: readonly number[], axes: readonly number[], y: GBuf): void {
  if (shape.length > 8) throw shapeError(op, `rank ${shape.length} > 8 is not supported (shape ${fmt(shape)})`);
  for (const a of axes) {
    if (!Number.isInteger(a) || a < 0 || a >= shape.length) throw shapeError(op, `axis ${a} is out of range for shape ${fmt(shape)}`);
  }
  const { shapeO, strideO, shapeR, strideR } = collapse(shape, axes);
  const nOut = shapeO.reduce((s, d) => s * d, 1);
  const nRed = shapeR.reduce((s, d) => s * d, 1);
  const scale = nRed > 0 ? 1 / nRed : 0;
  const isArg = op === 'argmax' || op === 'argmin';
  if (isArg || nOut >= FEW_OUTPUTS || nRed < 4 * CHUNK) {
    launch(gpu, op, x, y, shapeO, strideO, shapeR, strideR, 1, Math.max(nRed, 1), scale);
    return;
  }
  // two passes: partials [nOut, nChunks], then reduce each row of partials
  const nChunks = Math.min(Math.ceil(nRed / CHUNK), 1024);
  const chunk = Math.ceil(nRed / nChunks);
  const partials = gpu.pool.acquire(nOut * nChunks * 4, `${op} partials`);
  const first: ReduceOp = op === 'mean' ? 'sum' : op;
  launch(gpu, first, x, partials, shapeO, strideO, shapeR, strideR, nChunks, chunk, 1);
  launch(gpu, op, partials, y, shapeO.length ? [nOut] : [], [nChunks], [nChunks], [1], 1, nChunks, scale);
  gpu.pool.release(partials);
}
