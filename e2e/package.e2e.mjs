// The npm package in a user's browser app: scripts/check-package.mjs packs webqat, installs the
// tarball into a scratch project outside the repository and builds a plain-JavaScript Vite page that
// imports `webqat/infer`; this test serves that build, opens it in Chromium, and checks that it loads
// the packed model file and classifies an MNIST digit exactly as Node (Dawn) did.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { extname, join, normalize } from 'node:path';

const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.json': 'application/json' };

function serve(dir) {
  const server = createServer((req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url, 'http://x').pathname)).replace(/^(\.\.[/\\])+/, '');
    try {
      const body = readFileSync(join(dir, path === '/' ? 'index.html' : path));
      res.writeHead(200, { 'content-type': TYPES[extname(path)] ?? (path === '/' ? 'text/html' : 'application/octet-stream') });
      res.end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

export const tests = [
  {
    name: 'npm pack -> a plain-JavaScript Vite app outside the repo loads a packed model and classifies a digit',
    timeoutMs: 420_000,
    async run({ page, log }) {
      const r = spawnSync('node', ['scripts/check-package.mjs', '--keep'], { encoding: 'utf8', timeout: 360_000 });
      const out = (r.stdout ?? '') + (r.stderr ?? '');
      const kept = /kept (\S+)/.exec(out)?.[1];
      try {
        assert.equal(r.status, 0, out);
        for (const line of out.split('\n').filter((l) => l.startsWith('ok '))) log(line.slice(0, 160));
        assert.ok(kept, out);
        const dist = join(kept, 'app', 'dist');
        const expected = JSON.parse(readFileSync(join(dist, 'expected.json'), 'utf8'));
        const server = await serve(dist);
        try {
          await page.goto(`http://127.0.0.1:${server.address().port}/`, { waitUntil: 'domcontentloaded' });
          await page.waitForFunction(() => window.__result !== undefined, null, { timeout: 120_000, polling: 250 });
          const res = await page.evaluate(() => window.__result);
          assert.equal(res.error, undefined, res.error);
          log(`Chromium: class ${res.cls}, ${res.fileBytes}-byte file, ${res.gpuBytes} bytes of weights on the GPU`);
          assert.equal(res.cls, expected.cls);
          assert.equal(res.probs.length, 10);
          for (let i = 0; i < 10; i++) assert.ok(Math.abs(res.probs[i] - expected.probs[i]) < 1e-4, `probability ${i}: ${res.probs[i]} in Chromium, ${expected.probs[i]} in Node`);
          assert.match(await page.textContent('#out'), /^class \d$/);
        } finally {
          server.close();
        }
      } finally {
        if (kept) rmSync(kept, { recursive: true, force: true });
      }
    },
  },
];
