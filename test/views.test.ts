import { describe, it, before } from 'node:test';
import { assert, assertClose, gradCheck, randArray, setup, size, wq } from './helpers.ts';

// ---------------------------------------------------------------- plain-TypeScript references

function strides(shape: readonly number[]): number[] {
  const s = new Array(shape.length).fill(1);
  for (let i = shape.length - 2; i >= 0; i--) s[i] = s[i + 1] * shape[i + 1];
  return s;
}

function coords(i: number, shape: readonly number[]): number[] {
  const c = new Array(shape.length).fill(0);
  for (let k = shape.length - 1; k >= 0; k--) {
    c[k] = i % shape[k];
    i = Math.floor(i / shape[k]);
  }
  return c;
}

function offset(c: readonly number[], st: readonly number[]): number {
  return c.reduce((s, v, k) => s + v * st[k], 0);
}

function refPermute(x: ArrayLike<number>, shape: number[], perm: number[]): number[] {
  const out = perm.map((p) => shape[p]);
  const st = strides(shape);
  return Array.from({ length: size(out) }, (_, i) => {
    const c = coords(i, out);
    return x[perm.reduce((s, p, k) => s + c[k] * st[p], 0)];
  });
}

function refSlice(x: ArrayLike<number>, shape: number[], begin: number[], sz: number[]): number[] {
  const st = strides(shape);
  return Array.from({ length: size(sz) }, (_, i) => x[offset(coords(i, sz).map((c, k) => c + begin[k]), st)]);
}

function refPad(x: ArrayLike<number>, shape: number[], pads: [number, number][], value: number): number[] {
  const out = shape.map((d, k) => d + pads[k][0] + pads[k][1]);
  const st = strides(shape);
  return Array.from({ length: size(out) }, (_, i) => {
    const c = coords(i, out).map((v, k) => v - pads[k][0]);
    return c.every((v, k) => v >= 0 && v < shape[k]) ? x[offset(c, st)] : value;
  });
}

function refConcat(xs: ArrayLike<number>[], shapes: number[][], axis: number): number[] {
  const out = [...shapes[0]];
  out[axis] = shapes.reduce((s, sh) => s + sh[axis], 0);
  return Array.from({ length: size(out) }, (_, i) => {
    const c = coords(i, out);
    let j = 0;
    let a = c[axis];
    while (a >= shapes[j][axis]) a -= shapes[j++][axis];
    c[axis] = a;
    return xs[j][offset(c, strides(shapes[j]))];
  });
}

function refGather(x: ArrayLike<number>, shape: number[], idx: ArrayLike<number>, axis: number): number[] {
  const outer = size(shape.slice(0, axis));
  const inner = size(shape.slice(axis + 1));
  const dim = shape[axis];
  const out: number[] = [];
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < idx.length; j++) {
      for (let n = 0; n < inner; n++) {
        const a = idx[j];
        out.push(a >= 0 && a < dim ? x[(o * dim + a) * inner + n] : 0);
      }
    }
  }
  return out;
}

describe('views', () => {
  before(setup);

  it('permute / transpose: forward on awkward shapes, backward', async () => {
    const cases: [number[], number[]][] = [
      [[1], [0]],
      [[7, 13], [1, 0]],
      [[3, 5, 67], [2, 0, 1]],
      [[2, 3, 4, 5], [3, 1, 0, 2]],
      [[300, 257], [1, 0]], // several workgroups
      [[2, 1, 3, 1, 2, 1, 2, 3], [7, 6, 5, 4, 3, 2, 1, 0]], // rank 8
    ];
    for (const [shape, perm] of cases) {
      const x = randArray(size(shape), shape.length + 1);
      const t = wq.tensor(x, shape);
      const y = wq.permute(t, perm);
      assert.deepEqual([...y.shape], perm.map((p) => shape[p]));
      assertClose(await y.data(), refPermute(x, shape, perm), 0, 0, `permute ${JSON.stringify([shape, perm])}`);
      t.release();
      y.release();
    }
    const x = randArray(2 * 3 * 5, 4);
    const t = wq.tensor(x, [2, 3, 5]);
    const y = wq.transpose(t);
    assert.deepEqual([...y.shape], [2, 5, 3]);
    assertClose(await y.data(), refPermute(x, [2, 3, 5], [0, 2, 1]), 0, 0, 'transpose default');
    // i32 data moves bit-exactly
    const ti = wq.tensor(new Int32Array([1, -2, 3, -4, 5, -6]), [2, 3]);
    assert.deepEqual(await wq.transpose(ti).array(), [1, -4, -2, 5, 3, -6]);
    await gradCheck(([a]) => wq.permute(a, [2, 0, 1]), ([a]) => refPermute(a, [3, 4, 5], [2, 0, 1]),
      [{ data: randArray(60, 5), shape: [3, 4, 5] }], { what: 'permute' });
    await gradCheck(([a]) => wq.transpose(a), ([a]) => refPermute(a, [4, 7], [1, 0]),
      [{ data: randArray(28, 6), shape: [4, 7] }], { what: 'transpose' });
  });

  it('slice: forward (incl. size -1, missing trailing axes), backward', async () => {
    const cases: [number[], number[], number[], number[]][] = [
      // shape, begin, size, resolved size
      [[10], [3], [4], [4]],
      [[7, 13], [2, 5], [-1, 3], [5, 3]],
      [[3, 5, 67], [1, 0, 30], [2, 5, -1], [2, 5, 37]],
      [[4, 6], [1], [2], [2, 6]],
      [[300, 257], [17, 1], [250, 255], [250, 255]],
    ];
    for (const [shape, begin, sz, resolved] of cases) {
      const x = randArray(size(shape), 7);
      const t = wq.tensor(x, shape);
      const y = wq.slice(t, begin, sz);
      assert.deepEqual([...y.shape], resolved);
      const b = shape.map((_, k) => begin[k] ?? 0);
      assertClose(await y.data(), refSlice(x, shape, b, resolved), 0, 0, `slice ${JSON.stringify([shape, begin, sz])}`);
      t.release();
      y.release();
    }
    await gradCheck(([a]) => wq.slice(a, [1, 2, 0], [2, -1, 3]), ([a]) => refSlice(a, [3, 5, 4], [1, 2, 0], [2, 3, 3]),
      [{ data: randArray(60, 8), shape: [3, 5, 4] }], { what: 'slice' });
  });

  it('pad: forward with value, backward', async () => {
    const cases: [number[], [number, number][]][] = [
      [[1], [[2, 3]]],
      [[7, 13], [[0, 1], [5, 0]]],
      [[3, 5, 7], [[1, 1], [0, 0], [2, 9]]],
      [[200, 300], [[1, 2], [3, 4]]],
    ];
    for (const [shape, pads] of cases) {
      const x = randArray(size(shape), 9);
      const t = wq.tensor(x, shape);
      const y = wq.pad(t, pads, -1.5);
      assert.deepEqual([...y.shape], shape.map((d, k) => d + pads[k][0] + pads[k][1]));
      assertClose(await y.data(), refPad(x, shape, pads, -1.5), 0, 0, `pad ${JSON.stringify([shape, pads])}`);
      t.release();
      y.release();
    }
    const ti = wq.tensor(new Int32Array([7, 8]), [2]);
    assert.deepEqual(await wq.pad(ti, [[1, 1]], -3).array(), [-3, 7, 8, -3]);
    await gradCheck(([a]) => wq.pad(a, [[1, 0], [2, 3]]), ([a]) => refPad(a, [3, 4], [[1, 0], [2, 3]], 0),
      [{ data: randArray(12, 10), shape: [3, 4] }], { what: 'pad' });
  });

  it('concat: forward along each axis, backward to every input', async () => {
    const shapes = [[2, 3, 4], [2, 1, 4], [2, 5, 4]];
    for (const axis of [1, -2]) {
      const xs = shapes.map((s, i) => randArray(size(s), 20 + i));
      const ts = xs.map((x, i) => wq.tensor(x, shapes[i]));
      const y = wq.concat(ts, axis);
      assert.deepEqual([...y.shape], [2, 9, 4]);
      assertClose(await y.data(), refConcat(xs, shapes, 1), 0, 0, `concat axis ${axis}`);
    }
    const s0 = [[3, 70], [5, 70]];
    const xs0 = s0.map((s, i) => randArray(size(s), 30 + i));
    const y0 = wq.concat(xs0.map((x, i) => wq.tensor(x, s0[i])), 0);
    assertClose(await y0.data(), refConcat(xs0, s0, 0), 0, 0, 'concat axis 0');
    const s2 = [[3, 2], [3, 1], [3, 3]];
    await gradCheck((ts) => wq.concat(ts, -1), (hs) => refConcat(hs, s2, 1),
      s2.map((s, i) => ({ data: randArray(size(s), 40 + i), shape: s })), { what: 'concat' });
  });

  it('gather: forward (incl. repeated and out-of-range indices), scatter-add backward', async () => {
    const shape = [3, 5, 4];
    const x = randArray(size(shape), 50);
    const t = wq.tensor(x, shape);
    const idxData = new Int32Array([4, 0, 0, 2, 7, -1, 4]);
    const idx = wq.tensor(idxData, [7]);
    for (const axis of [0, 1, 2, -1]) {
      const ax = axis < 0 ? axis + 3 : axis;
      const y = wq.gather(t, idx, axis);
      assert.deepEqual([...y.shape], [...shape.slice(0, ax), 7, ...shape.slice(ax + 1)]);
      assertClose(await y.data(), refGather(x, shape, idxData, ax), 0, 0, `gather axis ${axis}`);
    }
    // multi-dim indices: shape [2, 3] on axis 1 -> [3, 2, 3, 4]
    const idx2 = wq.tensor(new Int32Array([1, 1, 3, 0, 4, 2]), [2, 3]);
    const y2 = wq.gather(t, idx2, 1);
    assert.deepEqual([...y2.shape], [3, 2, 3, 4]);
    assertClose(await y2.data(), refGather(x, shape, [1, 1, 3, 0, 4, 2], 1), 0, 0, 'gather 2-d indices');
    // many indices (more than one tile of 256) and a larger table
    const big = randArray(600 * 3, 51);
    const bigIdx = new Int32Array(700).map((_, i) => (i * 37) % 600);
    const yb = wq.gather(wq.tensor(big, [600, 3]), wq.tensor(bigIdx, [700]), 0);
    assertClose(await yb.data(), refGather(big, [600, 3], bigIdx, 0), 0, 0, 'gather large');
    for (const axis of [0, 1]) {
      await gradCheck(([a]) => wq.gather(a, idx, axis), ([a]) => refGather(a, [5, 5], idxData, axis),
        [{ data: randArray(25, 52 + axis), shape: [5, 5] }], { what: `gather axis ${axis}` });
    }
    // scatter-add over > 256 indices (several index tiles) with repeats
    const rep = new Int32Array(520).map((_, i) => (i * 7) % 9);
    const rt = wq.tensor(rep, [520]);
    await gradCheck(([a]) => wq.gather(a, rt, 0), ([a]) => refGather(a, [9, 2], rep, 0),
      [{ data: randArray(18, 55), shape: [9, 2] }], { what: 'gather many indices' });
  });

  it('errors name the op and the shapes', () => {
    const a = wq.tensor(randArray(6, 1), [2, 3]);
    assert.throws(() => wq.permute(a, [0, 0]), /permute: perm \[0,0\] is not a permutation .*\[2,3\]/);
    assert.throws(() => wq.transpose(wq.tensor([1, 2, 3])), /transpose: needs rank >= 2.*\[3\]/);
    assert.throws(() => wq.slice(a, [1, 2], [2, 1]), /slice: begin \[1,2\] \/ size \[2,1\] do not fit shape \[2,3\]/);
    assert.throws(() => wq.pad(a, [[-1, 0]]), /pad: pads must be non-negative/);
    assert.throws(() => wq.concat([a, wq.tensor(randArray(4, 1), [2, 2])], 0), /concat: along axis 0 .*\[2,3\]/);
    assert.throws(() => wq.concat([a], 2), /concat: axis 2 is out of range for shape \[2,3\]/);
    assert.throws(() => wq.gather(a, a, 0), /gather: expected dtype i32, got .*f32\[2,3\]/);
    assert.throws(() => wq.gather(a, wq.tensor(new Int32Array([0])), 3), /gather: axis 3 is out of range/);
  });
});
