#!/usr/bin/env node
// The Chromium stage of `npm test` (`npm run test:e2e`): starts the Vite dev server on 127.0.0.1
// (an ephemeral port), launches Chromium through playwright-core with a working WebGPU, runs every
// test of e2e/*.e2e.mjs in a fresh page, and ends with one line `e2e: N passed, M failed`
// (exit status 1 on any failure).
//
//   node e2e/run.mjs [filter...]     run only tests whose file or name contains a filter word
//
// Environment:
//   WEBQAT_CHROMIUM   Chromium/Chrome executable (default /usr/bin/chromium)
//   WEBQAT_HW_GPU=1   use the machine's GPU (drops the SwiftShader flags)
//   WEBQAT_E2E_HEADED=1  show the browser window
//
// Importing this module runs nothing: it exports CHROMIUM_ARGS, SWIFTSHADER_ARGS, startVite() and
// launchChromium() for other drivers (e2e/screenshot.mjs); the suite runs only when it is the script.
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const filters = process.argv.slice(2);
const TOTAL_LIMIT_MS = Number(process.env.WEBQAT_E2E_LIMIT_MS ?? 10 * 60_000);

export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--enable-unsafe-webgpu',
  '--enable-features=Vulkan',
];
export const SWIFTSHADER_ARGS = ['--use-vulkan=swiftshader', '--use-angle=swiftshader'];

const T0 = Date.now();
const elapsed = () => `${((Date.now() - T0) / 1000).toFixed(1)} s`;
let passed = 0;
let failed = 0;
let finished = false;
const cleanups = [];

function finish(code) {
  if (finished) return;
  finished = true;
  console.log(`e2e: ${passed} passed, ${failed} failed (${elapsed()})`);
  process.exitCode = code ?? (failed > 0 ? 1 : 0);
}

async function cleanup() {
  while (cleanups.length) {
    const f = cleanups.pop();
    try {
      await withTimeout(Promise.resolve().then(f), 20_000, 'cleanup');
    } catch (e) {
      console.error(`e2e: cleanup: ${e.message}`);
    }
  }
}

function withTimeout(promise, ms, what) {
  let timer;
  const t = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: timed out after ${(ms / 1000).toFixed(0)} s`)), ms);
  });
  return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;

// a hard stop: whatever hangs, the stage ends with its summary line and a failure
const watchdog = isMain && setTimeout(async () => {
  console.error(`e2e: the whole suite exceeded ${TOTAL_LIMIT_MS / 1000} s; stopping`);
  failed++;
  await cleanup().catch(() => {});
  finish(1);
  process.exit(1);
}, TOTAL_LIMIT_MS);
if (watchdog) watchdog.unref();

async function loadTests() {
  const files = readdirSync(here).filter((f) => f.endsWith('.e2e.mjs')).sort();
  const tests = [];
  for (const f of files) {
    const mod = await import(pathToFileURL(join(here, f)).href);
    for (const t of mod.tests ?? []) {
      const full = `${f.replace(/\.e2e\.mjs$/, '')}: ${t.name}`;
      if (filters.length && !filters.some((w) => full.includes(w))) continue;
      tests.push({ ...t, full });
    }
  }
  return tests;
}

export async function startVite() {
  const { createServer } = await import('vite');
  const server = await createServer({
    configFile: join(root, 'vite.config.ts'),
    logLevel: 'warn',
    server: { host: '127.0.0.1', port: 0, strictPort: false, hmr: false, open: false },
  });
  await server.listen();
  const addr = server.httpServer?.address();
  if (!addr || typeof addr === 'string') throw new Error('vite: no TCP address');
  return { server, baseUrl: `http://127.0.0.1:${addr.port}` };
}

/** Chromium through playwright-core (a persistent context in a temporary profile, removed by `cleanups`). */
export async function launchChromium(cleanups) {
  const { chromium } = await import('playwright-core');
  const executablePath = process.env.WEBQAT_CHROMIUM ?? '/usr/bin/chromium';
  const hw = process.env.WEBQAT_HW_GPU === '1';
  const args = hw ? CHROMIUM_ARGS : [...CHROMIUM_ARGS, ...SWIFTSHADER_ARGS];
  const userDataDir = mkdtempSync(join(tmpdir(), 'webqat-e2e-'));
  cleanups.push(() => rmSync(userDataDir, { recursive: true, force: true }));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: process.env.WEBQAT_E2E_HEADED !== '1',
    args,
    timeout: 60_000,
    acceptDownloads: true,
    viewport: { width: 1280, height: 900 },
  });
  return { context, executablePath, hw };
}

/** Ask a fresh page (served from the Vite origin: a secure context) which adapter WebGPU gives. */
async function probeAdapter(context, baseUrl) {
  const page = await context.newPage();
  try {
    await page.goto(`${baseUrl}/smoke.html`, { timeout: 30_000, waitUntil: 'domcontentloaded' });
    return await page.evaluate(async () => {
      if (!navigator.gpu) return { ok: false, text: 'navigator.gpu is missing' };
      const a = await navigator.gpu.requestAdapter();
      if (!a) return { ok: false, text: 'requestAdapter() returned null' };
      const i = a.info ?? {};
      const text = [i.vendor, i.architecture, i.device, i.description].filter(Boolean).join(' / ') || 'unnamed adapter';
      return { ok: true, text, fallback: Boolean(i.isFallbackAdapter) };
    });
  } finally {
    await page.close().catch(() => {});
  }
}

async function runTest(t, env) {
  const page = await env.context.newPage();
  const logs = [];
  page.on('console', (m) => logs.push(`[console.${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`[pageerror] ${e.message}`));
  page.setDefaultTimeout(60_000);
  const t0 = Date.now();
  try {
    await withTimeout(t.run({ page, baseUrl: env.baseUrl, context: env.context, log: (s) => console.log(`    ${s}`) }), t.timeoutMs ?? 60_000, t.full);
    passed++;
    console.log(`ok   ${t.full} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${t.full} (${((Date.now() - t0) / 1000).toFixed(1)} s)\n     ${String(e?.stack ?? e).split('\n').slice(0, 6).join('\n     ')}`);
    if (logs.length) console.log(`     page log (last 30 lines):\n       ${logs.slice(-30).join('\n       ')}`);
  } finally {
    await withTimeout(page.close(), 10_000, 'page.close').catch(() => {});
  }
}

async function main() {
  const tests = await loadTests();
  if (tests.length === 0) {
    console.log(`e2e: no tests match ${filters.join(' ')}`);
    failed++;
    return;
  }
  const { server, baseUrl } = await withTimeout(startVite(), 60_000, 'starting vite');
  cleanups.push(() => server.close());
  console.log(`e2e: vite at ${baseUrl} (${elapsed()})`);
  const { context, executablePath, hw } = await withTimeout(launchChromium(cleanups), 90_000, 'launching Chromium');
  cleanups.push(() => context.close());
  console.log(`e2e: ${executablePath} ${context.browser()?.version() ?? ''}${hw ? ' (hardware GPU)' : ' (SwiftShader)'} (${elapsed()})`);
  const adapter = await withTimeout(probeAdapter(context, baseUrl), 60_000, 'probing the WebGPU adapter');
  console.log(`e2e: adapter: ${adapter.text}${adapter.fallback ? ' (fallback adapter)' : ''} (${elapsed()})`);
  if (!adapter.ok) console.log('e2e: WebGPU is not available in this Chromium; the tests below will fail');
  for (const t of tests) await runTest(t, { context, baseUrl });
}

if (isMain) {
  try {
    await main();
  } catch (e) {
    failed++;
    console.log(`e2e: ${e?.stack ?? e}`);
  } finally {
    await cleanup();
    clearTimeout(watchdog);
    finish();
  }
  // a lingering handle (a browser pipe, a watcher) must never hang `npm test`
  setTimeout(() => process.exit(process.exitCode ?? 0), 2_000).unref();
}
