/**
 * Batch assembly on the GPU: gather the samples of one batch from a resident dataset chunk through
 * the epoch's sample order, apply a random crop with zero padding and a horizontal flip (seeded per
 * sample position), and normalise to f32: (x * scale - mean[c]) / std[c]. Labels are gathered
 * alongside. Source pixels are u8 (packed four to a u32 word, little-endian) or f32.
 *
 * A dataset too large for one storage binding is held in several chunks of whole samples; the
 * launcher is then called once per chunk and each call writes only the samples that chunk holds.
 */
import { grid1d } from '../gpu/index.ts';
import { type GBuf, type Gpu, mainSig, flatIndex, shapeError, Uniforms } from './common.ts';

export const AUGMENT_MAX_CHANNELS = 8;

export interface AugmentParams {
  batch: number;
  channels: number;
  height: number;
  width: number;
  /** position in `order` of the batch's first sample */
  start: number;
  /** the chunk holds samples [chunkStart, chunkStart + chunkCount) of the dataset */
  chunkStart: number;
  chunkCount: number;
  /** random crop: shift by up to `pad` pixels each way, zero fill (0 = no crop) */
  pad: number;
  /** random horizontal flip */
  flip: boolean;
  /** 32-bit seed; the draw for a sample depends on (seed, its position) only */
  seed: number;
  /** per-channel normalisation in the scaled domain */
  mean: readonly number[];
  std: readonly number[];
  /** 'u8': pixels / 255; 'f32': values as they are */
  source: 'u8' | 'f32';
}

const augmentCode = (source: 'u8' | 'f32') => /* wgsl */ `
struct P {
  n: u32, chw: u32, hw: u32, w: u32,
  h: u32, start: u32, lo: u32, count: u32,
  pad: i32, flip: u32, seed: u32, scale: f32,
  mean: array<vec4f, 2>,
  istd: array<vec4f, 2>,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> data: array<${source === 'u8' ? 'u32' : 'f32'}>;
@group(0) @binding(2) var<storage, read> order: array<u32>;
@group(0) @binding(3) var<storage, read> labelsIn: array<i32>;
@group(0) @binding(4) var<storage, read_write> xOut: array<f32>;
@group(0) @binding(5) var<storage, read_write> yOut: array<i32>;

fn hash(v: u32) -> u32 {
  var h = v;
  h ^= h >> 16u; h *= 0x7feb352du;
  h ^= h >> 15u; h *= 0x846ca68bu;
  h ^= h >> 16u;
  return h;
}

fn pixel(off: u32) -> f32 {
${source === 'u8'
    ? '  let word = data[off >> 2u];\n  return f32((word >> ((off & 3u) * 8u)) & 255u);'
    : '  return data[off];'}
}

${mainSig()} {
  ${flatIndex()}
  if (i >= p.n) { return; }
  let b = i / p.chw;
  let r0 = i - b * p.chw;
  let c = r0 / p.hw;
  let r1 = r0 - c * p.hw;
  let yy = r1 / p.w;
  let xx = r1 - yy * p.w;
  let pos = p.start + b;
  let s = order[pos];
  if (s < p.lo || s >= p.lo + p.count) { return; }
  let local = s - p.lo;

  let r = hash(p.seed ^ hash(pos * 0x9e3779b9u + 0x632be5abu));
  var sx = i32(xx);
  var sy = i32(yy);
  if (p.flip != 0u && (r & 0x10000u) != 0u) { sx = i32(p.w) - 1 - sx; }
  if (p.pad > 0) {
    let span = u32(2 * p.pad + 1);
    sx += i32(r % span) - p.pad;
    sy += i32((r >> 20u) % span) - p.pad;
  }
  var v = 0.0;
  if (sx >= 0 && sy >= 0 && sx < i32(p.w) && sy < i32(p.h)) {
    v = pixel(local * p.chw + c * p.hw + u32(sy) * p.w + u32(sx)) * p.scale;
  }
  xOut[i] = (v - p.mean[c / 4u][c % 4u]) * p.istd[c / 4u][c % 4u];
  if (r0 == 0u) { yOut[b] = labelsIn[s]; }
}`;

/**
 * Write batch `x` (f32 [batch, C, H, W]) and labels `y` (i32 [batch]) for the samples of positions
 * [start, start + batch) of `order` that lie in this chunk.
 * `data`: the chunk's pixels; `order`: u32 sample indices of the epoch; `labels`: i32 per dataset sample.
 */
export function augmentBatch(gpu: Gpu, data: GBuf, order: GBuf, labels: GBuf, x: GBuf, y: GBuf, p: AugmentParams): void {
  const { batch, channels: c, height: h, width: w } = p;
  const op = 'augmentBatch';
  if (![batch, c, h, w].every((d) => Number.isInteger(d) && d > 0)) {
    throw shapeError(op, `batch and sample shape must be positive integers, got batch ${batch}, sample [${c},${h},${w}]`);
  }
  if (c > AUGMENT_MAX_CHANNELS) throw shapeError(op, `at most ${AUGMENT_MAX_CHANNELS} channels, got ${c}`);
  if (p.mean.length !== c || p.std.length !== c) {
    throw shapeError(op, `mean/std need ${c} values (one per channel), got ${p.mean.length}/${p.std.length}`);
  }
  if (p.std.some((s) => !(s > 0))) throw shapeError(op, `std must be positive, got [${p.std.join(',')}]`);
  if (!Number.isInteger(p.pad) || p.pad < 0 || p.pad >= Math.max(h, w)) {
    throw shapeError(op, `crop padding must be an integer in [0, ${Math.max(h, w)}), got ${p.pad}`);
  }
  const chw = c * h * w;
  const n = batch * chw;
  if (x.size < n * 4) throw shapeError(op, `output x needs ${n * 4} bytes for [${batch},${c},${h},${w}], has ${x.size}`);
  if (y.size < batch * 4) throw shapeError(op, `output labels need ${batch * 4} bytes, has ${y.size}`);
  if (order.size < (p.start + batch) * 4) {
    throw shapeError(op, `order holds ${order.size / 4} positions, batch needs [${p.start}, ${p.start + batch})`);
  }
  const bytesPer = p.source === 'u8' ? 1 : 4;
  if (data.size < p.chunkCount * chw * bytesPer) {
    throw shapeError(op, `chunk of ${p.chunkCount} samples of [${c},${h},${w}] ${p.source} needs ${p.chunkCount * chw * bytesPer} bytes, has ${data.size}`);
  }
  const u = new Uniforms()
    .u32(n).u32(chw).u32(h * w).u32(w)
    .u32(h).u32(p.start).u32(p.chunkStart).u32(p.chunkCount)
    .i32(p.pad).u32(p.flip ? 1 : 0).u32(p.seed).f32(p.source === 'u8' ? 1 / 255 : 1)
    .align();
  for (let k = 0; k < 8; k++) u.f32(k < c ? p.mean[k] : 0);
  for (let k = 0; k < 8; k++) u.f32(k < c ? 1 / p.std[k] : 0);
  const pipe = gpu.pipeline(`augment:${p.source}`, () => augmentCode(p.source));
  gpu.dispatch(pipe, [data, order, labels, x, y], u.done(), grid1d(n, 256), op);
}
