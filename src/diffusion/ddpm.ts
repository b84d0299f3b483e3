// The DDPM scheduler (Ho et al. 2020), shaped like diffusers' DDPMScheduler: `addNoise` is the closed-form
// forward process used in training, `step` one ancestral reverse step. The denoising loop lives in sample.ts.
import type { Generator } from '../torch/generator.ts';
import { randn } from '../torch/ops/random.ts';
import { tensor } from '../torch/ops/creation.ts';
import { indexSelect } from '../torch/ops/shape.ts';
import { keep, tidy } from '../torch/scope.ts';
import type { Tensor } from '../torch/tensor.ts';
import type { NoiseSchedule, ScheduleTerms } from './schedule.ts';
import { applyStep, checkSchedulerConfig, predictX0, type Scheduler, type SchedulerConfig, type StepOutput } from './scheduler.ts';
import { ddpmStepCoefficients, type Prediction, type StepCoefficients } from './step-coefficients.ts';
import type { X0Constraint } from './thresholding.ts';

export interface DDPMConfig extends Omit<SchedulerConfig, 'clipRange'> {
  /** Reverse-step variance: 'posterior' is β̃_t (default), 'beta' is β_t (Ho et al. found both work). */
  variance?: 'posterior' | 'beta';
  /** The data range in model space, [min, max] (default [−1, 1]). */
  clipRange?: readonly [number, number];
  /**
   * Divide by √α_t instead of √ᾱ_t when estimating x̂0, as the paper's public code did. Wrong; offered
   * only to reproduce that code's samples.
   */
  authorX0?: boolean;
}

export type { StepOutput } from './scheduler.ts';

export class DDPMScheduler implements Scheduler {
  readonly config: Readonly<Required<Omit<DDPMConfig, 'dynamicThreshold'>>> & { readonly dynamicThreshold?: number };
  readonly schedule: NoiseSchedule;
  /** The reverse order the sampling loop walks: T−1, …, 0. */
  readonly timesteps: Int32Array;
  readonly constraint: X0Constraint;
  readonly #coefficients = new Map<string, { sqrtAb: Tensor; sqrtOneMinusAb: Tensor }>();

  constructor(config: DDPMConfig) {
    const c = { clip: false, clipRange: [-1, 1] as const, variance: 'posterior' as const, authorX0: false, prediction: 'epsilon' as Prediction, ...config };
    if (c.variance !== 'posterior' && c.variance !== 'beta') {
      throw new RangeError(`DDPMScheduler: variance must be 'posterior' or 'beta', got '${String(c.variance)}'`);
    }
    this.constraint = checkSchedulerConfig('DDPMScheduler', c);
    this.config = Object.freeze({ ...c, clipRange: [c.clipRange[0], c.clipRange[1]] as const });
    this.schedule = c.schedule;
    const T = this.schedule.numTimesteps;
    this.timesteps = Int32Array.from({ length: T }, (_, i) => T - 1 - i);
  }

  get clipRange(): readonly [number, number] {
    return this.config.clipRange;
  }

  get terms(): ScheduleTerms {
    return this.schedule.terms;
  }

  get numTimesteps(): number {
    return this.schedule.numTimesteps;
  }

  #coefficientsOn(device: string) {
    let c = this.#coefficients.get(device);
    if (c === undefined) {
      c = {
        sqrtAb: keep(tensor(Float32Array.from(this.terms.sqrtAlphasCumprod), { device })),
        sqrtOneMinusAb: keep(tensor(Float32Array.from(this.terms.sqrtOneMinusAlphasCumprod), { device })),
      };
      this.#coefficients.set(device, c);
    }
    return c;
  }

  /**
   * q(x_t | x_0) in closed form: x_t = √ᾱ_t · x0 + √(1 − ᾱ_t) · ε (Ho et al. eq. 4).
   * @param x0 [N, ...]
   * @param noise ε, shaped like x0
   * @param t int64 [N], one timestep per sample
   */
  addNoise(x0: Tensor, noise: Tensor, t: Tensor): Tensor {
    const { sqrtAb, sqrtOneMinusAb } = this.#coefficientsOn(x0.device);
    const shape = [x0.size(0), ...x0.shape.slice(1).map(() => 1)];
    return tidy(() => {
      const a = indexSelect(sqrtAb, 0, t).view(shape);
      const b = indexSelect(sqrtOneMinusAb, 0, t).view(shape);
      return x0.mul(a).add_(noise.mul(b));
    });
  }

  /** x̂0 from the network's output: (x_t − √(1 − ᾱ_t) ε̂) / √ᾱ_t (Ho et al. eq. 15), or √ᾱ_t x_t − √(1 − ᾱ_t) v̂. */
  predictStartFromNoise(xt: Tensor, t: number, out: Tensor): Tensor {
    return predictX0(this.stepCoefficients(t), xt, out);
  }

  /** The v-prediction target v = √ᾱ_t ε − √(1 − ᾱ_t) x0 (Salimans & Ho 2022), t int64 [N]. */
  velocity(x0: Tensor, noise: Tensor, t: Tensor): Tensor {
    return tidy(() => {
      const { a, b } = this.#perSample(x0, t);
      return noise.mul(a).sub_(x0.mul(b));
    });
  }

  /** x̂0 from the network's output with one timestep per sample (t int64 [N]); see predictStartFromNoise. */
  predictX0PerSample(xt: Tensor, out: Tensor, t: Tensor): Tensor {
    return tidy(() => {
      const { a, b } = this.#perSample(xt, t);
      return this.config.prediction === 'v' ? xt.mul(a).sub_(out.mul(b)) : xt.sub(out.mul(b)).div_(a);
    });
  }

  /** The noise that x̂0 implies at x_t, (x_t − √ᾱ_t x̂0) / √(1 − ᾱ_t), one timestep per sample. */
  noiseFromX0(xt: Tensor, x0: Tensor, t: Tensor): Tensor {
    return tidy(() => {
      const { a, b } = this.#perSample(xt, t);
      return xt.sub(x0.mul(a)).div_(b);
    });
  }

  /** √ᾱ_t and √(1 − ᾱ_t) for t int64 [N], shaped to broadcast over x's rows. */
  #perSample(x: Tensor, t: Tensor): { a: Tensor; b: Tensor } {
    const { sqrtAb, sqrtOneMinusAb } = this.#coefficientsOn(x.device);
    const shape = [x.size(0), ...x.shape.slice(1).map(() => 1)];
    return { a: indexSelect(sqrtAb, 0, t).view(shape), b: indexSelect(sqrtOneMinusAb, 0, t).view(shape) };
  }

  /** The ancestral step at t (see ddpmStepCoefficients). */
  stepCoefficients(t: number): StepCoefficients {
    this.#checkTimestep(t);
    return ddpmStepCoefficients(this.terms, t, this.config);
  }

  /**
   * One ancestral step x_t → x_{t−1} of p(x_{t−1} | x_t).
   * @param eps the network's noise prediction ε̂(x_t, t)
   * @param t the current timestep (all samples of the batch share it)
   * @param xt the current sample
   */
  step(eps: Tensor, t: number, xt: Tensor, opts: { generator?: Generator; noise?: Tensor } = {}): StepOutput {
    return applyStep(this.stepCoefficients(t), eps, xt, this.config.clipRange, this.constraint, opts);
  }

  /** One forward step x_{t−1} → x_t = √(1 − β_t) x_{t−1} + √β_t z (for pictures of the forward chain). */
  forwardStep(xPrev: Tensor, t: number, generator?: Generator): Tensor {
    this.#checkTimestep(t);
    const beta = this.terms.betas[t]!;
    return tidy(() => xPrev.mul(Math.sqrt(1 - beta)).add_(randn(xPrev.shape, { generator, device: xPrev.device }), Math.sqrt(beta)));
  }

  #checkTimestep(t: number): void {
    if (!Number.isInteger(t) || t < 0 || t >= this.numTimesteps) throw new RangeError(`timestep ${t} is outside 0..${this.numTimesteps - 1}`);
  }

  /** Releases the cached coefficient tensors. */
  dispose(): void {
    for (const c of this.#coefficients.values()) {
      c.sqrtAb.dispose();
      c.sqrtOneMinusAb.dispose();
    }
    this.#coefficients.clear();
  }
}
