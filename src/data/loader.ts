/**
 * The GPU data loader. The dataset's raw samples (u8, or f32) and labels are uploaded once, in
 * chunks of whole samples that each fit one storage binding. Per epoch only the sample order (a
 * seeded shuffle of (seed, epoch)) is uploaded. Each batch is assembled on the GPU by the augment
 * kernel (gather, random crop with padding, horizontal flip, normalisation) into the same two batch
 * tensors every step, so a steady training loop uploads nothing per step and allocates nothing new.
 */
import { engine, Tensor } from '../autograd/index.ts';
import { augmentBatch, type AugmentParams } from '../kernels/augment.ts';
import { type Dataset, epochOrder, hash2, sampleSize, validateDataset } from './dataset.ts';

export interface AugmentOptions {
  /** random crop: shift by up to `pad` pixels each way with zero fill (0 = off) */
  cropPadding?: number;
  /** random horizontal flip */
  flip?: boolean;
}

export interface LoaderOptions {
  batchSize: number;
  /** reshuffle every epoch from (seed, epoch) (default true) */
  shuffle?: boolean;
  /** skip the last partial batch (default false) */
  dropLast?: boolean;
  seed?: number;
  augment?: AugmentOptions;
  /** largest chunk in bytes (default: what one storage binding allows); for tests */
  maxChunkBytes?: number;
}

export interface Batch {
  /** f32 [size, C, H, W], normalised (a reused tensor: valid until the next batch) */
  x: Tensor;
  /** i32 [size] */
  y: Tensor;
  size: number;
  /** index of the batch within its epoch */
  index: number;
}

interface Chunk {
  data: Tensor;
  start: number;
  count: number;
}

/**
 * Assemble one batch on the GPU (the data layer's one entry into the augment kernel): for each
 * resident chunk, write the batch's samples that chunk holds.
 */
export function assembleBatch(
  chunks: readonly { data: Tensor; start: number; count: number }[],
  order: Tensor,
  labels: Tensor,
  x: Tensor,
  y: Tensor,
  p: Omit<AugmentParams, 'chunkStart' | 'chunkCount' | 'batch' | 'channels' | 'height' | 'width'>,
): void {
  const [batch, channels, height, width] = x.shape;
  const gpu = engine().gpu;
  for (const c of chunks) {
    augmentBatch(gpu, c.data.buf, order.buf, labels.buf, x.buf, y.buf, {
      ...p,
      batch,
      channels,
      height,
      width,
      chunkStart: c.start,
      chunkCount: c.count,
    });
  }
}

export class GpuLoader {
  readonly dataset: Dataset;
  readonly batchSize: number;
  readonly shuffle: boolean;
  readonly dropLast: boolean;
  readonly seed: number;
  readonly cropPadding: number;
  readonly flip: boolean;
  private chunks: Chunk[] = [];
  private labels: Tensor;
  private order: Tensor;
  private batchTensors = new Map<number, { x: Tensor; y: Tensor }>();
  private epoch = -1;
  private disposed = false;

  constructor(dataset: Dataset, opts: LoaderOptions) {
    validateDataset(dataset);
    const n = dataset.labels.length;
    if (!Number.isInteger(opts.batchSize) || opts.batchSize <= 0) {
      throw new Error(`webqat: GpuLoader(${dataset.name}): batchSize must be a positive integer, got ${opts.batchSize}`);
    }
    if (n === 0) throw new Error(`webqat: GpuLoader(${dataset.name}): the dataset is empty`);
    this.dataset = dataset;
    this.batchSize = opts.batchSize;
    this.shuffle = opts.shuffle ?? true;
    this.dropLast = opts.dropLast ?? false;
    this.seed = (opts.seed ?? 0) >>> 0;
    this.cropPadding = opts.augment?.cropPadding ?? 0;
    this.flip = opts.augment?.flip ?? false;
    if (this.dropLast && n < this.batchSize) {
      throw new Error(`webqat: GpuLoader(${dataset.name}): ${n} samples make no full batch of ${this.batchSize} (dropLast)`);
    }
    const gpu = engine().gpu;
    const per = sampleSize(dataset);
    const u8 = dataset.images instanceof Uint8Array;
    const bytesPer = per * (u8 ? 1 : 4);
    // a pooled buffer is rounded up to its size class (<= 25 % more), and the class must fit a binding
    const bindLimit = gpu.maxBindingSize;
    const maxBytes = Math.min(opts.maxChunkBytes ?? Infinity, Math.floor(bindLimit * 0.79));
    const perChunk = Math.floor(maxBytes / bytesPer);
    if (perChunk < 1) throw new Error(`webqat: GpuLoader(${dataset.name}): one sample (${bytesPer} bytes) exceeds the chunk limit ${maxBytes}`);
    for (let start = 0; start < n; start += perChunk) {
      const count = Math.min(perChunk, n - start);
      let data: Tensor;
      if (u8) {
        const bytes = (dataset.images as Uint8Array).subarray(start * per, (start + count) * per);
        data = Tensor.empty([Math.ceil(bytes.length / 4)], 'u32', `${dataset.name} pixels`).keep();
        gpu.write(data.buf, bytes);
      } else {
        const vals = (dataset.images as Float32Array).subarray(start * per, (start + count) * per);
        data = Tensor.empty([vals.length], 'f32', `${dataset.name} values`).keep();
        gpu.write(data.buf, vals);
      }
      this.chunks.push({ data, start, count });
    }
    this.labels = Tensor.empty([n], 'i32', `${dataset.name} labels`).keep();
    gpu.write(this.labels.buf, dataset.labels);
    this.order = Tensor.empty([n], 'u32', `${dataset.name} order`).keep();
  }

  get length(): number {
    return this.numBatches;
  }

  /** Number of samples in the dataset. */
  get size(): number {
    return this.dataset.labels.length;
  }

  /** Batches per epoch. */
  get numBatches(): number {
    const n = this.size;
    return this.dropLast ? Math.floor(n / this.batchSize) : Math.ceil(n / this.batchSize);
  }

  /** Samples seen in one epoch. */
  get samplesPerEpoch(): number {
    return this.dropLast ? this.numBatches * this.batchSize : this.size;
  }

  /** Number of resident chunks (1 unless the dataset exceeds one storage binding). */
  get chunkCount(): number {
    return this.chunks.length;
  }

  /** Upload the sample order of `epoch` (seeded by (seed, epoch); identity without shuffling). */
  startEpoch(epoch: number): void {
    this.check();
    if (epoch === this.epoch) return;
    if (this.shuffle || this.epoch < 0) {
      engine().gpu.write(this.order.buf, epochOrder(this.size, this.seed, epoch, this.shuffle));
    }
    this.epoch = epoch;
  }

  /** The 32-bit seed of the augmentation draws of an epoch (derived from (seed, epoch)). */
  augmentSeed(epoch: number): number {
    return hash2(this.seed ^ 0x5bd1e995, epoch);
  }

  /** The host-side sample order of an epoch (what `startEpoch` uploads). */
  orderOf(epoch: number): Uint32Array {
    return epochOrder(this.size, this.seed, epoch, this.shuffle);
  }

  private tensorsFor(size: number): { x: Tensor; y: Tensor } {
    let t = this.batchTensors.get(size);
    if (!t) {
      const [c, h, w] = this.dataset.shape;
      t = {
        x: Tensor.empty([size, c, h, w], 'f32', `${this.dataset.name} batch`).keep(),
        y: Tensor.empty([size], 'i32', `${this.dataset.name} batch labels`).keep(),
      };
      this.batchTensors.set(size, t);
    }
    return t;
  }

  /** Assemble batch `index` of the current epoch (call `startEpoch` first) into the reused tensors. */
  batch(index: number): Batch {
    this.check();
    if (this.epoch < 0) throw new Error(`webqat: GpuLoader(${this.dataset.name}): call startEpoch(epoch) before batch()`);
    if (!Number.isInteger(index) || index < 0 || index >= this.numBatches) {
      throw new Error(`webqat: GpuLoader(${this.dataset.name}): batch ${index} is outside [0, ${this.numBatches})`);
    }
    const start = index * this.batchSize;
    const size = Math.min(this.batchSize, this.size - start);
    const { x, y } = this.tensorsFor(size);
    assembleBatch(this.chunks, this.order, this.labels, x, y, {
      start,
      pad: this.cropPadding,
      flip: this.flip,
      seed: this.augmentSeed(this.epoch),
      mean: this.dataset.mean,
      std: this.dataset.std,
      source: this.dataset.images instanceof Uint8Array ? 'u8' : 'f32',
    });
    return { x, y, size, index };
  }

  /** Iterate the batches of `epoch`, from batch `from` on. */
  *epochBatches(epoch: number, from = 0): Generator<Batch> {
    this.startEpoch(epoch);
    for (let k = from; k < this.numBatches; k++) yield this.batch(k);
  }

  private check(): void {
    if (this.disposed) throw new Error(`webqat: GpuLoader(${this.dataset.name}) was disposed`);
  }

  /** Release every GPU buffer the loader holds. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const c of this.chunks) c.data.release('GpuLoader.dispose()');
    this.labels.release('GpuLoader.dispose()');
    this.order.release('GpuLoader.dispose()');
    for (const t of this.batchTensors.values()) {
      t.x.release('GpuLoader.dispose()');
      t.y.release('GpuLoader.dispose()');
    }
    this.chunks = [];
    this.batchTensors.clear();
  }
}
