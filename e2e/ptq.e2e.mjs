// Post-training quantization in the web app (the "Post-training quantize (MXQN)" card): a few
// training steps of LeNet-5 on the served MNIST, then PTQ W8A8 of the trained model in the page.
// The table has one row per conv/linear layer, the float copy scores what the app's own test
// evaluation scored, the quantized accuracy is within a few points of it, the trained model is left
// as it was, and a bad calibration count is named in the message box.
import assert from 'node:assert/strict';
import { configure, openApp, trainAndWait } from './app.e2e.mjs';

const LENET_LAYERS = ['features.0', 'features.3', 'classifier.1', 'classifier.3', 'classifier.5'];

async function quantize(page, o) {
  await page.selectOption('#ptq-bits', o.bits);
  await page.selectOption('#ptq-method', o.method);
  await page.fill('#ptq-calib', String(o.calib));
  const before = await page.evaluate(() => window.__webqat.ptq());
  await page.click('#ptq-run');
  await page.waitForFunction((b) => {
    const s = window.__webqat.state();
    const p = window.__webqat.ptq();
    return s.phase === 'idle' && (p !== null && JSON.stringify(p) !== b || !document.getElementById('message').hidden);
  }, JSON.stringify(before), { timeout: 120_000, polling: 250 });
}

export const tests = [
  {
    name: 'LeNet-5: a few training steps, then PTQ W8A8 in the page: one table row per layer, quantized accuracy near float',
    timeoutMs: 300_000,
    async run({ page, baseUrl, log }) {
      await openApp(page, baseUrl);
      const methods = await page.$$eval('#ptq-method option', (os) => os.map((o) => o.value));
      assert.deepEqual(methods.slice(0, 3), ['mxqn', 'fixed', 'log'], 'the methods come from the PTQ quantizer registry');
      assert.equal(await page.isEnabled('#ptq-run'), false, 'nothing to quantize before a model exists');
      await configure(page, { model: 'lenet5', dataset: 'mnist', quant: 'fp', trainN: 320, testN: 200, batch: 32, epochs: 1, lr: 0.002, optim: 'adam', seed: 1 });
      const t0 = Date.now();
      const trained = await trainAndWait(page, 200_000);
      log(`trained ${trained.step} steps in ${((Date.now() - t0) / 1000).toFixed(1)} s: test accuracy ${trained.lastTestAcc}`);
      assert.equal(trained.step, 10);
      assert.ok(trained.lastTestAcc > 0.2, `10 Adam steps should beat chance: ${trained.lastTestAcc}`);
      const predsBefore = await page.evaluate(() => window.__webqat.predict(8));

      const t1 = Date.now();
      await quantize(page, { bits: 'w8a8', method: 'mxqn', calib: 2 });
      const msg = (await page.locator('#message').isVisible()) ? await page.textContent('#message-text') : '';
      assert.equal(msg, '', `PTQ reported: ${msg}`);
      const r = await page.evaluate(() => window.__webqat.ptq());
      log(`PTQ w8a8 mxqn in ${((Date.now() - t1) / 1000).toFixed(1)} s: float ${r.floatAcc}, quantized ${r.quantAcc}, network SQNR ${r.networkSqnrDb.toFixed(1)} dB`);
      log(`summary: ${await page.textContent('#ptq-summary')}`);
      assert.deepEqual(r.rows.map((x) => x.layer), LENET_LAYERS);
      const domRows = await page.$$eval('#ptq-table tbody tr', (trs) => trs.map((tr) => Array.from(tr.cells, (c) => c.textContent)));
      assert.equal(domRows.length, LENET_LAYERS.length, 'one table row per conv/linear layer');
      const head = await page.$$eval('#ptq-table thead th', (ths) => ths.map((t) => t.textContent));
      assert.deepEqual(head.slice(0, 7), ['layer', 'W bits', 'f', 'W dB', 'A bits', 'activation quantizer', 'A dB']);
      assert.ok(head.includes('fixed dB') && head.includes('log√2 dB'), `candidate columns: ${head}`);
      for (const [i, row] of r.rows.entries()) {
        log(`  ${domRows[i].join(' | ')}`);
        assert.equal(domRows[i][0], row.layer);
        assert.equal(row.weightBits, 8);
        assert.equal(row.actBits, 8);
        assert.ok(Number.isInteger(row.weightFrac), `${row.layer}: fraction length ${row.weightFrac}`);
        assert.match(row.act, /^(fixed8u?|log\S+ 8u?) /, row.layer);
        assert.equal(domRows[i][5], row.act);
        assert.ok(row.weightDb > 25 && row.actDb > 15, `${row.layer}: W ${row.weightDb} dB, A ${row.actDb} dB`);
        assert.ok(Object.values(row.candidates).every((v) => v === null || Number.isFinite(v)), JSON.stringify(row.candidates));
        assert.ok(row.candidates.fixed >= row.candidates['log2'], `${row.layer}: at 8 bits fixed point beats log2`);
      }
      assert.equal(r.testSamples, 200);
      assert.ok(Math.abs(r.floatAcc - trained.lastTestAcc) < 0.011, `the float copy scores ${r.floatAcc}, the app's evaluation ${trained.lastTestAcc}`);
      assert.ok(r.quantAcc >= 0 && r.quantAcc <= 1 && Math.abs(r.quantAcc - r.floatAcc) <= 0.05, `W8A8 ${r.quantAcc} vs float ${r.floatAcc}`);
      assert.match(await page.textContent('#ptq-summary'), /W8A8 · mxqn · 2 calibration batches of 100: test accuracy float [\d.]+% → quantized [\d.]+%/);

      // the trained model is untouched: the same logits as before
      const predsAfter = await page.evaluate(() => window.__webqat.predict(8));
      assert.equal(predsAfter.length, predsBefore.length);
      const worst = Math.max(...predsAfter.map((v, i) => Math.abs(v - predsBefore[i])));
      assert.ok(worst < 1e-4, `PTQ changed the trained model: logits moved by ${worst}`);

      // bad input: named, and the last result stays
      await quantize(page, { bits: 'w4a4', method: 'fixed', calib: 9 });
      assert.match(await page.textContent('#message-text'), /calibration batches must be an integer in 1\.\.3 \(batches of 100 from the 320 training samples\), got '9'/);
      assert.equal((await page.evaluate(() => window.__webqat.ptq())).bits, 'w8a8');
    },
  },
];
