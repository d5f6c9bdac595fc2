/**
 * Health checks for training: non-finite values in a set of tensors (parameters, optimizer state)
 * and class labels outside [0, classes), counted on the GPU into small tensors that are read back
 * with the metrics. No autograd.
 */
import * as hk from '../../kernels/health.ts';
import { engine } from '../engine.ts';
import { Tensor } from '../tensor.ts';
import { assignData } from './creation.ts';

/**
 * One u32 count per tensor of `tensors`: how many of its values are NaN or ±Inf. f32 tensors are
 * checked; other dtypes count 0. Read the result (`await counts.data()`) with the metrics.
 */
export function nonFiniteCounts(tensors: readonly Tensor[]): Tensor {
  const counts = Tensor.empty([Math.max(1, tensors.length)], 'u32', 'nonFiniteCounts');
  assignData(counts, new Uint32Array(counts.size));
  const gpu = engine().gpu;
  tensors.forEach((t, k) => {
    if (t.dtype === 'f32') hk.nonFiniteCount(gpu, t.buf, t.size, counts.buf, k);
  });
  return counts;
}

/** Host-side twin of `nonFiniteCounts` for one array: how many values are NaN or ±Inf. */
export function countNonFinite(a: ArrayLike<number>): number {
  let bad = 0;
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i])) bad++;
  return bad;
}

/** A label tally (i32 [3]: count, smallest, largest bad label), reset to "none seen". */
export function resetLabelTally(tally: Tensor): void {
  if (tally.dtype !== 'i32' || tally.size !== 3) throw new Error(`webqat: resetLabelTally: expected i32 [3], got ${tally.describe()}`);
  assignData(tally, new Int32Array([0, 0x7fffffff, -0x80000000]));
}

/** A fresh label tally for `checkLabels_` (keep() it when it outlives a scope). */
export function labelTally(): Tensor {
  const t = Tensor.empty([3], 'i32', 'labelTally');
  resetLabelTally(t);
  return t;
}

/** Add the labels outside [0, classes) of an i32 label tensor to a tally (GPU side, nothing read). */
export function checkLabels_(labels: Tensor, classes: number, tally: Tensor): void {
  if (labels.dtype !== 'i32') throw new Error(`webqat: checkLabels_: labels must be i32, got ${labels.describe()}`);
  hk.labelRangeCheck(engine().gpu, labels.buf, labels.size, classes, tally.buf);
}

/** Error text for a read-back tally, or null when every label was in range. */
export function labelTallyMessage(t: ArrayLike<number>, classes: number, where: string): string | null {
  if (!t[0]) return null;
  const lo = t[1], hi = t[2];
  return (
    `webqat: ${t[0]} ${where} label(s) outside [0, ${classes}): ` + (lo === hi ? `label ${lo}` : `labels from ${lo} to ${hi}`) +
    `; softmaxCrossEntropy counts such rows as 0. Check the dataset's labels or the model's number of classes (${classes})`
  );
}


/**
 * Check labels against `classes` now (reads back): throws naming the first bad label and its
 * index. For host-side checks outside a training loop.
 */
export async function assertLabelsInRange(labels: Tensor, classes: number): Promise<void> {
  if (labels.dtype !== 'i32') throw new Error(`webqat: assertLabelsInRange: labels must be i32, got ${labels.describe()}`);
  const a = (await labels.data()) as Int32Array;
  for (let i = 0; i < a.length; i++) {
    if (a[i] < 0 || a[i] >= classes) throw new Error(`webqat: label ${a[i]} at index ${i} is outside [0, ${classes})`);
  }
}

/** Why the GPU device was lost, once it has been (a GPU reset, a driver update, `device.destroy()`). */
export interface DeviceLossInfo {
  reason: string;
  message: string;
}

const lostDevices = new WeakMap<GPUDevice, DeviceLossInfo>();
const watched = new WeakMap<GPUDevice, Promise<DeviceLossInfo>>();

/** Start watching the current device's `lost` promise (idempotent). */
export function watchDeviceLoss(): void {
  const device = engine().gpu.device;
  if (watched.has(device)) return;
  watched.set(
    device,
    device.lost.then((info) => {
      const i = { reason: String(info?.reason ?? 'unknown'), message: String(info?.message ?? '') };
      lostDevices.set(device, i);
      return i;
    }),
  );
}

/** Resolves when the current device is lost (never, while it works). */
export function deviceLostPromise(): Promise<DeviceLossInfo> {
  watchDeviceLoss();
  return watched.get(engine().gpu.device)!;
}

/** The loss info of the current device, or null while it works (call `watchDeviceLoss()` first). */
export function deviceLoss(): DeviceLossInfo | null {
  return lostDevices.get(engine().gpu.device) ?? null;
}

/** Thrown when work needs a GPU device that has been lost. */
export class DeviceLostError extends Error {
  constructor(message: string, readonly info: DeviceLossInfo) {
    super(message);
    this.name = 'DeviceLostError';
  }
}
