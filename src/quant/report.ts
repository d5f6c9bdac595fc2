/**
 * Model-size report: per quantized layer its mode, bits, scale and flip ratio (the fraction of
 * weights whose code changed since the previous report; the previous codes are kept on the host as
 * an Int32Array, read back once per report), bits/weight overall, and the model size as trained
 * (every parameter float32) and as it would pack (binary 1 bit, ternary 2 bits in u32 words, k-bit
 * ⌈n·k/32⌉ words, plus one f32 scale per layer, or per output channel where the record packs so;
 * everything else float32). The mode is the layer's precision tag unless its record reads the
 * layer itself (SQ: the binary/ternary decision).
 */
import type { Module } from '../nn/module.ts';
import { type QuantConv2d, type QuantLinear, quantLayers } from './layers.ts';
import { packedBytes } from './pack.ts';

export interface LayerReport {
  name: string;
  /** binary | ternary | kbit | log | fixed | float (SQ layers: their current decision) */
  mode: string;
  /** storage bits per weight as packed */
  bits: number;
  n: number;
  scale: number;
  /** fraction of weights whose code changed since the previous report (NaN on the first) */
  flipRatio: number;
  /** fraction of zero codes (ternary-like modes) */
  zeroFraction: number;
  packedBytes: number;
  /** SQ layers: the trained well position α, angle β, tan β, zero-basin threshold t(β) and zero fraction */
  sq?: { alpha: number; beta: number; tanBeta: number; threshold: number; zeroFraction: number };
}

export interface SizeReport {
  layers: LayerReport[];
  totalParams: number;
  quantizedWeights: number;
  /** average bits per quantized weight (packed) */
  quantBitsPerWeight: number;
  /** average bits per parameter over the whole model (packed) */
  bitsPerWeight: number;
  /** bytes as trained (float32) */
  floatBytes: number;
  /** bytes as packed */
  packedBytes: number;
  compression: number;
}

type QLayer = QuantConv2d | QuantLinear;

/** Scales a layer packs with: one per layer, or one per output channel when its record says so. */
export function packScales(st: QLayer['wq']): number {
  return st.part.pack?.scales === 'channel' ? st.channels : 1;
}

/** Integer codes of quantized values for flip counting (sign·level). */
export function codesOf(values: ArrayLike<number>, mode: string): { codes: Int32Array; scale: number } {
  const n = values.length;
  const codes = new Int32Array(n);
  let maxAbs = 0;
  let minNz = Infinity;
  for (let i = 0; i < n; i++) {
    const a = Math.abs(values[i]);
    maxAbs = Math.max(maxAbs, a);
    if (a > 0) minNz = Math.min(minNz, a);
  }
  if (mode === 'binary' || mode === 'ternary') {
    for (let i = 0; i < n; i++) codes[i] = values[i] > 0 ? 1 : values[i] < 0 ? -1 : 0;
    return { codes, scale: maxAbs };
  }
  if (mode === 'log') {
    for (let i = 0; i < n; i++) codes[i] = values[i] === 0 ? 0 : Math.sign(values[i]) * (1000 + Math.round(Math.log2(Math.abs(values[i]))));
    return { codes, scale: maxAbs };
  }
  const unit = Number.isFinite(minNz) ? minNz : 1;
  for (let i = 0; i < n; i++) codes[i] = Math.round(values[i] / unit);
  return { codes, scale: unit };
}

/** Keeps the previous codes per layer between reports. */
export class SizeReporter {
  private prev = new Map<string, Int32Array>();

  async report(model: Module): Promise<SizeReport> {
    const layers: LayerReport[] = [];
    const qset = new Set<unknown>();
    let qWeights = 0;
    let qBytes = 0;
    for (const [name, layer] of quantLayers(model)) {
      const r = await this.layerReport(name, layer);
      layers.push(r);
      qset.add(layer.weight);
      // quantizer state the packed scale replaces (SQ α/β, TTQ W_p/W_n, LSQ step) is not stored packed
      for (const q of Object.values(layer.wq.qparams)) qset.add(q);
      qWeights += r.n;
      qBytes += r.packedBytes;
    }
    let total = 0;
    let floatRest = 0;
    for (const p of model.parameters()) {
      total += p.size;
      if (!qset.has(p)) floatRest += p.size;
    }
    const floatBytes = total * 4;
    const packed = qBytes + floatRest * 4;
    return {
      layers,
      totalParams: total,
      quantizedWeights: qWeights,
      quantBitsPerWeight: qWeights ? layers.reduce((s, l) => s + l.bits * l.n, 0) / qWeights : 32,
      bitsPerWeight: total ? (packed * 8) / total : 32,
      floatBytes,
      packedBytes: packed,
      compression: packed ? floatBytes / packed : 1,
    };
  }

  private async layerReport(name: string, layer: QLayer): Promise<LayerReport> {
    const st = layer.wq;
    const q = st.quantized(false);
    const values = (await q.data()) as Float32Array;
    let mode: string = st.precision.kind;
    let bits = st.precision.bits;
    let extra: Record<string, unknown> = {};
    if (st.part.read) {
      // the record reads the layer (SQ: its binary/ternary decision)
      const r = await st.part.read(st.spec, st, values);
      mode = r.mode;
      bits = r.bits;
      extra = r.extra ?? {};
    }
    if (mode === 'kbit' || mode === 'fixed' || mode === 'log') {
      // k-bit codes
    } else if (mode !== 'binary' && mode !== 'ternary') {
      mode = 'float';
      bits = 32;
    }
    const { codes, scale } = codesOf(values, mode);
    let zeros = 0;
    for (const c of codes) if (c === 0) zeros++;
    const prev = this.prev.get(name);
    let flips = NaN;
    if (prev && prev.length === codes.length) {
      let f = 0;
      for (let i = 0; i < codes.length; i++) if (codes[i] !== prev[i]) f++;
      flips = f / codes.length;
    }
    this.prev.set(name, codes);
    const n = values.length;
    const scales = packScales(st);
    const bytes = mode === 'binary' || mode === 'ternary' ? packedBytes(n, mode, scales) : mode === 'float' ? n * 4 : Math.ceil((n * bits) / 32) * 4 + 4;
    return { name, mode, bits, n, scale, flipRatio: flips, zeroFraction: n ? zeros / n : 0, packedBytes: bytes, ...extra };
  }
}

/** A one-report convenience (no flip history). */
export function sizeReport(model: Module): Promise<SizeReport> {
  return new SizeReporter().report(model);
}

/** Plain-text table of a report. */
export function formatReport(r: SizeReport): string {
  const lines = ['layer                          mode     bits  weights     scale     flips   zeros'];
  for (const l of r.layers) {
    lines.push(
      `${l.name.padEnd(30)} ${l.mode.padEnd(8)} ${String(l.bits).padStart(4)} ${String(l.n).padStart(8)} ${l.scale.toExponential(2).padStart(9)} ${Number.isNaN(l.flipRatio) ? '      -' : (100 * l.flipRatio).toFixed(2).padStart(6) + '%'} ${(100 * l.zeroFraction).toFixed(1).padStart(6)}%`,
    );
  }
  lines.push(
    `params ${r.totalParams}, quantized weights ${r.quantizedWeights} at ${r.quantBitsPerWeight.toFixed(3)} bits/weight; ` +
      `model ${r.bitsPerWeight.toFixed(2)} bits/param; float32 ${(r.floatBytes / 1024).toFixed(1)} KiB -> packed ${(r.packedBytes / 1024).toFixed(1)} KiB (${r.compression.toFixed(2)}x)`,
  );
  return lines.join('\n');
}
