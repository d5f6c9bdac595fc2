/** Datasets (IDX, CIFAR binary, synthetic) and the GPU batch loader. */
export * from './dataset.ts';
export * from './idx.ts';
export * from './mnist.ts';
export * from './cifar.ts';
export * from './loader.ts';
export * from './registry.ts';
