/**
 * log⁸√2: logarithmic activations with base 2^(1/8) (8 levels per octave, ALGORITHMS §4.1). Its
 * relative step (2^(1/16) − 1 ≈ 4.4 %) caps the SQNR near 32 dB, against about 26 dB for log⁴√2, at
 * the cost of 3 exponent bits per octave, so it covers only 2^(b−1−3) octaves at b bits (signed).
 * Not in the default candidate list (`--log-m 1,2,4,8` or `PtqOptions.logM` adds it).
 */
import { logQuantizer } from './log.ts';

export const log8thRoot2 = logQuantizer(8, { default: false });
