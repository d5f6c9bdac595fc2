import { describe, it, before } from 'node:test';
import { assert, assertClose, gradCheck, randArray, setup, size, wq } from './helpers.ts';

type Op = 'sum' | 'mean' | 'max' | 'min' | 'argmax' | 'argmin';

/** Reference reduction over `axes` (normalised, sorted); output in kept-axis order, float64. */
function refReduce(x: ArrayLike<number>, shape: number[], axes: number[], op: Op): number[] {
  const keep = shape.map((_, i) => i).filter((i) => !axes.includes(i));
  const outShape = keep.map((i) => shape[i]);
  const redShape = axes.map((i) => shape[i]);
  const nOut = size(outShape);
  const nRed = size(redShape);
  const st = shape.map((_, i) => size(shape.slice(i + 1)));
  const out: number[] = [];
  const unflat = (f: number, sh: number[]) => {
    const c = new Array(sh.length).fill(0);
    for (let k = sh.length - 1; k >= 0; k--) {
      c[k] = f % sh[k];
      f = Math.floor(f / sh[k]);
    }
    return c;
  };
  for (let o = 0; o < nOut; o++) {
    const co = unflat(o, outShape);
    const base = keep.reduce((s, a, k) => s + co[k] * st[a], 0);
    let acc = op === 'max' || op === 'argmax' ? -Infinity : op === 'min' || op === 'argmin' ? Infinity : 0;
    let arg = 0;
    for (let j = 0; j < nRed; j++) {
      const cr = unflat(j, redShape);
      const v = x[base + axes.reduce((s, a, k) => s + cr[k] * st[a], 0)];
      if (op === 'sum' || op === 'mean') acc += v;
      else if ((op === 'max' || op === 'argmax') ? v > acc : v < acc) {
        acc = v;
        arg = j;
      }
    }
    out.push(op === 'mean' ? acc / nRed : op === 'argmax' || op === 'argmin' ? arg : acc);
  }
  return out;
}

function norm(axes: number | number[] | undefined, rank: number): number[] {
  if (axes === undefined) return Array.from({ length: rank }, (_, i) => i);
  const list = typeof axes === 'number' ? [axes] : axes;
  return [...new Set(list.map((a) => (a < 0 ? a + rank : a)))].sort((a, b) => a - b);
}

const FNS = { sum: wq.sum, mean: wq.mean, max: wq.max, min: wq.min };

describe('reduce', () => {
  before(setup);

  const CASES: [number[], number | number[] | undefined][] = [
    [[1], undefined],
    [[7], 0],
    [[7, 13], 1],
    [[7, 13], -2],
    [[3, 5, 67], [0, 2]],
    [[3, 5, 67], [-1, 1]],
    [[2, 3, 4, 5], [1, 2]],
    [[2, 3, 4, 5], undefined],
    [[4, 1, 6], [1]],
    [[300, 17], 0], // many outputs, strided
  ];

  for (const op of ['sum', 'mean', 'max', 'min'] as const) {
    it(`${op}: axes sets (negative, all, keepDims) vs reference`, async () => {
      for (const [shape, axes] of CASES) {
        const x = randArray(size(shape), shape.length + 2);
        const t = wq.tensor(x, shape);
        const ax = norm(axes, shape.length);
        for (const keepDims of [false, true]) {
          const y = FNS[op](t, axes, keepDims);
          const expShape = keepDims ? shape.map((d, i) => (ax.includes(i) ? 1 : d)) : shape.filter((_, i) => !ax.includes(i));
          assert.deepEqual([...y.shape], expShape, `${op} shape ${JSON.stringify([shape, axes, keepDims])}`);
          assertClose(await y.data(), refReduce(x, shape, ax, op), 1e-5, 1e-4, `${op} ${JSON.stringify([shape, axes, keepDims])}`);
          y.release();
        }
        t.release();
      }
    });
  }

  it('large reductions (two-pass path) match the reference and are deterministic', async () => {
    const n = 1 << 20;
    const x = randArray(n, 77);
    const t = wq.tensor(x, [n]);
    const ref = { sum: 0, max: -Infinity, min: Infinity };
    let absSum = 0;
    for (let i = 0; i < n; i++) {
      ref.sum += x[i];
      absSum += Math.abs(x[i]);
      ref.max = Math.max(ref.max, x[i]);
      ref.min = Math.min(ref.min, x[i]);
    }
    const s1 = await wq.sum(t).item();
    const s2 = await wq.sum(t).item();
    assert.equal(s1, s2, 'sum is deterministic');
    assert.ok(Math.abs(s1 - ref.sum) < 1e-6 * absSum, `sum ${s1} vs ${ref.sum}`);
    assert.ok(Math.abs((await wq.mean(t).item()) - ref.sum / n) < 1e-6 * absSum / n, 'mean');
    assert.equal(await wq.max(t).item(), ref.max);
    assert.equal(await wq.min(t).item(), ref.min);
    // a 4-D view with every axis reduced: collapses to the same linear walk
    const t4 = wq.reshape(t, [16, 16, 64, 64]);
    assert.equal(await wq.sum(t4, [0, 1, 2, 3], true).item(), s1);
    // few outputs, long rows (contiguous) and long columns (strided): per-output chunks
    const rows = wq.reshape(t, [4, n / 4]);
    assertClose(await wq.sum(rows, 1).data(), refReduce(x, [4, n / 4], [1], 'sum'), 1e-2, 1e-5, 'sum rows');
    assertClose(await wq.max(rows, -1).data(), refReduce(x, [4, n / 4], [1], 'max'), 0, 0, 'max rows');
    const cols = wq.reshape(t, [n / 8, 8]);
    assertClose(await wq.mean(cols, 0).data(), refReduce(x, [n / 8, 8], [0], 'mean'), 1e-6, 1e-4, 'mean cols');
    assertClose(await wq.min(cols, 0, true).data(), refReduce(x, [n / 8, 8], [0], 'min'), 0, 0, 'min cols');
    // middle axis reduced, outer and inner kept
    const mid = wq.reshape(t, [2, n / 16, 8]);
    assertClose(await wq.sum(mid, 1).data(), refReduce(x, [2, n / 16, 8], [1], 'sum'), 1e-2, 1e-5, 'sum middle axis');
    assert.equal(await wq.argmax(t, 0).item(), refReduce(x, [n], [0], 'argmax')[0]);
  });

  it('argmax / argmin: axes, negative axis, keepDims, ties take the first index', async () => {
    for (const [shape, axis] of [[[7, 13], 1], [[7, 13], 0], [[3, 5, 67], -2], [[1], 0], [[2, 300], -1]] as [number[], number][]) {
      const x = randArray(size(shape), 5);
      const t = wq.tensor(x, shape);
      const ax = axis < 0 ? axis + shape.length : axis;
      for (const op of ['argmax', 'argmin'] as const) {
        const y = (op === 'argmax' ? wq.argmax : wq.argmin)(t, axis);
        assert.equal(y.dtype, 'i32');
        assert.deepEqual(Array.from(await y.data()), refReduce(x, shape, [ax], op), `${op} ${JSON.stringify([shape, axis])}`);
      }
      const k = wq.argmax(t, axis, true);
      assert.deepEqual([...k.shape], shape.map((d, i) => (i === ax ? 1 : d)));
    }
    const ties = wq.tensor([[1, 3, 3, 0], [2, 2, 2, 2]]);
    assert.deepEqual(await wq.argmax(ties).array(), [1, 0]);
    assert.deepEqual(await wq.argmin(ties).array(), [3, 0]);
  });

  it('backward of sum / mean / max / min vs finite differences', async () => {
    const shape = [3, 4, 5];
    const x = randArray(60, 9);
    for (const op of ['sum', 'mean', 'max', 'min'] as const) {
      for (const [axes, keepDims] of [[undefined, false], [1, false], [[0, 2], true], [-1, true]] as [number | number[] | undefined, boolean][]) {
        const ax = norm(axes, 3);
        await gradCheck(([a]) => FNS[op](a, axes, keepDims), ([a]) => refReduce(a, shape, ax, op),
          [{ data: x, shape }], { what: `${op} ${JSON.stringify([axes, keepDims])}` });
      }
    }
    // backward through the two-pass path
    const big = randArray(20000, 10);
    const tb = wq.tensor(big, [20000], 'f32', true);
    wq.mean(tb).backward();
    assertClose(await tb.grad!.data(), new Float32Array(20000).fill(1 / 20000), 1e-9, 1e-5, 'mean grad large');
  });

  it('max / min backward: ties share the gradient equally', async () => {
    const x = wq.tensor([[1, 3, 3], [0, 2, 1]], undefined, 'f32', true);
    wq.sum(wq.max(x, 1)).backward();
    assertClose(await x.grad!.data(), [0, 0.5, 0.5, 0, 1, 0], 0, 0, 'max ties');
    const y = wq.tensor([5, -1, -1, -1], [4], 'f32', true);
    wq.min(y).backward();
    assertClose(await y.grad!.data(), [0, 1 / 3, 1 / 3, 1 / 3], 1e-7, 0, 'min ties');
  });

  it('bad axes give errors naming the op and the shape', () => {
    const t = wq.tensor(randArray(6, 1), [2, 3]);
    assert.throws(() => wq.sum(t, 2), /sum: axis 2 is out of range for shape \[2,3\]/);
    assert.throws(() => wq.mean(t, [-3]), /mean: axis -3 is out of range for shape \[2,3\]/);
    assert.throws(() => wq.max(t, 0.5), /max: axis 0.5 is out of range/);
    assert.throws(() => wq.argmax(t, 5), /argmax: axis 5 is out of range for shape \[2,3\]/);
    assert.throws(() => wq.sum(wq.tensor(new Int32Array([1]))), /sum: expected dtype f32, got .*i32\[1\]/);
  });
});
