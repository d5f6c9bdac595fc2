import { describe, it, before } from 'node:test';
import { assert, assertClose, gradCheck, randArray, setup, size, wq } from './helpers.ts';

/** Reference softmax / log-softmax over the last axis of [rows, cols], in float64. */
function refRows(x: ArrayLike<number>, cols: number, log: boolean): Float64Array {
  const out = new Float64Array(x.length);
  for (let b = 0; b < x.length; b += cols) {
    let m = -Infinity;
    for (let j = 0; j < cols; j++) m = Math.max(m, x[b + j]);
    let s = 0;
    for (let j = 0; j < cols; j++) s += Math.exp(x[b + j] - m);
    for (let j = 0; j < cols; j++) out[b + j] = log ? x[b + j] - m - Math.log(s) : Math.exp(x[b + j] - m) / s;
  }
  return out;
}

/** Reference along any axis: move the axis last, apply, move back. */
function refAxis(x: ArrayLike<number>, shape: number[], axis: number, log: boolean): Float64Array {
  const ax = axis < 0 ? axis + shape.length : axis;
  const n = shape[ax];
  const inner = size(shape.slice(ax + 1));
  const outer = size(shape.slice(0, ax));
  const out = new Float64Array(x.length);
  const row = new Float64Array(n);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      for (let j = 0; j < n; j++) row[j] = x[(o * n + j) * inner + i];
      const r = refRows(row, n, log);
      for (let j = 0; j < n; j++) out[(o * n + j) * inner + i] = r[j];
    }
  }
  return out;
}

function refCE(x: ArrayLike<number>, labels: ArrayLike<number>, c: number, reduction: 'mean' | 'sum'): number {
  const n = labels.length;
  const ls = refRows(x, c, true);
  let s = 0;
  for (let r = 0; r < n; r++) if (labels[r] >= 0 && labels[r] < c) s -= ls[r * c + labels[r]];
  return reduction === 'mean' ? s / n : s;
}

describe('softmax', () => {
  before(setup);

  for (const log of [false, true]) {
    const name = log ? 'logSoftmax' : 'softmax';
    const fn = log ? wq.logSoftmax : wq.softmax;
    it(`${name}: forward on awkward shapes and axes, backward`, async () => {
      const cases: [number[], number][] = [
        [[1], -1],
        [[7, 13], -1],
        [[3, 5, 67], -1],
        [[2, 300], 1], // cols > workgroup size
        [[1000, 10], -1], // several rows per workgroup (16 threads per row), many workgroups
        [[333, 3], -1],
        [[77, 1], -1],
        [[9, 33], -1],
        [[4, 6, 3], 1], // non-last axis (via permute)
        [[5, 3], 0],
      ];
      for (const [shape, axis] of cases) {
        const x = randArray(size(shape), 3 + shape.length, -4, 4);
        const t = wq.tensor(x, shape);
        const y = fn(t, axis);
        assertClose(await y.data(), refAxis(x, shape, axis, log), 1e-5, 1e-4, `${name} ${JSON.stringify([shape, axis])}`);
        t.release();
        y.release();
      }
      // large logits stay finite (max subtraction)
      const big = wq.tensor([1000, 1001, 999], [1, 3]);
      assertClose(await fn(big).data(), refRows([1000, 1001, 999], 3, log), 1e-5, 1e-4, `${name} large logits`);
      await gradCheck(([a]) => fn(a), ([a]) => refRows(a, 7, log), [{ data: randArray(35, 7, -2, 2), shape: [5, 7] }],
        { what: name });
      await gradCheck(([a]) => fn(a, 0), ([a]) => refAxis(a, [4, 3], 0, log), [{ data: randArray(12, 8, -2, 2), shape: [4, 3] }],
        { what: `${name} axis 0` });
      await gradCheck(([a]) => fn(a), ([a]) => refRows(a, 130, log), [{ data: randArray(260, 9, -2, 2), shape: [2, 130] }],
        { what: `${name} wide rows` });
    });
  }

  it('softmaxCrossEntropy: loss (mean, sum) and gradient vs reference', async () => {
    for (const [n, c] of [[1, 1], [1, 10], [37, 10], [5, 131], [300, 3]]) {
      const x = randArray(n * c, n + c, -3, 3);
      const lab = Int32Array.from({ length: n }, (_, i) => (i * 7 + 3) % c);
      const logits = wq.tensor(x, [n, c]);
      const labels = wq.tensor(lab, [n]);
      for (const red of ['mean', 'sum'] as const) {
        const loss = wq.softmaxCrossEntropy(logits, labels, red);
        assert.deepEqual([...loss.shape], []);
        assertClose([await loss.item()], [refCE(x, lab, c, red)], 1e-5, 1e-4, `CE ${red} [${n},${c}]`);
        loss.release();
      }
      logits.release();
      labels.release();
    }
    const lab = Int32Array.from([2, 0, 4, 1, 3, 3]);
    const labels = wq.tensor(lab, [6]);
    for (const red of ['mean', 'sum'] as const) {
      await gradCheck(([a]) => wq.softmaxCrossEntropy(a, labels, red), ([a]) => [refCE(a, lab, 5, red)],
        [{ data: randArray(30, 11, -2, 2), shape: [6, 5] }], { what: `CE ${red}` });
    }
    // the saved gradient scales by the incoming gradient: d(3 * loss)
    const x = wq.tensor(randArray(30, 12, -2, 2), [6, 5], 'f32', true);
    const l3 = wq.mulScalar(wq.softmaxCrossEntropy(x, labels), 3);
    l3.backward();
    const sm = refRows(await x.data(), 5, false);
    const expect = Array.from(sm, (p, i) => (3 * (p - (lab[Math.floor(i / 5)] === i % 5 ? 1 : 0))) / 6);
    assertClose(await x.grad!.data(), expect, 1e-5, 1e-4, 'CE grad * 3');
  });

  it('softmaxCrossEntropy: out-of-range labels contribute 0 loss and 0 gradient', async () => {
    const xv = randArray(4 * 3, 13, -2, 2);
    const lab = Int32Array.from([1, -1, 3, 0]); // rows 1 and 2 are out of range
    const x = wq.tensor(xv, [4, 3], 'f32', true);
    const loss = wq.softmaxCrossEntropy(x, wq.tensor(lab, [4]));
    assertClose([await loss.item()], [refCE(xv, lab, 3, 'mean')], 1e-5, 1e-4, 'CE ignored rows');
    loss.backward();
    const g = await x.grad!.data();
    assert.deepEqual(Array.from(g.slice(3, 9)), [0, 0, 0, 0, 0, 0]);
    assert.ok(Math.abs(g[0]) > 0 && Math.abs(g[9]) > 0);
  });

  it('softmaxCrossEntropy: the saved gradient is freed with the loss', async () => {
    const logits = wq.tensor(randArray(40, 14), [8, 5], 'f32', true);
    const labels = wq.tensor(Int32Array.from([0, 1, 2, 3, 4, 0, 1, 2]), [8]);
    const before = wq.memory().inUseBuffers;
    wq.tidy(() => {
      const loss = wq.softmaxCrossEntropy(logits, labels);
      loss.backward();
    });
    // only the (kept) gradient of the leaf remains
    assert.equal(wq.memory().inUseBuffers, before + 1);
  });

  it('accuracyCount: rows whose argmax equals the label', async () => {
    const x = wq.tensor([
      [0.1, 0.9, 0.0],
      [2, 1, 0],
      [0, 0, 5],
      [1, 1, 0], // tie: first index wins
      [3, 2, 1],
    ]);
    const labels = wq.tensor(Int32Array.from([1, 0, 1, 0, 7]), [5]);
    const acc = wq.accuracyCount(x, labels);
    assert.deepEqual([...acc.shape], []);
    assert.equal(await acc.item(), 3);
    const n = 1000;
    const xv = randArray(n * 4, 15);
    const lab = Int32Array.from({ length: n }, (_, i) => i % 4);
    let expect = 0;
    for (let r = 0; r < n; r++) {
      let best = 0;
      for (let j = 1; j < 4; j++) if (xv[r * 4 + j] > xv[r * 4 + best]) best = j;
      if (best === lab[r]) expect++;
    }
    assert.equal(await wq.accuracyCount(wq.tensor(xv, [n, 4]), wq.tensor(lab, [n])).item(), expect);
  });

  it('errors name the op, shapes and dtypes', () => {
    const x = wq.tensor(randArray(6, 1), [2, 3]);
    assert.throws(() => wq.softmax(x, 2), /softmax: axis 2 is out of range for shape \[2,3\]/);
    assert.throws(() => wq.logSoftmax(wq.tensor(new Int32Array([1, 2]))), /logSoftmax: expected dtype f32, got .*i32\[2\]/);
    const fl = wq.tensor([0, 1]);
    assert.throws(() => wq.softmaxCrossEntropy(x, fl), /softmaxCrossEntropy: expected dtype i32, got .*f32\[2\]/);
    assert.throws(() => wq.softmaxCrossEntropy(x, wq.tensor(new Int32Array([0, 1, 2]))),
      /softmaxCrossEntropy: labels must be i32 \[2\] for logits \[2,3\], got .*i32\[3\]/);
    assert.throws(() => wq.softmaxCrossEntropy(wq.tensor(randArray(6, 1), [6]), wq.tensor(new Int32Array(6))),
      /softmaxCrossEntropy: logits must be \[N, C\].*f32\[6\]/);
    assert.throws(() => wq.accuracyCount(x, wq.tensor(new Int32Array([0]))), /accuracyCount: labels must be i32 \[2\]/);
  });
});
