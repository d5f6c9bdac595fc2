/**
 * Recording and the reverse walk. `record()` attaches a node (inputs + backward rule) to an op's
 * output when gradients are enabled and some input requires them. `backward()` orders the graph
 * reachable from the loss topologically and applies each rule in reverse, micrograd-style.
 * Intermediate gradients are released as soon as they have been propagated; leaf gradients
 * accumulate in `.grad` and are kept.
 */
import { engine, isGradEnabled, noGrad, setBackwardImpl } from './engine.ts';
import { type BackwardFn, shapeStr, type Tensor } from './tensor.ts';

/** Attach a backward rule to `out`. Returns `out`. */
export function record(op: string, inputs: readonly Tensor[], out: Tensor, backward: BackwardFn): Tensor {
  if (!isGradEnabled()) return out;
  if (!inputs.some((t) => t.requiresGrad)) return out;
  out.requiresGrad = true;
  out.node = { op, inputs, backward };
  return out;
}

let accumulateFn: ((a: Tensor, b: Tensor) => Tensor) | null = null;
let onesLikeFn: ((t: Tensor) => Tensor) | null = null;
let cloneFn: ((t: Tensor) => Tensor) | null = null;

/** Wired by ops/index.ts (the tape must not import the ops). */
export function setTapeHelpers(
  add: (a: Tensor, b: Tensor) => Tensor,
  onesLike: (t: Tensor) => Tensor,
  clone: (t: Tensor) => Tensor,
): void {
  accumulateFn = add;
  onesLikeFn = onesLike;
  cloneFn = clone;
}

function topoOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const seen = new Set<Tensor>();
  // iterative DFS (deep ResNets would overflow a recursive one)
  const stack: [Tensor, number][] = [[root, 0]];
  seen.add(root);
  while (stack.length) {
    const top = stack[stack.length - 1];
    const [t, i] = top;
    const inputs = t.node?.inputs ?? [];
    if (i < inputs.length) {
      top[1]++;
      const c = inputs[i];
      if (c.requiresGrad && !seen.has(c)) {
        if (c.released) {
          throw new Error(
            `webqat: backward(): an input of '${t.node!.op}' (${c.describe()}) was released before backward() ` +
              `(${c.releasedReason ?? 'released'}); call backward() inside the scope that built the graph, or keep() it`,
          );
        }
        seen.add(c);
        stack.push([c, 0]);
      }
    } else {
      stack.pop();
      order.push(t);
    }
  }
  return order;
}

export function backward(root: Tensor, seed?: Tensor): void {
  if (!root.requiresGrad) {
    throw new Error(`webqat: backward() on ${root.describe()}, which does not require grad (no parameter reaches it)`);
  }
  if (!seed && root.size !== 1) {
    throw new Error(
      `webqat: backward() on non-scalar ${root.describe()} needs a seed gradient of shape ${shapeStr(root.shape)}`,
    );
  }
  if (seed && (seed.shape.length !== root.shape.length || seed.shape.some((d, i) => d !== root.shape[i]))) {
    throw new Error(
      `webqat: backward(): seed gradient shape ${shapeStr(seed.shape)} does not match ${root.describe()}`,
    );
  }
  root.buf; // throws if released
  const order = topoOrder(root);
  const grads = new Map<Tensor, Tensor>();
  noGrad(() => {
    grads.set(root, seed ?? onesLikeFn!(root));
    for (let k = order.length - 1; k >= 0; k--) {
      const t = order[k];
      const g = grads.get(t);
      if (!g) continue;
      const node = t.node;
      if (!node) {
        // leaf: accumulate into .grad
        grads.delete(t);
        if (t.grad) {
          const sum = accumulateFn!(t.grad, g);
          t.grad.release('gradient accumulation');
          if (g !== seed) g.release('gradient accumulation');
          t.grad = sum.keep();
        } else {
          t.grad = (g === seed ? cloneFn!(g) : g).keep();
        }
        continue;
      }
      const needs = node.inputs.map((x) => x.requiresGrad);
      const gin = node.backward(g, needs);
      grads.delete(t);
      // a rule may pass `g` through or return one tensor for several inputs: give each input its own
      const used = new Set<Tensor>();
      for (let i = 0; i < gin.length; i++) {
        const gi = gin[i];
        if (!gi) continue;
        if (!needs[i]) {
          if (gi !== g && !used.has(gi)) gi.release('backward');
          gin[i] = null;
          continue;
        }
        if (used.has(gi) || gi === seed) gin[i] = cloneFn!(gi);
        used.add(gin[i]!);
      }
      if (g !== seed && !used.has(g)) g.release('backward');
      for (let i = 0; i < node.inputs.length; i++) {
        const x = node.inputs[i];
        const gi = gin[i];
        if (!gi) continue;
        if (gi.shape.length !== x.shape.length || gi.shape.some((d, j) => d !== x.shape[j])) {
          throw new Error(
            `webqat: backward of '${node.op}' returned gradient ${shapeStr(gi.shape)} for input ${x.describe()}`,
          );
        }
        const prev = grads.get(x);
        if (prev) {
          grads.set(x, accumulateFn!(prev, gi));
          prev.release('backward');
          gi.release('backward');
        } else grads.set(x, gi);
      }
    }
  });
  for (const g of grads.values()) if (g !== seed) g.release('backward');
  // the graph has been used: free the intermediates a closed scope kept alive for it
  root.releaseGraph('backward()');
}

setBackwardImpl(backward);
export { engine };
