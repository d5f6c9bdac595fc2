/**
 * The packed model file (format `webqat-packed`, version 1, or 2 when it holds fixed or log layers):
 * a safetensors file whose tensors are
 *
 *   <layer>.weight        binary / ternary layers: U32 [words], the codes of src/quant/pack.ts
 *                         (binary 1 bit/value, 1 = +scale, 0 = −scale; ternary 2 bits/value,
 *                         00 = 0, 01 = +scale, 11 = −scale, 10 invalid), values in row-major order
 *                         of the layer's weight shape, least significant bits first
 *                         fixed / log layers (version 2): U32 [⌈n·B/32⌉], B = the layer's `bits`:
 *                         value i at bits i·B .. i·B + B − 1 of the little-end-first bit stream of
 *                         the words (bit j = bit j mod 32 of word ⌊j/32⌋; a code may straddle two
 *                         words; unused high bits 0).
 *                           fixed (B = 2..16): B-bit two's complement q, value = q·scale,
 *                             scale = 2^−f (f = the layer's fraction length)
 *                           log (B = 2..8): bit B − 1 = sign (1 = negative), bits 0..B − 2 = m;
 *                             m = 0: zero (with sign 1: invalid), m = 1..K (K = 2^(B−1) − 1):
 *                             ±2^(m − K)·scale, scale = 2^(FSR − 1) (the largest power)
 *                         float layers: F32 in the weight's own shape
 *   <layer>.weight_scale  binary / ternary layers: F32 [1] (per layer) or [out channels]
 *                         fixed / log layers: F32 [1], a positive power of two (as above)
 *   <layer>.bias          F32 [out] where the layer has a bias
 *   <bn>.weight, <bn>.bias  batch norms, folded with their running statistics: F32 [C] each,
 *                         y = x·weight + bias (weight = γ/√(var + eps), bias = β − mean·weight)
 *   <shift>.shift         SSPQ active shift offsets, F32 [2, C]
 *   any other parameter   F32 in its own shape
 *
 * (exported with `float16`, every F32 tensor except the scales is F16 instead; loading widens it)
 *
 * and whose `__metadata__` holds (all strings, JSON where structured):
 *
 *   format 'webqat-packed', version '1' ('2' when a layer is fixed or log), webqat_version, model (registry name), model_config (JSON
 *   options the model was built with), quant (the --quant spec), input_shape (JSON [C, H, W]),
 *   num_classes, normalization (JSON {mean: [..], std: [..]} per channel, 0..1 pixel scale),
 *   layers (JSON: per layer {kind, quantizer, shape, layout, scales}, and `bits` for fixed / log).
 *
 * This module parses and validates such a file without a GPU; every problem is an error naming
 * the tensor or key at fault.
 */
import { CODE_BITS, codeWords, type CodeKind, packedWords, type PackedKind, unpackBits } from '../quant/pack.ts';
import { decodeSafetensors, type SafeTensor } from '../train/safetensors.ts';
import { VERSION } from '../version.ts';

export const PACKED_FORMAT = 'webqat-packed';
/** the version written for files with fixed or log layers; files without them are written as version 1 */
export const PACKED_VERSION = 2;
/** versions this webqat reads */
export const PACKED_VERSIONS: readonly number[] = [1, 2];
export const WEBQAT_VERSION = VERSION;

export type LayerKind = 'float' | PackedKind | CodeKind;

/** Layer kinds stored as B-bit codes (version 2). */
export const isCodeKind = (k: string): k is CodeKind => k === 'fixed' || k === 'log';

export const LAYOUTS: Record<LayerKind, string> = {
  float: 'f32 row-major',
  binary: 'u32 words, 1 bit/value, least significant bit first, 1 = +scale, 0 = -scale',
  ternary: 'u32 words, 2 bits/value, least significant bits first, 00 = 0, 01 = +scale, 11 = -scale',
  fixed: 'u32 words, a bit stream of B-bit two\'s-complement codes q (value i at stream bits i*B.., least significant first), value = q*scale, scale = 2^-f',
  log: 'u32 words, a bit stream of B-bit codes (value i at stream bits i*B.., least significant first): bit B-1 sign, bits 0..B-2 m; m = 0: zero, else ±2^(m-(2^(B-1)-1))*scale, scale = 2^(FSR-1)',
};

export interface PackedLayerMeta {
  kind: LayerKind;
  /** the quantizer it was trained with ('none' for float layers) */
  quantizer: string;
  /** the weight's logical shape ([O, C, kh, kw] or [O, I]) */
  shape: number[];
  layout: string;
  /** number of scale values (1 = per layer, O = per output channel; 0 for float layers) */
  scales: number;
  /** bits per code (fixed and log layers) */
  bits?: number;
}

export interface PackedMeta {
  format: string;
  version: number;
  webqatVersion: string;
  model: string;
  modelConfig: Record<string, unknown>;
  quant: string;
  inputShape: number[];
  numClasses: number;
  normalization: { mean: number[]; std: number[] } | null;
  layers: Record<string, PackedLayerMeta>;
}

/** One layer's weights as read from the file (host side). */
export interface LayerWeights {
  name: string;
  meta: PackedLayerMeta;
  /** u32 codes (binary/ternary/fixed/log) or f32 bits (float), as stored */
  words: Uint32Array;
  scales: Float32Array;
  bias: Float32Array | null;
}

export interface PackedFile {
  meta: PackedMeta;
  tensors: Map<string, SafeTensor>;
  /** bytes of the tensor data section (what the size report counts) */
  tensorBytes: number;
}

function bad(source: string, msg: string): Error {
  return new Error(`webqat: packed model ${source}: ${msg}`);
}

function jsonKey<T>(md: Record<string, string>, key: string, source: string): T {
  if (md[key] === undefined) throw bad(source, `metadata '${key}' is missing`);
  try {
    return JSON.parse(md[key]) as T;
  } catch {
    throw bad(source, `metadata '${key}' is not valid JSON: ${md[key].slice(0, 80)}`);
  }
}

/** Parse and check the header and metadata of a packed model file. */
export function parsePacked(bytes: Uint8Array, source = 'bytes'): PackedFile {
  const { tensors, metadata: md } = decodeSafetensors(bytes, `packed model ${source}`);
  if (md.format !== PACKED_FORMAT) {
    const hint = md.format === 'webqat-checkpoint' ? ' (this is a training checkpoint: run `npm run export -- --checkpoint FILE --out model.safetensors` first)' : '';
    throw bad(source, `not a webqat packed model (metadata format is '${md.format ?? 'missing'}', expected '${PACKED_FORMAT}')${hint}`);
  }
  const version = Number(md.version);
  if (!Number.isInteger(version) || !PACKED_VERSIONS.includes(version)) {
    throw bad(source, `unsupported packed format version '${md.version ?? 'missing'}' (this webqat ${WEBQAT_VERSION} reads versions ${PACKED_VERSIONS.join(' and ')})`);
  }
  if (!md.model) throw bad(source, `metadata 'model' (the model's registry name) is missing`);
  const inputShape = jsonKey<number[]>(md, 'input_shape', source);
  if (!Array.isArray(inputShape) || inputShape.length !== 3 || !inputShape.every((d) => Number.isInteger(d) && d > 0)) {
    throw bad(source, `metadata 'input_shape' must be [C, H, W] of positive integers, got ${md.input_shape}`);
  }
  const numClasses = Number(md.num_classes);
  if (!Number.isInteger(numClasses) || numClasses < 1) throw bad(source, `metadata 'num_classes' must be a positive integer, got '${md.num_classes}'`);
  const normalization = md.normalization === undefined ? null : jsonKey<{ mean: number[]; std: number[] }>(md, 'normalization', source);
  if (normalization) {
    const c = inputShape[0];
    if (!Array.isArray(normalization.mean) || !Array.isArray(normalization.std) || normalization.mean.length !== c || normalization.std.length !== c) {
      throw bad(source, `metadata 'normalization' needs mean and std with ${c} value(s) each, got ${md.normalization}`);
    }
  }
  const layers = jsonKey<Record<string, PackedLayerMeta>>(md, 'layers', source);
  if (!layers || typeof layers !== 'object') throw bad(source, `metadata 'layers' must be an object`);
  for (const [name, l] of Object.entries(layers)) {
    if (l.kind !== 'float' && l.kind !== 'binary' && l.kind !== 'ternary' && !isCodeKind(l.kind)) {
      throw bad(source, `layer '${name}' has kind '${l.kind}' (this webqat reads float, binary, ternary, fixed and log layers)`);
    }
    if (isCodeKind(l.kind)) {
      if (version < 2) throw bad(source, `layer '${name}' is ${l.kind}, which needs format version 2 (the file says version ${version})`);
      const [lo, hi] = CODE_BITS[l.kind];
      if (!Number.isInteger(l.bits) || l.bits! < lo || l.bits! > hi) {
        throw bad(source, `layer '${name}' (${l.kind}) has bits ${JSON.stringify(l.bits)} in metadata 'layers'; ${l.kind} layers store ${lo}..${hi} bits per weight`);
      }
    }
    if (!Array.isArray(l.shape) || !l.shape.every((d) => Number.isInteger(d) && d > 0)) throw bad(source, `layer '${name}' has an invalid shape ${JSON.stringify(l.shape)}`);
  }
  let tensorBytes = 0;
  for (const t of tensors.values()) tensorBytes += t.data.length;
  return {
    meta: {
      format: md.format,
      version,
      webqatVersion: md.webqat_version ?? 'unknown',
      model: md.model,
      modelConfig: md.model_config === undefined ? {} : jsonKey<Record<string, unknown>>(md, 'model_config', source),
      quant: md.quant ?? 'unknown',
      inputShape,
      numClasses,
      normalization,
      layers,
    },
    tensors,
    tensorBytes,
  };
}

function size(shape: readonly number[]): number {
  return shape.reduce((s, d) => s * d, 1);
}

function u32Of(t: SafeTensor): Uint32Array {
  const c = t.data.slice();
  return new Uint32Array(c.buffer, 0, c.length / 4);
}
/** f32 → IEEE half bits (round to nearest even; overflow to ±inf). */
export function toHalf(v: number): number {
  const f = new Float32Array([v]);
  const x = new Uint32Array(f.buffer)[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rest = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rest > half || (rest === half && h & 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && h & 1)) h++;
  return sign | h;
}

/** IEEE half bits → f32 value. */
export function fromHalf(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 0x1f) return m ? NaN : sign * Infinity;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

/** F32 or F16 tensor data as f32 values. */
function f32Of(t: SafeTensor): Float32Array {
  const c = t.data.slice();
  if (t.dtype === 'F16') return Float32Array.from(new Uint16Array(c.buffer, 0, c.length / 2), fromHalf);
  return new Float32Array(c.buffer, 0, c.length / 4);
}

const isFloat = (t: SafeTensor) => t.dtype === 'F32' || t.dtype === 'F16';

/**
 * The weights of one layer, checked against the shape the architecture expects: dtype and word
 * count, scale count, bias length, (ternary) that no code is the invalid 0b10, (log) that no code
 * is the invalid negative zero, (fixed, log) that the scale is a positive power of two.
 */
export function layerWeights(f: PackedFile, name: string, expect: { shape: number[]; bias: boolean }, source = 'bytes'): LayerWeights {
  const meta = f.meta.layers[name];
  const shapeS = `[${expect.shape.join(',')}]`;
  if (!meta) throw bad(source, `metadata 'layers' has no entry for layer '${name}' (model '${f.meta.model}' needs a weight ${shapeS} there)`);
  if (meta.shape.length !== expect.shape.length || meta.shape.some((d, i) => d !== expect.shape[i])) {
    throw bad(source, `layer '${name}' has weight shape [${meta.shape.join(',')}], but model '${f.meta.model}' with its model_config needs ${shapeS}`);
  }
  const wName = `${name}.weight`;
  const w = f.tensors.get(wName);
  if (!w) throw bad(source, `tensor '${wName}' is missing`);
  const n = size(expect.shape);
  let words: Uint32Array;
  let scales: Float32Array = new Float32Array(0);
  if (meta.kind === 'float') {
    if (!isFloat(w) || size(w.shape) !== n) throw bad(source, `tensor '${wName}' is ${w.dtype}[${w.shape.join(',')}]; a float layer needs F32 (or F16) ${shapeS}`);
    const v = f32Of(w);
    words = new Uint32Array(v.buffer, v.byteOffset, v.length);
  } else {
    const code = isCodeKind(meta.kind);
    const want = code ? codeWords(n, meta.bits!) : packedWords(n, meta.kind as PackedKind);
    const what = code ? `${meta.bits}-bit ${meta.kind}` : meta.kind;
    if (w.dtype !== 'U32') throw bad(source, `tensor '${wName}' is ${w.dtype}; ${what} weights are U32 words`);
    if (size(w.shape) !== want) {
      throw bad(source, `tensor '${wName}' has ${size(w.shape)} words, but ${what} weights of shape ${shapeS} (${n} values) need ${want}`);
    }
    words = u32Of(w);
    if (meta.kind === 'log') {
      // sign 1 with magnitude 0 (negative zero) is not a code
      const bits = meta.bits!;
      const codes = unpackBits(words, n, bits);
      const neg0 = 2 ** (bits - 1);
      for (let i = 0; i < n; i++) {
        if (codes[i] === neg0) {
          throw bad(source, `tensor '${wName}': invalid ${bits}-bit log code ${neg0} (sign 1, magnitude 0) at value ${i} (stream bits ${i * bits}..${i * bits + bits - 1})`);
        }
      }
    }
    if (meta.kind === 'ternary') {
      for (let i = 0; i < n; i++) {
        if (((words[i >>> 4] >>> ((i & 15) * 2)) & 3) === 2) {
          throw bad(source, `tensor '${wName}': invalid ternary code 0b10 at value ${i} (word ${i >>> 4}, bits ${(i & 15) * 2}..${(i & 15) * 2 + 1})`);
        }
      }
    }
    const sName = `${name}.weight_scale`;
    const s = f.tensors.get(sName);
    if (!s) throw bad(source, `tensor '${sName}' (the scale of layer '${name}''s ${meta.kind} weights) is missing`);
    const ns = size(s.shape);
    if (code) {
      if (s.dtype !== 'F32' || ns !== 1) throw bad(source, `tensor '${sName}' is ${s.dtype}[${s.shape.join(',')}]; ${meta.kind} weights need F32 [1]`);
    } else if (s.dtype !== 'F32' || (ns !== 1 && ns !== expect.shape[0])) {
      throw bad(source, `tensor '${sName}' is ${s.dtype}[${s.shape.join(',')}]; it needs F32 [1] or [${expect.shape[0]}]`);
    }
    scales = f32Of(s);
    for (const v of scales) if (!Number.isFinite(v)) throw bad(source, `tensor '${sName}' holds a non-finite scale (${v})`);
    if (code) {
      const v = scales[0];
      if (!(v > 0) || 2 ** Math.round(Math.log2(v)) !== v) {
        throw bad(source, `tensor '${sName}' is ${v}; the scale of ${meta.kind} weights is a positive power of two (${meta.kind === 'fixed' ? '2^-f, f the fraction length' : '2^(FSR-1), the largest power'})`);
      }
    }
  }
  const bName = `${name}.bias`;
  const b = f.tensors.get(bName);
  let bias: Float32Array | null = null;
  if (expect.bias) {
    if (!b) throw bad(source, `tensor '${bName}' is missing`);
    if (!isFloat(b) || size(b.shape) !== expect.shape[0]) throw bad(source, `tensor '${bName}' is ${b.dtype}[${b.shape.join(',')}]; it needs F32 (or F16) [${expect.shape[0]}]`);
    bias = f32Of(b);
  }
  return { name, meta, words, scales, bias };
}

/** An F32 tensor of an exact shape (batch-norm folds, shift offsets), with an error naming it when it is missing or wrong. */
export function floatTensor(f: PackedFile, name: string, shape: number[], what: string, source = 'bytes'): Float32Array {
  const t = f.tensors.get(name);
  if (!t) throw bad(source, `tensor '${name}' (${what}) is missing`);
  if (!isFloat(t) || size(t.shape) !== size(shape)) throw bad(source, `tensor '${name}' is ${t.dtype}[${t.shape.join(',')}]; ${what} needs F32 (or F16) [${shape.join(',')}]`);
  const v = f32Of(t);
  for (let i = 0; i < v.length; i++) if (!Number.isFinite(v[i])) throw bad(source, `tensor '${name}' holds a non-finite value at ${i} (${v[i]})`);
  return v;
}
