/**
 * `npm run bench:kernels -- [--json FILE] [--sizes 256,512,1024,2048] [--repeats R] [--all-tiles]` (Deno).
 *
 * Kernel throughput on the current adapter:
 *  - matmul GFLOP/s for square sizes and one tall-skinny product (16384x256 · 256x64);
 *  - elementwise add GB/s (two large f32 inputs, one output: 12 bytes per element);
 *  - the adapter's FMA peak, measured by a compute-bound kernel: each thread runs several
 *    independent vec4 FMA chains (x = fma(x, m, c), m and c from uniforms), enough workgroups to fill
 *    every core; the best of a few (chain count, unroll) shapes is the peak;
 *  - matmul 1024³ as a percentage of that peak, from the medians and, less sensitive to other jobs
 *    on the machine, as the median of paired rounds (peak launch, then matmul launch, ratio per round).
 * Every timed repeat ends with `gpu.sync()` (queue.onSubmittedWorkDone) before the clock stops;
 * figures are medians over repeats after a warm-up. Where /proc is readable, each figure also has
 * its CPU time (all threads of this process, i.e. the software adapter's workers), and GFLOP per
 * CPU-second: on a shared machine wall time stretches with the load, CPU time much less.
 */
import process from 'node:process';
import { Command, InvalidArgumentError } from 'commander';
import { type Gpu, init } from '../src/index.ts';
import * as mk from '../src/kernels/matmul.ts';
import * as ew from '../src/kernels/elementwise.ts';
import type { GBuf } from '../src/gpu/index.ts';
import { Uniforms } from '../src/kernels/common.ts';
import { calibrate, median, parseArgs, runtimeInfo, timeGpu, writeJson } from './util.ts';

const posInt = (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`expected a positive integer, got '${v}'`);
  return n;
};
const sizeList = (v: string) => v.split(',').map((s) => posInt(s.trim()));

/** Upload `n` pseudo-random floats in [-1, 1) into a pooled buffer. */
function randomBuffer(gpu: Gpu, n: number, seed: number): GBuf {
  const buf = gpu.pool.acquire(n * 4, 'bench');
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = s / 2147483648 - 1;
  }
  gpu.write(buf, a);
  return buf;
}

interface MatmulResult {
  M: number;
  N: number;
  K: number;
  kernel: string;
  tuneKey: string;
  ms: number;
  gflops: number;
  runsMs: number[];
  /** median CPU ms per launch and GFLOP per CPU-second (NaN without /proc) */
  cpuMs: number;
  gflopsPerCpuS: number;
}

async function benchMatmul(
  gpu: Gpu, M: number, N: number, K: number, repeats: number, tile?: mk.TileConfig,
): Promise<MatmulResult> {
  const a = randomBuffer(gpu, M * K, 1);
  const b = randomBuffer(gpu, K * N, 2);
  const c = gpu.pool.acquire(M * N * 4, 'bench');
  const flop = 2 * M * N * K;
  const launch = () => mk.matmul(gpu, { a, b, c, batch: 1, M, N, K, kernel: tile, what: 'bench matmul' });
  // a first launch queues the product's tune key; tune() times the candidates (cached after)
  launch();
  await gpu.tuner.tune();
  // about 0.3 s per repeat, at least one launch
  const inner = await calibrate(gpu, launch, 300, 200);
  const t = await timeGpu(gpu, launch, { warmup: 0, repeats, inner });
  for (const x of [a, b, c]) gpu.pool.release(x);
  const tuned = mk.tunedKernel(gpu, M, N, K);
  const kernel = tile?.name ?? tuned.name;
  return {
    M, N, K, kernel, tuneKey: tile ? 'forced' : tuned.key, ms: t.ms, gflops: flop / (t.ms * 1e6), runsMs: t.runs,
    cpuMs: t.cpuMs, gflopsPerCpuS: flop / (t.cpuMs * 1e6),
  };
}

/**
 * Tile configurations compared on one square size, interleaved: every round times one launch of
 * each configuration in turn (so all of them see the same machine load), medians over the rounds.
 */
async function benchTiles(gpu: Gpu, n: number, ts: readonly mk.TileConfig[], repeats: number): Promise<MatmulResult[]> {
  const a = randomBuffer(gpu, n * n, 1);
  const b = randomBuffer(gpu, n * n, 2);
  const c = gpu.pool.acquire(n * n * 4, 'bench');
  const launches = ts.map((t) => () => mk.matmul(gpu, { a, b, c, batch: 1, M: n, N: n, K: n, kernel: t, what: 'bench matmul' }));
  const ms: number[][] = ts.map(() => []);
  const cpu: number[][] = ts.map(() => []);
  for (const l of launches) {
    l(); // compile + warm up
    await gpu.sync();
  }
  for (let r = 0; r < repeats; r++) {
    for (let i = 0; i < ts.length; i++) {
      const t = await timeGpu(gpu, launches[i], { warmup: 0, repeats: 1 });
      ms[i].push(t.ms);
      cpu[i].push(t.cpuMs);
    }
  }
  for (const x of [a, b, c]) gpu.pool.release(x);
  const flop = 2 * n * n * n;
  return ts.map((t, i) => ({
    M: n, N: n, K: n, kernel: t.name, tuneKey: 'forced', ms: median(ms[i]), gflops: flop / (median(ms[i]) * 1e6), runsMs: ms[i],
    cpuMs: median(cpu[i]), gflopsPerCpuS: flop / (median(cpu[i]) * 1e6),
  }));
}

async function benchAdd(gpu: Gpu, n: number, repeats: number) {
  const a = randomBuffer(gpu, n, 3);
  const b = randomBuffer(gpu, n, 4);
  const y = gpu.pool.acquire(n * 4, 'bench');
  const launch = () => ew.binary(gpu, 'add', a, [n], b, [n], y, [n]);
  const inner = await calibrate(gpu, launch, 300, 200);
  const t = await timeGpu(gpu, launch, { warmup: 0, repeats, inner });
  for (const x of [a, b, y]) gpu.pool.release(x);
  return { elements: n, ms: t.ms, gbps: (12 * n) / (t.ms * 1e6), runsMs: t.runs };
}

/**
 * FMA peak: every thread keeps `chains` independent vec4 accumulators and runs `iters` loop
 * iterations of `unroll` rounds of acc = fma(acc, m, c) on each (8 flop per vec4 FMA). The multiplier
 * and addend come from uniforms so nothing folds at compile time; each FMA depends on the previous
 * one of its chain, so nothing can be hoisted; the sum is stored so nothing is dead. Unrolling
 * matters on the CPU adapters, where a loop iteration costs about as much as a dozen vec4 FMAs
 * (the per-lane loop mask bookkeeping).
 */
const peakCode = (chains: number, unroll: number, wg: number) => {
  const init: string[] = [];
  const body: string[] = [];
  const sum: string[] = [];
  for (let j = 0; j < chains; j++) {
    init.push(`var x${j} = vec4f(f32(i) * 1e-7 + ${j}.0, ${j}.25, ${j}.5, ${j}.75);`);
    sum.push(`x${j}`);
  }
  for (let u = 0; u < unroll; u++) for (let j = 0; j < chains; j++) body.push(`x${j} = fma(x${j}, m, c);`);
  return /* wgsl */ `
struct P { iters: u32, mul: f32, add: f32, pad: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> out: array<vec4f>;
@compute @workgroup_size(${wg})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * ${wg}u;
  let m = vec4f(p.mul);
  let c = vec4f(p.add);
  ${init.join('\n  ')}
  for (var it = 0u; it < p.iters; it++) {
    ${body.join('\n    ')}
  }
  out[i] = ${sum.join(' + ')};
}`;
};

/** (chains, unroll) shapes tried for the peak; the best is reported. */
const PEAK_SHAPES: readonly [number, number][] = [
  [2, 1], [4, 1], [8, 1], [16, 1], // the original shapes (one FMA round per loop iteration)
  [2, 32], [3, 8], [4, 4], [8, 2], [12, 4], [16, 2], // unrolled: SwiftShader best at 2x32, llvmpipe at 12x4 / 16x2 / 4x4
];

interface PeakTry { chains: number; unroll: number; gflops: number; ms: number; cpuMs: number; gflopsPerCpuS: number }

/** A peak shape ready to launch (its loop count grown until one launch takes ~150 ms). */
async function peakLauncher(gpu: Gpu, out: GBuf, chains: number, unroll: number) {
  const wg = 64;
  const groups = 1024; // 65536 threads: far more than any CPU has SIMD lanes
  const pipe = gpu.pipeline(`bench:peak:${chains}:${unroll}:${wg}`, () => peakCode(chains, unroll, wg));
  let iters = 16;
  const launch = () => {
    const u = new Uniforms().u32(iters).f32(0.999).f32(0.001).u32(0).done();
    gpu.dispatch(pipe, [out], u, [groups], 'bench peak');
  };
  // grow the loop until one launch takes ~150 ms, so launch overhead is negligible
  for (;;) {
    launch();
    await gpu.sync();
    const t0 = performance.now();
    launch();
    await gpu.sync();
    const ms = performance.now() - t0;
    if (ms > 100 || iters >= 1 << 20) break;
    iters *= Math.min(16, Math.max(2, Math.ceil(150 / Math.max(ms, 1))));
  }
  return { launch, flop: () => wg * groups * iters * chains * unroll * 8 };
}

async function benchPeak(gpu: Gpu, repeats: number) {
  const threads = 64 * 1024;
  const out = gpu.pool.acquire(threads * 16, 'bench');
  const tries: PeakTry[] = [];
  for (const [chains, unroll] of PEAK_SHAPES) {
    const { launch, flop } = await peakLauncher(gpu, out, chains, unroll);
    const t = await timeGpu(gpu, launch, { warmup: 0, repeats, inner: 1 });
    tries.push({ chains, unroll, gflops: flop() / (t.ms * 1e6), ms: t.ms, cpuMs: t.cpuMs, gflopsPerCpuS: flop() / (t.cpuMs * 1e6) });
  }
  gpu.pool.release(out);
  const best = tries.reduce((x, y) => (y.gflops > x.gflops ? y : x));
  const bestCpu = tries.reduce((x, y) => (y.gflopsPerCpuS > x.gflopsPerCpuS ? y : x));
  return {
    gflops: best.gflops, chainsVec4: best.chains, unroll: best.unroll, threads,
    gflopsPerCpuS: bestCpu.gflopsPerCpuS, tries,
  };
}

/**
 * Paired rounds: each round times one launch of the peak shape and one matmul N³ back to back, so
 * both see the same machine load; the median of the per-round ratios is reported.
 */
async function pairedRatio(gpu: Gpu, n: number, chains: number, unroll: number, rounds: number) {
  const out = gpu.pool.acquire(64 * 1024 * 16, 'bench');
  const peak = await peakLauncher(gpu, out, chains, unroll);
  const a = randomBuffer(gpu, n * n, 1);
  const b = randomBuffer(gpu, n * n, 2);
  const c = gpu.pool.acquire(n * n * 4, 'bench');
  const mm = () => mk.matmul(gpu, { a, b, c, batch: 1, M: n, N: n, K: n, what: 'bench matmul' });
  const ratios: number[] = [];
  const cpuRatios: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const p = await timeGpu(gpu, peak.launch, { warmup: 0, repeats: 1 });
    const m = await timeGpu(gpu, mm, { warmup: r === 0 ? 1 : 0, repeats: 1 });
    const peakG = peak.flop() / (p.ms * 1e6);
    const mmG = (2 * n * n * n) / (m.ms * 1e6);
    ratios.push(mmG / peakG);
    cpuRatios.push(((2 * n * n * n) / m.cpuMs) / (peak.flop() / p.cpuMs));
  }
  for (const x of [a, b, c, out]) gpu.pool.release(x);
  return { rounds, ratio: median(ratios), ratios, cpuRatio: median(cpuRatios), cpuRatios };
}

/**
 * `--probe`: what one load costs on this adapter, in CPU time (so it needs /proc). Each kernel runs
 * `iters` loop iterations of acc += <one vec4 load>; the figure is CPU ns per invocation and iteration
 * above an empty loop, and the same in units of one vec4 FMA (from a kernel doing 8 per iteration).
 * 'uniform' = every invocation reads the same address; 'lanes' = consecutive invocations read
 * consecutive vec4s.
 */
async function probeLoads(gpu: Gpu, repeats: number) {
  const threads = 64 * 256;
  const iters = 2048;
  const out = gpu.pool.acquire(threads * 16, 'bench');
  const sbuf = randomBuffer(gpu, 16384, 5);
  const tex = gpu.device.createTexture({ size: [64, 64], format: 'rgba32float', usage: GPUTextureUsage.TEXTURE_BINDING });
  const S = '@group(0) @binding(2) var<storage, read> S: array<vec4f>;';
  const Sf = '@group(0) @binding(2) var<storage, read> Sf: array<f32>;';
  const T = '@group(0) @binding(2) var T: texture_2d<f32>;';
  const W = 'var<workgroup> W: array<vec4f, 1024>;';
  const wInit = 'W[lid] = vec4f(f32(lid)); W[lid + 64u] = vec4f(1.0); workgroupBarrier();';
  const kinds: { name: string; decl: string; load: string; init?: string; body?: string; tail?: string; bind?: 'S' | 'T' }[] = [
    { name: 'empty loop', decl: '', load: 'vec4f(f32(k))' },
    {
      name: '8 vec4 FMAs', decl: '', load: 'vec4f(f32(k))',
      init: 'var x0 = vec4f(f32(lid)); var x1 = x0 + 1.0; var x2 = x0 + 2.0; var x3 = x0 + 3.0; var x4 = x0 + 4.0; var x5 = x0 + 5.0; var x6 = x0 + 6.0; var x7 = x0 + 7.0; let mm = vec4f(0.999);',
      body: 'x0 = fma(x0, mm, acc); x1 = fma(x1, mm, acc); x2 = fma(x2, mm, acc); x3 = fma(x3, mm, acc); x4 = fma(x4, mm, acc); x5 = fma(x5, mm, acc); x6 = fma(x6, mm, acc); x7 = fma(x7, mm, acc);',
      tail: ' + x0 + x1 + x2 + x3 + x4 + x5 + x6 + x7',
    },
    { name: 'storage vec4, lanes', decl: S, load: 'S[(k * 16u + lid) & 4095u]', bind: 'S' },
    { name: 'storage vec4, uniform', decl: S, load: 'S[k & 4095u]', bind: 'S' },
    { name: 'storage f32, lanes', decl: Sf, load: 'vec4f(Sf[(k * 64u + lid) & 16383u])', bind: 'S' },
    { name: 'texture rgba32f, lanes', decl: T, load: 'textureLoad(T, vec2u(lid, k & 63u), 0)', bind: 'T' },
    { name: 'texture rgba32f, uniform', decl: T, load: 'textureLoad(T, vec2u(k & 63u, (k >> 6u) & 63u), 0)', bind: 'T' },
    { name: 'workgroup vec4, lanes', decl: W, load: 'W[(k * 16u + lid) & 1023u]', init: wInit },
    { name: 'workgroup vec4, uniform', decl: W, load: 'W[k & 1023u]', init: wInit },
  ];
  const res: { name: string; cpuMs: number }[] = [];
  for (const k of kinds) {
    const code = `struct P { iters: u32, pad0: u32, pad1: u32, pad2: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> out: array<vec4f>;
${k.decl}
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(local_invocation_index) lid: u32) {
  ${k.init ?? ''}
  var acc = vec4f(0.0);
  for (var k = 0u; k < p.iters; k++) {
    acc += ${k.load};
    ${k.body ?? ''}
  }
  out[gid.x] = acc${k.tail ?? ''};
}`;
    const pipe = gpu.pipeline(`bench:probe:${k.name}`, () => code);
    const binds: (GBuf | GPUTextureView)[] = [out];
    if (k.bind === 'S') binds.push(sbuf);
    if (k.bind === 'T') binds.push(tex.createView());
    const launch = () => gpu.dispatch(pipe, binds, new Uniforms().u32(iters).u32(0).u32(0).u32(0).done(), [threads / 64], 'bench probe');
    const t = await timeGpu(gpu, launch, { warmup: 1, repeats });
    res.push({ name: k.name, cpuMs: t.cpuMs });
  }
  gpu.pool.release(out);
  gpu.pool.release(sbuf);
  tex.destroy();
  const per = (ms: number) => (ms * 1e6) / (threads * iters);
  const base = per(res[0].cpuMs);
  const fma = (per(res[1].cpuMs) - base) / 8;
  return res.map((r) => ({ name: r.name, cpuNsPerLane: per(r.cpuMs) - base, vec4Fmas: (per(r.cpuMs) - base) / fma }));
}

const cpuNote = (g: number) => (Number.isFinite(g) ? `, ${g.toFixed(2)} GFLOP per CPU-s` : '');

/** The 1-minute load average (Linux), or '' where unknown. */
function loadAvg(): string {
  try {
    const d = (globalThis as { Deno?: { readTextFileSync(p: string): string } }).Deno;
    return d ? d.readTextFileSync('/proc/loadavg').split(' ').slice(0, 3).join(' ') : '';
  } catch {
    return '';
  }
}

async function main(): Promise<number> {
  const cmd = new Command('bench:kernels')
    .option('--json <file>', 'write all figures, the adapter and the runtime here')
    .option('--sizes <list>', 'square matmul sizes', sizeList, [256, 512, 1024, 2048])
    .option('--repeats <n>', 'timed repeats per figure (median reported)', posInt, 5)
    .option('--tiles <list>', "also time matmul 1024 with these tile configurations, interleaved ('all' or comma-separated names; tuning)")
    .option('--tile-size <n>', 'matmul size for --tiles', posInt, 1024)
    .option('--probe', 'also measure what one load of each kind costs (CPU time; software adapters)')
    .option('--skip <list>', 'comma-separated parts to skip: matmul,skinny,add,peak,paired', '')
    .exitOverride();
  const exit = parseArgs(cmd);
  if (exit !== null) return exit;
  const o = cmd.opts();
  const skip = new Set(String(o.skip).split(',').map((s) => s.trim()).filter(Boolean));
  const repeats: number = o.repeats;
  const gpu = await init();
  const l = gpu.limits;
  console.log(`adapter: ${gpu.adapter.name} (${gpu.adapter.runtime})`);
  console.log(`limits: workgroup storage ${l.maxComputeWorkgroupStorageSize} B, invocations ${l.maxComputeInvocationsPerWorkgroup}; matmul 1024 kernel ${mk.tunedKernel(gpu).name} (tune key ${mk.tunedKernel(gpu).key}, policy ${gpu.tuner.policy}); load average ${loadAvg()}`);

  const matmul: MatmulResult[] = [];
  if (!skip.has('matmul')) {
    for (const s of o.sizes as number[]) {
      // the biggest products: few repeats (software adapters do a few GFLOP/s)
      const r = await benchMatmul(gpu, s, s, s, s >= 2048 ? Math.min(repeats, 3) : repeats);
      matmul.push(r);
      console.log(`matmul ${s}x${s}x${s}: ${r.gflops.toFixed(2)} GFLOP/s (${r.ms.toFixed(2)} ms, ${r.kernel} for ${r.tuneKey}${cpuNote(r.gflopsPerCpuS)})`);
    }
  }
  let skinny: MatmulResult | null = null;
  if (!skip.has('skinny')) {
    skinny = await benchMatmul(gpu, 16384, 64, 256, repeats);
    console.log(`matmul 16384x256 · 256x64: ${skinny.gflops.toFixed(2)} GFLOP/s (${skinny.ms.toFixed(2)} ms, ${skinny.kernel} for ${skinny.tuneKey}${cpuNote(skinny.gflopsPerCpuS)})`);
  }
  const tiles: MatmulResult[] = [];
  if (o.tiles) {
    const names = String(o.tiles).split(',').map((x) => x.trim());
    const ts = (o.tiles === 'all' ? mk.TILE_CONFIGS : mk.TILE_CONFIGS.filter((t) => names.includes(t.name))).filter((t) => mk.fits(gpu, t));
    tiles.push(...(await benchTiles(gpu, o.tileSize as number, ts, repeats)));
    for (const r of tiles) {
      console.log(`  tile ${r.kernel}: matmul ${r.M} ${r.gflops.toFixed(2)} GFLOP/s${cpuNote(r.gflopsPerCpuS).replace(/^, /, ' (') + (Number.isFinite(r.gflopsPerCpuS) ? ')' : '')}`);
    }
  }
  let probe = null;
  if (o.probe) {
    probe = await probeLoads(gpu, repeats);
    console.log('load probe (CPU ns per invocation and load above an empty loop; in vec4 FMAs):');
    for (const r of probe) console.log(`  ${r.name.padEnd(26)} ${r.cpuNsPerLane.toFixed(3).padStart(7)} ns  ${r.vec4Fmas.toFixed(1).padStart(5)} FMAs`);
  }
  let add = null;
  if (!skip.has('add')) {
    add = await benchAdd(gpu, 1 << 24, repeats);
    console.log(`add (2 x 16M f32 -> 16M): ${add.gbps.toFixed(2)} GB/s (${add.ms.toFixed(2)} ms)`);
  }
  let peak = null;
  if (!skip.has('peak')) {
    peak = await benchPeak(gpu, repeats);
    console.log(`FMA peak: ${peak.gflops.toFixed(2)} GFLOP/s${cpuNote(peak.gflopsPerCpuS)} (best of ${peak.tries.map((t) => `${t.chains}x${t.unroll} ${t.gflops.toFixed(1)}`).join(', ')}; chains x unroll)`);
  }
  const m1024 = matmul.find((r) => r.M === 1024);
  const ratio = m1024 && peak ? m1024.gflops / peak.gflops : null;
  const cpuRatio = m1024 && peak ? m1024.gflopsPerCpuS / peak.gflopsPerCpuS : null;
  let paired = null;
  if (ratio !== null && peak && !skip.has('paired')) {
    paired = await pairedRatio(gpu, 1024, peak.chainsVec4, peak.unroll, repeats);
    console.log(
      `matmul 1024 / FMA peak: ${(ratio * 100).toFixed(1)}% (medians); paired rounds: ${(paired.ratio * 100).toFixed(1)}% ` +
        `[${paired.ratios.map((x) => (x * 100).toFixed(0)).join(' ')}]` +
        (Number.isFinite(paired.cpuRatio) ? `; per CPU-second: ${(cpuRatio! * 100).toFixed(1)}% (medians), ${(paired.cpuRatio * 100).toFixed(1)}% (paired)` : ''),
    );
  } else if (ratio !== null) console.log(`matmul 1024 / FMA peak: ${(ratio * 100).toFixed(1)}%`);
  console.log(`load average at the end: ${loadAvg()}`);

  if (o.json) {
    await writeJson(o.json, {
      bench: 'kernels',
      date: new Date().toISOString(),
      adapter: gpu.adapter,
      ...runtimeInfo(),
      limits: { maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize, maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup },
      repeats,
      matmul,
      matmulTallSkinny: skinny,
      matmulTiles: tiles,
      loadProbe: probe,
      add,
      fmaPeak: peak,
      matmul1024PercentOfPeak: ratio === null ? null : ratio * 100,
      matmul1024PercentOfPeakPerCpuS: cpuRatio === null || !Number.isFinite(cpuRatio) ? null : cpuRatio * 100,
      matmul1024PairedRounds: paired,
      loadAverage: loadAvg(),
    });
    console.log(`wrote ${o.json}`);
  }
  return 0;
}

process.exitCode = await main();
