/** The in-memory dataset type, its validation, and small helpers (subset, synthetic data, statistics). */

export interface Dataset {
  /** short name for messages ('mnist/train', 'cifar10/test', ...) */
  name: string;
  /**
   * NCHW samples. Uint8Array: raw 0..255 pixels, normalised on the GPU as (x / 255 - mean) / std.
   * Float32Array: already scaled values, normalised as (x - mean) / std.
   */
  images: Uint8Array | Float32Array;
  /** one class index per sample */
  labels: Int32Array;
  /** [channels, height, width] of one sample */
  shape: [number, number, number];
  numClasses: number;
  /** per-channel normalisation (length = channels), in the 0..1 pixel scale for Uint8 images */
  mean: number[];
  std: number[];
  /** class names, when known */
  classes?: string[];
}

export function sampleSize(d: Pick<Dataset, 'shape'>): number {
  return d.shape[0] * d.shape[1] * d.shape[2];
}

export function datasetLength(d: Dataset): number {
  return d.labels.length;
}

/** Check a dataset's internal consistency; throws naming the dataset and what does not fit. */
export function validateDataset(d: Dataset): void {
  const per = sampleSize(d);
  const n = d.labels.length;
  if (!(per > 0)) throw new Error(`webqat: dataset ${d.name}: invalid sample shape [${d.shape.join(',')}]`);
  if (d.images.length !== n * per) {
    throw new Error(
      `webqat: dataset ${d.name}: ${d.images.length} image values for ${n} labels of shape [${d.shape.join(',')}] ` +
        `(expected ${n * per})`,
    );
  }
  const c = d.shape[0];
  if (d.mean.length !== c || d.std.length !== c) {
    throw new Error(`webqat: dataset ${d.name}: mean/std need ${c} values (one per channel), got ${d.mean.length}/${d.std.length}`);
  }
  for (let i = 0; i < n; i++) {
    const y = d.labels[i];
    if (y < 0 || y >= d.numClasses) {
      throw new Error(`webqat: dataset ${d.name}: label ${y} of sample ${i} is outside [0, ${d.numClasses})`);
    }
  }
}

/** The first `n` samples (views, no copy). */
export function subset(d: Dataset, n: number): Dataset {
  const total = d.labels.length;
  if (!Number.isInteger(n) || n <= 0) throw new Error(`webqat: subset(${d.name}): n must be a positive integer, got ${n}`);
  if (n >= total) return d;
  const per = sampleSize(d);
  return { ...d, name: `${d.name}[:${n}]`, images: d.images.subarray(0, n * per), labels: d.labels.subarray(0, n) };
}

/** Per-channel mean and standard deviation in the 0..1 scale (Uint8) or the raw scale (Float32). */
export function channelStats(images: Uint8Array | Float32Array, shape: readonly number[]): { mean: number[]; std: number[] } {
  const [c, h, w] = shape;
  const hw = h * w;
  const n = images.length / (c * hw);
  const scale = images instanceof Uint8Array ? 1 / 255 : 1;
  const mean: number[] = [];
  const std: number[] = [];
  for (let ch = 0; ch < c; ch++) {
    let s = 0;
    let s2 = 0;
    for (let i = 0; i < n; i++) {
      const base = (i * c + ch) * hw;
      for (let k = 0; k < hw; k++) {
        const v = images[base + k] * scale;
        s += v;
        s2 += v * v;
      }
    }
    const cnt = n * hw;
    const m = s / cnt;
    mean.push(m);
    std.push(Math.sqrt(Math.max(s2 / cnt - m * m, 1e-12)));
  }
  return { mean, std };
}

/**
 * A small synthetic, learnable classification dataset (for tests and benchmarks): each class is a
 * fixed random prototype image; samples are the prototype plus noise, as uint8 pixels.
 */
export function syntheticDataset(opts: {
  count: number;
  shape: [number, number, number];
  numClasses: number;
  seed?: number;
  noise?: number;
  name?: string;
}): Dataset {
  const { count, shape, numClasses } = opts;
  const rand = mulberry32(opts.seed ?? 1);
  const per = shape[0] * shape[1] * shape[2];
  const protos: Float32Array[] = [];
  for (let k = 0; k < numClasses; k++) {
    const p = new Float32Array(per);
    for (let i = 0; i < per; i++) p[i] = rand() * 255;
    protos.push(p);
  }
  const noise = (opts.noise ?? 0.25) * 255;
  const images = new Uint8Array(count * per);
  const labels = new Int32Array(count);
  for (let s = 0; s < count; s++) {
    const y = Math.floor(rand() * numClasses);
    labels[s] = y;
    const p = protos[y];
    for (let i = 0; i < per; i++) {
      const v = p[i] + (rand() * 2 - 1) * noise;
      images[s * per + i] = v < 0 ? 0 : v > 255 ? 255 : Math.round(v);
    }
  }
  const mean = new Array(shape[0]).fill(0.5);
  const std = new Array(shape[0]).fill(0.3);
  return { name: opts.name ?? 'synthetic', images, labels, shape: [...shape], numClasses, mean, std };
}

/** Mulberry32: a tiny seeded PRNG returning floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A 32-bit integer hash of two integers (used to derive per-epoch seeds). */
export function hash2(a: number, b: number): number {
  let h = (Math.imul(a >>> 0, 0x9e3779b1) ^ Math.imul((b >>> 0) + 0x7f4a7c15, 0x85ebca77)) >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d) >>> 0;
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b) >>> 0;
  h ^= h >>> 16;
  return h >>> 0;
}

/** The sample order of one epoch: a Fisher-Yates shuffle seeded by (seed, epoch), or identity. */
export function epochOrder(n: number, seed: number, epoch: number, shuffle = true): Uint32Array {
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  if (!shuffle) return order;
  const rand = mulberry32(hash2(seed, epoch));
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    const t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  return order;
}
