/**
 * Global engine state: the GPU context, the grad mode and the memory scopes.
 *
 * A scope records every tensor created while it is open. When it closes, each of those tensors is
 * released unless it was kept (`keep()`), is returned from the scope (then it moves to the parent
 * scope), or is a leaf that requires grad (parameters).
 */
import type { Gpu } from '../gpu/index.ts';
import type { Tensor } from './tensor.ts';

interface Scope {
  tensors: Tensor[];
  name: string;
}

interface EngineState {
  gpu: Gpu;
  gradEnabled: boolean;
  scopes: Scope[];
  backward: (t: Tensor, seed?: Tensor) => void;
}

let state: EngineState | null = null;
let backwardImpl: ((t: Tensor, seed?: Tensor) => void) | null = null;

export function setBackwardImpl(fn: (t: Tensor, seed?: Tensor) => void): void {
  backwardImpl = fn;
  if (state) state.backward = fn;
}

export function setEngineGpu(gpu: Gpu | null): void {
  if (!gpu) {
    state = null;
    return;
  }
  state = {
    gpu,
    gradEnabled: true,
    scopes: [],
    backward: backwardImpl ?? (() => {
      throw new Error('webqat: autograd tape not loaded');
    }),
  };
}

export function engine(): EngineState {
  if (!state) throw new Error('webqat: no GPU initialised; call `await init()` first');
  return state;
}

export function hasEngine(): boolean {
  return state !== null;
}

export function trackTensor(t: Tensor): void {
  const s = state?.scopes;
  if (s && s.length) s[s.length - 1].tensors.push(t);
}

export function isGradEnabled(): boolean {
  return state?.gradEnabled ?? true;
}

/** Run `fn` without recording gradients. */
export function noGrad<T>(fn: () => T): T {
  const e = engine();
  const prev = e.gradEnabled;
  e.gradEnabled = false;
  try {
    return fn();
  } finally {
    e.gradEnabled = prev;
  }
}

function collect(value: unknown, out: Set<Tensor>, depth = 0): void {
  if (!value || typeof value !== 'object' || depth > 4) return;
  // duck-type to avoid an import cycle with tensor.ts
  if ('shape' in value && 'dtype' in value && 'release' in value) {
    out.add(value as Tensor);
    return;
  }
  if (Array.isArray(value)) for (const v of value) collect(v, out, depth + 1);
  else if (Object.getPrototypeOf(value) === Object.prototype) {
    for (const v of Object.values(value)) collect(v, out, depth + 1);
  }
}

export function beginScope(name = 'scope'): void {
  engine().scopes.push({ tensors: [], name });
}

/** Close the innermost scope, releasing its tensors except those in `result` or kept. */
export function endScope(result?: unknown): void {
  const e = engine();
  const scope = e.scopes.pop();
  if (!scope) throw new Error('webqat: endScope() without beginScope()');
  const keepSet = new Set<Tensor>();
  collect(result, keepSet);
  const parent = e.scopes[e.scopes.length - 1];
  // A returned tensor that still has a graph (`const loss = tidy(() => f(x)); loss.backward()`) keeps the
  // intermediates its backward needs: they move to the result, which releases them after backward() or
  // when it is itself released (and to the parent scope, which releases them when it ends).
  const inScope = new Set(scope.tensors);
  const adopted = new Set<Tensor>();
  for (const r of keepSet) {
    if (!r.node || r.released) continue;
    const owned: Tensor[] = [];
    const stack = [...r.node.inputs];
    while (stack.length) {
      const t = stack.pop()!;
      if (adopted.has(t) || !inScope.has(t) || keepSet.has(t) || t.released || t.kept) continue;
      if (t.requiresGrad && !t.node) continue; // a leaf parameter: never released by a scope
      adopted.add(t);
      owned.push(t);
      if (t.node) stack.push(...t.node.inputs);
    }
    if (owned.length) r.graphOwned = [...(r.graphOwned ?? []), ...owned];
  }
  for (const t of scope.tensors) {
    if (t.released) continue;
    if (keepSet.has(t) || adopted.has(t)) {
      parent?.tensors.push(t);
      continue;
    }
    if (t.kept) continue;
    if (t.requiresGrad && !t.node) continue; // a leaf parameter
    t.release(`the end of scope '${scope.name}'`);
  }
}

/** Run `fn` in a memory scope: intermediates it creates are released when it returns. */
export function tidy<T>(fn: () => T, name = 'tidy'): T {
  beginScope(name);
  let result: T | undefined;
  try {
    result = fn();
    if (result instanceof Promise) throw new Error('webqat: tidy() takes a synchronous function');
    return result;
  } finally {
    endScope(result);
  }
}
