// The ancestral sampling loop (Ho et al. Algorithm 2), written like diffusers' pipeline_ddpm: noise, then
// for each timestep one network call and one scheduler step.
import type { Generator } from '../torch/generator.ts';
import { inferenceMode } from '../torch/grad-mode.ts';
import { randn } from '../torch/ops/random.ts';
import { allFinite } from '../torch/ops/reduction.ts';
import { tidy } from '../torch/scope.ts';
import type { Tensor } from '../torch/tensor.ts';
import type { Scheduler } from './scheduler.ts';

/** Predicts the noise ε̂(x_t, t) of a batch at timestep t. */
export type NoisePredictor = (xt: Tensor, t: number) => Tensor;

export interface SampleLoopOptions {
  generator?: Generator;
  device?: string;
  /** Keep x_t and x̂0 of every step (for reverse-process pictures). */
  keepTrajectory?: boolean;
  /** Called after each step with the number of steps done and the total. */
  onStep?: (done: number, total: number) => void;
}

export interface SampleLoopResult {
  /** x_0 [N, C, H, W], in model space. */
  sample: Tensor;
  /** With keepTrajectory: x_t before each step (t = T−1 … 0) and the x̂0 predicted at it. */
  trajectory?: { t: number[]; xt: Tensor[]; predX0: Tensor[] };
}

/** The error for a network that returned NaN or ∞ at step `done + 1` of `total` (timestep t). */
export function nonFiniteNoiseError(t: number, done: number, total: number): Error {
  return new Error(`the network returned non-finite values at timestep ${t} (step ${done + 1} of ${total}); its weights may be damaged`);
}

/** Runs the reverse process from x_{T−1} ~ N(0, I) of `shape` over the scheduler's timesteps, in inference mode. */
export function sampleLoop(scheduler: Scheduler, predictNoise: NoisePredictor, shape: readonly number[], opts: SampleLoopOptions = {}): SampleLoopResult {
  return inferenceMode(() => {
    let x = randn(shape, { generator: opts.generator, device: opts.device });
    const trajectory = opts.keepTrajectory ? { t: [] as number[], xt: [] as Tensor[], predX0: [] as Tensor[] } : undefined;
    const total = scheduler.timesteps.length;
    let done = 0;
    try {
      for (const t of scheduler.timesteps) {
        const { prevSample, predOriginalSample } = tidy(() => {
          const eps = predictNoise(x, t);
          // NaN weights or an overflow would otherwise end as black images, silently.
          if (!allFinite(eps)) throw nonFiniteNoiseError(t, done, total);
          return scheduler.step(eps, t, x, { generator: opts.generator });
        });
        if (trajectory) {
          trajectory.t.push(t);
          trajectory.xt.push(x);
          trajectory.predX0.push(predOriginalSample);
        } else {
          x.dispose();
          predOriginalSample.dispose();
        }
        x = prevSample;
        opts.onStep?.(++done, total);
      }
    } catch (err) {
      x.dispose();
      for (const y of [...(trajectory?.xt ?? []), ...(trajectory?.predX0 ?? [])]) if (y !== x) y.dispose();
      throw err;
    }
    return { sample: x, trajectory };
  });
}
