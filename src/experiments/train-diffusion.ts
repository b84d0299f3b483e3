// Training a diffusion model (Ho et al. Algorithm 1): ε-prediction with an MSE loss, Adam, epochs over the
// class-balanced training subset; a JSON Lines log, a checkpoint per epoch (and optionally every N steps),
// and exact resumption from the newest checkpoint.
import { appendFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { loadDataset } from '../data/datasets.ts';
import { balancedSubset, batches } from '../data/sampling.ts';
import { downscale } from '../data/tensor-dataset.ts';
import { DDPMScheduler } from '../diffusion/ddpm.ts';
import { restoreCheckpoint, saveCheckpoint } from '../io/checkpoint.ts';
import { writeFileAtomic } from '../io/atomic.ts';
import { mseLoss } from '../nn/functional.ts';
import { Adam, ExponentialMovingAverage, updateBatchNorm } from '../optim/index.ts';
import { Generator, manualSeed } from '../torch/generator.ts';
import { noGrad } from '../torch/grad-mode.ts';
import { int64, tensor } from '../torch/ops/creation.ts';
import { rand, randint, randn } from '../torch/ops/random.ts';
import { indexSelect } from '../torch/ops/shape.ts';
import { keep, tidy } from '../torch/scope.ts';
import type { ImageSet } from '../data/image-set.ts';
import type { StateDict } from '../nn/module.ts';
import type { Tensor } from '../torch/tensor.ts';
import { DiffusionModel } from './diffusion-model.ts';
import { DEFAULT_TRAINING, presetModel, type ModelKind, type RunConfig, type TrainingConfig } from './model-config.ts';
import { CHECKPOINT_DIR, RunError, checkCheckpointModel, noCheckpointReason, epochCheckpointPath, latestCheckpoint, logPath, readRunConfig, stepCheckpointPath, writeRunConfig, configPath } from './run-dir.ts';
import type { DatasetName } from '../data/datasets.ts';

export interface TrainProgress {
  step: number;
  totalSteps: number;
  epoch: number;
  loss: number;
}

export interface TrainDiffusionOptions {
  /** The run folder. */
  out: string;
  /** Continue the run in `out` from its newest checkpoint. */
  resume?: boolean;
  /** New runs: which model and dataset, and training settings over the defaults. */
  model?: ModelKind;
  dataset?: DatasetName;
  /** New upscaler runs: conditioning augmentation up to this noise level (see DiffusionModelConfig.conditioningNoise). */
  conditioningNoise?: number;
  training?: Partial<TrainingConfig>;
  /** Resumed runs: raise the number of epochs. */
  epochs?: number;
  device?: string;
  /** Training images instead of the dataset's (tests, custom data); the balanced subset is still drawn. */
  images?: ImageSet;
  onProgress?: (p: TrainProgress) => void;
}

export interface TrainResult {
  config: RunConfig;
  finalLoss: number;
  steps: number;
  seconds: number;
}

export class TrainingError extends Error {
  override name = 'TrainingError';
}

interface CheckpointMeta {
  config: RunConfig;
  epoch: number;
  /** Steps done in `epoch` (0 at an epoch boundary: `epoch` counts completed epochs then). */
  stepInEpoch: number;
  step: number;
  generatorState: string;
}

/**
 * For pipelines that own their run folders (`ssddpm paper`): trains the run in `opts.out` to the length in
 * `opts.training.epochs`, continuing from its newest checkpoint when it has one. A folder holding a config but
 * no checkpoint was stopped inside its first epoch and has nothing to continue from: it starts over.
 */
export function trainOrContinue(opts: Omit<TrainDiffusionOptions, 'resume' | 'epochs'>): TrainResult {
  const dir = opts.out;
  let resume = existsSync(configPath(dir));
  if (resume && latestCheckpoint(dir) === undefined) {
    rmSync(dir, { recursive: true, force: true });
    resume = false;
  }
  return trainDiffusion({ ...opts, resume, epochs: resume ? opts.training?.epochs : undefined });
}

/** Trains (or resumes) one run; see {@link TrainDiffusionOptions}. */
export function trainDiffusion(opts: TrainDiffusionOptions): TrainResult {
  const started = performance.now();
  const dir = opts.out;
  const resume = opts.resume ?? false;

  // 1. The run's configuration: from the folder when resuming, else a fresh one.
  let config: RunConfig;
  let checkpoint: string | undefined;
  if (resume) {
    if (!existsSync(configPath(dir))) throw new RunError(`nothing to resume in ${dir}: it holds no run (no config.json)`);
    config = readRunConfig(dir);
    checkpoint = latestCheckpoint(dir)?.path;
    if (checkpoint === undefined) throw new RunError(`nothing to resume in ${dir}: ${noCheckpointReason(dir)}`);
    checkCheckpointModel(checkpoint, config);
    if (opts.epochs !== undefined) config = { ...config, training: { ...config.training, epochs: opts.epochs } };
  } else {
    if (existsSync(dir) && !statSync(dir).isDirectory()) throw new RunError(`${dir} exists and is not a folder`);
    if (existsSync(configPath(dir))) throw new RunError(`${dir} already holds a run: resume it with --resume, or choose another --out`);
    const training = { ...DEFAULT_TRAINING, ...opts.training };
    validateTraining(training);
    const preset = presetModel(opts.model ?? 'baseline', opts.dataset);
    const augmented = opts.conditioningNoise === undefined ? {} : { conditioningNoise: opts.conditioningNoise, unet: { ...preset.unet, extraContext: 1 } };
    if (opts.conditioningNoise !== undefined && preset.lowResSize === undefined) throw new RangeError('conditioning augmentation is for the upscaler');
    config = { format: 'ssddpm-run', version: 1, model: { ...preset, ...augmented, normalization: { mean: 0, std: 1 } }, training };
  }
  validateTraining(config.training);
  const t = config.training;
  const m = config.model;

  // 2. Data: the balanced subset at the model's size, in pixel space, held once in libtorch memory.
  const source = opts.images ?? loadDataset(m.dataset, 'train');
  const subset = balancedSubset(source, t.perClass, t.subsetSeed);
  const device = opts.device;
  const pixels = keep(tidy(() => {
    const raw = tensor(subset.images, { shape: [subset.count, 1, subset.height, subset.width], device });
    const x = raw.float().div_(255);
    return x.size(2) === m.imageSize ? x : downscale(x, m.imageSize);
  }));
  const labels = keep(int64(subset.labels, { device }));
  if (!resume) {
    const normalization = t.dataScaling === 'unit' ? { mean: 0, std: 1 } : tidy(() => {
      const mean = pixels.mean().item();
      return { mean, std: pixels.sub(mean).square().mean().sqrt().item() };
    });
    config = { ...config, model: { ...m, normalization } };
  }

  manualSeed(t.seed);
  const model = new DiffusionModel(config.model, device);
  const data = keep(model.toModelSpace(pixels));
  const cond = config.model.lowResSize === undefined ? undefined : keep(tidy(() => model.conditioning(downscale(pixels, config.model.lowResSize!))));
  pixels.dispose();

  const scheduler = new DDPMScheduler({ numTrainTimesteps: m.numStates, cosinePower: m.cosinePower });
  const optimizer = new Adam(model.unet.parameters(), { lr: t.lr });
  const ema = t.ema === undefined ? undefined : new ExponentialMovingAverage(model.unet, t.ema);
  const generator = new Generator(t.seed, device ?? 'cpu');
  const stepsPerEpoch = Math.ceil(subset.count / t.batchSize);
  const totalSteps = stepsPerEpoch * t.epochs;

  // 3. Start or restore.
  let epoch = 0;
  let stepInEpoch = 0;
  let step = 0;
  let carried: number[] = [];
  if (checkpoint !== undefined) {
    const meta = restoreCheckpoint(checkpoint, { model: model.unet, optimizer, ema }) as unknown as CheckpointMeta;
    epoch = meta.epoch;
    stepInEpoch = meta.stepInEpoch;
    step = meta.step;
    const state = tensor(Uint8Array.from(Buffer.from(meta.generatorState, 'base64')));
    generator.setState(state);
    state.dispose();
    removeTemporaries(dir);
    carried = truncateLog(dir, step, epoch);
  } else {
    mkdirSync(dir, { recursive: true });
    writeRunConfig(dir, config);
    writeFileAtomic(logPath(dir), '');
  }
  if (!resume || opts.epochs !== undefined) writeRunConfig(dir, config);

  // ε̂ for one batch of the training data and the noise it should predict (Algorithm 1, lines 2–5).
  const predictBatch = (net: DiffusionModel, idx: Int32Array, gen: Generator): [Tensor, Tensor] => {
    const index = int64(idx, { device });
    const x0 = indexSelect(data, 0, index);
    const y = indexSelect(labels, 0, index);
    const time = randint(0, m.numStates, [idx.length], { generator: gen, device });
    const noise = randn(x0.shape, { generator: gen, device });
    const xt = scheduler.addNoise(x0, noise, time);
    let c = cond === undefined ? undefined : indexSelect(cond, 0, index);
    const level = net.augmentsConditioning ? rand([idx.length], { generator: gen, device }) : undefined;
    if (c !== undefined && level !== undefined) c = net.corruptConditioning(c, level, gen);
    return [net.predictNoise(xt, time, y, c, level), noise];
  };

  // The moving average as saved: its weights, with batch-norm statistics measured on them over the same
  // training batches at every save (a generator of their own keeps resumption exact).
  const averaged = ema === undefined ? undefined : new DiffusionModel(config.model, device);
  const averagedState = (): StateDict | undefined => {
    if (ema === undefined || averaged === undefined) return undefined;
    ema.copyTo(averaged.unet);
    const gen = new Generator(epochSeed(t.seed, -1), device ?? 'cpu');
    updateBatchNorm(averaged.unet, () => {
      let k = 0;
      for (const idx of batches(subset.count, t.batchSize, { seed: epochSeed(t.seed, -1) })) {
        if (k++ === CALIBRATION_BATCHES) break;
        tidy(() => void predictBatch(averaged, idx, gen));
      }
    });
    return averaged.unet.stateDict();
  };

  const save = (path: string) => {
    const gen = generator.getState();
    const meta: CheckpointMeta = { config, epoch, stepInEpoch, step, generatorState: Buffer.from(gen.data() as Uint8Array).toString('base64') };
    gen.dispose();
    saveCheckpoint(path, { model: model.unet, optimizer, ema: averagedState(), metadata: meta as unknown as Record<string, unknown> });
  };

  // 4. Algorithm 1, epoch after epoch.
  let finalLoss = Number.NaN;
  model.unet.train();
  try {
    for (; epoch < t.epochs; ) {
      const epochStart = performance.now();
      // A run resumed mid-epoch: the epoch's mean loss also covers the steps done before the interruption.
      let lossSum = 0;
      let lossCount = 0;
      if (stepInEpoch > 0) {
        for (const l of carried) lossSum += l;
        lossCount = carried.length;
      }
      let k = 0;
      for (const idx of batches(subset.count, t.batchSize, { seed: epochSeed(t.seed, epoch) })) {
        if (k++ < stepInEpoch) continue;
        const loss = tidy(() => {
          const [eps, noise] = predictBatch(model, idx, generator);
          const l = mseLoss(eps, noise);
          optimizer.zeroGrad();
          l.backward();
          return l.item();
        });
        if (!Number.isFinite(loss)) {
          const last = latestCheckpoint(dir);
          throw new TrainingError(`the loss became ${loss} at step ${step + 1} (epoch ${epoch + 1}); stopped without saving: ` +
            (last ? `the last good checkpoint is ${last.path}` : 'no checkpoint was written yet'));
        }
        noGrad(() => tidy(() => optimizer.step()));
        ema?.update(model.unet);
        step++;
        stepInEpoch++;
        finalLoss = loss;
        lossSum += loss;
        lossCount++;
        appendFileSync(logPath(dir), `${JSON.stringify({ step, epoch: epoch + 1, loss })}\n`);
        opts.onProgress?.({ step, totalSteps, epoch: epoch + 1, loss });
        if (t.checkpointEvery > 0 && step % t.checkpointEvery === 0 && stepInEpoch < stepsPerEpoch) save(stepCheckpointPath(dir));
      }
      epoch++;
      stepInEpoch = 0;
      // The summary goes before the checkpoint: a crash in between drops it on resume (epoch > the
      // checkpoint's), and the resumed run writes it again; the other order would lose it.
      const seconds = (performance.now() - epochStart) / 1000;
      appendFileSync(logPath(dir), `${JSON.stringify({ epoch, meanLoss: lossCount > 0 ? lossSum / lossCount : null, seconds })}\n`);
      save(epochCheckpointPath(dir, epoch));
    }
  } finally {
    for (const x of [data, labels, cond]) x?.dispose();
    optimizer.dispose();
    ema?.dispose();
    averaged?.dispose();
    scheduler.dispose();
    model.dispose();
  }
  return { config, finalLoss, steps: step, seconds: (performance.now() - started) / 1000 };
}

// Training batches that measure the moving average's batch-norm statistics (see updateBatchNorm).
const CALIBRATION_BATCHES = 40;

function epochSeed(seed: number, epoch: number): number {
  return seed * 1_000_003 + epoch;
}

function validateTraining(t: TrainingConfig): void {
  const positive = (name: string, v: number) => {
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`${name} must be a positive integer, got ${v}`);
  };
  positive('epochs', t.epochs);
  positive('batch size', t.batchSize);
  positive('images per class', t.perClass);
  if (!(t.lr > 0) || !Number.isFinite(t.lr)) throw new RangeError(`learning rate must be a positive number, got ${t.lr}`);
  if (!Number.isSafeInteger(t.seed) || t.seed < 0) throw new RangeError(`seed must be a non-negative integer, got ${t.seed}`);
  if (t.dataScaling !== undefined && t.dataScaling !== 'standard' && t.dataScaling !== 'unit') {
    throw new RangeError(`data scaling must be 'standard' or 'unit', got '${String(t.dataScaling)}'`);
  }
  if (t.ema !== undefined && !(t.ema > 0 && t.ema < 1)) throw new RangeError(`EMA decay must be in (0, 1), got ${t.ema}`);
  if (!Number.isInteger(t.checkpointEvery) || t.checkpointEvery < 0) throw new RangeError(`checkpoint interval must be a non-negative integer, got ${t.checkpointEvery}`);
}

// Drops log lines past the resumed checkpoint (steps after `step`, summaries of epochs after `epochs`
// completed ones, a line torn by a crash), so the log reads as one uninterrupted run. Returns the losses of
// the kept steps of the unfinished epoch, in order.
function truncateLog(dir: string, step: number, epochs: number): number[] {
  const path = logPath(dir);
  if (!existsSync(path)) return [];
  const current: number[] = [];
  const kept = readFileSync(path, 'utf8')
    .split('\n')
    .filter((line) => {
      if (line.trim() === '') return false;
      try {
        const entry = JSON.parse(line) as { step?: number; epoch?: number; loss?: number };
        if (entry.step === undefined) return (entry.epoch ?? 0) <= epochs;
        if (entry.step > step) return false;
        if (entry.epoch === epochs + 1 && typeof entry.loss === 'number') current.push(entry.loss);
        return true;
      } catch {
        return false;
      }
    });
  writeFileAtomic(path, kept.length > 0 ? `${kept.join('\n')}\n` : '');
  return current;
}

// Removes what a killed process left of its atomic writes (`.tmp-<name>-<pid>-…`, see writeFileAtomic) in
// the run folder and its checkpoints: the files they were to replace are intact.
function removeTemporaries(dir: string): void {
  for (const folder of [dir, join(dir, CHECKPOINT_DIR)]) {
    if (!existsSync(folder)) continue;
    for (const name of readdirSync(folder)) if (name.startsWith('.tmp-')) rmSync(join(folder, name), { force: true });
  }
}
