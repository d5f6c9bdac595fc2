/**
 * `npm run bench:train -- [--json FILE] [--steps N] [--repeats R] [--models lenet5,resnet20,sspq20,sspq20-unfused]` (Deno).
 *
 * Steady-state training throughput through the real Trainer step (GPU batch assembly, forward,
 * loss, backward, fused optimizer step, GPU-side metric accumulation) on synthetic data:
 *   - LeNet-5, batch 64, 1x28x28;  ResNet-20, batch 32, 3x32x32;
 *   - SSPQ20 (W1A4), batch 32, 3x32x32, with the fused shift·1x1 op (`sspq20`) and with the
 *     unfused shift then 1x1 conv (`sspq20-unfused`).
 * Reports the first step (pipeline compilation included) apart, then R repeats of N timed steps
 * (median ms/step and samples/s), each clock stopped only after the GPU has finished (gpu.sync()).
 * Also the process CPU time per step (user + system, all threads: on CPU adapters this is the
 * kernels' work, steadier than wall time on a shared machine) and the load average.
 * GPU buffers created during the timed steps must be zero (checked per step); exit code 1 otherwise.
 * `--profile` then records one step's dispatches and replays each one alone (several times, the
 * GPU drained before and after) to print the process CPU time per kernel: where a step's time goes.
 */
import os from 'node:os';
import process from 'node:process';
import { Command, InvalidArgumentError } from 'commander';
import { type Gpu, GpuLoader, init, memory, SGD, shutdown, syntheticDataset, Trainer, writeFileAtomic } from '../src/index.ts';
import { parseArgs } from './util.ts';
import { createModel } from '../src/models/index.ts';
import { setFused } from '../src/models/sspq.ts';

interface Config {
  /** name in the results */
  name: string;
  /** registry model */
  model: string;
  batch: number;
  shape: [number, number, number];
  steps: number;
  fused?: boolean;
}

interface Result {
  name: string;
  model: string;
  fused?: boolean;
  batch: number;
  input: number[];
  parameters: number;
  firstStepMs: number;
  msPerStep: number;
  msPerStepRuns: number[];
  samplesPerSec: number;
  timedSteps: number;
  liveBuffersBefore: number;
  liveBuffersAfter: number;
  liveBytesBefore: number;
  liveBytesAfter: number;
  buffersCreatedDuringTimedSteps: number;
  /** the most GPU buffers created by any single timed step */
  maxNewBuffersPerStep: number;
  buffersFlat: boolean;
  /** process CPU milliseconds per timed step (median over repeats) */
  cpuMsPerStep: number;
  loadAvg1: number;
  /** with --profile: process CPU ms per kernel (pipeline) in one step */
  profile?: KernelTime[];
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

const posInt = (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`expected a positive integer, got '${v}'`);
  return n;
};

interface KernelTime {
  kernel: string;
  calls: number;
  cpuMs: number;
}

/**
 * Replay every dispatch of one recorded step `reps` times on its own and measure the process CPU
 * time (user + system) it takes: on a CPU adapter that is the kernel's work, whatever else the
 * machine runs. Returns per-pipeline totals (one step), largest first.
 */
async function profileStep(gpu: Gpu, step: () => void, reps: number): Promise<KernelTime[]> {
  type Rec = { p: Parameters<Gpu['dispatch']>[0]; bufs: Parameters<Gpu['dispatch']>[1]; u: Uint8Array | null; wg: [number, number?, number?]; what: string };
  const rec: Rec[] = [];
  const orig = gpu.dispatch.bind(gpu);
  const g = gpu as unknown as { dispatch: Gpu['dispatch'] };
  g.dispatch = (p, bufs, u, wg, what) => {
    rec.push({ p, bufs: [...bufs], u: u ? new Uint8Array(u.buffer.slice(u.byteOffset, u.byteOffset + u.byteLength)) : null, wg: [...wg] as [number, number?, number?], what: what ?? p.key });
    orig(p, bufs, u, wg, what);
  };
  try {
    step();
  } finally {
    g.dispatch = orig;
  }
  await gpu.sync();
  const by = new Map<string, KernelTime>();
  for (const r of rec) {
    await gpu.sync();
    const c0 = process.cpuUsage();
    for (let i = 0; i < reps; i++) orig(r.p, r.bufs, r.u, r.wg, r.what);
    await gpu.sync();
    const d = process.cpuUsage(c0);
    const e = by.get(r.p.key) ?? { kernel: r.p.key, calls: 0, cpuMs: 0 };
    e.calls++;
    e.cpuMs += (d.user + d.system) / 1000 / reps;
    by.set(r.p.key, e);
  }
  return [...by.values()].sort((a, b) => b.cpuMs - a.cpuMs);
}

async function benchOne(cfg: Config, repeats: number, warmupSteps: number, profile = 0): Promise<Result> {
  const gpu = await init();
  const [c, h] = cfg.shape;
  const model = createModel(cfg.model, { inChannels: c, numClasses: 10, inputSize: h, seed: 1 });
  if (cfg.fused !== undefined) setFused(model, cfg.fused);
  const optimizer = new SGD(model.namedParameters(), { lr: 0.01, momentum: 0.9 });
  // enough distinct samples for every step of the run
  const total = 1 + warmupSteps + repeats * cfg.steps;
  const data = syntheticDataset({ count: cfg.batch * Math.min(total, 64), shape: cfg.shape, numClasses: 10, seed: 3 });
  const loader = new GpuLoader(data, { batchSize: cfg.batch, dropLast: true, seed: 1, augment: c === 3 ? { cropPadding: 4, flip: true } : undefined });
  const trainer = new Trainer({ model, optimizer, train: loader, batchSize: cfg.batch, epochs: 1, seed: 1 });
  let k = 0;
  let epoch = 0;
  loader.startEpoch(epoch);
  const step = () => {
    if (k === loader.numBatches) {
      k = 0;
      loader.startEpoch(++epoch);
    }
    const b = loader.batch(k++);
    trainer.trainStep(b.x, b.y, b.size);
  };

  await gpu.sync();
  let t = performance.now();
  step();
  await gpu.sync();
  const firstStepMs = performance.now() - t;
  // shapes the tuner has not seen on this adapter are timed now (cached for later runs)
  const tune = await gpu.tuner.tune();
  if (tune.keys > 0) console.log(`${cfg.name}: tuned ${tune.keys} kernel keys (${tune.candidates} candidates) in ${tune.ms.toFixed(0)} ms (${tune.clock} clock)`);
  // tier-2 kernels (compiling in the background since the first step) are awaited: the timed steps are the steady state
  const tSettle = performance.now();
  await gpu.tuner.settle();
  const settleMs = performance.now() - tSettle;
  if (gpu.tuner.stats.tier2Pipelines > 0) console.log(`${cfg.name}: ${gpu.tuner.stats.tier2Pipelines} tier-2 pipelines compiled in the background, waited ${settleMs.toFixed(0)} ms after the first step`);
  for (let i = 0; i < warmupSteps; i++) step();
  await gpu.sync();

  const before = memory();
  const runs: number[] = [];
  const cpuRuns: number[] = [];
  let maxNew = 0;
  for (let r = 0; r < repeats; r++) {
    const cpu0 = process.cpuUsage();
    t = performance.now();
    for (let i = 0; i < cfg.steps; i++) {
      const c0 = gpu.pool.stats.created;
      step();
      maxNew = Math.max(maxNew, gpu.pool.stats.created - c0);
    }
    await gpu.sync(); // the GPU has finished before the clock stops
    runs.push((performance.now() - t) / cfg.steps);
    const cpu = process.cpuUsage(cpu0);
    cpuRuns.push((cpu.user + cpu.system) / 1000 / cfg.steps);
  }
  const after = memory();
  const ms = median(runs);
  const res: Result = {
    name: cfg.name,
    model: cfg.model,
    fused: cfg.fused,
    batch: cfg.batch,
    input: [...cfg.shape],
    parameters: model.numParameters(),
    firstStepMs,
    msPerStep: ms,
    msPerStepRuns: runs,
    samplesPerSec: (cfg.batch * 1000) / ms,
    timedSteps: repeats * cfg.steps,
    liveBuffersBefore: before.liveBuffers,
    liveBuffersAfter: after.liveBuffers,
    liveBytesBefore: before.liveBytes,
    liveBytesAfter: after.liveBytes,
    buffersCreatedDuringTimedSteps: after.created - before.created,
    maxNewBuffersPerStep: maxNew,
    buffersFlat: after.liveBuffers <= before.liveBuffers && after.created === before.created && maxNew === 0,
    cpuMsPerStep: median(cpuRuns),
    loadAvg1: os.loadavg()[0],
  };
  if (profile > 0) res.profile = await profileStep(gpu, step, profile);
  trainer.dispose();
  loader.dispose();
  optimizer.release();
  model.release();
  gpu.pool.trim();
  return res;
}

async function main(): Promise<number> {
  const cmd = new Command('bench:train')
    .option('--json <file>', 'write the results here')
    .option('--steps <n>', 'timed steps per repeat (default: 20 for LeNet-5, 3 for ResNet-20 and SSPQ20)', posInt)
    .option('--repeats <n>', 'repeats of the timed steps (median reported)', posInt, 3)
    .option('--warmup <n>', 'untimed steps after the first', posInt, 2)
    .option('--profile [reps]', 'replay one step kernel by kernel (reps times each) and print CPU ms per kernel')
    .option('--models <list>', 'comma-separated subset of lenet5,resnet20,sspq20,sspq20-unfused', 'lenet5,resnet20,sspq20,sspq20-unfused')
    .option('--soak <n>', 'soak instead: n steps of each model with its quantizer (lenet5/resnet20: SQ, sspq20: DoReFa W1A4); fails if live buffers, bytes or pipelines grow after the first epoch', posInt)
    .option('--every <n>', 'with --soak: sample memory and pipelines every n steps', posInt, 100)
    .exitOverride();
  const exit = parseArgs(cmd);
  if (exit !== null) return exit;
  const o = cmd.opts();
  if (o.soak !== undefined) {
    const { soak } = await import('./soak.ts');
    const models = cmd.getOptionValueSource('models') === 'cli' ? String(o.models).split(',').map((x) => x.trim()) : ['lenet5', 'resnet20', 'sspq20'];
    const res = await soak(models, o.soak, o.every, (line) => console.log(line));
    if (o.json) await writeFileAtomic(o.json, new TextEncoder().encode(JSON.stringify({ benchmark: 'soak', date: new Date().toISOString(), results: res }, null, 2) + '\n'));
    await shutdown();
    return res.every((r) => r.flat) ? 0 : 1;
  }
  const all: Config[] = [
    { name: 'lenet5', model: 'lenet5', batch: 64, shape: [1, 28, 28], steps: o.steps ?? 20 },
    { name: 'resnet20', model: 'resnet20', batch: 32, shape: [3, 32, 32], steps: o.steps ?? 3 },
    { name: 'sspq20', model: 'sspq20', batch: 32, shape: [3, 32, 32], steps: o.steps ?? 3, fused: true },
    { name: 'sspq20-unfused', model: 'sspq20', batch: 32, shape: [3, 32, 32], steps: o.steps ?? 3, fused: false },
  ];
  const want = String(o.models).split(',').map((s) => s.trim());
  const unknown = want.filter((m) => !all.some((c) => c.name === m));
  if (unknown.length) {
    process.stderr.write(`bench:train: unknown model(s) ${unknown.join(', ')}; accepted: ${all.map((c) => c.name).join(', ')}\n`);
    return 2;
  }
  const gpu = await init();
  const results: Result[] = [];
  const failures: { name: string; error: string }[] = [];
  console.log(`adapter: ${gpu.adapter.name} (${gpu.adapter.runtime}); ${os.cpus().length} CPUs, load average ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  for (const cfg of all.filter((c) => want.includes(c.name))) {
    let r: Result;
    try {
      const reps = o.profile === undefined ? 0 : o.profile === true ? 5 : posInt(String(o.profile));
      r = await benchOne(cfg, o.repeats, o.warmup, reps);
    } catch (e) {
      const msg = (e as Error).message;
      failures.push({ name: cfg.name, error: msg });
      console.log(`${cfg.name.padEnd(15)} FAILED: ${msg}`);
      continue;
    }
    results.push(r);
    console.log(
      `${r.name.padEnd(15)} batch ${String(r.batch).padStart(3)} [${r.input.join('x')}]  first step ${r.firstStepMs.toFixed(0)} ms  ` +
        `steady ${r.msPerStep.toFixed(1)} ms/step (runs ${r.msPerStepRuns.map((x) => x.toFixed(1)).join(', ')})  ` +
        `${r.samplesPerSec.toFixed(1)} samples/s  CPU ${r.cpuMsPerStep.toFixed(1)} ms/step  load ${r.loadAvg1.toFixed(2)}  ` +
        `live buffers ${r.liveBuffersBefore} -> ${r.liveBuffersAfter}, new buffers/step ${r.maxNewBuffersPerStep}` +
        (r.buffersFlat ? '' : `  GROWING (+${r.buffersCreatedDuringTimedSteps} created)`),
    );
    if (r.profile) {
      const total = r.profile.reduce((a, k) => a + k.cpuMs, 0);
      console.log(`  kernel CPU time per step (replayed alone): ${total.toFixed(1)} ms in ${r.profile.reduce((a, k) => a + k.calls, 0)} dispatches`);
      for (const k of r.profile.slice(0, 15)) console.log(`  ${k.cpuMs.toFixed(2).padStart(9)} ms  x${String(k.calls).padEnd(3)} ${k.kernel}`);
    }
  }
  const f = results.find((r) => r.name === 'sspq20');
  const u = results.find((r) => r.name === 'sspq20-unfused');
  if (f && u) {
    console.log(`sspq20 fused shift·1x1 vs unfused: ${f.msPerStep.toFixed(1)} vs ${u.msPerStep.toFixed(1)} ms/step (x${(u.msPerStep / f.msPerStep).toFixed(2)}), CPU ${f.cpuMsPerStep.toFixed(1)} vs ${u.cpuMsPerStep.toFixed(1)} ms/step`);
  }
  if (o.json) {
    const out = {
      benchmark: 'train', adapter: gpu.adapter.name, runtime: gpu.adapter.runtime, date: new Date().toISOString(),
      cpus: os.cpus().length, results, failures,
    };
    await writeFileAtomic(o.json, new TextEncoder().encode(JSON.stringify(out, null, 2) + '\n'));
    console.log(`wrote ${o.json}`);
  }
  await shutdown();
  return results.every((r) => r.buffersFlat) && failures.length === 0 ? 0 : 1;
}

process.exit(await main());
