/**
 * Data-moving views: transpose/permute, slice, concat, pad and gather. Each copies into a fresh
 * buffer through the strided-copy kernel (kernels/views.ts); the backward rules are the adjoint
 * copies (inverse permute, pad-with-zeros, slices, slice, deterministic scatter-add).
 */
import * as vk from '../../kernels/views.ts';
import { engine } from '../engine.ts';
import { record } from '../tape.ts';
import { type Shape, shapeSize, shapeStr, Tensor } from '../tensor.ts';
import { checkDtype, checkLive } from './check.ts';

function gpu() {
  return engine().gpu;
}

function normAxis(op: string, shape: Shape, axis: number): number {
  const r = shape.length;
  const k = axis < 0 ? axis + r : axis;
  if (!Number.isInteger(k) || k < 0 || k >= r) {
    throw new Error(`webqat: ${op}: axis ${axis} is out of range for shape ${shapeStr(shape)}`);
  }
  return k;
}

function permuteRaw(x: Tensor, perm: readonly number[]): Tensor {
  const y = Tensor.empty(perm.map((p) => x.shape[p]), x.dtype, 'permute');
  vk.permute(gpu(), x.buf, x.shape, perm, y.buf);
  return y;
}

/** y.shape[k] = x.shape[perm[k]]; backward permutes by the inverse permutation. */
export function permute(x: Tensor, perm: readonly number[]): Tensor {
  checkLive('permute', x);
  vk.checkPerm('permute', x.shape, perm);
  const y = permuteRaw(x, perm);
  if (x.dtype !== 'f32') return y;
  const inv = new Array<number>(perm.length);
  perm.forEach((p, k) => (inv[p] = k));
  return record('permute', [x], y, (g) => [permuteRaw(g, inv)]);
}

/** Permute axes; without `perm`, swap the last two (rank >= 2). */
export function transpose(x: Tensor, perm?: readonly number[]): Tensor {
  if (perm) return permute(x, perm);
  if (x.rank < 2) throw new Error(`webqat: transpose: needs rank >= 2 to swap the last two axes, got ${x.describe()}`);
  const p = x.shape.map((_, i) => i);
  [p[x.rank - 2], p[x.rank - 1]] = [p[x.rank - 1], p[x.rank - 2]];
  return permute(x, p);
}

function padRaw(x: Tensor, pads: readonly (readonly [number, number])[], value: number): Tensor {
  const y = Tensor.empty(x.shape.map((d, k) => d + pads[k][0] + pads[k][1]), x.dtype, 'pad');
  vk.pad(gpu(), x.buf, x.shape, pads, vk.valueBits(value, x.dtype), y.buf);
  return y;
}

function sliceRaw(x: Tensor, begin: readonly number[], size: readonly number[]): Tensor {
  const y = Tensor.empty(size, x.dtype, 'slice');
  vk.slice(gpu(), x.buf, x.shape, begin, size, y.buf);
  return y;
}

/**
 * x[begin[k] : begin[k] + size[k]] along every axis. `size[k] = -1` means "to the end"; missing
 * trailing entries of begin/size mean the whole axis. Backward scatters into zeros (a pad).
 */
export function slice(x: Tensor, begin: readonly number[], size: readonly number[]): Tensor {
  checkLive('slice', x);
  const r = x.rank;
  const bad = () =>
    new Error(`webqat: slice: begin [${begin.join(',')}] / size [${size.join(',')}] do not fit shape ${shapeStr(x.shape)}`);
  if (begin.length > r || size.length > r) throw bad();
  const b = x.shape.map((_, k) => begin[k] ?? 0);
  const s = x.shape.map((d, k) => {
    const v = size[k] ?? -1;
    return v === -1 ? d - b[k] : v;
  });
  for (let k = 0; k < r; k++) {
    if (!Number.isInteger(b[k]) || !Number.isInteger(s[k]) || b[k] < 0 || s[k] < 0 || b[k] + s[k] > x.shape[k]) throw bad();
  }
  const y = sliceRaw(x, b, s);
  if (x.dtype !== 'f32') return y;
  const pads = x.shape.map((d, k) => [b[k], d - b[k] - s[k]] as [number, number]);
  return record('slice', [x], y, (g) => [padRaw(g, pads, 0)]);
}

/** Pad every axis with `value`: pads[k] = [before, after] (non-negative; missing axes unpadded). */
export function pad(x: Tensor, pads: readonly (readonly [number, number])[], value = 0): Tensor {
  checkLive('pad', x);
  if (pads.length > x.rank) {
    throw new Error(`webqat: pad: ${pads.length} [before, after] pairs for ${x.describe()}`);
  }
  const full = x.shape.map((_, k) => pads[k] ?? [0, 0]);
  for (const p of full) {
    if (!Array.isArray(p) || p.length !== 2 || !p.every((v) => Number.isInteger(v) && v >= 0)) {
      throw new Error(`webqat: pad: pads must be non-negative integer [before, after] pairs, got ${JSON.stringify(pads)} for ${x.describe()}`);
    }
  }
  const y = padRaw(x, full, value);
  if (x.dtype !== 'f32') return y;
  return record('pad', [x], y, (g) => [sliceRaw(g, full.map((p) => p[0]), x.shape)]);
}

/** Join tensors along `axis`; all other dims must match. Backward slices the gradient apart. */
export function concat(xs: readonly Tensor[], axis: number): Tensor {
  if (xs.length === 0) throw new Error('webqat: concat: needs at least one tensor');
  checkLive('concat', ...xs);
  const first = xs[0];
  const ax = normAxis('concat', first.shape, axis);
  for (const t of xs) {
    const ok = t.dtype === first.dtype && t.rank === first.rank && t.shape.every((d, k) => k === ax || d === first.shape[k]);
    if (!ok) {
      throw new Error(
        `webqat: concat: along axis ${axis} every tensor needs dtype ${first.dtype} and shape ${shapeStr(first.shape)} ` +
          `apart from that axis, got ${xs.map((t) => t.describe()).join(', ')}`,
      );
    }
  }
  const outShape = [...first.shape];
  outShape[ax] = xs.reduce((s, t) => s + t.shape[ax], 0);
  const y = Tensor.empty(outShape, first.dtype, 'concat');
  const offsets: number[] = [];
  let off = 0;
  for (const t of xs) {
    offsets.push(off);
    vk.copyInto(gpu(), t.buf, t.shape, y.buf, outShape, ax, off);
    off += t.shape[ax];
  }
  if (first.dtype !== 'f32') return y;
  return record('concat', xs, y, (g, needs) =>
    xs.map((t, i) => {
      if (!needs[i]) return null;
      const b = outShape.map((_, k) => (k === ax ? offsets[i] : 0));
      return sliceRaw(g, b, t.shape);
    }));
}

/**
 * Select entries along `axis` by i32 `indices` (NumPy `take`):
 * out.shape = x.shape[:axis] ++ indices.shape ++ x.shape[axis+1:].
 * Indices outside [0, x.shape[axis]) read as 0 and receive no gradient. The backward is a
 * deterministic scatter-add (each input-gradient element sums the entries that selected it).
 */
export function gather(x: Tensor, indices: Tensor, axis: number): Tensor {
  checkLive('gather', x, indices);
  checkDtype('gather', indices, 'i32');
  const ax = normAxis('gather', x.shape, axis);
  const outShape = [...x.shape.slice(0, ax), ...indices.shape, ...x.shape.slice(ax + 1)];
  const outer = shapeSize(x.shape.slice(0, ax));
  const inner = shapeSize(x.shape.slice(ax + 1));
  const dim = x.shape[ax];
  const nIdx = indices.size;
  const y = Tensor.empty(outShape, x.dtype, 'gather');
  vk.gather(gpu(), x.buf, indices.buf, y.buf, outer, dim, inner, nIdx);
  if (x.dtype !== 'f32') return y;
  return record('gather', [x], y, (g) => {
    const dx = Tensor.empty(x.shape, 'f32', 'gather backward');
    vk.gatherBackward(gpu(), g.buf, indices.buf, dx.buf, outer, dim, inner, nIdx);
    return [dx];
  });
}
