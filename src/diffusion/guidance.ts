// Classifier-free guidance (Ho & Salimans 2022): the noise predicted with the label, pushed away from the noise
// predicted without it, ε̃ = ε_c + w (ε_c − ε_u) = (1 + w) ε_c − w ε_u; w = 0 is the conditional prediction.
import { tidy } from '../torch/scope.ts';
import type { Tensor } from '../torch/tensor.ts';

/** ε̃ from the predictions of a doubled batch [N conditional rows; N unconditional rows]. */
export function classifierFreeGuidance(doubled: Tensor, n: number, w: number): Tensor {
  return tidy(() => {
    const conditional = doubled.narrow(0, 0, n);
    return conditional.add(conditional.sub(doubled.narrow(0, n, n)).mul_(w));
  });
}
