/**
 * safetensors: an 8-byte little-endian u64 header length N, then N bytes of JSON header, then the
 * raw tensor data. The header maps each tensor name to {dtype, shape, data_offsets: [begin, end]}
 * (byte offsets into the data section, contiguous and in order) and may hold `__metadata__`, a map
 * of strings. Data is little-endian, row-major. The header is padded with spaces to a multiple of 8
 * bytes so the data section is aligned.
 */

export type SafeDType = 'F32' | 'I32' | 'U32' | 'F16' | 'I64' | 'U8' | 'I8' | 'F64';

const DTYPE_BYTES: Record<SafeDType, number> = { F32: 4, I32: 4, U32: 4, F16: 2, I64: 8, U8: 1, I8: 1, F64: 8 };

export interface SafeTensor {
  dtype: SafeDType;
  shape: number[];
  /** little-endian bytes, exactly prod(shape) * bytes(dtype) long */
  data: Uint8Array;
}

export interface SafetensorsFile {
  tensors: Map<string, SafeTensor>;
  metadata: Record<string, string>;
}

/** Bytes of a typed array as a safetensors entry (F32 / I32 / U32 / U8). */
export function safeTensorOf(arr: Float32Array | Int32Array | Uint32Array | Uint8Array, shape: readonly number[]): SafeTensor {
  const dtype: SafeDType = arr instanceof Float32Array ? 'F32' : arr instanceof Int32Array ? 'I32' : arr instanceof Uint32Array ? 'U32' : 'U8';
  const n = shape.reduce((s, d) => s * d, 1);
  if (n !== arr.length) throw new Error(`webqat: safetensors: ${arr.length} values for shape [${shape.join(',')}]`);
  // the platforms we run on are little-endian, so the in-memory bytes are the file bytes
  return { dtype, shape: [...shape], data: new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength) };
}

/** A typed-array view (copied, so aligned) of an entry's data. */
export function typedArrayOf(t: SafeTensor): Float32Array | Int32Array | Uint32Array | Uint8Array {
  const copy = t.data.slice();
  switch (t.dtype) {
    case 'F32':
      return new Float32Array(copy.buffer, 0, copy.length / 4);
    case 'I32':
      return new Int32Array(copy.buffer, 0, copy.length / 4);
    case 'U32':
      return new Uint32Array(copy.buffer, 0, copy.length / 4);
    case 'U8':
      return copy;
    default:
      throw new Error(`webqat: safetensors: dtype ${t.dtype} is not supported here`);
  }
}

/** Serialise tensors (in the map's order) and string metadata. */
export function encodeSafetensors(tensors: Map<string, SafeTensor>, metadata: Record<string, string> = {}): Uint8Array {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new Error(`webqat: safetensors: metadata '${k}' must be a string, got ${typeof v}`);
    }
    header.__metadata__ = metadata;
  }
  let off = 0;
  for (const [name, t] of tensors) {
    if (name === '__metadata__') throw new Error(`webqat: safetensors: '__metadata__' is not a valid tensor name`);
    const bytes = DTYPE_BYTES[t.dtype];
    if (!bytes) throw new Error(`webqat: safetensors: tensor '${name}' has unknown dtype ${t.dtype}`);
    const want = t.shape.reduce((s, d) => s * d, 1) * bytes;
    if (t.data.length !== want) {
      throw new Error(`webqat: safetensors: tensor '${name}' ${t.dtype}[${t.shape.join(',')}] needs ${want} bytes, got ${t.data.length}`);
    }
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + want] };
    off += want;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded !== json.length) {
    const p = new Uint8Array(padded).fill(0x20);
    p.set(json);
    json = p;
  }
  const out = new Uint8Array(8 + json.length + off);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let pos = 8 + json.length;
  for (const t of tensors.values()) {
    out.set(t.data, pos);
    pos += t.data.length;
  }
  return out;
}

/** Parse a safetensors file; checks the header, dtypes, shapes and that offsets tile the data. */
export function decodeSafetensors(bytes: Uint8Array, name = 'safetensors'): SafetensorsFile {
  if (bytes.length < 8) throw new Error(`webqat: ${name}: too short for a safetensors file (${bytes.length} bytes)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = Number(view.getBigUint64(0, true));
  if (n > bytes.length - 8 || n > 100 * 1024 * 1024) {
    throw new Error(`webqat: ${name}: header length ${n} exceeds the file (${bytes.length} bytes); not a safetensors file?`);
  }
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  } catch (e) {
    throw new Error(`webqat: ${name}: header is not valid JSON (${(e as Error).message})`);
  }
  if (!header || typeof header !== 'object' || Array.isArray(header)) throw new Error(`webqat: ${name}: header is not a JSON object`);
  const data = bytes.subarray(8 + n);
  const metadata: Record<string, string> = {};
  const entries: [string, SafeTensor, number, number][] = [];
  for (const [k, v] of Object.entries(header)) {
    if (k === '__metadata__') {
      for (const [mk, mv] of Object.entries((v ?? {}) as Record<string, unknown>)) metadata[mk] = String(mv);
      continue;
    }
    const e = v as { dtype?: string; shape?: number[]; data_offsets?: [number, number] };
    const dtype = e?.dtype as SafeDType;
    if (!dtype || !(dtype in DTYPE_BYTES)) throw new Error(`webqat: ${name}: tensor '${k}' has unknown dtype ${e?.dtype}`);
    if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isInteger(d) && d >= 0)) {
      throw new Error(`webqat: ${name}: tensor '${k}' has an invalid shape ${JSON.stringify(e.shape)}`);
    }
    const [b, end] = e.data_offsets ?? [-1, -1];
    const want = e.shape.reduce((s, d) => s * d, 1) * DTYPE_BYTES[dtype];
    if (!Number.isInteger(b) || !Number.isInteger(end) || b < 0 || end < b || end > data.length || end - b !== want) {
      throw new Error(
        `webqat: ${name}: tensor '${k}' ${dtype}[${e.shape.join(',')}] has data_offsets [${b}, ${end}] ` +
          `(needs ${want} bytes inside a ${data.length}-byte data section)`,
      );
    }
    entries.push([k, { dtype, shape: e.shape, data: data.subarray(b, end) }, b, end]);
  }
  // offsets must tile the data section with no gaps or overlaps
  const sorted = [...entries].sort((x, y) => x[2] - y[2]);
  let pos = 0;
  for (const [k, , b, end] of sorted) {
    if (b !== pos) throw new Error(`webqat: ${name}: tensor '${k}' starts at byte ${b}, expected ${pos} (gap or overlap)`);
    pos = end;
  }
  if (pos !== data.length) throw new Error(`webqat: ${name}: ${data.length - pos} bytes after the last tensor`);
  const tensors = new Map<string, SafeTensor>();
  for (const [k, t] of sorted) tensors.set(k, t);
  return { tensors, metadata };
}
