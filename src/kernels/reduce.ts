/**
 * Reductions over any set of axes: sum, mean, max, min, argmax.
 * The input is viewed as [outer..., reduced...] through strides; each output element is produced by
 * one workgroup of 64 threads that stride over the reduced elements and combine in workgroup memory
 * (a deterministic tree, no atomics). Large full reductions use two passes (see reduceLaunch).
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
  scale: f32, pad0: u32, pad1: u32, pad2: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<${isArg ? 'i32' : 'f32'}>;
var<workgroup> sv: array<f32, ${WG}>;
var<workgroup> si: array<u32, ${WG}>;
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) l: u32, @builtin(num_workgroups) nwg: vec3u) {
  let o = wid.x + wid.y * nwg.x;
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
  for (var j = l; j < p.nRed; j += ${WG}u) {
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
    ${isArg ? 'y[o] = i32(si[0]);' : op === 'mean' ? 'y[o] = sv[0] * p.scale;' : 'y[o] = sv[0];'}
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

/**
 * Reduce `x` (shape `shape`) over `axes` into `y` (shape = kept dims, in order).
 * argmax/argmin write i32 indices into the flattened reduced sub-space.
 */
export function reduce(gpu: Gpu, op: ReduceOp, x: GBuf, shape: readonly number[], axes: readonly number[], y: GBuf): void {
  const st = stridesOf(shape);
  const keep = shape.map((_, i) => i).filter((i) => !axes.includes(i));
  const shapeO = keep.map((i) => shape[i]);
  const shapeR = axes.map((i) => shape[i]);
  if (shapeO.length > 8 || shapeR.length > 8) throw shapeError(op, `rank ${shape.length} > 8 is not supported`);
  const nOut = shapeO.reduce((s, d) => s * d, 1);
  const nRed = shapeR.reduce((s, d) => s * d, 1);
  const pipe = gpu.pipeline(`reduce:${op}`, () => code(op));
  const u = new Uniforms().u32(nOut).u32(nRed).u32(shapeO.length).u32(shapeR.length)
    .arr8(shapeO, 1).arr8(keep.map((i) => st[i])).arr8(shapeR, 1).arr8(axes.map((i) => st[i]))
    .f32(nRed > 0 ? 1 / nRed : 0).u32(0).u32(0).u32(0);
  const [gx, gy] = grid1d(nOut, 1);
  gpu.dispatch(pipe, [x, y], u.done(), [gx, gy], op);
}
