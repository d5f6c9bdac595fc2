/**
 * Module: the base class of layers and models. A module registers its parameters, buffers (state
 * that is saved but not trained, e.g. BatchNorm running statistics) and child modules by name with
 * `param()`, `buffer()` and `module()`; everything else (state dicts, parameter lists, train/eval,
 * releasing GPU memory) walks that registry. Names join with '.', as in PyTorch
 * (`layer1.0.conv1.weight`).
 */
import { copy_, shapeStr, type Tensor } from '../autograd/index.ts';
import { isParameter, type Parameter, parameter, type PrecisionTag } from './parameter.ts';

const NAME_RE = /^[A-Za-z0-9_]+$/;

export interface LoadStateDictOptions {
  /** throw on missing or unexpected keys (default true); shape mismatches always throw */
  strict?: boolean;
}

export abstract class Module {
  /** training mode (dropout active, batch norm uses batch statistics); see train()/eval() */
  training = true;
  private readonly _params = new Map<string, Parameter>();
  private readonly _buffers = new Map<string, Tensor>();
  private readonly _children = new Map<string, Module>();

  abstract forward(x: Tensor): Tensor;

  /** Run the module (same as forward). */
  call(x: Tensor): Tensor {
    return this.forward(x);
  }

  /** A short type name for error messages and summaries. */
  get typeName(): string {
    return this.constructor.name;
  }

  private checkFree(name: string): void {
    if (!NAME_RE.test(name)) throw new Error(`webqat: ${this.typeName}: invalid member name '${name}' (letters, digits, _)`);
    if (this._params.has(name) || this._buffers.has(name) || this._children.has(name)) {
      throw new Error(`webqat: ${this.typeName}: '${name}' is already registered`);
    }
  }

  /** Register a trainable parameter (the tensor becomes a Parameter). */
  protected param(name: string, t: Tensor, precision?: PrecisionTag): Parameter {
    this.checkFree(name);
    const p = isParameter(t) ? t : parameter(t, name, precision);
    if (precision) p.precision = precision;
    this._params.set(name, p);
    return p;
  }

  /** Register a buffer: saved in the state dict, not trained (requiresGrad stays false). */
  protected buffer(name: string, t: Tensor): Tensor {
    this.checkFree(name);
    t.keep();
    if (t.name === undefined) t.name = name;
    this._buffers.set(name, t);
    return t;
  }

  /** Register a child module. */
  protected module<M extends Module>(name: string, m: M): M {
    this.checkFree(name);
    if (m === (this as Module)) throw new Error(`webqat: ${this.typeName}: a module cannot contain itself`);
    this._children.set(name, m);
    return m;
  }

  /**
   * Replace a registered parameter by another tensor of the same shape (e.g. a quantizer swapping a
   * weight for its latent copy). The old parameter is returned, not released.
   */
  replaceParam(name: string, t: Tensor, precision?: PrecisionTag): Parameter {
    const old = this._params.get(name);
    if (!old) throw new Error(`webqat: ${this.typeName}: no parameter '${name}' to replace`);
    if (shapeStr(old.shape) !== shapeStr(t.shape)) {
      throw new Error(`webqat: ${this.typeName}: replacing '${name}' ${shapeStr(old.shape)} by ${shapeStr(t.shape)}`);
    }
    const p = isParameter(t) ? t : parameter(t, name, precision ?? old.precision);
    this._params.set(name, p);
    return old;
  }

  /** Direct children, in registration order. */
  namedChildren(): [string, Module][] {
    return [...this._children];
  }

  children(): Module[] {
    return [...this._children.values()];
  }

  /** This module and all descendants, depth first (this one first, with name ''). */
  namedModules(prefix = ''): [string, Module][] {
    const out: [string, Module][] = [[prefix, this]];
    for (const [n, m] of this._children) out.push(...m.namedModules(prefix ? `${prefix}.${n}` : n));
    return out;
  }

  modules(): Module[] {
    return this.namedModules().map(([, m]) => m);
  }

  /** All parameters with dotted names; a parameter shared by two modules appears once (first name). */
  namedParameters(prefix = ''): [string, Parameter][] {
    const out: [string, Parameter][] = [];
    const seen = new Set<Tensor>();
    for (const [mp, m] of this.namedModules(prefix)) {
      for (const [n, p] of m._params) {
        if (seen.has(p)) continue;
        seen.add(p);
        out.push([mp ? `${mp}.${n}` : n, p]);
      }
    }
    return out;
  }

  parameters(): Parameter[] {
    return this.namedParameters().map(([, p]) => p);
  }

  namedBuffers(prefix = ''): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [mp, m] of this.namedModules(prefix)) {
      for (const [n, b] of m._buffers) out.push([mp ? `${mp}.${n}` : n, b]);
    }
    return out;
  }

  buffers(): Tensor[] {
    return this.namedBuffers().map(([, b]) => b);
  }

  /** Total number of trainable values. */
  numParameters(): number {
    return this.parameters().reduce((s, p) => s + p.size, 0);
  }

  /** Set training mode here and in every descendant. */
  train(mode = true): this {
    for (const m of this.modules()) m.training = mode;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /**
   * Parameters and buffers by dotted name. The tensors are the module's own (not copies): read or
   * save them, do not release them.
   */
  stateDict(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    for (const [n, p] of this.namedParameters()) out.set(n, p);
    for (const [n, b] of this.namedBuffers()) out.set(n, b);
    return out;
  }

  /**
   * Copy values from a state dict into this module's parameters and buffers. Every problem is
   * checked before anything is copied; the error names each tensor and both shapes.
   */
  loadStateDict(state: Map<string, Tensor> | Record<string, Tensor>, opts: LoadStateDictOptions = {}): void {
    const strict = opts.strict ?? true;
    const src = state instanceof Map ? state : new Map(Object.entries(state));
    const own = this.stateDict();
    const problems: string[] = [];
    const missing = [...own.keys()].filter((k) => !src.has(k));
    const unexpected = [...src.keys()].filter((k) => !own.has(k));
    if (strict && missing.length) problems.push(`missing key(s): ${missing.join(', ')}`);
    if (strict && unexpected.length) problems.push(`unexpected key(s): ${unexpected.join(', ')}`);
    for (const [k, dst] of own) {
      const s = src.get(k);
      if (!s) continue;
      if (s.released) problems.push(`'${k}' in the state dict was released`);
      else if (s.dtype !== dst.dtype || s.shape.length !== dst.shape.length || s.shape.some((d, i) => d !== dst.shape[i])) {
        problems.push(
          `'${k}' has shape ${dst.dtype}${shapeStr(dst.shape)} in the model but ${s.dtype}${shapeStr(s.shape)} in the state dict`,
        );
      }
    }
    if (problems.length) {
      throw new Error(`webqat: loadStateDict (${this.typeName}): ${problems.join('; ')}`);
    }
    for (const [k, dst] of own) {
      const s = src.get(k);
      if (s && s !== dst) copy_(dst, s);
    }
  }

  /** Free the GPU memory of every parameter (and its gradient) and buffer of this module tree. */
  release(): void {
    for (const p of this.parameters()) p.release(`${this.typeName}.release()`);
    for (const b of this.buffers()) b.release(`${this.typeName}.release()`);
  }

  /** One line per module with its parameter count (a quick summary). */
  summary(): string {
    const lines: string[] = [];
    for (const [n, m] of this.namedModules()) {
      const own = [...m._params.values()].reduce((s, p) => s + p.size, 0);
      lines.push(`${n || '(root)'}: ${m.typeName}${own ? ` (${own} params)` : ''}`);
    }
    lines.push(`total: ${this.numParameters()} parameters`);
    return lines.join('\n');
  }
}
