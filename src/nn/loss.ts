/** Losses: thin wrappers over the fused/differentiable ops. */
import { mean, softmaxCrossEntropy, square, sub, sum, type Tensor } from '../autograd/index.ts';

export type Reduction = 'mean' | 'sum';

/** Softmax cross-entropy of logits [N, C] against integer labels i32 [N]; a scalar. */
export function crossEntropy(logits: Tensor, labels: Tensor, reduction: Reduction = 'mean'): Tensor {
  return softmaxCrossEntropy(logits, labels, reduction);
}

/** Mean (or summed) squared error between two tensors of the same shape; a scalar. */
export function mseLoss(pred: Tensor, target: Tensor, reduction: Reduction = 'mean'): Tensor {
  if (pred.shape.length !== target.shape.length || pred.shape.some((d, i) => d !== target.shape[i])) {
    throw new Error(`webqat: mseLoss: prediction ${pred.describe()} and target ${target.describe()} must have the same shape`);
  }
  const d = sub(pred, target);
  const s = square(d);
  return reduction === 'mean' ? mean(s) : sum(s);
}
