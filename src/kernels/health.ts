/**
 * Health checks that run on the GPU and are read back with the metrics: counts of non-finite
 * values (NaN, ±Inf, found from the exponent bits, so no compiler can fold the test away) and of
 * class labels outside [0, classes). Each workgroup reduces its count in workgroup memory and adds
 * it with one integer atomic (integer atomics only; the counts are exact and order-free).
 */
import { flatIndex, type GBuf, type Gpu, mainSig, Uniforms } from './common.ts';
import { grid1d } from '../gpu/index.ts';

const nonFiniteCode = () => /* wgsl */ `
struct P { n: u32, slot: u32, pad0: u32, pad1: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read_write> counts: array<atomic<u32>>;
var<workgroup> part: array<u32, 256>;
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  ${flatIndex()}
  var bad = 0u;
  if (i < p.n) { bad = select(0u, 1u, (x[i] & 0x7f800000u) == 0x7f800000u); }
  part[li] = bad;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s = s >> 1u) {
    if (li < s) { part[li] = part[li] + part[li + s]; }
    workgroupBarrier();
  }
  if (li == 0u && part[0] > 0u) { atomicAdd(&counts[p.slot], part[0]); }
}`;

/** counts[slot] += number of NaN / ±Inf values among the first n f32 values of x (counts: u32). */
export function nonFiniteCount(gpu: Gpu, x: GBuf, n: number, counts: GBuf, slot: number): void {
  if (!Number.isInteger(n) || n < 0 || n * 4 > x.size) throw new Error(`webqat: nonFiniteCount: ${n} values do not fit a ${x.size}-byte buffer`);
  if (!Number.isInteger(slot) || slot < 0 || (slot + 1) * 4 > counts.size) {
    throw new Error(`webqat: nonFiniteCount: slot ${slot} is outside the ${counts.size / 4}-entry count buffer`);
  }
  if (n === 0) return;
  const pipe = gpu.pipeline('health:nonfinite', nonFiniteCode);
  const u = new Uniforms().u32(n).u32(slot).u32(0).u32(0).done();
  gpu.dispatch(pipe, [x, counts], u, grid1d(n, 256), 'nonFiniteCount');
}

const labelCode = () => /* wgsl */ `
struct P { n: u32, classes: u32, pad0: u32, pad1: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> labels: array<i32>;
@group(0) @binding(2) var<storage, read_write> out: array<atomic<i32>>;
${mainSig()} {
  ${flatIndex()}
  if (i >= p.n) { return; }
  let l = labels[i];
  if (l < 0 || l >= i32(p.classes)) {
    atomicAdd(&out[0], 1);
    atomicMin(&out[1], l);
    atomicMax(&out[2], l);
  }
}`;

/**
 * Labels outside [0, classes): out (i32 [3]) gets out[0] += their count, out[1] = min(out[1], the
 * smallest), out[2] = max(out[2], the largest). Start from [0, 2^31-1, -2^31].
 */
export function labelRangeCheck(gpu: Gpu, labels: GBuf, n: number, classes: number, out: GBuf): void {
  if (!Number.isInteger(n) || n < 0 || n * 4 > labels.size) throw new Error(`webqat: labelRangeCheck: ${n} labels do not fit a ${labels.size}-byte buffer`);
  if (!Number.isInteger(classes) || classes < 1) throw new Error(`webqat: labelRangeCheck: classes must be a positive integer, got ${classes}`);
  if (out.size < 12) throw new Error(`webqat: labelRangeCheck: the output needs 3 i32 entries, got ${out.size} bytes`);
  if (n === 0) return;
  const pipe = gpu.pipeline('health:labels', labelCode);
  const u = new Uniforms().u32(n).u32(classes).u32(0).u32(0).done();
  gpu.dispatch(pipe, [labels, out], u, grid1d(n, 256), 'labelRangeCheck');
}
