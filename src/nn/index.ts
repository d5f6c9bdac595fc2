export * from './parameter.ts';
export * from './module.ts';
export * from './init.ts';
// explicit list: the autograd ops already export Conv2dOptions / BatchNormOptions (op options)
export {
  AvgPool2d,
  BatchNorm1d,
  BatchNorm2d,
  type BatchNormLayerOptions,
  Conv2d,
  type Conv2dLayerOptions,
  Dropout,
  Flatten,
  GlobalAvgPool,
  Identity,
  Linear,
  type LinearOptions,
  MaxPool2d,
  type PoolOptions,
  ReLU,
  Sequential,
} from './layers.ts';
export * from './loss.ts';
