/** Datasets by name, as the `train` command and the web app ask for them. */
import { loadCifar } from './cifar.ts';
import { loadFashionMnist, loadMnist, type SplitPair } from './mnist.ts';

export const DATASET_NAMES = ['mnist', 'fashion-mnist', 'cifar10', 'cifar100'] as const;
export type DatasetName = (typeof DATASET_NAMES)[number];

export function isDatasetName(s: string): s is DatasetName {
  return (DATASET_NAMES as readonly string[]).includes(s);
}

/** Default augmentation per dataset (crop + flip for CIFAR, none for the digit/fashion sets). */
export function defaultAugment(name: DatasetName): { cropPadding: number; flip: boolean } {
  return name === 'cifar10' || name === 'cifar100' ? { cropPadding: 4, flip: true } : { cropPadding: 0, flip: false };
}

/** Load a dataset's train and test splits by name. */
export async function loadDataset(name: string, opts: { dataDir?: string } = {}): Promise<SplitPair> {
  switch (name) {
    case 'mnist':
      return loadMnist(opts);
    case 'fashion-mnist':
      return loadFashionMnist(opts);
    case 'cifar10':
    case 'cifar100':
      return loadCifar(name, opts);
    default:
      throw new Error(`webqat: unknown dataset '${name}'; accepted: ${DATASET_NAMES.join(', ')}`);
  }
}
