export { Gpu, grid1d } from './context.ts';
export type { AdapterDescription, GpuCounters, GpuOptions, Pipeline, GBuf, PoolStats } from './context.ts';
export { sizeClass, subBuffer, ALIGN } from './pool.ts';
export { getGpuApi, runtimeName, installHint } from './runtime.ts';
export { AMORTISE, bucket, parseCache, policyFromEnv, Tuner } from './tune.ts';
export type { TuneBench, TuneEntry, TuneFamily, TunePolicy, TuneReport } from './tune.ts';
