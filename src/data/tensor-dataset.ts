// Image sets as tensors: the whole set lives once in libtorch memory as uint8, and each batch is one
// index_select plus a conversion, so no pixel crosses between JavaScript and libtorch inside the loop.
import { int64, tensor } from '../torch/ops/creation.ts';
import { indexSelect } from '../torch/ops/shape.ts';
import { keep } from '../torch/scope.ts';
import type { Tensor } from '../torch/tensor.ts';
import { interpolate } from '../nn/functional.ts';
import type { ImageSet } from './image-set.ts';

/** Pixel statistics on the [0, 1] scale, used to normalise images to mean 0 and standard deviation 1. */
export interface Normalization {
  mean: number;
  std: number;
}

/** Mean and standard deviation of every pixel of the set, on the [0, 1] scale. */
export function pixelStats(set: ImageSet): Normalization {
  let sum = 0;
  let sumSq = 0;
  for (const v of set.images) {
    sum += v;
    sumSq += v * v;
  }
  const n = set.images.length;
  const mean = sum / n / 255;
  const variance = sumSq / n / (255 * 255) - mean * mean;
  return { mean, std: Math.sqrt(Math.max(variance, 0)) };
}

/** (x − mean) / std. */
export function normalize(x: Tensor, norm: Normalization): Tensor {
  const centred = x.sub(norm.mean);
  const out = centred.div_(norm.std);
  return out;
}

/** x · std + mean: back to the [0, 1] pixel scale. */
export function denormalize(x: Tensor, norm: Normalization): Tensor {
  return x.mul(norm.std).add_(norm.mean);
}

/** Antialiased bilinear resize of [N, C, H, W] images to size×size (the paper's 28 → 14 downscale). */
export function downscale(x: Tensor, size: number): Tensor {
  return interpolate(x, { size: [size, size], mode: 'bilinear', alignCorners: false, antialias: true });
}

/** Bilinear resize to size×size without antialiasing (the paper's ×2 upscale). */
export function upscale(x: Tensor, size: number): Tensor {
  return interpolate(x, { size: [size, size], mode: 'bilinear', alignCorners: false });
}

export interface Batch {
  /** float32 [B, 1, H, W] on the [0, 1] scale. */
  images: Tensor;
  /** int64 [B]. */
  labels: Tensor;
}

/** An ImageSet held in libtorch memory, from which batches are gathered by index. */
export class TensorDataset {
  readonly images: Tensor;
  readonly labels: Tensor;
  readonly length: number;

  constructor(set: ImageSet, device?: string) {
    this.length = set.count;
    this.images = keep(tensor(set.images, { shape: [set.count, 1, set.height, set.width], device }));
    this.labels = keep(tensor(Int32Array.from(set.labels), { dtype: 'int64', device }));
  }

  /** The images and labels at `indices`. */
  batch(indices: Int32Array): Batch {
    const idx = int64(indices, { device: this.images.device });
    const raw = indexSelect(this.images, 0, idx);
    const asFloat = raw.float();
    const images = asFloat.div_(255);
    const labels = indexSelect(this.labels, 0, idx);
    idx.dispose();
    raw.dispose();
    return { images, labels };
  }

  dispose(): void {
    this.images.dispose();
    this.labels.dispose();
  }
}
