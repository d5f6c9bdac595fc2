/**
 * Counter-based random numbers: element i of a draw with seed s is a pure function of (s, i), so a
 * draw is reproducible, independent of the dispatch layout, and needs no state on the GPU.
 *
 * The bits are two rounds of the PCG output permutation (O'Neill's "pcg_hash", a 32-bit
 * integer hash) over the counter, keyed by a hashed seed and a per-purpose stream number.
 * Floats take the top 24 bits: u = (h >> 8) * 2^-24 in [0, 1).
 */
import { grid1d } from '../gpu/index.ts';
import { type GBuf, type Gpu, mainSig, flatIndex, shapeError, Uniforms } from './common.ts';

export type RandomMode = 'uniform' | 'normal' | 'bernoulli';

const code = (mode: RandomMode) => /* wgsl */ `
struct P { n: u32, key: u32, a: f32, b: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
fn pcg(v: u32) -> u32 {
  let state = v * 747796405u + 2891336453u;
  let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
  return (word >> 22u) ^ word;
}
// 32 random bits for counter i in stream s (s = 0, 1, ...)
fn bits(i: u32, s: u32) -> u32 {
  return pcg(pcg(i ^ p.key) + s * 0x9e3779b9u + p.key);
}
// uniform in [0, 1)
fn unit(h: u32) -> f32 { return f32(h >> 8u) * (1.0 / 16777216.0); }
${mainSig()} {
  ${flatIndex()}
  if (i >= p.n) { return; }
  ${mode === 'uniform'
    ? 'y[i] = p.a + (p.b - p.a) * unit(bits(i, 0u));'
    : mode === 'bernoulli'
    ? 'y[i] = select(0.0, 1.0, unit(bits(i, 0u)) < p.a);'
    : `// Box-Muller: u1 in (0, 1] keeps the log finite
  let u1 = f32((bits(i, 0u) >> 8u) + 1u) * (1.0 / 16777216.0);
  let u2 = unit(bits(i, 1u));
  let r = sqrt(-2.0 * log(u1));
  y[i] = p.a + p.b * r * cos(6.283185307179586 * u2);`}
}`;

/** Hash a JS number seed (any integer, negative allowed) into a 32-bit key. */
export function seedKey(seed: number): number {
  if (!Number.isFinite(seed)) throw new Error(`webqat: random: seed must be a finite number, got ${seed}`);
  // fold the high bits of large integers in, then mix (splitmix-style finaliser, 32-bit)
  const lo = seed >>> 0;
  const hi = Math.floor(seed / 4294967296) >>> 0;
  let h = (lo ^ Math.imul(hi, 0x85ebca6b)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d) >>> 0;
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * Fill `y` (n f32 values) from the counter-based generator:
 *  uniform: a + (b - a) * u, u in [0, 1);  normal: a + b * N(0, 1);  bernoulli: 1 with probability a, else 0.
 */
export function random(gpu: Gpu, mode: RandomMode, y: GBuf, n: number, seed: number, a: number, b: number): void {
  if (mode !== 'uniform' && mode !== 'normal' && mode !== 'bernoulli') throw shapeError('random', `unknown mode '${mode}'`);
  if (n === 0) return;
  const pipe = gpu.pipeline(`random:${mode}`, () => code(mode));
  const u = new Uniforms().u32(n).u32(seedKey(seed)).f32(a).f32(b).done();
  gpu.dispatch(pipe, [y], u, grid1d(n, 256), mode);
}
