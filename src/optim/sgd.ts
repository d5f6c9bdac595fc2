/** Stochastic gradient descent with momentum, dampening, Nesterov and L2 weight decay (PyTorch semantics). */
import { engine } from '../autograd/index.ts';
import * as ok from '../kernels/optim.ts';
import { type BaseHyper, type Chunk, Optimizer, type ParamGroup, type ParamsArg } from './optimizer.ts';

export interface SgdOptions extends BaseHyper {
  momentum: number;
  dampening: number;
  nesterov: boolean;
}

export class SGD extends Optimizer<SgdOptions> {
  readonly type = 'sgd';

  constructor(params: ParamsArg<SgdOptions>, opts: Partial<SgdOptions> & { lr: number }) {
    super(params, { momentum: 0, dampening: 0, nesterov: false, weightDecay: 0, ...opts });
  }

  protected validate(h: SgdOptions): void {
    if (!(h.lr >= 0)) throw new Error(`webqat: SGD: lr must be >= 0, got ${h.lr}`);
    if (!(h.momentum >= 0)) throw new Error(`webqat: SGD: momentum must be >= 0, got ${h.momentum}`);
    if (!(h.weightDecay >= 0)) throw new Error(`webqat: SGD: weightDecay must be >= 0, got ${h.weightDecay}`);
    if (h.nesterov && (h.momentum <= 0 || h.dampening !== 0)) {
      throw new Error(`webqat: SGD: Nesterov momentum needs momentum > 0 and dampening = 0, got momentum ${h.momentum}, dampening ${h.dampening}`);
    }
  }

  protected stateNamesFor(h: SgdOptions): string[] {
    return h.momentum !== 0 ? ['momentum_buffer'] : [];
  }

  protected override runKey(steps: number): number {
    return steps === 1 ? 1 : 0;
  }

  protected launch(group: ParamGroup<SgdOptions>, chunk: Chunk, base: number, n: number, step: number): void {
    const h = group.options;
    if (h.momentum !== 0 && group.stateNames.length === 0) {
      throw new Error('webqat: SGD: momentum was 0 when the optimizer was built (no momentum buffers); build a new optimizer to use momentum');
    }
    ok.sgdStep(engine().gpu, chunk.params, chunk.grads, chunk.states[0] ?? null, base, n, {
      lr: h.lr,
      weightDecay: h.weightDecay,
      momentum: h.momentum,
      dampening: h.dampening,
      nesterov: h.nesterov,
      firstStep: step === 1,
    });
  }
}
