/** Shape-only ops that share the buffer (no data movement). Data-moving views live in views.ts. */
import { record } from '../tape.ts';
import { type Shape, shapeSize, shapeStr, type Tensor } from '../tensor.ts';

/** Same data, new shape; one dimension may be -1. */
export function reshape(x: Tensor, shape: Shape): Tensor {
  const known = shape.filter((d) => d !== -1);
  const free = shape.length - known.length;
  if (free > 1) throw new Error(`webqat: reshape: at most one -1 in ${shapeStr(shape)}`);
  const k = shapeSize(known);
  const resolved = shape.map((d) => (d === -1 ? (k === 0 ? 0 : x.size / k) : d));
  if (shapeSize(resolved) !== x.size || resolved.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new Error(`webqat: reshape: cannot reshape ${x.describe()} (${x.size} values) to ${shapeStr(shape)}`);
  }
  const y = x.viewAs(resolved);
  return record('reshape', [x], y, (g) => [g.viewAs(x.shape)]);
}

export const flatten = (x: Tensor, startDim = 1): Tensor =>
  reshape(x, [...x.shape.slice(0, startDim), -1]);
