/**
 * IDX files (the MNIST / Fashion-MNIST format): a big-endian header, magic 0x0000 TT NN (TT = 0x08
 * unsigned bytes, NN = number of dimensions), NN u32 dimension sizes, then the data. Images are
 * magic 2051 (three dims: count, rows, cols), labels 2049 (one dim: count). Gzipped files (first
 * bytes 0x1f 0x8b) are decompressed first.
 */
import { gunzip, isGzip, readFile } from '../platform/fs.ts';

export const IDX_IMAGES_MAGIC = 2051;
export const IDX_LABELS_MAGIC = 2049;

export interface IdxImages {
  count: number;
  rows: number;
  cols: number;
  /** count * rows * cols bytes, row-major */
  pixels: Uint8Array;
}

function u32be(b: Uint8Array, off: number): number {
  return ((b[off] << 24) | (b[off + 1] << 16) | (b[off + 2] << 8) | b[off + 3]) >>> 0;
}

async function maybeGunzip(bytes: Uint8Array, name: string): Promise<Uint8Array> {
  return isGzip(bytes) ? await gunzip(bytes, name) : bytes;
}

function header(bytes: Uint8Array, name: string, magic: number, ndims: number): number[] {
  if (bytes.length < 4) throw new Error(`webqat: ${name}: not an IDX file (only ${bytes.length} bytes)`);
  const m = u32be(bytes, 0);
  if (m !== magic) {
    const kind = magic === IDX_IMAGES_MAGIC ? 'images' : 'labels';
    const other = m === IDX_IMAGES_MAGIC ? ' (that is an IDX images file)' : m === IDX_LABELS_MAGIC ? ' (that is an IDX labels file)' : '';
    throw new Error(`webqat: ${name}: wrong magic number ${m} (0x${m.toString(16).padStart(8, '0')}), expected ${magic} for IDX ${kind}${other}`);
  }
  const need = 4 + 4 * ndims;
  if (bytes.length < need) throw new Error(`webqat: ${name}: truncated IDX header (${bytes.length} bytes, need ${need})`);
  const dims: number[] = [];
  for (let k = 0; k < ndims; k++) dims.push(u32be(bytes, 4 + 4 * k));
  return dims;
}

function body(bytes: Uint8Array, name: string, dims: number[]): Uint8Array {
  const off = 4 + 4 * dims.length;
  const want = dims.reduce((s, d) => s * d, 1);
  const have = bytes.length - off;
  if (have < want) {
    throw new Error(
      `webqat: ${name}: truncated data: the header declares [${dims.join(' x ')}] = ${want} bytes but the file holds ${have}`,
    );
  }
  if (have > want) {
    throw new Error(
      `webqat: ${name}: ${have - want} unexpected bytes after the data declared by the header [${dims.join(' x ')}]`,
    );
  }
  return bytes.subarray(off, off + want);
}

/** Parse IDX image bytes (raw or gzipped). `name` is used in error messages. */
export async function parseIdxImages(bytes: Uint8Array, name = 'IDX images'): Promise<IdxImages> {
  const raw = await maybeGunzip(bytes, name);
  const [count, rows, cols] = header(raw, name, IDX_IMAGES_MAGIC, 3);
  return { count, rows, cols, pixels: body(raw, name, [count, rows, cols]) };
}

/** Parse IDX label bytes (raw or gzipped). */
export async function parseIdxLabels(bytes: Uint8Array, name = 'IDX labels'): Promise<Uint8Array> {
  const raw = await maybeGunzip(bytes, name);
  const [count] = header(raw, name, IDX_LABELS_MAGIC, 1);
  return body(raw, name, [count]);
}

export async function readIdxImages(path: string): Promise<IdxImages> {
  return parseIdxImages(await readFile(path), path);
}

export async function readIdxLabels(path: string): Promise<Uint8Array> {
  return parseIdxLabels(await readFile(path), path);
}
