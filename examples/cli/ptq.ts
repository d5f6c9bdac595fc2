/**
 * `npm run ptq -- --checkpoint F.safetensors --model lenet5 --dataset mnist --method mxqn --bits w8a8` (Deno).
 *
 * Post-training quantization of a trained checkpoint (MXQN, ALGORITHMS §4): BN folding, calibration
 * on N training batches (statistics on the GPU), fixed-point weights with a fraction-length search,
 * fixed-point or log activations chosen per layer by SQNR; prints the per-layer table and the float
 * vs quantized test accuracy. Exit codes: 0 done, 1 failed (I/O, GPU), 2 usage error.
 */
import process from 'node:process';
import {
  createModel,
  encodeSafetensors,
  GpuLoader,
  init,
  listModels,
  loadDataset,
  PTQ_HISTOGRAM,
  ptqAccuracy,
  PtqModel,
  type PtqLayer,
  ptqActColumns,
  type PtqResult,
  readCheckpoint,
  restoreCheckpoint,
  safeTensorOf,
  shutdown,
  subset,
  type Tensor,
  writeFileAtomic,
} from '../../src/index.ts';
import { type DatasetArg, UsageError } from './args.ts';
import { DATASET_INPUT, type PtqArgs, parsePtqArgs } from './ptq-args.ts';

function writeOut(s: string): void {
  process.stdout.write(s.endsWith('\n') ? s : s + '\n');
}
function writeErr(s: string): void {
  process.stderr.write(s.endsWith('\n') ? s : s + '\n');
}

const pct = (x: number) => `${(100 * x).toFixed(2)}%`;
const db = (x: number | undefined) => (x === undefined ? '-' : x >= 200 ? 'exact' : x.toFixed(1));

/** Octaves between the 0.1 % and 99.9 % points of the nonzero |x| histogram (the dynamic range log must cover). */
function octaveSpan(h: number[]): number {
  const nz = h.slice(1);
  const total = nz.reduce((s, v) => s + v, 0);
  if (!total) return 0;
  let acc = 0;
  let lo = -1;
  let hi = -1;
  for (let b = 0; b < nz.length; b++) {
    acc += nz[b];
    if (lo < 0 && acc >= 0.001 * total) lo = b;
    if (hi < 0 && acc >= 0.999 * total) hi = b;
  }
  return (hi - lo + 1) / PTQ_HISTOGRAM.perOctave;
}

/** The per-layer table: weight bits and fraction length, activation candidates (dB, one column per quantizer record) and the choice. */
export function ptqTable(r: PtqResult): string[] {
  const w = Math.max(5, ...r.layers.map((l) => l.name.length));
  const cols = ptqActColumns(r);
  const head =
    `  ${'layer'.padEnd(w)}  ${'W'.padStart(3)} ${'f'.padStart(3)} ${'W dB'.padStart(6)} | ${'A'.padStart(2)} ${'max'.padStart(7)} ${'oct'.padStart(4)} ` +
    `${cols.map((c) => c.column.title.padStart(c.column.width)).join(' ')} | chosen`;
  const lines = [head, `  ${'-'.repeat(head.length - 2)}`];
  for (const l of r.layers) {
    if (!l.quantized) {
      lines.push(`  ${l.name.padEnd(w)}  float (--float-first / --float-last)`);
      continue;
    }
    const wq = l.weight!;
    const a = l.act!;
    lines.push(
      `  ${l.name.padEnd(w)}  ${String(wq.q.bits).padStart(3)} ${String((wq.q as { frac: number }).frac).padStart(3)} ${db(wq.db).padStart(6)} | ` +
        `${String(a.q.bits).padStart(2)} ${a.maxAbs.toPrecision(3).padStart(7)} ${octaveSpan(a.histogram).toFixed(1).padStart(4)} ` +
        `${cols.map((c) => c.column.cell(a.choice.best[c.id]).padStart(c.column.width)).join(' ')} | ` +
        `${a.label} (${db(a.db)} dB)`,
    );
  }
  return lines;
}

function layerJson(l: PtqLayer) {
  return {
    name: l.name,
    kind: l.kind,
    quantized: l.quantized,
    foldedBn: l.foldedBn,
    weights: l.weights,
    weight: l.weight ? { quantizer: l.weight.q, sqnrDb: l.weight.db, candidates: l.weight.candidates.map((c) => ({ frac: (c.q as { frac: number }).frac, sqnrDb: c.db })) } : null,
    act: l.act
      ? {
        quantizer: l.act.q,
        label: l.act.label,
        sqnrDb: l.act.db,
        bestFixedDb: l.act.choice.fixed?.db ?? null,
        bestLogDb: Object.fromEntries(Object.entries(l.act.choice.log).map(([m, s]) => [`m${m}`, s!.db])),
        candidates: l.act.candidates.map((c) => ({ quantizer: c.q, sqnrDb: c.db })),
        maxAbs: l.act.maxAbs,
        min: l.act.min,
        octaves: octaveSpan(l.act.histogram),
        histogram: { ...PTQ_HISTOGRAM, counts: l.act.histogram },
        count: l.act.count,
      }
      : null,
  };
}

async function main(argv: string[]): Promise<number> {
  let args: PtqArgs;
  try {
    args = parsePtqArgs(argv, listModels());
  } catch (e) {
    if (e instanceof UsageError) {
      (e.exitCode === 0 ? writeOut : writeErr)(e.message);
      return e.exitCode;
    }
    throw e;
  }
  const t0 = performance.now();
  const report: Record<string, unknown> = { command: 'ptq', status: 'running' };
  const writeJson = async () => {
    if (args.json) await writeFileAtomic(args.json, new TextEncoder().encode(JSON.stringify(report, null, 2) + '\n'));
  };
  try {
    const ck = await readCheckpoint(args.checkpoint);
    const model = args.model ?? ck.meta.model;
    if (!model) throw new UsageError(`ptq: --checkpoint ${args.checkpoint} records no model name; give --model (accepted: ${listModels().join(', ')})`);
    if (args.model && ck.meta.model && ck.meta.model !== args.model) {
      throw new UsageError(`ptq: --checkpoint ${args.checkpoint} holds a '${ck.meta.model}' model, not --model '${args.model}'`);
    }
    if (!listModels().includes(model)) throw new UsageError(`ptq: the checkpoint's model '${model}' is not a registry model; accepted: ${listModels().join(', ')}`);
    const dataset: DatasetArg = args.dataset ?? (ck.meta.dataset as DatasetArg | undefined) ?? 'mnist';
    const cfg = (ck.meta.modelConfig ?? {}) as { inChannels?: number; inputSize?: number; numClasses?: number; seed?: number };
    const d = DATASET_INPUT[dataset];
    if (!d) throw new UsageError(`ptq: the checkpoint's dataset '${dataset}' is unknown; give --dataset`);
    const want = { c: cfg.inChannels ?? d.c, size: cfg.inputSize ?? d.size, classes: cfg.numClasses ?? d.classes };
    if (want.c !== d.c || want.size !== d.size || want.classes !== d.classes) {
      throw new UsageError(
        `ptq: --dataset ${dataset} gives ${d.c}x${d.size}x${d.size} inputs with ${d.classes} classes, but the checkpoint's ${model} ` +
          `was built for ${want.c}x${want.size}x${want.size} inputs with ${want.classes} classes`,
      );
    }
    if (args.dataset && ck.meta.dataset && ck.meta.dataset !== args.dataset) {
      throw new UsageError(`ptq: --checkpoint ${args.checkpoint} was trained on '${ck.meta.dataset}', not --dataset '${args.dataset}'`);
    }
    const gpu = await init();
    const net = createModel(model, { inChannels: want.c, inputSize: want.size, numClasses: want.classes, seed: cfg.seed ?? 0 });
    try {
      restoreCheckpoint(ck, net, null);
    } catch (e) {
      throw new UsageError(`ptq: --checkpoint ${args.checkpoint} does not fit --model ${model}: ${(e as Error).message.replace(/^webqat: /, '')}`);
    }
    const data = await loadDataset(dataset, { dataDir: args.dataDir });
    const test = args.testLimit ? subset(data.test, args.testLimit) : data.test;
    const calibLoader = new GpuLoader(data.train, { batchSize: args.calibBatchSize, shuffle: true, seed: args.seed });
    if (args.calibBatches > calibLoader.numBatches) {
      throw new UsageError(`ptq: --calib-batches ${args.calibBatches} exceeds the ${calibLoader.numBatches} batches of ${args.calibBatchSize} in the ${dataset} training set`);
    }
    const testLoader = new GpuLoader(test, { batchSize: args.evalBatchSize, shuffle: false });
    const testBatches = function* () {
      testLoader.startEpoch(0);
      for (let k = 0; k < testLoader.numBatches; k++) yield testLoader.batch(k);
    };
    const calib = function* (): Generator<Tensor> {
      calibLoader.startEpoch(0);
      for (let k = 0; k < args.calibBatches; k++) yield calibLoader.batch(k).x;
    };
    writeOut(
      `webqat ptq: ${model} from ${args.checkpoint} on ${dataset} (${test.labels.length} test images); --method ${args.method} --bits ${args.bitsText}, ` +
        `${args.calibBatches} calibration batches of ${args.calibBatchSize}; adapter: ${gpu.adapter.name} (${gpu.adapter.runtime})`,
    );
    const tf = performance.now();
    const floatAcc = await ptqAccuracy(net, testBatches());
    const floatSeconds = (performance.now() - tf) / 1000;
    writeOut(`float test accuracy ${pct(floatAcc.acc)} (${floatSeconds.toFixed(1)} s)`);
    const tq = performance.now();
    const pm = await PtqModel.quantize(net, calib, {
      method: args.method,
      weightBits: args.weightBits,
      actBits: args.actBits,
      logM: args.logM,
      preferFixedDb: args.preferFixedDb,
      quantizeFirst: !args.floatFirst,
      quantizeLast: !args.floatLast,
      targetSqnrDb: args.targetSqnr,
      maxBits: args.maxBits,
    });
    const calibSeconds = (performance.now() - tq) / 1000;
    const r = pm.result;
    const folded = r.layers.filter((l) => l.foldedBn).length;
    writeOut(`calibration ${calibSeconds.toFixed(1)} s; ${folded} BatchNorm layer(s) folded; SQNR in dB per candidate (best fraction length / FSR of each family):`);
    for (const line of ptqTable(r)) writeOut(line);
    for (const a of r.allocation) writeOut(`  bit allocation: ${a.layer} ${a.part} -> ${a.bits} bits (network SQNR ${a.networkDb.toFixed(1)} dB)`);
    writeOut(`network SQNR estimate ${r.networkSqnrDb.toFixed(1)} dB (1/γ = Σ 1/γ_W + 1/γ_A over the quantized layers)`);
    const qAcc = await ptqAccuracy(net, testBatches());
    const delta = 100 * (qAcc.acc - floatAcc.acc);
    writeOut(`quantized test accuracy ${pct(qAcc.acc)} (float ${pct(floatAcc.acc)}, ${delta >= 0 ? '+' : ''}${delta.toFixed(2)} pp)`);
    Object.assign(report, {
      status: 'ok',
      model,
      dataset,
      checkpoint: args.checkpoint,
      method: args.method,
      bits: args.bitsText,
      calibBatches: args.calibBatches,
      calibBatchSize: args.calibBatchSize,
      logM: args.logM,
      preferFixedDb: args.preferFixedDb,
      targetSqnrDb: args.targetSqnr ?? null,
      floatFirst: args.floatFirst,
      floatLast: args.floatLast,
      testSamples: test.labels.length,
      floatAcc: floatAcc.acc,
      quantAcc: qAcc.acc,
      deltaPp: delta,
      networkSqnrDb: r.networkSqnrDb,
      allocation: r.allocation,
      layers: r.layers.map(layerJson),
      adapter: gpu.adapter.name,
      runtime: gpu.adapter.runtime,
      calibSeconds,
      wallSeconds: (performance.now() - t0) / 1000,
    });
    if (args.save) {
      const tensors = new Map();
      for (const [name, t] of pm.stateDict()) tensors.set(name, safeTensorOf((await t.data()) as Float32Array, t.shape));
      const plan = r.layers.map((l) => ({ name: l.name, foldedBn: l.foldedBn, weight: l.weight?.q ?? null, act: l.act?.q ?? null }));
      const bytes = encodeSafetensors(tensors, {
        format: 'webqat-ptq',
        version: '1',
        model,
        model_config: JSON.stringify({ inChannels: want.c, inputSize: want.size, numClasses: want.classes }),
        dataset,
        method: args.method,
        bits: args.bitsText,
        ptq: JSON.stringify(plan),
      });
      await writeFileAtomic(args.save, bytes);
      writeOut(`saved the quantized model to ${args.save} (weights hold their quantized values k·2^-f; plan in the metadata)`);
    }
    pm.release();
    await writeJson();
    return 0;
  } catch (e) {
    if (e instanceof UsageError) {
      writeErr(e.message);
      return e.exitCode;
    }
    const msg = (e as Error).message ?? String(e);
    writeErr(msg.startsWith('webqat') || msg.startsWith('ptq') ? msg : `ptq: ${msg}`);
    Object.assign(report, { status: 'error', error: msg });
    await writeJson().catch(() => {});
    return 1;
  } finally {
    await shutdown();
  }
}

const code = await main(process.argv.slice(2));
process.exit(code);
