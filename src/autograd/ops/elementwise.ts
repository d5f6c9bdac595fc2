/**
 * Differentiable elementwise ops. Each op is its forward (a kernel launch) and its backward rule,
 * side by side. Binary ops broadcast like NumPy; their backward sums the gradient back to each
 * input's shape (`sumTo`). A number operand becomes a scalar kernel parameter (no upload).
 */
import * as ew from '../../kernels/elementwise.ts';
import { engine } from '../engine.ts';
import { record } from '../tape.ts';
import { type Shape, Tensor } from '../tensor.ts';
import { checkDtype, checkLive } from './check.ts';
import { sumTo } from './reduce.ts';

function gpu() {
  return engine().gpu;
}

// ------------------------------------------------------------------ unary

function unaryRaw(op: ew.UnaryOp, x: Tensor, a = 0, b = 0): Tensor {
  checkDtype(op, x, 'f32');
  const y = Tensor.empty(x.shape, 'f32', op);
  ew.unary(gpu(), op, x.buf, y.buf, x.size, a, b);
  return y;
}

/** y = f(x) with backward g * df(x) where df is built from other ops (returns a fresh tensor). */
function unaryOp(op: ew.UnaryOp, x: Tensor, dfn: (x: Tensor, y: Tensor, g: Tensor) => Tensor, a = 0, b = 0): Tensor {
  const y = unaryRaw(op, x, a, b);
  return record(op, [x], y, (g) => [dfn(x, y, g)]);
}

export const neg = (x: Tensor) => unaryOp('neg', x, (_x, _y, g) => unaryRaw('neg', g));
export const abs = (x: Tensor) => unaryOp('abs', x, (x, _y, g) => mulWith(g, x, 'sign'));
/** sign(x); zero gradient (use an STE op from src/quant for a straight-through sign) */
export const sign = (x: Tensor) => unaryOp('sign', x, (_x, _y, g) => unaryRaw('affine', g, 0, 0));
export const exp = (x: Tensor) => unaryOp('exp', x, (_x, y, g) => mulRaw(g, y));
export const log = (x: Tensor) => unaryOp('log', x, (x, _y, g) => binRaw('div', g, x));
export const sqrt = (x: Tensor) =>
  unaryOp('sqrt', x, (_x, y, g) => {
    const t = binRaw('div', g, y);
    const r = unaryRaw('affine', t, 0.5, 0);
    t.release();
    return r;
  });
export const relu = (x: Tensor) => unaryOp('relu', x, (x, _y, g) => mulWith(g, x, 'reluMask'));
export const sigmoid = (x: Tensor) =>
  unaryOp('sigmoid', x, (_x, y, g) => {
    // g * y * (1 - y)
    const om = unaryRaw('affine', y, -1, 1);
    const t = mulRaw(y, om);
    om.release();
    const r = mulRaw(g, t);
    t.release();
    return r;
  });
export const tanh = (x: Tensor) =>
  unaryOp('tanh', x, (_x, y, g) => {
    const y2 = unaryRaw('square', y);
    const om = unaryRaw('affine', y2, -1, 1);
    y2.release();
    const r = mulRaw(g, om);
    om.release();
    return r;
  });
export const square = (x: Tensor) =>
  unaryOp('square', x, (x, _y, g) => {
    const t = mulRaw(g, x);
    const r = unaryRaw('affine', t, 2, 0);
    t.release();
    return r;
  });
/** clamp(x, lo, hi); gradient passes where lo <= x <= hi */
export const clamp = (x: Tensor, lo: number, hi: number) =>
  unaryOp('clamp', x, (x, _y, g) => mulWith(g, x, 'inRange', lo, hi), lo, hi);
/** x ** p for a scalar exponent p */
export const powScalar = (x: Tensor, p: number) =>
  unaryOp('powScalar', x, (x, _y, g) => {
    const t = unaryRaw('powScalar', x, p - 1);
    const u = unaryRaw('affine', t, p, 0);
    t.release();
    const r = mulRaw(g, u);
    u.release();
    return r;
  }, p);
/** x * s + b */
export const affine = (x: Tensor, s: number, b: number) =>
  unaryOp('affine', x, (_x, _y, g) => unaryRaw('affine', g, s, 0), s, b);
export const mulScalar = (x: Tensor, s: number) => affine(x, s, 0);
export const addScalar = (x: Tensor, b: number) => affine(x, 1, b);

/** g * k(x), where k is a unary kernel (no autograd) */
function mulWith(g: Tensor, x: Tensor, k: ew.UnaryOp, a = 0, b = 0): Tensor {
  checkDtype(k, g, 'f32');
  checkDtype(k, x, 'f32');
  if (g.size !== x.size) throw new Error(`webqat: ${k} backward: gradient ${g.describe()} and input ${x.describe()} differ in size`);
  const r = Tensor.empty(x.shape, 'f32', k);
  ew.unaryGate(gpu(), k, g.buf, x.buf, r.buf, x.size, a, b);
  return r;
}

// ------------------------------------------------------------------ binary

function binRaw(op: ew.BinaryOp, a: Tensor, b: Tensor): Tensor {
  checkLive(op, a, b);
  if (a.dtype !== b.dtype) {
    throw new Error(`webqat: ${op}: dtypes differ: ${a.describe()} and ${b.describe()}`);
  }
  const shape = ew.broadcastShapes(op, a.shape, b.shape);
  const y = Tensor.empty(shape, ew.COMPARISONS.has(op) ? 'f32' : a.dtype, op);
  ew.binary(gpu(), op, a.buf, a.shape, b.buf, b.shape, y.buf, shape, a.dtype);
  return y;
}

function mulRaw(a: Tensor, b: Tensor): Tensor {
  return binRaw('mul', a, b);
}

/** reduce a gradient to an input's shape, releasing the full-size one when a reduction was needed */
function reduceTo(g: Tensor, shape: Shape): Tensor {
  if (ew.sameShape(g.shape, shape)) return g;
  const r = sumTo(g, shape);
  g.release();
  return r;
}

type Operand = Tensor | number;

function binaryOp(
  op: ew.BinaryOp,
  a: Operand,
  b: Operand,
  scalarB: ((a: Tensor, s: number) => Tensor) | null,
  scalarA: ((s: number, b: Tensor) => Tensor) | null,
  back: (a: Tensor, b: Tensor, y: Tensor, g: Tensor, needs: readonly boolean[]) => (Tensor | null)[],
): Tensor {
  if (typeof b === 'number' && typeof a !== 'number' && scalarB) return scalarB(a, b);
  if (typeof a === 'number' && typeof b !== 'number' && scalarA) return scalarA(a, b);
  if (typeof a === 'number' || typeof b === 'number') {
    throw new Error(`webqat: ${op}: needs at least one tensor operand`);
  }
  checkDtype(op, a, 'f32', 'i32', 'u32');
  const y = binRaw(op, a, b);
  if (a.dtype !== 'f32' || ew.COMPARISONS.has(op)) return y;
  return record(op, [a, b], y, (g, needs) => {
    const gs = back(a, b, y, g, needs);
    return gs.map((gi, i) => (gi ? reduceTo(gi, i === 0 ? a.shape : b.shape) : null));
  });
}

/**
 * The gradient `g` itself for an input of the output's shape (the tape gives each input its own
 * tensor, cloning where one is passed to two inputs), else a copy that `reduceTo` sums and releases.
 */
function passOrCopy(g: Tensor, x: Tensor, y: Tensor): Tensor {
  return ew.sameShape(x.shape, y.shape) ? g : unaryRaw('affine', g, 1, 0);
}

export const add = (a: Operand, b: Operand): Tensor =>
  binaryOp('add', a, b, addScalar, (s, b) => addScalar(b, s), (a, b, y, g, n) => [
    n[0] ? passOrCopy(g, a, y) : null,
    n[1] ? passOrCopy(g, b, y) : null,
  ]);
export const sub = (a: Operand, b: Operand): Tensor =>
  binaryOp('sub', a, b, (a, s) => addScalar(a, -s), (s, b) => affine(b, -1, s), (a, _b, y, g, n) => [
    n[0] ? passOrCopy(g, a, y) : null,
    n[1] ? unaryRaw('neg', g) : null,
  ]);
export const mul = (a: Operand, b: Operand): Tensor =>
  binaryOp('mul', a, b, mulScalar, (s, b) => mulScalar(b, s), (a, b, _y, g, n) => [
    n[0] ? mulRaw(g, b) : null,
    n[1] ? mulRaw(g, a) : null,
  ]);
export const div = (a: Operand, b: Operand): Tensor =>
  binaryOp('div', a, b, (a, s) => mulScalar(a, 1 / s), (s, b) => mulScalar(unaryOp('reciprocal', b, (b, y, g) => {
    const y2 = unaryRaw('square', y);
    const t = mulRaw(g, y2);
    y2.release();
    const r = unaryRaw('neg', t);
    t.release();
    return r;
  }), s), (a, b, y, g, n) => {
    const ga = n[0] ? binRaw('div', g, b) : null;
    let gb: Tensor | null = null;
    if (n[1]) {
      // -g * y / b
      const t = mulRaw(g, y);
      const u = binRaw('div', t, b);
      t.release();
      gb = unaryRaw('neg', u);
      u.release();
    }
    return [ga, gb];
  });
/** a ** b elementwise (a > 0 where b is not an integer) */
export const pow = (a: Operand, b: Operand): Tensor =>
  binaryOp('pow', a, b, powScalar, null, (a, b, y, g, n) => {
    let ga: Tensor | null = null;
    let gb: Tensor | null = null;
    if (n[0]) {
      // g * b * a^(b-1) = g * b * y / a
      const t = mulRaw(g, b);
      const u = mulRaw(t, y);
      t.release();
      ga = binRaw('div', u, a);
      u.release();
    }
    if (n[1]) {
      const la = unaryRaw('log', a);
      const t = mulRaw(g, y);
      gb = mulRaw(t, la);
      t.release();
      la.release();
    }
    return [ga, gb];
  });
export const maximum = (a: Tensor, b: Tensor): Tensor =>
  binaryOp('maximum', a, b, null, null, (a, b, _y, g, n) => {
    const m = binRaw('ge', a, b);
    const ga = n[0] ? mulRaw(g, m) : null;
    let gb: Tensor | null = null;
    if (n[1]) {
      const om = unaryRaw('affine', m, -1, 1);
      gb = mulRaw(g, om);
      om.release();
    }
    m.release();
    return [ga, gb];
  });
export const minimum = (a: Tensor, b: Tensor): Tensor =>
  binaryOp('minimum', a, b, null, null, (a, b, _y, g, n) => {
    const m = binRaw('le', a, b);
    const ga = n[0] ? mulRaw(g, m) : null;
    let gb: Tensor | null = null;
    if (n[1]) {
      const om = unaryRaw('affine', m, -1, 1);
      gb = mulRaw(g, om);
      om.release();
    }
    m.release();
    return [ga, gb];
  });

// comparisons: 0/1 float results, no gradient
export const gt = (a: Tensor, b: Tensor) => binRaw('gt', a, b);
export const ge = (a: Tensor, b: Tensor) => binRaw('ge', a, b);
export const lt = (a: Tensor, b: Tensor) => binRaw('lt', a, b);
export const le = (a: Tensor, b: Tensor) => binRaw('le', a, b);
export const eq = (a: Tensor, b: Tensor) => binRaw('eq', a, b);
export const ne = (a: Tensor, b: Tensor) => binRaw('ne', a, b);

/** 1 where x equals m (m broadcast to x), else 0 — the routing mask of max/min backward */
export const eqMask = (x: Tensor, m: Tensor) => binRaw('eq', x, m);

/** Broadcast `x` to `shape` (a copy; its backward sums back). */
export function expand(x: Tensor, shape: Shape): Tensor {
  const out = ew.broadcastShapes('expand', x.shape, shape);
  if (out.length !== shape.length || out.some((d, i) => d !== shape[i])) {
    throw new Error(`webqat: expand: cannot broadcast [${x.shape}] to [${shape}]`);
  }
  const zero = Tensor.empty([1], x.dtype, 'expand');
  ew.fill(gpu(), zero.buf, 1, 0, x.dtype);
  const y = Tensor.empty(shape, x.dtype, 'expand');
  ew.binary(gpu(), 'add', x.buf, x.shape, zero.buf, [1], y.buf, shape, x.dtype);
  zero.release();
  return record('expand', [x], y, (g) => [sumTo(g, x.shape)]);
}

/** cond != 0 ? a : b with broadcasting; gradient flows to the chosen side */
export function where(cond: Tensor, a: Tensor, b: Tensor): Tensor {
  checkDtype('where', cond, 'f32');
  checkDtype('where', a, 'f32');
  checkDtype('where', b, 'f32');
  const s1 = ew.broadcastShapes('where', cond.shape, a.shape);
  const shape = ew.broadcastShapes('where', s1, b.shape);
  const y = Tensor.empty(shape, 'f32', 'where');
  ew.where(gpu(), cond.buf, cond.shape, a.buf, a.shape, b.buf, b.shape, y.buf, shape);
  return record('where', [a, b], y, (g, n) => {
    const zero = Tensor.empty([1], 'f32', 'where');
    ew.fill(gpu(), zero.buf, 1, 0);
    const mk = (first: boolean, s: Shape) => {
      const t = Tensor.empty(shape, 'f32', 'where');
      if (first) ew.where(gpu(), cond.buf, cond.shape, g.buf, g.shape, zero.buf, [1], t.buf, shape);
      else ew.where(gpu(), cond.buf, cond.shape, zero.buf, [1], g.buf, g.shape, t.buf, shape);
      return reduceTo(t, s);
    };
    const r = [n[0] ? mk(true, a.shape) : null, n[1] ? mk(false, b.shape) : null];
    zero.release();
    return r;
  });
}
