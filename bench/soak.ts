/**
 * `npm run bench:train -- --soak N [--models lenet5,resnet20,sspq20] [--every 100] [--json FILE]`:
 * N training steps of each model through the real Trainer step with its quantizer (LeNet-5 and
 * ResNet-20 with SQ, SSPQ20 with its built-in DoReFa W1A4), on synthetic data of 16 batches per
 * epoch. Every `every` steps (after the GPU has drained) it records live buffers, live bytes,
 * buffers created and compiled pipelines. After the first epoch it tunes the kernel shapes met (as
 * `Trainer.fit` does) and waits for the tier-2 compiles; the sample of the next step is the
 * baseline. The soak fails (exit 1) when any of live buffers, live bytes or pipelines is higher at a
 * later sample than at the baseline.
 */
import { type Gpu, GpuLoader, init, memory, SGD, syntheticDataset, Trainer } from '../src/index.ts';
import { createModel } from '../src/models/index.ts';
import '../src/models/sspq.ts';
import { parseQuantSpec, qat } from '../src/quant/index.ts';

export interface SoakSample {
  step: number;
  liveBuffers: number;
  liveBytes: number;
  created: number;
  pipelines: number;
  msPerStep: number;
}

export interface SoakResult {
  name: string;
  model: string;
  quant: string;
  batch: number;
  steps: number;
  stepsPerEpoch: number;
  samples: SoakSample[];
  /** the sample at the end of the first epoch, the reference */
  baseline: SoakSample;
  flat: boolean;
  growth: string[];
}

const SOAK_MODELS: Record<string, { model: string; quant: string; batch: number; shape: [number, number, number] }> = {
  lenet5: { model: 'lenet5', quant: 'sq', batch: 32, shape: [1, 28, 28] },
  resnet20: { model: 'resnet20', quant: 'sq', batch: 32, shape: [3, 32, 32] },
  sspq20: { model: 'sspq20', quant: 'dorefa:w1a4', batch: 32, shape: [3, 32, 32] },
};

export const soakModels = Object.keys(SOAK_MODELS);

async function soakOne(gpu: Gpu, name: string, steps: number, every: number, log: (s: string) => void): Promise<SoakResult> {
  const cfg = SOAK_MODELS[name];
  const [c, h] = cfg.shape;
  const spec = parseQuantSpec(cfg.quant);
  const sspq = cfg.model.startsWith('sspq');
  const model = createModel(cfg.model, { inChannels: c, numClasses: 10, inputSize: h, seed: 1, ...(sspq ? { wBits: 1, aBits: 4 } : {}) });
  const lr = 0.01;
  const q = qat(model, spec, { lr, totalSteps: steps, optimizer: (g) => new SGD(g, { lr, momentum: 0.9 }) });
  const { optimizer } = q;
  const base = q.rawOptimizer;
  const stepsPerEpoch = 16;
  const data = syntheticDataset({ count: cfg.batch * stepsPerEpoch, shape: cfg.shape, numClasses: 10, seed: 3 });
  const loader = new GpuLoader(data, { batchSize: cfg.batch, dropLast: true, seed: 1, augment: c === 3 ? { cropPadding: 4, flip: true } : undefined });
  const trainer = new Trainer({
    model, optimizer, train: loader, batchSize: cfg.batch, epochs: 1, seed: 1,
    loss: q.loss,
  });
  await q.prepare();
  const samples: SoakSample[] = [];
  let k = 0;
  let epoch = 0;
  loader.startEpoch(0);
  let t = performance.now();
  let last = 0;
  for (let s = 1; s <= steps; s++) {
    if (k === loader.numBatches) {
      k = 0;
      loader.startEpoch(++epoch);
    }
    if (s === stepsPerEpoch + 1) {
      // as Trainer.fit does: kernel shapes met for the first time are timed at a step boundary, and
      // the tuned (tier-2) pipelines compile in the background; both are one-off costs of the first
      // epoch, so the baseline below is taken after them (pipelines compiled later would be growth)
      if (gpu.tuner.pending > 0) await gpu.tuner.tune();
      await gpu.tuner.settle();
    }
    const b = loader.batch(k++);
    trainer.trainStep(b.x, b.y, b.size);
    if (s % every === 0 || s === stepsPerEpoch + 1 || s === steps) {
      await gpu.sync();
      const m = memory();
      const now = performance.now();
      const sample = { step: s, liveBuffers: m.liveBuffers, liveBytes: m.liveBytes, created: m.created, pipelines: gpu.counters.pipelines, msPerStep: (now - t) / (s - last) };
      t = now;
      last = s;
      samples.push(sample);
      log(`${name} step ${String(s).padStart(6)}: live buffers ${m.liveBuffers}, live bytes ${m.liveBytes}, created ${m.created}, pipelines ${sample.pipelines}, ${sample.msPerStep.toFixed(1)} ms/step`);
    }
  }
  const baseline = samples.find((x) => x.step > stepsPerEpoch) ?? samples[0];
  const growth: string[] = [];
  for (const x of samples) {
    if (x.step <= baseline.step) continue;
    for (const key of ['liveBuffers', 'liveBytes', 'pipelines'] as const) {
      if (x[key] > baseline[key]) growth.push(`${key} ${baseline[key]} -> ${x[key]} at step ${x.step}`);
    }
  }
  trainer.dispose();
  loader.dispose();
  base.release();
  model.release();
  return { name, model: cfg.model, quant: cfg.quant, batch: cfg.batch, steps, stepsPerEpoch, samples, baseline, flat: growth.length === 0, growth };
}

/** Run the soak for `models`; resolves with the results (flat = nothing grew after the first epoch). */
export async function soak(models: string[], steps: number, every: number, log: (s: string) => void): Promise<SoakResult[]> {
  const unknown = models.filter((m) => !(m in SOAK_MODELS));
  if (unknown.length) throw new Error(`bench:train --soak: unknown model(s) ${unknown.join(', ')}; accepted: ${soakModels.join(', ')}`);
  const gpu = await init();
  const out: SoakResult[] = [];
  for (const m of models) {
    const r = await soakOne(gpu, m, steps, every, log);
    log(`${m}: ${r.steps} steps, ${r.flat ? 'flat' : `GROWING: ${r.growth.slice(0, 3).join('; ')}`} (baseline at step ${r.baseline.step}: ${r.baseline.liveBuffers} buffers, ${r.baseline.liveBytes} bytes, ${r.baseline.pipelines} pipelines)`);
    out.push(r);
  }
  return out;
}
