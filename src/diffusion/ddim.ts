// DDIM sampling (Song et al. 2021, eq. 12) over a subsequence of the training timesteps, shaped like diffusers'
// DDIMScheduler. A model trained as a DDPM samples with fewer network evaluations; η scales the noise:
// η = 0 is deterministic, η = 1 over every timestep is the DDPM ancestral step with variance β̃_t.
import type { Generator } from '../torch/generator.ts';
import type { Tensor } from '../torch/tensor.ts';
import type { NoiseSchedule, ScheduleTerms } from './schedule.ts';
import { applyStep, checkSchedulerConfig, type Scheduler, type SchedulerConfig, type StepOutput } from './scheduler.ts';
import { ddimStepCoefficients, ddimTimesteps, type Prediction, type StepCoefficients, type TimestepSpacing } from './step-coefficients.ts';
import type { X0Constraint } from './thresholding.ts';

export interface DDIMConfig extends Omit<SchedulerConfig, 'clipRange'> {
  /** Network evaluations per sample: timesteps spread evenly from T−1 down to 0 (default T). */
  steps?: number;
  /** Noise scale η ∈ [0, 1] (default 0). */
  eta?: number;
  /** How the timesteps are picked (default 'linspace'; see ddimTimesteps). */
  spacing?: TimestepSpacing;
  /** The data range in model space, [min, max] (default [−1, 1]). */
  clipRange?: readonly [number, number];
}

export class DDIMScheduler implements Scheduler {
  readonly config: Readonly<Required<Omit<DDIMConfig, 'dynamicThreshold'>>> & { readonly dynamicThreshold?: number };
  readonly schedule: NoiseSchedule;
  readonly timesteps: Int32Array;
  readonly constraint: X0Constraint;
  /** The timestep each one steps to (−1 after the last: ᾱ = 1, the clean sample). */
  readonly #next = new Map<number, number>();

  constructor(config: DDIMConfig) {
    const c = { clip: false, clipRange: [-1, 1] as const, eta: 0, steps: config.schedule?.numTimesteps, spacing: 'linspace' as TimestepSpacing, prediction: 'epsilon' as Prediction, ...config };
    if (!(c.eta >= 0 && c.eta <= 1)) throw new RangeError(`DDIMScheduler: eta must be in [0, 1], got ${c.eta}`);
    this.constraint = checkSchedulerConfig('DDIMScheduler', c);
    this.config = Object.freeze({ ...c, clipRange: [c.clipRange[0], c.clipRange[1]] as const });
    this.schedule = c.schedule;
    this.timesteps = ddimTimesteps(this.schedule.numTimesteps, c.steps, c.spacing);
    this.timesteps.forEach((t, i) => this.#next.set(t, i + 1 < this.timesteps.length ? this.timesteps[i + 1]! : -1));
  }

  get clipRange(): readonly [number, number] {
    return this.config.clipRange;
  }

  get terms(): ScheduleTerms {
    return this.schedule.terms;
  }

  /** The timestep the step at t goes to (−1 after the last: the clean sample). */
  nextTimestep(t: number): number {
    const next = this.#next.get(t);
    if (next === undefined) throw new RangeError(`timestep ${t} is not one of the sampler's timesteps (${Array.from(this.timesteps).join(', ')})`);
    return next;
  }

  /** Song et al. eq. 12 from t to the next timestep of the subsequence. */
  stepCoefficients(t: number): StepCoefficients {
    return ddimStepCoefficients(this.terms, t, this.nextTimestep(t), this.config.eta, this.config.prediction);
  }

  step(eps: Tensor, t: number, xt: Tensor, opts: { generator?: Generator; noise?: Tensor } = {}): StepOutput {
    return applyStep(this.stepCoefficients(t), eps, xt, this.config.clipRange, this.constraint, opts);
  }

  dispose(): void {}
}
