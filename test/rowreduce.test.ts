import { before, describe, it } from 'node:test';
import { type RowReduceSpec, rowReduce, ROWREDUCE_FAMILY, splitThreadsFor } from '../src/kernels/rowreduce.ts';
import { assert, assertClose, randArray, setup, wq } from './helpers.ts';

/** Per row: Σ x, Σ x², max |x| (sum spec) and max x (max spec); a side output y = 2x from contrib. */
const SUM: RowReduceSpec = {
  key: 'test:rowsum',
  combine: 'sum',
  in1: [{ name: 'X', type: 'f32' }, { name: 'Y', type: 'f32', rw: true }],
  contrib: `  let v = X[r * p.rowLen + j];
  Y[r * p.rowLen + j] = 2.0 * v;
  return vec4f(v, v * v, 0.0, 0.0);`,
  in2: [{ name: 'O', type: 'f32', rw: true }],
  finalize: '  O[r] = acc.x;\n  O[p.rows + r] = acc.y * p.f.x;',
};
const MAX: RowReduceSpec = {
  key: 'test:rowmax',
  combine: 'max',
  in1: [{ name: 'X', type: 'f32' }],
  contrib: '  return vec4f(X[r * p.rowLen + j], abs(X[r * p.rowLen + j]), 0.0, 0.0);',
  in2: [{ name: 'O', type: 'f32', rw: true }],
  finalize: '  O[r] = acc.x;\n  O[p.rows + r] = acc.y + f32(U(0u));',
};

describe('rowReduce: both variants against a reference', () => {
  before(setup);
  for (const kind of ['split', 'tree'] as const) {
    it(`'${kind}': row sums, sums of squares and maxima, side outputs, uniforms (rows x rowLen from 1x1 to 70x5000)`, async () => {
      const gpu = wq.gpu();
      for (const [rows, len] of [[1, 1], [3, 7], [70, 33], [5, 2049], [2, 5000], [16, 256]]) {
        const xa = randArray(rows * len, rows + len, -3, 1);
        const x = wq.tensor(xa, [rows * len]);
        const y = wq.zeros([rows * len]);
        const o1 = wq.zeros([2 * rows]);
        const o2 = wq.zeros([2 * rows]);
        rowReduce(gpu, SUM, rows, len, [x.buf, y.buf], [o1.buf], [], [0.5], 'test', kind);
        rowReduce(gpu, MAX, rows, len, [x.buf], [o2.buf], [7], [], 'test', kind);
        const sum = new Float64Array(2 * rows);
        const max = new Float64Array(2 * rows);
        for (let r = 0; r < rows; r++) {
          max[r] = -Infinity;
          max[rows + r] = 0;
          for (let j = 0; j < len; j++) {
            const v = xa[r * len + j];
            sum[r] += v;
            sum[rows + r] += 0.5 * v * v;
            max[r] = Math.max(max[r], v);
            max[rows + r] = Math.max(max[rows + r], Math.abs(v));
          }
          max[rows + r] += 7;
        }
        const what = `${kind} ${rows}x${len}`;
        assertClose(await o1.data(), sum, 1e-3, 1e-4, `${what}: sums`);
        assertClose(await o2.data(), max, 0, 1e-6, `${what}: maxima`);
        assertClose(await y.data(), Array.from(xa, (v) => 2 * v), 0, 1e-6, `${what}: side output`);
        for (const t of [x, y, o1, o2]) t.release();
      }
    });
  }

  it("the generic variant is 'split' (no barrier), with a power-of-two thread count per row up to 256", () => {
    const gpu = wq.gpu();
    assert.equal(ROWREDUCE_FAMILY.generic(gpu, { spec: SUM, rows: 4, rowLen: 100, u: [], f: [] }), 'split');
    assert.deepEqual([1, 8, 9, 100, 2048, 1e6].map(splitThreadsFor), [1, 1, 2, 16, 256, 256]);
  });
});
