/**
 * The architectures the inference runtime can run, as step lists: the same layer names as the
 * training models' state dicts (src/models), so an exported file maps one to one. Inference only
 * needs the forward graph, so this does not import the training models.
 */
export type Step =
  | { op: 'conv'; layer: string; cin: number; cout: number; k: number; stride: number; pad: number; bias: boolean; relu: boolean }
  | { op: 'linear'; layer: string; in: number; out: number; bias: boolean; relu: boolean }
  | { op: 'maxpool'; k: number; stride: number }
  | { op: 'flatten' };

export interface Arch {
  steps: Step[];
  inputShape: [number, number, number];
  numClasses: number;
}

interface Cfg {
  inChannels?: number;
  numClasses?: number;
  inputSize?: number;
  hidden?: number[];
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

const ARCHS: Record<string, (c: Cfg) => Arch> = {
  lenet5: (c) => lenet(c, false),
  'lenet5-twn': (c) => lenet(c, true),
  mlp,
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
export function weightShape(s: Extract<Step, { op: 'conv' | 'linear' }>): number[] {
  return s.op === 'conv' ? [s.cout, s.cin, s.k, s.k] : [s.out, s.in];
}
