/** Post-training quantization (MXQN, ALGORITHMS §4): the quantizer records, SQNR math, calibration, BN folding, the quantized model. */
export * from './quantizers/index.ts';
export * from './sqnr.ts';
export * from './mxqn.ts';
