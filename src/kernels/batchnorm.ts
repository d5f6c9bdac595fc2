/**
 * Batch normalisation over [N, C, HW] (HW = 1 for [N, C] inputs), per channel c:
 *
 *  stats     training: mean and biased variance of the channel's N·HW values (one pass over the data:
 *            sums of x - K and (x - K)² with K the channel's first value, in a fixed order:
 *            deterministic; the two variants of the reduction are below),
 *            saved as mean and invstd = 1/sqrt(var + eps); the running statistics are updated in
 *            place, running = (1 - momentum)·running + momentum·batch, with the unbiased variance
 *            for runningVar (PyTorch's convention). eval: the saved values come from the running
 *            statistics.
 *  apply     y = (x - mean)·invstd·gamma + beta, one fused pass; with `relu`, y = max(·, 0) in the same pass.
 *  backward  one workgroup per channel reduces dbeta = Σ dy and dgamma = Σ dy·x̂ (x̂ = (x - mean)·invstd),
 *            then one elementwise pass:
 *              training  dx = gamma·invstd·(dy - (dbeta + x̂·dgamma) / (N·HW))
 *              eval      dx = gamma·invstd·dy
 *            With `relu` (BN followed by ReLU, fused), both passes read dy·[y > 0] (y: the fused output),
 *            so the ReLU's backward costs no dispatch and no temporary of its own.
 *  epilogues 'relu' (above) and 'dorefa': the DoReFa k-bit activation quantizer of SSPQ,
 *            y = round(clamp(z, 0, 1)·L)/L (L = 2^k − 1; L = 0: the clip alone) on z = BN(x), and
 *            in the backward dy·[0 ≤ z ≤ 1] (the STE through the clip), z recomputed from x with the
 *            forward's arithmetic. Bit-identical to quantDorefaAct(batchNorm(x)), one pass fewer each way.
 *
 * The two per-channel reductions (stats, and the backward's dbeta/dgamma) come in two variants, a
 * tuned family each (`BN_FAMILIES`, src/gpu/tune.ts):
 *  - 'tree':  one workgroup of 256 threads per channel, partial sums in workgroup memory, a tree of
 *             barriers. One dispatch; few workgroups when C is small.
 *  - 'split': no workgroup memory and no barrier. 256 threads per channel; thread s sums the values
 *             j = s, s + 256, ... (neighbouring threads read neighbouring words) into a partials
 *             buffer; a second dispatch, one thread per channel, adds its 256 partials in order.
 *             CPU implementations run barriers by switching between invocations (SwiftShader:
 *             5-30x slower than 'split' on ResNet/SSPQ shapes); GPUs get C·256 threads in flight.
 *             The generic variant.
 *
 * The saved statistics are a [2C] block (mean, then invstd). `apply` reads them from the same
 * binding as its output (they may sit in the output's buffer) to avoid aliasing a buffer as both
 * read-only and writable.
 */
import { bucket, grid1d, type TuneFamily } from '../gpu/index.ts';
import { flatIndex, type GBuf, type Gpu, mainSig, shapeError, Uniforms } from './common.ts';

const WG = 256;

const STRUCT = `struct P {
  C: u32, HW: u32, M: u32, total: u32, eps: f32, momentum: f32, unbias: f32, training: u32,
  statOff: u32, invHW: f32, invC: f32, sn: u32, sq: u32, levels: f32, pad1: u32, pad2: u32,
}`;

/**
 * Channel of flat element i of [N, C, HW]. CPU implementations scalarise integer division (it
 * dominated these elementwise passes), so below 2^22 elements the quotients come from a float
 * reciprocal corrected to the exact integer result (the float estimate is off by at most one there).
 */
const channelOf = `
fn fdiv(a: u32, d: u32, inv: f32) -> u32 {
  var q = u32(f32(a) * inv);
  q = select(q, q - 1u, q * d > a);
  q = select(q, q + 1u, (q + 1u) * d <= a);
  return q;
}
fn channelOf(i: u32) -> u32 {
  if (p.total < 4194304u) {
    let plane = fdiv(i, p.HW, p.invHW);
    return plane - fdiv(plane, p.C, p.invC) * p.C;
  }
  return (i / p.HW) % p.C;
}`;

/**
 * Per-channel loop over the N·HW values of channel c: thread l visits j = l, l + 256, ... as
 * (n, q) = (j / HW, j % HW), advanced incrementally (256 = sn·HW + sq) without dividing; `body`
 * sees the element index k.
 */
const channelLoop = (c: string, body: string, t = 'l') => `{
    var n = ${t} / p.HW;
    var q = ${t} % p.HW;
    for (var j = ${t}; j < p.M; j += ${WG}u) {
      let k = (n * p.C + ${c}) * p.HW + q;
      ${body}
      q += p.sq;
      n += p.sn;
      if (q >= p.HW) { q -= p.HW; n += 1u; }
    }
  }`;

/** Evaluation: saved = (running mean, 1/√(running var + eps)) per channel. */
const statsEvalCode = () => /* wgsl */ `
${STRUCT}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> runMean: array<f32>;
@group(0) @binding(2) var<storage, read> runVar: array<f32>;
@group(0) @binding(3) var<storage, read_write> saved: array<f32>;
${mainSig(64)} {
  ${flatIndex(64)}
  if (i >= p.C) { return; }
  saved[i] = runMean[i];
  saved[p.C + i] = 1.0 / sqrt(runVar[i] + p.eps);
}`;

const statsCode = () => /* wgsl */ `
${STRUCT}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> runMean: array<f32>;
@group(0) @binding(3) var<storage, read_write> runVar: array<f32>;
@group(0) @binding(4) var<storage, read_write> saved: array<f32>;
var<workgroup> sa: array<f32, ${WG}>;
var<workgroup> sb: array<f32, ${WG}>;
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) l: u32) {
  let c = wid.x;
  // one pass over the data: sums of d = x - K and d² with a per-channel shift K (the channel's first
  // value, within the data's spread of the mean, so the shifted sums do not cancel catastrophically)
  let K = x[c * p.HW];
  var s = 0.0;
  var s2 = 0.0;
  ${channelLoop('c', 'let d = x[k] - K; s += d; s2 = fma(d, d, s2);')}
  sa[l] = s;
  sb[l] = s2;
  workgroupBarrier();
  for (var t = ${WG / 2}u; t > 0u; t = t >> 1u) {
    if (l < t) { sa[l] = sa[l] + sa[l + t]; sb[l] = sb[l] + sb[l + t]; }
    workgroupBarrier();
  }
  if (l == 0u) {
    let ds = sa[0] / f32(p.M);
    let mean = K + ds;
    let v = max(sb[0] / f32(p.M) - ds * ds, 0.0);
    saved[c] = mean;
    saved[p.C + c] = 1.0 / sqrt(v + p.eps);
    runMean[c] = (1.0 - p.momentum) * runMean[c] + p.momentum * mean;
    runVar[c] = (1.0 - p.momentum) * runVar[c] + p.momentum * v * p.unbias;
  }
}`;

const RS = WG; // the tree's stride: channelLoop's (sn, sq) uniforms serve both
const RWG = 64;
/** Channel c's values j = s, s + RS, ... (thread s of the split variant), (n, q) advanced without dividing. */
const splitLoop = (body: string) => channelLoop('c', body, 's');
/** Thread s's sums (a, b) of `body` over its values, stored as its partial pair. */
const splitSums = (body: string) => `var a = 0.0;
  var b = 0.0;
  ${splitLoop(body)}
  part[(c * ${RS}u + s) * 2u] = a;
  part[(c * ${RS}u + s) * 2u + 1u] = b;`;
const splitHead = `@compute @workgroup_size(${RWG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) t: u32) {
  let c = wid.y;
  let s = wid.x * ${RWG}u + t;`;
/** One thread per channel adds its RS partial pairs in order into (a, b). */
const combineHead = `@compute @workgroup_size(${RWG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let c = gid.x;
  if (c >= p.C) { return; }
  var a = 0.0;
  var b = 0.0;
  for (var s = 0u; s < ${RS}u; s++) { a += part[(c * ${RS}u + s) * 2u]; b += part[(c * ${RS}u + s) * 2u + 1u]; }`;

const statsPartCode = () => /* wgsl */ `
${STRUCT}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> part: array<f32>;
${splitHead}
  let K = x[c * p.HW];
  ${splitSums('let d = x[k] - K; a += d; b = fma(d, d, b);')}
}`;

const statsCombineCode = () => /* wgsl */ `
${STRUCT}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> runMean: array<f32>;
@group(0) @binding(3) var<storage, read_write> runVar: array<f32>;
@group(0) @binding(4) var<storage, read_write> saved: array<f32>;
@group(0) @binding(5) var<storage, read> part: array<f32>;
${combineHead}
  let K = x[c * p.HW];
  let ds = a / f32(p.M);
  let mean = K + ds;
  let v = max(b / f32(p.M) - ds * ds, 0.0);
  saved[c] = mean;
  saved[p.C + c] = 1.0 / sqrt(v + p.eps);
  runMean[c] = (1.0 - p.momentum) * runMean[c] + p.momentum * mean;
  runVar[c] = (1.0 - p.momentum) * runVar[c] + p.momentum * v * p.unbias;
}`;

/**
 * The elementwise passes take V consecutive elements per thread. With V = 4 (H·W a multiple of 4)
 * the four share one channel, so its parameters are loaded and its index computed once per four
 * elements (every storage load is a per-lane gather on CPU implementations).
 */
/** The epilogue of the normalisation: none, a fused ReLU or the DoReFa activation quantizer. */
export type BnEpi = 'none' | 'relu' | 'dorefa';
const DOREFA = `fn dorefa(v: f32) -> f32 { let cl = clamp(v, 0.0, 1.0); return select(cl, round(cl * p.levels) / p.levels, p.levels > 0.0); }`;
const epiOut = (epi: BnEpi, z: string) => (epi === 'relu' ? `max(${z}, 0.0)` : epi === 'dorefa' ? `dorefa(${z})` : z);
/** Backward prelude of channel c: the forward's z = (x − mean)·zs + zb needs these ('dorefa'). */
const epiPre = (epi: BnEpi) => (epi === 'dorefa' ? 'let mz = saved[c]; let zs = saved[p.C + c] * gamma[c]; let zb = beta[c];' : '');
const epiTag = (epi: BnEpi) => (epi === 'none' ? '' : `:${epi}`);

const applyCode = (V: number, epi: BnEpi) => /* wgsl */ `
${STRUCT}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
${channelOf}
${DOREFA}
${mainSig()} {
  ${flatIndex()}
  let i0 = i * ${V}u;
  if (i0 >= p.total) { return; }
  let c = channelOf(i0);
  let mean = out[p.statOff + c];
  let scale = out[p.statOff + p.C + c] * gamma[c];
  let b = beta[c];
  for (var e = 0u; e < ${V}u; e++) { out[i0 + e] = ${epiOut(epi, '(x[i0 + e] - mean) * scale + b')}; }
}`;

/** dy as the normalisation sees it: masked by the fused ReLU's output where there is one. */
const dyAt = (epi: BnEpi, k: string) =>
  epi === 'relu' ? `select(0.0, dy[${k}], y[${k}] > 0.0)`
  : epi === 'dorefa' ? `select(0.0, dy[${k}], inClip((x[${k}] - mz) * zs + zb))`
  : `dy[${k}]`;
const IN_CLIP = 'fn inClip(z: f32) -> bool { return z >= 0.0 && z <= 1.0; }';
/** Extra bindings of an epilogue from binding `first` on: relu: the fused output y; dorefa: gamma (unless bound) and beta. */
const epiBindings = (epi: BnEpi, first: number, gammaBound: boolean) => {
  const names = epi === 'relu' ? ['y'] : epi === 'dorefa' ? [...(gammaBound ? [] : ['gamma']), 'beta'] : [];
  return names.map((n, i) => `@group(0) @binding(${first + i}) var<storage, read> ${n}: array<f32>;`).join('\n') + (epi === 'dorefa' ? `\n${IN_CLIP}` : '');
};

const bwdReduceCode = (epi: BnEpi) => /* wgsl */ `
${STRUCT}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read> saved: array<f32>;
@group(0) @binding(4) var<storage, read_write> dgamma: array<f32>;
@group(0) @binding(5) var<storage, read_write> dbeta: array<f32>;
${epiBindings(epi, 6, false)}
var<workgroup> sa: array<f32, ${WG}>;
var<workgroup> sb: array<f32, ${WG}>;
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) l: u32) {
  let c = wid.x;
  let mean = saved[c];
  let invstd = saved[p.C + c];
  ${epiPre(epi)}
  var a = 0.0;
  var b = 0.0;
  ${channelLoop('c', `let g = ${dyAt(epi, 'k')}; b += g; a += g * (x[k] - mean);`)}
  sa[l] = a;
  sb[l] = b;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s = s >> 1u) {
    if (l < s) { sa[l] = sa[l] + sa[l + s]; sb[l] = sb[l] + sb[l + s]; }
    workgroupBarrier();
  }
  if (l == 0u) {
    dgamma[c] = sa[0] * invstd;
    dbeta[c] = sb[0];
  }
}`;

const bwdPartCode = (epi: BnEpi) => /* wgsl */ `
${STRUCT}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read> saved: array<f32>;
@group(0) @binding(4) var<storage, read_write> part: array<f32>;
${epiBindings(epi, 5, false)}
${splitHead}
  let mean = saved[c];
  ${epiPre(epi)}
  ${splitSums(`let g = ${dyAt(epi, 'k')}; b += g; a += g * (x[k] - mean);`)}
}`;

const bwdCombineCode = () => /* wgsl */ `
${STRUCT}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> saved: array<f32>;
@group(0) @binding(2) var<storage, read_write> dgamma: array<f32>;
@group(0) @binding(3) var<storage, read_write> dbeta: array<f32>;
@group(0) @binding(4) var<storage, read> part: array<f32>;
${combineHead}
  dgamma[c] = a * saved[p.C + c];
  dbeta[c] = b;
}`;

const bwdApplyCode = (V: number, epi: BnEpi) => /* wgsl */ `
${STRUCT}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read> gamma: array<f32>;
@group(0) @binding(4) var<storage, read> saved: array<f32>;
@group(0) @binding(5) var<storage, read> dgamma: array<f32>;
@group(0) @binding(6) var<storage, read> dbeta: array<f32>;
@group(0) @binding(7) var<storage, read_write> dx: array<f32>;
${epiBindings(epi, 8, true)}
${channelOf}
${mainSig()} {
  ${flatIndex()}
  let i0 = i * ${V}u;
  if (i0 >= p.total) { return; }
  let c = channelOf(i0);
  let invstd = saved[p.C + c];
  let k = gamma[c] * invstd;
  ${epiPre(epi)}
  if (p.training != 0u) {
    let mean = saved[c];
    let db = dbeta[c];
    let dg = dgamma[c];
    let invM = 1.0 / f32(p.M);
    for (var e = 0u; e < ${V}u; e++) {
      let xhat = (x[i0 + e] - mean) * invstd;
      dx[i0 + e] = k * (${dyAt(epi, 'i0 + e')} - (db + xhat * dg) * invM);
    }
  } else {
    for (var e = 0u; e < ${V}u; e++) { dx[i0 + e] = k * ${dyAt(epi, 'i0 + e')}; }
  }
}`;

export interface BnGeom {
  N: number;
  C: number;
  HW: number;
}

function uni(g: BnGeom, o: { training: boolean; eps?: number; momentum?: number; statOff?: number; levels?: number }): Uint8Array {
  const M = g.N * g.HW;
  return new Uniforms()
    .u32(g.C).u32(g.HW).u32(M).u32(M * g.C)
    .f32(o.eps ?? 0).f32(o.momentum ?? 0).f32(M > 1 ? M / (M - 1) : 1).u32(o.training ? 1 : 0)
    .u32(o.statOff ?? 0).f32(1 / g.HW).f32(1 / g.C).u32(Math.floor(WG / g.HW))
    .u32(WG % g.HW).f32(o.levels ?? 0).u32(0).u32(0)
    .done();
}

function need(op: string, b: GBuf, n: number, name: string): void {
  if (b.size < n * 4) throw shapeError(op, `${name} buffer holds ${b.size} bytes, needs ${n * 4}`);
}

/**
 * Statistics into `saved` ([mean (C), invstd (C)]); in training also updates the running stats
 * in place. Run `batchNormApply` afterwards.
 */
export function batchNormStats(
  gpu: Gpu, g: BnGeom, x: GBuf, runMean: GBuf, runVar: GBuf, saved: GBuf,
  o: { training: boolean; eps: number; momentum: number }, what = 'batchNorm', kind?: BnReduceKind,
): void {
  if (o.training && g.N * g.HW < 2) throw shapeError(what, `training needs more than one value per channel, got N·H·W = ${g.N * g.HW}`);
  need(what, x, g.N * g.C * g.HW, 'x');
  need(what, saved, 2 * g.C, 'saved statistics');
  const u = uni(g, o);
  if (o.training && (kind ?? bnReduceKind(gpu, 'stats', g)) === 'split') {
    const part = gpu.pool.acquire(g.C * RS * 2 * 4, `${what} partial sums`);
    gpu.dispatch(gpu.pipeline('batchnorm:stats:part', statsPartCode), [x, part], u, [RS / RWG, g.C, 1], what);
    gpu.dispatch(gpu.pipeline('batchnorm:stats:combine', statsCombineCode), [x, runMean, runVar, saved, part], u, [Math.ceil(g.C / RWG), 1, 1], what);
    gpu.pool.release(part);
    return;
  }
  if (!o.training) {
    // evaluation: the saved statistics come from the running ones, one thread per channel (the
    // reduction kernels' 256-thread workgroups with barriers cost SwiftShader ~2 ms per channel
    // even when they only copy: 93 % of an SSPQ20 batch-1 evaluation forward)
    gpu.dispatch(gpu.pipeline('batchnorm:stats:eval', statsEvalCode), [runMean, runVar, saved], u, grid1d(g.C, 64), what);
    return;
  }
  gpu.dispatch(gpu.pipeline('batchnorm:stats', statsCode), [x, runMean, runVar, saved], u, [g.C, 1, 1], what);
}

/**
 * y = epilogue((x - mean)·invstd·gamma + beta); `out` holds y at [0, N·C·HW) and the saved stats at
 * `statOff`. `epi`: 'none', 'relu', or { dorefa: L } (the DoReFa quantizer with L = 2^k − 1 levels; 0: clip only).
 */
export function batchNormApply(
  gpu: Gpu, g: BnGeom, x: GBuf, gamma: GBuf, beta: GBuf, out: GBuf, statOff: number, what = 'batchNorm',
  epi: 'none' | 'relu' | { dorefa: number } = 'none',
): void {
  const total = g.N * g.C * g.HW;
  need(what, out, statOff + 2 * g.C, 'output');
  const V = g.HW % 4 === 0 ? 4 : 1;
  const e: BnEpi = typeof epi === 'string' ? epi : 'dorefa';
  const levels = typeof epi === 'string' ? 0 : epi.dorefa;
  const pipe = gpu.pipeline(`batchnorm:apply:v${V}${epiTag(e)}`, () => applyCode(V, e));
  gpu.dispatch(pipe, [x, gamma, beta, out], uni(g, { training: true, statOff, levels }), grid1d(total / V, 256), what);
}

/** The backward's view of the epilogue: the fused ReLU's output, or the DoReFa levels and beta. */
export type BnBwdEpi = null | { relu: GBuf } | { dorefa: number; beta: GBuf };

/**
 * dgamma, dbeta (per channel) and dx. `training` selects the batch-statistics gradient. `epi`: the
 * forward's epilogue (dy is the gradient of the epilogue's output).
 */
export function batchNormBackward(
  gpu: Gpu, g: BnGeom, x: GBuf, dy: GBuf, gamma: GBuf, saved: GBuf,
  dgamma: GBuf, dbeta: GBuf, dx: GBuf | null, training: boolean, what = 'batchNorm backward', epi: BnBwdEpi = null,
  kind?: BnReduceKind,
): void {
  const total = g.N * g.C * g.HW;
  const e: BnEpi = epi === null ? 'none' : 'relu' in epi ? 'relu' : 'dorefa';
  const u = uni(g, { training, levels: epi && 'dorefa' in epi ? epi.dorefa : 0 });
  const tag = epiTag(e);
  // the epilogue's extra bindings after each kernel's own (see epiBindings)
  const extra = (gammaBound: boolean): GBuf[] =>
    epi === null ? [] : 'relu' in epi ? [epi.relu] : [...(gammaBound ? [] : [gamma]), epi.beta];
  if ((kind ?? bnReduceKind(gpu, 'bwd', g)) === 'split') {
    const part = gpu.pool.acquire(g.C * RS * 2 * 4, `${what} partial sums`);
    gpu.dispatch(gpu.pipeline(`batchnorm:bwdReduce:part${tag}`, () => bwdPartCode(e)), [x, dy, saved, part, ...extra(false)], u, [RS / RWG, g.C, 1], what);
    gpu.dispatch(gpu.pipeline('batchnorm:bwdReduce:combine', bwdCombineCode), [saved, dgamma, dbeta, part], u, [Math.ceil(g.C / RWG), 1, 1], what);
    gpu.pool.release(part);
  } else {
    gpu.dispatch(gpu.pipeline(`batchnorm:bwdReduce${tag}`, () => bwdReduceCode(e)), [x, dy, saved, dgamma, dbeta, ...extra(false)], u, [g.C, 1, 1], what);
  }
  const V = g.HW % 4 === 0 ? 4 : 1;
  if (dx) gpu.dispatch(gpu.pipeline(`batchnorm:bwdApply:v${V}${tag}`, () => bwdApplyCode(V, e)), [x, dy, gamma, saved, dgamma, dbeta, dx, ...extra(true)], u, grid1d(total / V, 256), what);
}

/** The per-channel reductions' variants (see the top of this file). */
export type BnReduceKind = 'split' | 'tree';
export type BnReduceDir = 'stats' | 'bwd';
export interface BnTuneShape {
  dir: BnReduceDir;
  g: BnGeom;
}

function bnFamily(dir: BnReduceDir): TuneFamily<BnTuneShape> {
  return {
    name: `batchnorm.${dir}`,
    candidates: () => ['split', 'tree'],
    shapeClass: ({ g }) => `C${bucket(g.C)}:HW${bucket(g.HW)}:N${bucket(g.N)}`,
    generic: () => 'split',
    bench(gpu, { g }) {
      const n = g.N * g.C * g.HW;
      const sizes = [n, n, g.C, g.C, 2 * g.C, g.C, g.C, g.C];
      const bufs = sizes.map((k, i) => gpu.pool.acquire(k * 4, `tune batchnorm ${i}`));
      const [x, dy, runMean, runVar, saved, gamma, dgamma, dbeta] = bufs;
      return {
        run(v) {
          const kind = v as BnReduceKind;
          if (dir === 'stats') batchNormStats(gpu, g, x, runMean, runVar, saved, { training: true, eps: 1e-5, momentum: 0.1 }, 'tune batchNorm', kind);
          else batchNormBackward(gpu, g, x, dy, gamma, saved, dgamma, dbeta, null, true, 'tune batchNorm', null, kind);
        },
        dispose() {
          for (const b of bufs) gpu.pool.release(b);
        },
      };
    },
  };
}

/** The tuned families of the two per-channel reductions (tests force each candidate in turn). */
export const BN_FAMILIES: Readonly<Record<BnReduceDir, TuneFamily<BnTuneShape>>> = {
  stats: bnFamily('stats'),
  bwd: bnFamily('bwd'),
};

function bnReduceKind(gpu: Gpu, dir: BnReduceDir, g: BnGeom): BnReduceKind {
  return gpu.tuner.pick(BN_FAMILIES[dir], { dir, g }) as BnReduceKind;
}
