/**
 * `npm run train -- --model lenet5 --dataset mnist --epochs 3` (Deno).
 *
 * Loads a dataset, builds a model from the registry, trains it on the GPU with a progress bar and a
 * summary line per epoch, and optionally writes metrics (--json) and checkpoints (--save, --resume).
 * Exit codes: 0 done, 1 failed (I/O, divergence, GPU), 2 usage error.
 */
import process from 'node:process';
import cliProgress from 'cli-progress';
import {
  Adam,
  AdamW,
  constantLR,
  cosineLR,
  decayGroups,
  init,
  loadDataset,
  multiStepLR,
  type ProgressEvent,
  readCheckpoint,
  type Schedule,
  SGD,
  shutdown,
  subset,
  Trainer,
  type TrainResult,
  TrainingDivergedError,
  DeviceLostError,
  warmup,
  writeFileAtomic,
} from '../../src/index.ts';
import { createModel, listModels } from '../../src/models/index.ts';
import { type LayerReport, qat, type SizeReport, SizeReporter } from '../../src/index.ts';
import { checkWritable, isDirectory, exists } from '../../src/platform/fs.ts';
import { familyDefaults, isSSPQ, parseTrainArgs, sspqBits, type TrainArgs, UsageError } from './args.ts';

function buildSchedule(name: TrainArgs['schedule'], total: number, stepsPerEpoch: number): Schedule {
  switch (name) {
    case 'constant':
      return constantLR();
    case 'cosine':
      return cosineLR(Math.max(1, total));
    case 'warmup-cosine': {
      const w = Math.max(1, Math.min(stepsPerEpoch, Math.floor(total / 10)));
      return warmup(w, cosineLR(Math.max(1, total - w)), 0.1);
    }
    case 'step':
      return multiStepLR([Math.floor(total * 0.5), Math.floor(total * 0.75)], 0.1);
  }
}

const pct = (x: number | undefined) => (x === undefined ? '   -   ' : `${(100 * x).toFixed(2)}%`);
const num = (x: number | undefined, d = 4) => (x === undefined ? '-' : x.toFixed(d));

function writeOut(s: string): void {
  process.stdout.write(s.endsWith('\n') ? s : s + '\n');
}
function writeErr(s: string): void {
  process.stderr.write(s.endsWith('\n') ? s : s + '\n');
}

/** The per-epoch quantization report (--json: epochs[i].extra.quant). */
interface QuantEpochReport {
  /** average bits per quantized weight (packed) */
  bitsPerWeight: number;
  layers: {
    name: string;
    mode: string;
    bits: number;
    weights: number;
    scale: number;
    /** fraction of the layer's quantized weights whose value changed since the previous epoch */
    flipRatio: number | null;
    zeroFraction: number;
    sq?: LayerReport['sq'];
  }[];
}

function quantEpochReport(r: SizeReport): QuantEpochReport {
  return {
    bitsPerWeight: r.quantBitsPerWeight,
    layers: r.layers.map((l) => ({
      name: l.name,
      mode: l.mode,
      bits: l.bits,
      weights: l.n,
      scale: l.scale,
      flipRatio: Number.isNaN(l.flipRatio) ? null : l.flipRatio,
      zeroFraction: l.zeroFraction,
      ...(l.sq ? { sq: l.sq } : {}),
    })),
  };
}

function modeLabel(mode: string, bits: number): string {
  if (mode === 'binary' || mode === 'ternary' || mode === 'float') return mode;
  return mode === 'kbit' ? `${bits}-bit` : `${bits}-bit ${mode}`;
}

function quantLines(q: QuantEpochReport): string[] {
  const w = Math.max(...q.layers.map((l) => l.name.length), 5);
  const lines = q.layers.map((l) =>
    `  ${l.name.padEnd(w)}  ${modeLabel(l.mode, l.bits).padEnd(11)} scale ${l.scale.toPrecision(4).padStart(10)}  ` +
    `flips ${l.flipRatio === null ? '     -' : `${(100 * l.flipRatio).toFixed(2)}%`.padStart(7)}  zeros ${(100 * l.zeroFraction).toFixed(1).padStart(5)}%` +
    (l.sq ? `  (SQ tan β ${l.sq.tanBeta.toPrecision(3)}, t ${l.sq.threshold.toPrecision(3)})` : ''),
  );
  lines.push(`  quantized layers: ${q.layers.length}, ${q.bitsPerWeight.toFixed(3)} bits/weight`);
  return lines;
}

/** Progress bar (when stderr is a terminal and not --quiet) and per-epoch summary lines. */
class Reporter {
  private bar: cliProgress.SingleBar | null = null;
  private readonly useBar: boolean;
  constructor(private readonly epochs: number, quiet: boolean) {
    this.useBar = !quiet && Boolean((process.stderr as { isTTY?: boolean }).isTTY);
  }

  on(e: ProgressEvent): void {
    switch (e.type) {
      case 'epochStart':
        if (this.useBar) {
          this.bar = new cliProgress.SingleBar(
            {
              format: `epoch ${e.epoch + 1}/${this.epochs} [{bar}] {value}/{total} | loss {loss} | acc {acc} | {sps} samples/s | ETA {eta_formatted}`,
              hideCursor: true,
              clearOnComplete: true,
              barsize: 24,
              etaBuffer: 50,
            },
            cliProgress.Presets.shades_classic,
          );
          this.bar.start(e.stepsPerEpoch, 0, { loss: '-', acc: '-', sps: '-' });
        }
        break;
      case 'progress':
        this.bar?.update(e.stepInEpoch, { loss: e.loss.toFixed(4), acc: pct(e.acc), sps: e.samplesPerSec.toFixed(0) });
        break;
      case 'epoch': {
        this.stopBar();
        const m = e.metrics;
        writeOut(
          `epoch ${m.epoch}/${this.epochs}  train loss ${num(m.trainLoss)} acc ${pct(m.trainAcc)}  ` +
            `test loss ${num(m.testLoss)} acc ${pct(m.testAcc)}  ${m.samplesPerSec.toFixed(0)} samples/s  ` +
            `lr ${m.lr.toPrecision(3)}  ${m.seconds.toFixed(1)} s`,
        );
        const q = m.extra?.quant as QuantEpochReport | undefined;
        if (q) for (const line of quantLines(q)) writeOut(line);
        break;
      }
      case 'checkpoint':
        writeOut(`saved checkpoint ${e.path} (epoch ${e.epoch}, step ${e.step})`);
        break;
    }
  }

  stopBar(): void {
    if (this.bar) {
      this.bar.stop();
      this.bar = null;
    }
  }
}

/** The training setup a checkpoint records (metadata 'setup'). */
interface Setup {
  quant: string;
  quantizeFirst: boolean;
  quantizeLast: boolean;
  optimizer: string;
  lr: number;
  momentum: number;
  weightDecay: number;
  schedule: string;
  epochs: number;
  batchSize: number;
}

function setupOf(args: TrainArgs, weightDecay: number): Setup {
  return {
    quant: args.quant.name,
    quantizeFirst: args.quantizeFirst,
    quantizeLast: args.quantizeLast,
    optimizer: args.optimizer,
    lr: args.lr,
    momentum: args.momentum,
    weightDecay,
    schedule: args.schedule,
    epochs: args.epochs,
    batchSize: args.batchSize,
  };
}

/**
 * Resume against a checkpoint's setup. A flag not given takes the checkpoint's value (said for the
 * quantizer); --lr and --epochs that differ are applied (and said); any other flag that differs
 * (--quant, --optimizer, --momentum, --weight-decay, --schedule, --quantize-first/last) is refused
 * with exit 2, since the saved optimizer state and quantizer parameters belong to the saved setup.
 */
function applySetup(args: TrainArgs, argv: string[], s: Setup, path: string, notes: string[]): TrainArgs {
  const flags: [keyof TrainArgs, string, unknown, unknown][] = [
    ['quant', '--quant', args.quant.name, s.quant],
    ['optimizer', '--optimizer', args.optimizer, s.optimizer],
    ['momentum', '--momentum', args.momentum, s.momentum],
    ['weightDecay', '--weight-decay', args.weightDecay, s.weightDecay],
    ['schedule', '--schedule', args.schedule, s.schedule],
    ['quantizeFirst', '--quantize-first', args.quantizeFirst, s.quantizeFirst],
    ['quantizeLast', '--quantize-last', args.quantizeLast, s.quantizeLast],
  ];
  const quantGiven = args.given.has('quant') || args.given.has('sqLambda') || args.given.has('sqGamma') || args.given.has('sqBetaLr');
  const extra: string[] = [];
  for (const [key, flag, mine, saved] of flags) {
    if (saved === undefined) continue;
    const given = key === 'quant' ? quantGiven : args.given.has(key);
    if (given && mine !== saved) {
      throw new UsageError(
        `train: --resume ${path} was trained with ${flag} ${saved}, not ${mine}; the saved optimizer state and quantizer belong to that setup. ` +
          `Resume without ${flag} (or with ${flag} ${saved}), or start a new run`,
      );
    }
    if (!given && mine !== saved) {
      if (typeof saved === 'boolean') {
        if (saved) extra.push(flag);
      } else extra.push(flag, String(saved));
      if (key === 'quant') notes.push(`--quant ${saved} from the checkpoint (it was trained with it)`);
    }
  }
  if (!args.given.has('lr') && s.lr !== undefined && s.lr !== args.lr) extra.push('--lr', String(s.lr));
  if (s.epochs !== undefined && s.epochs !== args.epochs) {
    if (args.given.has('epochs')) notes.push(`--epochs ${args.epochs} applied (the checkpoint was set up for ${s.epochs}; the learning-rate schedule spans the new total)`);
    else extra.push('--epochs', String(s.epochs));
  }
  if (!extra.length) return args;
  const parsed = parseTrainArgs([...argv, '--model', args.model, ...extra], listModels());
  return { ...args, ...parsed, model: args.model, seed: args.seed, batchSize: args.batchSize, given: args.given };
}

/**
 * Resume from a checkpoint without 'setup' metadata: its optimizer state has restored the momentum
 * and weight decay each parameter group was trained with. A given --momentum / --weight-decay that
 * differs is applied to the groups the fresh optimizer set it on (said in `notes`); a flag not given
 * keeps the restored value. Returns the values the run continues with, for the banner and --json.
 */
function resumeOldHyper(
  groups: readonly { options: unknown }[],
  fresh: readonly Record<string, unknown>[],
  args: TrainArgs,
  wd: number,
  path: string,
): { notes: string[]; momentum: number; weightDecay: number } {
  const notes: string[] = [];
  const opts = groups.map((g) => g.options as Record<string, unknown>);
  const out = { notes, momentum: args.momentum, weightDecay: wd };
  const fix = (key: 'momentum' | 'weightDecay', flag: string, given: boolean, mine: number): number => {
    // the value the run's main groups hold: the first group the fresh optimizer gave a nonzero value,
    // else the first group (weight decay is 0 on biases and norms by design)
    const idx = Math.max(0, fresh.findIndex((f) => typeof f[key] === 'number' && f[key] !== 0));
    const saved = opts[idx]?.[key];
    if (typeof saved !== 'number') return mine;
    if (!given) {
      if (saved !== mine) notes.push(`${flag} ${saved} from the checkpoint's optimizer state (it predates stored training setups; ${flag} was not given)`);
      return saved;
    }
    const changed = opts.some((o, i) => typeof o[key] === 'number' && o[key] !== fresh[i][key]);
    if (changed) {
      opts.forEach((o, i) => {
        if (typeof o[key] === 'number') o[key] = fresh[i][key];
      });
      notes.push(`${flag} ${mine} applied (${path} predates stored training setups; its optimizer state had ${flag} ${saved})`);
    }
    return mine;
  };
  if (args.optimizer === 'sgd') out.momentum = fix('momentum', '--momentum', args.given.has('momentum'), args.momentum);
  out.weightDecay = fix('weightDecay', '--weight-decay', args.given.has('weightDecay'), wd);
  return out;
}

async function main(argv: string[]): Promise<number> {
  let args: TrainArgs;
  try {
    args = parseTrainArgs(argv, listModels());
  } catch (e) {
    if (e instanceof UsageError) {
      (e.exitCode === 0 ? writeOut : writeErr)(e.message);
      return e.exitCode;
    }
    throw e;
  }
  const t0 = performance.now();
  const report: Record<string, unknown> = { command: 'train', status: 'running' };
  // writes are chained so an earlier (per-epoch) report can never land after a later one
  let jsonChain: Promise<void> = Promise.resolve();
  let jsonReported = false; // a --json write error is printed once
  const jsonFailed = (err: unknown) => {
    if (!jsonReported) writeErr(`train: cannot write --json: ${(err as Error).message}`);
    jsonReported = true;
  };
  const writeJson = (): Promise<void> => {
    if (!args.json) return jsonChain;
    const path = args.json;
    const bytes = new TextEncoder().encode(JSON.stringify(report, null, 2) + '\n');
    jsonChain = jsonChain.catch(() => {}).then(() => writeFileAtomic(path, bytes));
    return jsonChain;
  };
  let reporter: Reporter | null = null;
  let batchUsed: number | undefined;
  try {
    // pre-flight: every path is checked before any training
    if (args.dataDir !== undefined) {
      if (!(await exists(args.dataDir))) throw new Error(`train: --data-dir ${args.dataDir} does not exist`);
      if (!(await isDirectory(args.dataDir))) throw new Error(`train: --data-dir ${args.dataDir} is a file, not a directory (give the folder that holds the dataset files)`);
    }
    for (const [flag, path] of [['--save', args.save], ['--json', args.json]] as const) {
      if (path === undefined) continue;
      try {
        await checkWritable(path);
      } catch (e) {
        throw new Error(`train: ${flag}: ${(e as Error).message.replace(/^webqat: /, '')}`);
      }
    }
    // a checkpoint fixes the model, its config and the seed, and (when it records it) the training setup
    const ck = args.resume ? await readCheckpoint(args.resume) : null;
    const resumeNotes: string[] = [];
    if (ck) {
      if (ck.meta.model && ck.meta.model !== args.model) {
        if (args.given.has('model')) {
          throw new UsageError(`train: --resume ${args.resume} was saved for model '${ck.meta.model}', not '${args.model}'`);
        }
        args = { ...args, ...parseTrainArgs([...argv, '--model', ck.meta.model], listModels()), given: args.given };
      }
      if (ck.meta.seed !== args.seed) {
        if (args.given.has('seed')) throw new UsageError(`train: --resume ${args.resume} was saved with --seed ${ck.meta.seed}, not ${args.seed}`);
        args.seed = ck.meta.seed;
      }
      const ckBatch = (ck.meta.extra as { batchSize?: number } | undefined)?.batchSize;
      if (ckBatch !== undefined && ckBatch !== args.batchSize) {
        if (args.given.has('batchSize')) throw new UsageError(`train: --resume ${args.resume} was trained with --batch-size ${ckBatch}, not ${args.batchSize}`);
        args.batchSize = ckBatch;
      }
      if (ck.meta.dataset && ck.meta.dataset !== args.dataset) {
        throw new UsageError(`train: --resume ${args.resume} was trained on '${ck.meta.dataset}', not '${args.dataset}'`);
      }
      if (ck.meta.setup) args = applySetup(args, argv, ck.meta.setup as unknown as Setup, args.resume!, resumeNotes);
    }
    const gpu = await init();
    const data = await loadDataset(args.dataset, { dataDir: args.dataDir });
    const train = args.limit ? subset(data.train, args.limit) : data.train;
    const test = args.testLimit ? subset(data.test, args.testLimit) : data.test;
    const [c, h] = train.shape;
    const modelConfig: Record<string, unknown> & { seed: number } = {
      inChannels: c, numClasses: train.numClasses, inputSize: h, seed: args.seed,
      ...(isSSPQ(args.model) ? sspqBits(args.quant) : {}),
    };
    const model = createModel(args.model, modelConfig);
    let wd = args.optimizer === 'adamw' && !args.given.has('weightDecay') ? 0.01 : args.weightDecay;
    const dropLast = train.labels.length >= args.batchSize;
    const stepsPerEpoch = dropLast ? Math.floor(train.labels.length / args.batchSize) : 1;
    const batchNote = dropLast ? '' : ` (--batch-size ${args.batchSize} exceeds the ${train.labels.length} training samples: one batch of ${train.labels.length} per epoch)`;
    const effectiveBatch = dropLast ? args.batchSize : train.labels.length;
    batchUsed = effectiveBatch;
    const schedule = buildSchedule(args.schedule, stepsPerEpoch * args.epochs, stepsPerEpoch);
    // quantization-aware training (src/quant/qat.ts): quantized layers and their trainable quantizer
    // parameters (SSPQ models have theirs built in), role-routed parameter groups, the hooked optimizer and loss
    const q = qat(model, args.quant, {
      lr: args.lr,
      totalSteps: stepsPerEpoch * args.epochs,
      quantizeFirst: args.quantizeFirst,
      quantizeLast: args.quantizeLast,
      groups: (rest) => (wd > 0 ? decayGroups(rest, wd) : [{ params: rest }]),
      optimizer: (groups) =>
        args.optimizer === 'sgd'
          ? new SGD(groups, { lr: args.lr, momentum: args.momentum, weightDecay: 0 })
          : args.optimizer === 'adam'
            ? new Adam(groups, { lr: args.lr, weightDecay: 0 })
            : new AdamW(groups, { lr: args.lr, weightDecay: 0 }),
    });
    const { hooks, optimizer, layers: quantized } = q;
    const baseOptimizer = q.rawOptimizer;
    if (ck && hooks.stageBoundaries.length) throw new UsageError(`train: --resume is not supported with --quant ${args.quant.name} (the frozen incremental masks are not in checkpoints)`);
    const sizes = new SizeReporter();
    const hasQuant = quantized.length > 0;
    const augment = args.augment && (args.dataset === 'cifar10' || args.dataset === 'cifar100') ? { cropPadding: 4, flip: true } : undefined;
    reporter = new Reporter(args.epochs, args.quiet);
    const rep = reporter;
    const setup: Record<string, unknown> = { ...setupOf(args, wd) };
    const trainer = new Trainer({
      model,
      optimizer,
      schedule,
      train,
      test,
      batchSize: args.batchSize,
      evalBatchSize: args.evalBatchSize,
      epochs: args.epochs,
      seed: args.seed,
      evalEvery: args.evalEvery,
      readEvery: args.readEvery,
      augment,
      dropLast,
      checkpointPath: args.save,
      setup, // updated below when a resume changes what the run continues with
      modelName: args.model,
      modelConfig,
      datasetName: args.dataset,
      loss: q.loss,
      afterEpoch: hasQuant
        ? async (m) => {
          m.extra = { ...m.extra, quant: quantEpochReport(await sizes.report(model)) };
        }
        : undefined,
      onProgress: (e) => {
        rep.on(e);
        if (e.type === 'epoch') {
          report.epochs = trainer.history;
          report.wallSeconds = (performance.now() - t0) / 1000;
          void writeJson().catch(jsonFailed);
        }
      },
    });
    if (ck) {
      // the optimizer state restores the checkpoint's learning rates; a given --lr replaces them
      const freshLr = baseOptimizer.groups.map((g) => g.initialLr);
      const freshHyper = baseOptimizer.groups.map((g) => ({ ...(g.options as unknown as Record<string, unknown>) }));
      const savedLr = ck.optimizer?.groups[0]?.initialLr;
      const savedGroups = ck.optimizer?.groups.length;
      if (!ck.meta.setup && savedGroups !== undefined && savedGroups !== baseOptimizer.groups.length && args.given.has('weightDecay')) {
        // weight decay splits the parameters into decayed and not-decayed groups: a checkpoint trained
        // with another split cannot take this --weight-decay (its optimizer state has other groups)
        throw new UsageError(
          `train: --resume ${args.resume} predates stored training setups and its optimizer state has ${savedGroups} parameter group(s), ` +
            `not the ${baseOptimizer.groups.length} that --weight-decay ${args.weightDecay} makes: it was trained with ${wd > 0 ? 'no' : 'a nonzero'} weight decay. ` +
            `Resume without --weight-decay, or start a new run`,
        );
      }
      await trainer.resume(ck);
      if (!ck.meta.setup) {
        // a checkpoint from before training setups were stored: its optimizer state restored the
        // momentum and weight decay it was trained with; a given flag replaces them (and is said),
        // one not given continues with the saved values (and they are what the banner reports)
        const r = resumeOldHyper(baseOptimizer.groups, freshHyper, args, wd, args.resume!);
        resumeNotes.push(...r.notes);
        args.momentum = r.momentum;
        wd = r.weightDecay;
      }
      hooks.step = trainer.step;
      if (args.given.has('lr')) {
        baseOptimizer.groups.forEach((g, i) => (g.initialLr = freshLr[i]));
        if (savedLr !== undefined && savedLr !== baseOptimizer.groups[0].initialLr) {
          resumeNotes.push(`--lr ${args.lr} applied (the checkpoint was trained with lr ${savedLr})`);
        }
      } else if (!ck.meta.setup && savedLr !== undefined) {
        args.lr = savedLr; // an older checkpoint without its setup: report the lr it continues with
      }
      Object.assign(setup, setupOf(args, wd)); // the next checkpoint records what this run trains with
    }
    Object.assign(report, {
      model: args.model,
      dataset: args.dataset,
      parameters: model.numParameters(),
      trainSamples: train.labels.length,
      testSamples: test.labels.length,
      adapter: gpu.adapter.name,
      runtime: gpu.adapter.runtime,
      config: {
        epochs: args.epochs,
        batchSize: effectiveBatch,
        optimizer: args.optimizer,
        lr: args.lr,
        momentum: args.optimizer === 'sgd' ? args.momentum : undefined,
        weightDecay: wd,
        schedule: args.schedule,
        seed: args.seed,
        augment: augment ?? null,
        limit: args.limit ?? null,
        resumedFrom: args.resume ?? null,
        quant: args.quant.name,
        quantizeFirst: args.quantizeFirst,
        quantizeLast: args.quantizeLast,
      },
      quant: { spec: args.quant.name, weight: args.quant.weight, act: args.quant.act, layers: quantized },
    });
    writeOut(
      `webqat train: ${args.model} (${model.numParameters()} parameters) on ${args.dataset} ` +
        `(${train.labels.length} train / ${test.labels.length} test), ${args.optimizer} lr ${args.lr} ${args.schedule}, ` +
        `batch ${effectiveBatch}${batchNote}, ${args.epochs} epochs, seed ${args.seed}; adapter: ${gpu.adapter.name} (${gpu.adapter.runtime})` +
        (ck ? `; resuming at epoch ${ck.meta.epoch + 1}, step ${ck.meta.stepInEpoch}` : ''),
    );
    for (const n of resumeNotes) writeOut(`resume: ${n}`);
    if (args.quant.name !== 'fp' || hasQuant) {
      writeOut(
        `quantization: --quant ${args.quant.name}; ${quantized.length} quantized layer(s)` +
          (hasQuant ? `: ${quantized.join(', ')}` : '') +
          (isSSPQ(args.model) ? '' : `; first/last layer ${args.quantizeFirst ? 'quantized' : 'float'}/${args.quantizeLast ? 'quantized' : 'float'}`),
      );
    }
    await hooks.prepare(); // fixed/log range calibration, incremental stage of the current step
    if (hasQuant) await sizes.report(model); // baseline for the first epoch's flip ratios (fixed/log weights need the calibration first)
    // incremental methods (elq, inq) train in segments: the next portion is frozen at each boundary
    for (const b of hooks.stageBoundaries) {
      if (b <= trainer.step) continue;
      await trainer.fit({ maxSteps: b });
      reporter.stopBar();
      const frozen = await hooks.advance(b);
      if (!args.quiet) writeErr(`step ${b}: froze ${frozen} more weights (${(100 * hooks.fractionAt(b)).toFixed(1)} % quantized)`);
    }
    const result: TrainResult = await trainer.fit();
    reporter.stopBar();
    if (hasQuant) {
      const r = await new SizeReporter().report(model);
      const kib = (b: number) => `${(b / 1024).toFixed(1)} KiB`;
      report.quant = {
        ...(report.quant as object),
        bitsPerWeight: r.quantBitsPerWeight,
        modelBitsPerParam: r.bitsPerWeight,
        quantizedWeights: r.quantizedWeights,
        totalParams: r.totalParams,
        floatBytes: r.floatBytes,
        packedBytes: r.packedBytes,
        compression: r.compression,
        layers: quantEpochReport(r).layers.map(({ flipRatio: _f, ...l }) => l),
      };
      const sq = r.layers.filter((l) => l.sq);
      writeOut(
        `quantized weights: ${r.quantizedWeights} of ${r.totalParams} parameters at ${r.quantBitsPerWeight.toFixed(3)} bits/weight` +
          (sq.length ? ` (SQ: ${sq.filter((l) => l.mode === 'binary').length} binary, ${sq.filter((l) => l.mode === 'ternary').length} ternary layers: ${sq.map((l) => `${l.name} ${l.mode}`).join(', ')})` : ''),
      );
      writeOut(`model size: ${kib(r.floatBytes)} as trained (float32), ${kib(r.packedBytes)} packed (${r.compression.toFixed(2)}x smaller, ${r.bitsPerWeight.toFixed(2)} bits/parameter)`);
    }
    const wall = (performance.now() - t0) / 1000;
    Object.assign(report, {
      status: 'ok',
      epochs: result.epochs,
      finalTestAcc: result.finalTestAcc ?? null,
      finalTestLoss: result.finalTestLoss ?? null,
      trainSeconds: result.seconds,
      wallSeconds: wall,
    });
    try {
      await writeJson();
    } catch (err) {
      jsonFailed(err);
      return 1;
    }
    writeOut(`final test accuracy ${pct(result.finalTestAcc)}  wall time ${wall.toFixed(1)} s`);
    return 0;
  } catch (e) {
    reporter?.stopBar();
    if (e instanceof UsageError) {
      writeErr(e.message);
      return e.exitCode;
    }
    let msg = (e as Error).message ?? String(e);
    if (/maxStorageBufferBindingSize|maxBufferSize|out of memory/i.test(msg) && args.batchSize > 1) {
      // the tensor that did not fit is a batch (or an activation of one): the fix is a smaller batch
      msg = msg.replace(/; split it into smaller tensors$/, '') +
        `\ntrain: a batch of ${batchUsed ?? args.batchSize} samples does not fit this GPU's buffers: use a smaller --batch-size (the default for ${args.model} is ${familyDefaults(args.model).batchSize})`;
    }
    writeErr(msg.startsWith('webqat') || msg.startsWith('train') ? msg : `train: ${msg}`);
    Object.assign(report, { status: e instanceof TrainingDivergedError ? 'diverged' : e instanceof DeviceLostError ? 'device-lost' : 'error', error: msg, wallSeconds: (performance.now() - t0) / 1000 });
    await writeJson().catch(() => {});
    return 1;
  } finally {
    await shutdown();
  }
}

const code = await main(process.argv.slice(2));
process.exit(code);
