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
export { writeFileAtomic, readFile as readFileBytes } from './platform/fs.ts';
export { Gpu, runtimeName, installHint } from './gpu/index.ts';
export type { AdapterDescription, GpuOptions, PoolStats } from './gpu/index.ts';

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

/** Release every GPU resource and forget the device. */
export function shutdown(): void {
  if (!hasEngine()) return;
  engine().gpu.destroy();
  setEngineGpu(null);
}

/** Submit pending GPU work; `await sync()` also waits for it to finish. */
export function flush(): void {
  engine().gpu.flush();
}
export function sync(): Promise<void> {
  return engine().gpu.sync();
}

/** Live GPU memory counters (buffers that exist, buffers in use, bytes). */
export function memory() {
  return { ...engine().gpu.pool.stats };
}
