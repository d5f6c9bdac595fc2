/**
 * The PTQ quantizer registry (src/quant/ptq/quantizers): every registered record is checked the same
 * way (ids and names unique and found, its candidates owned by it alone, label ↔ parse round trip,
 * precision tag, parameters with roles, packing, and its op against a plain-TypeScript reference on
 * the GPU), and the generic code that dispatches through the records: the --method words, the
 * records in use (defaults, --log-m), the choice rule and the quantized model's candidate lists.
 */
import { before, describe, it } from 'node:test';
import { assert, assertClose, randArray, setup, wq } from './helpers.ts';
import { refQ as ref } from './fixtures/ptq-ref.ts';


const ROLES = new Set(['weight', 'scale', 'angle', 'step', 'clip']);
const RANGES = [{ maxAbs: 2.82, signed: true }, { maxAbs: 13.2, signed: false }, { maxAbs: 0.04, signed: true }];

describe('ptq quantizer records (plain TypeScript)', () => {
  it('ids and names are unique and found; the --method words come from the families', () => {
    const recs = wq.ptqQuantizers();
    assert.ok(recs.length >= 4);
    assert.equal(new Set(recs.map((r) => r.id)).size, recs.length);
    for (const r of recs) for (const n of [r.id, ...r.names]) assert.equal(wq.ptqQuantizerByName(n), r, n);
    assert.deepEqual(wq.ptqMethods(), ['mxqn', ...new Set(recs.map((r) => r.family))]);
    assert.deepEqual(wq.PTQ_METHODS.slice(0, 3), ['mxqn', 'fixed', 'log']);
    assert.ok(recs.some((r) => r.roles.weight && r.default), 'a default weight quantizer');
  });

  for (const r of wq.ptqQuantizers()) {
    it(`${r.id}: candidates are its own, label parses back, precision, params, packing`, () => {
      for (const range of RANGES) {
        for (const bits of [3, 4, 8]) {
          const cands = r.candidates(range, bits);
          assert.ok(cands.length >= 1 && cands.length <= wq.PTQ_MAX_CANDIDATES, `${r.id}: ${cands.length} candidates`);
          for (const q of cands) {
            assert.equal(wq.ptqRecordOf(q), r, JSON.stringify(q));
            assert.equal(q.bits, bits);
            assert.equal(q.signed, range.signed);
            assert.deepEqual(r.parse(r.label(q)), q, r.label(q));
            assert.equal(wq.ptqQuantizerLabel(q), r.label(q));
            assert.equal(r.label(q), wq.ptqLabel(q), 'the op-level label agrees');
            const p = r.precision(q);
            assert.equal(p.bits, bits);
            assert.equal(p.kind, q.kind);
            const params = r.params(q);
            assert.ok(params.length > 0 && params.every((x) => ROLES.has(x.role) && Number.isFinite(x.value) && x.value > 0), JSON.stringify(params));
            const clip = params.find((x) => x.role === 'clip');
            assert.ok(clip, 'a clip parameter');
            assertClose([clip.value], [wq.ptqRange(q)[1]], 0, 1e-12, `${r.id} clip = the top of the range`);
            const pk = r.pack(q);
            assert.equal(pk.bits, bits);
            assert.equal(pk.signed, q.signed);
          }
        }
      }
      assert.throws(() => r.parse('nonsense 9'), new RegExp(`'nonsense 9' is not a`));
      assert.equal(r.column.cell(undefined), '-');
      assert.ok(r.column.title.length <= r.column.width);
    });
  }

  it('fixed point: the search grid is f0 − 2 .. f0 + 3 around the max rule; packs integer codes', () => {
    const f = wq.ptqQuantizerByName('fixed')!;
    const c = f.candidates({ maxAbs: 0.9, signed: true }, 8) as wq.PtqFixed[];
    assert.deepEqual(c.map((q) => q.frac), [5, 6, 7, 8, 9, 10]);
    assert.deepEqual(f.pack(c[2]), { codes: 'int', bits: 8, signed: true, lo: -128, hi: 127, step: 2 ** -7 });
    assert.equal(f.label(c[2]), 'fixed8 f=7');
    assert.equal(f.column.cell({ q: c[2], db: 21.06 }), '21.1 f=7');
    assert.throws(() => f.parse('fixed8 f=x'), /'fixed8 f=x' is not a fixed-point label \(fixedB f=F or fixedBu f=F/);
  });

  it('the records in use: defaults, --log-m keeps and orders the log records, unknown names are named', () => {
    assert.deepEqual(wq.ptqQuantizersInUse().map((r) => r.id), wq.ptqQuantizers().filter((r) => r.default).map((r) => r.id));
    assert.deepEqual(wq.ptqQuantizersInUse({ logM: [4, 1] }).map((r) => r.id), ['fixed', 'log⁴√2', 'log2']);
    assert.deepEqual(wq.ptqQuantizersInUse({ names: ['fixed', 'log-m2'] }).map((r) => r.id), ['fixed', 'log√2']);
    assert.throws(() => wq.ptqQuantizersInUse({ names: ['int8'] }), /unknown quantizer 'int8' \(known: fixed, log2/);
    assert.throws(() => wq.ptqQuantizersInUse({ logM: [3] }), /no log quantizer with m = 3 \(registered m: 1, 2, 4/);
    assert.throws(() => wq.chooseActivation('int8', [{ q: { kind: 'fixed', bits: 4, frac: 1, signed: false }, db: 3 }]), /unknown method 'int8' \(known: mxqn, fixed, log/);
  });

  it('choice per record: best of each record, mxqn keeps the cheapest family unless another wins by > 0.5 dB', () => {
    const fx = (db: number) => ({ q: { kind: 'fixed' as const, bits: 4, frac: 1, signed: false }, db });
    const lg = (db: number, m: number, fsr = 2) => ({ q: { kind: 'log' as const, bits: 4, fsr, m, signed: false }, db });
    const c = wq.chooseActivation('mxqn', [fx(20), lg(19, 1), lg(19.5, 1, 3), lg(20.6, 2)]);
    assert.deepEqual(Object.keys(c.best), ['fixed', 'log2', 'log√2']);
    assert.equal(c.best.log2.db, 19.5);
    assert.equal(c.chosen.db, 20.6);
    assert.equal(wq.chooseActivation('mxqn', [fx(20), lg(20.4, 2)]).chosen.db, 20);
  });
});

describe('ptq quantizer records on the GPU', () => {
  before(async () => {
    await setup();
  });

  it('each record\'s op matches the plain-TS reference on its candidates', async () => {
    const n = 3001;
    const u = randArray(n, 21, -1, 1);
    const x = Float32Array.from(u, (v, i) => (i % 37 === 0 ? 0 : Math.sign(v) * 16 * Math.abs(v) ** 3));
    const t = wq.tensor(x, [n]);
    let checked = 0;
    for (const r of wq.ptqQuantizers()) {
      for (const bits of [4, 8]) {
        for (const q of r.candidates({ maxAbs: 16, signed: true }, bits).concat(r.candidates({ maxAbs: 16, signed: false }, bits))) {
          const y = r.forward(t, q);
          const got = await y.data();
          y.release();
          for (let i = 0; i < n; i++) {
            const w = ref(x[i], q);
            if (w.edge) continue;
            assert.ok(Math.abs(got[i] - w.y) <= 1e-6 + 1e-5 * Math.abs(w.y), `${r.label(q)}: x=${x[i]} got ${got[i]} want ${w.y}`);
          }
          checked++;
        }
      }
    }
    assert.ok(checked >= 2 * 2 * 8, `${checked} quantizers checked`);
    t.release();
  });

  it('PtqModel.quantize takes its candidate lists from the records in use', async () => {
    const m = new wq.Sequential(new wq.Linear(12, 8, { seed: 1 }), new wq.ReLU(), new wq.Linear(8, 3, { seed: 2 }));
    const xs = [wq.tensor(randArray(4 * 12, 5, -1, 2), [4, 12]).keep()];
    const pm = await wq.PtqModel.quantize(m, () => xs, { method: 'log', weightBits: 6, actBits: 6, logM: [2] });
    for (const l of pm.result.layers) {
      assert.deepEqual([...new Set(l.act!.candidates.map((c) => wq.ptqRecordOf(c.q).id))], ['fixed', 'log√2'], l.name);
      assert.equal(wq.ptqRecordOf(l.act!.q).id, 'log√2');
      assert.equal(l.act!.label, wq.ptqQuantizerLabel(l.act!.q));
      assert.equal(wq.ptqRecordOf(l.weight!.q).id, 'fixed');
    }
    pm.release();
    m.release();
    const m2 = new wq.Sequential(new wq.Linear(12, 3, { seed: 3 }));
    await assert.rejects(wq.PtqModel.quantize(m2, () => xs, { method: 'int8', weightBits: 8, actBits: 8 }), /unknown method 'int8' \(known: mxqn, fixed, log/);
    await assert.rejects(wq.PtqModel.quantize(m2, () => xs, { method: 'mxqn', weightBits: 8, actBits: 8, quantizers: ['log2'] }), /none of the quantizers in use \(log2\) quantizes weights/);
    m2.release();
    for (const x of xs) x.release();
  });
});

describe('ptq quantizer log⁸√2 (m = 8)', () => {
  it('is registered but not a default; --log-m / logM add it', () => {
    const r = wq.ptqQuantizerByName('log-m8')!;
    assert.equal(r.id, 'log⁸√2');
    assert.equal(r.default, false);
    assert.ok(!wq.ptqQuantizersInUse().includes(r));
    assert.deepEqual(wq.ptqQuantizersInUse({ logM: [1, 2, 4, 8] }).map((x) => x.id), ['fixed', 'log2', 'log√2', 'log⁴√2', 'log⁸√2']);
    assert.deepEqual(wq.ptqLogMs(), [1, 2, 4, 8]);
    assert.deepEqual(wq.ptqLogMs('default'), [1, 2, 4]);
    const [q] = r.candidates({ maxAbs: 5, signed: false }, 8) as wq.PtqLog[];
    assert.deepEqual(q, { kind: 'log', bits: 8, fsr: 3, m: 8, signed: false });
    assert.equal(r.label(q), 'log⁸√2 8u fsr=3');
    // top level 2^((8·3 − 1)/8), 255 levels down from it
    assert.deepEqual(r.pack(q), { codes: 'log', bits: 8, signed: false, m: 8, top: 23, lowest: 23 - 254 });
  });

  it('beats log⁴√2 at 8 bits on a smooth range (finer steps), and mxqn can choose it', async () => {
    const n = 20000;
    const x = Float32Array.from(randArray(n, 9, 0, 1), (u) => 2 ** (6 * u - 3)); // 6 octaves, log-uniform
    const t = wq.tensor(x, [n]);
    const cands = wq.logCandidates(8, 8, false, [4, 8]);
    const acc = wq.zeros([16]);
    wq.ptqErrorSums_(t, cands, acc);
    const c = wq.chooseActivation('log', wq.scoreCandidates(cands, await acc.data()));
    assert.ok(c.log[8]!.db > c.log[4]!.db + 4, `log⁸√2 ${c.log[8]!.db} dB vs log⁴√2 ${c.log[4]!.db} dB`);
    assert.equal(wq.ptqRecordOf(c.chosen.q).id, 'log⁸√2');
    t.release();
    acc.release();
  });
});
