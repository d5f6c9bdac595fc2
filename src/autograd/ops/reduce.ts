/** Reductions (sum, mean, max, min, argmax, argmin) and `sumTo`, the adjoint of broadcasting. */
import * as rk from '../../kernels/reduce.ts';
import { engine } from '../engine.ts';
import { record } from '../tape.ts';
import { type Shape, shapeStr, Tensor } from '../tensor.ts';
import { checkDtype } from './check.ts';
import { clone } from './creation.ts';
import { div, expand, mul, mulScalar, eqMask } from './elementwise.ts';

function outShape(shape: Shape, axes: number[], keepDims: boolean): number[] {
  return keepDims ? shape.map((d, i) => (axes.includes(i) ? 1 : d)) : shape.filter((_, i) => !axes.includes(i));
}

function launch(op: rk.ReduceOp, x: Tensor, axes: number[], keepDims: boolean): Tensor {
  const out = Tensor.empty(outShape(x.shape, axes, keepDims), op === 'argmax' || op === 'argmin' ? 'i32' : 'f32', op);
  rk.reduce(engine().gpu, op, x.buf, x.shape, axes, out.buf);
  return out;
}


export function sum(x: Tensor, axes?: number | readonly number[], keepDims = false): Tensor {
  checkDtype('sum', x, 'f32');
  const ax = rk.normAxes('sum', x.shape, axes);
  const out = launch('sum', x, ax, keepDims);
  return record('sum', [x], out, (g) => {
    const gk = g.viewAs(outShape(x.shape, ax, true));
    const r = expand(gk, x.shape);
    gk.release();
    return [r];
  });
}

export function mean(x: Tensor, axes?: number | readonly number[], keepDims = false): Tensor {
  checkDtype('mean', x, 'f32');
  const ax = rk.normAxes('mean', x.shape, axes);
  const n = ax.reduce((s, a) => s * x.shape[a], 1);
  if (n === 0) {
    throw new Error(`webqat: mean: the mean over ${ax.length === x.rank ? 'all axes' : `axes [${ax.join(',')}]`} of ${x.describe()} averages 0 elements (PyTorch gives NaN); check for an empty tensor before averaging`);
  }
  const out = launch('mean', x, ax, keepDims);
  return record('mean', [x], out, (g) => {
    const gk = g.viewAs(outShape(x.shape, ax, true));
    const r = expand(gk, x.shape);
    gk.release();
    const scaled = mulScalar(r, 1 / n);
    r.release();
    return [scaled];
  });
}


function minmax(op: 'max' | 'min', x: Tensor, axes?: number | readonly number[], keepDims = false): Tensor {
  checkDtype(op, x, 'f32');
  const ax = rk.normAxes(op, x.shape, axes);
  const out = launch(op, x, ax, keepDims);
  return record(op, [x], out, (g) => {
    // gradient flows to the elements equal to the extreme value; ties share it equally
    const kshape = outShape(x.shape, ax, true);
    const ok = out.viewAs(kshape);
    const mask = eqMask(x, ok); // 1 where x == max, broadcast
    ok.release();
    const count = Tensor.empty(kshape, 'f32', `${op} backward`);
    rk.reduce(engine().gpu, 'sum', mask.buf, mask.shape, ax, count.buf);
    const gk = g.viewAs(kshape);
    const share = div(gk, count);
    gk.release();
    count.release();
    const r = mul(mask, share);
    share.release();
    mask.release();
    return [r];
  });
}

export const max = (x: Tensor, axes?: number | readonly number[], keepDims = false) => minmax('max', x, axes, keepDims);
export const min = (x: Tensor, axes?: number | readonly number[], keepDims = false) => minmax('min', x, axes, keepDims);

/** Index (i32) of the largest value along one axis. */
export function argmax(x: Tensor, axis = -1, keepDims = false): Tensor {
  checkDtype('argmax', x, 'f32');
  return launch('argmax', x, rk.normAxes('argmax', x.shape, axis), keepDims);
}

export function argmin(x: Tensor, axis = -1, keepDims = false): Tensor {
  checkDtype('argmin', x, 'f32');
  return launch('argmin', x, rk.normAxes('argmin', x.shape, axis), keepDims);
}

/** Sum `g` down to `shape` (the reverse of broadcasting `shape` up to g.shape). */
export function sumTo(g: Tensor, shape: Shape): Tensor {
  if (g.shape.length === shape.length && g.shape.every((d, i) => d === shape[i])) return clone(g);
  const r = g.shape.length;
  if (shape.length > r) throw new Error(`webqat: sumTo: cannot reduce ${shapeStr(g.shape)} to ${shapeStr(shape)}`);
  const axes: number[] = [];
  for (let k = 0; k < r; k++) {
    const j = k - (r - shape.length);
    if (j < 0 || (shape[j] === 1 && g.shape[k] !== 1)) axes.push(k);
  }
  const out = Tensor.empty(shape, 'f32', 'sumTo');
  rk.reduce(engine().gpu, 'sum', g.buf, g.shape, axes, out.buf);
  return out;
}
