// Kernel smoke suite in Chromium: examples/browser/smoke.html runs webqat ops on WebGPU against
// plain-TypeScript references and publishes window.__results.
import assert from 'node:assert/strict';

export const tests = [
  {
    name: 'kernels match their references in Chromium (WebGPU adapter found)',
    timeoutMs: 150_000,
    async run({ page, baseUrl, log }) {
      await page.goto(`${baseUrl}/smoke.html`, { waitUntil: 'domcontentloaded' });
      await page.waitForFunction(() => window.__results?.done === true, null, { timeout: 140_000, polling: 250 });
      const r = await page.evaluate(() => window.__results);
      assert.equal(r.error, null, `the page reported an error: ${r.error}`);
      assert.ok(r.adapter, 'no WebGPU adapter');
      log(`adapter ${r.adapter} (${r.runtime}${r.isSoftware ? ', software' : ''})`);
      for (const c of r.checks) log(`${c.status.padEnd(4)} ${c.name} (${c.ms.toFixed(0)} ms) ${c.status === 'pass' ? '' : c.detail}`);
      const failedChecks = r.checks.filter((c) => c.status === 'fail');
      assert.deepEqual(failedChecks.map((c) => `${c.name}: ${c.detail}`), []);
      const passedChecks = r.checks.filter((c) => c.status === 'pass');
      assert.ok(passedChecks.length >= 3, `only ${passedChecks.length} checks ran`);
      // the page itself shows the summary
      const summary = await page.textContent('#summary');
      assert.match(summary ?? '', /\d+ passed, 0 failed/);
    },
  },
];
