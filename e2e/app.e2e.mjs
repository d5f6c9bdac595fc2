// End-to-end tests of the web app (examples/browser/index.html) in Chromium. Runs are tiny (an MLP
// on a few hundred MNIST samples) so the suite stays quick on SwiftShader.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const state = (page) => page.evaluate(() => window.__webqat.state());

/** Open the app and wait until it is ready (adapter found, controls enabled). */
export async function openApp(page, baseUrl) {
  await page.goto(`${baseUrl}/`, { waitUntil: 'domcontentloaded' });
  await page.waitForFunction(() => window.__webqat?.state().phase === 'idle' || window.__webqat?.state().phase === 'no-webgpu', null, {
    timeout: 30_000,
  });
  const s = await state(page);
  assert.equal(s.phase, 'idle', `the app did not become ready: ${await page.textContent('#gpu-status')}`);
  return s;
}

/** Fill the setup form. */
export async function configure(page, o) {
  if (o.model) await page.selectOption('#model', o.model);
  if (o.dataset) await page.selectOption('#dataset', o.dataset);
  if (o.quant) await page.selectOption('#quant', o.quant);
  for (const [id, v] of [['train-n', o.trainN], ['test-n', o.testN], ['batch', o.batch], ['epochs', o.epochs], ['lr', o.lr], ['seed', o.seed]]) {
    if (v !== undefined) await page.fill(`#${id}`, String(v));
  }
  if (o.optim) await page.selectOption('#optim', o.optim);
}

/** Click Train and wait for the run to end; returns the app state. */
export async function trainAndWait(page, timeout = 90_000) {
  const runs = (await state(page)).runs;
  await page.click('#train');
  await page.waitForFunction((r) => {
    const s = window.__webqat.state();
    return s.runs > r && s.phase === 'idle';
  }, runs, { timeout, polling: 250 });
  const msg = await page.locator('#message').isVisible() ? await page.textContent('#message-text') : '';
  assert.ok(!/failed/i.test(msg ?? ''), `training reported: ${msg}`);
  return state(page);
}

async function messageOf(page) {
  await page.locator('#message').waitFor({ state: 'visible', timeout: 30_000 });
  return { cls: await page.getAttribute('#message', 'class'), text: await page.textContent('#message-text') };
}

function maxAbsDiff(a, b) {
  assert.equal(a.length, b.length, 'prediction lengths differ');
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

const argmaxRows = (logits, c) => Array.from({ length: logits.length / c }, (_, i) => {
  const row = logits.slice(i * c, (i + 1) * c);
  return row.indexOf(Math.max(...row));
});

export const tests = [
  {
    name: 'the app loads and finds a WebGPU adapter',
    timeoutMs: 45_000,
    async run({ page, baseUrl, log }) {
      const s = await openApp(page, baseUrl);
      assert.ok(s.adapter, 'no adapter name');
      const banner = await page.textContent('#gpu-status');
      log(`banner: ${banner}`);
      if (s.isSoftware) assert.match(banner, /software adapter/);
      else assert.match(banner, /WebGPU adapter/);
      const models = await page.$$eval('#model option', (os) => os.map((o) => o.value));
      assert.ok(models.includes('mlp') && models.includes('lenet5'), `models: ${models}`);
      const datasets = await page.$$eval('#dataset option', (os) => os.map((o) => o.value));
      assert.ok(datasets.includes('mnist'), `datasets: ${datasets}`);
      const quants = await page.$$eval('#quant option', (os) => os.map((o) => o.value));
      assert.ok(quants.includes('fp') && quants.includes('bwn') && quants.includes('twn'), `quantizers: ${quants}`);
      assert.equal(await page.isEnabled('#train'), true);
    },
  },
  {
    name: 'a short MLP run on MNIST raises the test accuracy',
    timeoutMs: 120_000,
    async run({ page, baseUrl, log }) {
      await openApp(page, baseUrl);
      await configure(page, { model: 'mlp', dataset: 'mnist', quant: 'fp', trainN: 960, testN: 500, batch: 32, epochs: 1, lr: 0.002, optim: 'adam', seed: 1 });
      const t0 = Date.now();
      const s = await trainAndWait(page);
      log(`${s.step} steps in ${((Date.now() - t0) / 1000).toFixed(1)} s: test accuracy ${s.initialTestAcc} -> ${s.lastTestAcc}`);
      assert.equal(s.step, 30);
      assert.ok(s.initialTestAcc < 0.3, `untrained accuracy ${s.initialTestAcc}`);
      assert.ok(s.lastTestAcc > 0.6, `test accuracy after training ${s.lastTestAcc}`);
      assert.ok(s.lastTestAcc > s.initialTestAcc + 0.3);
      assert.match(await page.textContent('#progress-text'), /^Done: 30 steps/);
      // the page's own evaluation agrees with the trainer's
      await page.click('#evaluate');
      await page.waitForFunction(() => window.__webqat.state().lastEval !== null, null, { timeout: 30_000 });
      const ev = (await state(page)).lastEval;
      assert.ok(Math.abs(ev.acc - s.lastTestAcc) < 1e-6, `evaluate ${ev.acc} vs trainer ${s.lastTestAcc}`);
      assert.match(await page.textContent('#eval-result'), /Test accuracy \d+\.\d% · loss/);
      // charts got points
      const sps = await page.textContent('#stat-sps');
      assert.ok(Number(sps) > 0, `samples/s ${sps}`);
    },
  },
  {
    name: 'checkpoint save -> reload -> load gives the same predictions (file and browser storage)',
    timeoutMs: 120_000,
    async run({ page, baseUrl, log }) {
      const dir = mkdtempSync(join(tmpdir(), 'webqat-ck-'));
      try {
        await openApp(page, baseUrl);
        await configure(page, { model: 'mlp', dataset: 'mnist', quant: 'twn', trainN: 256, testN: 64, batch: 32, epochs: 1, lr: 0.002, seed: 3 });
        await trainAndWait(page);
        const before = await page.evaluate(() => window.__webqat.predict(16));
        const [dl] = await Promise.all([page.waitForEvent('download', { timeout: 30_000 }), page.click('#save')]);
        const file = join(dir, dl.suggestedFilename());
        await dl.saveAs(file);
        log(`saved ${dl.suggestedFilename()} (${readFileSync(file).length} bytes)`);
        assert.match(dl.suggestedFilename(), /\.safetensors$/);
        await page.waitForFunction(() => window.__webqat.state().lastSaved !== null, null, { timeout: 15_000 });

        // a fresh page: load the downloaded file
        await page.reload();
        await openApp(page, baseUrl);
        await configure(page, { trainN: 256, testN: 64 });
        assert.equal((await state(page)).model, null);
        await page.setInputFiles('#load-file', file);
        const m = await messageOf(page);
        assert.match(m.cls, /ok/, `load message: ${m.text}`);
        const s = await state(page);
        assert.equal(s.model, 'mlp');
        assert.equal(s.quant, 'twn');
        const after = await page.evaluate(() => window.__webqat.predict(16));
        const d = maxAbsDiff(after, before);
        log(`max |logit difference| after loading the file: ${d}`);
        assert.ok(d <= 1e-5, `predictions changed by ${d}`);
        assert.deepEqual(argmaxRows(after, 10), argmaxRows(before, 10));
        assert.ok(await page.locator('#quant-table tbody tr').count() >= 1, 'no quantized layer listed');

        // and from IndexedDB
        await page.reload();
        await openApp(page, baseUrl);
        await configure(page, { trainN: 256, testN: 64 });
        assert.equal(await page.isEnabled('#restore'), true);
        await page.click('#restore');
        const m2 = await messageOf(page);
        assert.match(m2.cls, /ok/, `restore message: ${m2.text}`);
        const again = await page.evaluate(() => window.__webqat.predict(16));
        assert.ok(maxAbsDiff(again, before) <= 1e-5);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  },
  {
    name: 'a quantized run shows the per-layer quantization view',
    timeoutMs: 90_000,
    async run({ page, baseUrl, log }) {
      await openApp(page, baseUrl);
      await configure(page, { model: 'mlp', dataset: 'mnist', quant: 'bwn', trainN: 256, testN: 100, batch: 32, epochs: 1, lr: 0.002, seed: 2 });
      await trainAndWait(page);
      const rows = await page.$$eval('#quant-table tbody tr', (trs) => trs.map((tr) => Array.from(tr.cells).map((c) => c.textContent)));
      log(`quant table: ${JSON.stringify(rows)}`);
      assert.ok(rows.length >= 1);
      assert.equal(rows[0][1], 'binary');
      assert.equal(rows[0][2], '1');
      assert.match(await page.textContent('#quant-summary'), /packed/);
      assert.equal(await page.isVisible('#hist-quant'), true);
      // two levels (±α) for binary weights
      assert.equal(await page.getAttribute('#hist-quant', 'data-levels'), '2');
      // draw a digit and classify it
      const r = await page.evaluate(() => window.__webqat.drawAndClassify([[[0.3, 0.2], [0.7, 0.2], [0.45, 0.85]]]));
      assert.ok(r && r.probs.length === 10 && Math.abs(r.probs.reduce((a, b) => a + b, 0) - 1) < 1e-3);
      assert.match(await page.textContent('#prediction'), /%/);
    },
  },
  {
    name: 'a corrupt checkpoint shows an error and the page keeps working',
    timeoutMs: 90_000,
    async run({ page, baseUrl, log }) {
      await openApp(page, baseUrl);
      const garbage = Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 37 + 11) & 255));
      await page.setInputFiles('#load-file', { name: 'corrupt.safetensors', mimeType: 'application/octet-stream', buffer: garbage });
      const m = await messageOf(page);
      log(`message: ${m.text}`);
      assert.match(m.cls, /error/);
      assert.match(m.text, /Cannot load corrupt\.safetensors/);
      // a well-formed safetensors file that is not a webqat checkpoint
      const header = Buffer.from(JSON.stringify({ __metadata__: { format: 'pt' }, w: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }));
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(header.length));
      await page.click('#message-close');
      await page.setInputFiles('#load-file', { name: 'other.safetensors', mimeType: 'application/octet-stream', buffer: Buffer.concat([len, header, Buffer.alloc(4)]) });
      const m2 = await messageOf(page);
      log(`message: ${m2.text}`);
      assert.match(m2.text, /not a webqat checkpoint/);
      const s = await state(page);
      assert.equal(s.phase, 'idle');
      assert.equal(s.model, null);
      // still works: a tiny training run
      await configure(page, { model: 'mlp', dataset: 'mnist', quant: 'fp', trainN: 128, testN: 50, batch: 32, epochs: 1 });
      const after = await trainAndWait(page);
      assert.equal(after.step, 4);
      assert.ok(after.lastTestAcc !== null);
    },
  },
];
