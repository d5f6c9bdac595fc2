/**
 * The webqat web app: pick a model, a dataset and a quantizer; train on WebGPU with live charts;
 * pause/resume; evaluate; save/load safetensors checkpoints (download + IndexedDB, file input);
 * inspect quantized layers; draw a digit and classify it.
 *
 * Everything runs through the library's public API (src/index.ts; quantization from src/quant,
 * which src/index.ts does not re-export yet). `window.__webqat` exposes a little state and a
 * `predict` hook for the Playwright tests (e2e/app.e2e.mjs).
 */
import {
  BarController,
  BarElement,
  CategoryScale,
  Chart,
  Legend,
  LinearScale,
  LineController,
  LineElement,
  PointElement,
  Tooltip,
} from 'chart.js';
import * as wq from '../../src/index.ts';
import {
  accuracyCount,
  Adam,
  type BaseHyper,
  beginScope,
  type Checkpoint,
  createModel,
  describeModel,
  DeviceLostError,
  encodeCheckpoint,
  endScope,
  GpuLoader,
  listModels,
  type Module,
  noGrad,
  parseCheckpoint,
  type ProgressEvent,
  restoreCheckpoint,
  SGD,
  softmax,
  softmaxCrossEntropy,
  type Tensor,
  tensor,
  Trainer,
  TrainingDivergedError,
  type TrainerOptimizer,
  type ParamsArg,
} from '../../src/index.ts';
import {
  parseBits,
  parseQuantSpec,
  ptqAccuracy,
  ptqActColumns,
  ptqMethods,
  PtqModel,
  type PtqResult,
  qat,
  QuantHooks,
  quantExamples,
  quantizeModel,
  quantLayers,
  type QuantSpec,
  SizeReporter,
} from '../../src/quant/index.ts';
import { loadLocal, loadServed, servedDatasets, type Split } from './data.ts';
import { DrawPad, paintGray } from './draw.ts';
import { AUTOSAVE_KEY, loadAutosave, loadStoredCheckpoint, storeCheckpoint } from './store.ts';

Chart.register(LineController, LineElement, PointElement, LinearScale, CategoryScale, BarController, BarElement, Legend, Tooltip);

// ------------------------------------------------------------------ small DOM helpers

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`missing #${id}`);
  return el as T;
};
const num = (id: string): number => Number($<HTMLInputElement>(id).value);
const pct = (x: number | undefined | null) => (x === undefined || x === null || Number.isNaN(x) ? '–' : `${(100 * x).toFixed(1)}%`);
const errText = (e: unknown) => (e instanceof Error ? e.message : String(e));

function showMessage(text: string, kind: 'error' | 'info' | 'ok' = 'error'): void {
  const box = $('message');
  box.className = `banner ${kind}`;
  $('message-text').textContent = text;
  box.hidden = false;
}
function hideMessage(): void {
  $('message').hidden = true;
}
$('message-close').addEventListener('click', hideMessage);

// ------------------------------------------------------------------ state

type Phase = 'starting' | 'no-webgpu' | 'idle' | 'loading' | 'training' | 'paused' | 'busy';

interface ModelConfig {
  inChannels: number;
  numClasses: number;
  inputSize: number;
  seed: number;
  /** quantizer spec name ('fp' when none) */
  quant: string;
  [k: string]: unknown;
}

/** What a run was started with (the form), stored in its checkpoints as metadata 'setup' so that
 * "Continue from the autosave" can rebuild the same run. */
interface AppSetup {
  app: 'webqat browser';
  model: string;
  dataset: string;
  trainN: number;
  testN: number;
  batch: number;
  epochs: number;
  lr: number;
  optim: string;
  seed: number;
  quant: string;
}

interface Session {
  model: Module;
  /** the form a training run was started with (none for a loaded checkpoint) */
  setup?: AppSetup;
  modelName: string;
  config: ModelConfig;
  spec: QuantSpec | null;
  /** where the weights came from, for the info line */
  origin: string;
  datasetName?: string;
  optimizer: TrainerOptimizer | null;
  rawOptimizer: { release(): void } | null;
  trainer: Trainer | null;
  hooks: QuantHooks | null;
  reporter: SizeReporter;
  mean: number[];
  std: number[];
}

const state = {
  phase: 'starting' as Phase,
  gpu: null as wq.Gpu | null,
  served: {} as Record<string, Record<string, string>>,
  data: null as (Split & { key: string }) | null,
  session: null as Session | null,
  pauseRequested: false,
  stopRequested: false,
  resume: null as (() => void) | null,
  step: 0,
  totalSteps: 0,
  initialTestAcc: null as number | null,
  lastTestAcc: null as number | null,
  lastEval: null as { acc: number; loss: number } | null,
  lastSaved: null as string | null,
  /** the last autosave of the current run (IndexedDB) */
  autosaved: null as { step: number; name: string } | null,
  /** the autosave kept in this browser that "Continue from the autosave" would resume */
  resumable: null as { step: number; name: string } | null,
  /** the step the current run continued from (null: it started from scratch) */
  resumedFrom: null as number | null,
  /** the GPU device was lost: a new one is requested before training again */
  deviceLost: false,
  /** the training losses of the current run as read back ({ step, loss }) */
  losses: [] as { step: number; loss: number }[],
  runs: 0,
};

// ------------------------------------------------------------------ charts

function lineChart(canvas: HTMLCanvasElement, title: string, series: { label: string; color: string; dashed?: boolean }[], yMax?: number): Chart<'line', { x: number; y: number }[]> {
  return new Chart(canvas, {
    type: 'line',
    data: {
      datasets: series.map((s) => ({
        label: s.label,
        data: [] as { x: number; y: number }[],
        borderColor: s.color,
        backgroundColor: s.color,
        borderWidth: 2,
        pointRadius: s.dashed ? 3 : 0,
        borderDash: s.dashed ? [5, 4] : [],
        tension: 0.2,
      })),
    },
    options: {
      animation: false,
      maintainAspectRatio: false,
      parsing: false,
      normalized: true,
      layout: { padding: { right: 10 } },
      scales: {
        x: { type: 'linear', title: { display: true, text: 'step' }, min: 0 },
        y: { type: 'linear', title: { display: true, text: title }, min: 0, max: yMax },
      },
      plugins: { legend: { position: 'bottom', labels: { boxWidth: 12 } } },
    },
  });
}

const lossChart = lineChart($<HTMLCanvasElement>('loss-chart'), 'loss', [
  { label: 'train loss', color: '#0969da' },
  { label: 'test loss', color: '#cf222e', dashed: true },
]);
const accChart = lineChart($<HTMLCanvasElement>('acc-chart'), 'accuracy', [
  { label: 'train acc', color: '#0969da' },
  { label: 'test acc', color: '#1f883d', dashed: true },
], 1);

function resetCharts(): void {
  for (const c of [lossChart, accChart]) {
    for (const d of c.data.datasets) d.data = [];
    c.update('none');
  }
}

function addPoint(chart: Chart<'line', { x: number; y: number }[]>, series: number, x: number, y: number): void {
  chart.data.datasets[series].data.push({ x, y });
  chart.update('none');
}

function barChart(canvas: HTMLCanvasElement, label: string, color: string): Chart<'bar', number[], string> {
  return new Chart(canvas, {
    type: 'bar',
    data: { labels: [], datasets: [{ label, data: [], backgroundColor: color, barPercentage: 1, categoryPercentage: 1 }] },
    options: {
      animation: false,
      maintainAspectRatio: false,
      scales: { x: { ticks: { maxTicksLimit: 7, maxRotation: 0 } }, y: { beginAtZero: true, title: { display: true, text: 'count' } } },
      plugins: { legend: { position: 'bottom', labels: { boxWidth: 12 } } },
    },
  });
}
const histLatent = barChart($<HTMLCanvasElement>('hist-latent'), 'latent float weights', '#8c959f');
/** SQ angles β per layer (degrees) over the steps: 45° = symmetric ternary, towards 90° = binary. */
const sqChart = new Chart($<HTMLCanvasElement>('sq-chart'), {
  type: 'line',
  data: { datasets: [] as { label: string; data: { x: number; y: number }[]; borderColor: string; backgroundColor: string; borderWidth: number; pointRadius: number }[] },
  options: {
    animation: false,
    maintainAspectRatio: false,
    parsing: false,
    scales: {
      x: { type: 'linear', title: { display: true, text: 'step' }, min: 0 },
      y: { type: 'linear', title: { display: true, text: 'SQ angle β (°)' }, suggestedMin: 45, suggestedMax: 90 },
    },
    plugins: { legend: { position: 'bottom', labels: { boxWidth: 12 } } },
  },
});
const SQ_COLORS = ['#8250df', '#0969da', '#1f883d', '#cf222e', '#bf8700', '#57606a'];
/** the step the SQ angle points belong to (the session's trainer step, or the checkpoint's) */
let sqStep = 0;

function resetSqChart(): void {
  sqChart.data.datasets = [];
  sqChart.update('none');
}

function addSqPoints(layers: { name: string; sq?: { beta: number } }[], step: number): void {
  let changed = false;
  for (const l of layers) {
    if (!l.sq) continue;
    let d = sqChart.data.datasets.find((x) => x.label === l.name);
    if (!d) {
      const c = SQ_COLORS[sqChart.data.datasets.length % SQ_COLORS.length];
      d = { label: l.name, data: [], borderColor: c, backgroundColor: c, borderWidth: 2, pointRadius: 2 };
      sqChart.data.datasets.push(d);
    }
    const y = (l.sq.beta * 180) / Math.PI;
    const last = d.data[d.data.length - 1];
    if (last && last.x === step) last.y = y;
    else d.data.push({ x: step, y });
    changed = true;
  }
  if (changed) sqChart.update('none');
}
const histQuant = barChart($<HTMLCanvasElement>('hist-quant'), 'quantized weights (levels)', '#8250df');

// ------------------------------------------------------------------ controls

const buttons = {
  train: $<HTMLButtonElement>('train'),
  pause: $<HTMLButtonElement>('pause'),
  stop: $<HTMLButtonElement>('stop'),
  cont: $<HTMLButtonElement>('continue'),
  evaluate: $<HTMLButtonElement>('evaluate'),
  save: $<HTMLButtonElement>('save'),
  exportPacked: $<HTMLButtonElement>('export-packed'),
  restore: $<HTMLButtonElement>('restore'),
  classify: $<HTMLButtonElement>('classify'),
  ptq: $<HTMLButtonElement>('ptq-run'),
};
const loadLabel = document.querySelector<HTMLLabelElement>('label[for="load-file"]')!;
const setupInputs = () => Array.from($('setup-card').querySelectorAll<HTMLInputElement | HTMLSelectElement>('input, select'));

function setPhase(p: Phase): void {
  state.phase = p;
  const gpuOk = state.gpu !== null;
  const running = p === 'training';
  const between = p === 'idle' || p === 'paused';
  const hasModel = state.session !== null;
  buttons.train.disabled = !gpuOk || p !== 'idle';
  buttons.pause.disabled = !(p === 'training' || p === 'paused');
  buttons.pause.textContent = p === 'paused' ? 'Resume' : 'Pause';
  buttons.stop.disabled = !(p === 'training' || p === 'paused');
  buttons.evaluate.disabled = !hasModel || !between;
  buttons.save.disabled = !hasModel || !between;
  buttons.exportPacked.disabled = !hasModel || !between;
  buttons.ptq.disabled = !hasModel || !between;
  buttons.classify.disabled = !hasModel || !between || !drawable();
  buttons.restore.disabled = !gpuOk || p !== 'idle' || !state.lastSaved;
  // after a device loss too: continuing requests a new device
  buttons.cont.disabled = !state.resumable || !(p === 'idle' || (p === 'no-webgpu' && state.deviceLost));
  loadLabel.classList.toggle('disabled', !gpuOk || p !== 'idle');
  for (const el of setupInputs()) el.disabled = running || p === 'paused' || p === 'loading' || p === 'busy';
  document.body.dataset.phase = p;
}

/** Run an action with the controls locked; errors go to the message box, never break the page. */
async function guarded(phase: Phase, f: () => Promise<void>): Promise<void> {
  const before = state.phase;
  setPhase(phase);
  try {
    await f();
  } catch (e) {
    console.error(e);
    showMessage(errText(e));
  } finally {
    setPhase(before === 'paused' ? 'paused' : 'idle');
  }
}

// ------------------------------------------------------------------ setup form

const modelSel = $<HTMLSelectElement>('model');
const datasetSel = $<HTMLSelectElement>('dataset');
const quantSel = $<HTMLSelectElement>('quant');

/** Concrete choices: each quantizer record's examples (src/quant/methods), in registry order. */
function quantChoices(): string[] {
  const out = [...new Set(quantExamples())];
  return out.length ? out : ['fp'];
}

function fillSelect(sel: HTMLSelectElement, items: [string, string][], value?: string): void {
  sel.replaceChildren(...items.map(([v, t]) => new Option(t, v)));
  if (value && items.some(([v]) => v === value)) sel.value = value;
}

const MODEL_HINT: Record<string, string> = { mlp: 'fast everywhere', lenet5: 'small CNN' };

function describeQuant(s: string): string {
  try {
    const spec = parseQuantSpec(s);
    if (spec.weight.method === 'none' && spec.act.method === 'none') return 'float32 weights and activations';
    const w = spec.weight.method === 'none' ? 'float weights' : `${spec.weightPrecision.kind} weights (${spec.weightPrecision.bits} bit)`;
    const a = spec.act.method === 'none' ? '' : `; activations ${spec.act.method} ${spec.actPrecision.bits} bit (in models built for it, e.g. SSPQ)`;
    return `${w} in the hidden layers (first and last layer stay float)${a}`;
  } catch (e) {
    return errText(e);
  }
}

function updateHints(): void {
  try {
    $('model-desc').textContent = describeModel(modelSel.value) + (MODEL_HINT[modelSel.value] ? ` · ${MODEL_HINT[modelSel.value]}` : '');
  } catch {
    $('model-desc').textContent = '';
  }
  $('quant-desc').textContent = describeQuant(quantSel.value);
  $('local-row').hidden = datasetSel.value !== 'local';
}

function initForm(): void {
  fillSelect(modelSel, listModels().map((m) => [m, m]), 'mlp');
  fillSelect(quantSel, quantChoices().map((q) => [q, q]), 'fp');
  const names = Object.keys(state.served);
  fillSelect(datasetSel, [...names.map((n): [string, string] => [n, `${n} (served)`]), ['local', 'local files…']], names.includes('mnist') ? 'mnist' : names[0] ?? 'local');
  for (const el of [modelSel, quantSel, datasetSel]) el.addEventListener('change', updateHints);
  $<HTMLInputElement>('local-files').addEventListener('change', () => {
    state.data = null;
  });
  updateHints();
}

// ------------------------------------------------------------------ data

async function ensureData(): Promise<Split & { key: string }> {
  const name = datasetSel.value;
  const trainN = Math.max(1, Math.floor(num('train-n')));
  const testN = Math.max(1, Math.floor(num('test-n')));
  const files = Array.from($<HTMLInputElement>('local-files').files ?? []);
  const key = `${name}|${trainN}|${testN}|${files.map((f) => `${f.name}:${f.size}`).join(',')}`;
  if (state.data?.key === key) return state.data;
  $('progress-text').textContent = `Loading ${name === 'local' ? 'local files' : name}…`;
  const split = name === 'local' ? await loadLocal(files, trainN, testN) : await loadServed(name, state.served[name], trainN, testN);
  state.data = { ...split, key };
  $('progress-text').textContent = `${split.train.name}: ${split.train.labels.length} train / ${split.test.labels.length} test samples, ${split.train.shape.join('×')}`;
  return state.data;
}

function datasetLabel(): string {
  return datasetSel.value === 'local' ? (state.data?.train.name.split('/')[0] ?? 'local') : datasetSel.value;
}

// ------------------------------------------------------------------ model session

function releaseSession(s: Session | null): void {
  if (!s) return;
  s.trainer?.dispose();
  s.rawOptimizer?.release();
  for (const [, l] of quantLayers(s.model)) l.wq.release();
  s.model.release();
}

function buildModel(name: string, config: ModelConfig): { model: Module; spec: QuantSpec | null } {
  const model = createModel(name, config);
  const spec = config.quant && config.quant !== 'fp' ? parseQuantSpec(config.quant) : null;
  try {
    if (spec) quantizeModel(model, spec);
  } catch (e) {
    model.release();
    throw e;
  }
  return { model, spec };
}

function modelInfo(s: Session): string {
  const q = quantLayers(s.model).length;
  return `${s.modelName} · ${s.model.numParameters().toLocaleString()} parameters · quantizer ${s.config.quant}` +
    `${q ? ` (${q} quantized layer${q > 1 ? 's' : ''})` : ''} · ${s.origin}`;
}

function drawable(): boolean {
  const s = state.session;
  return !!s && s.config.inChannels === 1 && s.config.inputSize === 28;
}

function setSession(s: Session): void {
  const old = state.session;
  state.session = s;
  if (old && old !== s) {
    releaseSession(old);
    packed?.model.dispose();
    packed = null;
  }
  $('model-info').textContent = modelInfo(s);
  $('model-info').classList.remove('muted');
  $('draw-note').textContent = drawable()
    ? 'Draw a digit with the mouse (or a finger), then Classify.'
    : 'Drawing needs a model for 28×28 grayscale digits (MNIST / Fashion-MNIST).';
}

// ------------------------------------------------------------------ training

function onProgress(e: ProgressEvent): void {
  switch (e.type) {
    case 'progress': {
      state.step = e.step;
      state.losses.push({ step: e.step, loss: e.loss });
      const frac = state.totalSteps ? e.step / state.totalSteps : 0;
      $<HTMLProgressElement>('progress').value = frac;
      $('progress-text').textContent = `epoch ${e.epoch + 1} · step ${e.stepInEpoch}/${e.stepsPerEpoch} · ${(100 * frac).toFixed(0)}% · lr ${e.lr.toPrecision(3)}`;
      $('stat-step').textContent = `${e.step}/${state.totalSteps}`;
      $('stat-loss').textContent = e.loss.toFixed(4);
      $('stat-acc').textContent = pct(e.acc);
      $('stat-sps').textContent = e.samplesPerSec.toFixed(0);
      addPoint(lossChart, 0, e.step, e.loss);
      addPoint(accChart, 0, e.step, e.acc);
      break;
    }
    case 'eval':
      recordTest(state.step, e.testAcc, e.testLoss);
      break;
  }
}

function recordTest(step: number, acc: number, loss: number): void {
  state.lastTestAcc = acc;
  $('stat-test').textContent = pct(acc);
  addPoint(lossChart, 1, step, loss);
  addPoint(accChart, 1, step, acc);
}

function waitForResume(): Promise<void> {
  return new Promise((r) => {
    state.resume = r;
  });
}

/** Train a new run from the form, or continue `resumeFrom` (an autosave whose setup the form now holds). */
async function train(resumeFrom?: Checkpoint): Promise<void> {
  hideMessage();
  setPhase('loading');
  let session: Session | null = null;
  try {
    const data = await ensureData();
    const [c, h] = data.train.shape;
    const batch = Math.max(1, Math.floor(num('batch')));
    const epochs = Math.max(1, Math.floor(num('epochs')));
    const seed = Math.floor(num('seed')) >>> 0;
    const lr = num('lr');
    if (!(lr > 0)) throw new Error(`learning rate must be positive, got ${$<HTMLInputElement>('lr').value}`);
    const config: ModelConfig = { inChannels: c, numClasses: data.train.numClasses, inputSize: h, seed, quant: quantSel.value };
    const setup: AppSetup = {
      app: 'webqat browser', model: modelSel.value, dataset: datasetSel.value, trainN: Math.floor(num('train-n')), testN: Math.floor(num('test-n')),
      batch, epochs, lr, optim: $<HTMLSelectElement>('optim').value, seed, quant: quantSel.value,
    };
    const { model, spec } = buildModel(modelSel.value, config);
    const dropLast = data.train.labels.length >= batch;
    const stepsPerEpoch = dropLast ? Math.floor(data.train.labels.length / batch) : 1;
    state.totalSteps = stepsPerEpoch * epochs;
    const makeOptimizer = (groups: ParamsArg<BaseHyper>) => ($<HTMLSelectElement>('optim').value === 'sgd' ? new SGD(groups, { lr, momentum: 0.9 }) : new Adam(groups, { lr }));
    const base = (l: Tensor, y: Tensor) => softmaxCrossEntropy(l, y, 'mean');
    // the library's QAT assembly (role-routed groups: SQ's β at betalr × lr; hooked optimizer and loss)
    const q = spec ? qat(model, spec, { lr, totalSteps: state.totalSteps, optimizer: makeOptimizer, loss: base }) : null;
    const raw = q ? q.rawOptimizer : makeOptimizer(model.namedParameters());
    const hooks = q ? q.hooks : null;
    const optimizer = q ? q.optimizer : raw;
    const trainer = new Trainer({
      model,
      optimizer,
      train: data.train,
      test: data.test,
      batchSize: batch,
      evalBatchSize: 250,
      epochs,
      seed,
      readEvery: 5,
      dropLast,
      loss: q ? q.loss : base,
      onProgress,
      modelName: modelSel.value,
      modelConfig: config,
      datasetName: datasetLabel(),
    });
    session = {
      model,
      setup,
      modelName: modelSel.value,
      config,
      spec,
      origin: `trained on ${data.train.name.split('/')[0]}`,
      datasetName: datasetLabel(),
      optimizer,
      rawOptimizer: raw,
      trainer,
      hooks,
      reporter: new SizeReporter(),
      mean: data.train.mean,
      std: data.train.std,
    };
    setSession(session);
    state.runs++;
    state.step = 0;
    state.losses = [];
    state.resumedFrom = null;
    state.pauseRequested = false;
    state.stopRequested = false;
    if (resumeFrom) {
      // model, optimizer state (momentum / Adam moments, step counts) and position of the autosave
      await trainer.resume(resumeFrom);
      if (hooks) hooks.step = trainer.step;
      state.step = trainer.step;
      state.resumedFrom = trainer.step;
    }
    resetCharts();
    resetSqChart();
    $('eval-result').textContent = '';
    $('stat-test').textContent = '–';
    if (hooks) await hooks.prepare();
    // the untrained model's test accuracy: the first point of the test curve
    $('progress-text').textContent = 'Evaluating the untrained model…';
    const ev0 = await trainer.evaluate();
    if (!resumeFrom) state.initialTestAcc = ev0.acc;
    recordTest(trainer.step, ev0.acc, ev0.loss);
    await refreshQuantView();
    setPhase('training');
    const chunk = hooks ? 10 : 20;
    state.autosaved = resumeFrom ? { step: trainer.step, name: resumeFrom.source } : null;
    let autosavedAt = { step: trainer.step, epoch: trainer.epoch };
    while (trainer.epoch < trainer.epochs && !state.stopRequested) {
      if (state.pauseRequested) {
        setPhase('paused');
        $('progress-text').textContent = `Paused at step ${trainer.step}. Evaluate, save or draw, then Resume.`;
        await refreshQuantView();
        await waitForResume();
        if (state.stopRequested) break;
        setPhase('training');
      }
      let stop = trainer.step + chunk;
      const next = hooks?.stageBoundaries.find((b) => b > trainer.step);
      if (next !== undefined) stop = Math.min(stop, next);
      if (hooks) await hooks.advance(trainer.step);
      await trainer.fit({ maxSteps: stop });
      if (trainer.epoch > autosavedAt.epoch || trainer.step - autosavedAt.step >= autosaveSteps) {
        try {
          await autosave(session);
          autosavedAt = { step: trainer.step, epoch: trainer.epoch };
        } catch (e) {
          if (e instanceof DeviceLostError || e instanceof TrainingDivergedError) throw e;
          console.warn(`autosave failed: ${errText(e)}`); // no IndexedDB (private mode): training goes on
          autosavedAt = { step: trainer.step, epoch: trainer.epoch };
        }
      }
      // the per-layer view follows the run (modes, flips, histograms, SQ angles)
      if (hooks) await refreshQuantView();
    }
    const done = trainer.epoch >= trainer.epochs;
    $<HTMLProgressElement>('progress').value = done ? 1 : trainer.step / state.totalSteps;
    const last = trainer.history[trainer.history.length - 1];
    $('progress-text').textContent = done
      ? `Done: ${trainer.step} steps, test accuracy ${pct(state.lastTestAcc)} (untrained ${pct(state.initialTestAcc)})` +
        (last ? ` · ${last.samplesPerSec.toFixed(0)} samples/s` : '')
      : `Stopped at step ${trainer.step}.`;
    // (with a quantizer the view was refreshed after the last chunk; again would zero the flip ratios)
    if (!hooks) await refreshQuantView();
  } catch (e) {
    console.error(e);
    if (e instanceof DeviceLostError) {
      // the device is gone, and every buffer with it: forget the session (releasing its tensors
      // would touch a dead device), then offer to continue from the autosave on a new device
      const a = state.autosaved;
      dropLostSession();
      showMessage(
        `The GPU device was lost (${e.info.reason}${e.info.message ? `: ${e.info.message}` : ''}) at step ${session?.trainer?.step ?? '?'}; training stopped. ` +
          (a
            ? `The model as of step ${a.step} was autosaved in this browser: press "Continue from the autosave" to train on from step ${a.step} on a new GPU device ` +
              '(also after a reload; "Load last saved" loads it as a model).'
            : 'No autosave was made yet in this run.'),
      );
      $('progress-text').textContent = 'Training stopped: the GPU device was lost.';
    } else {
      showMessage(`Training failed: ${errText(e)}`);
      $('progress-text').textContent = 'Training stopped by an error.';
    }
  } finally {
    state.resume = null;
    setPhase(state.gpu ? 'idle' : 'no-webgpu');
  }
}

buttons.train.addEventListener('click', () => void train());

/** After a device loss: forget what lived on the dead device (without releasing it there). */
function dropLostSession(): void {
  state.session = null;
  packed = null;
  state.gpu = null;
  state.deviceLost = true;
}

/** The form as `setup` had it (the run an autosave belongs to). */
function applySetup(setup: AppSetup): void {
  if (!listModels().includes(setup.model)) throw new Error(`the autosave is of model '${setup.model}', which this app does not know`);
  if (setup.dataset === 'local') {
    if (!$<HTMLInputElement>('local-files').files?.length) {
      throw new Error('the autosave was trained on local files: choose "local files…" and the same files again, then press "Continue from the autosave"');
    }
  } else if (!(setup.dataset in state.served)) throw new Error(`the autosave was trained on '${setup.dataset}', which this page does not serve`);
  modelSel.value = setup.model;
  datasetSel.value = setup.dataset;
  if (![...quantSel.options].some((o) => o.value === setup.quant)) quantSel.add(new Option(setup.quant, setup.quant));
  quantSel.value = setup.quant;
  $<HTMLSelectElement>('optim').value = setup.optim;
  for (const [id, v] of [['train-n', setup.trainN], ['test-n', setup.testN], ['batch', setup.batch], ['epochs', setup.epochs], ['lr', setup.lr], ['seed', setup.seed]] as const) {
    $<HTMLInputElement>(id).value = String(v);
  }
  updateHints();
}

/**
 * "Continue from the autosave": rebuild the autosave's run from its setup (model, data, quantizer,
 * optimizer, batch, epochs, seed), restore model, optimizer state and step, and train on. After a
 * device loss it first asks for a new device.
 */
async function continueFromAutosave(): Promise<void> {
  let ck: Checkpoint;
  try {
    hideMessage();
    const c = await loadAutosave();
    if (!c) throw new Error('no autosave is kept in this browser');
    ck = parseCheckpoint(c.bytes, `${c.name} (browser storage)`);
    const setup = ck.meta.setup as unknown as AppSetup | undefined;
    if (setup?.app !== 'webqat browser' || !ck.optimizer) {
      throw new Error(`${c.name} holds no training setup or optimizer state (an older version of the app saved it): "Load last saved" loads it as a model`);
    }
    applySetup(setup);
    if (!state.gpu) {
      // the old device is lost: a new one (the engine keeps one device per page)
      await wq.shutdown();
      state.gpu = await wq.init();
      watchDevice(state.gpu);
      state.deviceLost = false;
      gpuBanner(state.gpu);
    }
  } catch (e) {
    console.error(e);
    showMessage(`Cannot continue from the autosave: ${errText(e).replace(/^webqat: /, '')}`);
    setPhase(state.gpu ? 'idle' : 'no-webgpu');
    return;
  }
  await train(ck);
}
buttons.cont.addEventListener('click', () => void continueFromAutosave());
buttons.pause.addEventListener('click', () => {
  if (state.phase === 'paused') {
    state.pauseRequested = false;
    state.resume?.();
  } else {
    state.pauseRequested = true;
    buttons.pause.disabled = true;
    $('progress-text').textContent = 'Pausing after the current steps…';
  }
});
buttons.stop.addEventListener('click', () => {
  state.stopRequested = true;
  state.pauseRequested = false;
  state.resume?.();
});

// ------------------------------------------------------------------ evaluation and prediction

/** With the model in eval mode (restored afterwards). */
async function inEval<T>(f: (m: Module) => Promise<T>): Promise<T> {
  const s = state.session;
  if (!s) throw new Error('no model: train one or load a checkpoint first');
  const was = s.model.training;
  s.model.eval();
  try {
    return await f(s.model);
  } finally {
    s.model.train(was);
  }
}

function checkDataFits(data: Split): void {
  const s = state.session!;
  const [c, h, w] = data.test.shape;
  if (c !== s.config.inChannels || h !== s.config.inputSize || w !== s.config.inputSize || data.test.numClasses !== s.config.numClasses) {
    throw new Error(
      `the model expects ${s.config.inChannels}×${s.config.inputSize}×${s.config.inputSize} inputs and ${s.config.numClasses} classes, ` +
        `but ${data.test.name} has ${c}×${h}×${w} and ${data.test.numClasses} classes; pick the matching dataset`,
    );
  }
}

/** Loss and accuracy on the test split (a loader of its own: works for loaded checkpoints too). */
async function evaluateTest(): Promise<{ acc: number; loss: number; n: number }> {
  const data = await ensureData();
  checkDataFits(data);
  const loader = new GpuLoader(data.test, { batchSize: 250, shuffle: false });
  try {
    return await inEval(async (model) => {
      loader.startEpoch(0);
      let correct = 0;
      let lossSum = 0;
      for (let k = 0; k < loader.numBatches; k++) {
        const b = loader.batch(k);
        const [c, l] = noGrad(() => {
          beginScope('app eval');
          try {
            const logits = model.call(b.x);
            return [accuracyCount(logits, b.y).keep(), softmaxCrossEntropy(logits, b.y, 'sum').keep()];
          } finally {
            endScope();
          }
        });
        try {
          correct += await c.item();
          lossSum += await l.item();
        } finally {
          c.release();
          l.release();
        }
      }
      return { acc: correct / loader.size, loss: lossSum / loader.size, n: loader.size };
    });
  } finally {
    loader.dispose();
  }
}

/** Logits of the first `k` test samples, row-major [k, classes]. */
async function predictTest(k: number): Promise<number[]> {
  const data = await ensureData();
  checkDataFits(data);
  const n = Math.min(k, data.test.labels.length);
  const loader = new GpuLoader(data.test, { batchSize: n, shuffle: false });
  try {
    return await inEval(async (model) => {
      loader.startEpoch(0);
      const b = loader.batch(0);
      const out = noGrad(() => {
        beginScope('app predict');
        try {
          return model.call(b.x).keep();
        } finally {
          endScope();
        }
      });
      try {
        return Array.from(await out.data());
      } finally {
        out.release();
      }
    });
  } finally {
    loader.dispose();
  }
}

buttons.evaluate.addEventListener('click', () =>
  void guarded('busy', async () => {
    hideMessage();
    state.lastEval = null;
    $('eval-result').textContent = 'Evaluating…';
    try {
      const r = await evaluateTest();
      state.lastEval = { acc: r.acc, loss: r.loss };
      $('eval-result').textContent = `Test accuracy ${pct(r.acc)} · loss ${r.loss.toFixed(4)} on ${r.n} samples`;
    } catch (e) {
      $('eval-result').textContent = '';
      throw e;
    }
  }));

// ------------------------------------------------------------------ checkpoints

function download(bytes: Uint8Array, name: string): void {
  const url = URL.createObjectURL(new Blob([bytes as BlobPart], { type: 'application/octet-stream' }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** the training loop autosaves to IndexedDB at each epoch's end and at least every this many steps */
const AUTOSAVE_STEPS = 100;
let autosaveSteps = AUTOSAVE_STEPS; // the tests shorten it (window.__webqat.setAutosaveSteps)

/**
 * Keep the session's model in IndexedDB (AUTOSAVE_KEY), after the trainer has checked parameters
 * and optimizer state for NaN/Inf on the GPU: a broken model never replaces the last good autosave.
 */
async function autosave(s: Session): Promise<void> {
  const t = s.trainer!;
  await t.checkFinite();
  const bytes = await checkpointBytes(s);
  const name = `webqat-${s.modelName}-${s.config.quant.replace(/[^a-z0-9]+/gi, '_')}-autosave-step${t.step}.safetensors`;
  await storeCheckpoint({ name, savedAt: new Date().toISOString(), bytes }, AUTOSAVE_KEY);
  state.autosaved = { step: t.step, name };
  state.resumable = { step: t.step, name };
  $('saved-info').textContent = `Autosaved in this browser: ${name} (step ${t.step}).`;
}

function checkpointBytes(s: Session): Promise<Uint8Array> {
  const t = s.trainer;
  return encodeCheckpoint(s.model, s.optimizer, {
    model: s.modelName,
    modelConfig: s.config,
    dataset: s.datasetName,
    seed: s.config.seed,
    epoch: t?.epoch ?? 0,
    stepInEpoch: t?.stepInEpoch ?? 0,
    step: t?.step ?? 0,
    extra: { app: 'webqat browser', batchSize: t?.trainLoader.batchSize, history: t?.history ?? [] },
    setup: s.setup as unknown as Record<string, unknown> | undefined,
  });
}

async function saveCheckpoint(): Promise<void> {
  const s = state.session;
  if (!s) throw new Error('no model to save');
  const t = s.trainer;
  const bytes = await checkpointBytes(s);
  const name = `webqat-${s.modelName}-${s.config.quant.replace(/[^a-z0-9]+/gi, '_')}-step${t?.step ?? 0}.safetensors`;
  download(bytes, name);
  let where = 'downloaded';
  try {
    await storeCheckpoint({ name, savedAt: new Date().toISOString(), bytes });
    state.lastSaved = name;
    where += ' and kept in this browser (IndexedDB)';
  } catch (e) {
    where += ` (not kept in the browser: ${errText(e)})`;
  }
  $('saved-info').textContent = `Saved ${name} (${(bytes.length / 1024).toFixed(1)} KiB): ${where}.`;
}

/** Build the checkpoint's model and load its weights; the current model stays if anything fails. */
async function loadCheckpointBytes(bytes: Uint8Array, source: string): Promise<void> {
  const ck = parseCheckpoint(bytes, source);
  if (!ck.meta.model) throw new Error(`${source}: the checkpoint does not name its model, so the app cannot rebuild it`);
  if (!listModels().includes(ck.meta.model)) throw new Error(`${source}: unknown model '${ck.meta.model}' (known: ${listModels().join(', ')})`);
  const cfg = (ck.meta.modelConfig ?? {}) as Partial<ModelConfig>;
  const config: ModelConfig = {
    ...cfg,
    inChannels: cfg.inChannels ?? 1,
    numClasses: cfg.numClasses ?? 10,
    inputSize: cfg.inputSize ?? 28,
    seed: cfg.seed ?? ck.meta.seed,
    quant: typeof cfg.quant === 'string' ? cfg.quant : 'fp',
  };
  const { model, spec } = buildModel(ck.meta.model, config);
  try {
    restoreCheckpoint(ck, model, null);
    for (const [, l] of quantLayers(model)) await l.wq.calibrate();
  } catch (e) {
    for (const [, l] of quantLayers(model)) l.wq.release();
    model.release();
    throw e;
  }
  const ds = ck.meta.dataset;
  const isMnistLike = config.inChannels === 1 && config.inputSize === 28;
  const mean = ds === 'fashion-mnist' ? [wq.FASHION_MEAN] : isMnistLike ? [wq.MNIST_MEAN] : (state.data?.train.mean ?? [0.5]);
  const std = ds === 'fashion-mnist' ? [wq.FASHION_STD] : isMnistLike ? [wq.MNIST_STD] : (state.data?.train.std ?? [0.25]);
  setSession({
    model,
    modelName: ck.meta.model,
    config,
    spec,
    origin: `loaded from ${source} (step ${ck.meta.step}${ds ? `, ${ds}` : ''})`,
    datasetName: ds,
    optimizer: null,
    rawOptimizer: null,
    trainer: null,
    hooks: null,
    reporter: new SizeReporter(),
    mean,
    std,
  });
  if (ds && ds in state.served && datasetSel.value !== ds) {
    datasetSel.value = ds;
    updateHints();
  }
  $('eval-result').textContent = '';
  sqStep = ck.meta.step;
  resetSqChart();
  await refreshQuantView();
  showMessage(`Loaded checkpoint ${source}: ${ck.meta.model}, quantizer ${config.quant}, step ${ck.meta.step}.`, 'ok');
}

buttons.save.addEventListener('click', () => void guarded('busy', saveCheckpoint));

$<HTMLInputElement>('load-file').addEventListener('change', (ev) => {
  const input = ev.target as HTMLInputElement;
  const file = input.files?.[0];
  input.value = '';
  if (!file) return;
  void guarded('busy', async () => {
    hideMessage();
    try {
      await loadCheckpointBytes(new Uint8Array(await file.arrayBuffer()), file.name);
    } catch (e) {
      throw new Error(`Cannot load ${file.name}: ${errText(e).replace(/^webqat: /, '')}`);
    }
  });
});

buttons.restore.addEventListener('click', () =>
  void guarded('busy', async () => {
    hideMessage();
    const c = await loadStoredCheckpoint();
    if (!c) throw new Error('no checkpoint is kept in this browser yet');
    await loadCheckpointBytes(c.bytes, `${c.name} (browser storage)`);
  }));

// ------------------------------------------------------------------ quantization view

function histogram(values: ArrayLike<number>, bins: number): { labels: string[]; counts: number[] } {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < values.length; i++) {
    lo = Math.min(lo, values[i]);
    hi = Math.max(hi, values[i]);
  }
  if (!(hi > lo)) hi = lo + 1e-6;
  const counts = new Array(bins).fill(0);
  const w = (hi - lo) / bins;
  for (let i = 0; i < values.length; i++) counts[Math.min(bins - 1, Math.floor((values[i] - lo) / w))]++;
  const labels = counts.map((_, i) => (lo + (i + 0.5) * w).toPrecision(2));
  return { labels, counts };
}

/** Distinct levels with counts when there are few (binary, ternary, k-bit), else a histogram. */
function levels(values: ArrayLike<number>): { labels: string[]; counts: number[] } {
  const m = new Map<number, number>();
  for (let i = 0; i < values.length; i++) {
    const v = Math.fround(values[i]);
    m.set(v, (m.get(v) ?? 0) + 1);
    if (m.size > 33) return histogram(values, 41);
  }
  const keys = [...m.keys()].sort((a, b) => a - b);
  return { labels: keys.map((k) => k.toPrecision(3)), counts: keys.map((k) => m.get(k)!) };
}

async function drawHistograms(): Promise<void> {
  const s = state.session;
  const name = $<HTMLSelectElement>('hist-layer').value;
  const layer = s ? quantLayers(s.model).find(([n]) => n === name)?.[1] : undefined;
  if (!layer) return;
  const latent = await layer.wq.weight.data();
  const q = await layer.wq.quantized(false).data();
  if (s!.model.training) layer.wq.invalidate(); // the eval-mode cache is for inference only
  const h = histogram(latent, 41);
  histLatent.data.labels = h.labels;
  histLatent.data.datasets[0].data = h.counts;
  histLatent.update('none');
  const l = levels(q);
  histQuant.data.labels = l.labels;
  histQuant.data.datasets[0].data = l.counts;
  histQuant.update('none');
  $('hist-quant').dataset.levels = String(l.labels.length);
}

async function refreshQuantView(): Promise<void> {
  const s = state.session;
  const table = $<HTMLTableElement>('quant-table');
  const layers = s ? quantLayers(s.model) : [];
  if (!s || layers.length === 0) {
    table.hidden = true;
    $('hist-row').hidden = true;
    $('sq-row').hidden = true;
    $('quant-summary').textContent = s
      ? `No quantized layers: quantizer ${s.config.quant}${s.spec && s.spec.weight.method === 'none' ? ' quantizes activations only (models built for it)' : ''}.`
      : 'No quantized layers.';
    return;
  }
  const r = await s.reporter.report(s.model);
  if (s.model.training) for (const [, l] of layers) l.wq.invalidate();
  const tbody = table.tBodies[0];
  tbody.replaceChildren(
    ...r.layers.map((l) => {
      const tr = document.createElement('tr');
      const cells = [
        l.name,
        l.mode,
        String(l.bits),
        l.n.toLocaleString(),
        l.scale.toExponential(2),
        pct(l.zeroFraction),
        Number.isNaN(l.flipRatio) ? '–' : `${(100 * l.flipRatio).toFixed(2)}%`,
        `${(l.packedBytes / 1024).toFixed(1)} KiB`,
        l.sq ? `α ${l.sq.alpha.toPrecision(3)} · β ${((l.sq.beta * 180) / Math.PI).toFixed(2)}° · t ${l.sq.threshold.toPrecision(2)}` : '–',
      ];
      for (const c of cells) {
        const td = document.createElement('td');
        td.textContent = c;
        tr.appendChild(td);
      }
      return tr;
    }),
  );
  table.hidden = false;
  addSqPoints(r.layers, s.trainer?.step ?? sqStep);
  $('sq-row').hidden = !r.layers.some((l) => l.sq);
  $('quant-summary').textContent =
    `${r.layers.length} quantized layer${r.layers.length > 1 ? 's' : ''}, ${r.quantizedWeights.toLocaleString()} weights at ` +
    `${r.quantBitsPerWeight.toFixed(2)} bits/weight · model ${(r.floatBytes / 1024).toFixed(1)} KiB as float32 → ` +
    `${(r.packedBytes / 1024).toFixed(1)} KiB packed (${r.compression.toFixed(1)}×)`;
  $('quant-summary').classList.remove('muted');
  const sel = $<HTMLSelectElement>('hist-layer');
  const names = layers.map(([n]) => n);
  if (sel.options.length !== names.length || names.some((n, i) => sel.options[i].value !== n)) fillSelect(sel, names.map((n) => [n, n]), names[0]);
  $('hist-row').hidden = false;
  await drawHistograms();
}

$<HTMLSelectElement>('hist-layer').addEventListener('change', () => void drawHistograms().catch((e) => showMessage(errText(e))));

// ------------------------------------------------------------------ drawing

const pad = new DrawPad($<HTMLCanvasElement>('pad'));
$('clear').addEventListener('click', () => {
  pad.clear();
  $('prediction').replaceChildren();
  paintGray($<HTMLCanvasElement>('preview'), new Uint8Array(28 * 28));
});

// ------------------------------------------------------------------ packed model (webqat/infer)

/** The session's model as a packed file, loaded with the inference runtime; rebuilt when the weights changed. */
let packed: { session: Session; step: number; model: wq.PackedModel; fileBytes: number } | null = null;

function packedBytes(s: Session): Promise<wq.ExportResult> {
  return wq.exportPacked(s.model, {
    model: s.modelName,
    modelConfig: s.config,
    quant: s.config.quant,
    inputShape: [s.config.inChannels, s.config.inputSize, s.config.inputSize],
    numClasses: s.config.numClasses,
    normalization: { mean: s.mean, std: s.std },
  });
}

/** The packed model of the session, or why there is none (a quantizer the format does not store, a model the runtime does not run). */
async function packedFor(s: Session): Promise<{ model: wq.PackedModel; fileBytes: number } | { why: string }> {
  const step = s.trainer?.step ?? -1;
  if (packed && packed.session === s && packed.step === step) return packed;
  packed?.model.dispose();
  packed = null;
  try {
    const ex = await packedBytes(s);
    const model = await wq.loadPacked(ex.bytes, { gpu: state.gpu ?? undefined });
    packed = { session: s, step, model, fileBytes: ex.bytes.length };
    return packed;
  } catch (e) {
    return { why: errText(e).replace(/^webqat: /, '') };
  }
}

async function exportPackedModel(): Promise<void> {
  const s = state.session;
  if (!s) throw new Error('no model to export');
  const ex = await packedBytes(s);
  const name = `webqat-${s.modelName}-${s.config.quant.replace(/[^a-z0-9]+/gi, '_')}-step${s.trainer?.step ?? 0}.packed.safetensors`;
  download(ex.bytes, name);
  $('saved-info').textContent = `Exported ${name}: ${(ex.bytes.length / 1024).toFixed(1)} KiB ` +
    `(${ex.layers.filter((l) => l.kind !== 'float').length} packed layers; float32 ${(ex.report.floatBytes / 1024).toFixed(1)} KiB).`;
}
buttons.exportPacked.addEventListener('click', () => void guarded('busy', exportPackedModel));

async function classifyDrawing(): Promise<{ digit: number; probs: number[]; packed: boolean } | null> {
  const s = state.session;
  if (!s) throw new Error('no model: train one or load a checkpoint first');
  if (!drawable()) throw new Error('drawing needs a model for 28×28 grayscale inputs');
  const px = pad.toMnist();
  paintGray($<HTMLCanvasElement>('preview'), px ?? new Uint8Array(28 * 28));
  if (!px) {
    $('prediction').textContent = 'Draw something first.';
    return null;
  }
  // the packed model (webqat/infer) when the session's model packs, else the float model
  const pm = await packedFor(s);
  const x = new Float32Array(px.length);
  for (let i = 0; i < px.length; i++) x[i] = (px[i] / 255 - s.mean[0]) / s.std[0];
  const probs = 'model' in pm ? Array.from(await pm.model.predict(px)) : await inEval(async (model) => {
    const p = noGrad(() => {
      beginScope('app classify');
      try {
        return softmax(model.call(tensor(x, [1, 1, 28, 28])), -1).keep();
      } finally {
        endScope();
      }
    });
    try {
      return Array.from(await p.data());
    } finally {
      p.release();
    }
  });
  const digit = probs.indexOf(Math.max(...probs));
  const classes = state.data?.test.classes;
  const name = (k: number) => (classes ? classes[k] : String(k));
  const top = document.createElement('div');
  top.className = 'top';
  top.textContent = `${name(digit)} · ${pct(probs[digit])}`;
  const rows = probs.map((p, k) => {
    const row = document.createElement('div');
    row.className = `bar-row${k === digit ? ' best' : ''}`;
    const label = document.createElement('span');
    label.textContent = classes ? String(k) : name(k);
    const bar = document.createElement('div');
    bar.className = 'bar';
    const fill = document.createElement('span');
    fill.style.width = `${(100 * p).toFixed(1)}%`;
    bar.appendChild(fill);
    const v = document.createElement('span');
    v.textContent = pct(p);
    row.append(label, bar, v);
    return row;
  });
  const via = document.createElement('small');
  via.className = 'hint';
  via.textContent = 'model' in pm
    ? `packed model: ${(pm.fileBytes / 1024).toFixed(1)} KiB file, ${(pm.model.memory().bytes / 1024).toFixed(1)} KiB of weights on the GPU`
    : `float model (no packed model: ${pm.why})`;
  $('prediction').replaceChildren(top, ...rows, via);
  return { digit, probs, packed: 'model' in pm };
}

buttons.classify.addEventListener('click', () => void guarded('busy', async () => void (await classifyDrawing())));
pad.onStroke = () => {
  if (!buttons.classify.disabled) void guarded('busy', async () => void (await classifyDrawing()));
};

// ------------------------------------------------------------------ post-training quantization (MXQN)

/** One row of the PTQ table (also what `window.__webqat.ptq()` returns). */
interface PtqRow {
  layer: string;
  kind: string;
  foldedBn: string | null;
  weightBits: number | null;
  weightFrac: number | null;
  weightDb: number | null;
  actBits: number | null;
  /** the activation quantizer chosen (label) */
  act: string | null;
  actDb: number | null;
  /** SQNR (dB) of each quantizer record's best candidate, by column title */
  candidates: Record<string, number | null>;
}

interface PtqRun {
  bits: string;
  method: string;
  calibBatches: number;
  calibBatchSize: number;
  testSamples: number;
  floatAcc: number;
  quantAcc: number;
  networkSqnrDb: number;
  seconds: number;
  rows: PtqRow[];
}

let lastPtq: PtqRun | null = null;
const ptqMethodSel = $<HTMLSelectElement>('ptq-method');
fillSelect(ptqMethodSel, ptqMethods().map((m) => [m, m === 'mxqn' ? 'mxqn (per-layer SQNR choice)' : `${m} only`]), 'mxqn');

const dbCell = (x: number | null | undefined) => (x === null || x === undefined ? '–' : x >= 200 ? 'exact' : x.toFixed(1));

function ptqRows(r: PtqResult): PtqRow[] {
  const cols = ptqActColumns(r);
  return r.layers.map((l) => ({
    layer: l.name,
    kind: l.kind,
    foldedBn: l.foldedBn,
    weightBits: l.weight?.q.bits ?? null,
    weightFrac: l.weight && l.weight.q.kind === 'fixed' ? l.weight.q.frac : null,
    weightDb: l.weight?.db ?? null,
    actBits: l.act?.q.bits ?? null,
    act: l.act?.label ?? null,
    actDb: l.act?.db ?? null,
    candidates: Object.fromEntries(cols.map((c) => [c.column.title, l.act?.choice.best[c.id]?.db ?? null])),
  }));
}

function renderPtq(run: PtqRun, r: PtqResult): void {
  const table = $<HTMLTableElement>('ptq-table');
  const cols = ptqActColumns(r);
  const head = document.createElement('tr');
  for (const h of ['layer', 'W bits', 'f', 'W dB', 'A bits', 'activation quantizer', 'A dB', ...cols.map((c) => `${c.column.title} dB`)]) {
    const th = document.createElement('th');
    th.textContent = h;
    head.appendChild(th);
  }
  table.tHead!.replaceChildren(head);
  table.tBodies[0].replaceChildren(
    ...r.layers.map((l, i) => {
      const row = run.rows[i];
      const tr = document.createElement('tr');
      const chosenId = l.act ? cols.findIndex((c) => c.owns(l.act!.q)) : -1;
      const cells: [string, string?][] = [
        [row.layer + (row.foldedBn ? ` (+${row.foldedBn} folded)` : '')],
        [row.weightBits === null ? 'float' : String(row.weightBits)],
        [row.weightFrac === null ? '–' : String(row.weightFrac)],
        [dbCell(row.weightDb)],
        [row.actBits === null ? 'float' : String(row.actBits)],
        [row.act ?? '–', 'chosen'],
        [dbCell(row.actDb)],
        ...cols.map((c, k): [string, string?] => [
          l.act ? c.column.cell(l.act.choice.best[c.id]) : '–',
          k === chosenId ? 'chosen' : undefined,
        ]),
      ];
      for (const [text, cls] of cells) {
        const td = document.createElement('td');
        td.textContent = text;
        if (cls) td.className = cls;
        tr.appendChild(td);
      }
      return tr;
    }),
  );
  table.hidden = false;
  const d = 100 * (run.quantAcc - run.floatAcc);
  $('ptq-summary').textContent =
    `${run.bits.toUpperCase()} · ${run.method} · ${run.calibBatches} calibration batch${run.calibBatches > 1 ? 'es' : ''} of ${run.calibBatchSize}: ` +
    `test accuracy float ${pct(run.floatAcc)} → quantized ${pct(run.quantAcc)} (${d >= 0 ? '+' : ''}${d.toFixed(2)} pp) on ${run.testSamples} samples · ` +
    `network SQNR estimate ${run.networkSqnrDb.toFixed(1)} dB · ${run.seconds.toFixed(1)} s`;
  $('ptq-summary').classList.remove('muted');
}

/** PTQ of a float copy of the current model (its weights, BN statistics) on the current dataset. */
async function runPtq(): Promise<PtqRun> {
  const s = state.session;
  if (!s) throw new Error('no model: train one or load a checkpoint first');
  const data = await ensureData();
  checkDataFits(data);
  const bitsText = $<HTMLSelectElement>('ptq-bits').value;
  const { weightBits, actBits } = parseBits(bitsText);
  const method = ptqMethodSel.value;
  const calibText = $<HTMLInputElement>('ptq-calib').value.trim();
  const calibBatches = Number(calibText);
  const calibBatchSize = Math.min(100, data.train.labels.length);
  const maxBatches = Math.floor(data.train.labels.length / calibBatchSize);
  if (!/^\d+$/.test(calibText) || calibBatches < 1 || calibBatches > maxBatches) {
    throw new Error(`calibration batches must be an integer in 1..${maxBatches} (batches of ${calibBatchSize} from the ${data.train.labels.length} training samples), got '${calibText}'`);
  }
  const t0 = performance.now();
  $('ptq-summary').textContent = `Quantizing (${bitsText}, ${method})…`;
  // a float model of the same architecture with the trained tensors (a QAT model gives its latent weights)
  const { quant: _q, ...config } = s.config;
  const copy = createModel(s.modelName, config);
  const calibLoader = new GpuLoader(data.train, { batchSize: calibBatchSize, shuffle: true, seed: 1 });
  const testLoader = new GpuLoader(data.test, { batchSize: 250, shuffle: false });
  let pm: PtqModel | null = null;
  try {
    const src = s.model.stateDict();
    for (const [name, t] of copy.stateDict()) {
      const from = src.get(name);
      if (!from || from.shape.join() !== t.shape.join()) {
        throw new Error(`the model's tensor '${name}' ${t.shape.join('×')} has no counterpart of that shape in the trained ${s.modelName} (got ${from ? from.shape.join('×') : 'none'})`);
      }
      noGrad(() => wq.copy_(t, from));
    }
    const testBatches = function* () {
      testLoader.startEpoch(0);
      for (let k = 0; k < testLoader.numBatches; k++) yield testLoader.batch(k);
    };
    const calib = function* (): Generator<Tensor> {
      calibLoader.startEpoch(0);
      for (let k = 0; k < calibBatches; k++) yield calibLoader.batch(k).x;
    };
    const floatAcc = await ptqAccuracy(copy, testBatches());
    pm = await PtqModel.quantize(copy, calib, { method, weightBits, actBits });
    const quantAcc = await ptqAccuracy(copy, testBatches());
    const run: PtqRun = {
      bits: bitsText,
      method,
      calibBatches,
      calibBatchSize,
      testSamples: floatAcc.n,
      floatAcc: floatAcc.acc,
      quantAcc: quantAcc.acc,
      networkSqnrDb: pm.result.networkSqnrDb,
      seconds: (performance.now() - t0) / 1000,
      rows: ptqRows(pm.result),
    };
    lastPtq = run;
    renderPtq(run, pm.result);
    return run;
  } catch (e) {
    $('ptq-summary').textContent = 'Post-training quantization failed (see the message above).';
    throw e;
  } finally {
    pm?.release();
    copy.release();
    calibLoader.dispose();
    testLoader.dispose();
  }
}

buttons.ptq.addEventListener('click', () =>
  void guarded('busy', async () => {
    hideMessage();
    await runPtq();
  })
);

// ------------------------------------------------------------------ test hooks and start-up

const api = {
  state: () => ({
    phase: state.phase,
    adapter: state.gpu?.adapter.name ?? null,
    isSoftware: state.gpu?.isSoftware ?? null,
    step: state.step,
    totalSteps: state.totalSteps,
    initialTestAcc: state.initialTestAcc,
    lastTestAcc: state.lastTestAcc,
    lastEval: state.lastEval,
    model: state.session?.modelName ?? null,
    quant: state.session?.config.quant ?? null,
    runs: state.runs,
    lastSaved: state.lastSaved,
    autosaved: state.autosaved,
    resumable: state.resumable,
    resumedFrom: state.resumedFrom,
    deviceLost: state.deviceLost,
  }),
  /** the training losses of the current run as read back, { step, loss } */
  losses: () => state.losses.map((l) => ({ ...l })),
  /** test hook: autosave every `n` steps instead of every AUTOSAVE_STEPS (short runs) */
  setAutosaveSteps: (n: number) => {
    autosaveSteps = n;
  },
  /** test hook: lose the GPU device as a reset would (device.destroy()) */
  loseDevice: () => state.gpu?.device.destroy(),
  predict: (k: number) => predictTest(k),
  /** the last post-training quantization run (per-layer rows, float and quantized accuracy), or null */
  ptq: () => (lastPtq ? structuredClone(lastPtq) : null),
  /** the SQ angle chart's series (degrees per step) */
  sqSeries: () => sqChart.data.datasets.map((d) => ({ label: d.label, data: d.data.map((p) => ({ ...p })) })),
  /** draw polylines in 0..1 coordinates on the pad and classify them */
  drawAndClassify: async (lines: [number, number][][]) => {
    pad.clear();
    pad.strokes(lines);
    return classifyDrawing();
  },
  ready: null as Promise<void> | null,
};
(window as unknown as { __webqat: typeof api }).__webqat = api;

async function start(): Promise<void> {
  state.served = await servedDatasets();
  initForm();
  const banner = $('gpu-status');
  try {
    state.gpu = await wq.init();
  } catch (e) {
    banner.className = 'banner error';
    banner.textContent = `WebGPU is not available here, so nothing can be trained. ${errText(e).replace(/^webqat: /, '')}`;
    setPhase('no-webgpu');
    return;
  }
  const g = state.gpu;
  watchDevice(g);
  gpuBanner(g);
  try {
    const c = await loadStoredCheckpoint();
    if (c) {
      state.lastSaved = c.name;
      $('saved-info').textContent = `Kept in this browser: ${c.name} (saved ${new Date(c.savedAt).toLocaleString()}).`;
    }
    const a = await loadAutosave();
    const step = a ? /-step(\d+)\.safetensors$/.exec(a.name)?.[1] : undefined;
    if (a && step !== undefined) state.resumable = { step: Number(step), name: a.name };
  } catch {
    // no IndexedDB (private mode): saving still downloads
  }
  setPhase('idle');
}

function gpuBanner(g: wq.Gpu): void {
  const banner = $('gpu-status');
  if (g.isSoftware) {
    banner.className = 'banner warn';
    banner.textContent = `WebGPU runs on a software adapter (${g.adapter.name}): everything works, but slowly. ` +
      'Keep runs small (MLP or LeNet-5, a few thousand samples).';
  } else {
    banner.className = 'banner ok';
    banner.textContent = `WebGPU adapter: ${g.adapter.name}`;
  }
}

/** A lost device (driver reset, GPU process crash) outside training: say so plainly and offer the autosave. */
function watchDevice(g: wq.Gpu): void {
  void g.device.lost.then((info) => {
    if (info.reason === 'destroyed' || state.gpu !== g) return; // destroyed: our own shutdown or a test; the trainer reports losses during training
    const banner = $('gpu-status');
    banner.className = 'banner error';
    banner.textContent = `The WebGPU device was lost (${info.message || info.reason}). ` +
      (state.resumable ? 'Press "Continue from the autosave" to train on from its step on a new device, or reload the page; ' : 'Reload the page to start again; ') +
      'a checkpoint saved in this browser can be loaded back.';
    if (state.phase !== 'training') {
      dropLostSession();
      setPhase('no-webgpu');
    }
  });
}

api.ready = start().catch((e) => {
  console.error(e);
  showMessage(`Start-up failed: ${errText(e)}`);
});
