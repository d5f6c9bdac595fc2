/**
 * Checkpoints as safetensors files: the model's parameters and buffers under their dotted names,
 * the optimizer's per-parameter state under `optimizer.<param>.<state>`, and string metadata
 * (`__metadata__`): format, model name and config, epoch/step/seed, the optimizer's type, groups
 * and step counts, the trainer's position and metric history, and the training setup (quantizer
 * spec, hyper-parameters). Written atomically. A checkpoint holding NaN/Inf values is neither
 * written nor loaded: the error names the tensor.
 */
import { countNonFinite, shapeStr, type Tensor, tensor } from '../autograd/index.ts';
import type { Module } from '../nn/index.ts';
import type { OptimizerState } from '../optim/index.ts';
import { readFile, writeFileAtomic } from '../platform/fs.ts';
import { decodeSafetensors, encodeSafetensors, type SafeTensor, safeTensorOf, typedArrayOf } from './safetensors.ts';

export const CHECKPOINT_FORMAT = 'webqat-checkpoint';
export const CHECKPOINT_VERSION = 1;
export const OPTIMIZER_PREFIX = 'optimizer.';

/** What an optimizer must offer to be checkpointed (the optim package's Optimizer does). */
export interface CheckpointableOptimizer {
  readonly type: string;
  stateDict(): OptimizerState;
  loadStateDict(state: OptimizerState): void;
}

export interface CheckpointMeta {
  /** model registry name (e.g. 'lenet5') and the options it was built with */
  model?: string;
  modelConfig?: Record<string, unknown>;
  dataset?: string;
  seed: number;
  /** epoch the trainer is in (0-based) and the step within it to continue from */
  epoch: number;
  stepInEpoch: number;
  /** optimizer steps taken so far */
  step: number;
  /** anything else (trainer state, history), JSON-serialisable */
  extra?: Record<string, unknown>;
  /** the training setup (quantizer spec, optimizer and its hyper-parameters, schedule, epochs), JSON-serialisable */
  setup?: Record<string, unknown>;
}

export interface Checkpoint {
  /** where it came from, for messages */
  source: string;
  meta: CheckpointMeta;
  tensors: Map<string, SafeTensor>;
  metadata: Record<string, string>;
  optimizer?: { type: string; groups: OptimizerState['groups']; steps: Record<string, number> };
}

const DTYPE_TO_SAFE = { f32: 'F32', i32: 'I32', u32: 'U32' } as const;

async function tensorBytes(t: Tensor, name: string): Promise<SafeTensor> {
  const data = await t.data();
  if (data instanceof Float32Array) {
    const bad = countNonFinite(data);
    if (bad) throw new NonFiniteTensorError(`webqat: checkpoint: refusing to save: tensor '${name}' holds ${bad} NaN/Inf value(s) of ${data.length}`, name, bad);
  }
  return safeTensorOf(data, t.shape);
}

/** A checkpoint tensor holds NaN or Inf values (saving or loading it is refused). */
export class NonFiniteTensorError extends Error {
  constructor(message: string, readonly tensorName: string, readonly count: number) {
    super(message);
    this.name = 'NonFiniteTensorError';
  }
}

/** Serialise model (+ optimizer) state and metadata to safetensors bytes (reads the GPU). */
export async function encodeCheckpoint(model: Module, optimizer: CheckpointableOptimizer | null, meta: CheckpointMeta): Promise<Uint8Array> {
  const tensors = new Map<string, SafeTensor>();
  for (const [name, t] of model.stateDict()) {
    if (name.startsWith(OPTIMIZER_PREFIX)) throw new Error(`webqat: checkpoint: model tensor name '${name}' clashes with the optimizer prefix`);
    if (!(t.dtype in DTYPE_TO_SAFE)) throw new Error(`webqat: checkpoint: tensor '${name}' has unsupported dtype ${t.dtype}`);
    tensors.set(name, await tensorBytes(t, name));
  }
  const metadata: Record<string, string> = {
    format: CHECKPOINT_FORMAT,
    version: String(CHECKPOINT_VERSION),
    seed: String(meta.seed),
    epoch: String(meta.epoch),
    step_in_epoch: String(meta.stepInEpoch),
    step: String(meta.step),
  };
  if (meta.model) metadata.model = meta.model;
  if (meta.modelConfig) metadata.model_config = JSON.stringify(meta.modelConfig);
  if (meta.dataset) metadata.dataset = meta.dataset;
  if (meta.extra) metadata.trainer = JSON.stringify(meta.extra);
  if (meta.setup) metadata.setup = JSON.stringify(meta.setup);
  if (optimizer) {
    const st = optimizer.stateDict();
    try {
      for (const [k, t] of st.tensors) tensors.set(OPTIMIZER_PREFIX + k, await tensorBytes(t, OPTIMIZER_PREFIX + k));
    } finally {
      for (const t of st.tensors.values()) t.release('checkpoint');
    }
    metadata.optimizer = st.type;
    metadata.optimizer_groups = JSON.stringify(st.groups);
    metadata.optimizer_steps = JSON.stringify(st.steps);
    metadata.optimizer_state_keys = JSON.stringify([...st.tensors.keys()]);
  }
  return encodeSafetensors(tensors, metadata);
}

/** Save a checkpoint atomically (temp file + rename): a crash never leaves a half-written file. */
export async function saveCheckpoint(path: string, model: Module, optimizer: CheckpointableOptimizer | null, meta: CheckpointMeta): Promise<void> {
  await writeFileAtomic(path, await encodeCheckpoint(model, optimizer, meta));
}

function int(md: Record<string, string>, key: string, source: string): number {
  const v = Number(md[key]);
  if (!Number.isInteger(v)) throw new Error(`webqat: checkpoint ${source}: metadata '${key}' is missing or not an integer (${md[key]})`);
  return v;
}

function json<T>(md: Record<string, string>, key: string, source: string): T | undefined {
  if (md[key] === undefined) return undefined;
  try {
    return JSON.parse(md[key]) as T;
  } catch {
    throw new Error(`webqat: checkpoint ${source}: metadata '${key}' is not valid JSON`);
  }
}

/** Parse checkpoint bytes (a webqat safetensors checkpoint). */
export function parseCheckpoint(bytes: Uint8Array, source = 'checkpoint'): Checkpoint {
  const { tensors, metadata } = decodeSafetensors(bytes, source);
  if (metadata.format !== CHECKPOINT_FORMAT) {
    const why = metadata.format === 'webqat-ptq'
      ? ": it is a post-training-quantized model written by `npm run ptq -- --save` (weights already rounded, BatchNorm folded); pass the training checkpoint it was made from"
      : '';
    throw new Error(`webqat: ${source}: not a webqat checkpoint (metadata format is '${metadata.format ?? 'missing'}')${why}`);
  }
  const meta: CheckpointMeta = {
    model: metadata.model,
    modelConfig: json(metadata, 'model_config', source),
    dataset: metadata.dataset,
    seed: int(metadata, 'seed', source),
    epoch: int(metadata, 'epoch', source),
    stepInEpoch: int(metadata, 'step_in_epoch', source),
    step: int(metadata, 'step', source),
    extra: json(metadata, 'trainer', source),
    setup: json(metadata, 'setup', source),
  };
  if (meta.setup === undefined) delete meta.setup;
  const ck: Checkpoint = { source, meta, tensors, metadata };
  if (metadata.optimizer) {
    ck.optimizer = {
      type: metadata.optimizer,
      groups: json(metadata, 'optimizer_groups', source) ?? [],
      steps: json(metadata, 'optimizer_steps', source) ?? {},
    };
  }
  return ck;
}

export async function readCheckpoint(path: string): Promise<Checkpoint> {
  return parseCheckpoint(await readFile(path), path);
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/**
 * Load a checkpoint into a model (and optimizer). Everything is checked before anything is
 * copied: missing or unexpected tensors, and shapes, with errors naming each tensor and both shapes.
 */
export function restoreCheckpoint(ck: Checkpoint, model: Module, optimizer: CheckpointableOptimizer | null): void {
  const own = model.stateDict();
  const problems: string[] = [];
  for (const [name, t] of own) {
    const s = ck.tensors.get(name);
    if (!s) {
      problems.push(`tensor '${name}' of the model is missing from the checkpoint`);
      continue;
    }
    const want = DTYPE_TO_SAFE[t.dtype];
    if (s.dtype !== want || !sameShape(s.shape, t.shape)) {
      problems.push(`tensor '${name}' has shape ${s.dtype}${shapeStr(s.shape)} in the checkpoint but ${want}${shapeStr(t.shape)} in the model`);
    }
  }
  for (const name of ck.tensors.keys()) {
    if (!name.startsWith(OPTIMIZER_PREFIX) && !own.has(name)) problems.push(`tensor '${name}' of the checkpoint is not in the model`);
  }
  if (optimizer) {
    if (!ck.optimizer) problems.push('the checkpoint holds no optimizer state');
    else if (ck.optimizer.type !== optimizer.type) {
      problems.push(`the checkpoint's optimizer is '${ck.optimizer.type}', this run uses '${optimizer.type}'`);
    }
  }
  // NaN/Inf weights or optimizer state: refuse (resuming would re-save them)
  for (const [name, s] of ck.tensors) {
    if (s.dtype !== 'F32') continue;
    const bad = countNonFinite(typedArrayOf(s) as Float32Array);
    if (bad) problems.push(`tensor '${name}' holds ${bad} NaN/Inf value(s) of ${s.data.length / 4} (a diverged run; resume from an earlier checkpoint)`);
  }
  if (problems.length) {
    const hint = ck.meta.model ? ` (saved for model '${ck.meta.model}')` : '';
    throw new Error(`webqat: cannot load checkpoint ${ck.source}${hint}: ${problems.join('; ')}`);
  }
  const uploaded: Tensor[] = [];
  try {
    const state = new Map<string, Tensor>();
    for (const [name, t] of own) {
      const u = tensor(typedArrayOf(ck.tensors.get(name)!) as Float32Array | Int32Array | Uint32Array, t.shape, t.dtype);
      uploaded.push(u);
      state.set(name, u);
    }
    model.loadStateDict(state);
    if (optimizer && ck.optimizer) {
      const tensors = new Map<string, Tensor>();
      for (const [name, s] of ck.tensors) {
        if (!name.startsWith(OPTIMIZER_PREFIX)) continue;
        const arr = typedArrayOf(s) as Float32Array;
        const u = tensor(arr, s.shape, 'f32');
        uploaded.push(u);
        tensors.set(name.slice(OPTIMIZER_PREFIX.length), u);
      }
      try {
        optimizer.loadStateDict({ type: ck.optimizer.type, groups: ck.optimizer.groups, steps: ck.optimizer.steps, tensors });
      } catch (e) {
        throw new Error(`webqat: cannot load the optimizer state of checkpoint ${ck.source}: ${(e as Error).message}`);
      }
    }
  } finally {
    for (const u of uploaded) u.release('restoreCheckpoint');
  }
}
