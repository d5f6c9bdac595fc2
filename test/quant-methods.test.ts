/** The quantizer registry (src/quant/methods): every record round-trips, role-based optimizer routing, the qat() assembly. */
import { before, describe, it } from 'node:test';
import { assert, assertClose, randArray, setup, wq } from './helpers.ts';

const KINDS = new Set(['float', 'binary', 'ternary', 'kbit', 'log', 'fixed', 'adaptive']);

describe('quant: method registry', () => {
  before(setup);

  it('every registered method: its names and examples parse, the canonical name round-trips, precision tags', () => {
    const methods = wq.quantMethods();
    assert.ok(methods.length >= 12, `${methods.length} records`);
    const ids = new Set<string>();
    for (const m of methods) {
      assert.ok(!ids.has(m.id), `duplicate id ${m.id}`);
      ids.add(m.id);
      assert.ok(m.weight || m.act, `${m.id}: a weight or an activation part`);
      assert.ok(m.examples.length > 0 && m.accepted.length > 0 && m.summary.length > 0, `${m.id}: examples, accepted forms, summary`);
      assert.equal(wq.methodById(m.id), m);
      for (const n of m.names) assert.equal(wq.methodByName(n), m, `${m.id}: name ${n}`);
      for (const e of m.examples) {
        const s = wq.parseQuantSpec(e);
        assert.deepEqual(wq.parseQuantSpec(s.name), s, `${e} -> ${s.name}`);
        assert.equal(wq.parseQuantSpec(s.name).name, s.name, `${e}: canonical name is a fixed point`);
        // the record that owns the spec is this one (activation record if activations are quantized)
        assert.equal(s.act.method !== 'none' ? s.act.method : s.weight.method, m.id, `${e}: owned by ${m.id}`);
        for (const p of [s.weightPrecision, s.actPrecision]) {
          assert.ok(KINDS.has(p.kind), `${e}: precision kind ${p.kind}`);
          assert.ok(Number.isInteger(p.bits) && p.bits >= 1 && p.bits <= 32, `${e}: precision bits ${p.bits}`);
        }
        if (m.weight && s.weight.method === m.id) assert.deepEqual(m.weight.precision(s.weight), s.weightPrecision, `${e}: weight tag from the record`);
        // the menu form appears in the help text's accepted list under this record's name
        assert.ok(wq.acceptedQuantSpecs().some((a) => a.startsWith(m.names[0])), `${m.id} in acceptedQuantSpecs()`);
      }
    }
    assert.deepEqual(wq.quantExamples(), methods.flatMap((m) => m.examples));
  });

  it('a name no record claims is rejected, listing every record\'s forms', () => {
    assert.throws(() => wq.parseQuantSpec('nosuch:3'), (e: Error) => /unknown quantizer 'nosuch'/.test(e.message) && wq.quantMethods().every((m) => e.message.includes(m.accepted[0])));
  });

  it('quantizer parameters carry their record\'s role; checkpoints keep the old state-dict names', () => {
    const expect: Record<string, [string, string][]> = {
      ttq: [['ttq_wp', 'scale'], ['ttq_wn', 'scale']],
      sq: [['sq_alpha', 'scale'], ['sq_beta', 'angle']],
      'lsq:w4': [['w_step', 'step']],
      bwn: [],
    };
    for (const [text, params] of Object.entries(expect)) {
      const model = new wq.Sequential(new wq.Linear(4, 6, { seed: 1 }), new wq.Linear(6, 5, { seed: 2 }), new wq.Linear(5, 3, { seed: 3 }));
      wq.quantizeModel(model, wq.parseQuantSpec(text));
      const named = new Map(model.namedParameters());
      assert.equal(wq.paramRole(named.get('1.weight')!), 'weight', text);
      assert.equal(wq.paramRole(named.get('1.bias')!), undefined, `${text}: a bias has no quantizer role`);
      for (const [n, role] of params) assert.equal(wq.paramRole(named.get(`1.${n}`)!), role, `${text}: 1.${n}`);
      assert.equal([...named.keys()].filter((k) => k.startsWith('1.')).length, 2 + params.length, `${text}: ${[...named.keys()]}`);
      model.release();
    }
    const pact = new wq.QuantAct(wq.parseQuantSpec('pact:a4').act);
    assert.equal(wq.paramRole(pact.qparams.pact_alpha), 'clip');
    assert.deepEqual(pact.namedParameters().map(([n]) => n), ['pact_alpha']);
    pact.release();
  });
});

describe('quant: role-based optimizer routing', () => {
  before(setup);

  it('groups follow the role tags and their multiples, not parameter names', () => {
    const t = (v: number) => wq.tensor([v], [1]);
    const w = wq.tensor(randArray(6, 1), [2, 3]);
    const angle = t(0.8); // a record's angle under an unrelated name
    wq.setParamRole(angle, 'angle', 4);
    const impostor = t(0.9); // named like SQ's β, but no role: an ordinary parameter
    const scale = t(0.5);
    wq.setParamRole(scale, 'scale');
    const wide = wq.tensor(randArray(6, 2), [2, 3]); // a rank-2 quantizer tensor (e.g. per-channel scales laid out 2-D)
    wq.setParamRole(wide, 'step');
    const named: [string, wq.Tensor][] = [['fc.weight', w], ['fc.theta', angle], ['fc.sq_beta', impostor], ['fc.s', scale], ['fc.steps', wide]];
    const groups = wq.quantParamGroups(named, null, 0.01);
    const names = (g: wq.ParamGroupSpec<wq.BaseHyper>) => (g.params as [string, unknown][]).map(([n]) => n);
    assert.equal(groups.length, 2);
    assert.deepEqual(names(groups[0]), ['fc.weight', 'fc.sq_beta', 'fc.s', 'fc.steps']);
    assert.deepEqual(names(groups[1]), ['fc.theta']);
    assert.equal(groups[1].lr, 0.04);
    assert.equal(groups[1].weightDecay, 0);
    // with weight decay: quantizer parameters never decay, whatever their rank
    const dg = wq.quantParamGroups(named, null, 0.01, (rest) => wq.decayGroups(rest, 5e-4));
    const decayed = dg.filter((g) => (g.weightDecay ?? 0) > 0).flatMap(names);
    assert.deepEqual(decayed, ['fc.weight']);
    assert.ok(dg.some((g) => g.weightDecay === 0 && names(g).includes('fc.steps')), 'the rank-2 step tensor moved to a group without decay');
    assert.deepEqual(dg.flatMap(names).sort(), named.map(([n]) => n).sort(), 'every parameter once');
    for (const x of [w, angle, impostor, scale, wide]) x.release();
  });
});

describe('quant: qat() assembly', () => {
  before(setup);

  /** Three SGD steps on a small MLP; returns the losses. */
  async function run(text: string, assemble: 'qat' | 'manual'): Promise<number[]> {
    const spec = wq.parseQuantSpec(text);
    const model = new wq.Sequential(new wq.Linear(8, 12, { seed: 1 }), new wq.Linear(12, 10, { seed: 2 }), new wq.Linear(10, 3, { seed: 3 }));
    const base = (l: wq.Tensor, y: wq.Tensor) => wq.softmaxCrossEntropy(l, y, 'mean');
    const lr = 0.05;
    let opt: { step(): void; zeroGrad(): void };
    let loss: (l: wq.Tensor, y: wq.Tensor) => wq.Tensor;
    let prepare: () => Promise<void>;
    let raw: wq.SGD;
    if (assemble === 'qat') {
      const q = wq.qat(model, spec, { lr, totalSteps: 3, optimizer: (g) => new wq.SGD(g, { lr, momentum: 0.9 }) });
      assert.deepEqual(q.layers, ['1']);
      ({ optimizer: opt, loss, prepare } = q);
      raw = q.rawOptimizer;
    } else {
      // the hand-written assembly qat() replaces
      wq.quantizeModel(model, spec);
      raw = new wq.SGD(wq.quantParamGroups(model.namedParameters(), spec, lr), { lr, momentum: 0.9 });
      const hooks = new wq.QuantHooks(model, spec, 3);
      opt = hooks.optimizer(raw);
      loss = hooks.loss(base);
      prepare = () => hooks.prepare();
    }
    await prepare();
    const x = wq.tensor(randArray(16 * 8, 7), [16, 8]);
    const y = wq.tensor(Int32Array.from({ length: 16 }, (_, i) => i % 3), [16], 'i32');
    const out: number[] = [];
    for (let s = 0; s < 3; s++) {
      opt.zeroGrad();
      const l = loss(model.forward(x), y);
      l.backward();
      opt.step();
      out.push((await l.data())[0]);
      l.release();
    }
    x.release();
    y.release();
    raw.release();
    model.release();
    return out;
  }

  it('same losses as the hand-written assembly (sq, ttq, fixed)', async () => {
    for (const text of ['sq:lambda=0.05,warmup=0', 'ttq', 'fixed:6']) {
      const a = await run(text, 'qat');
      const b = await run(text, 'manual');
      assertClose(a, b, 0, 0, text);
      assert.ok(a[2] < a[0], `${text}: loss falls (${a})`);
    }
  });
});
