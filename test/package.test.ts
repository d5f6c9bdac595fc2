/**
 * The npm package as a user installs it (scripts/check-package.mjs): npm pack builds dist/, the
 * tarball installs into a scratch project, `import('webqat/infer')` and `import('webqat')` expose
 * their APIs in plain Node, a TypeScript consumer type-checks against the .d.ts, and a packed
 * LeNet-5 runs through the installed package on Dawn, and a plain-JavaScript Vite page using
 * webqat/infer builds (e2e/package.e2e.mjs opens such a page in Chromium). Runs once (under Node; skipped under Deno,
 * where it would only repeat the same Node subprocesses).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';

const isDeno = typeof (globalThis as { Deno?: unknown }).Deno !== 'undefined';

describe('npm package', () => {
  it('packs, installs outside the repo, imports, type-checks and runs a packed model', { skip: isDeno ? 'runs under Node only' : false }, () => {
    const r = spawnSync('node', ['scripts/check-package.mjs'], { encoding: 'utf8', timeout: 600_000 });
    const out = (r.stdout ?? '') + (r.stderr ?? '');
    assert.equal(r.status, 0, out);
    assert.match(out, /ok npm pack: webqat-[\d.]+\.tgz/);
    assert.match(out, /ok webqat\/infer exports: .*loadPacked/);
    assert.match(out, /ok a TypeScript consumer type-checks/);
    assert.match(out, /ok packed LeNet-5 BWN through the installed package .* max logit diff/);
    assert.match(out, /ok vite build of a plain-JavaScript page importing webqat\/infer/);
  });
});
