/**
 * Pooling ops on [N, C, H, W]:
 *  - maxPool2d(x, { kernel, stride = kernel, padding = 0 }): padding is -inf (never selected);
 *    the gradient goes to the (first) maximum of each window. The argmax indices are saved as i32
 *    in the same GPU buffer as the output (after it, 256-byte aligned), so they live exactly as
 *    long as the output does.
 *  - avgPool2d(x, { kernel, stride = kernel, padding = 0 }): count_include_pad = true, as in
 *    PyTorch's default: every window is divided by kh·kw, padded zeros included.
 *  - globalAvgPool(x) -> [N, C]: the mean over H and W.
 * kernel, stride and padding are a number or an [h, w] pair; padding is at most half the kernel.
 */
import * as pk from '../../kernels/pool.ts';
import { ALIGN, subBuffer } from '../../gpu/index.ts';
import { engine } from '../engine.ts';
import { record } from '../tape.ts';
import { Tensor } from '../tensor.ts';
import { checkDtype } from './check.ts';
import type { Pair } from './conv.ts';

export interface Pool2dOptions {
  kernel: Pair;
  stride?: Pair;
  padding?: Pair;
}

function pair(op: string, name: string, v: Pair, min: number, x: Tensor): [number, number] {
  const [a, b] = typeof v === 'number' ? [v, v] : v;
  if (!Number.isInteger(a) || !Number.isInteger(b) || a < min || b < min) {
    throw new Error(`webqat: ${op}: ${name} must be ${min === 0 ? 'an integer >= 0' : 'a positive integer'} (or a pair), got ${JSON.stringify(v)} for ${x.describe()}`);
  }
  return [a, b];
}

function poolGeom(op: string, x: Tensor, o: Pool2dOptions): pk.PoolGeom {
  checkDtype(op, x, 'f32');
  if (x.rank !== 4 || x.size === 0) throw new Error(`webqat: ${op}: x must be a non-empty [N, C, H, W] (rank 4), got ${x.describe()}`);
  if (!o || o.kernel === undefined) throw new Error(`webqat: ${op}: options { kernel } are required, for ${x.describe()}`);
  const [kh, kw] = pair(op, 'kernel', o.kernel, 1, x);
  const [sh, sw] = pair(op, 'stride', o.stride ?? [kh, kw], 1, x);
  const [ph, pw] = pair(op, 'padding', o.padding ?? 0, 0, x);
  if (2 * ph > kh || 2 * pw > kw) {
    throw new Error(`webqat: ${op}: padding [${ph},${pw}] must be at most half the kernel ${kh}x${kw}, for ${x.describe()}`);
  }
  const [N, C, H, W] = x.shape;
  const Ho = pk.poolOutSize(H, kh, sh, ph);
  const Wo = pk.poolOutSize(W, kw, sw, pw);
  if (Ho < 1 || Wo < 1) {
    throw new Error(`webqat: ${op}: kernel ${kh}x${kw} is larger than the padded input ${H + 2 * ph}x${W + 2 * pw} of ${x.describe()}`);
  }
  return { N, C, H, W, kh, kw, sh, sw, ph, pw, Ho, Wo };
}

/** Max pooling; see the module comment. */
export function maxPool2d(x: Tensor, opts: Pool2dOptions): Tensor {
  const op = 'maxPool2d';
  const g = poolGeom(op, x, opts);
  const n = g.N * g.C * g.Ho * g.Wo;
  const yBytes = Math.ceil((n * 4) / ALIGN) * ALIGN;
  // one buffer: the output, then the i32 argmax
  const whole = Tensor.empty([yBytes / 4 + n], 'f32', op);
  const y = whole.viewAs([g.N, g.C, g.Ho, g.Wo]);
  whole.release();
  const yBuf = subBuffer(y.buf, 0, n * 4);
  const argBuf = subBuffer(y.buf, yBytes, n * 4);
  pk.maxPoolForward(engine().gpu, g, x.buf, yBuf, argBuf, op);
  return record(op, [x], y, (dy) => {
    const dx = Tensor.empty(x.shape, 'f32', `${op} backward`);
    pk.maxPoolBackward(engine().gpu, g, dy.buf, subBuffer(y.buf, yBytes, n * 4), dx.buf);
    return [dx];
  });
}

/** Average pooling (count_include_pad = true); see the module comment. */
export function avgPool2d(x: Tensor, opts: Pool2dOptions): Tensor {
  const op = 'avgPool2d';
  const g = poolGeom(op, x, opts);
  const y = Tensor.empty([g.N, g.C, g.Ho, g.Wo], 'f32', op);
  pk.avgPoolForward(engine().gpu, g, x.buf, y.buf, op);
  return record(op, [x], y, (dy) => {
    const dx = Tensor.empty(x.shape, 'f32', `${op} backward`);
    pk.avgPoolBackward(engine().gpu, g, dy.buf, dx.buf);
    return [dx];
  });
}

/** [N, C, H, W] -> [N, C]: the mean over H and W. */
export function globalAvgPool(x: Tensor): Tensor {
  const op = 'globalAvgPool';
  checkDtype(op, x, 'f32');
  if (x.rank !== 4 || x.size === 0) throw new Error(`webqat: ${op}: x must be a non-empty [N, C, H, W] (rank 4), got ${x.describe()}`);
  const [N, C, H, W] = x.shape;
  const y = Tensor.empty([N, C], 'f32', op);
  pk.globalAvgPoolForward(engine().gpu, N * C, H * W, x.buf, y.buf, op);
  return record(op, [x], y, (dy) => {
    const dx = Tensor.empty(x.shape, 'f32', `${op} backward`);
    pk.globalAvgPoolBackward(engine().gpu, N * C, H * W, dy.buf, dx.buf);
    return [dx];
  });
}
