// What the sampling loop needs from a reverse-process scheduler (DDPM, DDIM), as diffusers' SchedulerMixin.
import type { Generator } from '../torch/generator.ts';
import type { Tensor } from '../torch/tensor.ts';

export interface StepOutput {
  /** The sample at the next (smaller) timestep, or the final sample after the last step. */
  prevSample: Tensor;
  /** x̂0 as predicted at this step (after any range constraint). */
  predOriginalSample: Tensor;
}

export interface Scheduler {
  /** The timesteps the loop visits, from T−1 down to 0. */
  readonly timesteps: Int32Array;
  /** One reverse step from x_t given the network's noise prediction ε̂(x_t, t). */
  step(eps: Tensor, t: number, xt: Tensor, opts?: { generator?: Generator; noise?: Tensor }): StepOutput;
  dispose(): void;
}
