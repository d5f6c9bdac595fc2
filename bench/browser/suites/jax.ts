/**
 * jax-js (webgpu device) side of the cross-library suite. Models are plain functions of a parameter
 * record (NCHW, OIHW kernels: the same layout as webqat); one training step is a single `jit`ted
 * function: valueAndGrad of the loss (log-softmax cross-entropy against one-hot labels), then SGD
 * with heavy-ball momentum, returning the loss, new parameters, new momenta and new BN running
 * statistics (jax-js follows JAX: no in-place updates).
 *
 * Clock: jax-js is lazy, so reading the loss alone could leave the parameter updates for the next
 * step. Each step therefore awaits `blockUntilReady({ loss, params, momenta, stats })` (dispatches
 * every pending kernel of the step and waits for the GPU) and then `await loss.data()`.
 * matmul: C = np.matmul(A, B), then `await C.data()` (the whole product).
 *
 * Inference (float only): one `jit`ted forward of (params, running statistics, x): LeNet-5 with
 * float weights; SSPQ20 with its 1x1 weights binarized once before timing, batch norm from the
 * running statistics, DoReFa-4 activations, the shift as a depthwise 3x3 conv. One call =
 * np.array(batch) → forward → `await logits.data()` (the only output, so the whole forward).
 */
import { blockUntilReady, defaultDevice, init, jit, lax, nn, numpy as np, tree, valueAndGrad } from '@jax-js/jax';
import type { BenchData, InferData, LibInfo, Runner, Suite } from '../common.ts';
import { checkValue, mulberry32, OPTIM } from '../common.ts';

export const library = 'jax-js';

type A = np.Array;
type P = Record<string, A>;

async function adapterInfo(): Promise<Record<string, unknown>> {
  const gpu = (navigator as unknown as { gpu?: GPU }).gpu;
  const a = gpu ? await gpu.requestAdapter({ powerPreference: 'high-performance' }) : null;
  const i = (a as unknown as { info?: GPUAdapterInfo } | null)?.info;
  return i ? { vendor: i.vendor, architecture: i.architecture, device: i.device, description: i.description } : {};
}

/** Parameter factory with a fixed seed (He-style uniform, fan-in). */
class Init {
  private r: () => number;
  readonly params: P = {};
  readonly stats: P = {};
  constructor(seed: number) {
    this.r = mulberry32(seed);
  }
  uniform(name: string, shape: number[], bound: number): void {
    const n = shape.reduce((a, b) => a * b, 1);
    const d = new Float32Array(n);
    for (let i = 0; i < n; i++) d[i] = (this.r() * 2 - 1) * bound;
    this.params[name] = np.array(d).reshape(shape);
  }
  conv(name: string, cout: number, cin: number, k: number, bias: boolean): void {
    const fan = cin * k * k;
    this.uniform(`${name}.w`, [cout, cin, k, k], Math.sqrt(6 / fan));
    if (bias) this.uniform(`${name}.b`, [cout], 1 / Math.sqrt(fan));
  }
  dense(name: string, din: number, dout: number): void {
    this.uniform(`${name}.w`, [din, dout], Math.sqrt(6 / din));
    this.uniform(`${name}.b`, [dout], 1 / Math.sqrt(din));
  }
  bn(name: string, c: number): void {
    this.params[`${name}.g`] = np.ones([c]);
    this.params[`${name}.b`] = np.zeros([c]);
    this.stats[`${name}.rm`] = np.zeros([c]);
    this.stats[`${name}.rv`] = np.ones([c]);
  }
}

const conv = (x: A, w: A, stride: number, pad: number, groups = 1): A =>
  lax.convGeneralDilated(x, w, [stride, stride], [[pad, pad], [pad, pad]], groups > 1 ? { featureGroupCount: groups } : undefined);
const addBias = (x: A, b: A): A => x.add(b.reshape([1, b.shape[0], 1, 1]));
const maxPool2 = (x: A): A => lax.reduceWindow(x, np.max, [2, 2], [2, 2]);
const dense = (x: A, w: A, b: A): A => np.dot(x, w).add(b);

/** Training-mode batch norm over (N, H, W); writes the new running statistics into `out`. */
function bn(x: A, p: P, s: P, out: P, name: string, eps: number): A {
  const [n, c, h, w] = x.shape;
  const mean = x.ref.mean([0, 2, 3], { keepdims: true });
  const xc = x.sub(mean.ref);
  const v = np.square(xc.ref).mean([0, 2, 3], { keepdims: true });
  const y = xc.div(np.sqrt(v.ref.add(eps))).mul(p[`${name}.g`].reshape([1, c, 1, 1])).add(p[`${name}.b`].reshape([1, c, 1, 1]));
  const cnt = n * h * w;
  out[`${name}.rm`] = s[`${name}.rm`].mul(0.9).add(lax.stopGradient(mean.reshape([c])).mul(0.1));
  out[`${name}.rv`] = s[`${name}.rv`].mul(0.9).add(lax.stopGradient(v.reshape([c])).mul((0.1 * cnt) / (cnt - 1)));
  return y;
}

interface Model {
  init: Init;
  /** logits; consumes p, s and x; fills `out` with new running statistics */
  forward(p: P, s: P, x: A, out: P): A;
  /** inference logits (batch norm from the running statistics s); default: forward */
  infer?(p: P, s: P, x: A): A;
  /** parameter names whose values inference uses quantized (computed once before timing) */
  binarized?: (name: string) => boolean;
  notes?: string;
}

/** Inference batch norm: (x − running mean) / √(running var + eps) · γ + β. */
function bnInfer(x: A, p: P, s: P, name: string, eps: number): A {
  const c = x.shape[1];
  const r = (t: A) => t.reshape([1, c, 1, 1]);
  return x.sub(r(s[`${name}.rm`])).div(np.sqrt(r(s[`${name}.rv`]).add(eps))).mul(r(p[`${name}.g`])).add(r(p[`${name}.b`]));
}

function mlp(): Model {
  const I = new Init(5);
  I.dense('fc1', 784, 256);
  I.dense('fc2', 256, 128);
  I.dense('fc3', 128, 10);
  return {
    init: I,
    forward(p, _s, x) {
      let h = x.reshape([x.shape[0], 784]);
      h = nn.relu(dense(h, p['fc1.w'], p['fc1.b']));
      h = nn.relu(dense(h, p['fc2.w'], p['fc2.b']));
      return dense(h, p['fc3.w'], p['fc3.b']);
    },
  };
}

function lenet5(): Model {
  const I = new Init(5);
  I.conv('c1', 6, 1, 5, true);
  I.conv('c2', 16, 6, 5, true);
  I.dense('f1', 400, 120);
  I.dense('f2', 120, 84);
  I.dense('f3', 84, 10);
  return {
    init: I,
    forward(p, _s, x) {
      let h = maxPool2(nn.relu(addBias(conv(x, p['c1.w'], 1, 2), p['c1.b'])));
      h = maxPool2(nn.relu(addBias(conv(h, p['c2.w'], 1, 0), p['c2.b'])));
      h = h.reshape([h.shape[0], 400]);
      h = nn.relu(dense(h, p['f1.w'], p['f1.b']));
      h = nn.relu(dense(h, p['f2.w'], p['f2.b']));
      return dense(h, p['f3.w'], p['f3.b']);
    },
  };
}

const STAGES: [number, number][] = [[16, 1], [32, 2], [64, 2]];

function resnet20(): Model {
  const I = new Init(5);
  I.conv('stem', 16, 3, 3, false);
  I.bn('stem.bn', 16);
  let cin = 16;
  for (const [si, [w, s0]] of STAGES.entries()) {
    for (let b = 0; b < 3; b++) {
      const n = `l${si}.${b}`;
      const ci = b === 0 ? cin : w;
      const stride = b === 0 ? s0 : 1;
      I.conv(`${n}.c1`, w, ci, 3, false);
      I.bn(`${n}.bn1`, w);
      I.conv(`${n}.c2`, w, w, 3, false);
      I.bn(`${n}.bn2`, w);
      if (stride !== 1 || ci !== w) {
        I.conv(`${n}.sc`, w, ci, 1, false);
        I.bn(`${n}.scbn`, w);
      }
    }
    cin = w;
  }
  I.dense('fc', 64, 10);
  return {
    init: I,
    forward(p, s, x, out) {
      let h = nn.relu(bn(conv(x, p['stem.w'], 1, 1), p, s, out, 'stem.bn', 1e-5));
      let cin = 16;
      for (const [si, [w, s0]] of STAGES.entries()) {
        for (let b = 0; b < 3; b++) {
          const n = `l${si}.${b}`;
          const stride = b === 0 ? s0 : 1;
          const proj = stride !== 1 || cin !== w;
          let o = nn.relu(bn(conv(h.ref, p[`${n}.c1.w`], stride, 1), p, s, out, `${n}.bn1`, 1e-5));
          o = bn(conv(o, p[`${n}.c2.w`], 1, 1), p, s, out, `${n}.bn2`, 1e-5);
          const sc = proj ? bn(conv(h, p[`${n}.sc.w`], stride, 0), p, s, out, `${n}.scbn`, 1e-5) : h;
          h = nn.relu(o.add(sc));
          cin = w;
        }
      }
      return dense(h.mean([2, 3]), p['fc.w'], p['fc.b']);
    },
  };
}

/** BWN (DoReFa 1-bit) weights with a straight-through gradient. */
const bwn = (w: A): A => w.ref.add(lax.stopGradient(np.abs(w.ref).mean().mul(np.sign(w.ref)).sub(w)));
/** DoReFa 4-bit activation, straight-through inside [0, 1]. */
const act4 = (x: A): A => {
  const c = np.clip(x, 0, 1);
  return c.ref.add(lax.stopGradient(np.round(c.ref.mul(15)).div(15).sub(c)));
};
/** Active shift as a depthwise 3x3 conv with per-channel bilinear weights (see tfjs-sspq.ts). */
function shift(u: A, sh: A, stride: number): A {
  const c = sh.shape[1];
  const a = np.clip(sh, -1, 1);
  const w3 = (t: A) => np.stack([nn.relu(t.ref.neg()), np.abs(t.ref).neg().add(1), nn.relu(t)]); // [3, C]
  const wx = w3(a.ref.slice(0)).transpose().reshape([c, 1, 1, 3]);
  const wy = w3(a.slice(1)).transpose().reshape([c, 1, 3, 1]);
  return conv(u, wy.mul(wx), stride, 1, c);
}

function sspq20(): Model {
  const I = new Init(5);
  I.conv('stem', 16, 3, 3, false);
  let cin = 16;
  for (const [gi, [w, s0]] of STAGES.entries()) {
    for (let b = 0; b < 3; b++) {
      const n = `g${gi}.${b}`;
      const ci = b === 0 ? cin : w;
      const stride = b === 0 ? s0 : 1;
      if (b > 0) I.bn(`${n}.pre`, ci);
      I.conv(`${n}.a`, w, ci, 1, false);
      I.bn(`${n}.bna`, w);
      I.uniform(`${n}.shift`, [2, w], Math.SQRT1_2);
      I.conv(`${n}.b`, w, w, 1, false);
      I.bn(`${n}.bnb`, w);
      if (ci !== w || stride !== 1) I.conv(`${n}.s`, w, ci, 1, false);
    }
    I.bn(`g${gi}.last`, w);
    cin = w;
  }
  I.dense('fc', 64, 10);
  return {
    init: I,
    notes: 'active shift as a depthwise 3x3 conv with a kernel built from the per-channel bilinear weights (equal for |shift| <= 1)',
    forward(p, s, x, out) {
      let h = conv(x, p['stem.w'], 1, 1);
      for (const [gi, [w, s0]] of STAGES.entries()) {
        for (let b = 0; b < 3; b++) {
          const n = `g${gi}.${b}`;
          const stride = b === 0 ? s0 : 1;
          const proj = `${n}.s.w` in p;
          const pre = b > 0 ? act4(bn(h.ref, p, s, out, `${n}.pre`, 1e-4)) : h.ref;
          let u = act4(bn(conv(pre, bwn(p[`${n}.a.w`]), 1, 0), p, s, out, `${n}.bna`, 1e-4));
          u = shift(u, p[`${n}.shift`], stride);
          const v = bn(conv(u, bwn(p[`${n}.b.w`]), 1, 0), p, s, out, `${n}.bnb`, 1e-4);
          const sc = proj ? conv(h, bwn(p[`${n}.s.w`]), stride, 0) : h;
          h = v.add(sc);
          void w;
        }
        h = act4(bn(h, p, s, out, `g${gi}.last`, 1e-4));
      }
      return dense(h.mean([2, 3]), p['fc.w'], p['fc.b']);
    },
    binarized: (name) => /\.(a|b|s)\.w$/.test(name),
    infer(p, s, x) {
      let h = conv(x, p['stem.w'], 1, 1);
      for (const [gi, [, s0]] of STAGES.entries()) {
        for (let b = 0; b < 3; b++) {
          const n = `g${gi}.${b}`;
          const stride = b === 0 ? s0 : 1;
          const proj = `${n}.s.w` in p;
          const pre = b > 0 ? act4(bnInfer(h.ref, p, s, `${n}.pre`, 1e-4)) : h.ref;
          let u = act4(bnInfer(conv(pre, p[`${n}.a.w`], 1, 0), p, s, `${n}.bna`, 1e-4));
          u = shift(u, p[`${n}.shift`], stride);
          const v = bnInfer(conv(u, p[`${n}.b.w`], 1, 0), p, s, `${n}.bnb`, 1e-4);
          const sc = proj ? conv(h, p[`${n}.s.w`], stride, 0) : h;
          h = v.add(sc);
        }
        h = act4(bnInfer(h, p, s, `g${gi}.last`, 1e-4));
      }
      return dense(h.mean([2, 3]), p['fc.w'], p['fc.b']);
    },
  };
}

export function jaxSuite(): Suite {
  /** the adapter is a CPU implementation (set by init) */
  let software = false;
  return {
    library,
    inferVariants: ['float'],

    async prepareInfer(data: InferData): Promise<Runner> {
      const def = data.def;
      const model = def.model === 'lenet5' ? lenet5() : sspq20();
      const params = model.init.params;
      const stats = model.init.stats;
      const keys = Object.keys(params);
      const parameters = keys.reduce((s, k) => s + params[k].size, 0);
      // DoReFa 1-bit weights: mean|W|·sign(W), once
      for (const k of keys) if (model.binarized?.(k)) params[k] = np.abs(params[k].ref).mean().mul(np.sign(params[k]));
      const f = (p: P, s: P, x: A) => (model.infer ? model.infer(p, s, x) : model.forward(p, s, x, {}));
      // SSPQ20 on a software adapter runs eagerly (op by op): in Chromium on SwiftShader the jitted
      // whole-network forward loses the WebGPU device while its pipelines compile ("Instance
      // dropped in popErrorScope" after ~380 s, docs/BENCH.md); eager gives the same logits.
      // globalThis.JAX_EAGER (true / false) overrides the choice.
      const forced = (globalThis as { JAX_EAGER?: boolean }).JAX_EAGER;
      const eager = forced ?? (def.model === 'sspq20' && software);
      const fwd: ((p: P, s: P, x: A) => A) & { dispose?: () => void } = eager ? f : jit(f);
      const shape = [data.batch, ...def.shape];
      return {
        parameters,
        notes: `${def.model === 'sspq20' ? `float ops; 1x1 weights binarized once; ${model.notes}` : 'float weights'}; ${eager ? 'eager (op by op, no jit)' : 'jit of the whole forward'}`,
        async step() {
          const y = fwd(tree.ref(params), tree.ref(stats), np.array(data.x).reshape(shape)) as unknown as A;
          return checkValue((await y.data()) as Float32Array, def.classes);
        },
        dispose() {
          tree.dispose(params);
          tree.dispose(stats);
          fwd.dispose?.();
        },
      };
    },
    async init(): Promise<LibInfo> {
      const devices = await init('webgpu');
      if (!devices.includes('webgpu')) throw new Error(`webqat bench: jax-js: no webgpu device (got ${devices.join(', ') || 'none'})`);
      defaultDevice('webgpu');
      const adapter = await adapterInfo();
      software = /swiftshader|llvmpipe|lavapipe|software/i.test(JSON.stringify(adapter));
      return {
        library,
        version: '',
        backend: 'webgpu',
        adapter,
        clock: 'await blockUntilReady({loss, params, momenta, stats}) then await loss.data(); matmul: await C.data(); inference: await logits.data() (the forward\'s only output; jitted, or eager where the notes say so)',
      };
    },

    async prepare(data: BenchData): Promise<Runner> {
      const def = data.def;
      if (def.name === 'matmul') {
        const [m, k, n] = def.shape;
        const a = np.array(data.x).reshape([m, k]);
        const b = np.array(data.b!).reshape([k, n]);
        return {
          parameters: 0,
          async step() {
            const v = await np.matmul(a.ref, b.ref).data();
            return (v[0] as number) + (v[v.length - 1] as number);
          },
          dispose() {
            a.dispose();
            b.dispose();
          },
        };
      }
      const model = def.name === 'mlp' ? mlp() : def.name === 'lenet5' ? lenet5() : def.name === 'resnet20' ? resnet20() : sspq20();
      let params = model.init.params;
      let stats = model.init.stats;
      let mom: P = {};
      const keys = Object.keys(params);
      for (const k of keys) mom[k] = np.zeros(params[k].shape);
      const parameters = keys.reduce((s, k) => s + params[k].size, 0);
      const x = np.array(data.x).reshape([def.batch, ...def.shape]);
      const oneHot = new Float32Array(def.batch * def.classes);
      data.y.forEach((c, i) => (oneHot[i * def.classes + c] = 1));
      const y = np.array(oneHot).reshape([def.batch, def.classes]);
      const batch = def.batch;
      const lossFn = (p: P, s: P, xb: A, yb: A): [A, P] => {
        const out: P = {};
        const logits = model.forward(p, s, xb, out);
        const loss = nn.logSoftmax(logits).mul(yb).sum().mul(-1 / batch);
        return [loss, out];
      };
      const step = jit((p: P, m: P, s: P, xb: A, yb: A) => {
        const [[loss, s2], g] = valueAndGrad(lossFn, { hasAux: true })(tree.ref(p), s, xb, yb);
        const m2: P = {};
        const p2: P = {};
        for (const k of keys) {
          m2[k] = m[k].mul(OPTIM.momentum).add((g as P)[k]);
          p2[k] = p[k].sub(m2[k].ref.mul(OPTIM.lr));
        }
        return [loss, p2, m2, s2] as [A, P, P, P];
      });
      return {
        parameters,
        notes: model.notes,
        async step() {
          const [loss, p2, m2, s2] = step(params, mom, stats, x.ref, y.ref) as unknown as [A, P, P, P];
          params = p2;
          mom = m2;
          stats = s2;
          await blockUntilReady({ loss, params, mom, stats });
          return (await loss.data())[0] as number;
        },
        dispose() {
          tree.dispose(params);
          tree.dispose(mom);
          tree.dispose(stats);
          x.dispose();
          y.dispose();
          step.dispose?.();
        },
      };
    },
  };
}
