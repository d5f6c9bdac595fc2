/**
 * CIFAR-10 / CIFAR-100, binary version. CIFAR-10 records are 1 label byte + 3072 pixel bytes
 * (1024 red, 1024 green, 1024 blue, each 32x32 row-major): already CHW. CIFAR-100 records are
 * 1 coarse label byte + 1 fine label byte + 3072 pixel bytes.
 *
 * Files: CIFAR-10 `data_batch_1.bin` .. `data_batch_5.bin` and `test_batch.bin`; CIFAR-100
 * `train.bin` and `test.bin`, in the given directory or its `cifar-10-batches-bin` /
 * `cifar-100-binary` subfolder (how the official archives unpack).
 */
import { exists, joinPath, readFile } from '../platform/fs.ts';
import type { Dataset } from './dataset.ts';
import type { SplitPair } from './mnist.ts';

export const CIFAR_PIXELS = 3 * 32 * 32;
export const CIFAR10_MEAN = [0.4914, 0.4822, 0.4465];
export const CIFAR10_STD = [0.247, 0.2435, 0.2616];
export const CIFAR100_MEAN = [0.5071, 0.4865, 0.4409];
export const CIFAR100_STD = [0.2673, 0.2564, 0.2762];
export const CIFAR10_CLASSES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];

export type CifarKind = 'cifar10' | 'cifar100';

export interface CifarRecords {
  images: Uint8Array;
  labels: Int32Array;
}

/**
 * Parse CIFAR binary records. `kind` picks the record layout; for CIFAR-100 `label` picks the fine
 * (100 classes, default) or coarse (20 superclasses) label. `name` is used in error messages.
 */
export function parseCifar(bytes: Uint8Array, kind: CifarKind, name: string = kind, label: 'fine' | 'coarse' = 'fine'): CifarRecords {
  const labelBytes = kind === 'cifar10' ? 1 : 2;
  const rec = labelBytes + CIFAR_PIXELS;
  if (bytes.length === 0 || bytes.length % rec !== 0) {
    throw new Error(
      `webqat: ${name}: size ${bytes.length} bytes is not a multiple of the ${kind} record size ${rec} ` +
        `(${labelBytes} label byte${labelBytes > 1 ? 's' : ''} + ${CIFAR_PIXELS} pixels)`,
    );
  }
  const n = bytes.length / rec;
  const images = new Uint8Array(n * CIFAR_PIXELS);
  const labels = new Int32Array(n);
  const numClasses = kind === 'cifar10' ? 10 : label === 'fine' ? 100 : 20;
  const labelOff = kind === 'cifar10' ? 0 : label === 'fine' ? 1 : 0;
  for (let i = 0; i < n; i++) {
    const base = i * rec;
    const y = bytes[base + labelOff];
    if (y >= numClasses) {
      throw new Error(`webqat: ${name}: record ${i} has label ${y}, outside [0, ${numClasses}) — is this really ${kind}?`);
    }
    labels[i] = y;
    images.set(bytes.subarray(base + labelBytes, base + rec), i * CIFAR_PIXELS);
  }
  return { images, labels };
}

function concat(parts: CifarRecords[]): CifarRecords {
  const n = parts.reduce((s, p) => s + p.labels.length, 0);
  const images = new Uint8Array(n * CIFAR_PIXELS);
  const labels = new Int32Array(n);
  let off = 0;
  for (const p of parts) {
    images.set(p.images, off * CIFAR_PIXELS);
    labels.set(p.labels, off);
    off += p.labels.length;
  }
  return { images, labels };
}

/** Read and concatenate CIFAR binary files. */
export async function readCifarFiles(paths: string[], kind: CifarKind, label: 'fine' | 'coarse' = 'fine'): Promise<CifarRecords> {
  const parts: CifarRecords[] = [];
  for (const p of paths) parts.push(parseCifar(await readFile(p), kind, p, label));
  return parts.length === 1 ? parts[0] : concat(parts);
}

const LAYOUT: Record<CifarKind, { sub: string; train: string[]; test: string[] }> = {
  cifar10: {
    sub: 'cifar-10-batches-bin',
    train: ['data_batch_1.bin', 'data_batch_2.bin', 'data_batch_3.bin', 'data_batch_4.bin', 'data_batch_5.bin'],
    test: ['test_batch.bin'],
  },
  cifar100: { sub: 'cifar-100-binary', train: ['train.bin'], test: ['test.bin'] },
};

/** Resolve the train/test file lists inside `dir` (or its standard subfolder). */
export async function cifarFiles(dir: string, kind: CifarKind): Promise<{ train: string[]; test: string[] }> {
  const lay = LAYOUT[kind];
  for (const d of [dir, joinPath(dir, lay.sub)]) {
    if (await exists(joinPath(d, lay.test[0]))) {
      const train = lay.train.map((f) => joinPath(d, f));
      const test = lay.test.map((f) => joinPath(d, f));
      for (const f of [...train, ...test]) {
        if (!(await exists(f))) throw new Error(`webqat: ${kind}: file not found: ${f}`);
      }
      return { train, test };
    }
  }
  throw new Error(
    `webqat: ${kind}: no ${lay.test[0]} in ${dir} or ${joinPath(dir, lay.sub)}; ` +
      `download the binary version of ${kind === 'cifar10' ? 'CIFAR-10' : 'CIFAR-100'} and pass its folder with --data-dir`,
  );
}

function toDataset(r: CifarRecords, kind: CifarKind, split: string, label: 'fine' | 'coarse'): Dataset {
  const c10 = kind === 'cifar10';
  return {
    name: `${kind}/${split}`,
    images: r.images,
    labels: r.labels,
    shape: [3, 32, 32],
    numClasses: c10 ? 10 : label === 'fine' ? 100 : 20,
    mean: c10 ? CIFAR10_MEAN : CIFAR100_MEAN,
    std: c10 ? CIFAR10_STD : CIFAR100_STD,
    classes: c10 ? CIFAR10_CLASSES : undefined,
  };
}

/**
 * Load CIFAR-10/100 from a directory, or from explicit file lists (`files.train`, `files.test`).
 */
export async function loadCifar(
  kind: CifarKind,
  opts: { dataDir?: string; files?: { train: string[]; test: string[] }; label?: 'fine' | 'coarse' },
): Promise<SplitPair> {
  const label = opts.label ?? 'fine';
  let files = opts.files;
  if (!files) {
    if (!opts.dataDir) {
      throw new Error(
        `webqat: ${kind}: no data directory given. CIFAR is not shipped with webqat; download the binary version ` +
          'and pass its folder with --data-dir',
      );
    }
    files = await cifarFiles(opts.dataDir, kind);
  }
  const train = await readCifarFiles(files.train, kind, label);
  const test = await readCifarFiles(files.test, kind, label);
  return { train: toDataset(train, kind, 'train', label), test: toDataset(test, kind, 'test', label) };
}
