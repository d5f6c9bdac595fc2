export * from './mlp.ts';
export * from './lenet.ts';
export * from './resnet.ts';
export * from './registry.ts';
export * from './sspq.ts';
