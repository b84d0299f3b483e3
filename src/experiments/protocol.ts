// The paper's protocol and every experiment beyond it, as data: presets (how much of everything), the seeds (each
// named once), the trainings, and one list of variants — a pipeline, the runs it is built from and how it samples.
// Table 1 is the variants of group 'table1'; the stage runner (paper.ts) treats every variant alike.
import type { ModelKind } from '../pipelines/model-config.ts';
import { PAPER_PIPELINES, type PaperPipeline } from '../pipelines/paper-pipelines.ts';
import type { SamplingOptions } from '../pipelines/sampling-model.ts';
import type { Toy1dConfig } from './toy1d.ts';

export interface ProtocolPreset {
  name: 'full' | 'quick' | 'ci';
  /** Independent trainings per model (the paper: 3). */
  runs: number;
  epochs: number;
  /** Images per class in each training subset (5000: the paper's 50k). */
  perClass: number;
  /** Samples generated per training run (the paper: 3334). */
  samplesPerRun: number;
  /** Size of each CAS training set (the paper: 10,000), real anchor included. */
  casImages: number;
  /** Classifiers per CAS dataset (the paper: 5) and their epochs (5). */
  classifiers: number;
  casEpochs: number;
  /** Real test images the classifiers are scored on, balanced (undefined: the whole test set, as the paper). */
  testImages?: number;
  /** Samples timed at batch size 1 (the paper: 1000), and the threads used for it. */
  speedSamples: number;
  speedThreads: number;
  toy1d: Partial<Toy1dConfig>;
  /** Rows of the sample-grid figures. */
  gridRows: number;
}

export const PRESETS: Record<ProtocolPreset['name'], ProtocolPreset> = {
  full: { name: 'full', runs: 3, epochs: 10, perClass: 5000, samplesPerRun: 3334, casImages: 10_000, classifiers: 5, casEpochs: 5, speedSamples: 1000, speedThreads: 1, toy1d: {}, gridRows: 10 },
  // The paper's models (one run each: the shipped pretrained ones when present), evaluated on reduced settings.
  quick: { name: 'quick', runs: 1, epochs: 10, perClass: 5000, samplesPerRun: 1000, casImages: 1000, classifiers: 2, casEpochs: 5, speedSamples: 50, speedThreads: 1, toy1d: { samples: 500 }, gridRows: 4 },
  ci: { name: 'ci', runs: 1, epochs: 1, perClass: 20, samplesPerRun: 40, casImages: 40, classifiers: 1, casEpochs: 1, testImages: 500, speedSamples: 2, speedThreads: 1, toy1d: { epochs: 2, batchesPerEpoch: 10, samples: 50 }, gridRows: 1 },
};

/** Every seed of the protocol besides the runs' own (1, 2, 3, …). */
export const SEEDS = {
  /** Sampling noise of run r's generated set. */
  generation: (run: number) => 1000 + run,
  /** Classifier k of every CAS dataset is seeded `cas + k`. */
  cas: 100,
  /** Shuffles the pooled generated sets before a CAS training set is balanced from them. */
  casPool: 7,
  /** Balanced subsets of the real data: the real anchor's training set, and the test set of presets that cap it. */
  realTrain: 1,
  realTest: 2,
  /** Noise of the sample grids, and of the forward- and reverse-process figures. */
  grids: 3,
  processFigures: 0,
  /** Noise of the timed samples. */
  speed: 0,
} as const;

/** Run r's generated set starts its label cycle here, so the extra images of the pooled sets spread over classes. */
export function labelOffset(run: number, samplesPerRun: number): number {
  return ((run - 1) * samplesPerRun) % 10;
}

/** One training per seed: a preset model, optionally with an EMA of its weights or conditioning augmentation. */
export interface TrainingSpec {
  /** Run folders are `<name>-<seed>`. */
  name: string;
  model: ModelKind;
  ema?: number;
  conditioningNoise?: number;
}

export type VariantGroup = 'table1' | 'thresholding' | 'ddim' | 'ema' | 'conditioning';

/** The sampling choices a variant makes (no generator, no callbacks: they are part of its cache key). */
export type VariantSampling = Pick<SamplingOptions, 'sampler' | 'steps' | 'eta' | 'clip' | 'dynamicThreshold' | 'conditioningLevel'>;

export interface Variant {
  /** Unique; names its generated sets and cached results. */
  name: string;
  group: VariantGroup;
  label: string;
  pipeline: PaperPipeline;
  /** The training each model of the pipeline comes from (default: the paper's training of that model). */
  trainings?: Partial<Record<ModelKind, string>>;
  sampling: VariantSampling;
  /** Also timed at batch size 1. */
  speed?: boolean;
}

/** The experiments beyond the paper and their settings. */
export interface BeyondSettings {
  /** DDIM network evaluations per baseline sample, and the noise scales η tried at each. */
  ddimSteps: number[];
  ddimEta: number[];
  /** DDIM without and/or with x̂0 clipped at every step. */
  ddimClip: boolean[];
  /** Percentile of dynamic thresholding. */
  dynamicRatio: number;
  /** Decay of the weight average of the EMA baselines. */
  emaDecay: number;
  /** Maximum conditioning noise of the augmented upscalers (model space), and the levels sampled with. */
  conditioningNoise: number;
  conditioningLevels: number[];
}

export const BEYOND_DEFAULTS: BeyondSettings = { ddimSteps: [5, 10, 20], ddimEta: [0, 1], ddimClip: [false, true], dynamicRatio: 0.995, emaDecay: 0.999, conditioningNoise: 0.5, conditioningLevels: [0, 0.2] };

/** The paper's three trainings, then those the experiments beyond it add. */
export function trainings(beyond?: BeyondSettings): TrainingSpec[] {
  const paper: TrainingSpec[] = [{ name: 'baseline', model: 'baseline' }, { name: 'small', model: 'small' }, { name: 'upscaler', model: 'upscaler' }];
  if (beyond === undefined) return paper;
  return [...paper, { name: 'baseline-ema', model: 'baseline', ema: beyond.emaDecay }, { name: 'upscaler-aug', model: 'upscaler', conditioningNoise: beyond.conditioningNoise }];
}

/** How a variant with x̂0 clipped is labelled; its name ends in `-clip`. */
const CLIPPED = 'x̂0 clipped';

/** Table 1 (every pipeline, plain and x̂0-clipped), then, with `beyond`, every experiment beyond the paper. */
export function variants(beyond?: BeyondSettings): Variant[] {
  const table1 = PAPER_PIPELINES.flatMap((pipeline): Variant[] => [
    { name: pipeline, group: 'table1', label: `${pipeline}, plain sampling`, pipeline, sampling: {}, speed: true },
    { name: `${pipeline}-clip`, group: 'table1', label: `${pipeline}, ${CLIPPED}`, pipeline, sampling: { clip: true }, speed: true },
  ]);
  if (beyond === undefined) return table1;
  const s = beyond;
  return [
    ...table1,
    ...PAPER_PIPELINES.map((pipeline): Variant => ({
      name: `${pipeline}-dynamic`, group: 'thresholding', label: `${pipeline}, dynamic thresholding (p = ${s.dynamicRatio})`, pipeline, sampling: { dynamicThreshold: s.dynamicRatio },
    })),
    ...s.ddimClip.flatMap((clip) => s.ddimEta.flatMap((eta) => s.ddimSteps.map((steps): Variant => ({
      name: `baseline-ddim${steps}-eta${eta}${clip ? '-clip' : ''}`,
      group: 'ddim',
      label: `baseline, DDIM ${steps} steps (η = ${eta})${clip ? `, ${CLIPPED}` : ''}`,
      pipeline: 'baseline',
      sampling: { sampler: 'ddim', steps, eta, ...(clip ? { clip } : {}) },
      speed: true,
    })))),
    ...[false, true].map((clip): Variant => ({
      name: `baseline-ema${clip ? '-clip' : ''}`,
      group: 'ema',
      label: `baseline, EMA of weights (decay ${s.emaDecay})${clip ? `, ${CLIPPED}` : ''}`,
      pipeline: 'baseline',
      trainings: { baseline: 'baseline-ema' },
      sampling: clip ? { clip } : {},
    })),
    ...s.conditioningLevels.flatMap((level) => [false, true].map((clip): Variant => ({
      name: `cascaded-aug${level}${clip ? '-clip' : ''}`,
      group: 'conditioning',
      label: `cascaded, upscaler with conditioning augmentation (σ ≤ ${s.conditioningNoise}), sampled at level ${level}${clip ? `, ${CLIPPED}` : ''}`,
      pipeline: 'cascaded',
      trainings: { upscaler: 'upscaler-aug' },
      sampling: { conditioningLevel: level, ...(clip ? { clip } : {}) },
    }))),
  ];
}
