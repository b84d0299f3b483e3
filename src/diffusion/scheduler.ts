// What the sampling loop needs from a reverse-process scheduler (DDPM, DDIM, DPM-Solver++), as diffusers' SchedulerMixin, and
// the configuration every scheduler shares: the model's noise schedule and how x̂0 is kept in the data range.
import type { Generator } from '../torch/generator.ts';
import { randn } from '../torch/ops/random.ts';
import { tidy } from '../torch/scope.ts';
import type { Tensor } from '../torch/tensor.ts';
import type { NoiseSchedule } from './schedule.ts';
import { PREDICTIONS, rederivesEps, type Prediction, type StepCoefficients } from './step-coefficients.ts';
import { constrainX0, x0Constraint, type X0Constraint } from './thresholding.ts';

export interface StepOutput {
  /** The sample at the next (smaller) timestep, or the final sample after the last step. */
  prevSample: Tensor;
  /** x̂0 as predicted at this step (after any range constraint). */
  predOriginalSample: Tensor;
}

/** x̂0 = (xtScale · x_t − epsScale · o) / x0Divisor, before any range constraint. */
export function predictX0(c: StepCoefficients, xt: Tensor, out: Tensor): Tensor {
  return tidy(() => (c.xtScale === 1 ? xt : xt.mul(c.xtScale)).sub(out.mul(c.epsScale)).div_(c.x0Divisor));
}

/** Applies step coefficients to tensors: x̂0 under `constraint`, and x_prev with noise z drawn when sigma > 0. */
export function applyStep(
  c: StepCoefficients,
  eps: Tensor,
  xt: Tensor,
  range: readonly [number, number],
  constraint: X0Constraint,
  opts: { generator?: Generator; noise?: Tensor } = {},
): StepOutput {
  return tidy(() => {
    const x0 = constrainX0(predictX0(c, xt, eps), range, constraint);
    const epsUsed = rederivesEps(c, constraint.kind !== 'none') ? xt.sub(x0.mul(c.xtScale * c.x0Divisor)).div_(c.epsScale) : eps;
    const prev = x0.mul(c.x0Coef);
    if (c.xtCoef !== 0) prev.add_(xt.mul(c.xtCoef));
    if (c.epsCoef !== 0) prev.add_(epsUsed, c.epsCoef);
    if (c.sigma > 0) prev.add_(opts.noise ?? randn(xt.shape, { generator: opts.generator, device: xt.device }), c.sigma);
    return { prevSample: prev, predOriginalSample: x0 };
  });
}

export interface Scheduler {
  /** The timesteps the loop visits, from T−1 down to 0. */
  readonly timesteps: Int32Array;
  /** How x̂0 is kept in the data range, and that range in model space. */
  readonly constraint: X0Constraint;
  readonly clipRange: readonly [number, number];
  /**
   * Whether a step also uses earlier steps' predictions (DPM-Solver++(2M)): then `step` must see every timestep in
   * order, and `stepCoefficients` gives only the first-order step (what the network's output means at t).
   */
  readonly multistep?: boolean;
  /** The step at t as numbers (see StepCoefficients). */
  stepCoefficients(t: number): StepCoefficients;
  /** One reverse step from x_t given the network's output at t (ε̂, or v̂ for v-prediction). */
  step(eps: Tensor, t: number, xt: Tensor, opts?: { generator?: Generator; noise?: Tensor }): StepOutput;
  dispose(): void;
}

/** The part of a scheduler's configuration that every scheduler shares. */
export interface SchedulerConfig {
  /** The model's noise schedule (the same object training used). */
  schedule: NoiseSchedule;
  /**
   * Clip the predicted x̂0 to `clipRange` at every step and take the step from the clipped estimate (the
   * paper's §1.3 remedy; diffusers' `clip_sample`).
   */
  clip?: boolean;
  /** Dynamic thresholding of x̂0 at this percentile (Imagen; e.g. 0.995) instead of clipping; undefined: off. */
  dynamicThreshold?: number;
  /** The data range in model space, [min, max]. */
  clipRange: readonly [number, number];
  /** What the network predicts (default 'epsilon'): its output is what `step` takes. */
  prediction?: Prediction;
}

/** Checks the shared configuration; returns the x̂0 constraint it asks for. */
export function checkSchedulerConfig(who: string, c: SchedulerConfig): X0Constraint {
  if (c.schedule === undefined || typeof c.schedule.numTimesteps !== 'number') throw new RangeError(`${who}: a noise schedule is required`);
  if (!Array.isArray(c.clipRange) || c.clipRange.length !== 2 || !(c.clipRange[0] < c.clipRange[1])) {
    throw new RangeError(`${who}: clipRange must be [min, max] with min < max, got [${Array.isArray(c.clipRange) ? c.clipRange.join(', ') : String(c.clipRange)}]`);
  }
  const prediction = c.prediction ?? 'epsilon';
  if (!PREDICTIONS.includes(prediction)) throw new RangeError(`${who}: prediction must be one of ${PREDICTIONS.join(', ')}, got '${String(prediction)}'`);
  if (prediction === 'epsilon' && c.schedule.terms.sqrtAlphasCumprod[c.schedule.numTimesteps - 1] === 0) {
    throw new RangeError(`${who}: a schedule with zero terminal SNR needs v-prediction (x̂0 cannot be recovered from ε̂ where ᾱ = 0)`);
  }
  return x0Constraint(c);
}
