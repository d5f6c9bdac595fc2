/**
 * The GPU runtime: device, limits and features, buffer pool, pipeline cache, command batching and
 * asynchronous readback. Knows buffers and WGSL, nothing about tensors.
 *
 * Execution model: every dispatch is encoded into one open compute pass of one command encoder.
 * Uniform parameters go into a CPU-side arena that is uploaded with one writeBuffer just before the
 * encoder is submitted (queue order makes reusing the arena across submits safe). The encoder is
 * submitted at `flush()` (a step boundary), before an upload, or when data must be read.
 */
import { BufferPool, type GBuf, type PoolStats } from './pool.ts';
import { getGpuApi, installHint, runtimeName } from './runtime.ts';
import { policyFromEnv, Tuner, type TunePolicy } from './tune.ts';

export type { GBuf, PoolStats };

export interface AdapterDescription {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** short human name: description, else vendor/architecture */
  name: string;
  isFallback: boolean;
  runtime: string;
}

export interface GpuOptions {
  powerPreference?: GPUPowerPreference;
  /** request these optional features when the adapter has them */
  wantFeatures?: GPUFeatureName[];
  /** 'default': request no limits above WebGPU's defaults (what many laptops and phones give; tests use it) */
  limits?: 'adapter' | 'default';
  /** bytes in the uniform arena (one slot per dispatch, 256-byte aligned) */
  uniformArenaBytes?: number;
  /** kernel autotuning policy (default: `WEBQAT_TUNE`, else 'full'; see src/gpu/tune.ts) */
  tune?: TunePolicy;
}

export interface Pipeline {
  key: string;
  pipeline: GPUComputePipeline;
  layout: GPUBindGroupLayout;
}

export interface GpuCounters {
  dispatches: number;
  submits: number;
  readbacks: number;
  pipelines: number;
}

const MAP_READ = 0x1;
const COPY_DST = 0x8;
const UNIFORM = 0x40;

export class Gpu {
  readonly pool: BufferPool;
  readonly counters: GpuCounters = { dispatches: 0, submits: 0, readbacks: 0, pipelines: 0 };
  private pipelines = new Map<string, Pipeline>();
  private pending = new Map<string, Promise<Pipeline>>();
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private arena: GPUBuffer;
  private arenaData: ArrayBuffer;
  private arenaU8: Uint8Array;
  private arenaUsed = 0;
  private readonly uniformAlign: number;
  private staging = new Map<number, GPUBuffer[]>();
  private errors: string[] = [];
  private destroyed = false;
  private querySet: GPUQuerySet | null = null;
  private queryBuf: GPUBuffer | null = null;
  /** while timing: the pass descriptor's timestamp writes (first pass writes the start) */
  private timing: 'first' | 'rest' | null = null;
  /** during `collect`: the pipelines a dry run would compile */
  private collecting: Map<string, () => string> | null = null;
  /** while set: the key of every pipeline dispatched (tests pin how many pipelines a step uses) */
  trace: Set<string> | null = null;
  /** the kernel autotuner of this device (src/gpu/tune.ts) */
  readonly tuner: Tuner;
  /** Adapter class, the key of the shipped tune table: `${dawn|wgpu}:${swiftshader|llvmpipe|vendor}`. */
  readonly adapterClass: string;
  /** Adapter identity, the key of this adapter's tune cache slot. */
  readonly adapterId: string;
  private readonly software: boolean;

  private constructor(
    readonly device: GPUDevice,
    readonly adapter: AdapterDescription,
    readonly features: ReadonlySet<string>,
    readonly limits: GPUSupportedLimits,
    opts: GpuOptions,
  ) {
    this.pool = new BufferPool(device, limits.maxBufferSize);
    this.uniformAlign = limits.minUniformBufferOffsetAlignment;
    const arenaBytes = opts.uniformArenaBytes ?? 1 << 20;
    this.arena = device.createBuffer({ size: arenaBytes, usage: UNIFORM | COPY_DST, label: 'webqat:uniforms' });
    this.arenaData = new ArrayBuffer(arenaBytes);
    this.arenaU8 = new Uint8Array(this.arenaData);
    const { cls, software } = classify(adapter);
    this.adapterClass = cls;
    this.software = software;
    this.adapterId = [cls, adapter.vendor, adapter.architecture, adapter.device, adapter.description].join('|');
    this.tuner = new Tuner(this, opts.tune ?? policyFromEnv() ?? 'full');
    device.addEventListener('uncapturederror', (ev: Event) => {
      const msg = (ev as GPUUncapturedErrorEvent).error?.message ?? String(ev);
      this.errors.push(msg);
      if (this.errors.length > 20) this.errors.shift();
    });
  }

  static async create(opts: GpuOptions = {}): Promise<Gpu> {
    const api = await getGpuApi();
    const adapter = await api.requestAdapter({ powerPreference: opts.powerPreference ?? 'high-performance' });
    if (!adapter) throw new Error(`webqat: no WebGPU adapter found. ${installHint()}`);
    const want = opts.wantFeatures ?? (['subgroups', 'shader-f16', 'timestamp-query'] as GPUFeatureName[]);
    const requiredFeatures = want.filter((f) => adapter.features.has(f));
    const l = adapter.limits;
    const requiredLimits: Record<string, number> = {
      maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
      maxBufferSize: l.maxBufferSize,
      maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
      maxComputeWorkgroupSizeY: l.maxComputeWorkgroupSizeY,
      maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
    };
    const device = await adapter.requestDevice({ requiredFeatures, requiredLimits: opts.limits === 'default' ? {} : requiredLimits });
    // deno-lint-ignore no-explicit-any
    const info: any = (adapter as any).info ?? {};
    const desc: AdapterDescription = {
      vendor: info.vendor ?? '',
      architecture: info.architecture ?? '',
      device: info.device ?? '',
      description: info.description ?? '',
      name: '',
      // deno-lint-ignore no-explicit-any
      isFallback: Boolean((adapter as any).isFallbackAdapter ?? info.isFallbackAdapter),
      runtime: runtimeName(),
    };
    desc.name = desc.description || [desc.vendor, desc.architecture, desc.device].filter(Boolean).join(' ') || 'unknown adapter';
    const features = new Set<string>(device.features as unknown as Iterable<string>);
    const gpu = new Gpu(device, desc, features, device.limits, opts);
    await gpu.tuner.load();
    return gpu;
  }

  /** True when the adapter is a CPU (software) implementation: SwiftShader, lavapipe/llvmpipe, WARP. */
  get isSoftware(): boolean {
    return this.software;
  }

  stats(): PoolStats & GpuCounters {
    return { ...this.pool.stats, ...this.counters };
  }

  // ---------------------------------------------------------------- pipelines

  private makePipeline(key: string, code: string, pipeline: GPUComputePipeline): Pipeline {
    const p = { key, pipeline, layout: pipeline.getBindGroupLayout(0) };
    this.pipelines.set(key, p);
    this.counters.pipelines++;
    return p;
  }

  /** Cached compute pipeline, created synchronously on first use (warm with `compileAsync`). */
  pipeline(key: string, code: () => string): Pipeline {
    const hit = this.pipelines.get(key);
    if (hit) return hit;
    if (this.collecting) {
      // dry run (see `collect`): remember what would be compiled, compile nothing
      if (!this.collecting.has(key)) this.collecting.set(key, code);
      return { key, pipeline: null as unknown as GPUComputePipeline, layout: null as unknown as GPUBindGroupLayout };
    }
    const module = this.device.createShaderModule({ code: code(), label: key });
    const pipeline = this.device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' }, label: key });
    return this.makePipeline(key, '', pipeline);
  }

  /** True during a dry run (`collect`). */
  get isCollecting(): boolean {
    return this.collecting !== null;
  }

  /** True while a pipeline is being compiled in the background. */
  isCompiling(key: string): boolean {
    return this.pending.has(key) && !this.pipelines.has(key);
  }

  /**
   * Dry run: call `encode` (a training step, a launch) with encoding switched off and return the
   * pipelines it would compile that are not compiled yet (key -> WGSL). Nothing reaches the GPU:
   * dispatches, copies and uploads are skipped, so nothing the step would change is changed.
   */
  collect(encode: () => void): Map<string, () => string> {
    if (this.collecting) throw new Error('webqat: Gpu.collect: already collecting');
    const found = new Map<string, () => string>();
    this.collecting = found;
    try {
      encode();
    } finally {
      this.collecting = null;
    }
    return found;
  }

  /**
   * Compile, in parallel and in the background (createComputePipelineAsync), every pipeline that
   * `encode` would compile; resolves when all are ready. A first step that follows waits for none of
   * them, and the implementation can compile them on several threads instead of one after another.
   */
  async warm(encode: () => void): Promise<{ pipelines: number; ms: number }> {
    const t0 = typeof performance !== 'undefined' ? performance.now() : Date.now();
    const todo = this.collect(encode);
    await Promise.all([...todo].map(([k, c]) => this.compileAsync(k, c)));
    this.throwErrors();
    const t1 = typeof performance !== 'undefined' ? performance.now() : Date.now();
    return { pipelines: todo.size, ms: t1 - t0 };
  }

  /** Compile a pipeline in the background (createComputePipelineAsync); later `pipeline()` calls hit the cache. */
  compileAsync(key: string, code: () => string): Promise<Pipeline> {
    const hit = this.pipelines.get(key);
    if (hit) return Promise.resolve(hit);
    let p = this.pending.get(key);
    if (!p) {
      const module = this.device.createShaderModule({ code: code(), label: key });
      p = this.device
        .createComputePipelineAsync({ layout: 'auto', compute: { module, entryPoint: 'main' }, label: key })
        .then((pl) => this.pipelines.get(key) ?? this.makePipeline(key, '', pl));
      this.pending.set(key, p);
    }
    return p;
  }

  /** Compile a shader and report WGSL errors with line numbers (used by tests and `compileCheck`). */
  async shaderErrors(key: string, code: string): Promise<string[]> {
    const module = this.device.createShaderModule({ code, label: key });
    const info = await module.getCompilationInfo();
    return info.messages.filter((m) => m.type === 'error').map((m) => `${key}:${m.lineNum}:${m.linePos} ${m.message}`);
  }

  // ---------------------------------------------------------------- encoding

  private ensurePass(): GPUComputePassEncoder {
    if (!this.encoder) this.encoder = this.device.createCommandEncoder();
    if (!this.pass) {
      if (this.timing && this.querySet) {
        // timing: the first pass writes the start, every pass the end (the last one wins)
        const tw: GPUComputePassTimestampWrites = this.timing === 'first'
          ? { querySet: this.querySet, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 }
          : { querySet: this.querySet, endOfPassWriteIndex: 1 };
        this.timing = 'rest';
        this.pass = this.encoder.beginComputePass({ timestampWrites: tw });
      } else {
        this.pass = this.encoder.beginComputePass();
      }
    }
    return this.pass;
  }

  /**
   * GPU time in ms of the dispatches `encode` records (timestamp queries around their passes), or
   * null when the device has no 'timestamp-query'. Submits pending work first; waits for the result.
   */
  async timeGpu(encode: () => void): Promise<number | null> {
    if (!this.features.has('timestamp-query')) return null;
    this.flush();
    if (!this.querySet) {
      this.querySet = this.device.createQuerySet({ type: 'timestamp', count: 2, label: 'webqat:timing' });
      this.queryBuf = this.device.createBuffer({ size: 256, usage: 0x200 /* QUERY_RESOLVE */ | 0x4 /* COPY_SRC */, label: 'webqat:timing' });
    }
    this.timing = 'first';
    try {
      encode();
      this.ensurePass(); // at least one pass, so both timestamps exist
    } finally {
      this.timing = null;
    }
    const enc = this.endPass();
    enc.resolveQuerySet(this.querySet, 0, 2, this.queryBuf!, 0);
    const stage = this.takeStaging(256);
    enc.copyBufferToBuffer(this.queryBuf!, 0, stage, 0, 16);
    this.flush();
    await stage.mapAsync(MAP_READ, 0, 256);
    const t = new BigInt64Array(stage.getMappedRange(0, 16).slice(0));
    stage.unmap();
    (this.staging.get(256) ?? this.staging.set(256, []).get(256)!).push(stage);
    this.throwErrors();
    const ns = Number(t[1] - t[0]);
    return ns > 0 ? ns / 1e6 : null;
  }

  private endPass(): GPUCommandEncoder {
    if (!this.encoder) this.encoder = this.device.createCommandEncoder();
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
    return this.encoder;
  }

  /**
   * Encode one dispatch. Binding 0 is the uniform block (when `uniforms` is given), storage buffers
   * (or texture views) follow from binding 1 in order. `what` names the op for error messages.
   */
  dispatch(
    p: Pipeline,
    buffers: readonly (GBuf | GPUTextureView)[],
    uniforms: ArrayBufferView | null,
    workgroups: readonly [number, number?, number?],
    what = p.key,
  ): void {
    if (this.destroyed) throw new Error('webqat: the GPU context was destroyed');
    if (this.collecting) return;
    const maxBind = this.maxBindingSize;
    for (const b of buffers) {
      if ('buffer' in b && b.size > maxBind) {
        throw new Error(
          `webqat: ${what}: a ${b.size}-byte buffer exceeds this device's maxStorageBufferBindingSize (${maxBind} bytes)`,
        );
      }
    }
    const maxWg = this.limits.maxComputeWorkgroupsPerDimension;
    const [x, y = 1, z = 1] = workgroups;
    if (x > maxWg || y > maxWg || z > maxWg) {
      throw new Error(`webqat: ${what}: dispatch ${x}x${y}x${z} exceeds maxComputeWorkgroupsPerDimension (${maxWg})`);
    }
    if (x === 0 || y === 0 || z === 0) return;
    const entries: GPUBindGroupEntry[] = [];
    if (uniforms) {
      // each dispatch owns one aligned slot; the whole slot is bound, so a shader struct may be
      // larger than the bytes the launcher wrote (the tail is don't-care padding)
      const n = uniforms.byteLength;
      const slot = Math.ceil(Math.max(n, 256) / this.uniformAlign) * this.uniformAlign;
      let off = this.arenaUsed;
      if (off + slot > this.arenaData.byteLength) {
        this.flush();
        off = 0;
      }
      this.arenaU8.set(new Uint8Array(uniforms.buffer, uniforms.byteOffset, n), off);
      this.arenaUsed = off + slot;
      entries.push({ binding: 0, resource: { buffer: this.arena, offset: off, size: slot } });
    }
    for (let i = 0; i < buffers.length; i++) {
      const b = buffers[i];
      entries.push({ binding: i + 1, resource: 'buffer' in b ? { buffer: b.buffer, offset: b.offset, size: b.size } : b });
    }
    const bind = this.device.createBindGroup({ layout: p.layout, entries });
    const pass = this.ensurePass();
    this.trace?.add(p.key);
    pass.setPipeline(p.pipeline);
    pass.setBindGroup(0, bind);
    pass.dispatchWorkgroups(x, y, z);
    this.counters.dispatches++;
  }

  /** Copy bytes between pooled buffers, ordered with the dispatches around it. */
  copy(src: GBuf, srcOffset: number, dst: GBuf, dstOffset: number, bytes: number): void {
    if (bytes === 0 || this.collecting) return;
    this.endPass().copyBufferToBuffer(src.buffer, src.offset + srcOffset, dst.buffer, dst.offset + dstOffset, bytes);
  }

  /** Copy `height` rows of `bytesPerRow` bytes from a pooled buffer into a texture at (0, 0), ordered with the dispatches around it. */
  copyToTexture(src: GBuf, srcOffset: number, bytesPerRow: number, dst: GPUTexture, width: number, height: number): void {
    if (width === 0 || height === 0 || this.collecting) return;
    this.endPass().copyBufferToTexture({ buffer: src.buffer, offset: src.offset + srcOffset, bytesPerRow }, { texture: dst }, [width, height]);
  }

  /** Upload host data. Pending work is submitted first so it cannot see the new contents. */
  write(dst: GBuf, data: ArrayBufferView, dstOffset = 0): void {
    if (this.collecting) return;
    if (this.encoder) this.flush();
    const bytes = data.byteLength;
    const padded = Math.ceil(bytes / 4) * 4;
    if (padded === bytes) {
      this.device.queue.writeBuffer(dst.buffer, dst.offset + dstOffset, data.buffer, data.byteOffset, bytes);
    } else {
      const tmp = new Uint8Array(padded);
      tmp.set(new Uint8Array(data.buffer, data.byteOffset, bytes));
      this.device.queue.writeBuffer(dst.buffer, dst.offset + dstOffset, tmp);
    }
  }

  /** Submit everything encoded so far. */
  flush(): void {
    if (!this.encoder) return;
    const enc = this.endPass();
    if (this.arenaUsed > 0) {
      this.device.queue.writeBuffer(this.arena, 0, this.arenaData, 0, this.arenaUsed);
      this.arenaUsed = 0;
    }
    this.device.queue.submit([enc.finish()]);
    this.encoder = null;
    this.counters.submits++;
  }

  /** Wait until the GPU has finished all submitted work (forces completion for timing). */
  async sync(): Promise<void> {
    this.flush();
    await this.device.queue.onSubmittedWorkDone();
    this.throwErrors();
    // as after a readback: deferred tier-2 pipelines may compile now (src/gpu/tune.ts)
    this.tuner.kick();
  }

  private takeStaging(size: number): GPUBuffer {
    const list = this.staging.get(size);
    return list?.pop() ?? this.device.createBuffer({ size, usage: MAP_READ | COPY_DST, label: 'webqat:staging' });
  }

  /** Read `bytes` bytes of a buffer back to the host (asynchronous; staging buffers are recycled). */
  async read(src: GBuf, bytes: number, srcOffset = 0): Promise<ArrayBuffer> {
    if (this.collecting) throw new Error('webqat: no GPU data can be read during a dry run (Gpu.collect / warm)');
    const size = Math.max(256, Math.ceil(bytes / 256) * 256);
    const stage = this.takeStaging(size);
    const copyBytes = Math.ceil(bytes / 4) * 4;
    if (copyBytes > 0) this.endPass().copyBufferToBuffer(src.buffer, src.offset + srcOffset, stage, 0, copyBytes);
    this.flush();
    this.counters.readbacks++;
    try {
      await stage.mapAsync(MAP_READ, 0, size);
    } catch (e) {
      this.throwErrors();
      throw e;
    }
    const out = stage.getMappedRange(0, size).slice(0, bytes);
    stage.unmap();
    // the work that needed them has run: tier-2 pipelines may compile now (src/gpu/tune.ts)
    this.tuner.kick();
    let list = this.staging.get(size);
    if (!list) this.staging.set(size, (list = []));
    if (list.length < 4) list.push(stage);
    else stage.destroy();
    this.throwErrors();
    return out;
  }

  private bindingCap: number | null = null;

  /**
   * The largest buffer one storage binding may hold: the device's maxStorageBufferBindingSize (and
   * maxBufferSize), or less after `capBindingSize`. Tensors larger than this are refused.
   */
  get maxBindingSize(): number {
    return Math.min(this.limits.maxStorageBufferBindingSize, this.limits.maxBufferSize, this.bindingCap ?? Infinity);
  }

  /**
   * Act as if the device's maxStorageBufferBindingSize were `bytes` (null: the device's own again),
   * e.g. to test the too-large-tensor path without allocating 128 MiB. Only lowers the limit.
   */
  capBindingSize(bytes: number | null): void {
    if (bytes !== null && !(Number.isInteger(bytes) && bytes >= 4)) throw new Error(`webqat: capBindingSize: expected an integer >= 4 or null, got ${bytes}`);
    this.bindingCap = bytes;
  }

  /** Throw (and clear) any WebGPU validation errors reported so far. */
  throwErrors(): void {
    if (this.errors.length) {
      const msgs = this.errors.splice(0);
      throw new Error(`webqat: WebGPU reported ${msgs.length} error(s):\n${msgs.join('\n')}`);
    }
  }

  /**
   * Let submitted work, queued uploads and background compiles finish, then `destroy()`. wgpu (Deno)
   * can crash the process when a device is destroyed with uploads or work still queued and the
   * process exits right after; a lost device resolves at once. Waits at most `timeoutMs`.
   */
  async close(timeoutMs = 10_000): Promise<void> {
    if (this.destroyed) return;
    try {
      this.pass = null; // an open pass is dropped, not submitted: nothing of it is wanted any more
      this.encoder = null;
      const settle = Promise.allSettled([this.device.queue.onSubmittedWorkDone(), ...this.pending.values()]);
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([settle, new Promise<void>((r) => (timer = setTimeout(r, timeoutMs)))]);
      clearTimeout(timer);
    } catch {
      // a lost or destroyed device has nothing left to wait for
    }
    this.destroy();
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.pass = null;
    this.encoder = null;
    this.pool.destroyAll();
    for (const l of this.staging.values()) for (const b of l) b.destroy();
    this.arena.destroy();
    this.querySet?.destroy();
    this.queryBuf?.destroy();
    this.device.destroy();
  }
}

/**
 * The adapter class (the one place webqat classifies adapters): which WebGPU implementation
 * (Dawn in Chromium/Node, wgpu in Deno) and which driver. Keys the shipped tune table only; kernels
 * never branch on it.
 */
function classify(a: AdapterDescription): { cls: string; software: boolean } {
  const impl = a.runtime === 'deno' ? 'wgpu' : 'dawn';
  const s = `${a.name} ${a.vendor} ${a.architecture} ${a.description} ${a.device}`.toLowerCase();
  const kind = /llvmpipe|lavapipe/.test(s) ? 'llvmpipe'
    : /swiftshader/.test(s) ? 'swiftshader'
    : (a.vendor || a.architecture || 'gpu').toLowerCase().replace(/[^a-z0-9-]+/g, '-');
  // a CPU (software) implementation: SwiftShader, lavapipe/llvmpipe, WARP
  const software = a.isFallback || /swiftshader|llvmpipe|lavapipe|warp|software|cpu/.test(s);
  return { cls: `${impl}:${kind}`, software };
}

/** Workgroup counts for `n` threads in groups of `size`, folded into y when x would exceed 65535. */
export function grid1d(n: number, size: number): [number, number] {
  const groups = Math.ceil(n / size);
  if (groups <= 65535) return [Math.max(groups, 1), 1];
  const y = Math.ceil(groups / 65535);
  return [Math.ceil(groups / y), y];
}
