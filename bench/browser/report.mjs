// HTML report of a `npm run bench` result (bench/browser/run.mjs): a summary table (medians,
// ratios, statuses), charts (chart.js, loaded from node_modules by a relative path so the report
// stays small) and every sample. Sets `window.__reportReady` once the charts are drawn (the PNG is
// taken then).

const LIB_COLORS = { webqat: '#1f77b4', tfjs: '#ff7f0e', 'jax-js': '#2ca02c' };
export const TITLES = {
  matmul: 'matmul 1024³',
  mlp: 'MLP b128 step',
  lenet5: 'LeNet-5 b64 step',
  resnet20: 'ResNet-20 b32 step',
  sspq20: 'SSPQ20 b32 step',
  load: 'page load → first LeNet-5 step',
};

const INFER_TITLES = { 'infer-lenet5': 'LeNet-5 inference', 'infer-sspq20': 'SSPQ20 W1A4 inference' };

/** Title of a table row: a training benchmark, 'load', or an inference row `${bench} ${variant} b${batch}`. */
export function titleOf(key) {
  const m = /^(infer-[a-z0-9]+) (packed|float) b(\d+)$/.exec(key);
  if (m) return `${INFER_TITLES[m[1]] ?? m[1]} b${m[3]}, ${m[2] === 'packed' ? 'packed (webqat)' : 'float'}`;
  return TITLES[key] ?? key;
}

/** The table rows of a result (older results have no options.keys). */
export const keysOf = (r) => r.options.keys ?? r.options.benches;

const esc = (s) => String(s ?? '').replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);
export const ms = (x) => (Number.isFinite(x) ? (x >= 100 ? x.toFixed(0) : x.toFixed(1)) : '–');
export const median = (xs) => {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

function profileHtml(r) {
  if (!r.profile?.length) return '';
  const parts = r.profile.map((p) => {
    if (p.error) return `<p class="small">profile ${esc(p.bench)}: ${esc(p.error)}</p>`;
    const rows = p.kernels
      .slice(0, 12)
      .map((k) => `<tr><td>${esc(k.key)}</td><td>${k.count}</td><td>${ms(k.totalMs)}</td><td>${ms(k.totalMs / k.count)}</td><td>${ms(k.compileMs)}</td></tr>`)
      .join('');
    return `<h4>${esc(titleOf(p.bench))}: step ${ms(p.stepMs)} ms · ${p.dispatches} dispatches, ${p.submits} submits, ${p.readbacks} readbacks ·
replayed one by one ${ms(p.replayMs)} ms (an empty submit + wait costs ${p.syncMs.toFixed(2)} ms) · ${p.pipelines} pipelines, compiled cold in ${ms(p.compileMs)} ms</h4>
<table><thead><tr><th>kernel (pipeline key)</th><th>dispatches</th><th>replay ms</th><th>ms each</th><th>compile ms</th></tr></thead><tbody>${rows}</tbody></table>`;
  });
  return `<h3>webqat profile (where the time goes)</h3>${parts.join('\n')}`;
}

export function renderReport(r, { chartJs }) {
  const libs = r.options.libs;
  const benches = [...keysOf(r), 'load'];
  const adapter = Object.values(r.adapters).find((a) => a && a.adapter)?.adapter ?? {};
  const adapterText = [adapter.vendor, adapter.architecture, adapter.description || adapter.device].filter(Boolean).join(' / ') || 'unknown';
  const cell = (lib, b) => {
    const t = r.table[lib]?.[b];
    if (lib !== 'webqat' && / packed b\d+$/.test(b)) return '<td class="small">n/a (float only)</td>';
    if (!t) return '<td>–</td>';
    const n = t.samples?.length ?? 0;
    const note = b === 'load' ? '' : t.status !== 'ok' ? ` <span class="st">${esc(t.status)}</span>` : '';
    const title = (t.reasons ?? []).join('\n');
    return `<td title="${esc(title)}">${ms(t.medianMs)}${n ? ` <small>(n=${n})</small>` : ''}${note}</td>`;
  };
  const ratioCell = (lib, b) => {
    const x = r.ratios[lib]?.[b];
    if (x == null) return '<td>–</td>';
    return `<td class="${x >= 1 ? 'good' : 'bad'}">${x.toFixed(2)}×</td>`;
  };
  const others = libs.filter((l) => l !== 'webqat');
  const summary = `
<table>
<thead><tr><th>benchmark (median ms)</th>${libs.map((l) => `<th>${esc(l)}</th>`).join('')}${others.map((l) => `<th>${esc(l)} / webqat</th>`).join('')}${r.deno?.results ? '<th>webqat in Deno</th>' : ''}</tr></thead>
<tbody>
${benches
  .map((b) => {
    const d = r.deno?.results?.find((x) => x.bench === b);
    return `<tr><th>${esc(titleOf(b))}</th>${libs.map((l) => cell(l, b)).join('')}${others.map((l) => ratioCell(l, b)).join('')}${r.deno?.results ? `<td>${d ? ms(median(d.samples)) + (d.status !== 'ok' ? ` <span class="st">${esc(d.status)}</span>` : '') : '–'}</td>` : ''}</tr>`;
  })
  .join('\n')}
</tbody></table>
<p class="small">Ratio = the other library's median time / webqat's (above 1: webqat is faster); for a packed inference row, the other library's float time / webqat's packed time. Hover a cell for skip/cap reasons.</p>${r.method?.inference ? `<p class="small">Inference: ${esc(r.method.inference)}.</p>` : ''}`;

  const reasons = [];
  for (const l of libs) {
    for (const b of keysOf(r)) {
      const t = r.table[l]?.[b];
      if (t?.reasons?.length) reasons.push(`<li><b>${esc(l)} ${esc(b)}</b>: ${t.reasons.map(esc).join('; ')}</li>`);
      if (t?.notes) reasons.push(`<li><b>${esc(l)} ${esc(b)}</b> (note): ${esc(t.notes)}</li>`);
    }
  }

  const samplesRows = [];
  for (const l of libs) {
    for (const b of keysOf(r)) {
      const t = r.table[l]?.[b];
      if (!t) continue;
      for (const pr of t.perRound) {
        samplesRows.push(`<tr><td>${esc(l)}</td><td>${esc(b)}</td><td>${pr.round}</td><td>${esc(pr.status)}</td><td>${ms(pr.prepareMs)}</td><td>${ms(pr.firstMs)}</td><td>${pr.samples.map(ms).join(', ')}</td><td>${pr.lastValue ?? pr.firstValue ?? ''}</td></tr>`);
      }
    }
    for (const m of r.table[l]?.load?.milestones ?? []) {
      samplesRows.push(`<tr><td>${esc(l)}</td><td>load</td><td></td><td>ok</td><td colspan="3">script ${ms(m.scriptStartMs)}, init ${ms(m.initDoneMs)}, model ${ms(m.modelReadyMs)}, first step ${ms(m.firstStepMs)} ms after navigation</td><td>${m.loss}</td></tr>`);
    }
  }

  const chartData = {
    libs,
    colors: libs.map((l) => LIB_COLORS[l] ?? '#888'),
    benches: benches.map((b) => titleOf(b)),
    medians: libs.map((l) => benches.map((b) => (Number.isFinite(r.table[l]?.[b]?.medianMs) ? r.table[l][b].medianMs : null))),
    loads: libs.map((l) => {
      const ms = r.table[l]?.load?.milestones ?? [];
      const m = (k) => median(ms.map((x) => x[k]));
      const s = m('scriptStartMs');
      const i = m('initDoneMs');
      const md = m('modelReadyMs');
      const f = m('firstStepMs');
      return [s, i - s, md - i, f - md];
    }),
  };

  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>webqat benchmark report</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 20px; color: #222; max-width: 1160px; }
table { border-collapse: collapse; margin: 8px 0; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.good { background: #e3f4e3; } .bad { background: #fbe3e3; } .st { color: #a60; font-size: 11px; }
.small, small { font-size: 12px; color: #555; }
.charts { display: grid; grid-template-columns: 1fr 1fr; gap: 16px; }
.box { border: 1px solid #ddd; padding: 8px; height: 330px; position: relative; }
details table { font-size: 12px; }
</style></head><body>
<h1>webqat vs TensorFlow.js vs jax-js (WebGPU, same browser)</h1>
<p class="small">${esc(r.date)} · commit ${esc(r.commit.slice(0, 10))} · Chromium ${esc(r.browser.version)} · adapter: ${esc(adapterText)} ·
${r.machine.cpus} CPU(s), load average ${r.machine.loadavgStart.map((x) => x.toFixed(1)).join('/')} at start ·
${r.options.rounds} round(s), interleaved, fresh browser per library per round · tfjs ${esc(r.versions.tfjs)}, jax-js ${esc(r.versions['jax-js'])} · wall ${r.wallS.toFixed(0)} s</p>
${summary}
<div class="charts">
<div class="box"><canvas id="med"></canvas></div>
<div class="box"><canvas id="load"></canvas></div>
</div>
<h3>Notes, caps and skips</h3>
<ul class="small">${reasons.join('\n') || '<li>none</li>'}</ul>
<p class="small">Clock: ${libs.map((l) => `<b>${esc(l)}</b>: ${esc(r.method.clock[l] ?? '')}`).join('; ')}.</p>
${profileHtml(r)}
<details><summary>every sample (ms)</summary>
<table><thead><tr><th>library</th><th>bench</th><th>round</th><th>status</th><th>prepare</th><th>first step</th><th>timed steps</th><th>loss / check value</th></tr></thead>
<tbody>${samplesRows.join('\n')}</tbody></table></details>
<script src="${esc(chartJs)}"></script>
<script>
const D = ${JSON.stringify(chartData)};
Chart.defaults.animation = false;
Chart.defaults.font.size = 12;
new Chart(document.getElementById('med'), {
  type: 'bar',
  data: { labels: D.benches, datasets: D.libs.map((l, i) => ({ label: l, data: D.medians[i], backgroundColor: D.colors[i] })) },
  options: { maintainAspectRatio: false, plugins: { title: { display: true, text: 'median ms (log scale; lower is better)' } },
    scales: { y: { type: 'logarithmic', title: { display: true, text: 'ms' } } } },
});
new Chart(document.getElementById('load'), {
  type: 'bar',
  data: { labels: D.libs, datasets: ['bundle fetched + evaluated', 'device / backend init', 'model + data on device', 'first step (compile + run + readback)'].map((name, k) => ({
    label: name, data: D.loads.map((x) => x[k]), backgroundColor: ['#9ecae1', '#fdae6b', '#a1d99b', '#d62728'][k] })) },
  options: { maintainAspectRatio: false, indexAxis: 'y', plugins: { title: { display: true, text: 'page load → first LeNet-5 step (median ms since navigation)' } },
    scales: { x: { stacked: true, title: { display: true, text: 'ms' } }, y: { stacked: true } } },
});
window.__reportReady = true;
</script>
</body></html>
`;
}
