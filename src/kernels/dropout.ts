/**
 * Dropout: y = x · keep(i) / (1 - p), where keep(i) is drawn from a counter-based hash of
 * (seed, i), so the backward regenerates the very same mask from the seed instead of saving it
 * (dx = dy · keep(i) / (1 - p): the same kernel). The hash is two rounds of a 32-bit integer
 * mixer (xor-shift / multiply, "lowbias32" constants); the top 24 bits of the result are compared
 * with round(p·2^24), so the keep probability is exactly 1 - round(p·2^24)/2^24.
 * `dropoutMaskRef` is the bit-exact plain-TypeScript twin used by tests.
 */
import { grid1d } from '../gpu/index.ts';
import { flatIndex, type GBuf, type Gpu, mainSig, shapeError, Uniforms } from './common.ts';

const code = () => /* wgsl */ `
struct P { n: u32, key: u32, threshold: u32, scale: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
fn mix(v: u32) -> u32 {
  var h = v;
  h = h ^ (h >> 16u);
  h = h * 0x7feb352du;
  h = h ^ (h >> 15u);
  h = h * 0x846ca68bu;
  h = h ^ (h >> 16u);
  return h;
}
${mainSig()} {
  ${flatIndex()}
  if (i >= p.n) { return; }
  let h = mix(mix(i ^ p.key) + p.key);
  var v = 0.0;
  if ((h >> 8u) >= p.threshold) { v = x[i] * p.scale; }
  y[i] = v;
}`;

function mix(v: number): number {
  let h = v >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d) >>> 0;
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b) >>> 0;
  h ^= h >>> 16;
  return h >>> 0;
}

/** The 32-bit key a seed (any integer) maps to. */
export function dropoutKey(seed: number): number {
  const lo = seed >>> 0;
  const hi = Math.floor(seed / 4294967296) >>> 0;
  return mix((lo ^ Math.imul(hi, 0x9e3779b9) ^ 0xa511e9b3) >>> 0);
}

export const dropoutThreshold = (p: number) => Math.round(p * 16777216);

/** Plain-TypeScript mask (1 = kept) of the kernel, bit for bit. */
export function dropoutMaskRef(n: number, p: number, seed: number): Uint8Array {
  const key = dropoutKey(seed);
  const t = dropoutThreshold(p);
  const m = new Uint8Array(n);
  for (let i = 0; i < n; i++) m[i] = (mix(((mix((i ^ key) >>> 0) + key) >>> 0)) >>> 8) >= t ? 1 : 0;
  return m;
}

/** y = x · mask(seed) / (1 - p) over n elements (also the backward, with dy and dx). */
export function dropoutApply(gpu: Gpu, x: GBuf, y: GBuf, n: number, p: number, seed: number, what = 'dropout'): void {
  if (!(p >= 0 && p < 1)) throw shapeError(what, `p must be in [0, 1), got ${p}`);
  if (!Number.isInteger(seed)) throw shapeError(what, `seed must be an integer, got ${seed}`);
  if (n === 0) return;
  const u = new Uniforms().u32(n).u32(dropoutKey(seed)).u32(dropoutThreshold(p)).f32(1 / (1 - p)).done();
  gpu.dispatch(gpu.pipeline('dropout', code), [x, y], u, grid1d(n, 256), what);
}
