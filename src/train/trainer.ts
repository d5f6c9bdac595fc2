/**
 * The training loop. Each step runs in a memory scope: forward, loss, backward, optimizer step,
 * zeroGrad, and the loss sum and correct count are added to two small accumulator tensors ON THE
 * GPU. Nothing is read back per step: every `readEvery` steps the accumulators are copied out
 * (asynchronously) and reset, and the copy is awaited one window later, so the CPU never runs more
 * than one window ahead of the GPU and never waits on a step it just encoded. Each readback checks
 * the loss for NaN/Inf and for an explosion relative to its running value, and the labels for values
 * outside [0, classes) (counted on the GPU), and stops with a clear error (the last checkpoint on
 * disk stays as it was). Before every checkpoint the parameters and the optimizer state are checked
 * for NaN/Inf on the GPU (one count per tensor); a broken model is never saved. A lost GPU device
 * (reset, driver update, `device.destroy()`) stops training with a DeviceLostError naming the last
 * checkpoint to resume from.
 * Evaluation runs under noGrad with model.eval(). Checkpoints store (epoch, step, seed), from which
 * the data order and augmentation are derived, so `resume` continues exactly.
 */
import {
  accuracyCount,
  add,
  beginScope,
  checkLabels_,
  copy_,
  DeviceLostError,
  deviceLoss,
  deviceLostPromise,
  endScope,
  engine,
  fill_,
  labelTally,
  labelTallyMessage,
  nonFiniteCounts,
  resetLabelTally,
  watchDeviceLoss,
  mulScalar,
  noGrad,
  softmaxCrossEntropy,
  type Tensor,
  Tensor as TensorClass,
} from '../autograd/index.ts';
import { type Dataset, GpuLoader, type AugmentOptions } from '../data/index.ts';
import type { Module } from '../nn/index.ts';
import { lrFactor, type Schedule } from '../optim/index.ts';
import { type Checkpoint, type CheckpointableOptimizer, readCheckpoint, restoreCheckpoint, saveCheckpoint } from './checkpoint.ts';

/** An optimizer the trainer can drive (the optim package's SGD / Adam / AdamW). */
export interface TrainerOptimizer extends CheckpointableOptimizer {
  step(): void;
  zeroGrad(): void;
  setLrFactor(factor: number): void;
  readonly lr: number;
}

export interface EpochMetrics {
  epoch: number;
  steps: number;
  samples: number;
  trainLoss: number;
  trainAcc: number;
  testLoss?: number;
  testAcc?: number;
  /** training throughput (evaluation excluded) */
  samplesPerSec: number;
  /** wall time of the epoch: training + evaluation, seconds */
  seconds: number;
  trainSeconds: number;
  evalSeconds?: number;
  /** learning rate at the end of the epoch */
  lr: number;
  /** what `afterEpoch` hooks attached (e.g. the per-layer quantization report) */
  extra?: Record<string, unknown>;
}

export type ProgressEvent =
  | { type: 'start'; epoch: number; stepInEpoch: number; step: number; epochs: number; stepsPerEpoch: number }
  | { type: 'epochStart'; epoch: number; stepsPerEpoch: number }
  | {
    type: 'progress';
    epoch: number;
    /** steps done in this epoch / optimizer steps so far */
    stepInEpoch: number;
    step: number;
    stepsPerEpoch: number;
    /** mean loss / accuracy over the steps since the previous progress event */
    loss: number;
    acc: number;
    samplesPerSec: number;
    lr: number;
  }
  | { type: 'eval'; epoch: number; testLoss: number; testAcc: number; seconds: number }
  | { type: 'epoch'; metrics: EpochMetrics }
  | { type: 'checkpoint'; path: string; epoch: number; step: number }
  | { type: 'done'; result: TrainResult };

export interface TrainResult {
  epochs: EpochMetrics[];
  finalTestAcc?: number;
  finalTestLoss?: number;
  /** wall time of this fit() call, seconds */
  seconds: number;
  steps: number;
  /** set when fit() stopped before the last epoch (maxSteps) */
  stoppedAt?: { epoch: number; stepInEpoch: number };
}

export interface TrainerOptions {
  model: Module;
  optimizer: TrainerOptimizer;
  /** learning-rate factor per optimizer step (see optim/schedule.ts); default constant */
  schedule?: Schedule;
  train: Dataset | GpuLoader;
  test?: Dataset | GpuLoader;
  batchSize: number;
  /** batch size for evaluation (default: batchSize) */
  evalBatchSize?: number;
  epochs: number;
  seed?: number;
  /** evaluate every this many epochs (default 1; the last epoch is always evaluated) */
  evalEvery?: number;
  /** read the GPU metric accumulators back every this many steps (default 25) */
  readEvery?: number;
  augment?: AugmentOptions;
  /** drop the last partial training batch (default true) */
  dropLast?: boolean;
  onProgress?: (e: ProgressEvent) => void;
  /** save a checkpoint here after every epoch (atomically) */
  checkpointPath?: string;
  /** recorded in checkpoints */
  modelName?: string;
  modelConfig?: Record<string, unknown>;
  datasetName?: string;
  /** loss of (logits, labels) -> scalar mean; default softmax cross-entropy */
  loss?: (logits: Tensor, labels: Tensor) => Tensor;
  /**
   * awaited after each epoch's evaluation, before the 'epoch' event and the checkpoint (the model is
   * not changing meanwhile); may read the model back and attach results to `metrics.extra`
   */
  afterEpoch?: (metrics: EpochMetrics) => Promise<void> | void;
  /**
   * the training loss diverged when a window's mean loss exceeds this factor times
   * max(its running mean, ln(classes), 1) (default 100); NaN/Inf always is divergence
   */
  divergenceFactor?: number;
  /** the training setup (quantizer spec, hyper-parameters), stored in checkpoints as metadata 'setup' */
  setup?: Record<string, unknown>;
}

/** Thrown when the loss becomes NaN or Inf. */
export class TrainingDivergedError extends Error {
  constructor(message: string, readonly epoch: number, readonly step: number) {
    super(message);
    this.name = 'TrainingDivergedError';
  }
}

interface Window {
  steps: number;
  samples: number;
  firstStep: number;
  lastStep: number;
  /** steps done in the epoch at the end of the window */
  endInEpoch: number;
  values: Promise<[number, number, Int32Array]>;
}

interface EpochTotals {
  lossSum: number;
  correct: number;
  samples: number;
  steps: number;
  trainSeconds: number;
}

const now = () => performance.now();

export class Trainer {
  readonly model: Module;
  readonly optimizer: TrainerOptimizer;
  readonly trainLoader: GpuLoader;
  readonly testLoader: GpuLoader | null;
  readonly epochs: number;
  readonly seed: number;
  readonly history: EpochMetrics[] = [];
  private opts: TrainerOptions;
  private ownLoaders: GpuLoader[] = [];
  private lossAcc: Tensor;
  private correctAcc: Tensor;
  private evalLossAcc: Tensor;
  private evalCorrectAcc: Tensor;
  private labelAcc: Tensor;
  private evalLabelAcc: Tensor;
  /** classes seen in the last training step's logits (for the label check and the divergence floor) */
  private classes = 0;
  /** running mean (EMA over readback windows) of the training loss */
  private runningLoss: number | null = null;
  /** position: the epoch being trained and the next step within it */
  epoch = 0;
  stepInEpoch = 0;
  /** optimizer steps taken */
  step = 0;
  private totals: EpochTotals = { lossSum: 0, correct: 0, samples: 0, steps: 0, trainSeconds: 0 };
  private lastGood: string | null = null;
  private disposed = false;

  constructor(opts: TrainerOptions) {
    this.opts = opts;
    this.model = opts.model;
    this.optimizer = opts.optimizer;
    this.seed = (opts.seed ?? 0) >>> 0;
    if (!Number.isInteger(opts.epochs) || opts.epochs < 1) throw new Error(`webqat: Trainer: epochs must be a positive integer, got ${opts.epochs}`);
    this.epochs = opts.epochs;
    const ev = opts.evalEvery ?? 1;
    if (!Number.isInteger(ev) || ev < 1) throw new Error(`webqat: Trainer: evalEvery must be a positive integer, got ${ev}`);
    const re = opts.readEvery ?? 25;
    if (!Number.isInteger(re) || re < 1) throw new Error(`webqat: Trainer: readEvery must be a positive integer, got ${re}`);
    if (opts.train instanceof GpuLoader) this.trainLoader = opts.train;
    else {
      this.trainLoader = new GpuLoader(opts.train, {
        batchSize: opts.batchSize,
        shuffle: true,
        dropLast: opts.dropLast ?? true,
        seed: this.seed,
        augment: opts.augment,
      });
      this.ownLoaders.push(this.trainLoader);
    }
    if (!opts.test) this.testLoader = null;
    else if (opts.test instanceof GpuLoader) this.testLoader = opts.test;
    else {
      this.testLoader = new GpuLoader(opts.test, { batchSize: opts.evalBatchSize ?? opts.batchSize, shuffle: false, dropLast: false });
      this.ownLoaders.push(this.testLoader);
    }
    const acc = (name: string) => {
      const t = TensorClass.empty([], 'f32', name).keep();
      fill_(t, 0);
      return t;
    };
    this.lossAcc = acc('train loss sum');
    this.correctAcc = acc('train correct');
    this.evalLossAcc = acc('eval loss sum');
    this.evalCorrectAcc = acc('eval correct');
    this.labelAcc = labelTally().keep();
    this.evalLabelAcc = labelTally().keep();
    const df = opts.divergenceFactor ?? 100;
    if (!(df > 1)) throw new Error(`webqat: Trainer: divergenceFactor must be a number > 1, got ${df}`);
    watchDeviceLoss();
  }

  /** The last checkpoint written or resumed from (null if none). */
  get lastCheckpoint(): string | null {
    return this.lastGood;
  }

  /** Throw a DeviceLostError when the GPU device has been lost. */
  private checkDevice(): void {
    const lost = deviceLoss();
    if (!lost) return;
    const resume = this.lastGood
      ? ` Continue from the last checkpoint: --resume ${this.lastGood} (epoch ${this.epoch + 1}).`
      : ' No checkpoint was saved in this run (use --save to keep one each epoch).';
    throw new DeviceLostError(
      `webqat: the GPU device was lost (${lost.reason}${lost.message ? `: ${lost.message}` : ''}) in epoch ${this.epoch + 1} at step ${this.stepInEpoch}; training stopped.` +
        resume,
      lost,
    );
  }

  get stepsPerEpoch(): number {
    return this.trainLoader.numBatches;
  }

  private get readEvery(): number {
    return this.opts.readEvery ?? 25;
  }

  private lossOf(logits: Tensor, labels: Tensor): Tensor {
    return this.opts.loss ? this.opts.loss(logits, labels) : softmaxCrossEntropy(logits, labels, 'mean');
  }

  private setLr(): void {
    if (this.opts.schedule) this.optimizer.setLrFactor(lrFactor(this.opts.schedule, this.step));
  }

  /**
   * One training step on a GPU batch (x f32 [n, ...], y i32 [n]): forward, loss, backward,
   * optimizer step, zeroGrad, all in one memory scope; loss·n and the correct count are added to
   * the GPU accumulators. Reads nothing back. fit() calls this; benchmarks may call it directly.
   */
  trainStep(x: Tensor, y: Tensor, n: number): void {
    this.checkDevice();
    this.setLr();
    beginScope('train step');
    try {
      const logits = this.model.call(x);
      if (logits.rank >= 2) {
        this.classes = logits.shape[logits.rank - 1];
        checkLabels_(y, this.classes, this.labelAcc);
      }
      const loss = this.lossOf(logits, y);
      loss.backward();
      this.optimizer.step();
      this.optimizer.zeroGrad();
      noGrad(() => {
        copy_(this.lossAcc, add(this.lossAcc, mulScalar(loss, n)));
        copy_(this.correctAcc, add(this.correctAcc, accuracyCount(logits, y)));
      });
    } finally {
      endScope();
    }
    engine().gpu.flush();
    this.step++;
  }

  /** Copy the accumulators out (asynchronously) and reset them; returns the pending values. */
  private snapshot(lossAcc: Tensor, correctAcc: Tensor, labels: Tensor): Promise<[number, number, Int32Array]> {
    const l = lossAcc.data();
    const c = correctAcc.data();
    const t = labels.data();
    fill_(lossAcc, 0);
    fill_(correctAcc, 0);
    resetLabelTally(labels);
    return Promise.all([l, c, t]).then(([a, b, tt]) => [a[0], b[0], tt as Int32Array]);
  }

  /** Await a readback; a failure on a lost device becomes a DeviceLostError. */
  private async readback<T>(p: Promise<T>): Promise<T> {
    try {
      // a readback on a lost device may never settle: the loss wins the race
      const v = await Promise.race([p, deviceLostPromise().then(() => p)]);
      this.checkDevice();
      return v;
    } catch (e) {
      // a failed readback (mapAsync's AbortError) may come well before device.lost settles: in a
      // loaded browser the loss crosses from the GPU process later; wait for it up to 3 s (error path only)
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([deviceLostPromise(), new Promise((r) => (timer = setTimeout(r, 3000)))]);
      clearTimeout(timer);
      this.checkDevice();
      throw e;
    }
  }

  /**
   * Count NaN/Inf values in every parameter, buffer and optimizer state on the GPU (one count per
   * tensor, one readback) and throw TrainingDivergedError naming the tensors that hold any.
   */
  async checkFinite(): Promise<void> {
    const named: [string, Tensor][] = [...this.model.stateDict()].filter(([, t]) => t.dtype === 'f32');
    const st = this.optimizer.stateDict();
    try {
      for (const [k, t] of st.tensors) named.push([`optimizer state '${k}'`, t]);
      const counts = nonFiniteCounts(named.map(([, t]) => t));
      let c: ArrayLike<number>;
      try {
        c = await this.readback(counts.data());
      } finally {
        counts.release();
      }
      const bad = named.map(([n], i) => [n, c[i]] as const).filter(([, k]) => k > 0);
      if (bad.length) {
        const total = bad.reduce((s, [, k]) => s + k, 0);
        const list = bad.slice(0, 4).map(([n, k]) => `${n.startsWith('optimizer') ? n : `'${n}'`} (${k})`).join(', ');
        const kept = this.lastGood ? ` The last good checkpoint ${this.lastGood} was kept.` : ' Nothing was saved.';
        throw new TrainingDivergedError(
          `webqat: training diverged: ${total} NaN/Inf value(s) in the model or optimizer state ${this.stepInEpoch === 0 ? `after epoch ${this.epoch}` : `in epoch ${this.epoch + 1} at step ${this.stepInEpoch}`}: ${list}` +
            `${bad.length > 4 ? ` and ${bad.length - 4} more tensor(s)` : ''} (lr ${this.optimizer.lr.toPrecision(3)}); stopped. Try a lower learning rate.${kept}`,
          this.epoch,
          this.step,
        );
      }
    } finally {
      for (const t of st.tensors.values()) t.release('checkFinite');
    }
  }

  private async settle(w: Window, epoch: number, t0: { t: number; samples: number }): Promise<void> {
    const [lossSum, correct, tally] = await this.readback(w.values);
    const labelError = labelTallyMessage(tally, this.classes, 'training');
    if (labelError) throw new Error(`${labelError} (epoch ${epoch + 1}, steps ${w.firstStep + 1} to ${w.lastStep + 1})`);
    const mean = lossSum / w.samples;
    const floor = Math.max(Math.log(Math.max(this.classes, 1)), 1);
    const limit = (this.opts.divergenceFactor ?? 100) * Math.max(this.runningLoss ?? floor, floor);
    if (!Number.isFinite(lossSum) || mean > limit) {
      const kept = this.lastGood ? ` The last good checkpoint ${this.lastGood} was kept.` : ' Nothing was saved.';
      const what = Number.isFinite(lossSum)
        ? `the loss exploded to ${mean.toPrecision(3)} (more than ${this.opts.divergenceFactor ?? 100}x its running value ${(this.runningLoss ?? floor).toPrecision(3)})`
        : `the loss became ${mean}`;
      throw new TrainingDivergedError(
        `webqat: training diverged: ${what} in epoch ${epoch + 1} between steps ${w.firstStep + 1} and ${w.lastStep + 1} ` +
          `(lr ${this.optimizer.lr.toPrecision(3)}); stopped. Try a lower learning rate.${kept}`,
        epoch,
        w.lastStep,
      );
    }
    this.runningLoss = this.runningLoss === null ? mean : 0.9 * this.runningLoss + 0.1 * mean;
    this.totals.lossSum += lossSum;
    this.totals.correct += correct;
    this.totals.samples += w.samples;
    this.totals.steps += w.steps;
    // throughput since this epoch (or this fit() call) started: steadier than per-window rates,
    // whose readbacks settle in bursts
    const dt = (now() - t0.t) / 1000;
    const seen = this.totals.samples - t0.samples;
    this.opts.onProgress?.({
      type: 'progress',
      epoch,
      stepInEpoch: w.endInEpoch,
      step: w.lastStep + 1,
      stepsPerEpoch: this.stepsPerEpoch,
      loss: lossSum / w.samples,
      acc: correct / w.samples,
      samplesPerSec: dt > 0 ? seen / dt : 0,
      lr: this.optimizer.lr,
    });
  }

  /** Evaluate on a loader (default: the test set): mean loss and accuracy. */
  async evaluate(loader: GpuLoader | null = this.testLoader): Promise<{ loss: number; acc: number; seconds: number }> {
    if (!loader) throw new Error('webqat: Trainer.evaluate: no test set');
    const t0 = now();
    const wasTraining = this.model.training;
    this.model.eval();
    try {
      fill_(this.evalLossAcc, 0);
      fill_(this.evalCorrectAcc, 0);
      let classes = 0;
      loader.startEpoch(0);
      for (let k = 0; k < loader.numBatches; k++) {
        const b = loader.batch(k);
        noGrad(() => {
          beginScope('eval step');
          try {
            const logits = this.model.call(b.x);
            classes = logits.shape[logits.rank - 1];
            checkLabels_(b.y, classes, this.evalLabelAcc);
            copy_(this.evalLossAcc, add(this.evalLossAcc, softmaxCrossEntropy(logits, b.y, 'sum')));
            copy_(this.evalCorrectAcc, add(this.evalCorrectAcc, accuracyCount(logits, b.y)));
          } finally {
            endScope();
          }
        });
        engine().gpu.flush();
      }
      this.checkDevice();
      const [l, c, tally] = await this.readback(this.snapshot(this.evalLossAcc, this.evalCorrectAcc, this.evalLabelAcc));
      const labelError = labelTallyMessage(tally, classes, 'test');
      if (labelError) throw new Error(labelError);
      const n = loader.size;
      return { loss: l / n, acc: c / n, seconds: (now() - t0) / 1000 };
    } finally {
      this.model.train(wasTraining);
    }
  }

  /** Restore model, optimizer and position from a checkpoint (path or parsed). */
  async resume(from: string | Checkpoint): Promise<void> {
    const ck = typeof from === 'string' ? await readCheckpoint(from) : from;
    if (ck.meta.seed !== this.seed) {
      throw new Error(`webqat: resume ${ck.source}: it was saved with seed ${ck.meta.seed}, this trainer uses seed ${this.seed}; resume with the same seed`);
    }
    const saved = (ck.meta.extra ?? {}) as { batchSize?: number };
    if (saved.batchSize !== undefined && saved.batchSize !== this.trainLoader.batchSize) {
      throw new Error(
        `webqat: resume ${ck.source}: it was trained with batch size ${saved.batchSize}, this trainer uses ${this.trainLoader.batchSize}; resume with the same batch size`,
      );
    }
    restoreCheckpoint(ck, this.model, this.optimizer);
    this.epoch = ck.meta.epoch;
    this.stepInEpoch = ck.meta.stepInEpoch;
    this.step = ck.meta.step;
    const extra = (ck.meta.extra ?? {}) as { totals?: EpochTotals; history?: EpochMetrics[] };
    this.totals = extra.totals ?? { lossSum: 0, correct: 0, samples: 0, steps: 0, trainSeconds: 0 };
    this.history.splice(0, this.history.length, ...(extra.history ?? []));
    if (this.stepInEpoch > this.stepsPerEpoch) {
      throw new Error(`webqat: resume ${ck.source}: step ${this.stepInEpoch} of epoch ${this.epoch + 1} exceeds its ${this.stepsPerEpoch} steps (different dataset or batch size?)`);
    }
    // the file it came from is the last good checkpoint (parsed bytes without a path: none)
    this.lastGood = typeof from === 'string' ? from : ck.source !== 'checkpoint' ? ck.source : null;
  }

  /** Save the current state (call between steps; fit() does this after each epoch when checkpointPath is set). */
  async save(path: string): Promise<void> {
    await this.checkFinite(); // never save a broken model
    await saveCheckpoint(path, this.model, this.optimizer, {
      model: this.opts.modelName,
      modelConfig: this.opts.modelConfig,
      dataset: this.opts.datasetName,
      seed: this.seed,
      epoch: this.epoch,
      stepInEpoch: this.stepInEpoch,
      step: this.step,
      extra: { totals: this.totals, history: this.history, batchSize: this.trainLoader.batchSize },
      setup: this.opts.setup,
    });
    this.lastGood = path;
    this.opts.onProgress?.({ type: 'checkpoint', path, epoch: this.epoch, step: this.step });
  }

  /**
   * Train from the current position to the last epoch (or until `maxSteps` optimizer steps in
   * total have been taken). Resolves with per-epoch metrics.
   */
  async fit(opts: { maxSteps?: number } = {}): Promise<TrainResult> {
    if (this.disposed) throw new Error('webqat: Trainer was disposed');
    const tStart = now();
    const spe = this.stepsPerEpoch;
    const evalEvery = this.opts.evalEvery ?? 1;
    this.model.train();
    this.opts.onProgress?.({ type: 'start', epoch: this.epoch, stepInEpoch: this.stepInEpoch, step: this.step, epochs: this.epochs, stepsPerEpoch: spe });
    let stoppedAt: TrainResult['stoppedAt'];
    while (this.epoch < this.epochs) {
      const epoch = this.epoch;
      this.opts.onProgress?.({ type: 'epochStart', epoch, stepsPerEpoch: spe });
      const loader = this.trainLoader;
      loader.startEpoch(epoch);
      const tEpoch = now();
      const tWin = { t: tEpoch, samples: this.totals.samples };
      let pending: Window | null = null;
      let win: Omit<Window, 'values'> = { steps: 0, samples: 0, firstStep: this.step, lastStep: this.step, endInEpoch: this.stepInEpoch };
      const closeWindow = async () => {
        if (win.steps === 0) return;
        const w: Window = { ...win, values: this.snapshot(this.lossAcc, this.correctAcc, this.labelAcc) };
        w.values.catch(() => {}); // awaited one window later; a rejection meanwhile is not unhandled
        win = { steps: 0, samples: 0, firstStep: this.step, lastStep: this.step, endInEpoch: this.stepInEpoch };
        if (pending) await this.settle(pending, epoch, tWin);
        pending = w;
      };
      let stop = false;
      while (this.stepInEpoch < spe) {
        if (opts.maxSteps !== undefined && this.step >= opts.maxSteps) {
          stop = true;
          break;
        }
        const b = loader.batch(this.stepInEpoch);
        this.trainStep(b.x, b.y, b.size);
        // kernel shapes seen for the first time are timed on this adapter at a step boundary (src/gpu/tune.ts)
        if (engine().gpu.tuner.pending > 0) await engine().gpu.tuner.tune();
        win.steps++;
        win.samples += b.size;
        win.lastStep = this.step - 1;
        this.stepInEpoch++;
        win.endInEpoch = this.stepInEpoch;
        if (win.steps >= this.readEvery) await closeWindow();
      }
      await closeWindow();
      if (pending) await this.settle(pending, epoch, tWin);
      this.totals.trainSeconds += (now() - tEpoch) / 1000;
      if (stop) {
        stoppedAt = { epoch, stepInEpoch: this.stepInEpoch };
        break;
      }
      const m: EpochMetrics = {
        epoch: epoch + 1,
        steps: this.totals.steps,
        samples: this.totals.samples,
        trainLoss: this.totals.samples ? this.totals.lossSum / this.totals.samples : NaN,
        trainAcc: this.totals.samples ? this.totals.correct / this.totals.samples : NaN,
        samplesPerSec: this.totals.trainSeconds > 0 ? this.totals.samples / this.totals.trainSeconds : 0,
        seconds: this.totals.trainSeconds,
        trainSeconds: this.totals.trainSeconds,
        lr: this.optimizer.lr,
      };
      if (this.testLoader && ((epoch + 1) % evalEvery === 0 || epoch + 1 === this.epochs)) {
        const ev = await this.evaluate();
        m.testLoss = ev.loss;
        m.testAcc = ev.acc;
        m.evalSeconds = ev.seconds;
        m.seconds += ev.seconds;
        this.opts.onProgress?.({ type: 'eval', epoch: epoch + 1, testLoss: ev.loss, testAcc: ev.acc, seconds: ev.seconds });
      }
      if (this.opts.afterEpoch) await this.opts.afterEpoch(m);
      this.history.push(m);
      this.epoch++;
      this.stepInEpoch = 0;
      this.totals = { lossSum: 0, correct: 0, samples: 0, steps: 0, trainSeconds: 0 };
      this.opts.onProgress?.({ type: 'epoch', metrics: m });
      if (this.opts.checkpointPath) await this.save(this.opts.checkpointPath);
    }
    const last = [...this.history].reverse().find((h) => h.testAcc !== undefined);
    const result: TrainResult = {
      epochs: [...this.history],
      finalTestAcc: last?.testAcc,
      finalTestLoss: last?.testLoss,
      seconds: (now() - tStart) / 1000,
      steps: this.step,
      stoppedAt,
    };
    this.opts.onProgress?.({ type: 'done', result });
    return result;
  }

  /** Release the trainer's own GPU memory (its loaders and accumulators; not the model or optimizer). */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const l of this.ownLoaders) l.dispose();
    for (const t of [this.lossAcc, this.correctAcc, this.evalLossAcc, this.evalCorrectAcc, this.labelAcc, this.evalLabelAcc]) t.release('Trainer.dispose()');
  }
}
