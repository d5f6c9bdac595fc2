export { BindingSizeError, Tensor, shapeSize, shapeStr } from './tensor.ts';
export type { DType, Shape, Node, BackwardFn } from './tensor.ts';
export { engine, hasEngine, noGrad, tidy, beginScope, endScope, isGradEnabled, setEngineGpu } from './engine.ts';
export { backward, record } from './tape.ts';
export * from './ops/index.ts';
