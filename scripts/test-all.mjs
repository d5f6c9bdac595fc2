#!/usr/bin/env node
// `npm test`: the type check, the unit suite on Dawn (Node + `webgpu`, SwiftShader) and on wgpu
// (Deno, lavapipe), the kernel tests on a default-limits device (Dawn), and the Playwright suite in
// headless Chromium. Prints one closing line.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';

const SWIFTSHADER = process.env.WEBQAT_SWIFTSHADER_ICD ?? '/usr/lib/chromium/vk_swiftshader_icd.json';
const LAVAPIPE = process.env.WEBQAT_LAVAPIPE_ICD ?? '/usr/share/vulkan/icd.d/lvp_icd.x86_64.json';
const only = process.argv.slice(2); // e.g. `npm test -- node deno`
const want = (name) => only.length === 0 || only.includes(name);

const testFiles = readdirSync('test').filter((f) => f.endsWith('.test.ts')).sort().map((f) => `test/${f}`);
// WEBQAT_TUNE=off unless set: the CLI subprocesses the tests start (train, ptq, study004, export)
// would otherwise time kernel candidates on the software adapter (a minute per subprocess on
// SwiftShader); the kernel tests force every variant themselves and test/tune.test.ts sets its own
const env = (extra) => ({ ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp', NO_COLOR: '1', WEBQAT_TUNE: process.env.WEBQAT_TUNE ?? 'off', ...extra });
const stages = [];
if (want('types')) stages.push({ name: 'types', cmd: 'npx', args: ['tsc', '--noEmit', '-p', '.'], env: env({}) });
if (want('node')) {
  stages.push({
    name: 'node (Dawn)',
    cmd: 'npx',
    args: ['tsx', '--test', '--test-reporter=spec', '--test-concurrency=1', ...testFiles],
    env: env({ VK_ICD_FILENAMES: SWIFTSHADER }),
  });
}
if (want('deno')) {
  stages.push({
    name: 'deno (wgpu)',
    cmd: 'npx',
    args: ['deno', 'test', '-A', '--no-check', 'test/'],
    env: env(existsSync(LAVAPIPE) ? { VK_ICD_FILENAMES: LAVAPIPE } : {}),
  });
}
if (want('limits')) {
  // the kernel tests again on a device created with WebGPU's default limits only (128 MiB storage
  // bindings, 16 KiB workgroup storage, 256 invocations, 8 storage buffers): what many laptops and
  // phones give; and one training step of every model there (reliability-limits)
  const kernels = ['conv', 'elementwise', 'matmul', 'norm', 'pool', 'quant-kernels', 'reduce', 'reliability-limits', 'shift', 'softmax', 'views'].map((f) => `test/${f}.test.ts`);
  stages.push({
    name: 'limits (Dawn, default limits)',
    cmd: 'npx',
    args: ['tsx', '--test', '--test-reporter=spec', '--test-concurrency=1', ...kernels],
    env: env({ VK_ICD_FILENAMES: SWIFTSHADER, WEBQAT_LIMITS: 'default' }),
  });
}
if (want('e2e')) stages.push({ name: 'e2e (Chromium)', cmd: 'node', args: ['e2e/run.mjs'], env: env({}) });

let passed = 0;
let failed = 0;
const results = [];
for (const s of stages) {
  const t0 = Date.now();
  console.log(`\n===== ${s.name}: ${s.cmd} ${s.args.join(' ')}`);
  const r = spawnSync(s.cmd, s.args, { env: s.env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 28 });
  const out = ((r.stdout ?? '') + (r.stderr ?? '')).replace(/\x1b\[[0-9;]*m/g, '');
  process.stdout.write(out.split('\n').filter((l) => !/XDG_RUNTIME_DIR|Unknown user config/.test(l)).join('\n'));
  // count tests: node's spec reporter ("ℹ pass N"), deno ("ok | N passed | M failed"), our e2e ("e2e: N passed, M failed")
  let p = 0;
  let f = 0;
  const mNode = out.match(/ℹ pass (\d+)[\s\S]*?ℹ fail (\d+)/);
  // deno counts a describe() as one test with steps: count the steps (and failed steps)
  const mDeno = out.match(/(?:ok|FAILED) \| \d+ passed \((\d+) steps?\) \| \d+ failed(?: \((\d+) steps?\))?/) ??
    out.match(/(?:ok|FAILED) \| (\d+) passed \| (\d+) failed/);
  const mE2e = out.match(/e2e: (\d+) passed, (\d+) failed/);
  const m = mNode ?? mDeno ?? mE2e;
  if (m) {
    p = +m[1];
    f = +(m[2] ?? 0);
  }
  if (r.status !== 0 && f === 0) f = 1; // a stage that crashed counts as a failure
  if (s.name === 'types' && r.status === 0) p = 1;
  passed += p;
  failed += f;
  results.push(`${s.name}: ${r.status === 0 ? 'ok' : 'FAILED'} (${p} passed, ${f} failed, ${((Date.now() - t0) / 1000).toFixed(0)} s)`);
}
console.log('\n===== summary');
for (const l of results) console.log(l);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed > 0 ? 1 : 0);
