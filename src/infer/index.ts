/**
 * webqat/infer: run a packed model file (src/infer/format.ts) on the GPU.
 *
 *   const m = await loadPacked(bytesOrUrl);          // checks the file, uploads the packed words
 *   const probs = await m.predict(images);           // [N · classes] softmax probabilities
 *
 * Binary, ternary, fixed-point and log layers stay packed in GPU memory (1, 2 or B bits per weight
 * in u32 words) and are decoded in registers by the kernels of src/kernels/infer.ts; float layers (by default the
 * first and the last) are f32. This entry imports no training code (autograd, models, optimizers).
 */
import { ALIGN, Gpu, type GBuf, subBuffer } from '../gpu/index.ts';
import { activeShift, channelAffine, convOut, globalAvgPool, maxPool, packedConv, softmax, type WeightFormat, wordsFor } from '../kernels/infer.ts';
import { readFile } from '../platform/fs.ts';
import { type Arch, archOf, type ConvStep, type LinearStep, type Step, weightShape } from './archs.ts';
import { floatTensor, isCodeKind, layerWeights, type LayerWeights, type PackedFile, type PackedMeta, parsePacked } from './format.ts';

export { inferModels } from './archs.ts';
export { fromHalf, LAYOUTS, PACKED_FORMAT, PACKED_VERSION, PACKED_VERSIONS, parsePacked, toHalf, WEBQAT_VERSION } from './format.ts';
export type { LayerKind, PackedFile, PackedLayerMeta, PackedMeta } from './format.ts';

export interface LoadOptions {
  /** the GPU context to run on (e.g. webqat's `gpu()` after `init()`); default: one of its own */
  gpu?: Gpu;
}

export interface PredictOptions {
  /**
   * apply the file's normalisation (x − mean) / std per channel (default true). Uint8Array inputs
   * are 0..255 pixels and are divided by 255 first; Float32Array inputs are in the 0..1 scale.
   */
  normalize?: boolean;
}

interface GpuLayer {
  step: ConvStep | LinearStep;
  kind: LayerWeights['meta']['kind'];
  /** how packedConv reads the words */
  format: WeightFormat;
  words: GBuf;
  mult: GBuf;
  multCount: number;
  bias: GBuf;
}

/** Host data of one step's weights before upload. */
interface HostLayer {
  step: ConvStep | LinearStep;
  lw: LayerWeights;
  /** the factor per output (scale × folded batch-norm scale) and the bias (+ folded shift) */
  mult: Float32Array;
  bias: Float32Array;
}

let ownGpu: Promise<Gpu> | null = null;

async function bytesOf(src: Uint8Array | ArrayBuffer | string | URL): Promise<{ bytes: Uint8Array; source: string }> {
  if (src instanceof Uint8Array) return { bytes: src, source: 'bytes' };
  if (src instanceof ArrayBuffer) return { bytes: new Uint8Array(src), source: 'bytes' };
  const s = String(src);
  const isUrl = src instanceof URL || /^(https?|blob|data|file):/i.test(s);
  const browser = typeof (globalThis as { document?: unknown }).document !== 'undefined';
  if (isUrl || browser) {
    if (/^file:/i.test(s) && !browser) return { bytes: await readFile(decodeURIComponent(new URL(s).pathname)), source: s };
    const r = await fetch(s);
    if (!r.ok) throw new Error(`webqat: loadPacked: GET ${s} answered ${r.status} ${r.statusText}`);
    return { bytes: new Uint8Array(await r.arrayBuffer()), source: s };
  }
  return { bytes: await readFile(s), source: s };
}

/** A loaded packed model: its weights live on the GPU until `dispose()`. */
export class PackedModel {
  private disposed = false;

  private constructor(
    readonly gpu: Gpu,
    readonly meta: PackedMeta,
    /** bytes of the file's tensor data (words, scales, float tensors) */
    readonly tensorBytes: number,
    /** bytes of the whole file */
    readonly fileBytes: number,
    private readonly arch: Arch,
    private readonly layers: Map<string, GpuLayer>,
    private readonly tensors: Map<string, GBuf>,
    private readonly arena: GBuf,
  ) {}

  /** Parse, check and upload a packed model. `src`: the file's bytes, a URL, or (Deno/Node) a path. */
  static async load(src: Uint8Array | ArrayBuffer | string | URL, opts: LoadOptions = {}): Promise<PackedModel> {
    const { bytes, source } = await bytesOf(src);
    const file = parsePacked(bytes, source);
    const arch = archOf(file.meta.model, file.meta.modelConfig);
    const [c, h, w] = file.meta.inputShape;
    const [ac, ah, aw] = arch.inputShape;
    if (c !== ac || h !== ah || w !== aw) {
      throw new Error(`webqat: packed model ${source}: input_shape [${c},${h},${w}] does not match model '${file.meta.model}' with its model_config ([${ac},${ah},${aw}])`);
    }
    if (file.meta.numClasses !== arch.numClasses) {
      throw new Error(`webqat: packed model ${source}: num_classes ${file.meta.numClasses} does not match model '${file.meta.model}' with its model_config (${arch.numClasses})`);
    }
    const host: HostLayer[] = [];
    const extras = new Map<string, Float32Array>();
    const used = new Set<string>();
    for (const s of arch.steps) {
      if (s.op === 'conv' || s.op === 'linear') {
        const lw = layerWeights(file, s.layer, { shape: weightShape(s), bias: s.bias }, source);
        const out = s.op === 'conv' ? s.cout : s.out;
        for (const k of ['weight', 'weight_scale', 'bias']) used.add(`${s.layer}.${k}`);
        const scale = lw.meta.kind === 'float' ? new Float32Array([1]) : lw.scales;
        let mult = scale;
        let bias = lw.bias ?? new Float32Array(out);
        if (s.op === 'conv' && s.bn) {
          // conv → batch norm, folded: (acc·α + b)·γ' + β' = acc·(α·γ') + (b·γ' + β')
          const g = floatTensor(file, `${s.bn}.weight`, [out], `the folded scale of batch norm '${s.bn}'`, source);
          const b = floatTensor(file, `${s.bn}.bias`, [out], `the folded shift of batch norm '${s.bn}'`, source);
          used.add(`${s.bn}.weight`).add(`${s.bn}.bias`);
          mult = Float32Array.from(g, (v, o) => v * scale[scale.length === 1 ? 0 : o]);
          bias = Float32Array.from(b, (v, o) => v + bias[o] * g[o]);
        }
        host.push({ step: s, lw, mult, bias });
      } else if (s.op === 'bnact') {
        for (const k of ['weight', 'bias']) {
          const name = `${s.bn}.${k}`;
          extras.set(name, floatTensor(file, name, [s.c], `the folded ${k === 'weight' ? 'scale' : 'shift'} of batch norm '${s.bn}'`, source));
          used.add(name);
        }
      } else if (s.op === 'shift') {
        const name = `${s.layer}.shift`;
        extras.set(name, floatTensor(file, name, [2, s.c], `the offsets of shift '${s.layer}'`, source));
        used.add(name);
      }
    }
    const extra = [...file.tensors.keys()].filter((k) => !used.has(k));
    if (extra.length) throw new Error(`webqat: packed model ${source}: tensor(s) ${extra.map((k) => `'${k}'`).join(', ')} belong to no layer of model '${file.meta.model}'`);
    const gpu = opts.gpu ?? (await (ownGpu ??= Gpu.create()));
    return PackedModel.upload(gpu, file, arch, host, extras, bytes.length);
  }

  private static upload(gpu: Gpu, file: PackedFile, arch: Arch, host: HostLayer[], extras: Map<string, Float32Array>, fileBytes: number): PackedModel {
    // one arena for every weight: [words | mult | bias] per layer and the extra tensors, each 256-byte aligned
    const parts: { data: Uint32Array | Float32Array; off: number }[] = [];
    let off = 0;
    const place = (data: Uint32Array | Float32Array): number => {
      const at = off;
      parts.push({ data, off: at });
      off += Math.ceil(Math.max(data.byteLength, 16) / ALIGN) * ALIGN;
      return at;
    };
    const plan = host.map((h) => ({ h, words: place(h.lw.words), mult: place(h.mult), bias: place(h.bias) }));
    const extraAt = new Map([...extras].map(([k, v]) => [k, { off: place(v), bytes: v.byteLength }]));
    const arena = gpu.pool.createArena(off, 'packed-model');
    for (const p of parts) gpu.write(subBuffer(arena, p.off, p.data.byteLength), p.data);
    const layers = new Map<string, GpuLayer>();
    for (const { h, words, mult, bias } of plan) {
      layers.set(h.step.layer, {
        step: h.step,
        kind: h.lw.meta.kind,
        format: isCodeKind(h.lw.meta.kind) ? { kind: h.lw.meta.kind, bits: h.lw.meta.bits! } : h.lw.meta.kind,
        words: subBuffer(arena, words, h.lw.words.byteLength),
        mult: subBuffer(arena, mult, h.mult.byteLength),
        multCount: h.mult.length,
        bias: subBuffer(arena, bias, h.bias.byteLength),
      });
    }
    const tensors = new Map([...extraAt].map(([k, v]) => [k, subBuffer(arena, v.off, v.bytes)]));
    return new PackedModel(gpu, file.meta, file.tensorBytes, fileBytes, arch, layers, tensors, arena);
  }

  get inputShape(): number[] {
    return [...this.meta.inputShape];
  }

  get numClasses(): number {
    return this.meta.numClasses;
  }

  /** GPU memory held by the model between calls: its one weight arena. */
  memory(): { buffers: number; bytes: number; layers: { name: string; kind: string; bytes: number }[] } {
    return {
      buffers: this.disposed ? 0 : 1,
      bytes: this.disposed ? 0 : this.arena.size,
      layers: [
        ...[...this.layers.values()].map((l) => ({ name: l.step.layer, kind: l.kind, bytes: l.words.size + l.mult.size + l.bias.size })),
        ...[...this.tensors].map(([name, b]) => ({ name, kind: 'float', bytes: b.size })),
      ],
    };
  }

  private input(x: Float32Array | Uint8Array, normalize: boolean): { data: Float32Array; n: number } {
    const [c, h, w] = this.meta.inputShape;
    const per = c * h * w;
    if (x.length === 0 || x.length % per !== 0) {
      throw new Error(`webqat: predict: input has ${x.length} values, not a multiple of one ${'[' + [c, h, w].join(',') + ']'} sample (${per} values)`);
    }
    const n = x.length / per;
    const data = new Float32Array(x.length);
    const norm = normalize ? this.meta.normalization : null;
    for (let i = 0; i < x.length; i++) {
      let v = x instanceof Uint8Array ? x[i] / 255 : x[i];
      if (norm) {
        const ch = Math.floor(i / (h * w)) % c;
        v = (v - norm.mean[ch]) / norm.std[ch];
      }
      data[i] = v;
    }
    return { data, n };
  }

  /** Logits [N · classes] for N samples laid out NCHW (see PredictOptions for the value scale). */
  logits(x: Float32Array | Uint8Array, opts: PredictOptions = {}): Promise<Float32Array> {
    return this.run(x, opts, false);
  }

  /** Softmax probabilities [N · classes]. */
  predict(x: Float32Array | Uint8Array, opts: PredictOptions = {}): Promise<Float32Array> {
    return this.run(x, opts, true);
  }

  /** The most probable class of each sample. */
  async classify(x: Float32Array | Uint8Array, opts: PredictOptions = {}): Promise<number[]> {
    const p = await this.logits(x, opts);
    const k = this.numClasses;
    const out: number[] = [];
    for (let i = 0; i < p.length / k; i++) {
      let best = 0;
      for (let j = 1; j < k; j++) if (p[i * k + j] > p[i * k + best]) best = j;
      out.push(best);
    }
    return out;
  }

  private async run(x: Float32Array | Uint8Array, opts: PredictOptions, probs: boolean): Promise<Float32Array> {
    if (this.disposed) throw new Error('webqat: predict: the packed model was disposed');
    const gpu = this.gpu;
    const { data, n } = this.input(x, opts.normalize ?? true);
    const held: GBuf[] = [];
    const acquire = (floats: number): GBuf => {
      const b = gpu.pool.acquire(floats * 4, 'infer activation');
      held.push(b);
      return b;
    };
    // registers: name → activation [n, c, h, w]; a buffer goes back to the pool once no register holds it
    type Reg = { buf: GBuf; c: number; h: number; w: number };
    const regs = new Map<string, Reg>();
    const set = (name: string, r: Reg) => {
      const old = regs.get(name);
      regs.set(name, r);
      if (old && ![...regs.values()].some((v) => v.buf === old.buf)) release(old.buf);
    };
    const release = (b: GBuf) => {
      const i = held.indexOf(b);
      if (i >= 0) held.splice(i, 1);
      gpu.pool.release(b);
    };
    const get = (name = 'x'): Reg => {
      const r = regs.get(name);
      if (!r) throw new Error(`webqat: predict: register '${name}' is read before it is written (model '${this.meta.model}')`);
      return r;
    };
    try {
      const [c0, h0, w0] = this.meta.inputShape;
      const input = acquire(data.length);
      gpu.write(input, data);
      regs.set('x', { buf: input, c: c0, h: h0, w: w0 });
      for (const s of this.arch.steps) {
        const src = get(s.src);
        const { c, h, w } = src;
        const dst = s.dst ?? 'x';
        if (s.op === 'flatten') {
          set(dst, { buf: src.buf, c: c * h * w, h: 1, w: 1 });
        } else if (s.op === 'maxpool') {
          const y = acquire(n * c * (Math.floor((h - s.k) / s.stride) + 1) * (Math.floor((w - s.k) / s.stride) + 1));
          const { Ho, Wo } = maxPool(gpu, n * c, h, w, s.k, s.stride, src.buf, y, 'infer maxPool');
          set(dst, { buf: y, c, h: Ho, w: Wo });
        } else if (s.op === 'gap') {
          const y = acquire(n * c);
          globalAvgPool(gpu, n * c, h * w, src.buf, y, 'infer globalAvgPool');
          set(dst, { buf: y, c, h: 1, w: 1 });
        } else if (s.op === 'bnact') {
          const y = acquire(n * c * h * w);
          channelAffine(gpu, n, c, h * w, src.buf, this.tensors.get(`${s.bn}.weight`)!, this.tensors.get(`${s.bn}.bias`)!, y, s.act, `infer ${s.bn}`);
          set(dst, { buf: y, c, h, w });
        } else if (s.op === 'shift') {
          const y = acquire(n * c * (Math.floor((h - 1) / s.stride) + 1) * (Math.floor((w - 1) / s.stride) + 1));
          const { Ho, Wo } = activeShift(gpu, n, c, h, w, s.stride, src.buf, this.tensors.get(`${s.layer}.shift`)!, y, s.round, `infer ${s.layer}`);
          set(dst, { buf: y, c, h: Ho, w: Wo });
        } else {
          const l = this.layers.get(s.layer)!;
          const g = s.op === 'conv'
            ? { N: n, C: c, H: h, W: w, O: s.cout, kh: s.k, kw: s.k, stride: s.stride, pad: s.pad }
            : { N: n, C: c * h * w, H: 1, W: 1, O: s.out, kh: 1, kw: 1, stride: 1, pad: 0 };
          const { Ho, Wo } = convOut(g);
          const y = acquire(n * g.O * Ho * Wo);
          const res = s.op === 'conv' && s.res ? get(s.res) : null;
          if (res && (res.c !== g.O || res.h !== Ho || res.w !== Wo)) {
            throw new Error(`webqat: predict: ${s.layer}: residual [${res.c},${res.h},${res.w}] does not match its output [${g.O},${Ho},${Wo}]`);
          }
          packedConv(gpu, l.format, g, src.buf, l.words, l.mult, l.multCount, l.bias, y, {
            relu: s.relu,
            residual: res?.buf ?? null,
            actBits: s.op === 'conv' ? s.act : 0,
          }, `infer ${s.op} ${s.layer}`);
          set(dst, { buf: y, c: g.O, h: Ho, w: Wo });
        }
      }
      const out = get('x');
      const k = out.c * out.h * out.w;
      if (k !== this.numClasses) throw new Error(`webqat: predict: the model produced ${k} outputs per sample, expected ${this.numClasses}`);
      let cur = out.buf;
      if (probs) {
        const y = acquire(n * k);
        softmax(gpu, n, k, cur, y, 'infer softmax');
        cur = y;
      }
      return new Float32Array(await gpu.read(cur, n * k * 4));
    } finally {
      for (const b of held) gpu.pool.release(b);
    }
  }

  /** Free the model's GPU memory. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.gpu.pool.destroyArena(this.arena);
  }
}

/** Load a packed model file (bytes, URL, or a path in Deno/Node) onto the GPU. */
export function loadPacked(src: Uint8Array | ArrayBuffer | string | URL, opts: LoadOptions = {}): Promise<PackedModel> {
  return PackedModel.load(src, opts);
}

/** Weight words a layer of `n` values needs in a kind (for tools that build files by hand). */
export { wordsFor };
export type { Arch, Step, WeightFormat };
