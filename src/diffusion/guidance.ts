// Guidance: a prediction pushed away from a weaker reference prediction, ε̃ = ε + w (ε − ε_ref) = (1 + w) ε − w ε_ref;
// w = 0 is the prediction alone. The reference is the same network without the label (classifier-free guidance,
// Ho & Salimans 2022) or a weaker model of the same task with the label (autoguidance, Karras et al. 2024).
import { tidy } from '../torch/scope.ts';
import type { Tensor } from '../torch/tensor.ts';

/** ε + w (ε − ε_ref). */
export function guide(prediction: Tensor, reference: Tensor, w: number): Tensor {
  return tidy(() => prediction.add(prediction.sub(reference).mul_(w)));
}

/** ε̃ from the predictions of a doubled batch [N conditional rows; N unconditional rows]. */
export function classifierFreeGuidance(doubled: Tensor, n: number, w: number): Tensor {
  return tidy(() => guide(doubled.narrow(0, 0, n), doubled.narrow(0, n, n), w));
}
