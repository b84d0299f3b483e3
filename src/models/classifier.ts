// The CAS classifier of the paper's appendix (3.9): conv 1→32 (pad 1) → GELU → pool → conv 32→64 → GELU
// → pool → FC 64·(s/4−1)² → 128 → GELU → FC 128 → classes.
import type { Tensor } from '../torch/tensor.ts';
import { Conv2d, Flatten, GELU, Linear, MaxPool2d, Sequential } from '../nn/layers.ts';

export interface ClassifierConfig {
  /** Side of the square input images (28 for MNIST); must be a multiple of 4 and at least 8. */
  imageSize: number;
  inChannels: number;
  numClasses: number;
}

export const MNIST_CLASSIFIER: ClassifierConfig = { imageSize: 28, inChannels: 1, numClasses: 10 };

export class Classifier extends Sequential {
  constructor(readonly config: ClassifierConfig = MNIST_CLASSIFIER) {
    const s = config.imageSize;
    if (!Number.isInteger(s) || s < 8 || s % 4 !== 0) throw new RangeError(`Classifier: imageSize must be a multiple of 4, at least 8; got ${s}`);
    const side = s / 4 - 1;
    super(
      new Conv2d(config.inChannels, 32, 3, { padding: 1 }),
      new GELU(),
      new MaxPool2d(2),
      new Conv2d(32, 64, 3),
      new GELU(),
      new MaxPool2d(2),
      new Flatten(),
      new Linear(64 * side * side, 128),
      new GELU(),
      new Linear(128, config.numClasses),
    );
  }

  /** Logits [N, numClasses] for images [N, C, s, s]. */
  override forward(x: Tensor): Tensor {
    return super.forward(x);
  }
}
