#!/usr/bin/env node
// `npm run bench -- [--json FILE] [--html FILE] [options]`: the cross-library benchmark.
//
// Builds the benchmark pages (bench/browser/vite.config.ts: one page per library), serves them on
// 127.0.0.1, and for each round launches a fresh Chromium (playwright-core, /usr/bin/chromium,
// never a downloaded browser) per library, interleaved: webqat, tfjs, jax-js, webqat, tfjs, ...
// Each page measures page load -> first LeNet-5 step on its own clock (ms since navigation start),
// then runs the suite (bench/browser/common.ts): matmul 1024^3, MLP b128, LeNet-5 b64, ResNet-20
// b32, SSPQ20 b32 training steps, every step timed alone and ended by a readback. A library x
// benchmark whose single step exceeds --cap-ms keeps the samples it has and is skipped in later
// rounds (the reason is recorded). Then the webqat suite runs in Deno (bench/browser/deno.ts,
// lavapipe). Writes JSON (every sample), an HTML report with charts (chart.js) and a PNG of it.
//
// Options:
//   --json FILE        (default docs/bench/bench.json)      --html FILE  (default docs/bench/report.html)
//   --png FILE         (default: the html path with .png)
//   --rounds N         browser rounds per library (default 3)
//   --steps a=N,...    timed steps per round (default matmul=3,mlp=5,lenet5=5,resnet20=3,sspq20=3)
//   --libs a,b         subset of webqat,tfjs,jax-js          --benches a,b  subset of the benchmarks
//   --cap-ms MS        per-step cap (default 6000)           --first-cap-ms MS  first-step cap (default 90000)
//   --budget-s S       stop starting new work after S seconds (default 780)
//   --no-deno          skip the Deno run                     --deno-steps N (default 3)
// Environment: WEBQAT_CHROMIUM (default /usr/bin/chromium), WEBQAT_HW_GPU=1 (drop SwiftShader flags).
import { spawn } from 'node:child_process';
import { createReadStream, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { loadavg, cpus, tmpdir } from 'node:os';
import { dirname, extname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderReport } from './report.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '../..');
const T0 = Date.now();
const elapsed = () => (Date.now() - T0) / 1000;
const log = (s) => console.log(`[${elapsed().toFixed(0).padStart(4)} s] ${s}`);

// Chromium flags: the list e2e/run.mjs exports as CHROMIUM_ARGS (copied, so importing it does not
// start the e2e suite), plus SwiftShader unless WEBQAT_HW_GPU=1.
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--enable-unsafe-webgpu',
  '--enable-features=Vulkan',
];
const SWIFTSHADER_ARGS = ['--use-vulkan=swiftshader', '--use-angle=swiftshader'];

const ALL_LIBS = ['webqat', 'tfjs', 'jax-js'];
const PAGE = { webqat: 'webqat.html', tfjs: 'tfjs.html', 'jax-js': 'jax.html' };
const ALL_BENCHES = ['matmul', 'mlp', 'lenet5', 'resnet20', 'sspq20'];
const DEFAULT_STEPS = { matmul: 3, mlp: 5, lenet5: 5, resnet20: 3, sspq20: 3 };

function fail(msg) {
  console.error(`webqat: bench: ${msg}`);
  process.exit(2);
}

function parseArgs(argv) {
  const o = {
    json: 'docs/bench/bench.json',
    html: 'docs/bench/report.html',
    png: null,
    rounds: 3,
    steps: { ...DEFAULT_STEPS },
    libs: [...ALL_LIBS],
    benches: [...ALL_BENCHES],
    capMs: 6000,
    firstCapMs: 90000,
    budgetS: 780,
    deno: true,
    denoSteps: 3,
    warmup: 1,
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
      case '--first-cap-ms': o.firstCapMs = num(a, val(), 1); break;
      case '--budget-s': o.budgetS = num(a, val(), 1); break;
      case '--warmup': o.warmup = num(a, val(), 0); break;
      case '--no-deno': o.deno = false; break;
      case '--deno-steps': o.denoSteps = num(a, val(), 1); break;
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

/** One library in one fresh browser: load timing, then every benchmark not skipped. */
async function runLibrary(chromium, base, lib, round, o, skip, deadline) {
  const out = { library: lib, round, load: null, info: null, results: [], error: null, browserVersion: null, wallS: 0 };
  const t0 = Date.now();
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
    await page.goto(`${base}/${PAGE[lib]}`, { waitUntil: 'domcontentloaded', timeout: 60_000 });
    const ready = await withTimeout(page.evaluate(() => globalThis.__benchReady), o.firstCapMs + 30_000, `${lib}: first LeNet-5 step`);
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
      if (Date.now() > deadline) {
        out.results.push({ library: lib, bench, status: 'skipped', reason: `time budget (--budget-s ${o.budgetS}) spent`, samples: [] });
        continue;
      }
      const opts = { steps: o.steps[bench], warmup: o.warmup, capMs: o.capMs, firstCapMs: o.firstCapMs };
      const limit = o.firstCapMs + (o.warmup + o.steps[bench] + 1) * o.capMs + 60_000;
      let r;
      try {
        r = await withTimeout(page.evaluate(([b, op]) => globalThis.__bench.run(b, op), [bench, opts]), limit, `${key}`);
      } catch (e) {
        r = { library: lib, bench, status: 'error', reason: String(e?.message ?? e), samples: [] };
        out.results.push(r);
        skip.set(key, `round ${round}: ${r.reason}`);
        log(`${key}: ${r.reason}; closing this browser`);
        break;
      }
      out.results.push(r);
      const med = r.samples.length ? median(r.samples).toFixed(1) : '-';
      log(`${key} round ${round}: ${r.status} first ${r.firstMs?.toFixed(0) ?? '-'} ms, steps [${r.samples.map((x) => x.toFixed(1)).join(', ')}] ms (median ${med})${r.reason ? ` - ${r.reason}` : ''}`);
      if (r.status === 'capped') skip.set(key, `round ${r.round ?? round}: ${r.reason}`);
      if (r.status === 'not-available' || r.status === 'error') skip.set(key, r.reason);
    }
  } catch (e) {
    out.error = String(e?.stack ?? e).split('\n').slice(0, 4).join(' | ');
    log(`${lib} round ${round}: ERROR ${out.error}`);
  } finally {
    if (browser) await withTimeout(browser.close(), 20_000, 'closing Chromium').catch(() => {});
    out.wallS = (Date.now() - t0) / 1000;
  }
  return out;
}

function median(xs) {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function runDeno(o, jsonPath) {
  return new Promise((ok) => {
    const args = ['deno', 'run', '-A', '--no-check', 'bench/browser/deno.ts', '--json', jsonPath, '--steps', String(o.denoSteps), '--cap-ms', String(o.capMs), '--benches', o.benches.join(',')];
    const env = {
      ...process.env,
      VK_ICD_FILENAMES: process.env.WEBQAT_DENO_ICD ?? '/usr/share/vulkan/icd.d/lvp_icd.x86_64.json',
      XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp',
    };
    const p = spawn('npx', args, { cwd: root, env, stdio: ['ignore', 'inherit', 'inherit'] });
    const left = Math.max(30, o.budgetS + 120 - elapsed());
    const timer = setTimeout(() => p.kill('SIGTERM'), left * 1000);
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
    for (const bench of o.benches) {
      const rs = runs.filter((r) => r.library === lib).flatMap((r) => r.results.filter((x) => x.bench === bench).map((x) => ({ ...x, round: r.round })));
      const samples = rs.flatMap((x) => x.samples);
      const notes = rs.find((x) => x.notes)?.notes;
      const reasons = [...new Set(rs.filter((x) => x.reason).map((x) => `${x.status}: ${x.reason}`))];
      table[lib][bench] = {
        medianMs: median(samples),
        minMs: samples.length ? Math.min(...samples) : NaN,
        samples,
        perRound: rs.map((x) => ({ round: x.round, status: x.status, firstMs: x.firstMs ?? null, prepareMs: x.prepareMs ?? null, samples: x.samples, firstValue: x.firstValue ?? null, lastValue: x.lastValue ?? null, reason: x.reason ?? null })),
        firstStepMs: rs.filter((x) => x.firstMs != null).map((x) => x.firstMs),
        parameters: rs.find((x) => x.parameters != null)?.parameters ?? null,
        status: samples.length ? (rs.some((x) => x.status === 'capped' || x.status === 'skipped') ? 'partial' : 'ok') : rs[0]?.status ?? 'missing',
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
    for (const b of [...o.benches, 'load']) {
      const w = table.webqat?.[b]?.medianMs;
      const x = table[other]?.[b]?.medianMs;
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
  const deadline = T0 + o.budgetS * 1000;
  const { chromium } = await import('playwright-core');
  const outDir = join(root, 'node_modules/.cache/webqat-bench');
  log(`building the benchmark pages (vite) into ${relative(root, outDir)}`);
  await buildPages(outDir);
  const { server, base } = await serve(outDir);
  log(`serving at ${base}; ${o.rounds} round(s) of ${o.libs.join(', ')}; benches ${o.benches.join(', ')}; cap ${o.capMs} ms/step`);
  const load0 = loadavg();
  const runs = [];
  const skip = new Map();
  try {
    for (let round = 1; round <= o.rounds; round++) {
      for (const lib of o.libs) {
        if (Date.now() > deadline) {
          log(`time budget spent: ${lib} round ${round} not started`);
          continue;
        }
        runs.push(await runLibrary(chromium, base, lib, round, o, skip, deadline));
      }
    }
  } finally {
    server.close();
  }
  let deno = null;
  if (o.deno && o.libs.includes('webqat')) {
    const p = join(tmpdir(), `webqat-bench-deno-${process.pid}.json`);
    log('webqat in Deno (wgpu, lavapipe): bench/browser/deno.ts');
    const r = await runDeno(o, p);
    if (existsSync(p)) deno = JSON.parse(readFileSync(p, 'utf8'));
    else deno = { error: `deno exited with ${r.code ?? r.signal}` };
  }
  const table = aggregate(runs, o);
  const first = runs.find((r) => r.browserVersion);
  const result = {
    benchmark: 'webqat cross-library browser suite',
    date: new Date().toISOString(),
    commit: gitCommit(),
    browser: { executable: process.env.WEBQAT_CHROMIUM ?? '/usr/bin/chromium', version: first?.browserVersion ?? null, flags: process.env.WEBQAT_HW_GPU === '1' ? CHROMIUM_ARGS : [...CHROMIUM_ARGS, ...SWIFTSHADER_ARGS] },
    adapters: Object.fromEntries(o.libs.map((l) => [l, runs.find((r) => r.library === l && r.info)?.info ?? null])),
    versions: { webqat: `${JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version} (commit ${gitCommit().slice(0, 10)})`, tfjs: pkgVersion('@tensorflow/tfjs'), 'tfjs-backend-webgpu': pkgVersion('@tensorflow/tfjs-backend-webgpu'), 'jax-js': pkgVersion('@jax-js/jax'), 'playwright-core': pkgVersion('playwright-core') },
    machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? '', loadavgStart: load0, loadavgEnd: loadavg() },
    options: { rounds: o.rounds, steps: o.steps, warmup: o.warmup, capMs: o.capMs, firstCapMs: o.firstCapMs, budgetS: o.budgetS, libs: o.libs, benches: o.benches },
    method: {
      order: 'interleaved: each round runs every library in turn, each in a freshly launched Chromium with a fresh profile',
      timing: 'each step timed alone (performance.now() in the page) and ended by a readback; figure = median over all timed steps of all rounds',
      load: 'page load -> first LeNet-5 step: performance.now() in the page (ms since navigation start) when the first step\'s loss has been read back',
      clock: Object.fromEntries(o.libs.map((l) => [l, runs.find((r) => r.library === l && r.info)?.info?.clock ?? null])),
    },
    table,
    ratios: ratios(table, o),
    deno,
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
  console.log('\nmedian ms (all rounds)   ' + o.libs.map((l) => l.padStart(10)).join('') + (o.libs.length > 1 ? '   ratios (other / webqat)' : ''));
  for (const b of [...o.benches, 'load']) {
    const row = o.libs.map((l) => f(result.table[l]?.[b]?.medianMs).padStart(10)).join('');
    const rat = Object.entries(result.ratios).map(([l, r]) => `${l} ${r[b] == null ? '-' : r[b].toFixed(2) + 'x'}`).join('  ');
    console.log(`${b.padEnd(25)}${row}   ${rat}`);
  }
  if (result.deno?.results) {
    console.log('\nwebqat in Deno: ' + result.deno.results.map((r) => `${r.bench} ${f(median(r.samples))} ms`).join(', '));
  }
}

main().catch((e) => {
  console.error(`webqat: bench: ${e?.stack ?? e}`);
  process.exit(1);
}).then(() => setTimeout(() => process.exit(process.exitCode ?? 0), 1000).unref());
