/**
 * Packed export: a trained (quantized) model → a packed model file (format of src/infer/format.ts).
 * Binary and ternary layers (BWN, TWN, DoReFa 1-bit, ELQ, and SQ layers by their decision) are
 * stored as u32 words plus their scale (one per layer, or per output channel where the method's
 * record packs so; its label names the quantizer in the file); fixed-point and log layers
 * (`fixed:B`, `log:B`) as B-bit codes in u32 words plus one power-of-two scale (2^−f, 2^(FSR−1):
 * the record's `pack.range`), in a version-2 file; batch norms folded with their running statistics (weight =
 * γ/√(var + eps), bias = β − mean·weight); every other parameter as F32. Quantizer state that the
 * scale replaces (SQ α/β, TTQ W_p/W_n, LSQ step) is not stored: the size report counts it the same way,
 * so the file's tensor data is exactly the report's `packedBytes`.
 */
import { BatchNorm2d, Conv2d, Linear } from '../nn/layers.ts';
import type { Module } from '../nn/module.ts';
import { type LayerKind, LAYOUTS, PACKED_FORMAT, PACKED_VERSION, type PackedLayerMeta, toHalf, WEBQAT_VERSION } from '../infer/format.ts';
import { encodeSafetensors, type SafeTensor, safeTensorOf } from '../train/safetensors.ts';
import { quantLayers } from './layers.ts';
import { fixedCodes, logCodes, packBits, packWeights } from './pack.ts';
import { packScales, type SizeReport, SizeReporter } from './report.ts';

export interface ExportInfo {
  /** model registry name ('lenet5', ...) and the options it was built with */
  model: string;
  modelConfig: Record<string, unknown>;
  /** the --quant spec it was trained with */
  quant: string;
  /** [C, H, W] of one sample */
  inputShape: [number, number, number];
  numClasses: number;
  /** per-channel normalisation the model was trained with (0..1 pixel scale) */
  normalization?: { mean: number[]; std: number[] };
  /** store float tensors (float layers, biases, batch-norm folds, shifts; not the scales) as F16 (default false: F32) */
  float16?: boolean;
}

export interface ExportResult {
  bytes: Uint8Array;
  /** bytes of the tensor data section */
  tensorBytes: number;
  /** the size report of the model as exported (its packedBytes equals tensorBytes, unless float16) */
  report: SizeReport;
  layers: { name: string; kind: string; quantizer: string; bytes: number }[];
}

/** Build the packed model file of a model (reads its weights from the GPU). */
export async function exportPacked(model: Module, info: ExportInfo): Promise<ExportResult> {
  const report = await new SizeReporter().report(model);
  const modes = new Map(report.layers.map((l) => [l.name, l]));
  const folded = new Set<unknown>();
  const packed = new Map<string, { words: Uint32Array; scales: Float32Array; kind: Exclude<LayerKind, 'float'>; bits?: number; shape: number[]; quantizer: string }>();
  for (const [name, layer] of quantLayers(model)) {
    const st = layer.wq;
    for (const p of Object.values(st.qparams)) folded.add(p);
    const r = modes.get(name)!;
    const quantizer = st.part.label ? st.part.label(st.spec) : st.spec.method;
    if (r.mode === 'fixed' || r.mode === 'log') {
      const range = st.part.pack?.range;
      if (!range) {
        throw new Error(`webqat: export: layer '${name}' is ${r.mode} ${r.bits}-bit, but its quantizer (${quantizer}) does not pack as ${r.mode} codes (its record gives no pack.range); fixed:B and log:B layers pack`);
      }
      const values = (await st.quantized(false).data()) as Float32Array;
      let c;
      try {
        c = r.mode === 'fixed' ? fixedCodes(values, r.bits, range(st.spec, st)) : logCodes(values, r.bits, range(st.spec, st));
      } catch (e) {
        throw new Error(`webqat: export: layer '${name}' (${quantizer}) cannot be packed as ${r.bits}-bit ${r.mode}: ${(e as Error).message}`);
      }
      packed.set(`${name}.weight`, { words: packBits(c.codes, r.bits), scales: new Float32Array([c.scale]), kind: r.mode, bits: r.bits, shape: [...layer.weight.shape], quantizer });
      continue;
    }
    if (r.mode !== 'binary' && r.mode !== 'ternary') {
      throw new Error(
        `webqat: export: layer '${name}' is ${r.mode} ${r.bits}-bit (--quant ${info.quant}); the packed format stores binary, ternary, fixed-point and log layers ` +
          `(bwn, twn, sq, elq, dorefa:w1..., fixed:B, log:B), k-bit (DoReFa, LSQ, PACT-style) weights are not supported yet`,
      );
    }
    const values = (await st.quantized(false).data()) as Float32Array;
    let p;
    try {
      p = packWeights(values, layer.weight.shape, r.mode, { perChannel: packScales(st) > 1 });
    } catch (e) {
      const why = st.part.pack?.hint ? ` (${st.part.pack.hint})` : '';
      throw new Error(`webqat: export: layer '${name}' (${quantizer}) cannot be packed as ${r.mode}${why}: ${(e as Error).message}`);
    }
    packed.set(`${name}.weight`, { words: p.words, scales: p.scales, kind: r.mode, shape: [...layer.weight.shape], quantizer });
  }
  const layersMeta: Record<string, PackedLayerMeta> = {};
  for (const [name, m] of model.namedModules()) {
    if (!(m instanceof Conv2d) && !(m instanceof Linear)) continue;
    const p = packed.get(`${name}.weight`);
    layersMeta[name] = p
      ? { kind: p.kind, quantizer: p.quantizer, shape: p.shape, layout: LAYOUTS[p.kind], scales: p.scales.length, ...(p.bits ? { bits: p.bits } : {}) }
      : { kind: 'float', quantizer: 'none', shape: [...m.weight.shape], layout: LAYOUTS.float, scales: 0 };
  }
  const tensors = new Map<string, SafeTensor>();
  const sizes = new Map<string, number>();
  const add = (layer: string, key: string, t: SafeTensor) => {
    if (info.float16 && t.dtype === 'F32' && !key.endsWith('_scale')) {
      const f = new Float32Array(t.data.slice().buffer);
      const h = Uint16Array.from(f, toHalf);
      t = { dtype: 'F16', shape: t.shape, data: new Uint8Array(h.buffer) };
    }
    tensors.set(key, t);
    sizes.set(layer, (sizes.get(layer) ?? 0) + t.data.length);
  };
  // batch norms are stored folded with their running statistics: weight = γ/√(var + eps),
  // bias = β − mean·γ/√(var + eps) (as many floats as γ and β, which the size report counts)
  const bns = new Map<string, BatchNorm2d>();
  for (const [name, m] of model.namedModules()) if (m instanceof BatchNorm2d) bns.set(name, m);
  const bnFolds = new Map<string, { weight: Float32Array; bias: Float32Array }>();
  for (const [name, bn] of bns) {
    const [g, b, mu, v] = (await Promise.all([bn.weight.data(), bn.bias.data(), bn.runningMean.data(), bn.runningVar.data()])) as Float32Array[];
    const weight = Float32Array.from(g, (x, c) => x / Math.sqrt(v[c] + bn.eps));
    bnFolds.set(name, { weight, bias: Float32Array.from(b, (x, c) => x - mu[c] * weight[c]) });
  }
  for (const [name, param] of model.namedParameters()) {
    if (folded.has(param)) continue;
    const layer = name.slice(0, name.lastIndexOf('.'));
    const p = packed.get(name);
    const bn = bnFolds.get(layer);
    if (p) {
      add(layer, name, safeTensorOf(p.words, [p.words.length]));
      add(layer, `${name}_scale`, safeTensorOf(p.scales, [p.scales.length]));
    } else if (bn) {
      add(layer, name, safeTensorOf(name.endsWith('.weight') ? bn.weight : bn.bias, param.shape));
    } else {
      add(layer, name, safeTensorOf((await param.data()) as Float32Array, param.shape));
    }
  }
  for (const [name, buf] of model.namedBuffers()) {
    if (bns.has(name.slice(0, name.lastIndexOf('.')))) continue; // folded into the batch norm's weight and bias
    const d = await buf.data();
    if (!(d instanceof Float32Array)) throw new Error(`webqat: export: buffer '${name}' is ${buf.dtype}; the packed format stores f32 buffers only`);
    add(name.slice(0, name.lastIndexOf('.')), name, safeTensorOf(d, buf.shape));
  }
  const metadata: Record<string, string> = {
    format: PACKED_FORMAT,
    // version 2 only where it matters, so files without fixed/log layers still load in readers of version 1
    version: String([...packed.values()].some((p) => p.kind === 'fixed' || p.kind === 'log') ? PACKED_VERSION : 1),
    webqat_version: WEBQAT_VERSION,
    model: info.model,
    model_config: JSON.stringify(info.modelConfig),
    quant: info.quant,
    input_shape: JSON.stringify(info.inputShape),
    num_classes: String(info.numClasses),
    layers: JSON.stringify(layersMeta),
  };
  if (info.normalization) metadata.normalization = JSON.stringify(info.normalization);
  metadata.float_dtype = info.float16 ? 'F16' : 'F32';
  const bytes = encodeSafetensors(tensors, metadata);
  let tensorBytes = 0;
  for (const t of tensors.values()) tensorBytes += t.data.length;
  return {
    bytes,
    tensorBytes,
    report,
    layers: Object.entries(layersMeta).map(([name, l]) => ({ name, kind: l.kind, quantizer: l.quantizer, bytes: sizes.get(name) ?? 0 })),
  };
}
