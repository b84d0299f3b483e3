// DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++", Algorithm 2), shaped like diffusers'
// DPMSolverMultistepScheduler (algorithm_type "dpmsolver++", solver_order 2, midpoint): the probability-flow ODE
// solved in λ = log(α/σ) with the network's x̂0, each step also using the x̂0 of the step before. Each step is DDIM's
// (η = 0) plus a second-order term (dpmSolverCorrection), none at the first step and the last (to the clean
// sample); it costs no more network evaluations than DDIM.
import type { Tensor } from '../torch/tensor.ts';
import { keep, tidy } from '../torch/scope.ts';
import { DDIMScheduler, type DDIMConfig } from './ddim.ts';
import type { NoiseSchedule } from './schedule.ts';
import type { Scheduler, StepOutput } from './scheduler.ts';
import { dpmSolverCorrection, type StepCoefficients } from './step-coefficients.ts';
import type { X0Constraint } from './thresholding.ts';

/** DDIM's configuration without η: the solver is deterministic. */
export type DPMSolverConfig = Omit<DDIMConfig, 'eta'>;

export class DPMSolverMultistepScheduler implements Scheduler {
  readonly multistep = true;
  /** The first-order steps, over the same timesteps. */
  readonly #ddim: DDIMScheduler;
  /** The previous step's x̂0 and its timestep, while a reverse process runs. */
  #previous: { x0: Tensor; t: number } | undefined;

  constructor(config: DPMSolverConfig) {
    this.#ddim = new DDIMScheduler({ ...config, eta: 0 });
  }

  get schedule(): NoiseSchedule {
    return this.#ddim.schedule;
  }

  get timesteps(): Int32Array {
    return this.#ddim.timesteps;
  }

  get constraint(): X0Constraint {
    return this.#ddim.constraint;
  }

  get clipRange(): readonly [number, number] {
    return this.#ddim.clipRange;
  }

  /**
   * The first-order step at t (DDIM's with η = 0). Only the first and last steps are that: the others also use
   * the x̂0 of the step before (`multistep`), which only `step` knows.
   */
  stepCoefficients(t: number): StepCoefficients {
    return this.#ddim.stepCoefficients(t);
  }

  step(out: Tensor, t: number, xt: Tensor): StepOutput {
    const next = this.#ddim.nextTimestep(t);
    // A new reverse process starts at the first timestep: nothing carries over from the last one.
    if (t === this.timesteps[0]) this.#forget();
    else if (this.#previous === undefined) throw new Error(`DPM-Solver++(2M) stepped at timestep ${t} without the steps before it`);
    const previous = this.#previous;
    const result = tidy(() => {
      const { prevSample, predOriginalSample: x0 } = this.#ddim.step(out, t, xt);
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
