/**
 * Fused optimizer updates: one dispatch updates every parameter of a group. The group's parameters,
 * gradients and each optimizer state live in separate arenas (one GPUBuffer each) with the same
 * layout, so element j of every arena belongs to the same weight. A launch updates the element
 * range [base, base + n). Hyper-parameters travel in uniforms, so the learning rate can change every
 * step without recompiling.
 *
 * Formulas follow PyTorch (torch.optim.SGD / Adam / AdamW, non-foreach, no amsgrad):
 *   SGD:   g = grad + wd·w;  b = first ? g : μ·b + (1-τ)·g;  g = nesterov ? g + μ·b : b;  w -= lr·g
 *   Adam:  g = grad + wd·w;  m = β1·m + (1-β1)·g;  v = β2·v + (1-β2)·g²;
 *          w -= lr/(1-β1ᵗ) · m / (sqrt(v)/sqrt(1-β2ᵗ) + ε)
 *   AdamW: w *= 1 - lr·wd first (decoupled), then the Adam update without the wd·w term.
 */
import { grid1d } from '../gpu/index.ts';
import { type GBuf, type Gpu, flatIndex, mainSig, Uniforms } from './common.ts';

const PARAMS = /* wgsl */ `
struct P {
  base: u32, n: u32, flags: u32, pad0: u32,
  lr: f32, l2: f32, decay: f32, momentum: f32,
  dampening: f32, beta1: f32, beta2: f32, eps: f32,
  stepSize: f32, sqrtBc2: f32, pad1: f32, pad2: f32,
}
@group(0) @binding(0) var<uniform> p: P;`;

const FLAG_NESTEROV = 1;
const FLAG_FIRST = 2;

const sgdCode = () => /* wgsl */ `
${PARAMS}
@group(0) @binding(1) var<storage, read_write> W: array<f32>;
@group(0) @binding(2) var<storage, read> G: array<f32>;
${mainSig()} {
  ${flatIndex()}
  if (i >= p.n) { return; }
  let j = p.base + i;
  let w = W[j];
  let g = G[j] + p.l2 * w;
  W[j] = w * p.decay - p.lr * g;
}`;

const sgdMomentumCode = () => /* wgsl */ `
${PARAMS}
@group(0) @binding(1) var<storage, read_write> W: array<f32>;
@group(0) @binding(2) var<storage, read> G: array<f32>;
@group(0) @binding(3) var<storage, read_write> B: array<f32>;
${mainSig()} {
  ${flatIndex()}
  if (i >= p.n) { return; }
  let j = p.base + i;
  let w = W[j];
  var g = G[j] + p.l2 * w;
  var b = g;
  if ((p.flags & ${FLAG_FIRST}u) == 0u) {
    b = p.momentum * B[j] + (1.0 - p.dampening) * g;
  }
  B[j] = b;
  if ((p.flags & ${FLAG_NESTEROV}u) != 0u) {
    g = g + p.momentum * b;
  } else {
    g = b;
  }
  W[j] = w * p.decay - p.lr * g;
}`;

const adamCode = () => /* wgsl */ `
${PARAMS}
@group(0) @binding(1) var<storage, read_write> W: array<f32>;
@group(0) @binding(2) var<storage, read> G: array<f32>;
@group(0) @binding(3) var<storage, read_write> M: array<f32>;
@group(0) @binding(4) var<storage, read_write> V: array<f32>;
${mainSig()} {
  ${flatIndex()}
  if (i >= p.n) { return; }
  let j = p.base + i;
  let w = W[j];
  let g = G[j] + p.l2 * w;
  let m = p.beta1 * M[j] + (1.0 - p.beta1) * g;
  let v = p.beta2 * V[j] + (1.0 - p.beta2) * g * g;
  M[j] = m;
  V[j] = v;
  W[j] = w * p.decay - p.stepSize * m / (sqrt(v) / p.sqrtBc2 + p.eps);
}`;

/** Hyper-parameters of one launch (host-side values; derived terms are computed by the launcher). */
export interface SgdHyper {
  lr: number;
  /** coupled (L2) weight decay: g += wd·w */
  weightDecay: number;
  momentum: number;
  dampening: number;
  nesterov: boolean;
  /** the momentum buffers are empty (PyTorch initialises them with the first gradient) */
  firstStep: boolean;
}

export interface AdamHyper {
  lr: number;
  weightDecay: number;
  /** AdamW: decoupled weight decay (w *= 1 - lr·wd) instead of L2 */
  decoupled: boolean;
  beta1: number;
  beta2: number;
  eps: number;
  /** 1-based step count of the parameters in this range */
  step: number;
}

function checkRange(op: string, base: number, n: number, bufs: readonly GBuf[]): void {
  if (!Number.isInteger(base) || !Number.isInteger(n) || base < 0 || n < 0) {
    throw new Error(`webqat: ${op}: invalid element range [${base}, ${base + n})`);
  }
  for (const b of bufs) {
    if ((base + n) * 4 > b.size) {
      throw new Error(`webqat: ${op}: element range [${base}, ${base + n}) exceeds a ${b.size}-byte buffer`);
    }
  }
  for (let a = 0; a < bufs.length; a++) {
    for (let c = a + 1; c < bufs.length; c++) {
      if (bufs[a].buffer === bufs[c].buffer) {
        throw new Error(`webqat: ${op}: parameters, gradients and optimizer states must live in different GPU buffers`);
      }
    }
  }
}

function uniforms(base: number, n: number, flags: number, f: {
  lr: number; l2: number; decay: number; momentum?: number; dampening?: number;
  beta1?: number; beta2?: number; eps?: number; stepSize?: number; sqrtBc2?: number;
}): Uint8Array {
  return new Uniforms()
    .u32(base).u32(n).u32(flags).u32(0)
    .f32(f.lr).f32(f.l2).f32(f.decay).f32(f.momentum ?? 0)
    .f32(f.dampening ?? 0).f32(f.beta1 ?? 0).f32(f.beta2 ?? 0).f32(f.eps ?? 0)
    .f32(f.stepSize ?? 0).f32(f.sqrtBc2 ?? 1).f32(0).f32(0)
    .done();
}

/**
 * SGD over elements [base, base + n) of the weight arena `w`, gradient arena `g` and (when
 * momentum != 0) momentum arena `buf`.
 */
export function sgdStep(gpu: Gpu, w: GBuf, g: GBuf, buf: GBuf | null, base: number, n: number, h: SgdHyper): void {
  if (h.momentum !== 0 && !buf) throw new Error('webqat: sgdStep: momentum != 0 needs a momentum buffer');
  const bufs = h.momentum !== 0 ? [w, g, buf!] : [w, g];
  checkRange('sgdStep', base, n, bufs);
  if (n === 0) return;
  const flags = (h.nesterov ? FLAG_NESTEROV : 0) | (h.firstStep ? FLAG_FIRST : 0);
  const u = uniforms(base, n, flags, {
    lr: h.lr, l2: h.weightDecay, decay: 1, momentum: h.momentum, dampening: h.dampening,
  });
  const pipe = h.momentum !== 0 ? gpu.pipeline('optim:sgd-momentum', sgdMomentumCode) : gpu.pipeline('optim:sgd', sgdCode);
  gpu.dispatch(pipe, bufs, u, grid1d(n, 256), 'sgdStep');
}

/** Adam / AdamW over elements [base, base + n) of the arenas w, g, m (first moment), v (second moment). */
export function adamStep(gpu: Gpu, w: GBuf, g: GBuf, m: GBuf, v: GBuf, base: number, n: number, h: AdamHyper): void {
  checkRange('adamStep', base, n, [w, g, m, v]);
  if (!(h.step >= 1)) throw new Error(`webqat: adamStep: step must be >= 1, got ${h.step}`);
  if (n === 0) return;
  const bc1 = 1 - h.beta1 ** h.step;
  const bc2 = 1 - h.beta2 ** h.step;
  const u = uniforms(base, n, 0, {
    lr: h.lr,
    l2: h.decoupled ? 0 : h.weightDecay,
    decay: h.decoupled ? 1 - h.lr * h.weightDecay : 1,
    beta1: h.beta1, beta2: h.beta2, eps: h.eps,
    stepSize: h.lr / bc1,
    sqrtBc2: Math.sqrt(bc2),
  });
  gpu.dispatch(gpu.pipeline('optim:adam', adamCode), [w, g, m, v], u, grid1d(n, 256), 'adamStep');
}
