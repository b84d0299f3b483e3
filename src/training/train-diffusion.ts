// Training a diffusion model (Ho et al. Algorithm 1): ε-prediction with an MSE loss, Adam, epochs over the
// class-balanced training subset; a JSON Lines log, a checkpoint per epoch (and optionally every N steps),
// and exact resumption from the newest checkpoint.
import { appendFileSync, existsSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { loadDataset } from '../data/datasets.ts';
import type { ImageSet } from '../data/image-set.ts';
import { batches } from '../data/sampling.ts';
import { DDPMScheduler } from '../diffusion/ddpm.ts';
import { restoreCheckpoint, saveCheckpoint } from '../io/checkpoint.ts';
import { makeDirectory, writeFileAtomic } from '../io/atomic.ts';
import { checkUnlocked, withFolderLock } from '../io/lock.ts';
import { mseLoss } from '../nn/functional.ts';
import type { StateDict } from '../nn/module.ts';
import { Adam, ExponentialMovingAverage, updateBatchNorm } from '../optim/index.ts';
import { DiffusionModel } from '../pipelines/diffusion-model.ts';
import {
  CHECKPOINT_DIR, NO_CHECKPOINT_YET, RunError, checkCheckpointModel, configPath, epochCheckpointPath, latestCheckpoint, logPath, noCheckpointReason, readRunConfig,
  stepCheckpointPath, writeRunConfig, type RunConfig,
} from '../pipelines/run-dir.ts';
import { Generator, manualSeed } from '../torch/generator.ts';
import { noGrad } from '../torch/grad-mode.ts';
import { tensor } from '../torch/ops/creation.ts';
import { tidy } from '../torch/scope.ts';
import { TrainingData, measureNormalization, trainingPixels } from './training-data.ts';
import { readLogSummary, removeTemporaries, truncateLog } from './run-log.ts';
import { newRunConfig, settingDifferences, validateTraining, type NewRunSpec } from './training-config.ts';

export interface TrainProgress {
  step: number;
  totalSteps: number;
  epoch: number;
  loss: number;
}

export interface TrainDiffusionOptions extends NewRunSpec {
  /** The run folder. */
  out: string;
  /**
   * Continue the run in `out` from its newest checkpoint. The model and training settings are the run's: any
   * given in `model`, `dataset`, `conditioningNoise`, `labelDropout` or `training` must agree with them, except the number of
   * epochs (which may be raised) and `checkpointEvery` (applied from now on); both are recorded.
   */
  resume?: boolean;
  /** Resumed runs: raise the number of epochs (as `training.epochs`). */
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

/** Where a run stands, as saved in every checkpoint's metadata. */
type CheckpointMeta = {
  config: RunConfig;
  /** Completed epochs, or the current one's index when `stepInEpoch` > 0. */
  epoch: number;
  /** Steps done in `epoch` (0 at an epoch boundary). */
  stepInEpoch: number;
  step: number;
  /** The noise generator's state, base64. */
  generatorState: string;
};

function readCheckpointMeta(path: string, meta: Record<string, unknown>): CheckpointMeta {
  const count = (k: string) => {
    const v = meta[k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new RunError(`${path}: the checkpoint's '${k}' is not a count (${String(v)}); not a training checkpoint`);
    return v;
  };
  if (typeof meta.generatorState !== 'string') throw new RunError(`${path}: the checkpoint holds no generator state; not a training checkpoint`);
  return { config: meta.config as RunConfig, epoch: count('epoch'), stepInEpoch: count('stepInEpoch'), step: count('step'), generatorState: meta.generatorState };
}

/**
 * For pipelines that own their run folders (`ssddpm paper`): trains the run in `opts.out` to the length in
 * `opts.training.epochs`, continuing from its newest checkpoint when it has one. A folder holding a config but
 * no checkpoint was stopped inside its first epoch and has nothing to continue from: it starts over.
 */
export function trainOrContinue(opts: Omit<TrainDiffusionOptions, 'resume' | 'epochs'>): TrainResult {
  const dir = opts.out;
  if (!existsSync(configPath(dir)) || latestCheckpoint(dir) === undefined) return trainDiffusion(opts);
  const { model: _, dataset: __, conditioningNoise: ___, labelDropout: ____, maxBeta: _____, training, ...rest } = opts;
  return trainDiffusion({ ...rest, resume: true, epochs: training?.epochs });
}

// Settings a resumed run was asked for that differ from the run's own (its length and checkpoint interval may change).
function resumeConflicts(config: RunConfig, opts: TrainDiffusionOptions): string[] {
  const { epochs: _, checkpointEvery: __, ...training } = opts.training ?? {};
  const asked = { model: opts.model, dataset: opts.dataset, conditioningNoise: opts.conditioningNoise, labelDropout: opts.labelDropout, maxBeta: opts.maxBeta, ...training };
  return settingDifferences(config, Object.fromEntries(Object.entries(asked).filter(([, v]) => v !== undefined)), 'asked');
}

// The run's configuration and the checkpoint to continue from: the folder's when resuming, else a fresh one.
function openRun(opts: TrainDiffusionOptions): { config: RunConfig; checkpoint?: string; startOver?: boolean } {
  const dir = opts.out;
  if (opts.resume) {
    if (!existsSync(configPath(dir))) throw new RunError(`nothing to resume in ${dir}: it holds no run (no config.json)`);
    const config = readRunConfig(dir);
    const checkpoint = latestCheckpoint(dir)?.path;
    if (checkpoint === undefined) {
      const reason = noCheckpointReason(dir);
      const restart = reason === NO_CHECKPOINT_YET ? '; it stopped inside its first epoch: run the same command without --resume to start it over' : '';
      throw new RunError(`nothing to resume in ${dir}: ${reason}${restart}`);
    }
    checkCheckpointModel(checkpoint, config);
    const conflicts = resumeConflicts(config, opts);
    if (conflicts.length > 0) throw new RunError(`${dir} was trained with ${conflicts.join(', ')}: a resumed run keeps its settings; start a new run (another --out) to change them`);
    const epochs = opts.epochs ?? opts.training?.epochs ?? config.training.epochs;
    const checkpointEvery = opts.training?.checkpointEvery ?? config.training.checkpointEvery;
    return { config: { ...config, training: { ...config.training, epochs, checkpointEvery } }, checkpoint };
  }
  if (existsSync(dir) && !statSync(dir).isDirectory()) throw new RunError(`${dir} exists and is not a folder`);
  const config = newRunConfig(opts);
  if (!existsSync(configPath(dir))) return { config };
  // A run stopped before its first checkpoint (killed, a full disk, a NaN loss) has nothing to continue from.
  if (latestCheckpoint(dir) === undefined && noCheckpointReason(dir) === NO_CHECKPOINT_YET) return { config, startOver: true };
  throw new RunError(`${dir} already holds a run: resume it with --resume, or choose another --out`);
}

/** Trains (or resumes) one run, as the run folder's only writer; see {@link TrainDiffusionOptions}. */
export function trainDiffusion(opts: TrainDiffusionOptions): TrainResult {
  // Refuse what can be refused before the lock touches the disk; the state is read again under the lock.
  checkUnlocked(opts.out, 'run folder');
  openRun(opts);
  return withFolderLock(opts.out, 'run folder', () => train(opts));
}

function train(opts: TrainDiffusionOptions): TrainResult {
  const started = performance.now();
  const dir = opts.out;
  const device = opts.device;
  let { config, checkpoint, startOver } = openRun(opts);
  if (startOver) for (const f of [configPath(dir), logPath(dir), join(dir, CHECKPOINT_DIR)]) rmSync(f, { recursive: true, force: true });
  const t = config.training;
  validateTraining(t);

  // 1. Data: the balanced subset, held once in libtorch memory; a new run measures its normalisation on it.
  const pixels = trainingPixels(opts.images ?? loadDataset(config.model.dataset, 'train'), config.model, t, device);
  if (checkpoint === undefined) config = { ...config, model: { ...config.model, normalization: measureNormalization(pixels.pixels, t.dataScaling) } };
  manualSeed(t.seed);
  const model = new DiffusionModel(config.model, device);
  const data = new TrainingData(model, pixels);
  // The forward process uses the model's own schedule.
  const scheduler = new DDPMScheduler({ schedule: model.schedule });
  const optimizer = new Adam(model.unet.parameters(), { lr: t.lr });
  const ema = t.ema === undefined ? undefined : new ExponentialMovingAverage(model.unet, t.ema);
  const averaged = ema === undefined ? undefined : new DiffusionModel(config.model, device);
  const generator = new Generator(t.seed, device ?? 'cpu');
  const stepsPerEpoch = Math.ceil(data.count / t.batchSize);
  const totalSteps = stepsPerEpoch * t.epochs;

  // 2. Start, or restore where the checkpoint stopped.
  let epoch = 0;
  let stepInEpoch = 0;
  let step = 0;
  let carried: number[] = [];
  if (checkpoint !== undefined) {
    const meta = readCheckpointMeta(checkpoint, restoreCheckpoint(checkpoint, { model: model.unet, optimizer, ema }));
    ({ epoch, stepInEpoch, step } = meta);
    if (t.epochs < epoch) throw new RunError(`${dir} has already trained ${epoch} epochs: --epochs ${t.epochs} would leave its checkpoints of epochs ${t.epochs + 1}-${epoch} ahead of its configuration; give --epochs ${epoch} or more`);
    const state = tensor(Uint8Array.from(Buffer.from(meta.generatorState, 'base64')));
    generator.setState(state);
    state.dispose();
    removeTemporaries(dir);
    carried = truncateLog(dir, step, epoch);
    writeRunConfig(dir, config);
  } else {
    makeDirectory(dir);
    writeRunConfig(dir, config);
    writeFileAtomic(logPath(dir), '');
  }

  // The moving average as saved: its weights, with batch-norm statistics measured on them over the same
  // training batches at every save (a generator of their own keeps resumption exact).
  const averagedState = (): StateDict | undefined => {
    if (ema === undefined || averaged === undefined) return undefined;
    ema.copyTo(averaged.unet);
    const gen = new Generator(epochSeed(t.seed, -1), device ?? 'cpu');
    updateBatchNorm(averaged.unet, () => {
      let k = 0;
      for (const idx of batches(data.count, t.batchSize, { seed: epochSeed(t.seed, -1) })) {
        if (k++ === CALIBRATION_BATCHES) break;
        tidy(() => void data.predictBatch(averaged, scheduler, idx, gen));
      }
    });
    return averaged.unet.stateDict();
  };

  const save = (path: string) => {
    const gen = generator.getState();
    const meta: CheckpointMeta = { config, epoch, stepInEpoch, step, generatorState: Buffer.from(gen.data() as Uint8Array).toString('base64') };
    gen.dispose();
    saveCheckpoint(path, { model: model.unet, optimizer, ema: averagedState(), metadata: meta });
  };

  // 3. Algorithm 1, epoch after epoch (a resumed run that is already long enough has nothing to do).
  let finalLoss = checkpoint === undefined ? Number.NaN : readLogSummary(dir).finalLoss;
  model.unet.train();
  try {
    for (; epoch < t.epochs; ) {
      const epochStart = performance.now();
      // A run resumed mid-epoch: the epoch's mean loss also covers the steps done before the interruption.
      let lossSum = stepInEpoch > 0 ? carried.reduce((a, b) => a + b, 0) : 0;
      let lossCount = stepInEpoch > 0 ? carried.length : 0;
      let k = 0;
      for (const idx of batches(data.count, t.batchSize, { seed: epochSeed(t.seed, epoch) })) {
        if (k++ < stepInEpoch) continue;
        const loss = tidy(() => {
          const [eps, noise] = data.predictBatch(model, scheduler, idx, generator);
          const l = mseLoss(eps, noise);
          optimizer.zeroGrad();
          l.backward();
          return l.item();
        });
        if (!Number.isFinite(loss)) {
          const last = latestCheckpoint(dir);
          // Resuming would take the same steps again: the way on is a new run with other settings.
          throw new TrainingError(`the loss became ${loss} at step ${step + 1} (epoch ${epoch + 1}); stopped without saving: ` +
            (last ? `the last good checkpoint is ${last.path}` : 'no checkpoint was written yet') + '; train a new run with a lower --lr (another --out)');
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
    data.dispose();
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
