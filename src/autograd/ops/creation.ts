/** Tensor creation: from host data, constants, copies and casts. */
import * as ew from '../../kernels/elementwise.ts';
import { engine } from '../engine.ts';
import { type DType, type Shape, shapeSize, shapeStr, Tensor } from '../tensor.ts';

type Nested = number | Nested[];

function flattenNested(data: Nested, shape: number[], out: number[], depth = 0): void {
  if (Array.isArray(data)) {
    if (shape.length === depth) shape.push(data.length);
    else if (shape[depth] !== data.length) throw new Error('webqat: tensor(): ragged nested array');
    for (const d of data) flattenNested(d, shape, out, depth + 1);
  } else out.push(data);
}

/** Upload host data. `shape` defaults to the nested array's shape (or [n] for a typed array). */
export function tensor(
  data: Nested | Float32Array | Int32Array | Uint32Array | ArrayLike<number>,
  shape?: Shape,
  dtype?: DType,
  requiresGrad = false,
): Tensor {
  let flat: ArrayLike<number>;
  let inferred: number[];
  if (Array.isArray(data)) {
    inferred = [];
    const out: number[] = [];
    flattenNested(data as Nested, inferred, out);
    flat = out;
  } else if (typeof data === 'number') {
    inferred = [];
    flat = [data];
  } else {
    flat = data as ArrayLike<number>;
    inferred = [flat.length];
  }
  const dt: DType = dtype ?? (data instanceof Int32Array ? 'i32' : data instanceof Uint32Array ? 'u32' : 'f32');
  const sh = shape ?? inferred;
  if (shapeSize(sh) !== flat.length) {
    throw new Error(`webqat: tensor(): ${flat.length} values do not fill shape ${shapeStr(sh)}`);
  }
  if (dt !== 'f32' && !(dt === 'i32' && data instanceof Int32Array) && !(dt === 'u32' && data instanceof Uint32Array)) {
    // integers only: a fractional or out-of-range value would be truncated or wrapped silently
    const lo = dt === 'i32' ? -0x80000000 : 0;
    const hi = dt === 'i32' ? 0x7fffffff : 0xffffffff;
    for (let i = 0; i < flat.length; i++) {
      const v = flat[i];
      if (!Number.isInteger(v) || v < lo || v > hi) {
        throw new Error(`webqat: tensor(): value ${v} at index ${i} is not ${dt === 'i32' ? 'a 32-bit integer' : 'an unsigned 32-bit integer'} (dtype ${dt}); round or cast it first`);
      }
    }
  }
  const t = Tensor.empty(sh, dt, 'tensor()');
  const arr = dt === 'f32' ? Float32Array.from(flat) : dt === 'i32' ? Int32Array.from(flat) : Uint32Array.from(flat);
  if (arr.length) engine().gpu.write(t.buf, arr);
  t.requiresGrad = requiresGrad;
  return t;
}

/** Overwrite a tensor's contents from host data (same size), e.g. a new batch into a reused buffer. */
export function assignData(t: Tensor, data: Float32Array | Int32Array | Uint32Array): void {
  if (data.length !== t.size) {
    throw new Error(`webqat: assignData(): ${data.length} values for ${t.describe()}`);
  }
  engine().gpu.write(t.buf, data);
}

export function full(shape: Shape, value: number, dtype: DType = 'f32'): Tensor {
  const t = Tensor.empty(shape, dtype, 'full()');
  ew.fill(engine().gpu, t.buf, t.size, value, dtype);
  return t;
}

export const zeros = (shape: Shape, dtype: DType = 'f32') => full(shape, 0, dtype);
export const ones = (shape: Shape, dtype: DType = 'f32') => full(shape, 1, dtype);
export const zerosLike = (t: Tensor) => full(t.shape, 0, t.dtype);
export const onesLike = (t: Tensor) => full(t.shape, 1, t.dtype);

/** Fill an existing tensor in place (no autograd). */
export function fill_(t: Tensor, value: number): Tensor {
  ew.fill(engine().gpu, t.buf, t.size, value, t.dtype);
  return t;
}

/** A copy with its own buffer (no autograd link). */
export function clone(t: Tensor): Tensor {
  const out = Tensor.empty(t.shape, t.dtype, 'clone()');
  engine().gpu.copy(t.buf, 0, out.buf, 0, t.size * 4);
  return out;
}

/** Copy `src` into `dst` in place (same size; no autograd). */
export function copy_(dst: Tensor, src: Tensor): Tensor {
  if (dst.size !== src.size || dst.dtype !== src.dtype) {
    throw new Error(`webqat: copy_(): cannot copy ${src.describe()} into ${dst.describe()}`);
  }
  engine().gpu.copy(src.buf, 0, dst.buf, 0, src.size * 4);
  return dst;
}

export function cast(t: Tensor, dtype: DType): Tensor {
  if (t.dtype === dtype) return clone(t);
  const out = Tensor.empty(t.shape, dtype, 'cast()');
  ew.cast(engine().gpu, t.buf, t.dtype, out.buf, dtype, t.size);
  return out;
}

/** A tensor whose gradient is not tracked, sharing nothing with `t` (a copy). */
export function detach(t: Tensor): Tensor {
  return clone(t);
}
