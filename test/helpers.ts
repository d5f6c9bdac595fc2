/**
 * Shared test utilities: one GPU per process, seeded random data, plain-TypeScript references,
 * closeness checks and a finite-difference gradient checker that differentiates the reference.
 */
import assert from 'node:assert/strict';
import * as wq from '../src/index.ts';

let announced = false;

/** Initialise (once) and print the adapter, so every test log names the implementation it ran on. */
export async function setup(): Promise<wq.Gpu> {
  // WEBQAT_LIMITS=default: a device with WebGPU's default limits only (the minimum-limits stage)
  const env = (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env ?? {};
  // kernel tuning off unless WEBQAT_TUNE says otherwise: the generic kernels and no background tier
  // switch, so results are reproducible bit for bit (every variant is tested by forcing it)
  const tune = wq.policyFromEnv() ?? 'off';
  const g = await wq.init(env.WEBQAT_LIMITS === 'default' ? { limits: 'default', tune } : { tune });
  if (!announced) {
    announced = true;
    const l = g.limits;
    console.log(
      `# adapter: ${g.adapter.name} (${g.adapter.runtime})` +
        (env.WEBQAT_LIMITS === 'default' ? `; default limits: storage binding ${l.maxStorageBufferBindingSize}, workgroup storage ${l.maxComputeWorkgroupStorageSize}, invocations ${l.maxComputeInvocationsPerWorkgroup}, storage buffers ${l.maxStorageBuffersPerShaderStage}` : ''),
    );
  }
  return g;
}

/** Mulberry32 (the one `src/data` uses): small, seeded, reproducible. */
export const rng: (seed: number) => () => number = wq.mulberry32;

export function randArray(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const r = rng(seed);
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * r();
  return a;
}

export function size(shape: readonly number[]): number {
  return shape.reduce((s, d) => s * d, 1);
}

/** Assert arrays are elementwise close: |a-b| <= atol + rtol*|b|. */
export function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, atol = 1e-5, rtol = 1e-4, what = ''): void {
  assert.equal(actual.length, expected.length, `${what}: length ${actual.length} != ${expected.length}`);
  let worst = -1;
  let worstErr = 0;
  for (let i = 0; i < actual.length; i++) {
    const err = Math.abs(actual[i] - expected[i]);
    const tol = atol + rtol * Math.abs(expected[i]);
    if (!(err <= tol) && (worst < 0 || err - tol > worstErr)) {
      worst = i;
      worstErr = err - tol;
    }
  }
  if (worst >= 0) {
    assert.fail(`${what}: element ${worst}: got ${actual[worst]}, expected ${expected[worst]} (atol ${atol}, rtol ${rtol})`);
  }
}

/**
 * Check an op's backward against central finite differences of its plain-TypeScript reference.
 *  - `gpuFn` builds the op from GPU tensors (each input requiresGrad);
 *  - `refFn` computes the same forward on host arrays (in float64).
 * The loss is sum(out * w) for a fixed random w, so every output element's gradient is exercised.
 */
export async function gradCheck(
  gpuFn: (xs: wq.Tensor[]) => wq.Tensor,
  refFn: (xs: Float64Array[]) => ArrayLike<number>,
  inputs: { data: Float32Array; shape: number[]; grad?: boolean }[],
  opts: { eps?: number; atol?: number; rtol?: number; seed?: number; what?: string } = {},
): Promise<void> {
  const eps = opts.eps ?? 1e-3;
  const what = opts.what ?? 'gradCheck';
  const xs = inputs.map((i) => wq.tensor(i.data, i.shape, 'f32', i.grad !== false));
  const out = gpuFn(xs);
  const w = randArray(out.size, opts.seed ?? 99);
  const wt = wq.tensor(w, out.shape);
  const loss = wq.sum(wq.mul(out, wt));
  loss.backward();
  const host = inputs.map((i) => Float64Array.from(i.data));
  const f = () => {
    const y = refFn(host);
    let s = 0;
    for (let k = 0; k < y.length; k++) s += y[k] * w[k];
    return s;
  };
  for (let k = 0; k < inputs.length; k++) {
    if (inputs[k].grad === false) continue;
    const g = xs[k].grad;
    assert.ok(g, `${what}: input ${k} got no gradient`);
    const got = await g.data();
    const num = new Float64Array(host[k].length);
    for (let j = 0; j < host[k].length; j++) {
      const v = host[k][j];
      host[k][j] = v + eps;
      const fp = f();
      host[k][j] = v - eps;
      const fm = f();
      host[k][j] = v;
      num[j] = (fp - fm) / (2 * eps);
    }
    assertClose(got, num, opts.atol ?? 2e-3, opts.rtol ?? 2e-2, `${what}: d/d(input ${k})`);
  }
  for (const x of xs) x.release();
  wt.release();
}

export { assert, wq };
