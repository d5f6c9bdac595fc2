/**
 * The shape of a PTQ quantizer record (one per quantizer, `src/quant/ptq/quantizers/*.ts`, listed in
 * `index.ts`), the post-training counterpart of the QAT records in `src/quant/methods` (it reuses
 * their `Precision` tags and `ParamRole`s). A record holds everything MXQN needs about one quantizer:
 *
 *  - which `--method` selects it alone (`family`), its hardware cost rank (mxqn keeps the cheapest
 *    family unless a costlier one wins by more than `preferFixedDb`), whether it quantizes weights
 *    and/or activations, and whether it is in the candidate list by default;
 *  - its search grid from a calibrated range (`candidates`), the op it calls (`forward`: the
 *    `ptqQuantize` kernel), its precision tag, its parameters with role tags, how it packs, its
 *    label and the parse of that label (round trip), and its column of the per-layer table.
 *
 * Generic code (mxqn.ts, sqnr.ts, the `ptq` command, the browser app) only dispatches through these
 * records: adding a PTQ quantizer is one file here plus its line in `index.ts` (and its test).
 */
import type { PtqQuantizer, Tensor } from '../../../autograd/index.ts';
import type { ParamRole, Precision } from '../../methods/types.ts';

/** A calibrated range of the tensor a candidate list is built for. */
export interface PtqRange {
  /** max |x| over the calibration data */
  maxAbs: number;
  /** the tensor has negative values (weights, a raw input) */
  signed: boolean;
}

/** One parameter of a PTQ quantizer with its role (as the QAT records tag theirs); not trained. */
export interface PtqParam {
  name: string;
  role: ParamRole;
  value: number;
}

/** How a quantized tensor packs: integer codes times a power-of-two step, or sign + exponent codes. */
export type PtqPacking =
  | { codes: 'int'; bits: number; signed: boolean; lo: number; hi: number; step: number }
  | { codes: 'log'; bits: number; signed: boolean; m: number; top: number; lowest: number };

/** A candidate with its SQNR (dB). */
export interface Scored {
  q: PtqQuantizer;
  db: number;
}

export interface PtqQuantizerRecord<Q extends PtqQuantizer = PtqQuantizer> {
  /** unique id (the key of `ActChoice.best`) */
  id: string;
  /** words that name it (the first is the canonical one; the table title may differ) */
  names: readonly string[];
  /** one line for help texts and docs */
  summary: string;
  /** the ALGORITHMS.md section */
  ref?: string;
  /** the `--method` that uses this family alone ('fixed', 'log') */
  family: string;
  /** hardware cost rank: mxqn keeps the lowest-cost family unless another wins by > preferFixedDb */
  cost: number;
  /** in the candidate list when the caller does not name the list */
  default: boolean;
  /** which tensors it may quantize */
  roles: { readonly weight: boolean; readonly act: boolean };
  /** levels per octave of a log record (selected by `logM` / `--log-m`) */
  m?: number;
  /** does this record own a quantizer value (its kind and variant)? */
  owns(q: PtqQuantizer): q is Q;
  /** the search grid for a calibrated range at `bits` */
  candidates(range: PtqRange, bits: number): Q[];
  /** precision tag (Larq-style; as the QAT records give) */
  precision(q: Q): Precision;
  /** its parameters with role tags ('step', 'clip', ...) */
  params(q: Q): PtqParam[];
  /** the op: Q(x), differentiable by the clipped straight-through estimator */
  forward(x: Tensor, q: Q): Tensor;
  /** how a tensor quantized by it packs */
  pack(q: Q): PtqPacking;
  /** short label (`fixed8u f=3`, `log√2 4 fsr=2`) */
  label(q: Q): string;
  /** the inverse of `label` (throws naming what is wrong) */
  parse(text: string): Q;
  /** its column in the per-layer table: title, width, cell text of the best candidate */
  column: { title: string; width: number; cell(best: Scored | undefined): string };
}

/** Identity helper that keeps a record's quantizer type (`definePtqQuantizer({...})`). */
export function definePtqQuantizer<Q extends PtqQuantizer>(r: PtqQuantizerRecord<Q>): PtqQuantizerRecord<Q> {
  return r;
}

/** SQNR cell text: one decimal, 'exact' at the cap, '-' when absent. */
export function ptqDbText(x: number | undefined): string {
  return x === undefined ? '-' : x >= 200 ? 'exact' : x.toFixed(1);
}
