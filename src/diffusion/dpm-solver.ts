// DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++", Algorithm 2), shaped like diffusers'
// DPMSolverMultistepScheduler (algorithm_type "dpmsolver++", solver_order 2, midpoint): the probability-flow ODE
// solved in λ = log(α/σ) with the network's x̂0, each step also using the x̂0 of the step before. Its first step
// and its last (to the clean sample, λ = ∞) are first order, which is DDIM with η = 0; in between it costs no more
// network evaluations than DDIM and takes a second-order step.
import type { Tensor } from '../torch/tensor.ts';
import { keep, tidy } from '../torch/scope.ts';
import type { NoiseSchedule } from './schedule.ts';
import { checkSchedulerConfig, predictX0, type Scheduler, type SchedulerConfig, type StepOutput } from './scheduler.ts';
import { ddimStepCoefficients, ddimTimesteps, type Prediction, type StepCoefficients, type TimestepSpacing } from './step-coefficients.ts';
import { constrainX0, type X0Constraint } from './thresholding.ts';

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
  /** The previous step's x̂0 and its λ, while a reverse process runs. */
  #previous: { x0: Tensor; lambda: number } | undefined;

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

  /** α_t = √ᾱ_t and σ_t = √(1 − ᾱ_t) of a timestep (−1: the clean sample, α = 1, σ = 0). */
  #alphaSigma(t: number): [number, number] {
    const ab = t < 0 ? 1 : this.schedule.terms.alphasCumprod[t]!;
    return [Math.sqrt(ab), Math.sqrt(1 - ab)];
  }

  step(out: Tensor, t: number, xt: Tensor): StepOutput {
    const next = this.#nextOf(t);
    // A new reverse process starts at the first timestep: nothing carries over from the last one.
    if (t === this.timesteps[0]) this.#forget();
    else if (this.#previous === undefined) throw new Error(`DPM-Solver++(2M) stepped at timestep ${t} without the steps before it`);
    const [alphaT, sigmaT] = this.#alphaSigma(t);
    const [alphaN, sigmaN] = this.#alphaSigma(next);
    const lambdaT = Math.log(alphaT) - Math.log(sigmaT);
    const lambdaN = Math.log(alphaN) - Math.log(sigmaN);
    const h = lambdaN - lambdaT;
    const result = tidy(() => {
      const x0 = constrainX0(predictX0(this.stepCoefficients(t), xt, out), this.config.clipRange, this.constraint);
      // x_next = (σ_n/σ_t) x_t − α_n (e^{−h} − 1) D, D = x̂0 (first order) or x̂0 + (x̂0 − x̂0_prev) / (2 r),
      // r = h_prev / h. At the last step σ_n = 0 and h = ∞: x_next = x̂0.
      let d = x0;
      if (next >= 0 && this.#previous !== undefined) {
        const r = (lambdaT - this.#previous.lambda) / h;
        d = x0.sub(this.#previous.x0).mul_(1 / (2 * r)).add_(x0);
      }
      const prev = next < 0 ? x0.clone() : d.mul(-alphaN * Math.expm1(-h)).add_(xt, sigmaN / sigmaT);
      return { prevSample: prev, predOriginalSample: x0, kept: next < 0 ? undefined : keep(x0.clone()) };
    });
    this.#forget();
    if (result.kept !== undefined) this.#previous = { x0: result.kept, lambda: lambdaT };
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
