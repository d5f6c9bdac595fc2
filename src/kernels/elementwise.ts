/**
 * Elementwise kernels: unary maps (with two scalar parameters), binary maps with NumPy
 * broadcasting, the ternary select, fill and dtype cast. One pipeline per (op, dtype, layout).
 */
import { grid1d } from '../gpu/index.ts';
import { fmt, type GBuf, type Gpu, type KDType, mainSig, flatIndex, shapeError, stridesOf, Uniforms } from './common.ts';

/** Unary ops: WGSL expression of `v` (the input) and `a`, `b` (scalar parameters). */
export const UNARY = {
  neg: '-v',
  abs: 'abs(v)',
  sign: 'sign(v)',
  exp: 'exp(v)',
  log: 'log(v)',
  sqrt: 'sqrt(v)',
  rsqrt: 'inverseSqrt(v)',
  square: 'v * v',
  relu: 'max(v, 0.0)',
  sigmoid: '1.0 / (1.0 + exp(-v))',
  tanh: 'tanh(clamp(v, -30.0, 30.0))',
  // x * a + b
  affine: 'v * a + b',
  // v^a (a scalar exponent)
  powScalar: 'pow(v, a)',
  clamp: 'clamp(v, a, b)',
  // 1 where a <= v <= b else 0 (STE masks, clamp backward)
  inRange: 'select(0.0, 1.0, v >= a && v <= b)',
  gtScalar: 'select(0.0, 1.0, v > a)',
  reciprocal: '1.0 / v',
  round: 'round(v)',
  floor: 'floor(v)',
  // derivative helpers
  reluMask: 'select(0.0, 1.0, v > 0.0)',
} as const;
export type UnaryOp = keyof typeof UNARY;

const unaryCode = (op: UnaryOp) => /* wgsl */ `
struct P { n: u32, a: f32, b: f32, pad: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
fn f(v: f32, a: f32, b: f32) -> f32 { return ${UNARY[op]}; }
${mainSig()} {
  ${flatIndex()}
  if (i >= p.n) { return; }
  y[i] = f(x[i], p.a, p.b);
}`;

export function unary(gpu: Gpu, op: UnaryOp, x: GBuf, y: GBuf, n: number, a = 0, b = 0): void {
  if (!(op in UNARY)) throw new Error(`webqat: unknown unary op '${op}'`);
  const pipe = gpu.pipeline(`unary:${op}`, () => unaryCode(op));
  const u = new Uniforms().u32(n).f32(a).f32(b).u32(0).done();
  gpu.dispatch(pipe, [x, y], u, grid1d(n, 256), op);
}

/**
 * y = g * f(x) in one dispatch (backward rules of the form "gradient times a mask or derivative of the
 * input": relu, abs, clamp and the clipped STEs), instead of a unary launch, a full-size temporary and
 * a multiply.
 */
const gateCode = (op: UnaryOp) => /* wgsl */ `
struct P { n: u32, a: f32, b: f32, pad: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
fn f(v: f32, a: f32, b: f32) -> f32 { return ${UNARY[op]}; }
${mainSig()} {
  ${flatIndex()}
  if (i >= p.n) { return; }
  y[i] = g[i] * f(x[i], p.a, p.b);
}`;

export function unaryGate(gpu: Gpu, op: UnaryOp, g: GBuf, x: GBuf, y: GBuf, n: number, a = 0, b = 0): void {
  if (!(op in UNARY)) throw new Error(`webqat: unknown unary op '${op}'`);
  const pipe = gpu.pipeline(`gate:${op}`, () => gateCode(op));
  const u = new Uniforms().u32(n).f32(a).f32(b).u32(0).done();
  gpu.dispatch(pipe, [g, x, y], u, grid1d(n, 256), `${op} gate`);
}

/** Binary ops: WGSL expression of `l`, `r` of type T; comparisons return 0/1 in the output type. */
export const BINARY = {
  add: 'l + r',
  sub: 'l - r',
  mul: 'l * r',
  div: 'l / r',
  pow: 'pow(l, r)',
  maximum: 'max(l, r)',
  minimum: 'min(l, r)',
  gt: 'select(O(0), O(1), l > r)',
  ge: 'select(O(0), O(1), l >= r)',
  lt: 'select(O(0), O(1), l < r)',
  le: 'select(O(0), O(1), l <= r)',
  eq: 'select(O(0), O(1), l == r)',
  ne: 'select(O(0), O(1), l != r)',
} as const;
export type BinaryOp = keyof typeof BINARY;
export const COMPARISONS: ReadonlySet<string> = new Set(['gt', 'ge', 'lt', 'le', 'eq', 'ne']);

const BCAST_STRUCT = `struct P { n: u32, rank: u32, p0: u32, p1: u32,
  shape: array<vec4u, 2>, sa: array<vec4u, 2>, sb: array<vec4u, 2>, sc: array<vec4u, 2> }`;

/** WGSL that turns flat output index `i` into offsets `ia`, `ib`, `ic` of broadcast inputs. */
const BCAST_INDEX = `
  var rem = i; var ia = 0u; var ib = 0u; var ic = 0u;
  for (var k = i32(p.rank) - 1; k >= 0; k--) {
    let d = p.shape[k / 4][k % 4];
    let c = rem % d; rem = rem / d;
    ia += c * p.sa[k / 4][k % 4]; ib += c * p.sb[k / 4][k % 4]; ic += c * p.sc[k / 4][k % 4];
  }`;

const binaryCode = (op: BinaryOp, t: KDType, o: KDType, bcast: boolean) => /* wgsl */ `
alias T = ${t};
alias O = ${o};
${BCAST_STRUCT}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> A: array<T>;
@group(0) @binding(2) var<storage, read> B: array<T>;
@group(0) @binding(3) var<storage, read_write> Y: array<O>;
fn f(l: T, r: T) -> O { return ${BINARY[op]}; }
${mainSig()} {
  ${flatIndex()}
  if (i >= p.n) { return; }
  ${bcast ? BCAST_INDEX + '\n  Y[i] = f(A[ia], B[ib]);' : 'Y[i] = f(A[i], B[i]);'}
}`;

/** Broadcast shape of two shapes (NumPy rules) or a clear error naming the op. */
export function broadcastShapes(op: string, a: readonly number[], b: readonly number[]): number[] {
  const r = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let k = 0; k < r; k++) {
    const da = a[a.length - r + k] ?? 1;
    const db = b[b.length - r + k] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw shapeError(op, `shapes ${fmt(a)} and ${fmt(b)} cannot be broadcast together`);
    }
    out.push(da === 1 ? db : da);
  }
  return out;
}

/** Strides of `shape` read as `out` (0 on broadcast dims). */
export function broadcastStrides(shape: readonly number[], out: readonly number[]): number[] {
  const st = stridesOf(shape);
  const r = out.length;
  return out.map((_, k) => {
    const j = shape.length - r + k;
    return j < 0 || shape[j] === 1 ? 0 : st[j];
  });
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export function binary(
  gpu: Gpu,
  op: BinaryOp,
  a: GBuf,
  aShape: readonly number[],
  b: GBuf,
  bShape: readonly number[],
  y: GBuf,
  outShape: readonly number[],
  dtype: KDType = 'f32',
): void {
  if (!(op in BINARY)) throw new Error(`webqat: unknown binary op '${op}'`);
  if (outShape.length > 8) throw shapeError(op, `rank ${outShape.length} > 8 is not supported`);
  const n = outShape.reduce((s, d) => s * d, 1);
  const odt: KDType = COMPARISONS.has(op) ? 'f32' : dtype;
  const bcast = !(sameShape(aShape, outShape) && sameShape(bShape, outShape));
  const pipe = gpu.pipeline(`binary:${op}:${dtype}:${bcast ? 'b' : 'c'}`, () => binaryCode(op, dtype, odt, bcast));
  const u = new Uniforms().u32(n).u32(outShape.length).u32(0).u32(0);
  if (bcast) u.arr8(outShape, 1).arr8(broadcastStrides(aShape, outShape)).arr8(broadcastStrides(bShape, outShape)).arr8([]);
  gpu.dispatch(pipe, [a, b, y], u.done(), grid1d(n, 256), op);
}

const whereCode = () => /* wgsl */ `
${BCAST_STRUCT}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> C: array<f32>;
@group(0) @binding(2) var<storage, read> A: array<f32>;
@group(0) @binding(3) var<storage, read> B: array<f32>;
@group(0) @binding(4) var<storage, read_write> Y: array<f32>;
${mainSig()} {
  ${flatIndex()}
  if (i >= p.n) { return; }
  ${BCAST_INDEX}
  Y[i] = select(B[ic], A[ib], C[ia] != 0.0);
}`;

/** y = cond != 0 ? a : b, all broadcast to outShape. */
export function where(
  gpu: Gpu,
  c: GBuf, cShape: readonly number[],
  a: GBuf, aShape: readonly number[],
  b: GBuf, bShape: readonly number[],
  y: GBuf, outShape: readonly number[],
): void {
  const n = outShape.reduce((s, d) => s * d, 1);
  const pipe = gpu.pipeline('where', whereCode);
  const u = new Uniforms().u32(n).u32(outShape.length).u32(0).u32(0)
    .arr8(outShape, 1).arr8(broadcastStrides(cShape, outShape)).arr8(broadcastStrides(aShape, outShape))
    .arr8(broadcastStrides(bShape, outShape));
  gpu.dispatch(pipe, [c, a, b, y], u.done(), grid1d(n, 256), 'where');
}

const fillCode = (t: KDType) => /* wgsl */ `
struct P { n: u32, v: ${t}, pad0: u32, pad1: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> y: array<${t}>;
${mainSig()} {
  ${flatIndex()}
  if (i >= p.n) { return; }
  y[i] = p.v;
}`;

export function fill(gpu: Gpu, y: GBuf, n: number, value: number, dtype: KDType = 'f32'): void {
  const pipe = gpu.pipeline(`fill:${dtype}`, () => fillCode(dtype));
  const u = new Uniforms().u32(n);
  if (dtype === 'f32') u.f32(value);
  else if (dtype === 'i32') u.i32(value);
  else u.u32(value);
  gpu.dispatch(pipe, [y], u.u32(0).u32(0).done(), grid1d(n, 256), 'fill');
}

const castCode = (from: KDType, to: KDType) => /* wgsl */ `
struct P { n: u32, pad0: u32, pad1: u32, pad2: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<${from}>;
@group(0) @binding(2) var<storage, read_write> y: array<${to}>;
${mainSig()} {
  ${flatIndex()}
  if (i >= p.n) { return; }
  y[i] = ${to}(x[i]);
}`;

export function cast(gpu: Gpu, x: GBuf, from: KDType, y: GBuf, to: KDType, n: number): void {
  const pipe = gpu.pipeline(`cast:${from}:${to}`, () => castCode(from, to));
  gpu.dispatch(pipe, [x, y], new Uniforms().u32(n).done(), grid1d(n, 256), 'cast');
}
