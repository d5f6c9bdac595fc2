/**
 * Size-class buffer pool. Every tensor buffer comes from here and goes back here; a steady training
 * loop therefore creates no new GPUBuffer after its first step. Classes are 4 per power of two
 * (waste <= 25 %), never below 256 bytes.
 */
export interface GBuf {
  readonly buffer: GPUBuffer;
  /** capacity in bytes (the size class) */
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
      b = { buffer, size, id: this.nextId++ };
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
    Object.assign(this.stats, { liveBuffers: 0, liveBytes: 0, inUseBuffers: 0, inUseBytes: 0 });
  }
}
