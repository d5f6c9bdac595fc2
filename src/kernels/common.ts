/** Shared WGSL snippets and uniform packing for kernel launchers. */
import type { Gpu, GBuf } from '../gpu/index.ts';

export type { Gpu, GBuf };
export type KDType = 'f32' | 'i32' | 'u32';

export const MAX_RANK = 8;

/** WGSL line computing a flat thread index from a (possibly 2-D folded) 1-D grid of `size`-wide groups. */
export const flatIndex = (size = 256) =>
  `let i = gid.x + gid.y * nwg.x * ${size}u;`;

export const mainSig = (size = 256) =>
  `@compute @workgroup_size(${size})\nfn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u)`;

/** Row-major contiguous strides. */
export function stridesOf(shape: readonly number[]): number[] {
  const s = new Array(shape.length).fill(1);
  for (let i = shape.length - 2; i >= 0; i--) s[i] = s[i + 1] * shape[i + 1];
  return s;
}

/**
 * Uniform writer: packs u32/i32/f32 scalars in order, and 8-wide u32 arrays (WGSL array<vec4u,2>)
 * aligned to 16 bytes. Build the same layout in the WGSL struct.
 */
export class Uniforms {
  private buf = new ArrayBuffer(512);
  private view = new DataView(this.buf);
  private off = 0;
  u32(v: number): this {
    this.view.setUint32(this.off, v >>> 0, true);
    this.off += 4;
    return this;
  }
  i32(v: number): this {
    this.view.setInt32(this.off, v | 0, true);
    this.off += 4;
    return this;
  }
  f32(v: number): this {
    this.view.setFloat32(this.off, v, true);
    this.off += 4;
    return this;
  }
  /** pad to a 16-byte boundary */
  align(): this {
    this.off = Math.ceil(this.off / 16) * 16;
    return this;
  }
  /** an array<vec4u, 2> of up to 8 entries, zero padded */
  arr8(vals: readonly number[], fill = 0): this {
    this.align();
    for (let k = 0; k < MAX_RANK; k++) this.u32(k < vals.length ? vals[k] : fill);
    return this;
  }
  done(): Uint8Array {
    const n = Math.max(16, Math.ceil(this.off / 16) * 16);
    return new Uint8Array(this.buf, 0, n);
  }
}

/** Throw a shape error naming the op and both shapes. */
export function shapeError(op: string, msg: string): Error {
  return new Error(`webqat: ${op}: ${msg}`);
}

export function fmt(shape: readonly number[]): string {
  return `[${shape.join(',')}]`;
}

/** Output size of a convolution along one axis (may be < 1 when the kernel does not fit). */
export function convOutSize(size: number, k: number, stride: number, pad: number, dil: number): number {
  return Math.floor((size + 2 * pad - dil * (k - 1) - 1) / stride) + 1;
}
