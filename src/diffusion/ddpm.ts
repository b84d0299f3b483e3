// The DDPM scheduler (Ho et al. 2020), shaped like diffusers' DDPMScheduler: `addNoise` is the closed-form
// forward process used in training, `step` one ancestral reverse step. The denoising loop lives in sample.ts.
import type { Generator } from '../torch/generator.ts';
import { randn } from '../torch/ops/random.ts';
import { tensor } from '../torch/ops/creation.ts';
import { indexSelect } from '../torch/ops/shape.ts';
import { keep, tidy } from '../torch/scope.ts';
import type { Tensor } from '../torch/tensor.ts';
import { cosineBetas, linearBetas, scheduleTerms, type ScheduleTerms } from './schedule.ts';
import type { Scheduler, StepOutput } from './scheduler.ts';
import { checkConstraint, constrainX0, type X0Constraint } from './thresholding.ts';

export interface DDPMConfig {
  /** Number of states T; timesteps are 0..T−1. */
  numTrainTimesteps: number;
  betaSchedule: 'cosine' | 'linear';
  /** Exponent of the cosine schedule (the paper: 1.5; Nichol & Dhariwal: 2). */
  cosinePower: number;
  /** Reverse-step variance: 'posterior' is β̃_t, 'beta' is β_t (Ho et al. found both work). */
  varianceType: 'posterior' | 'beta';
  /**
   * Clip the predicted x̂0 to `clipRange` at every step and take the posterior mean from the clipped
   * estimate (the paper's §1.3 remedy; diffusers' `clip_sample`).
   */
  clipSample: boolean;
  /**
   * Dynamic thresholding of x̂0 at this percentile (Imagen; diffusers' `dynamic_thresholding_ratio`, e.g. 0.995)
   * instead of clipping; undefined: off. Excludes `clipSample`.
   */
  dynamicThresholding?: number;
  /** The data range in model space, [min, max]. */
  clipRange: readonly [number, number];
  /**
   * Divide by √α_t instead of √ᾱ_t when estimating x̂0, as the paper's public code did. Wrong; offered
   * only to reproduce that code's samples.
   */
  authorX0?: boolean;
}

export const DEFAULT_DDPM: DDPMConfig = {
  numTrainTimesteps: 30,
  betaSchedule: 'cosine',
  cosinePower: 1.5,
  varianceType: 'posterior',
  clipSample: false,
  clipRange: [-1, 1],
};

export type { StepOutput } from './scheduler.ts';

/** The x̂0 constraint a DDPM or DDIM configuration asks for. */
export function x0Constraint(c: { clipSample: boolean; dynamicThresholding?: number }): X0Constraint {
  if (c.dynamicThresholding !== undefined) {
    if (c.clipSample) throw new RangeError('clipSample and dynamicThresholding exclude each other');
    const constraint: X0Constraint = { kind: 'dynamic', ratio: c.dynamicThresholding };
    checkConstraint(constraint);
    return constraint;
  }
  return c.clipSample ? { kind: 'clip' } : { kind: 'none' };
}

export class DDPMScheduler implements Scheduler {
  readonly config: Readonly<DDPMConfig>;
  readonly terms: ScheduleTerms;
  /** The reverse order the sampling loop walks: T−1, …, 0. */
  readonly timesteps: Int32Array;
  readonly #constraint: X0Constraint;
  readonly #coefficients = new Map<string, { sqrtAb: Tensor; sqrtOneMinusAb: Tensor }>();

  constructor(config: Partial<DDPMConfig> = {}) {
    const c = { ...DEFAULT_DDPM, ...config };
    if (!Number.isInteger(c.numTrainTimesteps) || c.numTrainTimesteps < 1) {
      throw new RangeError(`DDPMScheduler: numTrainTimesteps (T) must be a positive integer, got ${c.numTrainTimesteps}`);
    }
    if (c.betaSchedule !== 'cosine' && c.betaSchedule !== 'linear') {
      throw new RangeError(`DDPMScheduler: betaSchedule must be 'cosine' or 'linear', got '${String(c.betaSchedule)}'`);
    }
    if (c.varianceType !== 'posterior' && c.varianceType !== 'beta') {
      throw new RangeError(`DDPMScheduler: varianceType must be 'posterior' or 'beta', got '${String(c.varianceType)}'`);
    }
    if (!(c.clipRange[0] < c.clipRange[1])) throw new RangeError(`DDPMScheduler: clipRange must be [min, max] with min < max, got [${c.clipRange.join(', ')}]`);
    this.#constraint = x0Constraint(c);
    this.config = Object.freeze({ ...c, clipRange: [c.clipRange[0], c.clipRange[1]] as const });
    const betas = c.betaSchedule === 'cosine' ? cosineBetas(c.numTrainTimesteps, c.cosinePower) : linearBetas(c.numTrainTimesteps);
    this.terms = scheduleTerms(betas);
    this.timesteps = Int32Array.from({ length: c.numTrainTimesteps }, (_, i) => c.numTrainTimesteps - 1 - i);
  }

  get numTimesteps(): number {
    return this.config.numTrainTimesteps;
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

  /** x̂0 = (x_t − √(1 − ᾱ_t) ε̂) / √ᾱ_t (Ho et al. eq. 15). */
  predictStartFromNoise(xt: Tensor, t: number, eps: Tensor): Tensor {
    const denominator = this.config.authorX0 ? Math.sqrt(this.terms.alphas[t]!) : this.terms.sqrtAlphasCumprod[t]!;
    return tidy(() => xt.sub(eps.mul(this.terms.sqrtOneMinusAlphasCumprod[t]!)).div_(denominator));
  }

  /** The variance of the reverse step at t (0 at t = 0: the last step adds no noise). */
  variance(t: number): number {
    if (t === 0) return 0;
    return this.config.varianceType === 'posterior' ? this.terms.posteriorVariance[t]! : this.terms.betas[t]!;
  }

  /**
   * One ancestral step x_t → x_{t−1} of p(x_{t−1} | x_t) (Ho et al. Algorithm 2).
   * @param eps the network's noise prediction ε̂(x_t, t)
   * @param t the current timestep (all samples of the batch share it)
   * @param xt the current sample
   */
  step(eps: Tensor, t: number, xt: Tensor, opts: { generator?: Generator; noise?: Tensor } = {}): StepOutput {
    this.#checkTimestep(t);
    return tidy(() => {
      // 1. x̂0 from the noise prediction (eq. 15), kept in the data range when asked.
      const x0 = constrainX0(this.predictStartFromNoise(xt, t, eps), this.config.clipRange, this.#constraint);
      // 2. Posterior mean μ̃_t(x_t, x̂0) (eq. 7).
      const mean = x0.mul(this.terms.posteriorMeanCoef1[t]!).add_(xt.mul(this.terms.posteriorMeanCoef2[t]!));
      // 3. Add σ_t z, except at t = 0.
      const variance = this.variance(t);
      if (variance > 0) mean.add_(opts.noise ?? randn(xt.shape, { generator: opts.generator, device: xt.device }), Math.sqrt(variance));
      return { prevSample: mean, predOriginalSample: x0 };
    });
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
