// Terms a run may add to the 1-step objective: the two remedies the paper proposes for trajectories that leave
// the image domain (its §1.3), each weighted against the 1-step loss and measured as a variant.
//   x̂0-domain loss: penalises the part of x̂0 outside the data range, weighted by ᾱ_t so that it is measured on
//     the noise scale (x̂0's error is the network's divided by √ᾱ_t), bounded where ᾱ_t → 0.
//   n-step loss: rolls the model out n deterministic DDIM steps (η = 0) from x_s and compares where it lands
//     with where the true noise leads, x_{s−n} = √ᾱ_{s−n} x0 + √(1 − ᾱ_{s−n}) ε, on the noise scale (divided by
//     √(1 − ᾱ_{s−n})): errors that accumulate over steps are trained away, at n extra network passes per step.
import type { DDPMScheduler } from '../diffusion/ddpm.ts';
import type { TrainingConfig } from '../pipelines/run-dir.ts';
import { indexSelect } from '../torch/ops/shape.ts';
import { tensor } from '../torch/ops/creation.ts';
import { tidy } from '../torch/scope.ts';
import type { Tensor } from '../torch/tensor.ts';
import type { TrainingBatch } from './training-data.ts';

/** The auxiliary terms of a run's objective; absent: the paper's 1-step loss alone. */
export type ObjectiveTerms = Pick<TrainingConfig, 'x0DomainLoss' | 'nStepLoss'>;

/** The network's output at (x, t) for the batch's labels and conditioning, float32 (autocast left to the caller). */
export type BatchForward = (x: Tensor, t: Tensor) => Tensor;

/** Throws a RangeError naming the first invalid term. */
export function checkObjectiveTerms(o: ObjectiveTerms, numTimesteps?: number): void {
  if (o.x0DomainLoss !== undefined && !(o.x0DomainLoss > 0 && Number.isFinite(o.x0DomainLoss))) throw new RangeError(`x̂0-domain loss weight must be a positive number, got ${o.x0DomainLoss}`);
  const n = o.nStepLoss;
  if (n === undefined) return;
  if (!Number.isInteger(n.steps) || n.steps < 1) throw new RangeError(`n-step loss: steps must be a positive integer, got ${n.steps}`);
  if (numTimesteps !== undefined && n.steps >= numTimesteps) throw new RangeError(`n-step loss: steps must be below the model's T = ${numTimesteps}, got ${n.steps}`);
  if (!(n.weight > 0 && Number.isFinite(n.weight))) throw new RangeError(`n-step loss weight must be a positive number, got ${n.weight}`);
}

/**
 * The auxiliary terms for the batch's rows, summed over rows (each row's mean over its pixels) and divided by
 * `count` (the global batch: shares of a data-parallel batch add up to the batch's mean); undefined when the run
 * has none. `out` is the network's output at (x_t, t) already computed for the 1-step loss.
 */
export function auxiliaryLoss(
  terms: ObjectiveTerms,
  scheduler: DDPMScheduler,
  dataRange: readonly [number, number],
  batch: TrainingBatch,
  out: Tensor,
  forward: BatchForward,
  count: number,
): Tensor | undefined {
  if (terms.x0DomainLoss === undefined && terms.nStepLoss === undefined) return undefined;
  return tidy(() => {
    const perRow = batch.x0.numel / batch.x0.size(0);
    const parts: Tensor[] = [];
    if (terms.x0DomainLoss !== undefined) {
      const x0 = scheduler.predictX0PerSample(batch.xt, out, batch.t);
      // The distance to the data range: x̂0 minus x̂0 clamped into it.
      const outside = x0.sub(x0.clamp(dataRange[0], dataRange[1]));
      const ab = alphasCumprodOf(scheduler, batch.t, x0);
      parts.push(outside.square().mul_(ab).sum().mul_(terms.x0DomainLoss / (count * perRow)));
    }
    if (terms.nStepLoss !== undefined) {
      const { steps, weight } = terms.nStepLoss;
      const start = batch.nStepStart;
      if (start === undefined) throw new Error('n-step loss: the batch was drawn without rollout starts (drawBatch nStep)');
      let x = scheduler.addNoise(batch.x0, batch.noise, start);
      for (let k = 0; k < steps; k++) {
        const t = start.sub(k);
        const x0 = scheduler.predictX0PerSample(x, forward(x, t), t);
        const eps = scheduler.noiseFromX0(x, x0, t);
        // DDIM (η = 0) to t − 1: √ᾱ_{t−1} x̂0 + √(1 − ᾱ_{t−1}) ε̂.
        x = scheduler.addNoise(x0, eps, t.sub(1));
      }
      const end = start.sub(steps);
      const target = scheduler.addNoise(batch.x0, batch.noise, end);
      const noiseVariance = alphasCumprodOf(scheduler, end, x).neg().add_(1);
      parts.push(x.sub(target).square().div_(noiseVariance).sum().mul_(weight / (count * perRow)));
    }
    return parts.length === 1 ? parts[0]! : parts[0]!.add(parts[1]!);
  });
}

/** ᾱ_t per row of x (t int64 [N]), shaped to broadcast. */
function alphasCumprodOf(scheduler: DDPMScheduler, t: Tensor, x: Tensor): Tensor {
  return tidy(() => {
    const table = tensor(Float32Array.from(scheduler.terms.alphasCumprod), { device: x.device });
    return indexSelect(table, 0, t).view([x.size(0), ...x.shape.slice(1).map(() => 1)]);
  });
}
