/**
 * `deno run -A bench/shift.ts [--repeats R] [--json FILE]`
 *
 * Fused shift + 1×1 convolution (`shiftConv1x1`) against the unfused pair
 * (`conv2d(activeShift(x, s), w)`) on SSPQ-like block shapes: forward alone, and forward + backward
 * (gradients to x, the offsets and w). Each timed repeat ends with `gpu.sync()`; figures are medians
 * in ms per step after a warm-up.
 */
import process from 'node:process';
import * as wq from '../src/index.ts';
import { runtimeInfo, timeGpu, writeJson } from './util.ts';

const args = process.argv.slice(2);
const opt = (name: string, dflt: string) => {
  const k = args.indexOf(name);
  return k >= 0 && k + 1 < args.length ? args[k + 1] : dflt;
};
const repeats = Number(opt('--repeats', '5'));
const jsonPath = args.includes('--json') ? opt('--json', '') : '';

const gpu = await wq.init();
console.log(`# adapter: ${gpu.adapter.name} (${gpu.adapter.runtime})`);

function rand(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = s / 2147483648 - 1;
  }
  return a;
}

/** [N, C, H, W], O, stride: SSPQ20 blocks (batch 32) at the three group widths, plus a wider one. */
const shapes: [number[], number, number][] = gpu.isSoftware
  ? [[[8, 16, 32, 32], 16, 1], [[8, 32, 16, 16], 32, 1], [[8, 64, 8, 8], 64, 1], [[8, 32, 32, 32], 32, 2]]
  : [[[32, 16, 32, 32], 16, 1], [[32, 32, 16, 16], 32, 1], [[32, 64, 8, 8], 64, 1], [[32, 64, 32, 32], 64, 2], [[128, 128, 16, 16], 128, 1]];

const results = [];
for (const [shape, O, stride] of shapes) {
  const C = shape[1];
  const x = wq.tensor(rand(shape.reduce((a, b) => a * b, 1), 1), shape, 'f32', true);
  const s = wq.tensor(rand(2 * C, 2), [2, C], 'f32', true);
  const w = wq.tensor(rand(O * C, 3), [O, C, 1, 1], 'f32', true);
  const Ho = Math.floor((shape[2] - 1) / stride) + 1;
  const Wo = Math.floor((shape[3] - 1) / stride) + 1;
  const up = wq.tensor(rand(shape[0] * O * Ho * Wo, 4), [shape[0], O, Ho, Wo]);
  const fwd = (fused: boolean) => fused ? wq.shiftConv1x1(x, s, w, { stride }) : wq.conv2d(wq.activeShift(x, s, { stride }), w, null);
  const row: Record<string, unknown> = { shape, O, stride };
  for (const fused of [false, true]) {
    const name = fused ? 'fused' : 'unfused';
    const f = await timeGpu(gpu, () => wq.tidy(() => void wq.noGrad(() => fwd(fused))), { warmup: 2, repeats });
    const fb = await timeGpu(gpu, () => {
      wq.tidy(() => fwd(fused).backward(up));
      for (const t of [x, s, w]) {
        t.grad?.release();
        t.grad = null;
      }
    }, { warmup: 2, repeats });
    row[`${name}FwdMs`] = +f.ms.toFixed(3);
    row[`${name}FwdBwdMs`] = +fb.ms.toFixed(3);
  }
  results.push(row);
  console.log(
    `N,C,H,W=${shape.join(',')} O=${O} s=${stride}: forward unfused ${row.unfusedFwdMs} ms, fused ${row.fusedFwdMs} ms` +
      ` | fwd+bwd unfused ${row.unfusedFwdBwdMs} ms, fused ${row.fusedFwdBwdMs} ms`,
  );
  for (const t of [x, s, w, up]) t.release();
}
if (jsonPath) await writeJson(jsonPath, { runtime: runtimeInfo(), adapter: gpu.adapter.name, results });
await wq.shutdown();
