/**
 * conv2d(x [N, C, H, W], w [O, C/groups, kh, kw], bias [O] | null, { stride, padding, dilation, groups })
 * -> [N, O, Ho, Wo], Ho = floor((H + 2·padding - dilation·(kh - 1) - 1) / stride) + 1 (likewise Wo).
 * stride, padding and dilation are a number or an [h, w] pair.
 *
 * Forward and both gradients are implicit GEMMs (kernels/conv.ts); the bias is fused into the
 * forward, and its gradient is the sum of dy over N, Ho, Wo (a deterministic reduction).
 */
import * as ck from '../../kernels/conv.ts';
import * as rk from '../../kernels/reduce.ts';
import { engine } from '../engine.ts';
import { record } from '../tape.ts';
import { shapeStr, Tensor } from '../tensor.ts';
import { checkLive } from './check.ts';

export type Pair = number | readonly [number, number];

export interface Conv2dOptions {
  stride?: Pair;
  padding?: Pair;
  dilation?: Pair;
  groups?: number;
}

function pair(op: string, name: string, v: Pair, min: number, desc: () => string): [number, number] {
  const [a, b] = typeof v === 'number' ? [v, v] : v;
  if (!Number.isInteger(a) || !Number.isInteger(b) || a < min || b < min) {
    throw new Error(`webqat: ${op}: ${name} must be ${min === 0 ? 'an integer >= 0' : 'a positive integer'} (or a pair), got ${JSON.stringify(v)} for ${desc()}`);
  }
  return [a, b];
}

/** Validate conv2d arguments and return the geometry. */
export function conv2dGeom(x: Tensor, w: Tensor, bias: Tensor | null, opts: Conv2dOptions = {}): ck.ConvGeom {
  const op = 'conv2d';
  const desc = () =>
    `x ${x.dtype}${shapeStr(x.shape)}, w ${w.dtype}${shapeStr(w.shape)}${bias ? `, bias ${bias.dtype}${shapeStr(bias.shape)}` : ''}`;
  checkLive(op, x, w, ...(bias ? [bias] : []));
  if (x.dtype !== 'f32' || w.dtype !== 'f32' || (bias && bias.dtype !== 'f32')) throw new Error(`webqat: ${op}: expected f32 tensors, got ${desc()}`);
  if (x.rank !== 4) throw new Error(`webqat: ${op}: x must be [N, C, H, W] (rank 4), got ${desc()}`);
  if (w.rank !== 4) throw new Error(`webqat: ${op}: w must be [O, C/groups, kh, kw] (rank 4), got ${desc()}`);
  const groups = opts.groups ?? 1;
  if (!Number.isInteger(groups) || groups < 1) throw new Error(`webqat: ${op}: groups must be a positive integer, got ${groups} for ${desc()}`);
  const [sh, sw] = pair(op, 'stride', opts.stride ?? 1, 1, desc);
  const [ph, pw] = pair(op, 'padding', opts.padding ?? 0, 0, desc);
  const [dh, dw] = pair(op, 'dilation', opts.dilation ?? 1, 1, desc);
  const [N, C, H, W] = x.shape;
  const [O, Cg, kh, kw] = w.shape;
  if (N < 1 || C < 1 || H < 1 || W < 1 || O < 1 || Cg < 1 || kh < 1 || kw < 1) throw new Error(`webqat: ${op}: empty tensor: ${desc()}`);
  if (C % groups || O % groups) {
    throw new Error(`webqat: ${op}: groups (${groups}) must divide both C (${C}) and O (${O}): ${desc()}`);
  }
  if (Cg * groups !== C) {
    throw new Error(`webqat: ${op}: channel mismatch: x has C = ${C} but w.shape[1] * groups = ${Cg} * ${groups} = ${Cg * groups}: ${desc()}`);
  }
  if (bias && (bias.rank !== 1 || bias.shape[0] !== O)) throw new Error(`webqat: ${op}: bias must be [${O}], got ${desc()}`);
  const Ho = ck.convOutSize(H, kh, sh, ph, dh);
  const Wo = ck.convOutSize(W, kw, sw, pw, dw);
  if (Ho < 1 || Wo < 1) {
    throw new Error(
      `webqat: ${op}: kernel ${kh}x${kw} (dilation ${dh}x${dw}) is larger than the padded input ${H + 2 * ph}x${W + 2 * pw}: ${desc()}`,
    );
  }
  return { N, C, H, W, O, kh, kw, sh, sw, ph, pw, dh, dw, groups, Ho, Wo };
}

/** 2-D convolution, NCHW (see the module comment). */
export function conv2d(x: Tensor, w: Tensor, bias: Tensor | null = null, opts: Conv2dOptions = {}): Tensor {
  const g = conv2dGeom(x, w, bias, opts);
  const gpu = engine().gpu;
  const y = Tensor.empty([g.N, g.O, g.Ho, g.Wo], 'f32', 'conv2d');
  ck.conv2dForward(gpu, g, x.buf, w.buf, bias?.buf ?? null, y.buf);
  const inputs = bias ? [x, w, bias] : [x, w];
  return record('conv2d', inputs, y, (dy, needs) => {
    const gpu = engine().gpu;
    let dx: Tensor | null = null;
    let dw: Tensor | null = null;
    let db: Tensor | null = null;
    if (needs[0]) {
      dx = Tensor.empty(x.shape, 'f32', 'conv2d backward');
      ck.conv2dBackwardData(gpu, g, dy.buf, w.buf, dx.buf);
    }
    if (bias && needs[2]) db = Tensor.empty([g.O], 'f32', 'conv2d backward');
    if (needs[1]) {
      dw = Tensor.empty(w.shape, 'f32', 'conv2d backward');
      // the bias gradient (sum of dy) rides along with the weight gradient's pass over dy
      ck.conv2dBackwardWeight(gpu, g, dy.buf, x.buf, dw.buf, 'conv2d backward', db?.buf ?? null);
    } else if (db) {
      rk.reduce(gpu, 'sum', dy.buf, [g.N, g.O, g.Ho, g.Wo], [0, 2, 3], db.buf);
    }
    return bias ? [dx, dw, db] : [dx, dw];
  });
}
