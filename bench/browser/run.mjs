#!/usr/bin/env node
// `npm run bench -- [--json FILE] [--html FILE] [options]`: the cross-library benchmark.
//
// Builds the benchmark pages (bench/browser/vite.config.ts: one page per library), serves them on
// 127.0.0.1, and for each round launches a fresh Chromium (playwright-core, /usr/bin/chromium,
// never a downloaded browser) per library, interleaved: webqat, tfjs, jax-js, webqat, tfjs, ...
// Each page measures page load -> first LeNet-5 step on its own clock (ms since navigation start),
// then runs the suite (bench/browser/common.ts): matmul 1024^3, MLP b128, LeNet-5 b64, ResNet-20
// b32, SSPQ20 b32 training steps, every step timed alone and ended by a readback, and inference
// (infer-lenet5, infer-sspq20: the forward pass at batch 1 and 64, host pixels to host logits;
// webqat packed (loadPacked of a file exported in the page) and float (the quantized model in eval
// mode), TF.js and jax-js float; the variants interleaved call by call). A library x
// benchmark whose single step exceeds --cap-ms keeps the samples it has and is skipped in later
// rounds (the reason is recorded). Then the webqat suite runs in Deno (bench/browser/deno.ts,
// lavapipe; it runs first, within its own 120 s). Writes JSON (every sample), an HTML report with charts (chart.js) and a PNG of it.
//
// Options:
//   --json FILE        (default docs/bench/bench.json)      --html FILE  (default docs/bench/report.html)
//   --png FILE         (default: the html path with .png)
//   --rounds N         browser rounds per library (default 2); rounds after the first repeat only page
//                      load, lenet5 and mlp unless --full-rounds
//   --steps a=N,...    timed steps per round (default matmul=3,mlp=5,lenet5=5,resnet20=3,sspq20=3,
//                      infer-lenet5=3,infer-sspq20=2: timed calls per variant at batch 64, 4x at batch 1)
//   --libs a,b         subset of webqat,tfjs,jax-js          --benches a,b  subset of the benchmarks
//   --cap-ms MS        per-step cap after the first step (default 6000)
//   --budget-s S       the whole run's time budget (default 800): the Deno run goes first (steps
//                      start within 100 s), then browser sessions get time slices of what is left
//                      (a round-1 session 4x a later round's); work that does not fit is skipped
//                      and recorded as such
//   --no-deno          skip the Deno run                     --deno-steps N (default 3)
//   --webqat-tune P    webqat's kernel tuning policy in the page: off, cache (shipped table and cache,
//                      never times) or full (default: unknown kernel shapes are timed after the first step)
//   --profile a,b      after the rounds, one more webqat session profiles these benchmarks (per-kernel
//                      replay times, pipeline compile times, dispatch counts); not part of the default run
// Environment: WEBQAT_CHROMIUM (default /usr/bin/chromium), WEBQAT_HW_GPU=1 (drop SwiftShader flags).
import { execFileSync, spawn } from 'node:child_process';
import { createReadStream, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { loadavg, cpus, tmpdir } from 'node:os';
import { dirname, extname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CHROMIUM_ARGS, SWIFTSHADER_ARGS } from '../../e2e/run.mjs';
import { renderReport } from './report.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '../..');
const T0 = Date.now();
const elapsed = () => (Date.now() - T0) / 1000;
const log = (s) => console.log(`[${elapsed().toFixed(0).padStart(4)} s] ${s}`);

// Chromium flags: the e2e harness's list, plus SwiftShader unless WEBQAT_HW_GPU=1.
const ALL_LIBS = ['webqat', 'tfjs', 'jax-js'];
const PAGE = { webqat: 'webqat.html', tfjs: 'tfjs.html', 'jax-js': 'jax.html' };
// page order: the goal benchmarks and the cheap ones first, so a spent budget cuts the costly tail
const ALL_BENCHES = ['lenet5', 'mlp', 'matmul', 'infer-lenet5', 'infer-sspq20', 'resnet20', 'sspq20'];
const DEFAULT_STEPS = { matmul: 3, mlp: 5, lenet5: 5, 'infer-lenet5': 3, 'infer-sspq20': 2, resnet20: 3, sspq20: 3 };
// inference benchmarks report one row per variant x batch (bench/browser/common.ts runInfer): key `${bench} ${variant} b${batch}`
const INFER_BENCHES = ['infer-lenet5', 'infer-sspq20'];
const INFER_ROWS = ['packed b1', 'float b1', 'packed b64', 'float b64'];
const isInfer = (b) => INFER_BENCHES.includes(b);
/** The table's rows: a training benchmark is one, an inference benchmark one per variant x batch. */
const benchKeys = (benches) => benches.flatMap((b) => (isInfer(b) ? INFER_ROWS.map((k) => `${b} ${k}`) : [b]));
/** A result as table rows: an inference result's rows become results of their own (bench = its key). */
function flatResult(x) {
  if (!isInfer(x.bench)) return [x];
  if (x.rows?.length) return x.rows.map((row) => ({ ...row, library: x.library, bench: `${x.bench} ${row.key}` }));
  // a benchmark that gave no rows (budget, timeout, skip): every row it would have had (packed: webqat only)
  return INFER_ROWS.filter((k) => x.library === 'webqat' || !k.startsWith('packed')).map((k) => ({ ...x, bench: `${x.bench} ${k}`, samples: [] }));
}
// seconds kept back from the browser rounds for the Deno run and for the report + screenshot
const DENO_RESERVE_S = 120;
// what rounds after the first repeat (the rest runs once per library, in round 1)
const REPEATED = ['lenet5', 'mlp', 'infer-lenet5'];
const REPORT_RESERVE_S = 30;

function fail(msg) {
  console.error(`webqat: bench: ${msg}`);
  process.exit(2);
}

function parseArgs(argv) {
  const o = {
    json: 'docs/bench/bench.json',
    html: 'docs/bench/report.html',
    png: null,
    rounds: 2,
    steps: { ...DEFAULT_STEPS },
    libs: [...ALL_LIBS],
    benches: [...ALL_BENCHES],
    capMs: 6000,
    budgetS: 800,
    deno: true,
    denoSteps: 3,
    warmup: 1,
    profile: [],
    fullRounds: false,
  };
  const num = (flag, v, min = 0) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < min || !Number.isInteger(n)) fail(`${flag}: expected an integer >= ${min}, got '${v}'`);
    return n;
  };
  const list = (flag, v, allowed) => {
    const xs = String(v).split(',').map((s) => s.trim()).filter(Boolean);
    for (const x of xs) if (!allowed.includes(x)) fail(`${flag}: expected some of ${allowed.join(', ')}, got '${x}'`);
    if (!xs.length) fail(`${flag}: expected a comma-separated list, got '${v}'`);
    return xs;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      const v = argv[++i];
      if (v === undefined) fail(`${a}: expected a value, got nothing`);
      return v;
    };
    switch (a) {
      case '--json': o.json = val(); break;
      case '--html': o.html = val(); break;
      case '--png': o.png = val(); break;
      case '--rounds': o.rounds = num(a, val(), 1); break;
      case '--libs': o.libs = list(a, val(), ALL_LIBS); break;
      case '--benches': o.benches = list(a, val(), ALL_BENCHES); break;
      case '--cap-ms': o.capMs = num(a, val(), 1); break;
      case '--budget-s': o.budgetS = num(a, val(), 1); break;
      case '--warmup': o.warmup = num(a, val(), 0); break;
      case '--no-deno': o.deno = false; break;
      case '--full-rounds': o.fullRounds = true; break;
      case '--profile': o.profile = list(a, val(), ALL_BENCHES.filter((b) => b !== 'matmul' && !isInfer(b))); break;
      case '--deno-steps': o.denoSteps = num(a, val(), 1); break;
      case '--webqat-tune': {
        o.webqatTune = val();
        if (!['off', 'cache', 'full'].includes(o.webqatTune)) fail(`--webqat-tune: expected off, cache or full, got '${o.webqatTune}'`);
        break;
      }
      case '--steps': {
        for (const kv of String(val()).split(',')) {
          const [k, v] = kv.split('=');
          if (v === undefined) {
            const n = num(a, k, 1);
            for (const b of ALL_BENCHES) o.steps[b] = n;
          } else {
            if (!ALL_BENCHES.includes(k)) fail(`--steps: expected bench=N with a bench of ${ALL_BENCHES.join(', ')}, got '${kv}'`);
            o.steps[k] = num(a, v, 1);
          }
        }
        break;
      }
      case '-h':
      case '--help':
        console.log(readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n').filter((l) => l.startsWith('//')).map((l) => l.slice(3)).join('\n'));
        process.exit(0);
        break;
      default:
        fail(`unknown option '${a}' (see --help)`);
    }
  }
  o.png ??= o.html.replace(/\.html?$/i, '') + '.png';
  return o;
}

function withTimeout(promise, ms, what) {
  let timer;
  const t = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: timed out after ${(ms / 1000).toFixed(0)} s`)), ms);
  });
  return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

const MIME = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.json': 'application/json', '.wasm': 'application/wasm' };

function serve(dir) {
  const server = createServer((req, res) => {
    const url = decodeURIComponent((req.url ?? '/').split('?')[0]);
    const file = resolve(dir, '.' + (url === '/' ? '/webqat.html' : url));
    if (!file.startsWith(resolve(dir)) || !existsSync(file) || !statSync(file).isFile()) {
      res.statusCode = 404;
      res.end('not found');
      return;
    }
    res.setHeader('Content-Type', MIME[extname(file)] ?? 'application/octet-stream');
    res.setHeader('Cache-Control', 'no-store');
    createReadStream(file).pipe(res);
  });
  return new Promise((ok) => server.listen(0, '127.0.0.1', () => ok({ server, base: `http://127.0.0.1:${server.address().port}` })));
}

async function buildPages(outDir) {
  const { build } = await import('vite');
  process.env.WEBQAT_BENCH_OUT = outDir;
  await build({ configFile: join(here, 'vite.config.ts'), logLevel: 'error' });
}

function pkgVersion(name) {
  try {
    return JSON.parse(readFileSync(join(root, 'node_modules', name, 'package.json'), 'utf8')).version;
  } catch {
    return 'unknown';
  }
}

/** Uncommitted changes under src/ when the pages were built (the figures then describe the working tree). */
function srcChanges() {
  try {
    return execFileSync('git', ['status', '--porcelain', '--', 'src'], { cwd: root, encoding: 'utf8' }).split('\n').filter(Boolean);
  } catch {
    return ['unknown (git status failed)'];
  }
}

function gitCommit() {
  try {
    const head = readFileSync(join(root, '.git/HEAD'), 'utf8').trim();
    if (!head.startsWith('ref: ')) return head;
    const ref = head.slice(5);
    const p = join(root, '.git', ref);
    if (existsSync(p)) return readFileSync(p, 'utf8').trim();
    const packed = readFileSync(join(root, '.git/packed-refs'), 'utf8').split('\n').find((l) => l.endsWith(' ' + ref));
    return packed?.split(' ')[0] ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

async function launch(chromium) {
  const hw = process.env.WEBQAT_HW_GPU === '1';
  const browser = await chromium.launch({
    executablePath: process.env.WEBQAT_CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: hw ? CHROMIUM_ARGS : [...CHROMIUM_ARGS, ...SWIFTSHADER_ARGS],
    timeout: 60_000,
  });
  return browser;
}

/** One library in one fresh browser, within `sliceEnd` (ms epoch): load timing, then the benchmarks. */
async function runLibrary(chromium, base, lib, round, o, skip, sliceEnd) {
  const out = { library: lib, round, load: null, info: null, results: [], error: null, browserVersion: null, wallS: 0, sliceS: (sliceEnd - Date.now()) / 1000 };
  const t0 = Date.now();
  const left = () => sliceEnd - Date.now();
  let browser;
  try {
    browser = await withTimeout(launch(chromium), 90_000, 'launching Chromium');
    out.browserVersion = browser.version();
    const page = await browser.newPage();
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') console.log(`    [${lib} console.${m.type()}] ${m.text().slice(0, 300)}`);
      else console.log(`    [${lib}] ${m.text().slice(0, 300)}`);
    });
    page.on('pageerror', (e) => console.log(`    [${lib} pageerror] ${e.message}`));
    await page.goto(`${base}/${PAGE[lib]}${lib === 'webqat' && o.webqatTune ? `?tune=${o.webqatTune}` : ''}`, { waitUntil: 'domcontentloaded', timeout: 60_000 });
    const ready = await withTimeout(page.evaluate(() => globalThis.__benchReady), Math.max(left(), 150_000), `${lib}: page load -> first LeNet-5 step`);
    if (ready?.error) throw new Error(`${lib}: page start failed: ${ready.error}`);
    out.load = ready.load;
    out.info = ready.info;
    log(`${lib} round ${round}: page load -> first LeNet-5 step ${ready.load.firstStepMs.toFixed(0)} ms (script ${ready.load.scriptStartMs.toFixed(0)}, init ${ready.load.initDoneMs.toFixed(0)}, model ${ready.load.modelReadyMs.toFixed(0)})`);
    for (const bench of o.benches) {
      const key = `${lib}/${bench}`;
      if (skip.has(key)) {
        out.results.push({ library: lib, bench, status: 'skipped', reason: skip.get(key), samples: [] });
        continue;
      }
      if (round > 1 && !o.fullRounds && !REPEATED.includes(bench)) continue;
      if (left() < 5_000) {
        out.results.push({ library: lib, bench, status: 'budget', reason: `round ${round}: this session's time slice (${out.sliceS.toFixed(0)} s) was spent`, samples: [] });
        continue;
      }
      const opts = { steps: o.steps[bench], warmup: o.warmup, capMs: o.capMs, budgetMs: left() };
      let r;
      try {
        // the page stops starting steps at the slice's end; a step still running 20 s later ends the session
        r = await withTimeout(page.evaluate(([b, op]) => globalThis.__bench.run(b, op), [bench, opts]), left() + 20_000, `${key}`);
      } catch (e) {
        r = { library: lib, bench, status: 'timeout', reason: `round ${round}: ${String(e?.message ?? e)} (a single step outlasted the session's time slice; browser closed)`, samples: [] };
        out.results.push(r);
        skip.set(key, r.reason);
        log(`${key}: ${r.reason}`);
        for (const b of o.benches.slice(o.benches.indexOf(bench) + 1)) {
          out.results.push({ library: lib, bench: b, status: 'budget', reason: `round ${round}: the browser was closed after ${bench} timed out`, samples: [] });
        }
        break;
      }
      out.results.push(r);
      for (const row of r.rows ?? []) {
        log(`${key} ${row.key} round ${round}: ${row.status} prepare ${row.prepareMs?.toFixed(0) ?? '-'} ms, first ${row.firstMs?.toFixed(0) ?? '-'} ms, calls [${row.samples.map((x) => x.toFixed(1)).join(', ')}] ms (median ${row.samples.length ? median(row.samples).toFixed(1) : '-'})${row.reason ? ` - ${row.reason}` : ''}`);
      }
      if (r.rows) {
        // a later round skips an inference benchmark only when none of its rows gave a sample
        if (!r.rows.some((x) => x.samples.length)) skip.set(key, `round ${round}: no row gave a sample (${[...new Set(r.rows.map((x) => x.status))].join(', ')})`);
        continue;
      }
      const med = r.samples.length ? median(r.samples).toFixed(1) : '-';
      log(`${key} round ${round}: ${r.status} first ${r.firstMs?.toFixed(0) ?? '-'} ms, warm-up [${(r.warmupMs ?? []).map((x) => x.toFixed(0)).join(', ')}], steps [${r.samples.map((x) => x.toFixed(1)).join(', ')}] ms (median ${med})${r.reason ? ` - ${r.reason}` : ''}`);
      if (r.status === 'capped') skip.set(key, `capped in round ${round}: ${r.reason}`);
      if (r.status === 'not-available' || r.status === 'error') skip.set(key, r.reason);
    }
  } catch (e) {
    out.error = String(e?.stack ?? e).split('\n').slice(0, 4).join(' | ');
    log(`${lib} round ${round}: ERROR ${out.error}`);
  } finally {
    if (browser) await withTimeout(browser.close(), 10_000, 'closing Chromium').catch(() => {});
    out.wallS = (Date.now() - t0) / 1000;
  }
  return out;
}

/** webqat's profile (bench/browser/suites/webqat-profile.ts) of each benchmark in `benches`, one fresh browser. */
async function runProfile(chromium, base, benches, sliceEnd) {
  const out = [];
  let browser;
  try {
    browser = await withTimeout(launch(chromium), 90_000, 'launching Chromium');
    const page = await browser.newPage();
    await page.goto(`${base}/webqat.html`, { waitUntil: 'domcontentloaded', timeout: 60_000 });
    await withTimeout(page.evaluate(() => globalThis.__benchReady), Math.max(sliceEnd - Date.now(), 30_000), 'webqat profile: page start');
    for (const b of benches) {
      if (sliceEnd - Date.now() < 10_000) {
        out.push({ bench: b, error: 'time budget spent' });
        continue;
      }
      try {
        const p = await withTimeout(page.evaluate((name) => globalThis.__bench.profile(name), b), sliceEnd - Date.now() + 20_000, `webqat profile ${b}`);
        out.push(p);
        log(`profile ${b}: step ${p.stepMs.toFixed(0)} ms, ${p.dispatches} dispatches, ${p.submits} submits; replay sum ${p.replayMs.toFixed(0)} ms (empty submit+wait ${p.syncMs.toFixed(2)} ms); ${p.pipelines} pipelines compile ${p.compileMs.toFixed(0)} ms`);
        for (const k of p.kernels.slice(0, 8)) log(`   ${k.key.padEnd(44)} x${String(k.count).padStart(3)}  ${k.totalMs.toFixed(1).padStart(8)} ms  compile ${k.compileMs?.toFixed(0) ?? '-'} ms`);
      } catch (e) {
        out.push({ bench: b, error: String(e?.message ?? e) });
        log(`profile ${b}: ${e?.message ?? e}`);
        break;
      }
    }
  } finally {
    if (browser) await withTimeout(browser.close(), 10_000, 'closing Chromium').catch(() => {});
  }
  return out;
}

function median(xs) {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function runDeno(o, jsonPath, budgetS) {
  return new Promise((ok) => {
    const args = ['deno', 'run', '-A', '--no-check', 'bench/browser/deno.ts', '--json', jsonPath, '--steps', String(o.denoSteps), '--cap-ms', String(o.capMs),
      '--benches', o.benches.join(','), '--budget-ms', String(Math.round(budgetS * 1000))];
    const env = {
      ...process.env,
      VK_ICD_FILENAMES: process.env.WEBQAT_DENO_ICD ?? '/usr/share/vulkan/icd.d/lvp_icd.x86_64.json',
      XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp',
    };
    const p = spawn('npx', args, { cwd: root, env, stdio: ['ignore', 'inherit', 'inherit'] });
    // the suite stops starting steps at its budget; one long step may run over by this much
    const timer = setTimeout(() => p.kill('SIGTERM'), (budgetS + 60) * 1000);
    p.on('exit', (code, signal) => {
      clearTimeout(timer);
      ok({ code, signal });
    });
  });
}

/** Per library x benchmark: every sample of every round, medians, first steps, statuses. */
function aggregate(runs, o) {
  const table = {};
  for (const lib of o.libs) {
    table[lib] = {};
    for (const bench of benchKeys(o.benches)) {
      const rs = runs.filter((r) => r.library === lib).flatMap((r) => r.results.flatMap(flatResult).filter((x) => x.bench === bench).map((x) => ({ ...x, round: r.round })));
      const samples = rs.flatMap((x) => x.samples);
      const notes = rs.find((x) => x.notes)?.notes;
      const reasons = [...new Set(rs.filter((x) => x.reason).map((x) => `${x.status}: ${x.reason}`))];
      table[lib][bench] = {
        medianMs: median(samples),
        minMs: samples.length ? Math.min(...samples) : NaN,
        samples,
        perRound: rs.map((x) => ({ round: x.round, status: x.status, firstMs: x.firstMs ?? null, afterFirstMs: x.afterFirstMs ?? null, prepareMs: x.prepareMs ?? null, warmupMs: x.warmupMs ?? [], samples: x.samples, firstValue: x.firstValue ?? null, lastValue: x.lastValue ?? null, reason: x.reason ?? null })),
        firstStepMs: rs.filter((x) => x.firstMs != null).map((x) => x.firstMs),
        parameters: rs.find((x) => x.parameters != null)?.parameters ?? null,
        ...(isInfer(bench.split(' ')[0]) ? { stats: rs.find((x) => x.stats)?.stats ?? null } : {}),
        // partial: a run that gave samples was cut (cap or budget); rounds that gave none are in `reasons`
        status: samples.length ? (rs.some((x) => x.samples.length && x.status !== 'ok') ? 'partial' : 'ok') : rs.find((x) => x.status !== 'skipped')?.status ?? rs[0]?.status ?? 'missing',
        notes: notes ?? null,
        reasons,
      };
    }
    const loads = runs.filter((r) => r.library === lib && r.load);
    table[lib].load = {
      medianMs: median(loads.map((r) => r.load.firstStepMs)),
      samples: loads.map((r) => r.load.firstStepMs),
      milestones: loads.map((r) => r.load),
    };
  }
  return table;
}

function ratios(table, o) {
  const out = {};
  for (const other of o.libs.filter((l) => l !== 'webqat')) {
    out[other] = {};
    for (const b of [...benchKeys(o.benches), 'load']) {
      const w = table.webqat?.[b]?.medianMs;
      // inference: the other libraries run float only; a packed row compares with their float row
      const x = table[other]?.[b.replace(' packed ', ' float ')]?.medianMs;
      // > 1: webqat is faster (the other library's time / webqat's time)
      out[other][b] = Number.isFinite(w) && Number.isFinite(x) && w > 0 ? x / w : null;
    }
  }
  return out;
}

async function screenshot(chromium, htmlPath, pngPath) {
  const browser = await launch(chromium);
  try {
    const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
    await page.goto(`file://${resolve(htmlPath)}`, { waitUntil: 'load', timeout: 30_000 });
    await page.waitForFunction(() => globalThis.__reportReady === true, null, { timeout: 30_000 });
    await page.screenshot({ path: pngPath, fullPage: true });
  } finally {
    await browser.close().catch(() => {});
  }
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const { chromium } = await import('playwright-core');
  const outDir = join(root, 'node_modules/.cache/webqat-bench');
  log(`building the benchmark pages (vite) into ${relative(root, outDir)}`);
  await buildPages(outDir);
  const { server, base } = await serve(outDir);
  log(`serving at ${base}; ${o.rounds} round(s) of ${o.libs.join(', ')}; benches ${o.benches.join(', ')}; cap ${o.capMs} ms/step`);
  const load0 = loadavg();
  const runs = [];
  const skip = new Map();
  const withDeno = o.deno && o.libs.includes('webqat');
  // webqat in Deno first (its own budget), so the browser rounds get exactly what is left
  let deno = null;
  if (withDeno) {
    const p = join(tmpdir(), `webqat-bench-deno-${process.pid}.json`);
    const budget = Math.max(20, DENO_RESERVE_S - 20);
    log(`webqat in Deno (wgpu, lavapipe): bench/browser/deno.ts, budget ${budget.toFixed(0)} s`);
    const r = await runDeno(o, p, budget);
    if (existsSync(p)) {
      deno = JSON.parse(readFileSync(p, 'utf8'));
      deno.results = deno.results?.flatMap(flatResult);
    } else deno = { error: `deno exited with ${r.code ?? r.signal}` };
  }
  const browserEnd = T0 + (o.budgetS - REPORT_RESERVE_S) * 1000;
  const sessions = [];
  for (let round = 1; round <= o.rounds; round++) for (const lib of o.libs) sessions.push({ round, lib, weight: round === 1 ? 4 : 1 });
  // a profile session takes the share of a first-round session
  let profile = null;
  const profileWeight = o.profile.length ? 4 : 0;
  try {
    for (let i = 0; i < sessions.length; i++) {
      const { round, lib, weight } = sessions[i];
      const rest = sessions.slice(i).reduce((s, x) => s + x.weight, 0) + profileWeight;
      const slice = ((browserEnd - Date.now()) * weight) / rest;
      // a later round starts only if this library's first page load (measured in round 1) still fits
      const loaded = runs.find((r) => r.library === lib && r.load)?.load?.firstStepMs ?? 0;
      const tooShort = round > 1 && browserEnd - Date.now() < loaded + 10_000;
      if (slice < 20_000 || tooShort) {
        log(`time budget spent: ${lib} round ${round} not started`);
        runs.push({ library: lib, round, load: null, info: null, results: o.benches.map((b) => ({ library: lib, bench: b, status: 'budget', reason: `round ${round} not started: time budget spent`, samples: [] })), error: 'not started: time budget spent', wallS: 0 });
        continue;
      }
      log(`${lib} round ${round}: time slice ${(slice / 1000).toFixed(0)} s`);
      runs.push(await runLibrary(chromium, base, lib, round, o, skip, Date.now() + slice));
    }
    if (o.profile.length) {
      const end = browserEnd + 0;
      if (end - Date.now() > 20_000) profile = await runProfile(chromium, base, o.profile, end);
      else profile = o.profile.map((b) => ({ bench: b, error: 'time budget spent' }));
    }
  } finally {
    server.close();
  }
  const table = aggregate(runs, o);
  const first = runs.find((r) => r.browserVersion);
  const result = {
    benchmark: 'webqat cross-library browser suite',
    date: new Date().toISOString(),
    commit: gitCommit(),
    srcUncommitted: srcChanges(),
    browser: { executable: process.env.WEBQAT_CHROMIUM ?? '/usr/bin/chromium', version: first?.browserVersion ?? null, flags: process.env.WEBQAT_HW_GPU === '1' ? CHROMIUM_ARGS : [...CHROMIUM_ARGS, ...SWIFTSHADER_ARGS] },
    adapters: Object.fromEntries(o.libs.map((l) => [l, runs.find((r) => r.library === l && r.info)?.info ?? null])),
    versions: { webqat: `${JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version} (commit ${gitCommit().slice(0, 10)})`, tfjs: pkgVersion('@tensorflow/tfjs'), 'tfjs-backend-webgpu': pkgVersion('@tensorflow/tfjs-backend-webgpu'), 'jax-js': pkgVersion('@jax-js/jax'), 'playwright-core': pkgVersion('playwright-core') },
    machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? '', loadavgStart: load0, loadavgEnd: loadavg() },
    options: { fullRounds: o.fullRounds, repeatedInLaterRounds: o.fullRounds ? o.benches : REPEATED, rounds: o.rounds, steps: o.steps, warmup: o.warmup, capMs: o.capMs, budgetS: o.budgetS, libs: o.libs, benches: o.benches, keys: benchKeys(o.benches), denoSteps: o.denoSteps },
    method: {
      order: 'interleaved: each round runs every library in turn, each in a freshly launched Chromium with a fresh profile',
      timing: 'each step timed alone (performance.now() in the page) and ended by a readback; figure = median over all timed steps of all rounds',
      inference: 'forward only, host pixels to host logits (input upload, forward, readback of the [batch, 10] logits), each call timed alone; the variants of a benchmark interleaved call by call in one page; batch 1 gets 4x the calls of batch 64; random weights from fixed seeds; webqat packed: exportPacked + loadPacked in the page; ratio of a packed row = the other library\'s float time / webqat\'s packed time',
      load: 'page load -> first LeNet-5 step: performance.now() in the page (ms since navigation start) when the first step\'s loss has been read back',
      clock: Object.fromEntries(o.libs.map((l) => [l, runs.find((r) => r.library === l && r.info)?.info?.clock ?? null])),
    },
    table,
    ratios: ratios(table, o),
    deno,
    profile,
    runs,
    wallS: elapsed(),
  };
  for (const f of [o.json, o.html, o.png]) mkdirSync(dirname(resolve(f)), { recursive: true });
  writeFileSync(o.json, JSON.stringify(result, null, 2) + '\n');
  log(`wrote ${o.json}`);
  const chartJs = relative(dirname(resolve(o.html)), join(root, 'node_modules/chart.js/dist/chart.umd.js'));
  writeFileSync(o.html, renderReport(result, { chartJs }));
  log(`wrote ${o.html}`);
  try {
    await withTimeout(screenshot(chromium, o.html, o.png), 90_000, 'screenshot');
    log(`wrote ${o.png}`);
  } catch (e) {
    log(`screenshot failed: ${e?.message ?? e}`);
    process.exitCode = 1;
  }
  printSummary(result, o);
  log(`done in ${elapsed().toFixed(0)} s`);
}

function printSummary(result, o) {
  const f = (x) => (Number.isFinite(x) ? x.toFixed(1) : '-');
  console.log('\n' + 'median ms (all rounds)'.padEnd(28) + o.libs.map((l) => l.padStart(10)).join('') + (o.libs.length > 1 ? '   ratios (other / webqat)' : ''));
  for (const b of [...benchKeys(o.benches), 'load']) {
    const row = o.libs.map((l) => f(result.table[l]?.[b]?.medianMs).padStart(10)).join('');
    const rat = Object.entries(result.ratios).map(([l, r]) => `${l} ${r[b] == null ? '-' : r[b].toFixed(2) + 'x'}`).join('  ');
    console.log(`${b.padEnd(28)}${row}   ${rat}`);
  }
  if (result.deno?.results) {
    console.log('\nwebqat in Deno: ' + result.deno.results.map((r) => `${r.bench} ${f(median(r.samples))} ms`).join(', '));
  }
}

main().catch((e) => {
  console.error(`webqat: bench: ${e?.stack ?? e}`);
  process.exit(1);
}).then(() => setTimeout(() => process.exit(process.exitCode ?? 0), 1000).unref());
