/**
 * Spatial shift ops (ALGORITHMS §1.7):
 *  - `activeShift(x, shift, { stride, padding, round })`: ASL, per-channel learnable real offsets
 *    `shift` [2, C] (row 0 = horizontal a_c, row 1 = vertical b_c), bilinear, y[h, w] samples
 *    x[h·s − p + b_c, w·s − p + a_c]. Gradients to x (gather form) and to the offsets.
 *    `round: true` is the sparse shift (SSL): rounded offsets forward, bilinear offset gradient (STE).
 *  - `sparseShift(x, shift, opts)` = activeShift with round, and `shiftL1(shift, λ)` its L1 penalty.
 *  - `groupedShift(x, { kernel, dilation })`: fixed integer shifts (Wu et al.), modulo assignment;
 *    gradient to x only (the same kernel with negated offsets).
 *  - `shiftConv1x1(x, shift, w, opts)`: fused shift then 1×1 convolution (no bias), one tiled GEMM
 *    whose operand is sampled on the fly; equal to `conv2d(activeShift(x, shift, opts), w)`.
 */
import * as sk from '../../kernels/shift.ts';
import type { Gpu } from '../../gpu/index.ts';
import { engine } from '../engine.ts';
import { record } from '../tape.ts';
import { shapeStr, Tensor } from '../tensor.ts';
import { checkDtype } from './check.ts';
import { tensor } from './creation.ts';
import { abs, mulScalar } from './elementwise.ts';
import { sum } from './reduce.ts';

const gpu = () => engine().gpu;

export interface ShiftOptions {
  /** output stride s (default 1): H_out = ⌊(H + 2p − 1)/s⌋ + 1 */
  stride?: number;
  /** padding p of the output grid (default 0) */
  padding?: number;
  /** sparse shift: round the offsets in the forward pass (default false) */
  round?: boolean;
}

function geomOf(op: string, x: Tensor, shift: Tensor, opts: ShiftOptions): sk.ShiftGeom {
  checkDtype(op, x, 'f32');
  checkDtype(op, shift, 'f32');
  if (x.rank !== 4) throw new Error(`webqat: ${op}: x must be [N, C, H, W] (rank 4), got ${x.describe()}`);
  const [N, C, H, W] = x.shape;
  if (shift.rank !== 2 || shift.shape[0] !== 2 || shift.shape[1] !== C) {
    throw new Error(`webqat: ${op}: shift must be [2, ${C}] (row 0 = x offsets, row 1 = y offsets) for x ${shapeStr(x.shape)}, got ${shift.describe()}`);
  }
  const stride = opts.stride ?? 1;
  const pad = opts.padding ?? 0;
  if (!Number.isInteger(stride) || stride < 1) throw new Error(`webqat: ${op}: stride must be a positive integer, got ${stride}`);
  if (!Number.isInteger(pad) || pad < 0) throw new Error(`webqat: ${op}: padding must be an integer >= 0, got ${pad}`);
  return { N, C, H, W, Ho: sk.shiftOutSize(H, stride, pad), Wo: sk.shiftOutSize(W, stride, pad), stride, pad };
}

/** Active shift (ASL) / sparse shift: see the module comment. Returns [N, C, Ho, Wo]. */
export function activeShift(x: Tensor, shift: Tensor, opts: ShiftOptions = {}): Tensor {
  const op = opts.round ? 'sparseShift' : 'activeShift';
  const g = geomOf(op, x, shift, opts);
  const round = !!opts.round;
  const y = Tensor.empty([g.N, g.C, g.Ho, g.Wo], 'f32', op);
  sk.shiftForward(gpu(), g, x.buf, shift.buf, y.buf, round);
  return record(op, [x, shift], y, (gy, needs) => {
    let gx: Tensor | null = null;
    let gs: Tensor | null = null;
    if (needs[0]) {
      gx = Tensor.empty(x.shape, 'f32', `${op} backward`);
      sk.shiftBackwardInput(gpu(), g, gy.buf, shift.buf, gx.buf, round);
    }
    if (needs[1]) {
      gs = Tensor.empty(shift.shape, 'f32', `${op} backward (offsets)`);
      sk.shiftBackwardOffsets(gpu(), g, x.buf, gy.buf, shift.buf, gs.buf);
    }
    return [gx, gs];
  });
}

/** Sparse shift (SSL): integer (rounded) shifts forward, bilinear offset gradient. */
export function sparseShift(x: Tensor, shift: Tensor, opts: Omit<ShiftOptions, 'round'> = {}): Tensor {
  return activeShift(x, shift, { ...opts, round: true });
}

/** L1 penalty λ·Σ_c (|a_c| + |b_c|) on shift offsets (a scalar [] tensor, differentiable). */
export function shiftL1(shift: Tensor, lambda: number): Tensor {
  checkDtype('shiftL1', shift, 'f32');
  return mulScalar(sum(abs(shift)), lambda);
}

/**
 * Offsets of the grouped fixed shift, [2, C] row-major: channel c < ⌊C/k²⌋·k² gets
 * dx = (c mod k) − ⌊k/2⌋, dy = (⌊c/k⌋ mod k) − ⌊k/2⌋ (times dilation); the rest are unshifted.
 */
export function groupedShiftOffsets(channels: number, kernel = 3, dilation = 1): Float32Array {
  const out = new Float32Array(2 * channels);
  const k2 = kernel * kernel;
  const limit = Math.floor(channels / k2) * k2;
  const half = Math.floor(kernel / 2);
  for (let c = 0; c < limit; c++) {
    out[c] = ((c % kernel) - half) * dilation;
    out[channels + c] = ((Math.floor(c / kernel) % kernel) - half) * dilation;
  }
  return out;
}

const groupedCache = new WeakMap<Gpu, Map<string, Tensor>>();

/** Grouped fixed shift (Wu et al. 2018): y[n,c,h,w] = x[n,c,h+dy_c,w+dx_c], 0 outside; gradient to x. */
export function groupedShift(x: Tensor, opts: { kernel?: number; dilation?: number } = {}): Tensor {
  const op = 'groupedShift';
  checkDtype(op, x, 'f32');
  if (x.rank !== 4) throw new Error(`webqat: ${op}: x must be [N, C, H, W] (rank 4), got ${x.describe()}`);
  const k = opts.kernel ?? 3;
  const d = opts.dilation ?? 1;
  if (!Number.isInteger(k) || k < 1 || k % 2 === 0) throw new Error(`webqat: ${op}: kernel must be an odd positive integer, got ${k}`);
  if (!Number.isInteger(d) || d < 1) throw new Error(`webqat: ${op}: dilation must be a positive integer, got ${d}`);
  const C = x.shape[1];
  const g = gpu();
  let cache = groupedCache.get(g);
  if (!cache) groupedCache.set(g, (cache = new Map()));
  const key = `${C}:${k}:${d}`;
  let offs = cache.get(key);
  if (!offs || offs.released) {
    offs = tensor(groupedShiftOffsets(C, k, d), [2, C]).keep();
    cache.set(key, offs);
  }
  const geom = geomOf(op, x, offs, {});
  const y = Tensor.empty(x.shape, 'f32', op);
  sk.shiftForward(g, geom, x.buf, offs.buf, y.buf, true);
  const saved = offs;
  return record(op, [x], y, (gy) => {
    const gx = Tensor.empty(x.shape, 'f32', `${op} backward`);
    sk.shiftBackwardInput(gpu(), geom, gy.buf, saved.buf, gx.buf, true);
    return [gx];
  });
}

/**
 * Fused shift + 1×1 convolution: conv2d(activeShift(x, shift, opts), w) in one tiled GEMM
 * (the shifted activation is sampled inside the GEMM and never stored). w: [O, C] or [O, C, 1, 1].
 * Returns [N, O, Ho, Wo]; gradients to x, shift and w.
 */
export function shiftConv1x1(x: Tensor, shift: Tensor, w: Tensor, opts: ShiftOptions = {}): Tensor {
  const op = 'shiftConv1x1';
  const g = geomOf(op, x, shift, opts);
  checkDtype(op, w, 'f32');
  const ok = (w.rank === 2 || (w.rank === 4 && w.shape[2] === 1 && w.shape[3] === 1)) && w.shape[1] === g.C;
  if (!ok) throw new Error(`webqat: ${op}: w must be [O, ${g.C}] or [O, ${g.C}, 1, 1] for x ${shapeStr(x.shape)}, got ${w.describe()}`);
  const O = w.shape[0];
  const round = !!opts.round;
  const y = Tensor.empty([g.N, O, g.Ho, g.Wo], 'f32', op);
  sk.shiftConvForward(gpu(), g, O, x.buf, shift.buf, w.buf, y.buf, round);
  return record(op, [x, shift, w], y, (gy, needs) => {
    const G = gpu();
    let gx: Tensor | null = null;
    let gs: Tensor | null = null;
    let gw: Tensor | null = null;
    if (needs[0] || needs[1]) {
      const gsh = Tensor.empty([g.N, g.C, g.Ho, g.Wo], 'f32', `${op} backward (shifted)`);
      sk.shiftConvGradShifted(G, g, O, gy.buf, w.buf, gsh.buf);
      if (needs[0]) {
        gx = Tensor.empty(x.shape, 'f32', `${op} backward`);
        sk.shiftBackwardInput(G, g, gsh.buf, shift.buf, gx.buf, round);
      }
      if (needs[1]) {
        gs = Tensor.empty(shift.shape, 'f32', `${op} backward (offsets)`);
        sk.shiftBackwardOffsets(G, g, x.buf, gsh.buf, shift.buf, gs.buf);
      }
      gsh.release();
    }
    if (needs[2]) {
      gw = Tensor.empty(w.shape, 'f32', `${op} backward (weights)`);
      sk.shiftConvGradWeight(G, g, O, x.buf, shift.buf, gy.buf, gw.buf, round);
    }
    return [gx, gs, gw];
  });
}
