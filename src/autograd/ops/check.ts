/** Argument checks shared by the ops: each error names the op, the expectation and what was given. */
import { type DType, shapeStr, type Tensor } from '../tensor.ts';

export function checkDtype(op: string, t: Tensor, ...allowed: DType[]): void {
  if (t.released) throw new Error(`webqat: ${op}: ${t.describe()} was used after release (released by ${t.releasedReason})`);
  if (!allowed.includes(t.dtype)) {
    throw new Error(`webqat: ${op}: expected dtype ${allowed.join(' or ')}, got ${t.describe()}`);
  }
}

export function checkSameShape(op: string, a: Tensor, b: Tensor): void {
  if (a.shape.length !== b.shape.length || a.shape.some((d, i) => d !== b.shape[i])) {
    throw new Error(`webqat: ${op}: shapes ${shapeStr(a.shape)} and ${shapeStr(b.shape)} must match`);
  }
}

export function checkRank(op: string, t: Tensor, ...ranks: number[]): void {
  if (!ranks.includes(t.rank)) {
    throw new Error(`webqat: ${op}: expected rank ${ranks.join(' or ')}, got ${t.describe()}`);
  }
}

export function checkLive(op: string, ...ts: Tensor[]): void {
  for (const t of ts) {
    if (t.released) throw new Error(`webqat: ${op}: ${t.describe()} was used after release (released by ${t.releasedReason})`);
  }
}
