// DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++", Algorithm 2), shaped like diffusers'
// DPMSolverMultistepScheduler (algorithm_type "dpmsolver++", solver_order 2, midpoint): the probability-flow ODE
// solved in λ = log(α/σ) with the network's x̂0, each step also using the x̂0 of the step before. Each step is DDIM's
// (η = 0) plus a second-order term (dpmSolverCorrection), none at the first step and the last (to the clean
// sample); it costs no more network evaluations than DDIM.
import type { Tensor } from '../torch/tensor.ts';
import { keep, tidy } from '../torch/scope.ts';
import type { NoiseSchedule } from './schedule.ts';
import { applyStep, checkSchedulerConfig, type Scheduler, type SchedulerConfig, type StepOutput } from './scheduler.ts';
import { ddimStepCoefficients, ddimTimesteps, dpmSolverCorrection, type Prediction, type StepCoefficients, type TimestepSpacing } from './step-coefficients.ts';
import type { X0Constraint } from './thresholding.ts';

export interface DPMSolverConfig extends Omit<SchedulerConfig, 'clipRange'> {
  /** Network evaluations per sample: timesteps spread from T−1 down to 0 as DDIM's (default T). */
  steps?: number;
  /** How the timesteps are picked (default 'linspace'; see ddimTimesteps). */
  spacing?: TimestepSpacing;
  /** The data range in model space, [min, max] (default [−1, 1]). */
  clipRange?: readonly [number, number];
}

export class DPMSolverMultistepScheduler implements Scheduler {
  readonly config: Readonly<Required<Omit<DPMSolverConfig, 'dynamicThreshold'>>> & { readonly dynamicThreshold?: number };
  readonly schedule: NoiseSchedule;
  readonly timesteps: Int32Array;
  readonly constraint: X0Constraint;
  readonly multistep = true;
  /** The timestep each one steps to (−1 after the last: ᾱ = 1, the clean sample). */
  readonly #next = new Map<number, number>();
  /** The previous step's x̂0 and its timestep, while a reverse process runs. */
  #previous: { x0: Tensor; t: number } | undefined;

  constructor(config: DPMSolverConfig) {
    const c = { clip: false, clipRange: [-1, 1] as const, steps: config.schedule?.numTimesteps, spacing: 'linspace' as TimestepSpacing, prediction: 'epsilon' as Prediction, ...config };
    this.constraint = checkSchedulerConfig('DPMSolverMultistepScheduler', c);
    this.config = Object.freeze({ ...c, clipRange: [c.clipRange[0], c.clipRange[1]] as const });
    this.schedule = c.schedule;
    this.timesteps = ddimTimesteps(this.schedule.numTimesteps, c.steps, c.spacing);
    this.timesteps.forEach((t, i) => this.#next.set(t, i + 1 < this.timesteps.length ? this.timesteps[i + 1]! : -1));
  }

  get clipRange(): readonly [number, number] {
    return this.config.clipRange;
  }

  /**
   * The first-order step at t (DDIM's with η = 0). Only the first and last steps are that: the others also use
   * the x̂0 of the step before (`multistep`), which only `step` knows.
   */
  stepCoefficients(t: number): StepCoefficients {
    return ddimStepCoefficients(this.schedule.terms, t, this.#nextOf(t), 0, this.config.prediction);
  }

  #nextOf(t: number): number {
    const next = this.#next.get(t);
    if (next === undefined) throw new RangeError(`timestep ${t} is not one of this DPM-Solver schedule's (${Array.from(this.timesteps).join(', ')})`);
    return next;
  }

  step(out: Tensor, t: number, xt: Tensor): StepOutput {
    const next = this.#nextOf(t);
    // A new reverse process starts at the first timestep: nothing carries over from the last one.
    if (t === this.timesteps[0]) this.#forget();
    else if (this.#previous === undefined) throw new Error(`DPM-Solver++(2M) stepped at timestep ${t} without the steps before it`);
    const previous = this.#previous;
    const result = tidy(() => {
      const { prevSample, predOriginalSample: x0 } = applyStep(this.stepCoefficients(t), out, xt, this.config.clipRange, this.constraint);
      const k = previous === undefined ? 0 : dpmSolverCorrection(this.schedule.terms, previous.t, t, next);
      if (k !== 0) prevSample.add_(x0.sub(previous!.x0), k);
      return { prevSample, predOriginalSample: x0, kept: next < 0 ? undefined : keep(x0.clone()) };
    });
    this.#forget();
    if (result.kept !== undefined) this.#previous = { x0: result.kept, t };
    return { prevSample: result.prevSample, predOriginalSample: result.predOriginalSample };
  }

  #forget(): void {
    this.#previous?.x0.dispose();
    this.#previous = undefined;
  }

  dispose(): void {
    this.#forget();
  }
}
