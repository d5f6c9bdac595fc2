/**
 * Where webqat's time goes, for `npm run bench -- --profile` (webqat only; page or Deno):
 *  - per step: dispatches, submits, readbacks (the Gpu counters);
 *  - per kernel: one step's dispatches are recorded, then each one is replayed alone
 *    (dispatch, submit, wait for the GPU) and timed; grouped by pipeline key. The sum includes a
 *    submit + wait per dispatch, so it is compared with an empty submit + wait (`syncMs`);
 *  - per pipeline: compile time of each pipeline the step uses (createComputePipelineAsync of its
 *    WGSL with a unique comment, so no cache answers), i.e. what a cold page pays before step one.
 * Replaying writes garbage into the model's buffers: run it after the timed benchmarks.
 */
import * as wq from '../../../src/index.ts';
import { type TrainBenchName as BenchName, makeData } from '../common.ts';
import { webqatSuite } from './webqat.ts';

interface Call {
  p: unknown;
  buffers: unknown[];
  uniforms: Uint8Array | null;
  wg: readonly [number, number?, number?];
  what?: string;
  key: string;
}

export interface KernelProfile {
  key: string;
  count: number;
  totalMs: number;
  compileMs: number | null;
}

export interface StepProfile {
  bench: BenchName;
  stepMs: number;
  dispatches: number;
  submits: number;
  readbacks: number;
  /** an empty submit + wait for the GPU, ms (median of 5) */
  syncMs: number;
  /** sum of the replayed dispatches (each with its own submit + wait) */
  replayMs: number;
  /** sum of the pipelines' compile times */
  compileMs: number;
  pipelines: number;
  kernels: KernelProfile[];
}

const now = () => performance.now();
const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

export async function profileWebqat(bench: BenchName): Promise<StepProfile> {
  const suite = webqatSuite();
  await suite.init();
  const gpu = wq.gpu();
  // deno-lint-ignore no-explicit-any
  const g = gpu as any;
  const codes = new Map<string, string>();
  const origPipeline = g.pipeline.bind(gpu);
  const origDispatch = g.dispatch.bind(gpu);
  let calls: Call[] | null = null;
  g.pipeline = (key: string, code: () => string) => {
    if (!codes.has(key)) codes.set(key, code());
    return origPipeline(key, () => codes.get(key)!);
  };
  g.dispatch = (p: { key: string }, buffers: unknown[], uniforms: ArrayBufferView | null, wg: readonly [number, number?, number?], what?: string) => {
    if (calls) {
      const u = uniforms ? new Uint8Array(uniforms.buffer.slice(uniforms.byteOffset, uniforms.byteOffset + uniforms.byteLength)) : null;
      calls.push({ p, buffers: [...buffers], uniforms: u, wg: [...wg] as unknown as readonly [number, number?, number?], what, key: p.key });
    }
    return origDispatch(p, buffers, uniforms, wg, what);
  };
  try {
    const runner = await suite.prepare(makeData(bench));
    await runner.step(); // compile
    await runner.afterFirstStep?.(); // tuning, tier 2
    await runner.step();
    const c0 = { ...gpu.counters };
    calls = [];
    let t = now();
    await runner.step();
    const stepMs = now() - t;
    const recorded = calls;
    calls = null;
    const c1 = { ...gpu.counters };
    const syncs: number[] = [];
    for (let i = 0; i < 5; i++) {
      await gpu.sync();
      t = now();
      await gpu.device.queue.onSubmittedWorkDone();
      syncs.push(now() - t);
    }
    const by = new Map<string, KernelProfile>();
    let replayMs = 0;
    for (const c of recorded) {
      await gpu.sync();
      t = now();
      origDispatch(c.p, c.buffers, c.uniforms, c.wg, c.what);
      await gpu.sync();
      const ms = now() - t;
      replayMs += ms;
      const k = by.get(c.key) ?? { key: c.key, count: 0, totalMs: 0, compileMs: null };
      k.count++;
      k.totalMs += ms;
      by.set(c.key, k);
    }
    runner.dispose();
    let compileMs = 0;
    for (const k of by.values()) {
      const code = codes.get(k.key);
      if (!code) continue;
      t = now();
      const module = gpu.device.createShaderModule({ code: `${code}\n// profile ${Math.random()}\n`, label: `profile:${k.key}` });
      await gpu.device.createComputePipelineAsync({ layout: 'auto', compute: { module, entryPoint: 'main' }, label: `profile:${k.key}` });
      k.compileMs = now() - t;
      compileMs += k.compileMs;
    }
    const kernels = [...by.values()].sort((a, b) => b.totalMs - a.totalMs);
    return {
      bench,
      stepMs,
      dispatches: c1.dispatches - c0.dispatches,
      submits: c1.submits - c0.submits,
      readbacks: c1.readbacks - c0.readbacks,
      syncMs: med(syncs),
      replayMs,
      compileMs,
      pipelines: by.size,
      kernels,
    };
  } finally {
    g.pipeline = origPipeline;
    g.dispatch = origDispatch;
  }
}
