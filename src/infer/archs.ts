/**
 * The architectures the inference runtime can run, as step lists: the same layer names as the
 * training models' state dicts (src/models), so an exported file maps one to one. Inference only
 * needs the forward graph, so this does not import the training models.
 */
/**
 * Steps read register `src` and write register `dst` (both default 'x'); a register holds one
 * [N, C, H, W] activation. `bn` names a batch norm stored folded (`<bn>.weight` = γ/√(var + eps),
 * `<bn>.bias` = β − mean·γ/√(var + eps)); `act` is a DoReFa activation width (0 = none, 32 = clip to [0, 1] only).
 */
export type ConvStep = {
  op: 'conv';
  layer: string;
  cin: number;
  cout: number;
  k: number;
  stride: number;
  pad: number;
  bias: boolean;
  relu: boolean;
  bn?: string;
  act?: number;
  /** a register added after scale, bias and batch norm */
  res?: string;
  src?: string;
  dst?: string;
};
export type LinearStep = { op: 'linear'; layer: string; in: number; out: number; bias: boolean; relu: boolean; src?: string; dst?: string };
export type Step =
  | ConvStep
  | LinearStep
  | { op: 'maxpool'; k: number; stride: number; src?: string; dst?: string }
  | { op: 'flatten'; src?: string; dst?: string }
  | { op: 'bnact'; bn: string; c: number; act: number; src?: string; dst?: string }
  | { op: 'shift'; layer: string; c: number; stride: number; round: boolean; src?: string; dst?: string }
  | { op: 'gap'; src?: string; dst?: string };

export interface Arch {
  steps: Step[];
  inputShape: [number, number, number];
  numClasses: number;
}

interface Cfg {
  /** CIFAR ResNet shortcut: 'B' (1x1 conv + BN projection, the default) or 'A' (subsample + zero pad) */
  shortcut?: string;
  inChannels?: number;
  numClasses?: number;
  inputSize?: number;
  hidden?: number[];
  wBits?: number;
  aBits?: number;
  shift?: 'active' | 'sparse';
}

function out(size: number, k: number, s: number, p: number): number {
  return Math.floor((size + 2 * p - k) / s) + 1;
}

function lenet(c: Cfg, wide: boolean): Arch {
  const ch = c.inChannels ?? 1;
  const classes = c.numClasses ?? 10;
  const size = c.inputSize ?? 28;
  const [c1, c2] = wide ? [32, 64] : [6, 16];
  const pad = wide ? 0 : 2;
  const h = out(out(out(out(size, 5, 1, pad), 2, 2, 0), 5, 1, 0), 2, 2, 0);
  if (h < 1) throw new Error(`webqat: infer: input size ${size} is too small for ${wide ? 'lenet5-twn' : 'lenet5'}`);
  const conv = (layer: string, cin: number, cout: number, p: number): Step => ({ op: 'conv', layer, cin, cout, k: 5, stride: 1, pad: p, bias: true, relu: true });
  const lin = (layer: string, i: number, o: number, relu: boolean): Step => ({ op: 'linear', layer, in: i, out: o, bias: true, relu });
  const steps: Step[] = [
    conv('features.0', ch, c1, pad),
    { op: 'maxpool', k: 2, stride: 2 },
    conv('features.3', c1, c2, 0),
    { op: 'maxpool', k: 2, stride: 2 },
    { op: 'flatten' },
  ];
  if (wide) steps.push(lin('classifier.1', c2 * h * h, 512, true), lin('classifier.3', 512, classes, false));
  else steps.push(lin('classifier.1', c2 * h * h, 120, true), lin('classifier.3', 120, 84, true), lin('classifier.5', 84, classes, false));
  return { steps, inputShape: [ch, size, size], numClasses: classes };
}

function mlp(c: Cfg): Arch {
  const ch = c.inChannels ?? 1;
  const size = c.inputSize ?? 28;
  const sizes = [ch * size * size, ...(c.hidden ?? [256, 128]), c.numClasses ?? 10];
  const steps: Step[] = [{ op: 'flatten' }];
  let idx = 1;
  for (let i = 0; i + 1 < sizes.length; i++) {
    const last = i + 2 >= sizes.length;
    steps.push({ op: 'linear', layer: `layers.${idx}`, in: sizes[i], out: sizes[i + 1], bias: true, relu: !last });
    idx += last ? 1 : 2;
  }
  return { steps, inputShape: [ch, size, size], numClasses: sizes[sizes.length - 1] };
}

/**
 * CIFAR-form SSPQ (src/models/sspq.ts): 3×3 float stem; per group, blocks of
 * [bn_pre + act] → 1×1 conv_a (binary) + bn_a + act → shift (stride) → 1×1 conv_b (binary) + bn_b
 * + shortcut (binary 1×1 conv with stride, or the block input); then bn_last + act; global average
 * pool; float fc.
 */
function sspqCifar(name: string, widths: number[], counts: number[], c: Cfg): Arch {
  const wBits = c.wBits ?? 1;
  if (wBits !== 1) throw new Error(`webqat: infer: ${name} with wBits ${wBits}: only 1-bit (binary) weights run packed`);
  // DoReFa activations: k bits, or 32 = clip to [0, 1] only (QuantAct's dorefa:32)
  const act = c.aBits ?? 4;
  const ch = c.inChannels ?? 3;
  const size = c.inputSize ?? 32;
  const classes = c.numClasses ?? 10;
  const round = (c.shift ?? 'active') === 'sparse';
  const steps: Step[] = [{ op: 'conv', layer: 'conv1', cin: ch, cout: widths[0], k: 3, stride: 1, pad: 1, bias: false, relu: false }];
  let cin = widths[0];
  widths.forEach((w, g) => {
    for (let i = 0; i < counts[g]; i++) {
      const p = `groups.${g}.blocks.${i}`;
      const stride = i === 0 && g > 0 ? 2 : 1;
      const bcin = i === 0 ? cin : w;
      let h = 'x';
      if (i > 0) {
        steps.push({ op: 'bnact', bn: `${p}.bn_pre`, c: bcin, act, src: 'x', dst: 'h' });
        h = 'h';
      }
      steps.push({ op: 'conv', layer: `${p}.conv_a`, cin: bcin, cout: w, k: 1, stride: 1, pad: 0, bias: false, relu: false, bn: `${p}.bn_a`, act, src: h, dst: 'u' });
      steps.push({ op: 'shift', layer: `${p}.shift`, c: w, stride, round, src: 'u', dst: 'u' });
      let res = 'x';
      if (bcin !== w || stride !== 1) {
        steps.push({ op: 'conv', layer: `${p}.shortcut`, cin: bcin, cout: w, k: 1, stride, pad: 0, bias: false, relu: false, src: 'x', dst: 's' });
        res = 's';
      }
      steps.push({ op: 'conv', layer: `${p}.conv_b`, cin: w, cout: w, k: 1, stride: 1, pad: 0, bias: false, relu: false, bn: `${p}.bn_b`, res, src: 'u', dst: 'x' });
    }
    steps.push({ op: 'bnact', bn: `groups.${g}.bn_last`, c: w, act, src: 'x', dst: 'x' });
    cin = w;
  });
  steps.push({ op: 'gap' }, { op: 'linear', layer: 'fc', in: cin, out: classes, bias: true, relu: false });
  return { steps, inputShape: [ch, size, size], numClasses: classes };
}

/**
 * CIFAR ResNet-(6n+2) (src/models/resnet.ts, `CifarResNet`): 3x3 stem + BN + ReLU; per stage of
 * widths 16 / 32 / 64 (stride 1, 2, 2), n BasicBlocks of conv1 (3x3, stride) + bn1 + ReLU →
 * conv2 (3x3) + bn2 + shortcut, then ReLU; the shortcut is the block input or, where the shape
 * changes, `downsample` = 1x1 conv (stride) + BN (option B); global average pool; fc. Every batch
 * norm is folded into the conv before it; the residual add and the ReLU run in conv2's epilogue.
 */
function cifarResNet(depth: number, c: Cfg): Arch {
  if ((c.shortcut ?? 'B') !== 'B') {
    throw new Error(`webqat: infer: resnet${depth} with shortcut '${c.shortcut}': only option-B (1x1 conv + batch norm) shortcuts run packed`);
  }
  const n = (depth - 2) / 6;
  const ch = c.inChannels ?? 3;
  const size = c.inputSize ?? 32;
  const classes = c.numClasses ?? 10;
  if (size < 4) throw new Error(`webqat: infer: input size ${size} is too small for resnet${depth}`);
  const conv = (layer: string, cin: number, cout: number, k: number, stride: number, bn: string, relu: boolean, src: string, dst: string, res?: string): ConvStep =>
    ({ op: 'conv', layer, cin, cout, k, stride, pad: k === 3 ? 1 : 0, bias: false, relu, bn, src, dst, ...(res ? { res } : {}) });
  const steps: Step[] = [conv('conv1', ch, 16, 3, 1, 'bn1', true, 'x', 'x')];
  let cin = 16;
  [16, 32, 64].forEach((w, g) => {
    for (let b = 0; b < n; b++) {
      const p = `layer${g + 1}.${b}`;
      const stride = b === 0 && g > 0 ? 2 : 1;
      const bcin = b === 0 ? cin : w;
      steps.push(conv(`${p}.conv1`, bcin, w, 3, stride, `${p}.bn1`, true, 'x', 'h'));
      let res = 'x';
      if (bcin !== w || stride !== 1) {
        steps.push(conv(`${p}.downsample.0`, bcin, w, 1, stride, `${p}.downsample.1`, false, 'x', 's'));
        res = 's';
      }
      steps.push(conv(`${p}.conv2`, w, w, 3, 1, `${p}.bn2`, true, 'h', 'x', res));
    }
    cin = w;
  });
  steps.push({ op: 'gap' }, { op: 'linear', layer: 'fc', in: cin, out: classes, bias: true, relu: false });
  return { steps, inputShape: [ch, size, size], numClasses: classes };
}

const ARCHS: Record<string, (c: Cfg) => Arch> = {
  lenet5: (c) => lenet(c, false),
  'lenet5-twn': (c) => lenet(c, true),
  mlp,
  sspq20: (c) => sspqCifar('sspq20', [16, 32, 64], [3, 3, 3], c),
  'sspq20-wide': (c) => sspqCifar('sspq20-wide', [32, 64, 128], [3, 3, 3], c),
  resnet20: (c) => cifarResNet(20, c),
  resnet32: (c) => cifarResNet(32, c),
  resnet44: (c) => cifarResNet(44, c),
  resnet56: (c) => cifarResNet(56, c),
};

/** Model names the inference runtime can run. */
export function inferModels(): string[] {
  return Object.keys(ARCHS);
}

/** The step list of a model by registry name and the options it was built with. */
export function archOf(model: string, config: Record<string, unknown>): Arch {
  const build = Object.hasOwn(ARCHS, model) ? ARCHS[model] : undefined;
  if (!build) throw new Error(`webqat: infer: unknown model '${model}'; the inference runtime runs: ${inferModels().join(', ')}`);
  return build(config as Cfg);
}

/** The weight shape of a conv/linear step. */
export function weightShape(s: ConvStep | LinearStep): number[] {
  return s.op === 'conv' ? [s.cout, s.cin, s.k, s.k] : [s.out, s.in];
}
