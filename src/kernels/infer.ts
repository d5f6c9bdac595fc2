/**
 * Inference kernels for packed models (src/infer): they read binary (1 bit), ternary (2 bit) and
 * B-bit fixed-point or log weights straight from their u32 words and decode them in registers, so
 * no float copy of a packed weight ever exists in GPU memory.
 *
 *  - packedConv: direct convolution (NCHW, square or not, stride, zero padding; a linear layer is
 *    the 1×1 case on [N, in, 1, 1]). One thread per block of 8 output channels and 8 (4, 1) adjacent output pixels
 *    loops over C·kh·kw (each input value feeds 8 accumulators). The weight
 *    operand is `float` (raw f32 bits in the u32 array), `binary` (bit i of word ⌊i/32⌋, 1 = +1,
 *    0 = −1), `ternary` (bits 2i..2i+1 of word ⌊i/16⌋: 00 = 0, 01 = +1, 11 = −1), or B-bit codes
 *    at bits i·B.. of the words' bit stream: `fixed` (two's complement q → q) or `log` (sign bit
 *    B − 1, magnitude m in bits 0..B − 2 → ±2^(m − K), K = 2^(B−1) − 1, 0 for m = 0; the power is
 *    built from its exponent bits, so it is exact), the layouts of src/quant/pack.ts; the per-layer
 *    scale (2^−f, 2^(FSR−1)) multiplies in the epilogue. Epilogue: y = acc·mult[o] + bias[o] (mult has 1 or O entries: the packed
 *    scale, with batch norm folded in), + a residual, then ReLU and/or DoReFa k-bit activation.
 *  - channelAffine: a folded batch norm x·scale[c] + shift[c] with the optional k-bit activation.
 *  - globalAvgPool: the mean of each plane, one thread per plane.
 *  - activeShift: SSPQ's bilinear per-channel shift with a stride (the training kernel's forward).
 *  - xnorLinear: binary activations × binary weights: y = (K − 2·popcount(a ⊕ w))·mult[o] + bias[o]
 *    with rows of K bits packed in ⌈K/32⌉ words (countOneBits), ReLU when asked.
 *  - signPack: packs sign(x) (x ≥ 0 → 1) of [rows, K] floats into [rows, ⌈K/32⌉] words for xnorLinear.
 *  - maxPool: max over k×k windows with a stride (no padding), one thread per output.
 *  - softmax: one thread per row (class counts are small), max-subtracted.
 */
import { grid1d } from '../gpu/index.ts';
import { convOutSize, flatIndex, type GBuf, type Gpu, mainSig, shapeError, Uniforms } from './common.ts';

export type WeightMode = 'float' | 'binary' | 'ternary';
/** B-bit code kinds (fixed: 2..16 bits, log: 2..8 bits) */
export type CodeMode = 'fixed' | 'log';
/** How the weight words of packedConv are laid out: a mode, or B-bit codes of a kind. */
export type WeightFormat = WeightMode | { kind: CodeMode; bits: number };

interface Fmt {
  kind: WeightMode | CodeMode;
  bits: number;
  /** pipeline key part and label */
  tag: string;
}

const CODE_RANGE: Record<CodeMode, [number, number]> = { fixed: [2, 16], log: [2, 8] };

function fmtOf(f: WeightFormat, what = 'packedConv'): Fmt {
  if (typeof f === 'string') {
    if (f !== 'float' && f !== 'binary' && f !== 'ternary') throw shapeError(what, `unknown weight mode '${f}'`);
    return { kind: f, bits: BITS[f], tag: f };
  }
  const r = CODE_RANGE[f.kind];
  if (!r) throw shapeError(what, `unknown weight code kind '${f.kind}'`);
  if (!Number.isInteger(f.bits) || f.bits < r[0] || f.bits > r[1]) throw shapeError(what, `${f.kind} weights need bits ${r[0]}..${r[1]}, got ${f.bits}`);
  return { kind: f.kind, bits: f.bits, tag: `${f.kind}${f.bits}` };
}

export interface ConvGeom {
  N: number;
  C: number;
  H: number;
  W: number;
  O: number;
  kh: number;
  kw: number;
  stride: number;
  pad: number;
}

export function convOut(g: ConvGeom): { Ho: number; Wo: number } {
  return { Ho: convOutSize(g.H, g.kh, g.stride, g.pad, 1), Wo: convOutSize(g.W, g.kw, g.stride, g.pad, 1) };
}

/** u32 words holding `n` weights in a mode (B-bit codes: ⌈n·B/32⌉). */
export function wordsFor(mode: WeightFormat, n: number): number {
  if (typeof mode !== 'string') return Math.ceil((n * fmtOf(mode, 'wordsFor').bits) / 32);
  return mode === 'float' ? n : mode === 'binary' ? Math.ceil(n / 32) : Math.ceil(n / 16);
}

const DECODE: Record<WeightMode | CodeMode, string> = {
  float: 'return bitcast<f32>(wts[i]);',
  // B-bit codes: the 32-bit window that starts at the code, decoded from its low bits
  fixed: 'return dec(fetch(i));',
  log: 'return dec(fetch(i));',
  binary: 'return select(-1.0, 1.0, ((wts[i >> 5u] >> (i & 31u)) & 1u) == 1u);',
  // 00 → 0, 01 → +1, 11 → −1 (10 is rejected when the file is loaded)
  ternary: 'let b = (wts[i >> 4u] >> ((i & 15u) * 2u)) & 3u; return f32(b & 1u) * (1.0 - f32(b >> 1u) * 2.0);',
};

/** output channels per thread; adjacent output pixels per thread are 8, 4 or 1 (outputs narrower than 4, e.g. a linear layer) */
const OB = 8;

/**
 * How a conv kernel reads its weights:
 *  - `each`: one decode (a load) per weight and output channel (float weights; wide kernels);
 *  - `row`: per (c, ky) and output channel, the kw weights of the kernel row come in one 32-bit
 *    window of the packed words (two loads), decoded by shifts (binary/ternary, kw ≤ 32 / 16);
 *  - `chan`: 1×1 kernels and linear layers: a 32-bit window holds the weights of 32 (binary) or
 *    16 (ternary) consecutive input channels of an output channel (two loads per window).
 */
export type ConvPath = 'each' | 'row' | 'chan';

/** bits per weight in the packed words */
const BITS: Record<WeightMode, number> = { float: 32, binary: 1, ternary: 2 };

export function convPath(mode: WeightFormat, kh: number, kw: number): ConvPath {
  const f = fmtOf(mode, 'convPath');
  if (f.kind === 'float') return 'each';
  if (kh === 1 && kw === 1) return 'chan';
  return kw * f.bits <= 32 ? 'row' : 'each';
}

/** Kernel widths the sliding-window variant is compiled for (stride 1): the window is unrolled. */
export const SLIDE_MAX_KW = 7;

/**
 * `slide` > 0 (stride 1, kw = slide ≤ SLIDE_MAX_KW, paths each/row): per (c, ky) the PX + kw − 1
 * input values under a thread's pixels are loaded once into registers and reused by every kx,
 * instead of one guarded load per (pixel, kx).
 */
const convCode = (fmt: Fmt, PX: number, path: ConvPath, slide = 0) => {
  const mode = fmt.kind;
  const qs = Array.from({ length: PX }, (_, q) => q);
  const lanes = ['x', 'y', 'z', 'w'];
  const bits = fmt.bits;
  // every accumulator is its own variable and every index a constant: a private array indexed at run
  // time lives in memory on CPU adapters (llvmpipe, SwiftShader), making each multiply-add a load and a store
  const accs = qs.map((q) => `  var a${q}0 = vec4f(0.0);\n  var a${q}1 = vec4f(0.0);`).join('\n');
  const pixels = (indent: string) => qs.map((q) => `${indent}{
${indent}  let ix = ix0 + ${q}i * sx;
${indent}  let xv = select(0.0, x[xr + u32(clamp(ix, 0, xmax))], ix >= 0 && ix <= xmax);
${indent}  a${q}0 += xv * w0;
${indent}  a${q}1 += xv * w1;
${indent}}`).join('\n');
  const store = (q: number, j: number) => `a${q}${j >> 2}.${lanes[j & 3]}`;
  const epi = qs.map((q) => `  if (ox0 + ${q}u < p.Wo) {
    let r = row + ox0 + ${q}u;
${Array.from({ length: OB }, (_, j) => `    if (${j}u < on) { out(yb + ${j}u * plane + r, o0 + ${j}u, ${store(q, j)}); }`).join('\n')}
  }`).join('\n');
  const js = Array.from({ length: OB }, (_, j) => j);
  // the windows of the 8 output channels (rows past O read row O − 1; their outputs are not stored)
  const windows = (at: string) => js.map((j) => `let b${j} = fetch(min(o0 + ${j}u, p.O - 1u) * ck + ${at});`).join(' ');
  const fromWindows = (sh: string) =>
    `let w0 = vec4f(dec(b0 >> ${sh}), dec(b1 >> ${sh}), dec(b2 >> ${sh}), dec(b3 >> ${sh}));
        let w1 = vec4f(dec(b4 >> ${sh}), dec(b5 >> ${sh}), dec(b6 >> ${sh}), dec(b7 >> ${sh}));`;
  let loop: string;
  // sliding window: v0..v(PX+K-2) = the row's inputs at ox0 - pad + 0.., then every (kx, q) reads v(q+kx)
  const K = slide;
  const windowLoads = (indent: string) => Array.from({ length: PX + K - 1 }, (_, t) =>
    `${indent}let v${t} = select(0.0, x[xr + u32(clamp(ix0 + ${t}i, 0, xmax))], ix0 + ${t}i >= 0 && ix0 + ${t}i <= xmax);`).join('\n');
  const slideTaps = (indent: string, weightsAt: (kx: number) => string) => Array.from({ length: K }, (_, kx) => `${indent}{
${indent}  ${weightsAt(kx)}
${qs.map((q) => `${indent}  a${q}0 += v${q + kx} * w0;\n${indent}  a${q}1 += v${q + kx} * w1;`).join('\n')}
${indent}}`).join('\n');
  if (K > 0) {
    const weightsAt = path === 'row'
      ? (kx: number) => fromWindows(`${kx * bits}u`)
      : (kx: number) => `let wi = o0 * ck + c * kk + ky * p.kw + ${kx}u;
        let w0 = vec4f(weight(wi), weight(min(wi + ck, wmax)), weight(min(wi + 2u * ck, wmax)), weight(min(wi + 3u * ck, wmax)));
        let w1 = vec4f(weight(min(wi + 4u * ck, wmax)), weight(min(wi + 5u * ck, wmax)), weight(min(wi + 6u * ck, wmax)), weight(min(wi + 7u * ck, wmax)));`;
    loop = `  let ix0 = i32(ox0) - i32(p.pad);
  for (var c = 0u; c < p.C; c++) {
    let xb = (n * p.C + c) * p.H * p.W;
    for (var ky = ky0; ky < ky1; ky++) {
      let xr = xb + u32(iy0 + i32(ky)) * p.W;
${path === 'row' ? `      ${windows('c * kk + ky * p.kw')}
` : ''}${windowLoads('      ')}
${slideTaps('      ', weightsAt)}
    }
  }`;
  } else if (path === 'each') {
    loop = `  for (var c = 0u; c < p.C; c++) {
    let xb = (n * p.C + c) * p.H * p.W;
    for (var ky = ky0; ky < ky1; ky++) {
      let xr = xb + u32(iy0 + i32(ky)) * p.W;
      for (var kx = 0u; kx < p.kw; kx++) {
        let wi = o0 * ck + c * kk + ky * p.kw + kx;
        let w0 = vec4f(weight(wi), weight(min(wi + ck, wmax)), weight(min(wi + 2u * ck, wmax)), weight(min(wi + 3u * ck, wmax)));
        let w1 = vec4f(weight(min(wi + 4u * ck, wmax)), weight(min(wi + 5u * ck, wmax)), weight(min(wi + 6u * ck, wmax)), weight(min(wi + 7u * ck, wmax)));
        let ix0 = i32(ox0 * p.stride + kx) - i32(p.pad);
${pixels('        ')}
      }
    }
  }`;
  } else if (path === 'row') {
    loop = `  for (var c = 0u; c < p.C; c++) {
    let xb = (n * p.C + c) * p.H * p.W;
    for (var ky = ky0; ky < ky1; ky++) {
      let xr = xb + u32(iy0 + i32(ky)) * p.W;
      ${windows('c * kk + ky * p.kw')}
      for (var kx = 0u; kx < p.kw; kx++) {
        ${fromWindows(`(kx * ${bits}u)`)}
        let ix0 = i32(ox0 * p.stride + kx) - i32(p.pad);
${pixels('        ')}
      }
    }
  }`;
  } else {
    // weights per 32-bit window (B-bit codes: ⌊32/B⌋)
    const per = Math.floor(32 / bits);
    loop = `  if (ky0 < ky1) {
    let xoff = u32(iy0) * p.W;
    let ix0 = i32(ox0 * p.stride) - i32(p.pad);
    let hw = p.H * p.W;
    for (var c0 = 0u; c0 < p.C; c0 += ${per}u) {
      ${windows('c0')}
      let tn = min(${per}u, p.C - c0);
      var xr = (n * p.C + c0) * hw + xoff;
      for (var t = 0u; t < tn; t++) {
        ${fromWindows(`(t * ${bits}u)`)}
${pixels('        ')}
        xr += hw;
      }
    }
  }`;
  }
  const LK = 2 ** (bits - 1) - 1;
  const dec = mode === 'binary'
    ? 'return select(-1.0, 1.0, (b & 1u) == 1u);'
    : mode === 'ternary'
    ? 'let c = b & 3u; return f32(c & 1u) * (1.0 - f32(c >> 1u) * 2.0);'
    : mode === 'fixed'
    // the low B bits, sign-extended by an arithmetic shift
    ? `return f32(bitcast<i32>(b << ${32 - bits}u) >> ${32 - bits}u);`
    : mode === 'log'
    // sign bit B − 1, magnitude m in bits 0..B − 2: 2^(m − K) built from its f32 exponent field (m − K + 127 ≥ 1 for B ≤ 8)
    ? `let m = b & ${LK}u; let s = (b >> ${bits - 1}u) & 1u; return select(0.0, bitcast<f32>((s << 31u) | ((m + ${127 - LK}u) << 23u)), m != 0u);`
    : 'return 0.0;';
  return /* wgsl */ `
struct P {
  total: u32, C: u32, H: u32, W: u32,
  O: u32, Ho: u32, Wo: u32, kh: u32,
  kw: u32, stride: u32, pad: u32, relu: u32,
  perChannel: u32, residual: u32, levels: f32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> wts: array<u32>;
@group(0) @binding(3) var<storage, read> mult: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<storage, read> res: array<f32>;
@group(0) @binding(6) var<storage, read_write> y: array<f32>;

fn weight(i: u32) -> f32 { ${DECODE[mode]} }

// the packed value at the low bit(s) of b
fn dec(b: u32) -> f32 { ${dec} }

// 32 bits of the packed words starting at weight index v (${Math.floor(32 / bits)} weights; words past the end read the last one)
fn fetch(v: u32) -> u32 {
  let bp = v * ${bits === 32 ? 1 : bits}u;
  let wi = bp >> 5u;
  let b = bp & 31u;
  let last = arrayLength(&wts) - 1u;
  let lo = wts[min(wi, last)] >> b;
  let hi = select(0u, wts[min(wi + 1u, last)] << ((32u - b) & 31u), b != 0u);
  return lo | hi;
}

fn out(yi: u32, o: u32, acc: f32) {
  var v = acc * mult[select(0u, o, p.perChannel == 1u)] + bias[o];
  if (p.residual == 1u) { v += res[yi]; }
  if (p.relu == 1u) { v = max(v, 0.0); }
  if (p.levels != 0.0) { v = clamp(v, 0.0, 1.0); if (p.levels > 0.0) { v = round(v * p.levels) / p.levels; } }
  y[yi] = v;
}

// one thread per (n, block of ${OB} output channels, oy, ${PX} adjacent ox): each decoded weight feeds ${PX}
// pixels and each input value ${OB} channels; the row bounds are hoisted, columns are guarded
${mainSig()} {
  ${flatIndex()}
  if (i >= p.total) { return; }
  let wq = (p.Wo + ${PX - 1}u) / ${PX}u;
  let ox0 = (i % wq) * ${PX}u;
  let oy = (i / wq) % p.Ho;
  let blocks = (p.O + ${OB - 1}u) / ${OB}u;
  let o0 = ((i / (wq * p.Ho)) % blocks) * ${OB}u;
  let n = i / (wq * p.Ho * blocks);
  let kk = p.kh * p.kw;
  let ck = p.C * kk;
  let iy0 = i32(oy * p.stride) - i32(p.pad);
  let ky0 = u32(max(0, -iy0));
  let ky1 = u32(clamp(i32(p.H) - iy0, 0, i32(p.kh)));
  let on = min(${OB}u, p.O - o0);
  let wmax = p.O * ck - 1u;
  let xmax = i32(p.W) - 1;
  let sx = i32(p.stride);
${accs}
${loop}
  let plane = p.Ho * p.Wo;
  let row = oy * p.Wo;
  let yb = (n * p.O + o0) * plane;
${epi}
}`;
};

/** Epilogue options of packedConv: a residual added after scale and bias, then ReLU, then DoReFa k-bit activation. */
export interface ConvEpilogue {
  relu?: boolean;
  /** y += residual[i] (same shape as y) */
  residual?: GBuf | null;
  /** DoReFa activation bits: clamp to [0, 1] and round to 2^bits − 1 levels (32: clamp only; 0: none) */
  actBits?: number;
}

/** 0: no activation; −1: clip to [0, 1] (DoReFa at 32 bits); 2^bits − 1 levels for 1..8 bits. */
function levelsOf(what: string, bits: number | undefined): number {
  if (bits === undefined || bits === 0) return 0;
  if (bits === 32) return -1;
  if (!Number.isInteger(bits) || bits < 1 || bits > 8) throw shapeError(what, `activation bits must be 1..8 or 32, got ${bits}`);
  return 2 ** bits - 1;
}

function need(op: string, what: string, buf: GBuf, bytes: number): void {
  if (buf.size < bytes) throw shapeError(op, `${what} needs ${bytes} bytes, got a ${buf.size}-byte buffer`);
}

/**
 * y[N, O, Ho, Wo] = conv(x[N, C, H, W], decode(wts)[O, C, kh, kw])·mult + bias, then the epilogue
 * (`relu` as a boolean is ReLU only). `mult` holds 1 or O factors, `bias` O values.
 */
export function packedConv(
  gpu: Gpu,
  mode: WeightFormat,
  g: ConvGeom,
  x: GBuf,
  wts: GBuf,
  mult: GBuf,
  multCount: number,
  bias: GBuf,
  y: GBuf,
  epi: boolean | ConvEpilogue,
  what = 'packedConv',
): void {
  const e: ConvEpilogue = typeof epi === 'boolean' ? { relu: epi } : epi;
  const fmt = fmtOf(mode, what);
  const levels = levelsOf(what, e.actBits);
  for (const [k, v] of Object.entries(g)) {
    if (!Number.isInteger(v) || v < (k === 'pad' ? 0 : 1)) throw shapeError(what, `${k} must be a positive integer, got ${v}`);
  }
  const { Ho, Wo } = convOut(g);
  if (Ho < 1 || Wo < 1) throw shapeError(what, `a ${g.kh}x${g.kw} kernel with padding ${g.pad} does not fit a ${g.H}x${g.W} input`);
  if (multCount !== 1 && multCount !== g.O) throw shapeError(what, `expected 1 or ${g.O} scale factors, got ${multCount}`);
  const nW = g.O * g.C * g.kh * g.kw;
  need(what, `x [${g.N},${g.C},${g.H},${g.W}]`, x, g.N * g.C * g.H * g.W * 4);
  need(what, `${fmt.tag} weights [${g.O},${g.C},${g.kh},${g.kw}] (${wordsFor(mode, nW)} words)`, wts, wordsFor(mode, nW) * 4);
  need(what, 'scale', mult, multCount * 4);
  need(what, `bias [${g.O}]`, bias, g.O * 4);
  const outs = g.N * g.O * Ho * Wo;
  need(what, `y [${g.N},${g.O},${Ho},${Wo}]`, y, outs * 4);
  if (e.residual) need(what, `residual [${g.N},${g.O},${Ho},${Wo}]`, e.residual, outs * 4);
  const px = Wo >= 8 ? 8 : Wo >= 4 ? 4 : 1;
  const total = g.N * Math.ceil(g.O / OB) * Ho * Math.ceil(Wo / px);
  const path = convPath(mode, g.kh, g.kw);
  const slide = path !== 'chan' && g.stride === 1 && g.kw > 1 && g.kw <= SLIDE_MAX_KW ? g.kw : 0;
  const pipe = gpu.pipeline(`infer:conv:${fmt.tag}:${path}:px${px}${slide ? `:slide${slide}` : ''}`, () => convCode(fmt, px, path, slide));
  const u = new Uniforms()
    .u32(total).u32(g.C).u32(g.H).u32(g.W)
    .u32(g.O).u32(Ho).u32(Wo).u32(g.kh)
    .u32(g.kw).u32(g.stride).u32(g.pad).u32(e.relu ? 1 : 0)
    .u32(multCount === 1 ? 0 : 1).u32(e.residual ? 1 : 0).f32(levels)
    .done();
  // without a residual, bias stands in for the unused binding (read-only, never read)
  gpu.dispatch(pipe, [x, wts, mult, bias, e.residual ?? bias, y], u, grid1d(total, 256), what);
}

const XNOR = /* wgsl */ `
struct P { total: u32, O: u32, K: u32, words: u32, relu: u32, perChannel: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> a: array<u32>;
@group(0) @binding(2) var<storage, read> wts: array<u32>;
@group(0) @binding(3) var<storage, read> mult: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;
${mainSig()} {
  ${flatIndex()}
  if (i >= p.total) { return; }
  let o = i % p.O;
  let n = i / p.O;
  // bits past K in the last word are 0 in both operands, so they agree and must not count
  var diff = 0u;
  for (var k = 0u; k < p.words; k++) {
    diff += countOneBits(a[n * p.words + k] ^ wts[o * p.words + k]);
  }
  var v = (f32(p.K) - 2.0 * f32(diff)) * mult[select(0u, o, p.perChannel == 1u)] + bias[o];
  if (p.relu == 1u) { v = max(v, 0.0); }
  y[i] = v;
}`;

/**
 * y[N, O] = (a · wᵀ)·mult + bias for ±1 activations a [N, K] and ±1 weights w [O, K], both as
 * rows of ⌈K/32⌉ words (bit = 1 for +1; unused high bits 0): dot = K − 2·popcount(a ⊕ w).
 */
export function xnorLinear(gpu: Gpu, N: number, K: number, O: number, a: GBuf, wts: GBuf, mult: GBuf, multCount: number, bias: GBuf, y: GBuf, relu: boolean, what = 'xnorLinear'): void {
  for (const [k, v] of Object.entries({ N, K, O })) {
    if (!Number.isInteger(v) || v < 1) throw shapeError(what, `${k} must be a positive integer, got ${v}`);
  }
  if (multCount !== 1 && multCount !== O) throw shapeError(what, `expected 1 or ${O} scale factors, got ${multCount}`);
  const words = Math.ceil(K / 32);
  need(what, `activation bits [${N}, ${words} words]`, a, N * words * 4);
  need(what, `weight bits [${O}, ${words} words]`, wts, O * words * 4);
  need(what, 'scale', mult, multCount * 4);
  need(what, `bias [${O}]`, bias, O * 4);
  need(what, `y [${N},${O}]`, y, N * O * 4);
  const pipe = gpu.pipeline('infer:xnor', () => XNOR);
  const u = new Uniforms().u32(N * O).u32(O).u32(K).u32(words).u32(relu ? 1 : 0).u32(multCount === 1 ? 0 : 1).done();
  gpu.dispatch(pipe, [a, wts, mult, bias, y], u, grid1d(N * O, 256), what);
}

const SIGNPACK = /* wgsl */ `
struct P { total: u32, K: u32, words: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> bits: array<u32>;
${mainSig()} {
  ${flatIndex()}
  if (i >= p.total) { return; }
  let n = i / p.words;
  let k0 = (i % p.words) * 32u;
  var w = 0u;
  for (var b = 0u; b < 32u; b++) {
    let k = k0 + b;
    if (k < p.K && x[n * p.K + k] >= 0.0) { w |= 1u << b; }
  }
  bits[i] = w;
}`;

/** Pack sign(x) of rows × K floats into rows × ⌈K/32⌉ words (x ≥ 0 → bit 1). */
export function signPack(gpu: Gpu, rows: number, K: number, x: GBuf, bits: GBuf, what = 'signPack'): void {
  if (!Number.isInteger(rows) || rows < 1 || !Number.isInteger(K) || K < 1) throw shapeError(what, `rows and K must be positive integers, got ${rows}, ${K}`);
  const words = Math.ceil(K / 32);
  need(what, `x [${rows},${K}]`, x, rows * K * 4);
  need(what, `bits [${rows}, ${words} words]`, bits, rows * words * 4);
  const pipe = gpu.pipeline('infer:signpack', () => SIGNPACK);
  gpu.dispatch(pipe, [x, bits], new Uniforms().u32(rows * words).u32(K).u32(words).done(), grid1d(rows * words, 256), what);
}

const CHANNEL_AFFINE = /* wgsl */ `
struct P { total: u32, C: u32, HW: u32, levels: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> scale: array<f32>;
@group(0) @binding(3) var<storage, read> shift: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
${mainSig()} {
  ${flatIndex()}
  if (i >= p.total) { return; }
  let c = (i / p.HW) % p.C;
  var v = x[i] * scale[c] + shift[c];
  if (p.levels != 0.0) { v = clamp(v, 0.0, 1.0); if (p.levels > 0.0) { v = round(v * p.levels) / p.levels; } }
  y[i] = v;
}`;

/** y = x·scale[c] + shift[c] over x [N, C, HW] (a folded batch norm), then DoReFa activation when actBits is 1..8 (32: clip to [0, 1] only). */
export function channelAffine(gpu: Gpu, N: number, C: number, HW: number, x: GBuf, scale: GBuf, shift: GBuf, y: GBuf, actBits = 0, what = 'channelAffine'): void {
  if (![N, C, HW].every((v) => Number.isInteger(v) && v >= 1)) throw shapeError(what, `N, C, HW must be positive integers, got ${N}, ${C}, ${HW}`);
  const levels = levelsOf(what, actBits);
  const total = N * C * HW;
  need(what, `x [${N},${C},${HW}]`, x, total * 4);
  need(what, `scale [${C}]`, scale, C * 4);
  need(what, `shift [${C}]`, shift, C * 4);
  need(what, `y [${N},${C},${HW}]`, y, total * 4);
  const pipe = gpu.pipeline('infer:affine', () => CHANNEL_AFFINE);
  gpu.dispatch(pipe, [x, scale, shift, y], new Uniforms().u32(total).u32(C).u32(HW).f32(levels).done(), grid1d(total, 256), what);
}

const GAP = /* wgsl */ `
struct P { planes: u32, HW: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
${mainSig(64)} {
  ${flatIndex(64)}
  if (i >= p.planes) { return; }
  var s = 0.0;
  for (var k = 0u; k < p.HW; k++) { s += x[i * p.HW + k]; }
  y[i] = s / f32(p.HW);
}`;

/** y[planes] = mean of each HW-long plane of x. */
export function globalAvgPool(gpu: Gpu, planes: number, HW: number, x: GBuf, y: GBuf, what = 'globalAvgPool'): void {
  if (!(Number.isInteger(planes) && planes >= 1 && Number.isInteger(HW) && HW >= 1)) throw shapeError(what, `planes and HW must be positive integers, got ${planes}, ${HW}`);
  need(what, `x [${planes},${HW}]`, x, planes * HW * 4);
  need(what, `y [${planes}]`, y, planes * 4);
  const pipe = gpu.pipeline('infer:gap', () => GAP);
  gpu.dispatch(pipe, [x, y], new Uniforms().u32(planes).u32(HW).done(), grid1d(planes, 64), what);
}

const SHIFT = (round: boolean) => /* wgsl */ `
struct P { total: u32, C: u32, H: u32, W: u32, Ho: u32, Wo: u32, stride: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> offsets: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
fn xat(base: u32, yy: i32, xx: i32) -> f32 {
  if (yy < 0 || xx < 0 || yy >= i32(p.H) || xx >= i32(p.W)) { return 0.0; }
  return x[base + u32(yy) * p.W + u32(xx)];
}
${mainSig()} {
  ${flatIndex()}
  if (i >= p.total) { return; }
  let w = i % p.Wo;
  let h = (i / p.Wo) % p.Ho;
  let nc = i / (p.Wo * p.Ho);
  let c = nc % p.C;
  let o = ${round ? 'round(vec2f(offsets[c], offsets[p.C + c]))' : 'vec2f(offsets[c], offsets[p.C + c])'};
  let fo = floor(o);
  let d = o - fo;
  let base = nc * p.H * p.W;
  let y0 = i32(h * p.stride) + i32(fo.y);
  let x0 = i32(w * p.stride) + i32(fo.x);
  y[i] = (1.0 - d.x) * (1.0 - d.y) * xat(base, y0, x0) + d.x * (1.0 - d.y) * xat(base, y0, x0 + 1)
       + (1.0 - d.x) * d.y * xat(base, y0 + 1, x0) + d.x * d.y * xat(base, y0 + 1, x0 + 1);
}`;

/**
 * SSPQ's active shift (ALGORITHMS §1.7; the forward of src/kernels/shift.ts without padding):
 * y[n, c, h, w] = bilinear sample of x at (h·stride + b_c, w·stride + a_c), offsets [2, C]
 * (row 0 = a, horizontal; row 1 = b, vertical), 0 outside; `round` rounds the offsets (sparse shift).
 */
export function activeShift(gpu: Gpu, N: number, C: number, H: number, W: number, stride: number, x: GBuf, offsets: GBuf, y: GBuf, round: boolean, what = 'activeShift'): { Ho: number; Wo: number } {
  if (![N, C, H, W, stride].every((v) => Number.isInteger(v) && v >= 1)) throw shapeError(what, `N, C, H, W, stride must be positive integers, got ${N}, ${C}, ${H}, ${W}, ${stride}`);
  const Ho = Math.floor((H - 1) / stride) + 1;
  const Wo = Math.floor((W - 1) / stride) + 1;
  need(what, `x [${N},${C},${H},${W}]`, x, N * C * H * W * 4);
  need(what, `offsets [2,${C}]`, offsets, 2 * C * 4);
  need(what, `y [${N},${C},${Ho},${Wo}]`, y, N * C * Ho * Wo * 4);
  const total = N * C * Ho * Wo;
  const pipe = gpu.pipeline(`infer:shift:${round ? 'round' : 'bilinear'}`, () => SHIFT(round));
  gpu.dispatch(pipe, [x, offsets, y], new Uniforms().u32(total).u32(C).u32(H).u32(W).u32(Ho).u32(Wo).u32(stride).done(), grid1d(total, 256), what);
  return { Ho, Wo };
}

const MAXPOOL = /* wgsl */ `
struct P { total: u32, H: u32, W: u32, Ho: u32, Wo: u32, k: u32, stride: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
${mainSig()} {
  ${flatIndex()}
  if (i >= p.total) { return; }
  let plane = i / (p.Ho * p.Wo);
  let r = i % (p.Ho * p.Wo);
  let y0 = (r / p.Wo) * p.stride;
  let x0 = (r % p.Wo) * p.stride;
  let base = plane * p.H * p.W;
  var m = x[base + y0 * p.W + x0];
  for (var dy = 0u; dy < p.k; dy++) {
    for (var dx = 0u; dx < p.k; dx++) {
      m = max(m, x[base + (y0 + dy) * p.W + x0 + dx]);
    }
  }
  y[i] = m;
}`;

/** y[planes, Ho, Wo] = max over k×k windows (stride, no padding) of x[planes, H, W]. */
export function maxPool(gpu: Gpu, planes: number, H: number, W: number, k: number, stride: number, x: GBuf, y: GBuf, what = 'maxPool'): { Ho: number; Wo: number } {
  const Ho = Math.floor((H - k) / stride) + 1;
  const Wo = Math.floor((W - k) / stride) + 1;
  if (!(k >= 1 && stride >= 1 && Ho >= 1 && Wo >= 1)) throw shapeError(what, `a ${k}x${k} window (stride ${stride}) does not fit a ${H}x${W} plane`);
  need(what, `x [${planes},${H},${W}]`, x, planes * H * W * 4);
  need(what, `y [${planes},${Ho},${Wo}]`, y, planes * Ho * Wo * 4);
  const pipe = gpu.pipeline('infer:maxpool', () => MAXPOOL);
  const total = planes * Ho * Wo;
  gpu.dispatch(pipe, [x, y], new Uniforms().u32(total).u32(H).u32(W).u32(Ho).u32(Wo).u32(k).u32(stride).done(), grid1d(total, 256), what);
  return { Ho, Wo };
}

const SOFTMAX = /* wgsl */ `
struct P { rows: u32, cols: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
${mainSig(64)} {
  ${flatIndex(64)}
  if (i >= p.rows) { return; }
  let b = i * p.cols;
  var m = x[b];
  for (var c = 1u; c < p.cols; c++) { m = max(m, x[b + c]); }
  var s = 0.0;
  for (var c = 0u; c < p.cols; c++) { s += exp(x[b + c] - m); }
  for (var c = 0u; c < p.cols; c++) { y[b + c] = exp(x[b + c] - m) / s; }
}`;

/** Row softmax of x [rows, cols] into y. */
export function softmax(gpu: Gpu, rows: number, cols: number, x: GBuf, y: GBuf, what = 'softmax'): void {
  if (!(Number.isInteger(rows) && rows >= 1 && Number.isInteger(cols) && cols >= 1)) throw shapeError(what, `rows and cols must be positive integers, got ${rows}, ${cols}`);
  need(what, `x [${rows},${cols}]`, x, rows * cols * 4);
  need(what, `y [${rows},${cols}]`, y, rows * cols * 4);
  const pipe = gpu.pipeline('infer:softmax', () => SOFTMAX);
  gpu.dispatch(pipe, [x, y], new Uniforms().u32(rows).u32(cols).done(), grid1d(rows, 64), what);
}
