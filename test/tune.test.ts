/**
 * The kernel autotuner (src/gpu/tune.ts): a key is timed once and then read from the cache (a second
 * process times nothing), a corrupt or foreign cache file is ignored with a warning, policies behave
 * as documented, and the tuned variants give the same results as the generic ones ('off').
 */
import { after, before, describe, it } from 'node:test';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import process from 'node:process';
import { assert, assertClose, randArray, setup, wq } from './helpers.ts';
import { testFamily } from './fixtures/tune-family.ts';
import { VERSION } from '../src/version.ts';
import { storePath } from '../src/platform/store.ts';

const isDeno = typeof (globalThis as { Deno?: unknown }).Deno !== 'undefined';

/** Run test/fixtures/tune-proc.ts in a fresh process of this runtime with its own cache folder. */
function proc(cacheDir: string): Record<string, any> {
  const env = { ...process.env, WEBQAT_CACHE_DIR: cacheDir, NO_COLOR: '1', XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp' };
  delete (env as Record<string, string | undefined>).WEBQAT_TUNE;
  const [cmd, args] = isDeno
    ? [(globalThis as unknown as { Deno: { execPath(): string } }).Deno.execPath(), ['run', '-A', '--no-check', 'test/fixtures/tune-proc.ts']]
    : [process.execPath, ['--import', 'tsx', 'test/fixtures/tune-proc.ts']];
  const r = spawnSync(cmd, args, { encoding: 'utf8', env, timeout: 240_000 });
  const line = (r.stdout ?? '').split('\n').find((l) => l.startsWith('{'));
  assert.ok(line, `tune-proc printed no JSON (exit ${r.status}):\n${r.stdout}\n${r.stderr}`);
  return { ...JSON.parse(line!), stderr: r.stderr ?? '' };
}

let dir = '';
const stores: string[] = [];
before(async () => {
  await setup();
  dir = await mkdtemp(join(tmpdir(), 'webqat-tune-'));
});
after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
  for (const s of stores) {
    const p = storePath(s);
    if (p) await rm(p, { force: true });
  }
});

/** A tuner of this device with its own store name (a file in the user's cache folder, removed after). */
function tuner(policy: wq.TunePolicy, warnings: string[] = []): wq.Tuner {
  const name = `tune-test-${process.pid}-${stores.length}`;
  stores.push(name);
  return new wq.Tuner(wq.gpu(), policy, (m) => warnings.push(m), name);
}

describe('autotuner', () => {
  it('the version constant matches package.json', async () => {
    const pkg = JSON.parse(await readFile('package.json', 'utf8'));
    assert.equal(VERSION, pkg.version);
  });

  it('a key is tuned once, then a second process reads it from the cache and times nothing', () => {
    const cache = join(dir, 'two-processes');
    const a = proc(cache);
    assert.ok(a.stats.timedCandidates >= 2, `first process timed ${a.stats.timedCandidates} candidates`);
    assert.equal(a.report.keys, 1);
    assert.ok(['tiled', 'naive'].includes(a.after));
    assert.ok(a.where.startsWith(cache), `cache written to ${a.where}`);
    const b = proc(cache);
    assert.equal(b.stats.timedCandidates, 0, 'second process timed candidates');
    assert.equal(b.report.keys, 0);
    assert.equal(b.stats.cacheHits, 2);
    assert.equal(b.first, a.after, 'the second process starts with the first one\'s winner');
    assert.equal(b.warning, null);
  });

  it('a corrupt or foreign cache file is ignored with a warning, never a crash', async () => {
    for (const [name, text, re] of [
      ['corrupt', '{"format": "webqat-tune", "slots": {', /not JSON/],
      ['foreign', JSON.stringify({ hello: 'world' }), /not a webqat tune cache/],
      ['malformed', JSON.stringify({ format: 'webqat-tune', slots: { x: 1 } }), null],
    ] as const) {
      const cache = join(dir, name);
      await rm(cache, { recursive: true, force: true });
      await (await import('node:fs/promises')).mkdir(cache, { recursive: true });
      await writeFile(join(cache, 'tune.json'), text);
      const r = proc(cache);
      if (re) assert.match(String(r.warning), re, `${name}: ${r.warning}`);
      assert.match(r.stderr, re ?? /^/, name);
      assert.ok(r.stats.timedCandidates >= 2, `${name}: the key was tuned anyway`);
      // the file is replaced by a valid cache
      const saved = JSON.parse(await readFile(join(cache, 'tune.json'), 'utf8'));
      assert.equal(saved.format, 'webqat-tune', name);
    }
  });

  it("policies: 'off' never queues or reads, 'cache' never times, 'full' times and saves", async () => {
    const shape = { C: 3, O: 5, H: 9, W: 7 };
    const off = tuner('off');
    assert.equal(off.pick(testFamily, shape), 'tiled');
    assert.equal(off.pending, 0);
    const full = tuner('full');
    await full.load();
    assert.equal(full.pick(testFamily, shape), 'tiled', 'generic before tuning');
    assert.equal(full.pending, 1);
    const rep = await full.tune();
    assert.equal(rep.keys, 1);
    assert.ok(['timestamp', 'wall'].includes(rep.clock));
    const key = `${testFamily.name}|${testFamily.shapeClass(shape)}`;
    const e = full.entry(key)!;
    assert.deepEqual(Object.keys(e.ms).sort(), ['naive', 'tiled']);
    for (const v of Object.values(e.ms)) assert.ok(v > 0 && Number.isFinite(v), `ms ${v}`);
    assert.equal(full.pick(testFamily, shape), e.variant);
    // a 'cache' tuner on the same store reads the winner and queues nothing
    const cached = new wq.Tuner(wq.gpu(), 'cache', () => {}, full.store);
    await cached.load();
    assert.equal(cached.pick(testFamily, shape), e.variant);
    assert.equal(cached.pick(testFamily, { ...shape, C: 4 }), 'tiled');
    assert.equal(cached.pending, 0);
  });

  it('a candidate whose compile runs past its budget is skipped and recorded, never waited for', async () => {
    const gpu = wq.gpu();
    const tag = `${Date.now()}${Math.random()}`.replace('.', '');
    // two candidates with pipelines nobody has compiled (unique keys and code)
    const fam: wq.TuneFamily<{ n: number }> = {
      name: `test.budget${tag}`,
      candidates: () => ['a', 'b'],
      shapeClass: (s) => `n${s.n}`,
      generic: () => 'a',
      bench(g, s) {
        const buf = g.pool.acquire(s.n * 4, 'test budget');
        return {
          run: (v) => {
            const pipe = g.pipeline(`test:budget:${tag}:${v}`, () => `// ${tag} ${v}
@group(0) @binding(0) var<uniform> p: vec4u;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) id: vec3u) { if (id.x < p.x) { y[id.x] = f32(id.x) * ${v === 'a' ? '2.0' : '3.0'}; } }`);
            g.dispatch(pipe, [buf], new Uint32Array([s.n, 0, 0, 0]), [Math.ceil(s.n / 64), 1, 1], 'test budget');
          },
          dispose: () => g.pool.release(buf),
        };
      },
    };
    const warnings: string[] = [];
    const t = new wq.Tuner(gpu, 'full', (m) => warnings.push(m), tuner('full').store);
    t.compileBudget = () => 0; // nothing may be waited for
    await t.load();
    t.pick(fam, { n: 100 });
    await t.tune();
    const e = t.entry(`${fam.name}|n100`)!;
    assert.deepEqual(Object.keys(e.skipped ?? {}).sort(), ['a', 'b']);
    assert.equal(e.variant, 'a', 'nothing compiled in time: the generic variant, recorded');
    assert.deepEqual(e.ms, {});
    assert.ok(warnings.some((w) => w.includes("skipped 'b'")), warnings.join('\n'));
    assert.equal(t.pick(fam, { n: 100 }), 'a');
    assert.equal(t.pending, 0, 'a recorded key is not queued again');
    // 'b' compiled meanwhile: on a new key only 'a' is skipped and 'b' wins
    await gpu.compileAsync(`test:budget:${tag}:b`, () => `// ${tag} b
@group(0) @binding(0) var<uniform> p: vec4u;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) id: vec3u) { if (id.x < p.x) { y[id.x] = f32(id.x) * 3.0; } }`);
    t.pick(fam, { n: 200 });
    await t.tune();
    const e2 = t.entry(`${fam.name}|n200`)!;
    assert.deepEqual(Object.keys(e2.skipped ?? {}), ['a']);
    assert.equal(e2.variant, 'b');
    assert.ok(e2.ms.b > 0);
  });

  it('WEBQAT_TUNE is parsed and an unknown value is refused', () => {
    const old = process.env.WEBQAT_TUNE;
    try {
      process.env.WEBQAT_TUNE = 'sometimes';
      if (isDeno) (globalThis as any).Deno.env.set('WEBQAT_TUNE', 'sometimes');
      assert.throws(() => wq.policyFromEnv(), /WEBQAT_TUNE must be off, cache or full, got 'sometimes'/);
    } finally {
      if (old === undefined) delete process.env.WEBQAT_TUNE;
      else process.env.WEBQAT_TUNE = old;
      if (isDeno) {
        if (old === undefined) (globalThis as any).Deno.env.delete('WEBQAT_TUNE');
        else (globalThis as any).Deno.env.set('WEBQAT_TUNE', old);
      }
    }
  });

  it('a LeNet-5 step gives the same loss and gradients with every conv variant forced as with the generic ones', async () => {
    const gpu = wq.gpu();
    const x = wq.tensor(randArray(4 * 784, 3), [4, 1, 28, 28]);
    const y = wq.tensor(new Int32Array([1, 7, 3, 0]), [4], 'i32');
    const run = async () => {
      const m = wq.createModel('lenet5', { seed: 5 });
      const loss = wq.softmaxCrossEntropy(m.call(x), y);
      loss.backward();
      const out = [await loss.data(), ...(await Promise.all(m.parameters().map((p) => p.grad!.data())))];
      loss.release();
      m.release();
      return out;
    };
    const base = await run();
    const fams = ['conv.fwd', 'conv.bwdData', 'conv.bwdWeight'];
    // every variant LeNet's 5x5 convolutions can take here (SwiftShader excludes the general direct kernel)
    for (const v of ['tiled', 'direct', 'row', 'lite', 'naive'].filter((v) => !fams.some((f) => gpu.tuner.excluded(f, v, 'k5x5')))) {
      for (const f of fams) gpu.tuner.force(f, v);
      try {
        const r = await run();
        for (let i = 0; i < base.length; i++) assertClose(r[i], base[i], 1e-4, 1e-3, `${v} tensor ${i}`);
      } finally {
        for (const f of fams) gpu.tuner.force(f, null);
      }
    }
    x.release();
    y.release();
  });
});

describe('pipelines per training step (generic kernels, tuning off)', () => {
  /** Distinct pipelines one training step (forward, loss, backward, SGD) dispatches. */
  async function pipelinesOfStep(make: () => wq.Module, shape: number[]): Promise<string[]> {
    const gpu = wq.gpu();
    const policy = gpu.tuner.policy;
    gpu.tuner.policy = 'off';
    const m = make();
    const opt = new wq.SGD(m.namedParameters(), { lr: 0.01, momentum: 0.9 });
    const x = wq.tensor(randArray(shape.reduce((a, b) => a * b, 1), 9), shape);
    const y = wq.tensor(new Int32Array(shape[0]).map((_, i) => i % 10), [shape[0]], 'i32');
    gpu.trace = new Set();
    try {
      const loss = wq.softmaxCrossEntropy(m.call(x), y);
      loss.backward();
      opt.step();
      opt.zeroGrad();
      await loss.item();
      loss.release();
      return [...gpu.trace].sort();
    } finally {
      gpu.trace = null;
      gpu.tuner.policy = policy;
      for (const t of [x, y]) t.release();
      opt.release();
      m.release();
    }
  }

  it('LeNet-5 (batch 8) and SSPQ20 W1A4 (batch 2) steps use a pinned number of pipelines', async () => {
    const { sspq20 } = await import('../src/models/sspq.ts');
    const lenet = await pipelinesOfStep(() => wq.createModel('lenet5', { seed: 1 }), [8, 1, 28, 28]);
    const sspq = await pipelinesOfStep(() => sspq20() as unknown as wq.Module, [2, 3, 32, 32]);
    console.log(`# pipelines: LeNet-5 step ${lenet.length}, SSPQ20 step ${sspq.length}`);
    // a change to these counts is a change to compile time on every user's first step: update on purpose
    // Dawn and wgpu differ by a reduction variant or two (their optional features differ)
    const impl = wq.gpu().adapterClass.split(':')[0] as 'dawn' | 'wgpu';
    assert.equal(lenet.length, LENET_PIPELINES[impl], lenet.join('\n'));
    assert.equal(sspq.length, SSPQ20_PIPELINES[impl], sspq.join('\n'));
  });
});

const LENET_PIPELINES = { dawn: 21, wgpu: 21 };
const SSPQ20_PIPELINES = { dawn: 41, wgpu: 39 };
