/**
 * SSPQ20 in TensorFlow.js raw ops (NHWC), mirroring src/models/sspq.ts for the benchmark:
 * stem 3x3 conv 3->16 (no BN/act); three groups (16/32/64 x 3 blocks, strides 1/2/2), each block
 *   h = preact ? A(BN_pre(x)) : x;  u = A(BN_a(conv1x1_a(h)));  v = BN_b(conv1x1_b(shift(u)))
 *   out = v + (conv1x1_s(x) if the shape changes else x);      group end: A(BN_last(.))
 * then global average pooling and a linear head. conv1x1 weights are 1-bit (BWN: mean|W|·sign W,
 * straight-through gradient); A is DoReFa 4-bit (round(clip(x,0,1)·15)/15, gradient where 0≤x≤1).
 *
 * Substitution: the active shift (per-channel learnable bilinear sub-pixel shift, carrying the
 * stride) is a depthwise 3x3 convolution whose kernel is the outer product of the per-channel
 * bilinear weights (relu(-a), 1-|a|, relu(a)) in y and x, with a clipped to [-1, 1]: the same
 * interpolation for |a| ≤ 1 and differentiable in a, but a dense 3x3 depthwise conv where webqat
 * uses a gather kernel fused with the following 1x1 conv.
 */
import * as tf from '@tensorflow/tfjs';
import { mulberry32 } from '../common.ts';

export interface RawModel {
  forward(x: tf.Tensor4D): tf.Tensor2D;
  /**
   * Inference: batch norm from the running statistics, the 1-bit weights and the shift kernels
   * computed once (first call) and kept, DoReFa-4 activations as plain ops.
   */
  infer(x: tf.Tensor4D): tf.Tensor2D;
  variables: tf.Variable[];
  parameters: number;
  dispose(): void;
  notes: string;
}

export const SSPQ_SHIFT_NOTE =
  'active shift as a depthwise 3x3 conv with a kernel built from the per-channel bilinear weights (equal for |shift| <= 1)';

export function buildSspq20(seed = 7): RawModel {
  const rnd = mulberry32(seed);
  const vars: tf.Variable[] = [];
  const others: tf.Variable[] = [];
  const normal = (shape: number[], std: number) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const d = new Float32Array(n);
    for (let i = 0; i < n; i++) d[i] = (rnd() + rnd() + rnd() - 1.5) * 2 * std;
    const v = tf.variable(tf.tensor(d, shape));
    vars.push(v);
    return v;
  };
  const uniform = (shape: number[], lo: number, hi: number) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const d = new Float32Array(n);
    for (let i = 0; i < n; i++) d[i] = lo + (hi - lo) * rnd();
    const v = tf.variable(tf.tensor(d, shape));
    vars.push(v);
    return v;
  };
  const constVar = (shape: number[], value: number, trainable: boolean) => {
    const v = tf.variable(tf.fill(shape, value), trainable);
    (trainable ? vars : others).push(v);
    return v;
  };

  // deno-lint-ignore no-explicit-any
  type Custom = (...args: any[]) => { value: tf.Tensor; gradFunc: (dy: tf.Tensor) => tf.Tensor };
  const bwn = tf.customGrad(((w: tf.Tensor) => ({
    value: tf.mul(tf.mean(tf.abs(w)), tf.sign(w)),
    gradFunc: (dy: tf.Tensor) => dy,
  })) as Custom as never) as unknown as (w: tf.Tensor) => tf.Tensor4D;
  const act = tf.customGrad(((x: tf.Tensor) => ({
    value: tf.div(tf.round(tf.mul(tf.clipByValue(x, 0, 1), 15)), 15),
    gradFunc: (dy: tf.Tensor) => tf.mul(dy, tf.logicalAnd(tf.greaterEqual(x, 0), tf.lessEqual(x, 1)).toFloat()),
  })) as Custom as never) as unknown as (x: tf.Tensor) => tf.Tensor4D;

  interface Bn {
    g: tf.Variable;
    b: tf.Variable;
    rm: tf.Variable;
    rv: tf.Variable;
  }
  const bnParams = (c: number): Bn => ({ g: constVar([c], 1, true), b: constVar([c], 0, true), rm: constVar([c], 0, false), rv: constVar([c], 1, false) });
  const bn = (x: tf.Tensor4D, p: Bn): tf.Tensor4D => {
    const { mean, variance } = tf.moments(x, [0, 1, 2]) as { mean: tf.Tensor1D; variance: tf.Tensor1D };
    const n = x.shape[0] * x.shape[1] * x.shape[2];
    p.rm.assign(tf.tidy(() => p.rm.mul(0.9).add(mean.mul(0.1))));
    p.rv.assign(tf.tidy(() => p.rv.mul(0.9).add(variance.mul(0.1 * n / (n - 1)))));
    return tf.batchNorm4d(x, mean, variance, p.b as tf.Tensor1D, p.g as tf.Tensor1D, 1e-4);
  };
  const conv1x1 = (cin: number, cout: number) => normal([1, 1, cin, cout], Math.sqrt(2 / cout));
  const shiftKernel = (s: tf.Variable): tf.Tensor4D => {
    const a = tf.clipByValue(s, -1, 1); // [2, C]: row 0 = x, row 1 = y
    const w3 = (t: tf.Tensor) => tf.stack([tf.relu(tf.neg(t)), tf.sub(1, tf.abs(t)), tf.relu(t)]); // [3, C]
    const ax = w3(a.slice([0, 0], [1, -1]).squeeze([0]));
    const ay = w3(a.slice([1, 0], [1, -1]).squeeze([0]));
    const c = s.shape[1] as number;
    return tf.mul(ay.reshape([3, 1, c, 1]), ax.reshape([1, 3, c, 1])) as tf.Tensor4D;
  };

  interface Block {
    pre: Bn | null;
    wa: tf.Variable;
    bna: Bn;
    shift: tf.Variable;
    wb: tf.Variable;
    bnb: Bn;
    ws: tf.Variable | null;
    stride: number;
  }
  const stem = normal([3, 3, 3, 16], Math.sqrt(2 / 27));
  const groups: { blocks: Block[]; last: Bn }[] = [];
  let cin = 16;
  [16, 32, 64].forEach((w, gi) => {
    const blocks: Block[] = [];
    for (let i = 0; i < 3; i++) {
      const ci = i === 0 ? cin : w;
      const stride = i === 0 && gi > 0 ? 2 : 1;
      blocks.push({
        pre: i === 0 ? null : bnParams(ci),
        wa: conv1x1(ci, w),
        bna: bnParams(w),
        shift: uniform([2, w], -Math.SQRT1_2, Math.SQRT1_2),
        wb: conv1x1(w, w),
        bnb: bnParams(w),
        ws: ci !== w || stride !== 1 ? conv1x1(ci, w) : null,
        stride,
      });
    }
    groups.push({ blocks, last: bnParams(w) });
    cin = w;
  });
  const fcW = uniform([64, 10], -1 / 8, 1 / 8);
  const fcB = uniform([10], -1 / 8, 1 / 8);

  const forward = (x: tf.Tensor4D): tf.Tensor2D => {
    let h: tf.Tensor4D = tf.conv2d(x, stem as unknown as tf.Tensor4D, 1, 'same');
    for (const g of groups) {
      for (const b of g.blocks) {
        const inp = h;
        const pre = b.pre ? (act(bn(inp, b.pre)) as tf.Tensor4D) : inp;
        let u = act(bn(tf.conv2d(pre, bwn(b.wa) as tf.Tensor4D, 1, 'valid'), b.bna)) as tf.Tensor4D;
        u = tf.depthwiseConv2d(u, shiftKernel(b.shift), b.stride, 'same');
        const v = bn(tf.conv2d(u, bwn(b.wb) as tf.Tensor4D, 1, 'valid'), b.bnb);
        const sc = b.ws ? tf.conv2d(inp, bwn(b.ws) as tf.Tensor4D, b.stride, 'valid') : inp;
        h = tf.add(v, sc);
      }
      h = act(bn(h, g.last)) as tf.Tensor4D;
    }
    const pooled = tf.mean(h, [1, 2]) as tf.Tensor2D;
    return tf.add(tf.matMul(pooled, fcW as unknown as tf.Tensor2D), fcB);
  };
  // inference constants, built on the first infer() call
  let frozen: { wa: tf.Tensor4D; wb: tf.Tensor4D; ws: tf.Tensor4D | null; shift: tf.Tensor4D }[][] | null = null;
  const bnInfer = (x: tf.Tensor4D, p: Bn): tf.Tensor4D => tf.batchNorm4d(x, p.rm as tf.Tensor1D, p.rv as tf.Tensor1D, p.b as tf.Tensor1D, p.g as tf.Tensor1D, 1e-4);
  const act4 = (x: tf.Tensor): tf.Tensor4D => tf.div(tf.round(tf.mul(tf.clipByValue(x, 0, 1), 15)), 15) as tf.Tensor4D;
  const binarize = (w: tf.Tensor): tf.Tensor4D => tf.mul(tf.mean(tf.abs(w)), tf.sign(w)) as tf.Tensor4D;
  const infer = (x: tf.Tensor4D): tf.Tensor2D => {
    // tf.keep: the caller's tidy() must not dispose the constants
    // (intermediates go with the caller's tidy)
    const fz = (frozen ??= groups.map((g) => g.blocks.map((b) => ({ wa: tf.keep(binarize(b.wa)), wb: tf.keep(binarize(b.wb)), ws: b.ws ? tf.keep(binarize(b.ws)) : null, shift: tf.keep(shiftKernel(b.shift)) }))));
    let h: tf.Tensor4D = tf.conv2d(x, stem as unknown as tf.Tensor4D, 1, 'same');
    groups.forEach((g, gi) => {
      g.blocks.forEach((b, bi) => {
        const f = fz[gi][bi];
        const inp = h;
        const pre = b.pre ? act4(bnInfer(inp, b.pre)) : inp;
        let u = act4(bnInfer(tf.conv2d(pre, f.wa, 1, 'valid'), b.bna));
        u = tf.depthwiseConv2d(u, f.shift, b.stride, 'same');
        const v = bnInfer(tf.conv2d(u, f.wb, 1, 'valid'), b.bnb);
        const sc = f.ws ? tf.conv2d(inp, f.ws, b.stride, 'valid') : inp;
        h = tf.add(v, sc);
      });
      h = act4(bnInfer(h, g.last));
    });
    const pooled = tf.mean(h, [1, 2]) as tf.Tensor2D;
    return tf.add(tf.matMul(pooled, fcW as unknown as tf.Tensor2D), fcB);
  };
  const parameters = vars.reduce((s, v) => s + v.size, 0);
  return {
    forward,
    infer,
    variables: vars,
    parameters,
    notes: `raw ops; ${SSPQ_SHIFT_NOTE}`,
    dispose() {
      for (const v of [...vars, ...others]) v.dispose();
      for (const b of (frozen ?? []).flat()) for (const t of [b.wa, b.wb, b.ws, b.shift]) t?.dispose();
    },
  };
}
