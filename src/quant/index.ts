/** Quantization: one record per method (methods/), specs with precision tags, quantized layers, SQ, ELQ, INQ, size report, packed export, the QAT assembly. */
export * from './methods/index.ts';
export * from './spec.ts';
export * from './quantizers.ts';
export * from './layers.ts';
export * from './inq.ts';
export * from './elq.ts';
export * from './sq.ts';
export * from './report.ts';
export * from './pack.ts';
export * from './hooks.ts';
export * from './qat.ts';
export * from './export.ts';
export * from './ptq/index.ts';
