/** All differentiable ops. Importing this module also wires the tape's helpers. */
import { setTapeHelpers } from '../tape.ts';
import { clone, onesLike } from './creation.ts';
import { add } from './elementwise.ts';

export * from './creation.ts';
export * from './elementwise.ts';
export * from './reduce.ts';
export * from './shape.ts';
export * from './views.ts';
export * from './softmax.ts';
export * from './random.ts';

setTapeHelpers((a, b) => add(a, b), onesLike, clone);
export * from './matmul.ts';
export * from './conv.ts';
export * from './pool.ts';
export * from './norm.ts';
export * from './dropout.ts';
export * from './quant.ts';
export * from './shift.ts';
export * from './health.ts';
export * from './ptq.ts';
