/**
 * webqat: train quantized neural networks on the GPU with WebGPU.
 * The one public entry: examples, e2e tests and users import from here.
 */
import { Gpu, type GpuOptions } from './gpu/index.ts';
import { engine, hasEngine, setEngineGpu } from './autograd/index.ts';

export * from './autograd/index.ts';
export * from './optim/index.ts';
export * from './nn/index.ts';
export * from './models/index.ts';
export * from './data/index.ts';
export * from './train/index.ts';
export * from './quant/index.ts';
export { fromHalf, inferModels, loadPacked, PackedModel, parsePacked, PACKED_FORMAT, PACKED_VERSION, toHalf, WEBQAT_VERSION } from './infer/index.ts';
export type { LoadOptions, PackedMeta, PredictOptions } from './infer/index.ts';
export { writeFileAtomic, readFile as readFileBytes } from './platform/fs.ts';
export { Gpu, runtimeName, installHint } from './gpu/index.ts';
export type { AdapterDescription, GpuOptions, PoolStats, TuneBench, TuneEntry, TuneFamily, TunePolicy, TuneReport } from './gpu/index.ts';
export { policyFromEnv, Tuner } from './gpu/index.ts';

/** Acquire a GPU device and make it the current one. Returns the context (adapter info, stats). */
export async function init(opts: GpuOptions = {}): Promise<Gpu> {
  if (hasEngine()) return engine().gpu;
  const gpu = await Gpu.create(opts);
  setEngineGpu(gpu);
  return gpu;
}

/** The current GPU context (after `init()`). */
export function gpu(): Gpu {
  return engine().gpu;
}

/**
 * Release every GPU resource and forget the device (at once: a later `init()` gets a new one). The
 * device itself is destroyed once its queued work has finished; await the result before exiting the
 * process (Deno's wgpu can crash when a device is destroyed with uploads in flight and the process
 * exits right after).
 */
export function shutdown(): Promise<void> {
  if (!hasEngine()) return Promise.resolve();
  const g = engine().gpu;
  setEngineGpu(null);
  return g.close();
}

/** Submit pending GPU work; `await sync()` also waits for it to finish. */
export function flush(): void {
  engine().gpu.flush();
}
export function sync(): Promise<void> {
  return engine().gpu.sync();
}

/**
 * Time the kernel variants of every shape seen for the first time since the last call on this
 * adapter and keep the winners (cached on disk / in IndexedDB). The Trainer calls it after each step
 * that met a new shape; call it at a step boundary in a hand-written loop. See src/gpu/tune.ts.
 */
export function autotune() {
  return engine().gpu.tuner.tune();
}

/** Live GPU memory counters (buffers that exist, buffers in use, bytes). */
export function memory() {
  return { ...engine().gpu.pool.stats };
}
