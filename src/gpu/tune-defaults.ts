/**
 * The shipped default tune table: winners measured by the autotuner (src/gpu/tune.ts) on the
 * adapters we can run, keyed by adapter class (`Gpu.adapterClass`) and tune key (`family|shapeClass`),
 * plus candidates a class must never time (`exclude`: `family:variant`, or `family:variant@prefix` for
 * shape classes starting with prefix): SwiftShader takes minutes and gigabytes to compile the 8x8
 * storage-buffer matmul block and the general (non-pointwise) direct conv kernels (45 s for one 3x3
 * forward, > 13 GB in the conv test), so it never times them. Regenerate the winners with `npm run tune` on each adapter
 * (bench/tune.ts); any other adapter tunes itself on first use. Data only.
 */
export interface ShippedClass {
  winners: Readonly<Record<string, string>>;
  exclude?: readonly string[];
}

export const SHIPPED: Readonly<Record<string, ShippedClass>> = {
  "dawn:swiftshader": {
    "winners": {
      "conv.bwdData|k5x5s1x1:M8:N16384:K512:W16": "row",
      "conv.bwdData|k5x5s1x1:M8:N8192:K512:W16": "row",
      "conv.bwdWeight|k5x5s1x1b:M16:N256:K4096:W16": "row",
      "conv.bwdWeight|k5x5s1x1b:M16:N256:K8192:W16": "row",
      "conv.bwdWeight|k5x5s1x1b:M8:N32:K32768:W32": "row",
      "conv.bwdWeight|k5x5s1x1b:M8:N32:K65536:W32": "row",
      "conv.fwd|k5x5s1x1b:M16:N4096:K256:W16": "row",
      "conv.fwd|k5x5s1x1b:M16:N8192:K256:W16": "row",
      "conv.fwd|k5x5s1x1b:M8:N32768:K32:W32": "row",
      "conv.fwd|k5x5s1x1b:M8:N65536:K32:W32": "row",
      "matmul|NN:M128:N128:K16": "d32x32r4x4",
      "matmul|NN:M128:N256:K128": "p16x256r16x32",
      "matmul|NN:M32:N128:K128": "p8x128r8x16",
      "matmul|NN:M32:N128:K16": "d32x32r4x4",
      "matmul|NN:M32:N512:K128": "p8x128r8x16",
      "matmul|NN:M64:N128:K128": "p8x128r8x16",
      "matmul|NN:M64:N128:K16": "small",
      "matmul|NN:M64:N512:K128": "p16x256r16x32",
      "matmul|NTb:M128:N128:K256": "p16x128r16x16",
      "matmul|NTb:M128:N16:K128": "d32x32r4x4",
      "matmul|NTb:M128:N256:K1024": "p16x256r16x32",
      "matmul|NTb:M32:N128:K128": "d32x32r4x4",
      "matmul|NTb:M32:N128:K512": "p8x128r8x16",
      "matmul|NTb:M32:N16:K128": "small",
      "matmul|NTb:M64:N128:K128": "p8x128r8x16",
      "matmul|NTb:M64:N128:K512": "p16x128r16x16",
      "matmul|NTb:M64:N16:K128": "d32x32r4x4",
      "matmul|TN:M128:N128:K32": "p8x128r8x16",
      "matmul|TN:M128:N128:K64": "d32x32r4x4",
      "matmul|TN:M128:N256:K128": "p16x256r16x32",
      "matmul|TN:M128:N512:K32": "p8x128r8x16",
      "matmul|TN:M128:N512:K64": "p16x256r16x32",
      "matmul|TN:M16:N128:K128": "p8x128r8x16",
      "matmul|TN:M16:N128:K32": "small",
      "matmul|TN:M16:N128:K64": "p8x128r8x16",
      "matmul|TN:M256:N1024:K128": "p16x256r16x32"
    },
    "exclude": [
      "matmul:d64x64r8x8",
      "conv.fwd:direct@k",
      "conv.bwdData:direct@k",
      "conv.bwdWeight:direct@k"
    ]
  },
  "wgpu:swiftshader": {
    "winners": {},
    "exclude": [
      "matmul:d64x64r8x8",
      "conv.fwd:direct@k",
      "conv.bwdData:direct@k",
      "conv.bwdWeight:direct@k"
    ]
  }
};
