/**
 * softmax, logSoftmax, the fused softmaxCrossEntropy loss and accuracyCount.
 *
 * softmaxCrossEntropy runs one fused kernel that writes each row's loss and, at the same time, the
 * gradient (softmax - onehot) * (1/N for 'mean', 1 for 'sum'). That gradient lives in the same GPU
 * buffer as the returned scalar (from byte 256 on), so it is freed exactly when the loss tensor is;
 * the backward only scales it by the incoming scalar gradient.
 */
import * as ew from '../../kernels/elementwise.ts';
import * as rk from '../../kernels/reduce.ts';
import * as sk from '../../kernels/softmax.ts';
import { ALIGN, subBuffer } from '../../gpu/index.ts';
import { engine } from '../engine.ts';
import { record } from '../tape.ts';
import { shapeStr, Tensor } from '../tensor.ts';
import { checkDtype } from './check.ts';
import { permute } from './views.ts';

function gpu() {
  return engine().gpu;
}

function rowSoftmax(op: 'softmax' | 'logSoftmax', x: Tensor, axis: number): Tensor {
  checkDtype(op, x, 'f32');
  const r = x.rank;
  const ax = axis < 0 ? axis + r : axis;
  if (r === 0 || !Number.isInteger(ax) || ax < 0 || ax >= r) {
    throw new Error(`webqat: ${op}: axis ${axis} is out of range for shape ${shapeStr(x.shape)}`);
  }
  if (ax !== r - 1) {
    // move the axis last, apply, move it back (both permutes are differentiable)
    const perm = x.shape.map((_, i) => i).filter((i) => i !== ax).concat(ax);
    const inv = new Array<number>(r);
    perm.forEach((p, k) => (inv[p] = k));
    const xt = permute(x, perm);
    const yt = rowSoftmax(op, xt, -1);
    const y = permute(yt, inv);
    // intermediates stay alive through the graph only while recorded; release now if not needed
    if (!y.node) {
      xt.release();
      yt.release();
    }
    return y;
  }
  const log = op === 'logSoftmax';
  const cols = x.shape[r - 1];
  const rows = cols === 0 ? 0 : x.size / cols;
  const y = Tensor.empty(x.shape, 'f32', op);
  if (x.size > 0) sk.softmaxRows(gpu(), x.buf, y.buf, rows, cols, log);
  return record(op, [x], y, (g) => {
    const dx = Tensor.empty(x.shape, 'f32', `${op} backward`);
    if (x.size > 0) sk.softmaxRowsBackward(gpu(), y.buf, g.buf, dx.buf, rows, cols, log);
    return [dx];
  });
}

/** exp(x) / sum(exp(x)) along `axis` (default: the last). */
export const softmax = (x: Tensor, axis = -1): Tensor => rowSoftmax('softmax', x, axis);

/** x - logsumexp(x) along `axis` (default: the last). */
export const logSoftmax = (x: Tensor, axis = -1): Tensor => rowSoftmax('logSoftmax', x, axis);

function checkLogitsLabels(op: string, logits: Tensor, labels: Tensor): [number, number] {
  checkDtype(op, logits, 'f32');
  checkDtype(op, labels, 'i32');
  if (logits.rank !== 2 || logits.shape[0] < 1 || logits.shape[1] < 1) {
    throw new Error(`webqat: ${op}: logits must be [N, C] with N, C >= 1, got ${logits.describe()}`);
  }
  const [n, c] = logits.shape;
  if (labels.rank !== 1 || labels.shape[0] !== n) {
    throw new Error(`webqat: ${op}: labels must be i32 [${n}] for logits ${shapeStr(logits.shape)}, got ${labels.describe()}`);
  }
  return [n, c];
}

/**
 * Cross-entropy of softmax(logits) against integer class labels, reduced to a scalar (shape []).
 * logits: f32 [N, C]; labels: i32 [N]; reduction 'mean' (divide by N) or 'sum'.
 * A label outside [0, C) contributes 0 to the loss and 0 to the gradient; 'mean' still divides by
 * N (all rows), so such rows act as padding.
 */
export function softmaxCrossEntropy(logits: Tensor, labels: Tensor, reduction: 'mean' | 'sum' = 'mean'): Tensor {
  const op = 'softmaxCrossEntropy';
  const [n, c] = checkLogitsLabels(op, logits, labels);
  if (reduction !== 'mean' && reduction !== 'sum') {
    throw new Error(`webqat: ${op}: reduction must be 'mean' or 'sum', got '${reduction}'`);
  }
  const g = gpu();
  // one buffer: the scalar loss at byte 0, the saved gradient [N, C] from byte ALIGN on
  const whole = Tensor.empty([ALIGN / 4 + n * c], 'f32', op);
  const loss = whole.viewAs([]);
  whole.release();
  const gradBuf = subBuffer(loss.buf, ALIGN, n * c * 4);
  const rowLoss = Tensor.empty([n], 'f32', op);
  sk.crossEntropy(g, logits.buf, labels.buf, rowLoss.buf, gradBuf, n, c, reduction === 'mean' ? 1 / n : 1);
  rk.reduce(g, reduction, rowLoss.buf, [n], [0], loss.buf);
  rowLoss.release();
  return record(op, [logits], loss, (gy) => {
    const dx = Tensor.empty([n, c], 'f32', `${op} backward`);
    ew.binary(gpu(), 'mul', subBuffer(loss.buf, ALIGN, n * c * 4), [n, c], gy.buf, gy.shape, dx.buf, [n, c]);
    return [dx];
  });
}

/**
 * Number of rows whose (first) arg-max equals the label, as an f32 scalar tensor (shape []).
 * No autograd; lets a trainer accumulate accuracy on the GPU without reading back each step.
 */
export function accuracyCount(logits: Tensor, labels: Tensor): Tensor {
  const [n, c] = checkLogitsLabels('accuracyCount', logits, labels);
  const hits = Tensor.empty([n], 'f32', 'accuracyCount');
  sk.argmaxHits(gpu(), logits.buf, labels.buf, hits.buf, n, c);
  const out = Tensor.empty([], 'f32', 'accuracyCount');
  rk.reduce(gpu(), 'sum', hits.buf, [n], [0], out.buf);
  hits.release();
  return out;
}
