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
