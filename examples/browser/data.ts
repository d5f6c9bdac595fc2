/**
 * Datasets in the browser: MNIST / Fashion-MNIST fetched from the dev server (vite.config.ts serves
 * the files the registries installed), or IDX / CIFAR binary files the user opens with a file input.
 * Parsing is the library's (parseIdxImages, parseIdxLabels, parseCifar); this file only fetches
 * bytes and builds `Dataset` objects.
 */
import {
  CIFAR100_MEAN,
  CIFAR100_STD,
  CIFAR10_CLASSES,
  CIFAR10_MEAN,
  CIFAR10_STD,
  type Dataset,
  FASHION_CLASSES,
  FASHION_MEAN,
  FASHION_STD,
  MNIST_MEAN,
  MNIST_STD,
  parseCifar,
  parseIdxImages,
  parseIdxLabels,
  subset,
} from '../../src/index.ts';

export interface Split {
  train: Dataset;
  test: Dataset;
}

interface IdxInfo {
  numClasses: number;
  mean: number;
  std: number;
  classes?: string[];
}

const IDX_INFO: Record<string, IdxInfo> = {
  mnist: { numClasses: 10, mean: MNIST_MEAN, std: MNIST_STD },
  'fashion-mnist': { numClasses: 10, mean: FASHION_MEAN, std: FASHION_STD, classes: FASHION_CLASSES },
};

const IDX_NAMES = ['train-images-idx3-ubyte', 'train-labels-idx1-ubyte', 't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'] as const;

/** Which served datasets exist (name -> file URLs). */
export async function servedDatasets(): Promise<Record<string, Record<string, string>>> {
  try {
    const r = await fetch('/datasets/index.json');
    if (!r.ok) return {};
    return (await r.json()) as Record<string, Record<string, string>>;
  } catch {
    return {};
  }
}

async function fetchBytes(url: string): Promise<Uint8Array> {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`cannot fetch ${url}: HTTP ${r.status}`);
  return new Uint8Array(await r.arrayBuffer());
}

function idxDataset(name: string, images: Awaited<ReturnType<typeof parseIdxImages>>, labels: Uint8Array, info: IdxInfo): Dataset {
  if (images.count !== labels.length) {
    throw new Error(`webqat: ${name}: ${images.count} images but ${labels.length} labels`);
  }
  const lab = new Int32Array(labels.length);
  for (let i = 0; i < labels.length; i++) {
    if (labels[i] >= info.numClasses) throw new Error(`webqat: ${name}: label ${labels[i]} of sample ${i} is outside [0, ${info.numClasses})`);
    lab[i] = labels[i];
  }
  return {
    name,
    images: images.pixels,
    labels: lab,
    shape: [1, images.rows, images.cols],
    numClasses: info.numClasses,
    mean: [info.mean],
    std: [info.std],
    classes: info.classes,
  };
}

/** A served IDX dataset, only its first `trainLimit` / `testLimit` samples. */
export async function loadServed(name: string, files: Record<string, string>, trainLimit: number, testLimit: number): Promise<Split> {
  const info = IDX_INFO[name];
  if (!info) throw new Error(`unknown served dataset '${name}'`);
  const url = (f: (typeof IDX_NAMES)[number], limit: number) => `${files[f]}${files[f].endsWith('.gz') ? '' : `?limit=${limit}`}`;
  const [ti, tl, vi, vl] = await Promise.all([
    fetchBytes(url('train-images-idx3-ubyte', trainLimit)),
    fetchBytes(url('train-labels-idx1-ubyte', trainLimit)),
    fetchBytes(url('t10k-images-idx3-ubyte', testLimit)),
    fetchBytes(url('t10k-labels-idx1-ubyte', testLimit)),
  ]);
  const train = idxDataset(`${name}/train`, await parseIdxImages(ti, IDX_NAMES[0]), await parseIdxLabels(tl, IDX_NAMES[1]), info);
  const test = idxDataset(`${name}/test`, await parseIdxImages(vi, IDX_NAMES[2]), await parseIdxLabels(vl, IDX_NAMES[3]), info);
  return { train: subset(train, trainLimit), test: subset(test, testLimit) };
}

async function fileBytes(f: File): Promise<Uint8Array> {
  return new Uint8Array(await f.arrayBuffer());
}

/**
 * Local files: the four IDX files of an MNIST-like set (raw or .gz; names as published), or CIFAR
 * binaries (CIFAR-10 data_batch_*.bin + test_batch.bin, CIFAR-100 train.bin + test.bin).
 */
export async function loadLocal(files: File[], trainLimit: number, testLimit: number): Promise<Split & { kind: string }> {
  if (files.length === 0) throw new Error('no files chosen');
  const byName = (re: RegExp) => files.filter((f) => re.test(f.name));
  const idx = IDX_NAMES.map((n) => byName(new RegExp(`^${n.replace(/-/g, '[-.]')}(\\.gz)?$`))[0]);
  if (idx.every(Boolean)) {
    const fashion = files.some((f) => /fashion/i.test(f.name));
    const info = fashion ? IDX_INFO['fashion-mnist'] : IDX_INFO.mnist;
    const [ti, tl, vi, vl] = await Promise.all(idx.map((f) => fileBytes(f!)));
    const train = idxDataset('local/train', await parseIdxImages(ti, idx[0]!.name), await parseIdxLabels(tl, idx[1]!.name), info);
    const test = idxDataset('local/test', await parseIdxImages(vi, idx[2]!.name), await parseIdxLabels(vl, idx[3]!.name), info);
    return { kind: 'local IDX', train: subset(train, trainLimit), test: subset(test, testLimit) };
  }
  const c10train = byName(/^data_batch_\d+\.bin$/).sort((a, b) => a.name.localeCompare(b.name));
  const c10test = byName(/^test_batch\.bin$/);
  const c100train = byName(/^train\.bin$/);
  const c100test = byName(/^test\.bin$/);
  const kind = c10train.length && c10test.length ? 'cifar10' : c100train.length && c100test.length ? 'cifar100' : null;
  if (!kind) {
    throw new Error(
      `cannot tell the dataset from ${files.map((f) => f.name).join(', ')}: choose the four IDX files ` +
        '(train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte; .gz is fine) ' +
        'or CIFAR binaries (data_batch_1..5.bin + test_batch.bin, or train.bin + test.bin)',
    );
  }
  const read = async (fs: File[]) => {
    const parts = [];
    for (const f of fs) parts.push(parseCifar(await fileBytes(f), kind, f.name));
    const n = parts.reduce((s, p) => s + p.labels.length, 0);
    const images = new Uint8Array(n * 3072);
    const labels = new Int32Array(n);
    let off = 0;
    for (const p of parts) {
      images.set(p.images, off * 3072);
      labels.set(p.labels, off);
      off += p.labels.length;
    }
    return { images, labels };
  };
  const c10 = kind === 'cifar10';
  const mk = (r: { images: Uint8Array; labels: Int32Array }, split: string): Dataset => ({
    name: `${kind}/${split}`,
    images: r.images,
    labels: r.labels,
    shape: [3, 32, 32],
    numClasses: c10 ? 10 : 100,
    mean: c10 ? CIFAR10_MEAN : CIFAR100_MEAN,
    std: c10 ? CIFAR10_STD : CIFAR100_STD,
    classes: c10 ? CIFAR10_CLASSES : undefined,
  });
  const train = mk(await read(c10 ? c10train : c100train), 'train');
  const test = mk(await read(c10 ? c10test : c100test), 'test');
  return { kind, train: subset(train, trainLimit), test: subset(test, testLimit) };
}
