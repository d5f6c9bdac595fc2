/**
 * `npm run experiments -- [--quick] [--epochs-mnist N] [--epochs-fashion N] [--seed S] [--out docs]`
 *
 * The accuracy table of the QAT issue, trained in-process with the Trainer:
 *  - LeNet-5 (TWN variant: 32C5-MP2-64C5-MP2-512FC-10) on MNIST with one recipe for fp, twn, bwn, sq
 *    (first and last layer float; Adam 1e-3, cosine, batch 100);
 *  - SSPQ20 W1A4 vs ResNet-20 FP on Fashion-MNIST (SGD 0.1 momentum 0.9, wd 1e-4, cosine, batch 128).
 * Writes docs/RESULTS.md and docs/results.json: per row the command, seed, epochs, wall time,
 * accuracy, bits/weight and packed size. `--quick` trains tiny subsets for one epoch (a smoke run).
 */
import process from 'node:process';
import { Adam, cosineLR, init, loadDataset, SGD, shutdown, softmaxCrossEntropy, subset, type Tensor, Trainer, writeFileAtomic } from '../../src/index.ts';
import { createModel } from '../../src/models/index.ts';
import '../../src/models/sspq.ts';
import type { Module } from '../../src/nn/module.ts';
import { formatReport, parseQuantSpec, QuantHooks, quantizeModel, SizeReporter } from '../../src/quant/index.ts';

interface Row {
  experiment: string;
  model: string;
  dataset: string;
  quant: string;
  command: string;
  seed: number;
  epochs: number;
  trainSamples: number;
  testSamples: number;
  wallSeconds: number;
  testAcc: number | null;
  bitsPerWeight: number | null;
  quantBitsPerWeight: number | null;
  floatKiB: number | null;
  packedKiB: number | null;
  params: number | null;
  error?: string;
}

interface Plan {
  experiment: string;
  model: string;
  dataset: 'mnist' | 'fashion-mnist';
  quant: string;
  epochs: number;
  optimizer: 'adam' | 'sgd';
  lr: number;
  batchSize: number;
  weightDecay: number;
  /** how the quantization shows in the table (default: quant) */
  display?: string;
}

function parseArgs(argv: string[]) {
  const o = { quick: false, epochsMnist: 20, epochsFashion: 30, seed: 1, out: 'docs' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`experiments: ${a} needs a value`);
      return v;
    };
    if (a === '--quick') o.quick = true;
    else if (a === '--epochs-mnist') o.epochsMnist = Number(val());
    else if (a === '--epochs-fashion') o.epochsFashion = Number(val());
    else if (a === '--seed') o.seed = Number(val());
    else if (a === '--out') o.out = val();
    else throw new Error(`experiments: unknown option '${a}' (accepted: --quick, --epochs-mnist N, --epochs-fashion N, --seed S, --out DIR)`);
  }
  for (const [k, v] of [['--epochs-mnist', o.epochsMnist], ['--epochs-fashion', o.epochsFashion], ['--seed', o.seed]] as const) {
    if (!Number.isInteger(v) || v < (k === '--seed' ? 0 : 1)) throw new Error(`experiments: ${k} must be a ${k === '--seed' ? 'non-negative' : 'positive'} integer, got ${v}`);
  }
  return o;
}

async function runOne(p: Plan, seed: number, quick: boolean, data: Awaited<ReturnType<typeof loadDataset>>): Promise<Row> {
  const train = quick ? subset(data.train, 512) : data.train;
  const test = quick ? subset(data.test, 256) : data.test;
  const epochs = quick ? 1 : p.epochs;
  const command = `npm run experiments -- --seed ${seed}${quick ? ' --quick' : ''}  # row: ${p.model} ${p.dataset} --quant ${p.quant} --epochs ${epochs}`;
  const row: Row = {
    experiment: p.experiment, model: p.model, dataset: p.dataset, quant: p.display ?? p.quant, command, seed, epochs,
    trainSamples: train.labels.length, testSamples: test.labels.length, wallSeconds: 0, testAcc: null,
    bitsPerWeight: null, quantBitsPerWeight: null, floatKiB: null, packedKiB: null, params: null,
  };
  const t0 = performance.now();
  let model: Module | null = null;
  let trainer: Trainer | null = null;
  try {
    const [c, h] = train.shape;
    model = createModel(p.model, { inChannels: c, inputSize: h, numClasses: train.numClasses, seed });
    const spec = parseQuantSpec(p.quant);
    quantizeModel(model, spec);
    const stepsPerEpoch = Math.floor(train.labels.length / p.batchSize);
    const total = Math.max(1, stepsPerEpoch * epochs);
    const hooks = new QuantHooks(model, spec, total);
    const params = model.parameters();
    const opt = p.optimizer === 'adam'
      ? new Adam(params, { lr: p.lr, weightDecay: p.weightDecay })
      : new SGD(params, { lr: p.lr, momentum: 0.9, weightDecay: p.weightDecay });
    trainer = new Trainer({
      model,
      optimizer: hooks.optimizer(opt),
      loss: hooks.loss((logits: Tensor, labels: Tensor) => softmaxCrossEntropy(logits, labels, 'mean')),
      schedule: cosineLR(total),
      train,
      test,
      batchSize: p.batchSize,
      epochs,
      seed,
      onProgress: (e) => {
        if (e.type === 'epoch') {
          const m = e.metrics;
          console.error(`  ${p.model} ${p.quant} epoch ${m.epoch}: loss ${m.trainLoss.toFixed(4)} train ${(100 * m.trainAcc).toFixed(2)}% test ${m.testAcc !== undefined ? (100 * m.testAcc).toFixed(2) + '%' : '-'} (${m.seconds.toFixed(1)} s)`);
        }
      },
    });
    await hooks.prepare();
    // incremental methods (elq/inq) train in segments between their stage boundaries
    for (const b of hooks.stageBoundaries) {
      if (b > trainer.step) await trainer.fit({ maxSteps: b });
      await hooks.advance(b);
    }
    const result = await trainer.fit();
    row.testAcc = result.finalTestAcc ?? null;
    const rep = await new SizeReporter().report(model);
    console.error(formatReport(rep));
    row.bitsPerWeight = rep.bitsPerWeight;
    row.quantBitsPerWeight = rep.quantizedWeights ? rep.quantBitsPerWeight : null;
    row.floatKiB = rep.floatBytes / 1024;
    row.packedKiB = rep.packedBytes / 1024;
    row.params = rep.totalParams;
  } catch (e) {
    row.error = (e as Error).message;
    console.error(`  ${p.model} ${p.quant}: FAILED: ${row.error}`);
  } finally {
    trainer?.dispose();
    model?.release();
    row.wallSeconds = (performance.now() - t0) / 1000;
  }
  return row;
}

function markdown(rows: Row[], quick: boolean, adapter: string): string {
  const pct = (v: number | null) => (v === null ? '-' : (100 * v).toFixed(2));
  const num = (v: number | null, d = 2) => (v === null ? '-' : v.toFixed(d));
  const lines = [
    '# Results',
    '',
    `Generated by \`npm run experiments${quick ? ' -- --quick' : ''}\` on ${new Date().toISOString()} (adapter: ${adapter}).`,
    quick ? '\n**Quick run** (512 training / 256 test samples, 1 epoch): a smoke test of the pipeline, not accuracy results.\n' : '',
    '| experiment | model | dataset | quant | seed | epochs | wall (s) | test acc (%) | bits/param | bits/quantized weight | float32 (KiB) | packed (KiB) | params |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|',
    ...rows.map((r) =>
      `| ${r.experiment} | ${r.model} | ${r.dataset} | ${r.quant} | ${r.seed} | ${r.epochs} | ${r.wallSeconds.toFixed(1)} | ${r.error ? 'failed' : pct(r.testAcc)} | ${num(r.bitsPerWeight)} | ${num(r.quantBitsPerWeight, 3)} | ${num(r.floatKiB, 1)} | ${num(r.packedKiB, 1)} | ${r.params ?? '-'} |`
    ),
    '',
    'Commands:',
    '',
    ...rows.map((r) => `- \`${r.command}\``),
    ...(rows.some((r) => r.error) ? ['', 'Failures:', '', ...rows.filter((r) => r.error).map((r) => `- ${r.model} ${r.quant}: ${r.error}`)] : []),
    '',
    'Bits/param: packed size in bits over all parameters (float layers at 32 bits, binary 1, ternary 2, plus one f32 scale per layer).',
    '',
  ];
  return lines.join('\n');
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const gpu = await init();
  const mnistPlans: Plan[] = ['fp', 'twn', 'bwn', 'sq'].map((q) => ({
    experiment: 'LeNet-5 TWN-variant, MNIST', model: 'lenet5-twn', dataset: 'mnist', quant: q, epochs: args.epochsMnist,
    optimizer: 'adam', lr: 1e-3, batchSize: 100, weightDecay: 0,
  }));
  const fashionPlans: Plan[] = [
    { experiment: 'SSPQ20 vs ResNet-20, Fashion-MNIST', model: 'resnet20', dataset: 'fashion-mnist', quant: 'fp', epochs: args.epochsFashion, optimizer: 'sgd', lr: 0.1, batchSize: 128, weightDecay: 1e-4 },
    { experiment: 'SSPQ20 vs ResNet-20, Fashion-MNIST', model: 'sspq20', dataset: 'fashion-mnist', quant: 'fp', display: 'W1A4 (built in)', epochs: args.epochsFashion, optimizer: 'sgd', lr: 0.1, batchSize: 128, weightDecay: 1e-4 },
  ];
  const rows: Row[] = [];
  for (const [name, plans] of [['mnist', mnistPlans], ['fashion-mnist', fashionPlans]] as const) {
    let data: Awaited<ReturnType<typeof loadDataset>>;
    try {
      data = await loadDataset(name);
    } catch (e) {
      for (const p of plans) rows.push({ ...(await failRow(p, args.seed, `dataset: ${(e as Error).message}`)) });
      continue;
    }
    for (const p of plans) {
      console.error(`${p.experiment}: ${p.model} --quant ${p.quant}`);
      rows.push(await runOne(p, args.seed, args.quick, data));
    }
  }
  const json = JSON.stringify({ quick: args.quick, adapter: gpu.adapter.name, date: new Date().toISOString(), rows }, null, 2);
  const enc = new TextEncoder();
  await writeFileAtomic(`${args.out}/results.json`, enc.encode(json + '\n'));
  await writeFileAtomic(`${args.out}/RESULTS.md`, enc.encode(markdown(rows, args.quick, gpu.adapter.name)));
  console.error(`wrote ${args.out}/RESULTS.md and ${args.out}/results.json (${rows.filter((r) => r.error).length} failed rows)`);
  shutdown();
}

function failRow(p: Plan, seed: number, error: string): Row {
  return {
    experiment: p.experiment, model: p.model, dataset: p.dataset, quant: p.quant, command: '', seed, epochs: p.epochs,
    trainSamples: 0, testSamples: 0, wallSeconds: 0, testAcc: null, bitsPerWeight: null, quantBitsPerWeight: null,
    floatKiB: null, packedKiB: null, params: null, error,
  };
}

main().catch((e) => {
  console.error(`experiments: ${(e as Error).message}`);
  process.exit(1);
});
