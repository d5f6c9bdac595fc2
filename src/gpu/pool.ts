/**
 * Size-class buffer pool. Every tensor buffer comes from here and goes back here; a steady training
 * loop therefore creates no new GPUBuffer after its first step. Classes are 4 per power of two
 * (waste <= 25 %), never below 256 bytes.
 */
export interface GBuf {
  readonly buffer: GPUBuffer;
  /** byte offset inside `buffer` (0 for pooled buffers; 256-aligned sub-ranges of an arena otherwise) */
  readonly offset: number;
  /** capacity in bytes (the size class, or the sub-range length) */
  readonly size: number;
  readonly id: number;
}

export interface PoolStats {
  /** GPUBuffers that exist (in use + idle in the pool) */
  liveBuffers: number;
  liveBytes: number;
  inUseBuffers: number;
  inUseBytes: number;
  /** GPUBuffers created since start */
  created: number;
}

export function sizeClass(bytes: number): number {
  const n = Math.max(256, Math.ceil(bytes));
  const p = 2 ** Math.floor(Math.log2(n));
  if (p === n) return n;
  const step = Math.max(4, p / 4);
  return Math.ceil(n / step) * step;
}

const USAGE = 0x80 /* STORAGE */ | 0x4 /* COPY_SRC */ | 0x8; /* COPY_DST */

export class BufferPool {
  private free = new Map<number, GBuf[]>();
  private inUse = new Set<GBuf>();
  private arenas = new Set<GPUBuffer>();
  private nextId = 1;
  readonly stats: PoolStats = { liveBuffers: 0, liveBytes: 0, inUseBuffers: 0, inUseBytes: 0, created: 0 };

  constructor(
    private device: GPUDevice,
    private maxBufferSize: number,
  ) {}

  acquire(bytes: number, what = 'buffer'): GBuf {
    const size = sizeClass(bytes);
    if (size > this.maxBufferSize) {
      throw new Error(
        `webqat: ${what} needs ${bytes} bytes, more than this device's maxBufferSize (${this.maxBufferSize})`,
      );
    }
    const list = this.free.get(size);
    let b = list?.pop();
    if (!b) {
      const buffer = this.device.createBuffer({ size, usage: USAGE, label: `webqat:${size}` });
      b = { buffer, offset: 0, size, id: this.nextId++ };
      this.stats.liveBuffers++;
      this.stats.liveBytes += size;
      this.stats.created++;
    }
    this.inUse.add(b);
    this.stats.inUseBuffers++;
    this.stats.inUseBytes += size;
    return b;
  }

  release(b: GBuf): void {
    if (!this.inUse.delete(b)) throw new Error('webqat: buffer released twice');
    this.stats.inUseBuffers--;
    this.stats.inUseBytes -= b.size;
    let list = this.free.get(b.size);
    if (!list) this.free.set(b.size, (list = []));
    list.push(b);
  }

  /**
   * A long-lived arena (parameters, gradients, optimizer state of one group): one GPUBuffer that
   * callers carve into 256-byte-aligned sub-ranges with `subBuffer`. Counted in the live stats.
   */
  createArena(bytes: number, label = 'arena'): GBuf {
    const size = Math.max(256, Math.ceil(bytes / 256) * 256);
    if (size > this.maxBufferSize) {
      throw new Error(`webqat: ${label} needs ${bytes} bytes, more than this device's maxBufferSize (${this.maxBufferSize})`);
    }
    const buffer = this.device.createBuffer({ size, usage: USAGE, label: `webqat:${label}` });
    this.stats.liveBuffers++;
    this.stats.liveBytes += size;
    this.stats.created++;
    this.arenas.add(buffer);
    return { buffer, offset: 0, size, id: this.nextId++ };
  }

  destroyArena(a: GBuf): void {
    if (!this.arenas.delete(a.buffer)) return;
    a.buffer.destroy();
    this.stats.liveBuffers--;
    this.stats.liveBytes -= a.size;
  }

  /** Destroy idle buffers (e.g. after a shape change). */
  trim(): void {
    for (const list of this.free.values()) {
      for (const b of list) {
        b.buffer.destroy();
        this.stats.liveBuffers--;
        this.stats.liveBytes -= b.size;
      }
    }
    this.free.clear();
  }

  destroyAll(): void {
    this.trim();
    for (const b of this.inUse) b.buffer.destroy();
    this.inUse.clear();
    for (const a of this.arenas) a.destroy();
    this.arenas.clear();
    Object.assign(this.stats, { liveBuffers: 0, liveBytes: 0, inUseBuffers: 0, inUseBytes: 0 });
  }
}

export const ALIGN = 256;

/** A sub-range of an arena: `bytes` at `offset` (offset must be 256-aligned). */
export function subBuffer(arena: GBuf, offset: number, bytes: number): GBuf {
  if (offset % ALIGN !== 0) throw new Error(`webqat: subBuffer offset ${offset} is not ${ALIGN}-aligned`);
  const size = Math.max(16, Math.ceil(bytes / 16) * 16);
  if (arena.offset + offset + size > arena.offset + arena.size) {
    throw new Error(`webqat: subBuffer [${offset}, ${offset + size}) exceeds its ${arena.size}-byte arena`);
  }
  return { buffer: arena.buffer, offset: arena.offset + offset, size, id: arena.id * 65536 + offset / ALIGN };
}
