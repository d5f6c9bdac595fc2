/**
 * TensorFlow.js (webgpu backend) side of the cross-library suite. Models are built with tf.layers
 * (channels-last, TF.js's native layout; the synthetic NCHW batch is transposed once, outside the
 * clock), trained with `tf.train.momentum(lr, 0.9)` through `optimizer.minimize(..., returnCost)`.
 *
 * Clock: `await loss.data()`. TF.js's webgpu backend records every dispatch of the step (forward,
 * gradients, optimizer updates) into its command encoder as the ops are called; `data()` submits
 * them and copies the loss after them, and its mapAsync resolves only when all of that work has
 * finished. matmul: C = tf.matMul(A, B), then `await C.data()` (the whole product).
 *
 * Inference (float only): one call = tf.tensor4d(NHWC batch) → LeNet-5 `model.predict` (tf.layers,
 * float weights) or SSPQ20's `infer` (tfjs-sspq.ts: running-statistics batch norm, binarized
 * weights computed once, DoReFa-4 activations, the shift as a depthwise 3x3 conv) → `await
 * logits.data()`. The NCHW → NHWC transpose of the batch is done once, outside the clock.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-webgpu';
import type { BenchData, InferData, LibInfo, Runner, Suite } from '../common.ts';
import { checkValue, NotAvailable, OPTIM, toNHWC } from '../common.ts';
import { buildSspq20 } from './tfjs-sspq.ts';

export const library = 'tfjs';

async function adapterInfo(): Promise<Record<string, unknown>> {
  const gpu = (navigator as unknown as { gpu?: GPU }).gpu;
  const a = gpu ? await gpu.requestAdapter({ powerPreference: 'high-performance' }) : null;
  const i = (a as unknown as { info?: GPUAdapterInfo } | null)?.info;
  return i ? { vendor: i.vendor, architecture: i.architecture, device: i.device, description: i.description } : {};
}

let seed = 100;
const kinit = () => tf.initializers.heUniform({ seed: seed++ });

function conv(filters: number, k: number, strides: number, padding: 'same' | 'valid', useBias: boolean) {
  return tf.layers.conv2d({ filters, kernelSize: k, strides, padding, useBias, kernelInitializer: kinit() });
}

function bn() {
  return tf.layers.batchNormalization({ axis: -1, momentum: 0.9, epsilon: 1e-5 });
}

function mlp(): tf.LayersModel {
  return tf.sequential({
    layers: [
      tf.layers.flatten({ inputShape: [28, 28, 1] }),
      tf.layers.dense({ units: 256, activation: 'relu', kernelInitializer: kinit() }),
      tf.layers.dense({ units: 128, activation: 'relu', kernelInitializer: kinit() }),
      tf.layers.dense({ units: 10, kernelInitializer: kinit() }),
    ],
  });
}

function lenet5(): tf.LayersModel {
  return tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [28, 28, 1], filters: 6, kernelSize: 5, padding: 'same', activation: 'relu', kernelInitializer: kinit() }),
      tf.layers.maxPooling2d({ poolSize: 2, strides: 2 }),
      tf.layers.conv2d({ filters: 16, kernelSize: 5, padding: 'valid', activation: 'relu', kernelInitializer: kinit() }),
      tf.layers.maxPooling2d({ poolSize: 2, strides: 2 }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 120, activation: 'relu', kernelInitializer: kinit() }),
      tf.layers.dense({ units: 84, activation: 'relu', kernelInitializer: kinit() }),
      tf.layers.dense({ units: 10, kernelInitializer: kinit() }),
    ],
  });
}

/** CIFAR ResNet-20, option-B shortcuts (1x1 conv + BN where the shape changes). */
function resnet20(): tf.LayersModel {
  const input = tf.input({ shape: [32, 32, 3] });
  const relu = (t: tf.SymbolicTensor) => tf.layers.reLU().apply(t) as tf.SymbolicTensor;
  let h = relu(bn().apply(conv(16, 3, 1, 'same', false).apply(input)) as tf.SymbolicTensor);
  let cin = 16;
  for (const [width, stride0] of [[16, 1], [32, 2], [64, 2]]) {
    for (let b = 0; b < 3; b++) {
      const stride = b === 0 ? stride0 : 1;
      let o = relu(bn().apply(conv(width, 3, stride, 'same', false).apply(h)) as tf.SymbolicTensor);
      o = bn().apply(conv(width, 3, 1, 'same', false).apply(o)) as tf.SymbolicTensor;
      const sc = stride !== 1 || cin !== width ? (bn().apply(conv(width, 1, stride, 'valid', false).apply(h)) as tf.SymbolicTensor) : h;
      h = relu(tf.layers.add().apply([o, sc]) as tf.SymbolicTensor);
      cin = width;
    }
  }
  const pooled = tf.layers.globalAveragePooling2d({}).apply(h) as tf.SymbolicTensor;
  const out = tf.layers.dense({ units: 10, kernelInitializer: kinit() }).apply(pooled) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: out });
}

export function tfjsSuite(): Suite {
  return {
    library,
    inferVariants: ['float'],

    async prepareInfer(data: InferData): Promise<Runner> {
      const def = data.def;
      seed = 100;
      const [c, h, w] = def.shape;
      const nhwc = toNHWC(data.x, data.batch, c, h, w);
      let run: (x: tf.Tensor4D) => tf.Tensor;
      let parameters: number;
      let release: () => void;
      let notes = 'NHWC (channels-last); float weights';
      if (def.model === 'sspq20') {
        const m = buildSspq20();
        run = (x) => m.infer(x);
        parameters = m.parameters;
        release = () => m.dispose();
        notes = `NHWC; raw ops, binarized 1x1 weights and shift kernels computed once, DoReFa-4 activations, inference batch norm; ${m.notes}`;
      } else {
        const model = lenet5();
        run = (x) => model.predict(x) as tf.Tensor;
        parameters = model.countParams();
        release = () => model.dispose();
      }
      return {
        parameters,
        notes,
        async step() {
          const y = tf.tidy(() => run(tf.tensor4d(nhwc, [data.batch, h, w, c])));
          try {
            return checkValue(await y.data(), def.classes);
          } finally {
            y.dispose();
          }
        },
        dispose: release,
      };
    },
    async init(): Promise<LibInfo> {
      const ok = await tf.setBackend('webgpu');
      if (!ok) throw new Error('webqat bench: tfjs: the webgpu backend did not initialise');
      await tf.ready();
      return {
        library,
        version: tf.version.tfjs,
        backend: tf.getBackend(),
        adapter: await adapterInfo(),
        clock: 'await loss.data() after optimizer.minimize(); matmul: await C.data(); inference: await logits.data()',
      };
    },

    async prepare(data: BenchData): Promise<Runner> {
      const def = data.def;
      seed = 100;
      if (def.name === 'matmul') {
        const [m, k, n] = def.shape;
        const a = tf.tensor2d(data.x, [m, k]);
        const b = tf.tensor2d(data.b!, [k, n]);
        return {
          parameters: 0,
          async step() {
            const c = tf.matMul(a, b);
            try {
              const v = await c.data();
              return v[0] + v[v.length - 1];
            } finally {
              c.dispose();
            }
          },
          dispose() {
            a.dispose();
            b.dispose();
          },
        };
      }
      const [c, h, w] = def.shape;
      let forward: (x: tf.Tensor4D) => tf.Tensor;
      let parameters: number;
      let release: () => void;
      let varList: tf.Variable[] | undefined;
      let notes = 'NHWC (channels-last) layout';
      if (def.name === 'sspq20') {
        const m = buildSspq20();
        forward = m.forward;
        parameters = m.parameters;
        release = () => m.dispose();
        varList = m.variables;
        notes = `NHWC; ${m.notes}`;
      } else {
        const model = def.name === 'mlp' ? mlp() : def.name === 'lenet5' ? lenet5() : def.name === 'resnet20' ? resnet20() : null;
        if (!model) throw new NotAvailable(`tfjs: no ${def.name} model`);
        forward = (x) => model.apply(x, { training: true }) as tf.Tensor;
        parameters = model.countParams();
        release = () => model.dispose();
      }
      const x = tf.tensor4d(toNHWC(data.x, def.batch, c, h, w), [def.batch, h, w, c]);
      const y = tf.oneHot(tf.tensor1d(data.y, 'int32'), def.classes).toFloat();
      const opt = tf.train.momentum(OPTIM.lr, OPTIM.momentum);
      return {
        parameters,
        notes,
        async step() {
          const loss = opt.minimize(() => tf.losses.softmaxCrossEntropy(y, forward(x)) as tf.Scalar, true, varList)!;
          try {
            return (await loss.data())[0];
          } finally {
            loss.dispose();
          }
        },
        dispose() {
          x.dispose();
          y.dispose();
          opt.dispose();
          release();
        },
      };
    },
  };
}
