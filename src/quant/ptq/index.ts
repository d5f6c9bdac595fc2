/** Post-training quantization (MXQN, ALGORITHMS §4): SQNR math, calibration, BN folding, the quantized model. */
export * from './sqnr.ts';
export * from './mxqn.ts';
