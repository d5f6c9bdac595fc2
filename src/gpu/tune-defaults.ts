/**
 * The shipped default tune table: winners measured by the autotuner (src/gpu/tune.ts) on the
 * adapters we can run, keyed by adapter class (`Gpu.adapterClass`) and tune key (`family|shapeClass`),
 * plus candidates a class must never time (`exclude`, `family:variant`: e.g. a register block that
 * SwiftShader takes minutes to compile). Regenerate the winners with `npm run tune` on each adapter
 * (bench/tune.ts); any other adapter tunes itself on first use. Data only.
 */
export interface ShippedClass {
  winners: Readonly<Record<string, string>>;
  exclude?: readonly string[];
}

export const SHIPPED: Readonly<Record<string, ShippedClass>> = {
  'dawn:swiftshader': { winners: {}, exclude: ['matmul:d64x64r8x8'] },
  'wgpu:swiftshader': { winners: {}, exclude: ['matmul:d64x64r8x8'] },
};
