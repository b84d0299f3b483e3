// The paper's model configurations and the config every run folder records (config.json).
import type { DatasetName } from '../data/datasets.ts';
import type { Normalization } from '../data/tensor-dataset.ts';
import type { UNetConfig } from '../models/unet.ts';

export const MODEL_KINDS = ['baseline', 'small', 'upscaler'] as const;
export type ModelKind = (typeof MODEL_KINDS)[number];

export interface DiffusionModelConfig {
  kind: ModelKind;
  dataset: DatasetName;
  /** Side of the images the model generates. */
  imageSize: number;
  /** Number of diffusion states T (timesteps 0..T−1). */
  numStates: number;
  /** Exponent of the cosine β schedule. */
  cosinePower: number;
  unet: UNetConfig;
  /** Upscaler only: side of the low-resolution images it is conditioned on. */
  lowResSize?: number;
  /** Pixel statistics of the training images ([0, 1] scale): model space is (x − mean) / std. */
  normalization: Normalization;
  /**
   * Upscaler only: conditioning augmentation (Ho et al. 2021, Cascaded Diffusion Models). In training, Gaussian
   * noise of a standard deviation drawn uniformly from [0, conditioningNoise] (model space) corrupts the
   * conditioning image, and that level (as a fraction of the maximum) is an extra FiLM context value; sampling
   * chooses the level. Absent: clean conditioning, as the paper.
   */
  conditioningNoise?: number;
}

export interface TrainingConfig {
  epochs: number;
  batchSize: number;
  lr: number;
  seed: number;
  /** Images per class in the balanced training subset (5000: the paper's 50k). */
  perClass: number;
  /** Seed of the balanced subset, shared by every run so that runs differ only by their own seed. */
  subsetSeed: number;
  /** Also checkpoint every this many steps (0: only at the end of each epoch). */
  checkpointEvery: number;
  /**
   * Model space: 'standard' scales pixels to mean 0 and standard deviation 1 (the paper); 'unit' keeps
   * them in [0, 1] (the paper's public code). Absent in older run folders, which are 'standard'.
   */
  dataScaling?: 'standard' | 'unit';
  /**
   * Keep an exponential moving average of the weights with this decay (e.g. 0.999), saved in every
   * checkpoint; sampling uses it unless told otherwise. Absent: no average.
   */
  ema?: number;
}

export interface RunConfig {
  format: 'ssddpm-run';
  version: 1;
  model: DiffusionModelConfig;
  training: TrainingConfig;
}

const BASE_UNET = { outChannels: 1, baseChannels: 16, depth: 3, numClasses: 10 };

/**
 * The three trained models of the paper (small upscaled and cascaded are built from them at sampling):
 * baseline 28×28 with T = 30; small 14×14 with T = 20; upscaler 28×28 with T = 10 whose input is the noisy
 * image stacked with the 14×14 image upscaled back to 28×28.
 */
export function presetModel(kind: ModelKind, dataset: DatasetName = 'mnist'): Omit<DiffusionModelConfig, 'normalization'> {
  switch (kind) {
    case 'baseline':
      return { kind, dataset, imageSize: 28, numStates: 30, cosinePower: 1.5, unet: { ...BASE_UNET, inChannels: 1 } };
    case 'small':
      return { kind, dataset, imageSize: 14, numStates: 20, cosinePower: 1.5, unet: { ...BASE_UNET, inChannels: 1 } };
    case 'upscaler':
      return { kind, dataset, imageSize: 28, numStates: 10, cosinePower: 1.5, lowResSize: 14, unet: { ...BASE_UNET, inChannels: 2 } };
    default:
      throw new RangeError(`unknown model '${String(kind)}'; expected one of ${MODEL_KINDS.join(', ')}`);
  }
}

export const DEFAULT_TRAINING: TrainingConfig = {
  epochs: 10,
  batchSize: 128,
  lr: 1e-3,
  seed: 1,
  perClass: 5000,
  subsetSeed: 0,
  checkpointEvery: 0,
  dataScaling: 'standard',
};

export function isModelKind(s: string): s is ModelKind {
  return (MODEL_KINDS as readonly string[]).includes(s);
}
