/**
 * Optimizer base: parameter groups gathered into arenas for fused updates.
 *
 * At construction each group's parameters move (Tensor.relocate) into one parameter arena, one
 * 256-byte-aligned sub-range each; a gradient arena and one arena per optimizer state (momentum;
 * Adam's m and v) get the same layout. `step()` copies every `.grad` into its sub-range of the
 * gradient arena and launches ONE fused kernel over the group (per chunk, see below), with the
 * hyper-parameters in uniforms. Parameters without a gradient are skipped like PyTorch does: the
 * launch covers runs of consecutive parameters that have one (one run in the usual case).
 *
 * A group whose arena would exceed the device's storage binding limit is split into chunks, one
 * launch each. This file and kernels/optim.ts are the only places above autograd that see GPU buffers.
 */
import { clone, engine, shapeStr, Tensor } from '../autograd/index.ts';
import { ALIGN, type GBuf, subBuffer } from '../gpu/index.ts';

/** Parameters: tensors, or [name, tensor] pairs (e.g. `model.namedParameters()`), or a Map. */
export type ParamSource = Iterable<Tensor> | Iterable<readonly [string, Tensor]> | ReadonlyMap<string, Tensor>;

/** A parameter group: its parameters plus any hyper-parameters that override the defaults. */
export type ParamGroupSpec<H> = Partial<H> & { params: ParamSource };

export type ParamsArg<H> = ParamSource | ParamGroupSpec<H>[];

/** Options every optimizer has. */
export interface BaseHyper {
  lr: number;
  weightDecay: number;
}

interface Slot {
  param: Tensor;
  name: string;
  /** byte offset inside the chunk's arenas */
  offset: number;
  /** number of steps this parameter has taken (PyTorch's per-parameter state['step']) */
  steps: number;
}

export interface Chunk {
  bytes: number;
  params: GBuf;
  grads: GBuf;
  /** one arena per optimizer state, in `stateNames` order */
  states: GBuf[];
  slots: Slot[];
}

export class ParamGroup<H extends BaseHyper> {
  /** the learning rate at construction (schedules scale it: lr = initialLr · factor) */
  initialLr: number;
  constructor(
    /** hyper-parameters; change `options.lr` (or use setLrFactor) between steps */
    readonly options: H,
    readonly chunks: Chunk[],
    readonly stateNames: readonly string[],
  ) {
    this.initialLr = options.lr;
  }
  get params(): Tensor[] {
    return this.chunks.flatMap((c) => c.slots.map((s) => s.param));
  }
  get paramNames(): string[] {
    return this.chunks.flatMap((c) => c.slots.map((s) => s.name));
  }
}

/** Optimizer state for checkpoints: per-parameter states (copies; release them when done) and step counts. */
export interface OptimizerState {
  type: string;
  /** hyper-parameters of each group (lr as of now) and its initial lr */
  groups: (Record<string, number | boolean | number[]> & { initialLr: number })[];
  /** per-parameter step counts */
  steps: Record<string, number>;
  /** `${paramName}.${stateName}` -> a copy of that state, shaped like the parameter */
  tensors: Map<string, Tensor>;
}

function isGroupList<H>(x: ParamsArg<H>): x is ParamGroupSpec<H>[] {
  if (!Array.isArray(x) || x.length === 0) return false;
  const first = x[0] as unknown;
  return typeof first === 'object' && first !== null && !Array.isArray(first) && 'params' in first && !('shape' in first);
}

function namedList(src: ParamSource, groupIndex: number): [string, Tensor][] {
  const out: [string, Tensor][] = [];
  let i = 0;
  for (const e of src as Iterable<unknown>) {
    if (Array.isArray(e)) {
      const [n, t] = e as [string, Tensor];
      out.push([n, t]);
    } else {
      const t = e as Tensor;
      out.push([t.name ? `${t.name}#g${groupIndex}.${i}` : `g${groupIndex}.${i}`, t]);
    }
    i++;
  }
  return out;
}

const alignUp = (n: number) => Math.ceil(n / ALIGN) * ALIGN;

export abstract class Optimizer<H extends BaseHyper> {
  /** cap on one arena's bytes below the device limit (tests use it to exercise chunking); null = device limit */
  static arenaLimitBytes: number | null = null;
  readonly groups: ParamGroup<H>[] = [];
  private retained: GBuf[] = [];
  private released = false;

  /** the name this optimizer writes into its state dict ('sgd', 'adam', 'adamw') */
  abstract readonly type: string;

  constructor(params: ParamsArg<H>, defaults: H) {
    const specs: ParamGroupSpec<H>[] = isGroupList(params) ? params : [{ params } as ParamGroupSpec<H>];
    const seen = new Map<Tensor, string>();
    const names = new Set<string>();
    const gpu = engine().gpu;
    const deviceLimit = gpu.maxBindingSize;
    const limit = Math.floor(Math.min(deviceLimit, Optimizer.arenaLimitBytes ?? Infinity) / ALIGN) * ALIGN;
    specs.forEach((spec, gi) => {
      const { params: src, ...over } = spec;
      const options = { ...defaults, ...(over as unknown as Partial<H>) } as H;
      this.validate(options);
      const list = namedList(src, gi);
      for (const [n, t] of list) {
        const where = `${this.constructor.name}: parameter '${n}'`;
        if (t.released) throw new Error(`webqat: ${where} (${t.describe()}) was released`);
        if (t.dtype !== 'f32') throw new Error(`webqat: ${where}: only f32 parameters can be optimised, got ${t.describe()}`);
        if (t.node) throw new Error(`webqat: ${where}: ${t.describe()} is an op output, not a leaf parameter`);
        const prev = seen.get(t);
        if (prev !== undefined) throw new Error(`webqat: ${where} appears twice (also as '${prev}')`);
        if (names.has(n)) throw new Error(`webqat: ${this.constructor.name}: two parameters are named '${n}'`);
        seen.set(t, n);
        names.add(n);
      }
      const stateNames = this.stateNamesFor(options);
      // pack into chunks that each fit one storage binding
      const chunks: Chunk[] = [];
      let cur: { slots: Slot[]; bytes: number } = { slots: [], bytes: 0 };
      const flushChunk = () => {
        if (!cur.slots.length) return;
        const bytes = Math.max(ALIGN, cur.bytes);
        const params = gpu.pool.createArena(bytes, `params g${gi}`);
        const grads = gpu.pool.createArena(bytes, `grads g${gi}`);
        const states = stateNames.map((s) => gpu.pool.createArena(bytes, `${s} g${gi}`));
        for (const sl of cur.slots) sl.param.relocate(subBuffer(params, sl.offset, sl.param.size * 4));
        chunks.push({ bytes, params, grads, states, slots: cur.slots });
        cur = { slots: [], bytes: 0 };
      };
      for (const [name, param] of list) {
        const need = alignUp(Math.max(4, param.size * 4));
        if (need > limit) throw new Error(`webqat: ${this.constructor.name}: parameter '${name}' ${param.describe()} is larger than one storage binding (${limit} bytes)`);
        if (cur.bytes + need > limit) flushChunk();
        cur.slots.push({ param, name, offset: cur.bytes, steps: 0 });
        cur.bytes += need;
      }
      flushChunk();
      this.groups.push(new ParamGroup(options, chunks, stateNames));
    });
  }

  /** Throw on invalid hyper-parameters (names the optimizer and the value). */
  protected abstract validate(h: H): void;
  /** Optimizer states kept per parameter (e.g. ['exp_avg', 'exp_avg_sq']). */
  protected abstract stateNamesFor(h: H): string[];
  /**
   * Launch the fused update over elements [base, base + n) of one chunk, for parameters that have
   * all taken `step` steps (1-based, this step included).
   */
  protected abstract launch(group: ParamGroup<H>, chunk: Chunk, base: number, n: number, step: number): void;
  /**
   * Parameters whose step counts map to the same key can share one launch (Adam: the count itself,
   * for the bias correction; SGD: only whether it is the first step).
   */
  protected runKey(steps: number): number {
    return steps;
  }

  private check(): void {
    if (this.released) throw new Error(`webqat: ${this.constructor.name} was used after release()`);
  }

  /** All parameters, in group order. */
  get params(): Tensor[] {
    return this.groups.flatMap((g) => g.params);
  }

  /** The learning rate of the first group; setting it sets every group's lr. */
  get lr(): number {
    return this.groups[0]?.options.lr ?? 0;
  }
  set lr(v: number) {
    for (const g of this.groups) g.options.lr = v;
  }

  /** lr = initialLr · factor in every group (what an LR schedule drives). */
  setLrFactor(factor: number): void {
    for (const g of this.groups) g.options.lr = g.initialLr * factor;
  }

  /** Apply one update from the parameters' current `.grad`s. Parameters without a gradient are left as they are. */
  step(): void {
    this.check();
    const gpu = engine().gpu;
    for (const group of this.groups) {
      this.validate(group.options);
      for (const chunk of group.chunks) {
        const has: boolean[] = [];
        for (const s of chunk.slots) {
          const g = s.param.grad;
          if (s.param.released) throw new Error(`webqat: ${this.constructor.name}.step(): parameter '${s.name}' was released`);
          if (!g) {
            has.push(false);
            continue;
          }
          if (g.dtype !== 'f32' || g.size !== s.param.size) {
            throw new Error(`webqat: ${this.constructor.name}.step(): gradient ${g.describe()} does not fit parameter '${s.name}' ${shapeStr(s.param.shape)}`);
          }
          gpu.copy(g.buf, 0, chunk.grads, s.offset, s.param.size * 4);
          s.steps++;
          has.push(true);
        }
        // runs of consecutive parameters with a gradient and the same step key: one launch each
        let k = 0;
        while (k < chunk.slots.length) {
          if (!has[k]) {
            k++;
            continue;
          }
          const first = chunk.slots[k];
          let last = first;
          let e = k + 1;
          const key = this.runKey(first.steps);
          while (e < chunk.slots.length && has[e] && this.runKey(chunk.slots[e].steps) === key) last = chunk.slots[e++];
          const base = first.offset / 4;
          const n = last.offset / 4 + last.param.size - base;
          this.launch(group, chunk, base, n, first.steps);
          k = e;
        }
      }
    }
  }

  /** Drop every parameter's gradient (its buffer returns to the pool). */
  zeroGrad(): void {
    for (const p of this.params) {
      if (p.grad) {
        p.grad.release('zeroGrad()');
        p.grad = null;
      }
    }
  }

  /** Per-parameter state as a view onto the arena (internal; `stateDict` hands out copies). */
  private stateView(chunk: Chunk, slot: Slot, si: number): Tensor {
    return Tensor.fromBuffer(slot.param.shape, 'f32', subBuffer(chunk.states[si], slot.offset, slot.param.size * 4));
  }

  /** A snapshot of the optimizer state (copies; release `tensors` when done). */
  stateDict(): OptimizerState {
    this.check();
    const tensors = new Map<string, Tensor>();
    const steps: Record<string, number> = {};
    for (const group of this.groups) {
      for (const chunk of group.chunks) {
        for (const slot of chunk.slots) {
          steps[slot.name] = slot.steps;
          group.stateNames.forEach((sn, si) => {
            const view = this.stateView(chunk, slot, si);
            tensors.set(`${slot.name}.${sn}`, clone(view).keep());
            view.release();
          });
        }
      }
    }
    const groups = this.groups.map((g) => ({ ...(g.options as unknown as Record<string, number | boolean | number[]>), initialLr: g.initialLr }));
    return { type: this.type, groups, steps, tensors };
  }

  /** Restore a snapshot taken by `stateDict()` of an optimizer over the same parameters. */
  loadStateDict(state: OptimizerState): void {
    this.check();
    const who = `${this.constructor.name}.loadStateDict`;
    if (state.type !== this.type) throw new Error(`webqat: ${who}: state is for '${state.type}', this optimizer is '${this.type}'`);
    if (state.groups.length !== this.groups.length) {
      throw new Error(`webqat: ${who}: state has ${state.groups.length} parameter group(s), this optimizer ${this.groups.length}`);
    }
    const problems: string[] = [];
    const expected = new Set<string>();
    for (const group of this.groups) {
      for (const chunk of group.chunks) {
        for (const slot of chunk.slots) {
          if (!(slot.name in state.steps)) problems.push(`no step count for '${slot.name}'`);
          for (const sn of group.stateNames) {
            const key = `${slot.name}.${sn}`;
            expected.add(key);
            const t = state.tensors.get(key);
            if (!t) problems.push(`missing '${key}'`);
            else if (t.released) problems.push(`'${key}' was released`);
            else if (t.size !== slot.param.size || t.dtype !== 'f32') {
              problems.push(`'${key}' is ${t.dtype}${shapeStr(t.shape)}, the parameter is f32${shapeStr(slot.param.shape)}`);
            }
          }
        }
      }
    }
    for (const k of state.tensors.keys()) if (!expected.has(k)) problems.push(`unexpected '${k}'`);
    if (problems.length) throw new Error(`webqat: ${who}: ${problems.join('; ')}`);
    const gpu = engine().gpu;
    this.groups.forEach((group, gi) => {
      const { initialLr, ...hyper } = state.groups[gi];
      Object.assign(group.options, hyper);
      group.initialLr = initialLr;
      for (const chunk of group.chunks) {
        for (const slot of chunk.slots) {
          slot.steps = state.steps[slot.name];
          group.stateNames.forEach((sn, si) => {
            const t = state.tensors.get(`${slot.name}.${sn}`)!;
            gpu.copy(t.buf, 0, chunk.states[si], slot.offset, slot.param.size * 4);
          });
        }
      }
    });
  }

  /** Release every state tensor of a `stateDict()` snapshot. */
  static releaseState(state: OptimizerState): void {
    for (const t of state.tensors.values()) t.release();
  }

  /**
   * Free the gradient and state arenas. The parameter arenas hold the model's weights: each is
   * freed here only when all its parameters have been released (release the model first to free
   * everything); otherwise it stays alive as their storage.
   */
  release(): void {
    if (this.released) return;
    this.released = true;
    const gpu = engine().gpu;
    gpu.flush(); // encoded work may still reference the arenas
    const pool = gpu.pool;
    for (const g of this.groups) {
      for (const c of g.chunks) {
        pool.destroyArena(c.grads);
        for (const s of c.states) pool.destroyArena(s);
        if (c.slots.every((s) => s.param.released)) pool.destroyArena(c.params);
        else this.retained.push(c.params);
      }
    }
  }
}

/**
 * Split named parameters into two groups: with weight decay (weights of rank >= 2) and without
 * (rank-1 tensors: biases and BatchNorm scales/shifts), the usual recipe for CNNs.
 */
export function decayGroups<H extends BaseHyper>(
  named: Iterable<readonly [string, Tensor]>,
  weightDecay: number,
  extra: Partial<H> = {},
): ParamGroupSpec<H>[] {
  const decay: [string, Tensor][] = [];
  const noDecay: [string, Tensor][] = [];
  for (const [n, t] of named) (t.rank >= 2 ? decay : noDecay).push([n, t]);
  const groups: ParamGroupSpec<H>[] = [];
  if (decay.length) groups.push({ ...extra, params: decay, weightDecay } as ParamGroupSpec<H>);
  if (noDecay.length) groups.push({ ...extra, params: noDecay, weightDecay: 0 } as ParamGroupSpec<H>);
  return groups;
}
