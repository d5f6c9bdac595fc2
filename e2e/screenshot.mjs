#!/usr/bin/env node
// docs/app-screenshot.png: the web app after a short training run, in the same Chromium setup as the
// e2e suite (Vite on 127.0.0.1, SwiftShader WebGPU unless WEBQAT_HW_GPU=1).
//
//   node e2e/screenshot.mjs [out.png]      (default docs/app-screenshot.png)
//
// It trains an SQ-quantized MLP for two epochs on 1,920 MNIST samples, evaluates on the test set,
// saves a checkpoint (download + browser storage), draws a "7" on the pad with the mouse, and takes
// a full-page screenshot.
import { mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { configure, openApp, trainAndWait } from './app.e2e.mjs';
import { launchChromium, startVite } from './run.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = resolve(process.argv[2] ?? join(root, 'docs/app-screenshot.png'));
const cleanups = [];
const t0 = Date.now();
const say = (s) => console.log(`screenshot: ${((Date.now() - t0) / 1000).toFixed(1)} s: ${s}`);

try {
  const { server, baseUrl } = await startVite();
  cleanups.push(() => server.close());
  const { context } = await launchChromium(cleanups);
  cleanups.push(() => context.close());
  const page = await context.newPage();
  page.setDefaultTimeout(60_000);
  page.on('pageerror', (e) => console.error(`[pageerror] ${e.message}`));
  await openApp(page, baseUrl);
  say(`app ready: ${await page.textContent('#gpu-status')}`);
  const quants = await page.$$eval('#quant option', (os) => os.map((o) => o.value));
  const sq = quants.find((q) => q.startsWith('sq')) ?? 'twn';
  await configure(page, { model: 'mlp', dataset: 'mnist', quant: sq, trainN: 1920, testN: 500, batch: 64, epochs: 2, lr: 0.002, optim: 'adam', seed: 1 });
  const s = await trainAndWait(page, 600_000);
  say(`trained: ${await page.textContent('#progress-text')}`);
  await page.click('#evaluate');
  await page.waitForFunction(() => window.__webqat.state().lastEval !== null, null, { timeout: 60_000 });
  say(await page.textContent('#eval-result'));
  const [dl] = await Promise.all([page.waitForEvent('download'), page.click('#save')]);
  await dl.cancel().catch(() => {});
  await page.waitForFunction(() => window.__webqat.state().lastSaved !== null, null, { timeout: 30_000 });
  // a "7" drawn with the mouse (pointer events on the pad), classified when the stroke ends
  const box = await page.locator('#pad').boundingBox();
  const at = (fx, fy) => [box.x + fx * box.width, box.y + fy * box.height];
  const pts = [[0.25, 0.22], [0.5, 0.22], [0.74, 0.22], [0.62, 0.45], [0.52, 0.65], [0.45, 0.85]];
  await page.mouse.move(...at(...pts[0]));
  await page.mouse.down();
  for (const p of pts.slice(1)) await page.mouse.move(...at(...p), { steps: 8 });
  await page.mouse.up();
  await page.waitForFunction(() => document.querySelector('#prediction .top') !== null, null, { timeout: 60_000 });
  await page.waitForFunction(() => window.__webqat.state().phase === 'idle', null, { timeout: 60_000 });
  say(`drawn digit classified as ${await page.textContent('#prediction .top')}`);
  mkdirSync(dirname(out), { recursive: true });
  await page.screenshot({ path: out, fullPage: true });
  say(`wrote ${out} (test accuracy ${s.initialTestAcc} -> ${s.lastTestAcc})`);
} catch (e) {
  console.error(`screenshot: ${e?.stack ?? e}`);
  process.exitCode = 1;
} finally {
  while (cleanups.length) await Promise.resolve().then(cleanups.pop()).catch(() => {});
}
setTimeout(() => process.exit(process.exitCode ?? 0), 2_000).unref();
