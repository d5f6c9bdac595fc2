/**
 * webqat/infer: run a packed model file (src/infer/format.ts) on the GPU.
 *
 *   const m = await loadPacked(bytesOrUrl);          // checks the file, uploads the packed words
 *   const probs = await m.predict(images);           // [N · classes] softmax probabilities
 *
 * Binary and ternary layers stay packed in GPU memory (1 or 2 bits per weight in u32 words) and
 * are decoded in registers by the kernels of src/kernels/infer.ts; float layers (by default the
 * first and the last) are f32. This entry imports no training code (autograd, models, optimizers).
 */
import { ALIGN, Gpu, type GBuf, subBuffer } from '../gpu/index.ts';
import { convOut, maxPool, packedConv, softmax, wordsFor } from '../kernels/infer.ts';
import { readFile } from '../platform/fs.ts';
import { type Arch, archOf, type Step, weightShape } from './archs.ts';
import { layerWeights, type LayerWeights, type PackedFile, type PackedMeta, parsePacked } from './format.ts';

export { inferModels } from './archs.ts';
export { LAYOUTS, PACKED_FORMAT, PACKED_VERSION, parsePacked, WEBQAT_VERSION } from './format.ts';
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
  step: Extract<Step, { op: 'conv' | 'linear' }>;
  kind: LayerWeights['meta']['kind'];
  words: GBuf;
  mult: GBuf;
  multCount: number;
  bias: GBuf;
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
    const host: [Extract<Step, { op: 'conv' | 'linear' }>, LayerWeights][] = [];
    for (const s of arch.steps) {
      if (s.op !== 'conv' && s.op !== 'linear') continue;
      host.push([s, layerWeights(file, s.layer, { shape: weightShape(s), bias: s.bias }, source)]);
    }
    const used = new Set<string>();
    for (const [s] of host) for (const k of ['weight', 'weight_scale', 'bias']) used.add(`${s.layer}.${k}`);
    const extra = [...file.tensors.keys()].filter((k) => !used.has(k));
    if (extra.length) throw new Error(`webqat: packed model ${source}: tensor(s) ${extra.map((k) => `'${k}'`).join(', ')} belong to no layer of model '${file.meta.model}'`);
    const gpu = opts.gpu ?? (await (ownGpu ??= Gpu.create()));
    return PackedModel.upload(gpu, file, arch, host, bytes.length);
  }

  private static upload(gpu: Gpu, file: PackedFile, arch: Arch, host: [Extract<Step, { op: 'conv' | 'linear' }>, LayerWeights][], fileBytes: number): PackedModel {
    // one arena for every weight: [words | scales | bias] per layer, each 256-byte aligned
    const parts: { data: Uint32Array | Float32Array; off: number }[] = [];
    let off = 0;
    const place = (data: Uint32Array | Float32Array): number => {
      const at = off;
      parts.push({ data, off: at });
      off += Math.ceil(Math.max(data.byteLength, 16) / ALIGN) * ALIGN;
      return at;
    };
    const plan = host.map(([step, lw]) => {
      const out = step.op === 'conv' ? step.cout : step.out;
      const mult = lw.meta.kind === 'float' ? new Float32Array([1]) : lw.scales;
      return {
        step,
        lw,
        words: place(lw.words),
        mult: place(mult),
        multCount: mult.length,
        bias: place(lw.bias ?? new Float32Array(out)),
      };
    });
    const arena = gpu.pool.createArena(off, 'packed-model');
    for (const p of parts) gpu.write(subBuffer(arena, p.off, p.data.byteLength), p.data);
    const layers = new Map<string, GpuLayer>();
    for (const p of plan) {
      layers.set(p.step.layer, {
        step: p.step,
        kind: p.lw.meta.kind,
        words: subBuffer(arena, p.words, p.lw.words.byteLength),
        mult: subBuffer(arena, p.mult, p.multCount * 4),
        multCount: p.multCount,
        bias: subBuffer(arena, p.bias, (p.step.op === 'conv' ? p.step.cout : p.step.out) * 4),
      });
    }
    return new PackedModel(gpu, file.meta, file.tensorBytes, fileBytes, arch, layers, arena);
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
      layers: [...this.layers.values()].map((l) => ({ name: l.step.layer, kind: l.kind, bytes: l.words.size + l.mult.size + l.bias.size })),
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
    try {
      let [c, h, w] = this.meta.inputShape;
      let cur = acquire(data.length);
      gpu.write(cur, data);
      for (const s of this.arch.steps) {
        if (s.op === 'flatten') {
          c = c * h * w;
          h = w = 1;
        } else if (s.op === 'maxpool') {
          const Ho = Math.floor((h - s.k) / s.stride) + 1;
          const Wo = Math.floor((w - s.k) / s.stride) + 1;
          const y = acquire(n * c * Ho * Wo);
          maxPool(gpu, n * c, h, w, s.k, s.stride, cur, y, 'infer maxPool');
          cur = y;
          h = Ho;
          w = Wo;
        } else {
          const l = this.layers.get(s.layer)!;
          const g = s.op === 'conv'
            ? { N: n, C: c, H: h, W: w, O: s.cout, kh: s.k, kw: s.k, stride: s.stride, pad: s.pad }
            : { N: n, C: c * h * w, H: 1, W: 1, O: s.out, kh: 1, kw: 1, stride: 1, pad: 0 };
          const { Ho, Wo } = convOut(g);
          const y = acquire(n * g.O * Ho * Wo);
          packedConv(gpu, l.kind, g, cur, l.words, l.mult, l.multCount, l.bias, y, s.relu, `infer ${s.op} ${s.layer}`);
          cur = y;
          c = g.O;
          h = Ho;
          w = Wo;
        }
      }
      const k = c * h * w;
      if (k !== this.numClasses) throw new Error(`webqat: predict: the model produced ${k} outputs per sample, expected ${this.numClasses}`);
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
export type { Arch, Step };
