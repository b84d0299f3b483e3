// DDIM sampling (Song et al. 2021, eq. 12) over a subsequence of the training timesteps, shaped like diffusers'
// DDIMScheduler. A model trained as a DDPM samples with fewer network evaluations; η scales the noise:
// η = 0 is deterministic, η = 1 over every timestep is the DDPM ancestral step with variance β̃_t.
import type { Generator } from '../torch/generator.ts';
import { randn } from '../torch/ops/random.ts';
import { tidy } from '../torch/scope.ts';
import type { Tensor } from '../torch/tensor.ts';
import { x0Constraint } from './ddpm.ts';
import { cosineBetas, linearBetas, scheduleTerms, type ScheduleTerms } from './schedule.ts';
import type { Scheduler, StepOutput } from './scheduler.ts';
import { constrainX0, type X0Constraint } from './thresholding.ts';

export interface DDIMConfig {
  /** Number of training states T (timesteps 0..T−1). */
  numTrainTimesteps: number;
  betaSchedule: 'cosine' | 'linear';
  cosinePower: number;
  /** Network evaluations per sample: timesteps spread evenly from T−1 down to 0. */
  numInferenceSteps: number;
  /** Noise scale η ∈ [0, 1]. */
  eta: number;
  clipSample: boolean;
  dynamicThresholding?: number;
  /** The data range in model space, [min, max]. */
  clipRange: readonly [number, number];
}

export const DEFAULT_DDIM: DDIMConfig = {
  numTrainTimesteps: 30,
  betaSchedule: 'cosine',
  cosinePower: 1.5,
  numInferenceSteps: 10,
  eta: 0,
  clipSample: false,
  clipRange: [-1, 1],
};

/** `count` timesteps evenly spaced over T−1 … 0 (rounded, distinct, both ends included). */
export function ddimTimesteps(numTrainTimesteps: number, count: number): Int32Array {
  if (!Number.isInteger(count) || count < 1 || count > numTrainTimesteps) {
    throw new RangeError(`DDIM: the number of inference steps must be an integer in 1..${numTrainTimesteps} (T), got ${count}`);
  }
  if (count === 1) return Int32Array.of(numTrainTimesteps - 1);
  return Int32Array.from({ length: count }, (_, i) => Math.round(((numTrainTimesteps - 1) * (count - 1 - i)) / (count - 1)));
}

export class DDIMScheduler implements Scheduler {
  readonly config: Readonly<DDIMConfig>;
  readonly terms: ScheduleTerms;
  readonly timesteps: Int32Array;
  readonly #constraint: X0Constraint;
  /** The timestep each one steps to (−1 after the last: ᾱ = 1, the clean sample). */
  readonly #next = new Map<number, number>();

  constructor(config: Partial<DDIMConfig> = {}) {
    const c = { ...DEFAULT_DDIM, ...config };
    if (!Number.isInteger(c.numTrainTimesteps) || c.numTrainTimesteps < 1) {
      throw new RangeError(`DDIMScheduler: numTrainTimesteps (T) must be a positive integer, got ${c.numTrainTimesteps}`);
    }
    if (!(c.eta >= 0 && c.eta <= 1)) throw new RangeError(`DDIMScheduler: eta must be in [0, 1], got ${c.eta}`);
    if (!(c.clipRange[0] < c.clipRange[1])) throw new RangeError(`DDIMScheduler: clipRange must be [min, max] with min < max, got [${c.clipRange.join(', ')}]`);
    this.#constraint = x0Constraint(c);
    this.config = Object.freeze({ ...c, clipRange: [c.clipRange[0], c.clipRange[1]] as const });
    const betas = c.betaSchedule === 'cosine' ? cosineBetas(c.numTrainTimesteps, c.cosinePower) : linearBetas(c.numTrainTimesteps);
    this.terms = scheduleTerms(betas);
    this.timesteps = ddimTimesteps(c.numTrainTimesteps, c.numInferenceSteps);
    this.timesteps.forEach((t, i) => this.#next.set(t, i + 1 < this.timesteps.length ? this.timesteps[i + 1]! : -1));
  }

  step(eps: Tensor, t: number, xt: Tensor, opts: { generator?: Generator; noise?: Tensor } = {}): StepOutput {
    const prev = this.#next.get(t);
    if (prev === undefined) throw new RangeError(`timestep ${t} is not one of this DDIM schedule's (${Array.from(this.timesteps).join(', ')})`);
    const ab = this.terms.alphasCumprod[t]!;
    const abPrev = prev < 0 ? 1 : this.terms.alphasCumprod[prev]!;
    const sigma = this.config.eta * Math.sqrt(((1 - abPrev) / (1 - ab)) * (1 - ab / abPrev));
    return tidy(() => {
      const x0 = constrainX0(xt.sub(eps.mul(Math.sqrt(1 - ab))).div_(Math.sqrt(ab)), this.config.clipRange, this.#constraint);
      // The direction to x_t re-derived from the (possibly constrained) x̂0, so both stay consistent.
      const epsUsed = this.#constraint.kind === 'none' ? eps : xt.sub(x0.mul(Math.sqrt(ab))).div_(Math.sqrt(1 - ab));
      const next = x0.mul(Math.sqrt(abPrev)).add_(epsUsed, Math.sqrt(Math.max(1 - abPrev - sigma * sigma, 0)));
      if (sigma > 0) next.add_(opts.noise ?? randn(xt.shape, { generator: opts.generator, device: xt.device }), sigma);
      return { prevSample: next, predOriginalSample: x0 };
    });
  }

  dispose(): void {}
}
