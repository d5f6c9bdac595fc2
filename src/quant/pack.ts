/**
 * Packed weights: binary weights at 1 bit and ternary weights at 2 bits per value, in u32 words,
 * plus one f32 scale per layer or per output channel (ARCHITECTURE "Quantization").
 *
 * Layout (little-endian within a word, values in row-major order of the weight tensor):
 *  - binary:  value i -> bit (i mod 32) of word ⌊i/32⌋; 1 = +scale, 0 = −scale.
 *  - ternary: value i -> bits 2·(i mod 16) .. +1 of word ⌊i/16⌋; 00 = 0, 01 = +scale, 11 = −scale
 *             (10 is invalid and rejected when unpacking).
 * Per-channel scales index the first dimension (output channels): value i uses scale ⌊i / (n/C)⌋.
 */
// no autograd import: src/infer (the small inference entry) uses this file
const shapeStr = (shape: readonly number[]): string => `[${shape.join(',')}]`;

export type PackedKind = 'binary' | 'ternary';

export interface PackedTensor {
  kind: PackedKind;
  shape: number[];
  words: Uint32Array;
  /** one scale (per layer) or shape[0] scales (per output channel) */
  scales: Float32Array;
}

function size(shape: readonly number[]): number {
  return shape.reduce((s, d) => s * d, 1);
}

/** Values per u32 word. */
export function valuesPerWord(kind: PackedKind): number {
  return kind === 'binary' ? 32 : 16;
}

/** Words needed for n values. */
export function packedWords(n: number, kind: PackedKind): number {
  return Math.ceil(n / valuesPerWord(kind));
}

/** Bytes of a packed tensor: the words plus 4 bytes per scale. */
export function packedBytes(n: number, kind: PackedKind, scales = 1): number {
  return packedWords(n, kind) * 4 + scales * 4;
}

/**
 * Pack codes (−1, 0, +1; binary: ±1 only) and their scale(s). `scales` has 1 entry or shape[0].
 */
export function packCodes(codes: ArrayLike<number>, shape: readonly number[], kind: PackedKind, scales: ArrayLike<number>): PackedTensor {
  const n = size(shape);
  if (codes.length !== n) throw new Error(`webqat: packCodes: ${codes.length} codes for shape ${shapeStr(shape)} (${n} values)`);
  if (scales.length !== 1 && scales.length !== shape[0]) {
    throw new Error(`webqat: packCodes: ${scales.length} scales for shape ${shapeStr(shape)} (expected 1 or ${shape[0]})`);
  }
  const words = new Uint32Array(packedWords(n, kind));
  for (let i = 0; i < n; i++) {
    const c = codes[i];
    if (kind === 'binary') {
      if (c !== 1 && c !== -1) throw new Error(`webqat: packCodes: binary code ${i} is ${c} (expected -1 or +1)`);
      if (c === 1) words[i >>> 5] |= 1 << (i & 31);
    } else {
      if (c !== 1 && c !== -1 && c !== 0) throw new Error(`webqat: packCodes: ternary code ${i} is ${c} (expected -1, 0 or +1)`);
      const bits = c === 0 ? 0 : c === 1 ? 1 : 3;
      words[i >>> 4] |= bits << ((i & 15) * 2);
    }
  }
  for (let i = 0; i < words.length; i++) words[i] >>>= 0;
  return { kind, shape: [...shape], words, scales: Float32Array.from(scales) };
}

/** Codes (−1, 0, +1) of a packed tensor. */
export function unpackCodes(p: PackedTensor): Int8Array {
  const n = size(p.shape);
  if (p.words.length < packedWords(n, p.kind)) {
    throw new Error(`webqat: unpack: ${p.words.length} words are too few for ${p.kind} ${shapeStr(p.shape)} (need ${packedWords(n, p.kind)})`);
  }
  const out = new Int8Array(n);
  for (let i = 0; i < n; i++) {
    if (p.kind === 'binary') out[i] = (p.words[i >>> 5] >>> (i & 31)) & 1 ? 1 : -1;
    else {
      const bits = (p.words[i >>> 4] >>> ((i & 15) * 2)) & 3;
      if (bits === 2) throw new Error(`webqat: unpack: invalid ternary code 0b10 at value ${i}`);
      out[i] = bits === 0 ? 0 : bits === 1 ? 1 : -1;
    }
  }
  return out;
}

/** The float values of a packed tensor (code · scale). */
export function unpackWeights(p: PackedTensor): Float32Array {
  const codes = unpackCodes(p);
  const n = codes.length;
  const per = p.scales.length === 1 ? n : n / p.shape[0];
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = codes[i] * p.scales[p.scales.length === 1 ? 0 : Math.floor(i / per)];
  return out;
}

/**
 * Pack already-quantized weights (values in {−s, 0, +s} per layer or channel). The scale of each
 * group is its largest magnitude; every non-zero value must equal ±scale (within rtol), and binary
 * weights must have no zeros, else this throws naming the first offending value.
 */
export function packWeights(
  values: Float32Array,
  shape: readonly number[],
  kind: PackedKind,
  opts: { perChannel?: boolean; rtol?: number } = {},
): PackedTensor {
  const n = size(shape);
  if (values.length !== n) throw new Error(`webqat: packWeights: ${values.length} values for shape ${shapeStr(shape)}`);
  const groups = opts.perChannel ? shape[0] : 1;
  const per = n / groups;
  const rtol = opts.rtol ?? 1e-5;
  const scales = new Float32Array(groups);
  const codes = new Int8Array(n);
  for (let g = 0; g < groups; g++) {
    let s = 0;
    for (let i = g * per; i < (g + 1) * per; i++) s = Math.max(s, Math.abs(values[i]));
    scales[g] = s;
    for (let i = g * per; i < (g + 1) * per; i++) {
      const v = values[i];
      if (v === 0) {
        if (kind === 'binary' && s !== 0) throw new Error(`webqat: packWeights: value ${i} is 0 in a binary tensor`);
        codes[i] = kind === 'binary' ? 1 : 0;
        continue;
      }
      if (Math.abs(Math.abs(v) - s) > rtol * s) {
        throw new Error(`webqat: packWeights: value ${i} = ${v} is not ±${s} (${kind} ${shapeStr(shape)}${opts.perChannel ? `, channel ${g}` : ''})`);
      }
      codes[i] = v > 0 ? 1 : -1;
    }
  }
  return packCodes(codes, shape, kind, scales);
}

// ----------------------------------------------------------------------------- k-bit codes (fixed, log)

/**
 * Fixed-point and log weights at B bits: B-bit codes as one little-end-first bit stream in u32
 * words: value i occupies bits i·B .. i·B + B − 1 of the stream, bit j of the stream being bit
 * (j mod 32) of word ⌊j/32⌋ (a code may straddle two words); ⌈n·B/32⌉ words, unused high bits 0.
 *  - fixed:B: the code is the B-bit two's-complement integer q = clamp(round(w·2^f), −2^(B−1),
 *    2^(B−1) − 1); value = q·scale with scale = 2^−f (one per layer).
 *  - log:B:  bit B − 1 is the sign (1 = negative), bits 0..B−2 the magnitude code m: m = 0 is zero,
 *    m = 1..K (K = 2^(B−1) − 1) is 2^(m−K)·scale with scale = 2^top (top = FSR − 1, the largest
 *    power); sign 1 with m = 0 is invalid.
 */
export type CodeKind = 'fixed' | 'log';

/** Bit widths the packed format stores per code kind (those of the `fixed:B` and `log:B` methods). */
export const CODE_BITS: Record<CodeKind, readonly [number, number]> = { fixed: [2, 16], log: [2, 8] };

/** u32 words holding n codes of `bits` bits. */
export function codeWords(n: number, bits: number): number {
  return Math.ceil((n * bits) / 32);
}

function checkCodeBits(kind: CodeKind, bits: number): void {
  const [lo, hi] = CODE_BITS[kind];
  if (!Number.isInteger(bits) || bits < lo || bits > hi) throw new Error(`webqat: ${kind} codes: bits must be an integer ${lo}..${hi}, got ${bits}`);
}

/** Pack unsigned `bits`-bit codes into the bit stream. */
export function packBits(codes: ArrayLike<number>, bits: number): Uint32Array {
  const words = new Uint32Array(codeWords(codes.length, bits));
  const mask = bits === 32 ? 0xffffffff : 2 ** bits - 1;
  for (let i = 0; i < codes.length; i++) {
    const c = codes[i];
    if (!Number.isInteger(c) || c < 0 || c > mask) throw new Error(`webqat: packBits: code ${i} is ${c} (expected an integer 0..${mask})`);
    const bp = i * bits;
    const w = bp >>> 5;
    const b = bp & 31;
    words[w] |= c << b;
    if (b + bits > 32) words[w + 1] |= c >>> (32 - b);
  }
  return words;
}

/** The n unsigned `bits`-bit codes of a bit stream. */
export function unpackBits(words: Uint32Array, n: number, bits: number): Uint32Array {
  if (words.length < codeWords(n, bits)) throw new Error(`webqat: unpackBits: ${words.length} words are too few for ${n} ${bits}-bit codes (need ${codeWords(n, bits)})`);
  const out = new Uint32Array(n);
  const mask = 2 ** bits - 1;
  for (let i = 0; i < n; i++) {
    const bp = i * bits;
    const w = bp >>> 5;
    const b = bp & 31;
    let v = words[w] >>> b;
    if (b + bits > 32) v |= words[w + 1] << (32 - b);
    out[i] = (v >>> 0) & mask;
  }
  return out;
}

/**
 * Codes of fixed-point values at `bits` bits with fraction length `frac` (values of quantFixed:
 * each must be q·2^−frac exactly with q in −2^(bits−1)..2^(bits−1) − 1, else this throws naming it).
 * Returns the B-bit two's-complement codes and the scale 2^−frac.
 */
export function fixedCodes(values: ArrayLike<number>, bits: number, frac: number): { codes: Uint32Array; scale: number } {
  checkCodeBits('fixed', bits);
  if (!Number.isInteger(frac)) throw new Error(`webqat: fixed codes: the fraction length must be an integer, got ${frac}`);
  const lo = -(2 ** (bits - 1)), hi = 2 ** (bits - 1) - 1;
  const codes = new Uint32Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const q = values[i] * 2 ** frac;
    if (!Number.isInteger(q) || q < lo || q > hi) {
      throw new Error(`webqat: fixed codes: value ${i} = ${values[i]} is not a ${bits}-bit fixed-point value with fraction length ${frac} (q = ${q}, expected an integer ${lo}..${hi})`);
    }
    codes[i] = q < 0 ? q + 2 ** bits : q;
  }
  return { codes, scale: 2 ** -frac };
}

/** Values of fixed-point codes: sign-extended code · scale. */
export function fixedValues(codes: ArrayLike<number>, bits: number, scale: number): Float32Array {
  return Float32Array.from(codes, (c) => (c >= 2 ** (bits - 1) ? c - 2 ** bits : c) * scale);
}

/**
 * Codes of log values at `bits` bits with full-scale exponent `fsr` (values of quantLog with one
 * level per octave: 0 or ±2^e, e an integer in fsr − (2^(bits−1) − 1) .. fsr − 1, else this throws
 * naming the value). Returns the codes (sign bit, magnitude code) and the scale 2^(fsr − 1).
 */
export function logCodes(values: ArrayLike<number>, bits: number, fsr: number): { codes: Uint32Array; scale: number } {
  checkCodeBits('log', bits);
  if (!Number.isInteger(fsr)) throw new Error(`webqat: log codes: the full-scale exponent must be an integer, got ${fsr}`);
  const K = 2 ** (bits - 1) - 1;
  const top = fsr - 1;
  const codes = new Uint32Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v === 0) continue;
    const e = Math.log2(Math.abs(v));
    const m = e - top + K;
    if (!Number.isInteger(e) || m < 1 || m > K) {
      throw new Error(`webqat: log codes: value ${i} = ${v} is not 0 or ±2^e with e an integer in ${top - K + 1}..${top} (${bits}-bit log weights, full-scale exponent ${fsr})`);
    }
    codes[i] = (v < 0 ? 2 ** (bits - 1) : 0) + m;
  }
  return { codes, scale: 2 ** top };
}

/** Values of log codes: ±2^(m − K)·scale, 0 for m = 0; throws on the invalid code (sign 1, m 0). */
export function logValues(codes: ArrayLike<number>, bits: number, scale: number): Float32Array {
  const half = 2 ** (bits - 1);
  const K = half - 1;
  return Float32Array.from(codes, (c, i) => {
    const m = c & K;
    if (m === 0) {
      if (c !== 0) throw new Error(`webqat: log codes: invalid code ${c} (negative zero) at value ${i}`);
      return 0;
    }
    return (c >= half ? -1 : 1) * 2 ** (m - K) * scale;
  });
}
