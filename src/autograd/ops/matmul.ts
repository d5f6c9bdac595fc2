/**
 * Matrix products: `matmul(a, b, { transA, transB })` (rank 2 or 3, batch dims equal or one side
 * rank 2 and broadcast) and `linear(x, w, b?)` = x · wᵀ + b with the bias fused into the kernel.
 *
 * Backward rules use the kernel's transpose flags instead of materialising transposes. With
 * Â = op(A), B̂ = op(B), C = Â·B̂ and upstream gradient G:
 *   dÂ = G·B̂ᵀ, dB̂ = Âᵀ·G, so
 *   dA = transA ? B̂·Gᵀ = mm(B, G, transB, true) : G·B̂ᵀ = mm(G, B, false, !transB)
 *   dB = transB ? Gᵀ·Â = mm(G, A, true, transA) : Âᵀ·G = mm(A, G, !transA, false)
 * A broadcast (rank-2) side gets the sum over the batch of its per-batch gradients.
 */
import * as mk from '../../kernels/matmul.ts';
import { engine, noGrad } from '../engine.ts';
import { record } from '../tape.ts';
import { shapeStr, Tensor } from '../tensor.ts';
import { checkLive } from './check.ts';
import { sum } from './reduce.ts';

export interface MatmulOptions {
  transA?: boolean;
  transB?: boolean;
}

interface Dims {
  batch: number;
  M: number;
  N: number;
  K: number;
  outShape: number[];
}

function describeArgs(a: Tensor, b: Tensor, o: MatmulOptions): string {
  const flags = [o.transA ? 'transA' : '', o.transB ? 'transB' : ''].filter(Boolean).join(', ');
  return `a ${a.dtype}${shapeStr(a.shape)}, b ${b.dtype}${shapeStr(b.shape)}${flags ? ` (${flags})` : ''}`;
}

function dims(op: string, a: Tensor, b: Tensor, o: MatmulOptions): Dims {
  checkLive(op, a, b);
  if (a.dtype !== 'f32' || b.dtype !== 'f32') throw new Error(`webqat: ${op}: expected f32 operands, got ${describeArgs(a, b, o)}`);
  if ((a.rank !== 2 && a.rank !== 3) || (b.rank !== 2 && b.rank !== 3)) {
    throw new Error(`webqat: ${op}: operands must have rank 2 or 3, got ${describeArgs(a, b, o)}`);
  }
  const ra = a.shape.slice(-2);
  const rb = b.shape.slice(-2);
  const [M, Ka] = o.transA ? [ra[1], ra[0]] : [ra[0], ra[1]];
  const [Kb, N] = o.transB ? [rb[1], rb[0]] : [rb[0], rb[1]];
  if (Ka !== Kb) {
    throw new Error(`webqat: ${op}: inner dimensions differ (${Ka} vs ${Kb}): ${describeArgs(a, b, o)}`);
  }
  const ba = a.rank === 3 ? a.shape[0] : 0;
  const bb = b.rank === 3 ? b.shape[0] : 0;
  if (ba && bb && ba !== bb) throw new Error(`webqat: ${op}: batch dimensions differ (${ba} vs ${bb}): ${describeArgs(a, b, o)}`);
  const batch = Math.max(ba, bb);
  if (M === 0 || N === 0 || Ka === 0 || (batch === 0 && (a.rank === 3 || b.rank === 3))) {
    throw new Error(`webqat: ${op}: empty operand: ${describeArgs(a, b, o)}`);
  }
  return { batch: Math.max(batch, 1), M, N, K: Ka, outShape: batch ? [batch, M, N] : [M, N] };
}

/** The raw product (no tape). */
function mm(a: Tensor, b: Tensor, o: MatmulOptions, op = 'matmul', bias?: Tensor): Tensor {
  const d = dims(op, a, b, o);
  const c = Tensor.empty(d.outShape, 'f32', op);
  mk.matmul(engine().gpu, {
    a: a.buf, b: b.buf, c: c.buf, bias: bias?.buf ?? null,
    batch: d.batch, M: d.M, N: d.N, K: d.K,
    transA: o.transA, transB: o.transB,
    batchedA: a.rank === 3, batchedB: b.rank === 3, what: op,
  });
  return c;
}

/** Gradient of a broadcast rank-2 operand: sum the batched gradient over the batch, releasing it. */
function sumBatch(g: Tensor): Tensor {
  const r = noGrad(() => sum(g, 0));
  g.release();
  return r;
}

function gradA(a: Tensor, b: Tensor, g: Tensor, o: MatmulOptions): Tensor {
  const tA = !!o.transA;
  const tB = !!o.transB;
  // A shared over a batched B: form the batched gradient, then sum it over the batch
  const r = tA ? mm(b, g, { transA: tB, transB: true }, 'matmul backward') : mm(g, b, { transA: false, transB: !tB }, 'matmul backward');
  return a.rank === 2 && r.rank === 3 ? sumBatch(r) : r;
}

function gradB(a: Tensor, b: Tensor, g: Tensor, o: MatmulOptions): Tensor {
  const tA = !!o.transA;
  const tB = !!o.transB;
  if (b.rank === 2 && a.rank === 3 && !tA) {
    // B shared, A [batch, M, K] with K contiguous: Σ_b Â_bᵀ G_b = A'ᵀ G' with A' [batch·M, K], G' [batch·M, N]
    const [bt, M, K] = a.shape;
    const N = g.shape[2];
    const a2 = a.viewAs([bt * M, K]);
    const g2 = g.viewAs([bt * M, N]);
    const r = tB ? mm(g2, a2, { transA: true }, 'matmul backward') : mm(a2, g2, { transA: true }, 'matmul backward');
    a2.release();
    g2.release();
    return r;
  }
  const r = tB ? mm(g, a, { transA: true, transB: tA }, 'matmul backward') : mm(a, g, { transA: !tA, transB: false }, 'matmul backward');
  return b.rank === 2 && r.rank === 3 ? sumBatch(r) : r;
}

/**
 * a [..., M, K] · b [..., K, N] -> [..., M, N] (with transA: a is [..., K, M]; with transB: b is [..., N, K]).
 * Rank 2 or 3; batch dims equal, or one side rank 2 and shared across the other's batch.
 */
export function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  const o = { transA: !!opts.transA, transB: !!opts.transB };
  const c = mm(a, b, o);
  return record('matmul', [a, b], c, (g, needs) => [
    needs[0] ? gradA(a, b, g, o) : null,
    needs[1] ? gradB(a, b, g, o) : null,
  ]);
}

/** y = x · wᵀ + b: x [N, in], w [out, in], b [out] (optional) -> [N, out]. The bias add is fused. */
export function linear(x: Tensor, w: Tensor, b?: Tensor | null): Tensor {
  checkLive('linear', x, w);
  const desc = () => `x ${x.dtype}${shapeStr(x.shape)}, w ${w.dtype}${shapeStr(w.shape)}${b ? `, b ${b.dtype}${shapeStr(b.shape)}` : ''}`;
  if (x.dtype !== 'f32' || w.dtype !== 'f32' || (b && b.dtype !== 'f32')) {
    throw new Error(`webqat: linear: expected f32 tensors, got ${desc()}`);
  }
  if (x.rank !== 2 || w.rank !== 2) throw new Error(`webqat: linear: expected x [N, in] and w [out, in], got ${desc()}`);
  if (x.shape[1] !== w.shape[1]) {
    throw new Error(`webqat: linear: x has ${x.shape[1]} features but w expects ${w.shape[1]}: ${desc()}`);
  }
  if (b) {
    checkLive('linear', b);
    if (b.rank !== 1 || b.shape[0] !== w.shape[0]) throw new Error(`webqat: linear: bias must be [${w.shape[0]}], got ${desc()}`);
  }
  const y = mm(x, w, { transB: true }, 'linear', b ?? undefined);
  const inputs = b ? [x, w, b] : [x, w];
  return record('linear', inputs, y, (g, needs) => [
    // dx = g · w, dw = gᵀ · x, db = Σ_rows g
    needs[0] ? mm(g, w, {}, 'linear backward') : null,
    needs[1] ? mm(g, x, { transA: true }, 'linear backward') : null,
    ...(b ? [needs[2] ? noGrad(() => sum(g, 0)) : null] : []),
  ]);
}
