/**
 * Learning-rate schedules. A schedule maps a step (or epoch) index, counted from 0, to a factor of
 * the base learning rate: either a plain function or an object with `lrAt(step)`. Drive an
 * optimizer with `opt.setLrFactor(lrFactor(schedule, step))`.
 */
export type Schedule = ((step: number) => number) | { lrAt(step: number): number };

/** The factor of `schedule` at `step`. */
export function lrFactor(schedule: Schedule, step: number): number {
  return typeof schedule === 'function' ? schedule(step) : schedule.lrAt(step);
}

class Fn {
  constructor(readonly name: string, private readonly f: (step: number) => number) {}
  lrAt(step: number): number {
    if (!(step >= 0)) throw new Error(`webqat: ${this.name}: step must be >= 0, got ${step}`);
    return this.f(step);
  }
}

function positiveInt(who: string, what: string, v: number): void {
  if (!Number.isInteger(v) || v <= 0) throw new Error(`webqat: ${who}: ${what} must be a positive integer, got ${v}`);
}

/** Factor 1 throughout. */
export function constantLR(): Schedule {
  return new Fn('constantLR', () => 1);
}

/** gamma^floor(step / stepSize) (PyTorch StepLR). */
export function stepLR(stepSize: number, gamma = 0.1): Schedule {
  positiveInt('stepLR', 'stepSize', stepSize);
  return new Fn('stepLR', (s) => gamma ** Math.floor(s / stepSize));
}

/** gamma^(number of milestones <= step) (PyTorch MultiStepLR). */
export function multiStepLR(milestones: readonly number[], gamma = 0.1): Schedule {
  const ms = [...milestones].sort((a, b) => a - b);
  for (const m of ms) if (!Number.isInteger(m) || m < 0) throw new Error(`webqat: multiStepLR: milestones must be integers >= 0, got ${milestones.join(',')}`);
  return new Fn('multiStepLR', (s) => gamma ** ms.filter((m) => m <= s).length);
}

/**
 * Cosine annealing from 1 to `etaMin` over `total` steps, then `etaMin` (PyTorch CosineAnnealingLR,
 * closed form; etaMin here is a fraction of the base lr: eta_min / base_lr).
 */
export function cosineLR(total: number, etaMin = 0): Schedule {
  positiveInt('cosineLR', 'total', total);
  return new Fn('cosineLR', (s) => etaMin + ((1 - etaMin) * (1 + Math.cos((Math.PI * Math.min(s, total)) / total))) / 2);
}

/**
 * Linear warm-up over `steps` steps from `startFactor` to 1 (PyTorch LinearLR), then `then`
 * counted from the end of the warm-up (PyTorch SequentialLR). Without `then`, factor 1 afterwards.
 */
export function warmup(steps: number, then: Schedule = constantLR(), startFactor = 1 / 3): Schedule {
  positiveInt('warmup', 'steps', steps);
  if (!(startFactor > 0 && startFactor <= 1)) throw new Error(`webqat: warmup: startFactor must be in (0, 1], got ${startFactor}`);
  return new Fn('warmup', (s) => (s < steps ? startFactor + ((1 - startFactor) * s) / steps : lrFactor(then, s - steps)));
}

/** The factors of `schedule` at steps 0 .. n-1 (plots, tests). */
export function scheduleValues(schedule: Schedule, n: number): number[] {
  return Array.from({ length: n }, (_, s) => lrFactor(schedule, s));
}
