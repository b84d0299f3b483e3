// The paper's protocol and every experiment beyond it, as data: presets (how much of everything), the seeds (each
// named once), the trainings, and one list of variants — a pipeline, the runs it is built from and how it samples.
// Table 1 is the variants of group 'table1'; the stage runner (paper.ts) treats every variant alike.
import type { ModelKind } from '../pipelines/model-config.ts';
import { LOW_NOISE_GUIDANCE, PAPER_PIPELINES, PAPER_PIPELINE_MODELS, type PaperPipeline } from '../pipelines/paper-pipelines.ts';
import type { TrainingConfig } from '../pipelines/run-dir.ts';
import type { NewRunSpec } from '../training/training-config.ts';
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
  /**
   * The fidelity metrics' judge: the CAS network trained on the real training set (whole, or this many images
   * per class) for this many epochs.
   */
  judge: { epochs: number; perClass?: number };
}

export const PRESETS: Record<ProtocolPreset['name'], ProtocolPreset> = {
  full: { name: 'full', runs: 3, epochs: 10, perClass: 5000, samplesPerRun: 3334, casImages: 10_000, classifiers: 5, casEpochs: 5, speedSamples: 1000, speedThreads: 1, toy1d: {}, gridRows: 10, judge: { epochs: 5 } },
  // The paper's models (one run each: the shipped pretrained ones when present), evaluated on reduced settings.
  quick: { name: 'quick', runs: 1, epochs: 10, perClass: 5000, samplesPerRun: 1000, casImages: 1000, classifiers: 2, casEpochs: 5, speedSamples: 50, speedThreads: 1, toy1d: { samples: 500 }, gridRows: 4, judge: { epochs: 5 } },
  ci: { name: 'ci', runs: 1, epochs: 1, perClass: 20, samplesPerRun: 40, casImages: 40, classifiers: 1, casEpochs: 1, testImages: 500, speedSamples: 2, speedThreads: 1, toy1d: { epochs: 2, batchesPerEpoch: 10, samples: 50 }, gridRows: 1, judge: { epochs: 1, perClass: 20 } },
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

/**
 * One training per seed: a preset model, the paper's recipe unless it says otherwise (an EMA of the weights,
 * conditioning augmentation, and the options of NewRunSpec and TrainingConfig beyond the paper).
 */
export interface TrainingSpec extends Pick<NewRunSpec, 'conditioningNoise' | 'labelDropout' | 'maxBeta' | 'prediction' | 'zeroTerminalSnr' | 'baseChannels'>, Pick<TrainingConfig, 'ema' | 'x0DomainLoss' | 'nStepLoss'> {
  /** Run folders are `<name>-<seed>`. */
  name: string;
  model: ModelKind;
  /** Train this many times the preset's epochs (a longer training than the paper's). */
  epochsFactor?: number;
}

export type VariantGroup = 'table1' | 'thresholding' | 'ddim' | 'ema' | 'conditioning' | 'first-step' | 'objective' | 'budget' | 'guidance' | 'autoguidance';

/** The sampling choices a variant makes (no generator, no callbacks: they are part of its cache key). */
export type VariantSampling = Pick<SamplingOptions, 'sampler' | 'steps' | 'eta' | 'spacing' | 'clip' | 'dynamicThreshold' | 'conditioningLevel' | 'guidance' | 'guidanceInterval' | 'labelGuidance' | 'labelGuidanceInterval'>;

export interface Variant {
  /** Unique; names its generated sets and cached results. */
  name: string;
  group: VariantGroup;
  label: string;
  pipeline: PaperPipeline;
  /** The training each model of the pipeline comes from (default: the paper's training of that model). */
  trainings?: Partial<Record<ModelKind, string>>;
  /** Autoguidance: the training of the weaker model that guides a model of the pipeline (the same seed). */
  guides?: Partial<Record<ModelKind, string>>;
  sampling: VariantSampling;
  /**
   * false: sample the trained weights of runs that also kept an average of them. An average leaves the training
   * itself bit for bit as it was, so one training serves both the variant with the average and the one without.
   */
  ema?: false;
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
  /** Remedies for the first reverse step: a lower cap on β_t, and DDIM steps with trailing spacing. */
  maxBeta: number;
  trailingSteps: number;
  /** The paper's proposed training terms: the x̂0-domain loss's weight, the n-step loss's steps and weight. */
  x0DomainLoss: number;
  nStepLoss: { steps: number; weight: number };
  /** Beyond the paper's budget: a U-Net this wide, and a training this many times as long. */
  baseChannels: number;
  /** The cascade's small model wider still (its autoguidance then has the wide model to be guided by). */
  widerChannels: number;
  epochsFactor: number;
  /** Classifier-free guidance: the label dropout of its trainings and the scales sampled (the sweep). */
  labelDropout: number;
  guidanceScales: number[];
  /**
   * Guidance in a limited interval, per pipeline: the scale, and the noise levels σ_t = √((1 − ᾱ_t)/ᾱ_t) in
   * (lo, hi] it applies at (where a sample's label is decided depends on the resolution and the model).
   */
  guidanceInterval: Record<PaperPipeline, { scale: number; sigma: [number, number] }>;
  /**
   * Autoguidance (Karras et al. 2024): its scale, and the width of the U-Net that guides the paper-width baseline
   * (the wide models are guided by their paper-width twins).
   */
  autoguidance: number;
  guideChannels: number;
  /** Further scales the cascade with the wider small model, guided by the paper-width one, is sampled at (its sweep). */
  autoguidanceSweep: number[];
  /** Classifier-free guidance of that autoguided small model at low noise (σ_t in (lo, hi]), under its autoguidance. */
  labelGuidance: { scale: number; sigma: [number, number] };
  /** Further label guidance scales the cascade with the longer-trained small model is sampled at. */
  labelGuidanceSweep: number[];
}

export const BEYOND_DEFAULTS: BeyondSettings = {
  ddimSteps: [5, 10, 20], ddimEta: [0, 1], ddimClip: [false, true], dynamicRatio: 0.995, emaDecay: 0.999, conditioningNoise: 0.5, conditioningLevels: [0, 0.2],
  maxBeta: 0.9, trailingSteps: 10, x0DomainLoss: 1, nStepLoss: { steps: 2, weight: 0.5 }, baseChannels: 32, widerChannels: 64, epochsFactor: 3, labelDropout: 0.1, guidanceScales: [0, 1, 2, 4],
  guidanceInterval: LOW_NOISE_GUIDANCE,
  autoguidance: 2, guideChannels: 8, autoguidanceSweep: [1, 1.5, 3], labelGuidance: { scale: 0.5, sigma: [0, 1] }, labelGuidanceSweep: [0.25],
};

/** The paper's three trainings, then those the experiments beyond it add. */
export function trainings(beyond?: BeyondSettings): TrainingSpec[] {
  const paper: TrainingSpec[] = [{ name: 'baseline', model: 'baseline' }, { name: 'small', model: 'small' }, { name: 'upscaler', model: 'upscaler' }];
  if (beyond === undefined) return paper;
  const s = beyond;
  return [
    ...paper,
    { name: 'baseline-ema', model: 'baseline', ema: s.emaDecay },
    { name: 'baseline-v-ema', model: 'baseline', prediction: 'v', ema: s.emaDecay },
    { name: 'upscaler-aug', model: 'upscaler', conditioningNoise: s.conditioningNoise },
    { name: 'baseline-vz', model: 'baseline', prediction: 'v', zeroTerminalSnr: true },
    { name: 'baseline-beta', model: 'baseline', maxBeta: s.maxBeta },
    { name: 'baseline-x0loss', model: 'baseline', x0DomainLoss: s.x0DomainLoss },
    { name: 'baseline-nstep', model: 'baseline', nStepLoss: s.nStepLoss },
    { name: 'baseline-wide', model: 'baseline', baseChannels: s.baseChannels },
    { name: 'baseline-long', model: 'baseline', epochsFactor: s.epochsFactor },
    // The budget's cost for the best recipe as well as for the paper's.
    { name: 'baseline-v-wide-ema', model: 'baseline', prediction: 'v', baseChannels: s.baseChannels, ema: s.emaDecay },
    { name: 'baseline-v-long-ema', model: 'baseline', prediction: 'v', epochsFactor: s.epochsFactor, ema: s.emaDecay },
    ...(['baseline', 'small', 'upscaler'] as const).map((model): TrainingSpec => ({ name: `${model}-cfg`, model, labelDropout: s.labelDropout })),
    // The first-step remedy and guidance together (v-prediction needs no clipping, guidance buys fidelity), sampled
    // with and without the average of the weights; baseline-v-ema serves the v-prediction baseline likewise.
    ...(['baseline', 'small', 'upscaler'] as const).map((model): TrainingSpec => ({ name: `${model}-vcfg-ema`, model, prediction: 'v', labelDropout: s.labelDropout, ema: s.emaDecay })),
    // The cascade's budget: its small model as wide as the wide baseline (the upscaler as it is).
    { name: 'small-wide-vcfg-ema', model: 'small', prediction: 'v', labelDropout: s.labelDropout, baseChannels: s.baseChannels, ema: s.emaDecay },
    { name: 'small-wider-vcfg-ema', model: 'small', prediction: 'v', labelDropout: s.labelDropout, baseChannels: s.widerChannels, ema: s.emaDecay },
    // The wide small model and the wide baseline trained longer (each guided by its shorter-trained twin).
    { name: 'small-wide-vcfg-ema-long', model: 'small', prediction: 'v', labelDropout: s.labelDropout, baseChannels: s.baseChannels, epochsFactor: s.epochsFactor, ema: s.emaDecay },
    { name: 'baseline-v-wide-ema-long', model: 'baseline', prediction: 'v', baseChannels: s.baseChannels, epochsFactor: s.epochsFactor, ema: s.emaDecay },
    // Its upscaler trained with conditioning augmentation too (sampled on clean conditioning).
    { name: 'upscaler-vcfg-aug-ema', model: 'upscaler', prediction: 'v', labelDropout: s.labelDropout, conditioningNoise: s.conditioningNoise, ema: s.emaDecay },
    // The guide of the paper-width v-prediction baseline: the same recipe in a narrower U-Net.
    { name: 'baseline-v-narrow-ema', model: 'baseline', prediction: 'v', baseChannels: s.guideChannels, ema: s.emaDecay },
  ];
}

/**
 * The runs a variant samples. A training that is not in the list but whose `<name>-ema` is, is not run twice:
 * keeping an average of the weights leaves a training bit for bit as it was, so it is that run's trained weights.
 */
function runsOf(trainings: Partial<Record<ModelKind, string>>, trained: ReadonlySet<string>): Pick<Variant, 'trainings' | 'ema'> {
  const names = Object.values(trainings);
  const twin = (t: string) => !trained.has(t) && trained.has(`${t}-ema`);
  if (!names.some(twin)) return { trainings };
  if (!names.every(twin)) throw new Error(`a pipeline samples either every run's average or none: ${names.join(', ')}`);
  return { trainings: Object.fromEntries(Object.entries(trainings).map(([m, t]) => [m, `${t}-ema`])), ema: false };
}

/** How a variant with x̂0 clipped is labelled; its name ends in `-clip`. */
const CLIPPED = 'x̂0 clipped';
const DDIM_ALL_STEPS = 'DDIM over every step (η = 0)';
const DPM_SOLVER_ALL_STEPS = 'DPM-Solver++(2M) over every step';

/** A variant sampled with DDIM over every step, sampled with DPM-Solver++(2M) over the same steps instead. */
function withDpmSolver(v: Variant): Variant {
  const { eta: _, ...sampling } = v.sampling;
  return { ...v, name: v.name.replace('-ddim', '-dpmpp'), label: v.label.replace(DDIM_ALL_STEPS, DPM_SOLVER_ALL_STEPS), sampling: { ...sampling, sampler: 'dpmpp-2m' } };
}

/** Table 1 (every pipeline, plain and x̂0-clipped), then, with `beyond`, every experiment beyond the paper. */
export function variants(beyond?: BeyondSettings): Variant[] {
  const table1 = PAPER_PIPELINES.flatMap((pipeline): Variant[] => [
    { name: pipeline, group: 'table1', label: `${pipeline}, plain sampling`, pipeline, sampling: {}, speed: true },
    { name: `${pipeline}-clip`, group: 'table1', label: `${pipeline}, ${CLIPPED}`, pipeline, sampling: { clip: true }, speed: true },
  ]);
  if (beyond === undefined) return table1;
  const s = beyond;
  const trained = new Set(trainings(s).map((t) => t.name));
  // The cascade with a wide small model and an upscaler trained under conditioning augmentation, DDPM or DDIM,
  // unguided or guided at low noise only.
  const lowNoise = (pipeline: PaperPipeline) => {
    const { scale: w, sigma: [lo, hi] } = s.guidanceInterval[pipeline];
    return { suffix: `-w${w}-sigma${lo}-${hi}`, what: `guided w = ${w} only at noise levels √((1 − ᾱ_t)/ᾱ_t) in (${lo}, ${hi}]`, sampling: { guidance: w, guidanceInterval: [lo, hi] as [number, number] } };
  };
  const wideAugmentedCascade = (ddim: boolean, interval = false): Variant => ({
    name: `cascaded-wide-vcfg-aug-ema${ddim ? '-ddim' : ''}${interval ? lowNoise('cascaded').suffix : ''}-clip`,
    group: interval ? 'guidance' : 'budget',
    label: `cascaded, v-prediction, a small U-Net ${s.baseChannels / 16}× as wide, an upscaler with conditioning augmentation (σ ≤ ${s.conditioningNoise}, sampled at level 0), EMA of weights (decay ${s.emaDecay}), ${interval ? lowNoise('cascaded').what : 'unguided'} (label dropout ${s.labelDropout}), ${ddim ? `${DDIM_ALL_STEPS}, ` : ''}${CLIPPED}`,
    pipeline: 'cascaded',
    trainings: { small: 'small-wide-vcfg-ema', upscaler: 'upscaler-vcfg-aug-ema' },
    sampling: { ...(ddim ? { sampler: 'ddim', eta: 0 } : {}), ...(interval ? lowNoise('cascaded').sampling : { guidance: 0 }), clip: true },
  });
  // The small model wider still, unguided and guided by the wide one or the paper-width one (the latter at every scale of the sweep).
  const wider = ([
    [undefined, '', 0],
    ['small-wide-vcfg-ema', 'half as wide', s.autoguidance],
    ...[s.autoguidance, ...s.autoguidanceSweep].map((w) => ['small-vcfg-ema', 'of the paper\'s width', w] as const),
  ] as const).map(([guide, what, w]): Variant => ({
    ...wideAugmentedCascade(true),
    name: `cascaded-wider-vcfg-aug-ema-ddim${guide === undefined ? '' : `-autoguided${guide === 'small-vcfg-ema' ? '-narrow' : ''}-w${w}`}-clip`,
    group: guide === undefined ? 'budget' : 'autoguidance',
    label: `cascaded, v-prediction, a small U-Net ${s.widerChannels / 16}× as wide${guide === undefined ? '' : ` guided w = ${w} by the small model of the same recipe ${what}`}, an upscaler with conditioning augmentation (σ ≤ ${s.conditioningNoise}, sampled at level 0) unguided, EMA of weights (decay ${s.emaDecay}), label dropout ${s.labelDropout} (unused), ${DDIM_ALL_STEPS}, ${CLIPPED}`,
    trainings: { small: 'small-wider-vcfg-ema', upscaler: 'upscaler-vcfg-aug-ema' },
    ...(guide === undefined ? {} : { guides: { small: guide }, sampling: { sampler: 'ddim', eta: 0, guidance: [w, 0], clip: true } }),
  }));
  // The same autoguided small model (paper-width guide, w as the others) also guided classifier-free at low noise.
  const narrow = wider.find((v) => v.name === `cascaded-wider-vcfg-aug-ema-ddim-autoguided-narrow-w${s.autoguidance}-clip`)!;
  const labelGuided: Variant = {
    ...narrow,
    name: narrow.name.replace(/-clip$/, `-label${s.labelGuidance.scale}-sigma${s.labelGuidance.sigma.join('-')}-clip`),
    label: `cascaded, v-prediction, a small U-Net ${s.widerChannels / 16}× as wide guided classifier-free w = ${s.labelGuidance.scale} at σ_t in (${s.labelGuidance.sigma.join(', ')}] (label dropout ${s.labelDropout}), then autoguided w = ${s.autoguidance} by the small model of the same recipe of the paper's width, an upscaler with conditioning augmentation (σ ≤ ${s.conditioningNoise}, sampled at level 0) unguided, EMA of weights (decay ${s.emaDecay}), ${DDIM_ALL_STEPS}, ${CLIPPED}`,
    sampling: { ...narrow.sampling, labelGuidance: [s.labelGuidance.scale, 0], labelGuidanceInterval: s.labelGuidance.sigma },
  };
  const all: Variant[] = [
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
    ...([
      ['ema', 'baseline-ema', `EMA of weights (decay ${s.emaDecay})`],
      ['ema', 'baseline-v-ema', `v-prediction, EMA of weights (decay ${s.emaDecay})`],
      ['first-step', 'baseline-v', 'v-prediction'],
      ['first-step', 'baseline-vz', 'v-prediction, schedule rescaled to zero terminal SNR'],
      ['first-step', 'baseline-beta', `β_t capped at ${s.maxBeta}`],
      ['objective', 'baseline-x0loss', `trained with the x̂0-domain loss (weight ${s.x0DomainLoss})`],
      ['objective', 'baseline-nstep', `trained with the ${s.nStepLoss.steps}-step loss (weight ${s.nStepLoss.weight})`],
      ['budget', 'baseline-wide', `a U-Net ${s.baseChannels / 16}× as wide (${s.baseChannels} base channels)`],
      ['budget', 'baseline-long', `trained ${s.epochsFactor}× as long`],
      ['budget', 'baseline-v-wide', `v-prediction, a U-Net ${s.baseChannels / 16}× as wide (${s.baseChannels} base channels)`],
      ['budget', 'baseline-v-long', `v-prediction, trained ${s.epochsFactor}× as long`],
      ['budget', 'baseline-v-wide-ema', `v-prediction, a U-Net ${s.baseChannels / 16}× as wide (${s.baseChannels} base channels), EMA of weights (decay ${s.emaDecay})`],
      ['budget', 'baseline-v-long-ema', `v-prediction, trained ${s.epochsFactor}× as long, EMA of weights (decay ${s.emaDecay})`],
    ] as const).flatMap(([group, training, what]) => [false, true].map((clip): Variant => ({
      name: `${training}${clip ? '-clip' : ''}`,
      group,
      label: `baseline, ${what}${clip ? `, ${CLIPPED}` : ''}`,
      pipeline: 'baseline',
      ...runsOf({ baseline: training }, trained),
      sampling: clip ? { clip } : {},
    }))),
    {
      name: 'cascaded-wide-vcfg-ema-clip',
      group: 'budget',
      label: `cascaded, v-prediction, a small U-Net ${s.baseChannels / 16}× as wide, EMA of weights (decay ${s.emaDecay}), unguided (label dropout ${s.labelDropout}), ${CLIPPED}`,
      pipeline: 'cascaded',
      trainings: { small: 'small-wide-vcfg-ema', upscaler: 'upscaler-vcfg-ema' },
      sampling: { guidance: 0, clip: true },
    },
    wideAugmentedCascade(false),
    // The best recipes sampled deterministically: DDIM over every step of each model (η = 0).
    ...([
      ['ema', 'baseline-v-ema', `v-prediction, EMA of weights (decay ${s.emaDecay})`],
      ['budget', 'baseline-v-wide-ema', `v-prediction, a U-Net ${s.baseChannels / 16}× as wide (${s.baseChannels} base channels), EMA of weights (decay ${s.emaDecay})`],
    ] as const).map(([group, training, what]): Variant => ({
      name: `${training}-ddim-clip`,
      group,
      label: `baseline, ${what}, ${DDIM_ALL_STEPS}, ${CLIPPED}`,
      pipeline: 'baseline',
      ...runsOf({ baseline: training }, trained),
      sampling: { sampler: 'ddim', eta: 0, clip: true },
    })),
    wideAugmentedCascade(true),
    // Guided at low noise only, DDIM over every step: one of each pipeline, from its best models trained with label dropout.
    wideAugmentedCascade(true, true),
    ...([
      ['baseline-vcfg-ema', 'baseline', { baseline: 'baseline-vcfg-ema' }, `v-prediction, EMA of weights (decay ${s.emaDecay})`],
      ['small-upscaled-wide-vcfg-ema', 'small-upscaled', { small: 'small-wide-vcfg-ema' }, `v-prediction, a small U-Net ${s.baseChannels / 16}× as wide, EMA of weights (decay ${s.emaDecay})`],
    ] as const).map(([name, pipeline, runs, what]): Variant => ({
      name: `${name}-ddim${lowNoise(pipeline).suffix}-clip`,
      group: 'guidance',
      label: `${pipeline}, ${what}, ${lowNoise(pipeline).what} (label dropout ${s.labelDropout}), ${DDIM_ALL_STEPS}, ${CLIPPED}`,
      pipeline,
      trainings: runs,
      sampling: { sampler: 'ddim', eta: 0, ...lowNoise(pipeline).sampling, clip: true },
    })),
    // Autoguidance, DDIM over every step: a model pushed away from a narrower model of the same recipe and seed
    // (the cascade's small model; its upscaler unguided).
    ...([
      ['baseline-v-ema', 'baseline', 'baseline-v-ema', 'baseline-v-narrow-ema', `baseline, v-prediction, EMA of weights (decay ${s.emaDecay}), guided w = ${s.autoguidance} by a U-Net of the same recipe ${16 / s.guideChannels}× narrower`],
      ['small-upscaled-wide-vcfg-ema', 'small-upscaled', 'small-wide-vcfg-ema', 'small-vcfg-ema', `small upscaled, v-prediction, a small U-Net ${s.baseChannels / 16}× as wide guided w = ${s.autoguidance} by the paper-width small model of the same recipe, EMA of weights (decay ${s.emaDecay}), label dropout ${s.labelDropout} (unused)`],
      ['baseline-v-wide-ema', 'baseline', 'baseline-v-wide-ema', 'baseline-v-ema', `baseline, v-prediction, a U-Net ${s.baseChannels / 16}× as wide, EMA of weights (decay ${s.emaDecay}), guided w = ${s.autoguidance} by the paper-width model of the same recipe`],
    ] as const).map(([name, pipeline, training, guide, what]): Variant => {
      const model = PAPER_PIPELINE_MODELS[pipeline].models[0]!;
      return {
        name: `${name}-ddim-autoguided-w${s.autoguidance}-clip`,
        group: 'autoguidance',
        label: `${what}, ${DDIM_ALL_STEPS}, ${CLIPPED}`,
        pipeline,
        trainings: { [model]: training },
        guides: { [model]: guide },
        sampling: { sampler: 'ddim', eta: 0, guidance: s.autoguidance, clip: true },
      };
    }),
    {
      ...wideAugmentedCascade(true),
      name: `cascaded-wide-vcfg-aug-ema-ddim-autoguided-w${s.autoguidance}-clip`,
      group: 'autoguidance',
      label: `cascaded, v-prediction, a small U-Net ${s.baseChannels / 16}× as wide guided w = ${s.autoguidance} by the paper-width small model of the same recipe, an upscaler with conditioning augmentation (σ ≤ ${s.conditioningNoise}, sampled at level 0) unguided, EMA of weights (decay ${s.emaDecay}), label dropout ${s.labelDropout} (unused), ${DDIM_ALL_STEPS}, ${CLIPPED}`,
      guides: { small: 'small-vcfg-ema' },
      sampling: { sampler: 'ddim', eta: 0, guidance: [s.autoguidance, 0], clip: true },
    },
    ...wider,
    labelGuided,
    ...[false, true].map((clip): Variant => ({
      name: `baseline-ddim${s.trailingSteps}-trailing${clip ? '-clip' : ''}`,
      group: 'first-step',
      label: `baseline, DDIM ${s.trailingSteps} steps (η = 0), trailing timesteps${clip ? `, ${CLIPPED}` : ''}`,
      pipeline: 'baseline',
      sampling: { sampler: 'ddim', steps: s.trailingSteps, eta: 0, spacing: 'trailing', ...(clip ? { clip } : {}) },
    })),
    ...([['cfg', ''], ['vcfg', 'v-prediction, '], ['vcfg-ema', `v-prediction, EMA of weights (decay ${s.emaDecay}), `]] as const).flatMap(([kind, what]) =>
      PAPER_PIPELINES.flatMap((pipeline) => s.guidanceScales.map((w): Variant => ({
        name: `${pipeline}-${kind}-w${w}-clip`,
        group: 'guidance',
        label: `${pipeline}, ${what}classifier-free guidance w = ${w} (label dropout ${s.labelDropout}), ${CLIPPED}`,
        pipeline,
        ...runsOf(Object.fromEntries(PAPER_PIPELINE_MODELS[pipeline].models.map((m) => [m, `${m}-${kind}`])), trained),
        sampling: { guidance: w, clip: true },
      })))),
    ...s.conditioningLevels.flatMap((level) => [false, true].map((clip): Variant => ({
      name: `cascaded-aug${level}${clip ? '-clip' : ''}`,
      group: 'conditioning',
      label: `cascaded, upscaler with conditioning augmentation (σ ≤ ${s.conditioningNoise}), sampled at level ${level}${clip ? `, ${CLIPPED}` : ''}`,
      pipeline: 'cascaded',
      trainings: { upscaler: 'upscaler-aug' },
      sampling: { conditioningLevel: level, ...(clip ? { clip } : {}) },
    }))),
  ];
  // The best cascades (unguided, autoguided, autoguided and label-guided; the wide one autoguided, the best on
  // Fashion-MNIST) and the best baseline with a second-order sampler, the same steps.
  const dpmSolver = [
    `cascaded-wide-vcfg-aug-ema-ddim-autoguided-w${s.autoguidance}-clip`,
    'cascaded-wider-vcfg-aug-ema-ddim-clip',
    narrow.name,
    labelGuided.name,
    `baseline-v-wide-ema-ddim-autoguided-w${s.autoguidance}-clip`,
  ].map((name) => withDpmSolver(all.find((v) => v.name === name)!));
  // The wide cascade's small model trained longer, autoguided by the same recipe trained for the paper's epochs
  // (Karras et al. 2024 guide with a shorter-trained model too).
  const longer: Variant = {
    ...dpmSolver.find((v) => v.name === `cascaded-wide-vcfg-aug-ema-dpmpp-autoguided-w${s.autoguidance}-clip`)!,
    name: `cascaded-wide-long-vcfg-aug-ema-dpmpp-autoguided-short-w${s.autoguidance}-clip`,
    label: `cascaded, v-prediction, a small U-Net ${s.baseChannels / 16}× as wide trained ${s.epochsFactor}× as long guided w = ${s.autoguidance} by the same recipe trained for the paper's epochs, an upscaler with conditioning augmentation (σ ≤ ${s.conditioningNoise}, sampled at level 0) unguided, EMA of weights (decay ${s.emaDecay}), label dropout ${s.labelDropout} (unused), ${DPM_SOLVER_ALL_STEPS}, ${CLIPPED}`,
    trainings: { small: 'small-wide-vcfg-ema-long', upscaler: 'upscaler-vcfg-aug-ema' },
    guides: { small: 'small-wide-vcfg-ema' },
  };
  // It with label guidance at low noise too (as the wider cascade's labelGuided), at that scale and the sweep's.
  const longerLabelGuided = [s.labelGuidance.scale, ...s.labelGuidanceSweep].map((w): Variant => ({
    ...longer,
    name: longer.name.replace(/-clip$/, `-label${w}-sigma${s.labelGuidance.sigma.join('-')}-clip`),
    label: `cascaded, v-prediction, a small U-Net ${s.baseChannels / 16}× as wide trained ${s.epochsFactor}× as long guided classifier-free w = ${w} at σ_t in (${s.labelGuidance.sigma.join(', ')}] (label dropout ${s.labelDropout}), then autoguided w = ${s.autoguidance} by the same recipe trained for the paper's epochs, an upscaler with conditioning augmentation (σ ≤ ${s.conditioningNoise}, sampled at level 0) unguided, EMA of weights (decay ${s.emaDecay}), ${DPM_SOLVER_ALL_STEPS}, ${CLIPPED}`,
    sampling: { ...longer.sampling, labelGuidance: [w, 0], labelGuidanceInterval: s.labelGuidance.sigma },
  }));
  // The wide baseline guided by the paper-width baseline's own guide (the same recipe 4× narrower than it) instead.
  const wideBaseline = dpmSolver.find((v) => v.name === `baseline-v-wide-ema-dpmpp-autoguided-w${s.autoguidance}-clip`)!;
  const wideBaselineNarrowGuide: Variant = {
    ...wideBaseline,
    name: wideBaseline.name.replace('-autoguided', '-autoguided-narrow'),
    label: `baseline, v-prediction, a U-Net ${s.baseChannels / 16}× as wide, EMA of weights (decay ${s.emaDecay}), guided w = ${s.autoguidance} by a U-Net of the same recipe ${s.baseChannels / s.guideChannels}× narrower, ${DPM_SOLVER_ALL_STEPS}, ${CLIPPED}`,
    guides: { baseline: 'baseline-v-narrow-ema' },
  };
  // The wide baseline trained longer, guided by its twin trained for the paper's epochs (as the longer cascade).
  const longerBaseline: Variant = {
    ...wideBaseline,
    name: `baseline-v-wide-long-ema-dpmpp-autoguided-short-w${s.autoguidance}-clip`,
    label: `baseline, v-prediction, a U-Net ${s.baseChannels / 16}× as wide trained ${s.epochsFactor}× as long, EMA of weights (decay ${s.emaDecay}), guided w = ${s.autoguidance} by the same recipe trained for the paper's epochs, ${DPM_SOLVER_ALL_STEPS}, ${CLIPPED}`,
    trainings: { baseline: 'baseline-v-wide-ema-long' },
    guides: { baseline: 'baseline-v-wide-ema' },
  };
  return [...all, ...dpmSolver, longer, ...longerLabelGuided, wideBaselineNarrowGuide, longerBaseline];
}
