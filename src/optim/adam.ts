/** Adam (L2 weight decay) and AdamW (decoupled weight decay), bias-corrected, PyTorch semantics. */
import { engine } from '../autograd/index.ts';
import * as ok from '../kernels/optim.ts';
import { type BaseHyper, type Chunk, Optimizer, type ParamGroup, type ParamsArg } from './optimizer.ts';

export interface AdamOptions extends BaseHyper {
  betas: [number, number];
  eps: number;
}

abstract class AdamBase extends Optimizer<AdamOptions> {
  protected abstract readonly decoupled: boolean;

  protected validate(h: AdamOptions): void {
    const who = this.constructor.name;
    if (!(h.lr >= 0)) throw new Error(`webqat: ${who}: lr must be >= 0, got ${h.lr}`);
    if (!(h.eps >= 0)) throw new Error(`webqat: ${who}: eps must be >= 0, got ${h.eps}`);
    if (!(h.weightDecay >= 0)) throw new Error(`webqat: ${who}: weightDecay must be >= 0, got ${h.weightDecay}`);
    const [b1, b2] = h.betas;
    if (!(b1 >= 0 && b1 < 1) || !(b2 >= 0 && b2 < 1)) throw new Error(`webqat: ${who}: betas must be in [0, 1), got [${b1}, ${b2}]`);
  }

  protected stateNamesFor(): string[] {
    return ['exp_avg', 'exp_avg_sq'];
  }

  protected launch(group: ParamGroup<AdamOptions>, chunk: Chunk, base: number, n: number, step: number): void {
    const h = group.options;
    ok.adamStep(engine().gpu, chunk.params, chunk.grads, chunk.states[0], chunk.states[1], base, n, {
      lr: h.lr,
      weightDecay: h.weightDecay,
      decoupled: this.decoupled,
      beta1: h.betas[0],
      beta2: h.betas[1],
      eps: h.eps,
      step,
    });
  }
}

export class Adam extends AdamBase {
  readonly type: string = 'adam';
  protected readonly decoupled: boolean = false;
  constructor(params: ParamsArg<AdamOptions>, opts: Partial<AdamOptions> = {}) {
    super(params, { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0, ...opts });
  }
}

export class AdamW extends AdamBase {
  readonly type: string = 'adamw';
  protected readonly decoupled: boolean = true;
  constructor(params: ParamsArg<AdamOptions>, opts: Partial<AdamOptions> = {}) {
    super(params, { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 1e-2, ...opts });
  }
}
