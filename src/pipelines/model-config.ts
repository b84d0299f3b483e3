// A diffusion model's configuration, as every run folder records it (config.json, `model`), and the paper's three.
import type { DatasetName } from '../data/datasets.ts';
import type { Normalization } from '../data/tensor-dataset.ts';
import type { ScheduleConfig } from '../diffusion/schedule.ts';
import type { Prediction } from '../diffusion/step-coefficients.ts';
import type { UNetConfig } from '../models/unet.ts';

export const MODEL_KINDS = ['baseline', 'small', 'upscaler'] as const;
export type ModelKind = (typeof MODEL_KINDS)[number];

export interface DiffusionModelConfig {
  kind: ModelKind;
  dataset: DatasetName;
  /** Side of the images the model generates. */
  imageSize: number;
  /** The noise schedule: its kind, number of timesteps T (0..T−1) and exponent. Built once per model. */
  schedule: ScheduleConfig;
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
  /**
   * Classifier-free guidance (Ho & Salimans 2022): the probability with which training replaced the label by the
   * null label (numClasses, whose one-hot context is all zeros), so that the model also predicts the noise
   * unconditionally and sampling can be guided. Absent: conditional only, as the paper.
   */
  labelDropout?: number;
  /**
   * What the network predicts: the noise ε (the paper; also when absent) or the velocity v = √ᾱ ε − √(1 − ᾱ) x0
   * (Salimans & Ho 2022), whose x̂0 = √ᾱ x_t − √(1 − ᾱ) v̂ does not amplify the network's error at the first
   * reverse step, and which a schedule with zero terminal SNR (schedule.zeroTerminalSnr) needs.
   */
  prediction?: Prediction;
}

/** The paper's schedule: cosine with exponent 1.5. */
export function paperSchedule(numTimesteps: number): ScheduleConfig {
  return { kind: 'cosine', numTimesteps, power: 1.5 };
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
      return { kind, dataset, imageSize: 28, schedule: paperSchedule(30), unet: { ...BASE_UNET, inChannels: 1 } };
    case 'small':
      return { kind, dataset, imageSize: 14, schedule: paperSchedule(20), unet: { ...BASE_UNET, inChannels: 1 } };
    case 'upscaler':
      return { kind, dataset, imageSize: 28, schedule: paperSchedule(10), lowResSize: 14, unet: { ...BASE_UNET, inChannels: 2 } };
    default:
      throw new RangeError(`unknown model '${String(kind)}'; expected one of ${MODEL_KINDS.join(', ')}`);
  }
}

export function isModelKind(s: string): s is ModelKind {
  return (MODEL_KINDS as readonly string[]).includes(s);
}
