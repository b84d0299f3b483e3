// How a run is trained: the defaults (the paper's recipe), validation, and the configuration of a new run.
import type { DatasetName } from '../data/datasets.ts';
import { checkScheduleConfig } from '../diffusion/schedule.ts';
import { PREDICTIONS, type Prediction } from '../diffusion/step-coefficients.ts';
import { canonicalJson } from '../io/content-hash.ts';
import { presetModel, type ModelKind } from '../pipelines/model-config.ts';
import { PRECISIONS, type RunConfig, type TrainingConfig } from '../pipelines/run-dir.ts';
import { checkObjectiveTerms } from './objectives.ts';

export type { TrainingConfig } from '../pipelines/run-dir.ts';

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

/** The largest training seed: every epoch's shuffling seed (seed · 1,000,003 + epoch) stays an exact integer. */
export const MAX_SEED = 2 ** 32 - 1;

/** Throws a RangeError naming the first invalid setting. */
export function validateTraining(t: TrainingConfig): void {
  const positive = (name: string, v: number) => {
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`${name} must be a positive integer, got ${v}`);
  };
  positive('epochs', t.epochs);
  positive('batch size', t.batchSize);
  positive('images per class', t.perClass);
  if (!(t.lr > 0) || !Number.isFinite(t.lr)) throw new RangeError(`learning rate must be a positive number, got ${t.lr}`);
  if (!Number.isInteger(t.seed) || t.seed < 0 || t.seed > MAX_SEED) throw new RangeError(`seed must be an integer in 0..${MAX_SEED}, got ${t.seed}`);
  if (t.dataScaling !== undefined && t.dataScaling !== 'standard' && t.dataScaling !== 'unit') {
    throw new RangeError(`data scaling must be 'standard' or 'unit', got '${String(t.dataScaling)}'`);
  }
  if (t.ema !== undefined && !(t.ema > 0 && t.ema < 1)) throw new RangeError(`EMA decay must be in (0, 1), got ${t.ema}`);
  if (t.precision !== undefined && !(PRECISIONS as readonly string[]).includes(t.precision)) throw new RangeError(`precision must be one of ${PRECISIONS.join(', ')}, got '${String(t.precision)}'`);
  checkObjectiveTerms(t);
  if (!Number.isInteger(t.checkpointEvery) || t.checkpointEvery < 0) throw new RangeError(`checkpoint interval must be a non-negative integer, got ${t.checkpointEvery}`);
}

/** What a new run is asked to be: a preset model, its dataset, conditioning augmentation, and training settings. */
export interface NewRunSpec {
  model?: ModelKind;
  dataset?: DatasetName;
  /** Upscalers: conditioning augmentation up to this noise level (see DiffusionModelConfig.conditioningNoise). */
  conditioningNoise?: number;
  /** Classifier-free guidance: drop the label with this probability (see DiffusionModelConfig.labelDropout). */
  labelDropout?: number;
  /** The schedule's number of timesteps T instead of the preset's (30, 20, 10): the same curve, sampled finer. */
  numTimesteps?: number;
  /** Cap β_t of the model's cosine schedule here instead of at 0.999 (see ScheduleConfig.maxBeta). */
  maxBeta?: number;
  /** What the network predicts (see DiffusionModelConfig.prediction); absent: ε, as the paper. */
  prediction?: Prediction;
  /** Rescale the schedule to zero terminal SNR (see ScheduleConfig.zeroTerminalSnr); needs v-prediction. */
  zeroTerminalSnr?: boolean;
  /** Width of the U-Net's first block (the paper: 16; block i has baseChannels·2^i channels). */
  baseChannels?: number;
  training?: Partial<TrainingConfig>;
}

/** The settings of a NewRunSpec that make the run's model: a resumed run keeps its own. */
export const MODEL_SETTINGS = ['model', 'dataset', 'conditioningNoise', 'labelDropout', 'numTimesteps', 'maxBeta', 'prediction', 'zeroTerminalSnr', 'baseChannels'] as const satisfies readonly (keyof NewRunSpec)[];

/**
 * The configuration of a new run, before its data statistics are known (normalisation is measured on the
 * training subset when training starts).
 */
export function newRunConfig(spec: NewRunSpec): RunConfig {
  const training = { ...DEFAULT_TRAINING, ...spec.training };
  validateTraining(training);
  const preset = presetModel(spec.model ?? 'baseline', spec.dataset);
  if (spec.conditioningNoise !== undefined && preset.lowResSize === undefined) throw new RangeError('conditioning augmentation is for the upscaler');
  if (spec.baseChannels !== undefined && (!Number.isInteger(spec.baseChannels) || spec.baseChannels < 1)) throw new RangeError(`base channels must be a positive integer, got ${spec.baseChannels}`);
  const unet = { ...preset.unet, ...(spec.baseChannels === undefined ? {} : { baseChannels: spec.baseChannels }) };
  const augmented = spec.conditioningNoise === undefined ? { unet } : { conditioningNoise: spec.conditioningNoise, unet: { ...unet, extraContext: 1 } };
  if (spec.labelDropout !== undefined && !(spec.labelDropout > 0 && spec.labelDropout < 1)) throw new RangeError(`label dropout must be in (0, 1), got ${spec.labelDropout}`);
  const guided = spec.labelDropout === undefined ? {} : { labelDropout: spec.labelDropout };
  if (spec.prediction !== undefined && !PREDICTIONS.includes(spec.prediction)) throw new RangeError(`prediction must be one of ${PREDICTIONS.join(', ')}, got '${String(spec.prediction)}'`);
  if (spec.zeroTerminalSnr && spec.prediction !== 'v') throw new RangeError('a schedule with zero terminal SNR needs v-prediction (x̂0 cannot be recovered from a noise prediction where ᾱ = 0): add --prediction v');
  const predicted = spec.prediction === 'v' ? { prediction: spec.prediction } : {};
  const schedule = { ...preset.schedule, ...(spec.numTimesteps === undefined ? {} : { numTimesteps: spec.numTimesteps }), ...(spec.maxBeta === undefined ? {} : { maxBeta: spec.maxBeta }), ...(spec.zeroTerminalSnr ? { zeroTerminalSnr: true } : {}) };
  checkScheduleConfig(schedule);
  checkObjectiveTerms(training, schedule.numTimesteps);
  return { format: 'ssddpm-run', version: 2, model: { ...preset, ...augmented, ...guided, ...predicted, schedule, normalization: { mean: 0, std: 1 } }, training };
}

/**
 * What makes two runs the same run: the model (kind, data, schedule, network, conditioning) and how it is
 * trained, all but its length and bookkeeping (epochs, checkpointEvery; the normalisation is measured).
 */
export function runSettings(c: RunConfig): Record<string, unknown> {
  const { normalization: _, kind, ...model } = c.model;
  const t = c.training;
  // numTimesteps, maxBeta, prediction and zeroTerminalSnr also on their own, so that a resumed run's options compare with them.
  return { model: kind, ...model, baseChannels: c.model.unet.baseChannels, numTimesteps: c.model.schedule.numTimesteps, maxBeta: c.model.schedule.maxBeta, prediction: c.model.prediction ?? 'epsilon', zeroTerminalSnr: c.model.schedule.zeroTerminalSnr ?? false, batchSize: t.batchSize, lr: t.lr, seed: t.seed, perClass: t.perClass, subsetSeed: t.subsetSeed, dataScaling: t.dataScaling ?? 'standard', ema: t.ema, precision: t.precision ?? 'float32', x0DomainLoss: t.x0DomainLoss, nStepLoss: t.nStepLoss };
}

/** The settings of `run` that differ from those `asked` (keys of runSettings), as 'name value (who: value)'. */
export function settingDifferences(run: RunConfig, asked: Record<string, unknown>, who: string): string[] {
  const have = runSettings(run);
  return Object.keys(asked)
    .filter((k) => canonicalJson(have[k]) !== canonicalJson(asked[k]))
    .map((k) => `${k} ${canonicalJson(have[k]) ?? 'unset'} (${who}: ${canonicalJson(asked[k]) ?? 'unset'})`);
}
