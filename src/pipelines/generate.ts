// Generating a labelled image set with a pipeline: balanced labels, batched sampling, 8-bit images and the
// off-range record.
import type { GeneratedSet } from '../data/generated-set.ts';
import { MAX_INPUT_BYTES } from '../io/input-file.ts';
import { Generator } from '../torch/generator.ts';
import { amax } from '../torch/ops/reduction.ts';
import { gt } from '../torch/ops/pointwise.ts';
import { tidy } from '../torch/scope.ts';
import type { Tensor } from '../torch/tensor.ts';
import type { SamplingOptions } from './sampling-model.ts';
import { pipelineDevice, pipelineImageSize, samplePipeline, type Pipeline } from './pipeline.ts';

/**
 * Labels cycling through the classes from `offset`, `count` of them: balanced up to one image per class.
 * Offsetting the sets of different runs spreads the extra images over different classes.
 */
export function balancedLabels(count: number, numClasses = 10, offset = 0): number[] {
  return Array.from({ length: count }, (_, i) => (i + offset) % numClasses);
}

export interface GenerateOptions extends SamplingOptions {
  count: number;
  seed: number;
  batchSize?: number;
  /** First label of the cycle (see balancedLabels). */
  labelOffset?: number;
  onProgress?: (done: number, total: number) => void;
}

/** The most images sampled at once: activations grow with it, and larger batches are no faster. */
export const MAX_BATCH = 4096;

const HALF_GRAY_LEVEL = 0.5 / 255;
const SAMPLE_OFF_RANGE = 0.1;

/**
 * A generated set of `count` images, balanced over labels, as 8-bit images, with how much of it the last model
 * put outside the data range before clamping. Constrained sampling (clip, dynamic thresholding) ends inside the
 * range by construction; for "small upscaled" it is measured on the small model's samples.
 */
export function generateSet(p: Pipeline, opts: GenerateOptions): GeneratedSet {
  const batchSize = opts.batchSize ?? 256;
  if (!Number.isInteger(opts.count) || opts.count < 1) throw new RangeError(`count must be a positive integer, got ${opts.count}`);
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > MAX_BATCH) throw new RangeError(`batch size must be an integer in 1..${MAX_BATCH}, got ${batchSize}`);
  const size = pipelineImageSize(p);
  if (opts.count * size * size > MAX_INPUT_BYTES) {
    throw new RangeError(`${opts.count} images of ${size}×${size} would be ${opts.count * size * size} bytes, more than the ${MAX_INPUT_BYTES} a set may have (at most ${Math.floor(MAX_INPUT_BYTES / (size * size))} images)`);
  }
  const labels = balancedLabels(opts.count, 10, opts.labelOffset ?? 0);
  const images = new Uint8Array(opts.count * size * size);
  const generator = opts.generator ?? new Generator(opts.seed, pipelineDevice(p));
  let offPixels = 0;
  let rawPixels = 0;
  let offSamples = 0;
  const onRaw = (x: Tensor) => tidy(() => {
    const distance = x.clamp(0, 1).sub(x).abs();
    offPixels += gt(distance, HALF_GRAY_LEVEL).sum().item();
    offSamples += gt(amax(distance.flatten(1), 1), SAMPLE_OFF_RANGE).sum().item();
    rawPixels += x.numel;
  });
  for (let start = 0; start < opts.count; start += batchSize) {
    const batch = labels.slice(start, start + batchSize);
    const pixels = tidy(() => samplePipeline(p, batch, { ...opts, generator, onRaw }).mul(255).round().to({ dtype: 'uint8' }).data() as Uint8Array);
    images.set(pixels, start * size * size);
    opts.onProgress?.(Math.min(start + batchSize, opts.count), opts.count);
  }
  return {
    images, labels: Uint8Array.from(labels), count: opts.count, height: size, width: size, numClasses: 10,
    offRange: { pixels: offPixels / rawPixels, samples: offSamples / opts.count },
  };
}

