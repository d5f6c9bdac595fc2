#!/usr/bin/env node
// Markdown tables of a `npm run bench` result, for docs/BENCH.md:
//   node bench/browser/figures.mjs docs/bench/bench.json
import { readFileSync } from 'node:fs';
import { keysOf, median, ms, titleOf } from './report.mjs';

const file = process.argv[2];
if (!file) {
  console.error('webqat: bench/browser/figures.mjs: expected a result JSON file, got nothing');
  process.exit(2);
}
const r = JSON.parse(readFileSync(file, 'utf8'));
const libs = r.options.libs;
const benches = [...keysOf(r), 'load'];
const others = libs.filter((l) => l !== 'webqat');
const head = ['benchmark (median ms, n samples)', ...libs, ...others.map((l) => `${l} / webqat`)];
if (r.deno?.results) head.push('webqat in Deno (lavapipe)');
console.log(`| ${head.join(' | ')} |`);
console.log(`| ${head.map(() => '---').join(' | ')} |`);
for (const b of benches) {
  const cells = libs.map((l) => {
    const t = r.table[l]?.[b];
    if (l !== 'webqat' && / packed b\d+$/.test(b)) return 'n/a';
    if (!t || !t.samples?.length) return `– (${t?.status ?? 'missing'})`;
    const st = b !== 'load' && t.status !== 'ok' ? ` ${t.status}` : '';
    return `${ms(t.medianMs)} (n=${t.samples.length}${st})`;
  });
  const rat = others.map((l) => (r.ratios[l]?.[b] == null ? '–' : `${r.ratios[l][b].toFixed(2)}×`));
  const row = [titleOf(b), ...cells, ...rat];
  if (r.deno?.results) {
    const d = r.deno.results.find((x) => x.bench === b);
    row.push(d?.samples?.length ? `${ms(median(d.samples))} (n=${d.samples.length}${d.status !== 'ok' ? ' ' + d.status : ''})` : d ? `– (${d.status})` : '–');
  }
  console.log(`| ${row.join(' | ')} |`);
}
console.log('');
console.log('First step of each benchmark (compilation included), ms, per round:');
console.log('');
for (const l of libs) {
  const parts = keysOf(r).map((b) => `${b} ${(r.table[l]?.[b]?.firstStepMs ?? []).map(ms).join('/') || '–'}`);
  console.log(`- ${l}: ${parts.join(', ')}`);
}
console.log('');
console.log('Skips, caps and notes:');
console.log('');
for (const l of libs) {
  for (const b of keysOf(r)) {
    const t = r.table[l]?.[b];
    if (t?.reasons?.length) console.log(`- ${l} ${b}: ${t.reasons.join('; ')}`);
  }
}
