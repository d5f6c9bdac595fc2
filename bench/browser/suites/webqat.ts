/**
 * webqat's side of the cross-library suite (runs in the browser page and in Deno).
 *
 * Training step (the same logic as Trainer.trainStep, minus its metric accumulators):
 * scope { logits = model(x); loss = softmaxCrossEntropy(logits, y); loss.backward();
 * SGD(momentum).step(); zeroGrad() }, then `await loss.item()`.
 * Clock: `loss.item()` copies the loss into a staging buffer and awaits `mapAsync`; the copy is
 * submitted after the step's forward, backward and optimizer dispatches (the step's flush), so the
 * map resolves only when all of the step's GPU work has finished.
 * matmul: C = A·B, then `await C.data()` (the whole 4 MiB product is read back).
 *
 * Inference (infer-lenet5: LeNet-5 with BWN; infer-sspq20: SSPQ20 W1A4, DoReFa 1-bit weights and
 * 4-bit activations; random weights from fixed seeds): the quantized model is built, put in eval
 * mode and, for `packed`, exported with exportPacked() in the page and loaded with
 * loadPacked(bytes, { gpu }) (the float model is released before timing). One call:
 *  - packed: `await m.logits(x, { normalize: false })` (upload, the packed kernels, readback);
 *  - float: x → tensor, noGrad(model.forward), `await y.data()` (the same model with its
 *    quantizers in eval mode: the quantized weights are cached after the first call).
 * After the first call (afterFirstStep, outside its clock) the float model's tier-2 kernels are awaited. Its
 * kernel shapes are not autotuned here: the float model runs the shipped table's winners for this
 * adapter class where it has them, else the generic kernels (timing every candidate of SSPQ20's
 * shapes takes minutes on SwiftShader); the packed kernels have no variants.
 */
import * as wq from '../../../src/index.ts';
import '../../../src/models/sspq.ts'; // registers sspq20
import type { BenchData, InferData, InferVariant, LibInfo, Runner, Suite } from '../common.ts';
import { checkValue, OPTIM } from '../common.ts';

export const library = 'webqat';

/** The quantized model of an inference benchmark, in eval mode, and what exportPacked needs to know. */
function inferModel(data: InferData): { model: wq.Module; info: wq.ExportInfo } {
  const def = data.def;
  const [c, h] = def.shape;
  let config: Record<string, unknown>;
  let model: wq.Module;
  if (def.model === 'sspq20') {
    config = { inChannels: c, numClasses: def.classes, inputSize: h, seed: 1, wBits: 1, aBits: 4 };
    model = wq.createModel('sspq20', config as wq.ModelOptions);
  } else {
    config = { inChannels: c, numClasses: def.classes, inputSize: h, seed: 1 };
    model = wq.createModel(def.model, config as wq.ModelOptions);
    wq.quantizeModel(model, wq.parseQuantSpec(def.quant));
  }
  model.eval();
  return { model, info: { model: def.model, modelConfig: config, quant: def.quant, inputShape: def.shape, numClasses: def.classes } };
}

export function webqatSuite(): Suite {
  return {
    library,
    inferVariants: ['packed', 'float'],

    async prepareInfer(data: InferData, variant: InferVariant): Promise<Runner> {
      const def = data.def;
      const g = wq.gpu();
      const { model, info } = inferModel(data);
      const parameters = model.numParameters();
      if (variant === 'packed') {
        let m: wq.PackedModel;
        let fileBytes: number;
        try {
          const ex = await wq.exportPacked(model, info);
          fileBytes = ex.bytes.length;
          m = await wq.loadPacked(ex.bytes, { gpu: g });
        } finally {
          model.release();
        }
        return {
          parameters,
          notes: `packed file exported in the page (${fileBytes} B, ${m.memory().bytes} B of weights on the GPU); random weights (seed 1)`,
          async step() {
            return checkValue(await m.logits(data.x, { normalize: false }), def.classes);
          },
          dispose() {
            m.dispose();
            g.pool.trim();
          },
        };
      }
      const shape = [data.batch, ...def.shape];
      return {
        parameters,
        notes: `the quantized model (${def.quant}) in eval mode; random weights (seed 1)`,
        async step() {
          const y = wq.tidy(() => wq.noGrad(() => model.forward(wq.tensor(data.x, shape, 'f32'))));
          try {
            return checkValue((await y.data()) as Float32Array, def.classes);
          } finally {
            y.release();
          }
        },
        async afterFirstStep() {
          await g.tuner.settle();
        },
        dispose() {
          model.release();
          g.pool.trim();
        },
      };
    },
    async init(): Promise<LibInfo> {
      // ?tune=off|cache|full (npm run bench -- --webqat-tune P); default full
      const q = typeof location !== 'undefined' ? new URLSearchParams(location.search).get('tune') : null;
      const gpu = await wq.init(q === 'off' || q === 'cache' || q === 'full' ? { tune: q } : {});
      return {
        library,
        version: 'this checkout',
        backend: `webgpu (${gpu.adapter.runtime})`,
        adapter: { ...gpu.adapter, software: gpu.isSoftware },
        clock: 'await loss.item() (mapAsync of a copy queued after the whole step); matmul: await C.data(); inference: await m.logits(x) (packed) / await y.data() (float)',
      };
    },

    async prepare(data: BenchData): Promise<Runner> {
      const def = data.def;
      if (def.name === 'matmul') {
        const [m, k, n] = def.shape;
        const a = wq.tensor(data.x, [m, k], 'f32').keep();
        const b = wq.tensor(data.b!, [k, n], 'f32').keep();
        return {
          parameters: 0,
          async step() {
            const c = wq.noGrad(() => wq.matmul(a, b));
            c.keep();
            try {
              const v = await c.data();
              return v[0] + v[v.length - 1];
            } finally {
              c.release();
            }
          },
          dispose() {
            a.release();
            b.release();
          },
        };
      }
      const [c, h] = def.shape;
      const g = wq.gpu();
      const p0 = g.counters.pipelines;
      const t0 = g.tuner.stats;
      const base = { tunedKeys: t0.tunedKeys, tuneMs: t0.tuneMs, shippedHits: t0.shippedHits, cacheHits: t0.cacheHits, genericPicks: t0.genericPicks };
      let steps = 0;
      let firstPipelines = 0;
      let tune: wq.TuneReport | null = null;
      let settleMs = 0;
      const model = wq.createModel(def.name, { inChannels: c, numClasses: def.classes, inputSize: h, seed: 1 });
      model.train();
      const opt = new wq.SGD(model.namedParameters(), { lr: OPTIM.lr, momentum: OPTIM.momentum });
      const x = wq.tensor(data.x, [def.batch, ...def.shape], 'f32').keep();
      const y = wq.tensor(data.y, [def.batch], 'i32').keep();
      return {
        parameters: model.numParameters(),
        async step() {
          wq.beginScope('bench step');
          let loss: wq.Tensor | undefined;
          try {
            const logits = model.call(x);
            loss = wq.softmaxCrossEntropy(logits, y);
            loss.backward();
            opt.step();
            opt.zeroGrad();
          } finally {
            wq.endScope(loss);
          }
          wq.flush();
          try {
            return await loss!.item();
          } finally {
            loss!.release();
            if (++steps === 1) firstPipelines = g.counters.pipelines - p0;
          }
        },
        // shapes the shipped table and the cache do not know are timed now, and the tier-2 kernels
        // (compiling in the background since the first step's readback) are awaited, before the
        // warm-up step: the timed steps are the steady state (the Trainer tunes at the same point)
        async afterFirstStep() {
          tune = await wq.autotune();
          const t = performance.now();
          await g.tuner.settle();
          settleMs = performance.now() - t;
        },
        stats: () => {
          const t = g.tuner.stats;
          return {
            tunePolicy: g.tuner.policy,
            adapterClass: g.adapterClass,
            pipelinesFirstStep: firstPipelines,
            tier1QuickPicks: t.quickPicks,
            tier2Pipelines: t.tier2Pipelines,
            tier2WaitMs: Math.round(settleMs),
            pipelinesAfter: g.counters.pipelines - p0,
            tunedKeys: t.tunedKeys - base.tunedKeys,
            tuneMs: Math.round(t.tuneMs - base.tuneMs),
            tuneClock: tune?.clock ?? 'none',
            shippedPicks: t.shippedHits - base.shippedHits,
            cachePicks: t.cacheHits - base.cacheHits,
            genericPicks: t.genericPicks - base.genericPicks,
          };
        },
        dispose() {
          x.release();
          y.release();
          opt.release();
          model.release();
          wq.gpu().pool.trim();
        },
      };
    },
  };
}
