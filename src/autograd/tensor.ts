/**
 * Tensor: a shape, a dtype and a pooled GPU buffer, plus autograd state. A tensor created by a
 * differentiable op records a `node` (its inputs and backward rule); `backward()` (see tape.ts) walks
 * those nodes in reverse. GPU memory is released explicitly (`release()`) or by the enclosing scope.
 */
import type { GBuf, Gpu } from '../gpu/index.ts';
import { engine, trackTensor } from './engine.ts';

export type DType = 'f32' | 'i32' | 'u32';
export type Shape = readonly number[];
export type TypedArrayFor<D extends DType> = D extends 'f32' ? Float32Array : D extends 'i32' ? Int32Array : Uint32Array;

/** Backward rule: given d(loss)/d(output), return d(loss)/d(input) for each input (null = no gradient). */
export type BackwardFn = (grad: Tensor, needs: readonly boolean[]) => (Tensor | null)[];

export interface Node {
  op: string;
  inputs: readonly Tensor[];
  backward: BackwardFn;
}

let nextTensorId = 1;

/** A pooled buffer shared by a tensor and its views (reshape); returned to the pool at refs = 0. */
export interface Storage {
  buf: GBuf;
  refs: number;
  /** external storage (a sub-range of an arena) is not returned to the pool */
  external?: boolean;
}

export function shapeSize(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function shapeStr(shape: Shape): string {
  return `[${shape.join(',')}]`;
}

export function checkShape(shape: Shape, what: string): void {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new Error(`webqat: ${what}: invalid shape ${shapeStr(shape)}`);
  }
}

const mib = (b: number) => `${(b / 2 ** 20).toFixed(b % 2 ** 20 ? 1 : 0)} MiB`;

/**
 * A tensor larger than one storage binding (WebGPU's maxStorageBufferBindingSize: 128 MiB on
 * default-limits devices) refused before it is allocated or any kernel runs for it. The message names
 * the op, the shape, the bytes, the limit and, for a batched tensor, the largest batch that fits.
 */
export class BindingSizeError extends Error {
  constructor(
    readonly op: string,
    readonly shape: Shape,
    readonly dtype: DType,
    readonly bytes: number,
    readonly limit: number,
  ) {
    const perSample = shape.length > 1 && shape[0] > 1 ? bytes / shape[0] : 0;
    const fit = perSample > 0 ? Math.floor(limit / perSample) : 0;
    super(
      `webqat: ${op}: ${dtype}${shapeStr(shape)} needs ${bytes} bytes (${mib(bytes)}), more than this device's ` +
        `maxStorageBufferBindingSize (${limit} bytes, ${mib(limit)}); nothing was run for it. ` +
        (fit >= 1
          ? `Use a smaller batch: along its first dimension (${shape[0]}) at most ${fit} fit in one binding`
          : `Use a smaller batch or smaller layers: one ${perSample > 0 ? 'sample' : 'tensor'} of this size does not fit in one binding`),
    );
    this.name = 'BindingSizeError';
  }
}

export class Tensor {
  readonly id = nextTensorId++;
  readonly shape: Shape;
  readonly dtype: DType;
  readonly size: number;
  requiresGrad: boolean;
  grad: Tensor | null = null;
  node: Node | null = null;
  /** intermediates of this tensor's graph that a closed scope handed over (released after backward) */
  graphOwned: Tensor[] | null = null;
  /** kept tensors survive the scope they were created in */
  kept = false;
  name: string | undefined;
  private storage: Storage | null;
  private releasedBy: string | null = null;

  /** Internal: use `tensor()`, `zeros()` or an op. Takes a reference on `storage`. */
  constructor(shape: Shape, dtype: DType, storage: Storage, requiresGrad = false) {
    this.shape = Object.freeze([...shape]);
    this.dtype = dtype;
    this.size = shapeSize(shape);
    this.storage = storage;
    this.requiresGrad = requiresGrad;
    trackTensor(this);
  }

  /** Allocate an uninitialised tensor from the pool. */
  static empty(shape: Shape, dtype: DType = 'f32', what = 'tensor'): Tensor {
    checkShape(shape, what);
    const gpu = engine().gpu;
    const bytes = shapeSize(shape) * 4;
    const maxBind = gpu.maxBindingSize;
    if (bytes > maxBind) throw new BindingSizeError(what, shape, dtype, bytes, maxBind);
    const buf = gpu.pool.acquire(Math.max(4, bytes), `${what} ${shapeStr(shape)}`);
    return new Tensor(shape, dtype, { buf, refs: 1 });
  }

  /** Wrap a sub-range of an arena (see `Gpu.pool.createArena`); releasing it does not free the arena. */
  static fromBuffer(shape: Shape, dtype: DType, buf: GBuf, requiresGrad = false): Tensor {
    checkShape(shape, 'fromBuffer');
    if (buf.size < shapeSize(shape) * 4) {
      throw new Error(`webqat: fromBuffer: ${buf.size}-byte buffer is too small for ${dtype}${shapeStr(shape)}`);
    }
    return new Tensor(shape, dtype, { buf, refs: 1, external: true }, requiresGrad);
  }

  /**
   * Move this tensor's data into `buf` (an arena sub-range) and use it as storage from now on —
   * how optimizers gather a group's parameters into one buffer for a single fused update.
   * Views taken earlier keep the old storage.
   */
  relocate(buf: GBuf): void {
    const old = this.storage;
    if (!old) throw new Error(`webqat: relocate: ${this.describe()} was used after release`);
    if (buf.size < this.size * 4) throw new Error(`webqat: relocate: ${buf.size}-byte buffer is too small for ${this.describe()}`);
    const gpu = engine().gpu;
    gpu.copy(old.buf, 0, buf, 0, this.size * 4);
    if (--old.refs === 0 && !old.external) gpu.pool.release(old.buf);
    this.storage = { buf, refs: 1, external: true };
  }

  /** A tensor of another shape sharing this one's buffer (no copy; no autograd link). */
  viewAs(shape: Shape): Tensor {
    const st = this.storage;
    if (!st) throw new Error(`webqat: ${this.describe()} was used after release (released by ${this.releasedBy})`);
    st.refs++;
    return new Tensor(shape, this.dtype, st);
  }

  get rank(): number {
    return this.shape.length;
  }

  get released(): boolean {
    return this.storage === null;
  }

  /** The GPU buffer; throws if the tensor was released. */
  get buf(): GBuf {
    if (!this.storage) {
      throw new Error(`webqat: ${this.describe()} was used after release (released by ${this.releasedBy})`);
    }
    return this.storage.buf;
  }

  describe(): string {
    return `tensor#${this.id}${this.name ? ` '${this.name}'` : ''} ${this.dtype}${shapeStr(this.shape)}`;
  }

  toString(): string {
    return this.describe();
  }

  /** Return the buffer to the pool. Safe to call twice. Also releases its gradient. */
  release(by = 'release()'): void {
    const st = this.storage;
    if (!st) return;
    if (--st.refs === 0 && !st.external) engine().gpu.pool.release(st.buf);
    this.storage = null;
    this.releasedBy = by;
    this.node = null;
    this.releaseGraph(by);
    if (this.grad) {
      this.grad.release(by);
      this.grad = null;
    }
  }

  /** Who released this tensor (null while it is alive). */
  get releasedReason(): string | null {
    return this.releasedBy;
  }

  /** Release the graph intermediates a closed scope handed to this tensor (see `endScope`). */
  releaseGraph(by = 'releaseGraph()'): void {
    const owned = this.graphOwned;
    this.graphOwned = null;
    if (owned) for (const t of owned) if (!t.kept) t.release(by);
  }

  dispose(): void {
    this.release('dispose()');
  }

  /** Mark as surviving the enclosing scope(s). */
  keep(): this {
    this.kept = true;
    return this;
  }

  /** Read the values back (asynchronous; flushes pending GPU work). */
  async data(): Promise<TypedArrayFor<DType>> {
    const buf = this.buf;
    const raw = await engine().gpu.read(buf, this.size * 4);
    if (this.dtype === 'f32') return new Float32Array(raw);
    if (this.dtype === 'i32') return new Int32Array(raw);
    return new Uint32Array(raw);
  }

  /** Values as a plain array (asynchronous). */
  async array(): Promise<number[]> {
    return Array.from(await this.data());
  }

  /** The single value of a one-element tensor. */
  async item(): Promise<number> {
    if (this.size !== 1) throw new Error(`webqat: item() needs a one-element tensor, got ${this.describe()}`);
    return (await this.data())[0];
  }

  /** Run backward from this tensor (see tape.ts). */
  backward(seed?: Tensor): void {
    engine().backward(this, seed);
  }
}

export type { Gpu };
