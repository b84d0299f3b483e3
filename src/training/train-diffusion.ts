// Training a diffusion model (Ho et al. Algorithm 1): ε-prediction with an MSE loss, Adam, epochs over the
// class-balanced training subset; a JSON Lines log, a checkpoint per epoch (and optionally every N steps),
// and exact resumption from the newest checkpoint; data-parallel over several processes (train-parallel.ts).
import { appendFileSync, existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { DistributedEnvironment } from '../distributed/environment.ts';
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
  stepCheckpointPath, writeRunConfig, type RunConfig, type TrainingConfig,
} from '../pipelines/run-dir.ts';
import { Generator, manualSeed } from '../torch/generator.ts';
import { tensor } from '../torch/ops/creation.ts';
import { autocast, cpuBfloat16Problem } from '../torch/autocast.ts';
import { GraphedFunction, cudaGraphsAvailable } from '../torch/cuda-graph.ts';
import { consume, tidy } from '../torch/scope.ts';
import type { Tensor } from '../torch/tensor.ts';
import type { DataParallel } from './data-parallel.ts';
import { auxiliaryLoss, type BatchForward } from './objectives.ts';
import { rankDevice, trainAsRank, trainOnLocalProcesses, type ParallelSettings } from './train-parallel.ts';
import { TrainingData, measureNormalization, trainingPixels, type TrainingBatch } from './training-data.ts';
import { readLogSummary, removeTemporaries, truncateLog } from './run-log.ts';
import { MODEL_SETTINGS, newRunConfig, settingDifferences, validateTraining, type NewRunSpec } from './training-config.ts';

export interface TrainProgress {
  step: number;
  totalSteps: number;
  epoch: number;
  loss: number;
}

export interface TrainDiffusionOptions extends NewRunSpec, ParallelSettings {
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
  /**
   * On a GPU, replay each full batch's forward and backward as one CUDA graph (default true where the addon
   * can capture them; single-process runs without auxiliary losses). Results are the eager step's.
   */
  cudaGraphs?: boolean;
  /** Training images instead of the dataset's (tests, custom data); the balanced subset is still drawn. */
  images?: ImageSet;
  onProgress?: (p: TrainProgress) => void;
  /**
   * Data-parallel training over this many processes of this machine, this one being rank 0 (the others are
   * started and stopped with it). `training.batchSize` stays the global batch: each process takes an equal share.
   */
  nproc?: number;
  /**
   * This process is one rank of a data-parallel run started by other means (torchrun's environment variables,
   * see readDistributedEnvironment). Ranks other than 0 take the run's folder, settings and state from rank 0.
   */
  distributed?: DistributedEnvironment;
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
  const rest = Object.fromEntries(Object.entries(opts).filter(([k]) => !(MODEL_SETTINGS as readonly string[]).includes(k) && k !== 'training')) as Omit<typeof opts, (typeof MODEL_SETTINGS)[number] | 'training'>;
  return trainDiffusion({ ...rest, resume: true, epochs: opts.training?.epochs });
}

// Settings a resumed run was asked for that differ from the run's own (its length and checkpoint interval may change).
function resumeConflicts(config: RunConfig, opts: TrainDiffusionOptions): string[] {
  const { epochs: _, checkpointEvery: __, ...training } = opts.training ?? {};
  const asked = { ...Object.fromEntries(MODEL_SETTINGS.map((k) => [k, opts[k]])), ...training };
  return settingDifferences(config, Object.fromEntries(Object.entries(asked).filter(([, v]) => v !== undefined)), 'asked');
}

// The run's configuration and the checkpoint to continue from: the folder's when resuming, else a fresh one.
function openRun(opts: TrainDiffusionOptions): { config: RunConfig; checkpoint?: string; startOver?: boolean } {
  const opened = openRunFolder(opts);
  checkPrecision(opened.config.training, opts.device);
  return opened;
}

// bfloat16 is refused where this CPU would emulate it (slower than float32); GPUs decide for themselves.
function checkPrecision(t: TrainingConfig, device: string | undefined): void {
  if (t.precision !== 'bf16' || (device !== undefined && device !== 'cpu')) return;
  const problem = cpuBfloat16Problem();
  if (problem !== undefined) throw new RangeError(`--precision bf16: ${problem}; train in float32 (--precision float32, the default)`);
}

function openRunFolder(opts: TrainDiffusionOptions): { config: RunConfig; checkpoint?: string; startOver?: boolean } {
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

/**
 * Trains (or resumes) one run, as the run folder's only writer (rank 0 when data-parallel); see
 * {@link TrainDiffusionOptions}.
 */
export function trainDiffusion(opts: TrainDiffusionOptions): TrainResult {
  const nproc = opts.nproc ?? 1;
  if (!Number.isInteger(nproc) || nproc < 1) throw new RangeError(`the number of processes must be a positive integer, got ${nproc}`);
  const env = opts.distributed;
  if (nproc > 1 && env !== undefined) throw new RangeError(`--nproc starts its own processes, but this one already is rank ${env.rank} of ${env.worldSize} (WORLD_SIZE is set): use one or the other`);
  if (env !== undefined && env.worldSize > 1) {
    const s = { ...opts, device: rankDevice(opts.device, env.localRank) };
    if (env.rank !== 0) return trainAsRank(env, s, (parallel) => train(s, parallel));
    return trainAsRank(env, s, (parallel) => {
      try {
        checkUnlocked(opts.out, 'run folder');
        checkParallelRun(opts);
      } catch (err) {
        parallel.sendRefusal(err instanceof Error ? err.message : String(err));
        throw err;
      }
      return withFolderLock(opts.out, 'run folder', () => train(s, parallel));
    });
  }
  // Refuse what can be refused before the lock touches the disk; the state is read again under the lock.
  checkUnlocked(opts.out, 'run folder');
  if (nproc > 1) {
    checkParallelRun(opts);
    return trainOnLocalProcesses(nproc, opts, (parallel) => withFolderLock(opts.out, 'run folder', () => train(opts, parallel)));
  }
  openRun(opts);
  return withFolderLock(opts.out, 'run folder', () => train(opts));
}

// What rank 0 refuses before the other ranks start training.
function checkParallelRun(opts: TrainDiffusionOptions): void {
  if (opts.images !== undefined) throw new RangeError('training images given in memory cannot reach the other processes: data-parallel training reads the dataset');
  const { config } = openRun(opts);
  const n = opts.nproc ?? opts.distributed?.worldSize ?? 1;
  if (config.training.batchSize % n !== 0) {
    throw new RangeError(`the batch size ${config.training.batchSize} is the global one and must be divisible by the ${n} processes (each takes batch size / ${n})`);
  }
}

// The run's configuration and the checkpoint to start from: rank 0 (or a single process) reads them from the run
// folder and measures a new run's normalisation on its data; the other ranks receive them from rank 0.
function startRun(opts: TrainDiffusionOptions, parallel: DataParallel | undefined): { config: RunConfig; checkpoint?: string; pixels: ReturnType<typeof trainingPixels>; done: () => void } {
  const device = opts.device;
  if (parallel !== undefined && parallel.rank !== 0) {
    const start = parallel.receiveStart();
    const pixels = trainingPixels(loadDataset(start.config.model.dataset, 'train'), start.config.model, start.config.training, device);
    return { config: start.config, checkpoint: start.checkpoint, pixels, done: start.dispose };
  }
  let pixels: ReturnType<typeof trainingPixels> | undefined;
  try {
    const dir = opts.out;
    let { config, checkpoint, startOver } = openRun(opts);
    if (startOver) for (const f of [configPath(dir), logPath(dir), join(dir, CHECKPOINT_DIR)]) rmSync(f, { recursive: true, force: true });
    validateTraining(config.training);
    // The balanced subset, held once in libtorch memory; a new run measures its normalisation on it.
    pixels = trainingPixels(opts.images ?? loadDataset(config.model.dataset, 'train'), config.model, config.training, device);
    if (checkpoint === undefined) config = { ...config, model: { ...config.model, normalization: measureNormalization(pixels.pixels, config.training.dataScaling) } };
    if (parallel !== undefined) {
      parallel.checkBatching(pixels.count, config.training.batchSize);
      // Recorded in the run: a resumed run keeps it unless told otherwise.
      parallel.syncBatchNorm = opts.syncBatchNorm ?? config.training.syncBatchNorm ?? false;
      config = { ...config, training: { ...config.training, syncBatchNorm: parallel.syncBatchNorm } };
    }
    parallel?.sendStart(config, checkpoint === undefined ? undefined : readFileSync(checkpoint));
    return { config, checkpoint, pixels, done: () => {} };
  } catch (err) {
    pixels?.pixels.dispose();
    pixels?.labels.dispose();
    parallel?.sendRefusal(err instanceof Error ? err.message : String(err));
    throw err;
  }
}

function train(opts: TrainDiffusionOptions, parallel?: DataParallel): TrainResult {
  const started = performance.now();
  const dir = opts.out;
  const device = opts.device;
  // Rank 0 (or the only process) writes the run folder: config, log and checkpoints.
  const writer = parallel === undefined || parallel.rank === 0;
  // 1. The run's configuration, its data, and the checkpoint to continue from.
  const start = startRun(opts, parallel);
  let { config } = start;
  const { checkpoint, pixels } = start;
  const t = config.training;
  manualSeed(t.seed);
  const model = new DiffusionModel(config.model, device);
  const data = new TrainingData(model, pixels);
  // The forward process uses the model's own schedule.
  const scheduler = new DDPMScheduler({ schedule: model.schedule, prediction: model.prediction });
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
    let meta: CheckpointMeta;
    try {
      meta = readCheckpointMeta(checkpoint, restoreCheckpoint(checkpoint, { model: model.unet, optimizer, ema }));
    } finally {
      start.done();
    }
    ({ epoch, stepInEpoch, step } = meta);
    if (t.epochs < epoch) throw new RunError(`${dir} has already trained ${epoch} epochs: --epochs ${t.epochs} would leave its checkpoints of epochs ${t.epochs + 1}-${epoch} ahead of its configuration; give --epochs ${epoch} or more`);
    const state = tensor(Uint8Array.from(Buffer.from(meta.generatorState, 'base64')));
    generator.setState(state);
    state.dispose();
    if (writer) {
      removeTemporaries(dir);
      carried = truncateLog(dir, step, epoch);
      writeRunConfig(dir, config);
    }
  } else if (writer) {
    makeDirectory(dir);
    writeRunConfig(dir, config);
    writeFileAtomic(logPath(dir), '');
  }
  parallel?.prepare(model.unet);

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
    // Every rank holds the same batch-norm statistics from here on: what the checkpoint saves.
    parallel?.averageBuffers(model.unet);
    if (!writer) return;
    const gen = generator.getState();
    const meta: CheckpointMeta = { config, epoch, stepInEpoch, step, generatorState: Buffer.from(gen.data() as Uint8Array).toString('base64') };
    gen.dispose();
    saveCheckpoint(path, { model: model.unet, optimizer, ema: averagedState(), metadata: meta });
  };

  // The batch's loss (summed over the rows `rows` and divided by the global batch when data-parallel): the 1-step
  // loss and any auxiliary terms. Mixed precision: the network runs under autocast, the loss on float32 outputs.
  const batchForward = (b: Pick<TrainingBatch, 'labels' | 'cond' | 'level'>): BatchForward => (x, time) => {
    const run = () => model.predictNoise(x, time, b.labels, b.cond, b.level);
    return t.precision === 'bf16' ? consume(autocast({ device: device ?? 'cpu' }, run), (o) => o.float()) : run();
  };
  const batchLoss = (idx: Int32Array, rows?: [number, number]): Tensor => {
    const b = data.drawBatch(model, scheduler, idx, generator, { rows, nStep: t.nStepLoss?.steps });
    const forward = batchForward(b);
    const out = forward(b.xt, b.t);
    const l = rows === undefined ? mseLoss(out, b.target) : mseLoss(out, b.target, 'sum').div(idx.length * (out.numel / (rows[1] - rows[0])));
    const aux = auxiliaryLoss(t, scheduler, model.dataRange, b, out, forward, idx.length);
    return aux === undefined ? l : l.add(aux);
  };
  // Full batches replay their forward and backward as one CUDA graph; the batch is drawn eagerly before it.
  const graphed = parallel === undefined && graphsFit(opts, t) ? graphedLossStep(model, batchForward, optimizer, device!) : undefined;

  // 3. Algorithm 1, epoch after epoch (a resumed run that is already long enough has nothing to do).
  let finalLoss = checkpoint === undefined || !writer ? Number.NaN : readLogSummary(dir).finalLoss;
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
          if (parallel !== undefined) {
            // This rank's rows, and its share of the batch's mean loss: the shares' gradients sum to the batch's.
            const rows = parallel.rows(idx.length);
            const l = batchLoss(idx, rows);
            optimizer.zeroGrad();
            parallel.backward(l);
            const total = parallel.sumGradients(l.item());
            optimizer.step();
            return total;
          }
          let l: Tensor;
          if (graphed !== undefined && idx.length === t.batchSize) {
            l = graphed.call(graphInputs(data.drawBatch(model, scheduler, idx, generator)))[0]!;
          } else {
            l = batchLoss(idx);
            // Once a graph replays, the gradients are its static tensors: zero them in place, never drop them.
            optimizer.zeroGrad(!graphed?.replaying);
            l.backward();
          }
          // The update is queued before the loss is read back, so that on a GPU its launches overlap the step's
          // kernels; a non-finite loss still stops the run before anything is saved.
          optimizer.step();
          return l.item();
        });
        if (!Number.isFinite(loss)) {
          const last = writer ? latestCheckpoint(dir) : undefined;
          // Resuming would take the same steps again: the way on is a new run with other settings.
          throw new TrainingError(`the loss became ${loss} at step ${step + 1} (epoch ${epoch + 1}); stopped without saving: ` +
            (last ? `the last good checkpoint is ${last.path}` : 'no checkpoint was written yet') + '; train a new run with a lower --lr (another --out)');
        }
        ema?.update(model.unet);
        step++;
        stepInEpoch++;
        finalLoss = loss;
        lossSum += loss;
        lossCount++;
        if (writer) {
          appendFileSync(logPath(dir), `${JSON.stringify({ step, epoch: epoch + 1, loss })}\n`);
          opts.onProgress?.({ step, totalSteps, epoch: epoch + 1, loss });
        }
        if (t.checkpointEvery > 0 && step % t.checkpointEvery === 0 && stepInEpoch < stepsPerEpoch) save(stepCheckpointPath(dir));
      }
      epoch++;
      stepInEpoch = 0;
      // The summary goes before the checkpoint: a crash in between drops it on resume (epoch > the
      // checkpoint's), and the resumed run writes it again; the other order would lose it.
      const seconds = (performance.now() - epochStart) / 1000;
      if (writer) appendFileSync(logPath(dir), `${JSON.stringify({ epoch, meanLoss: lossCount > 0 ? lossSum / lossCount : null, seconds })}\n`);
      save(epochCheckpointPath(dir, epoch));
    }
    // Every rank finishes together: none leaves while another still needs it.
    parallel?.group.barrier();
  } finally {
    graphed?.dispose();
    data.dispose();
    optimizer.dispose();
    ema?.dispose();
    averaged?.dispose();
    scheduler.dispose();
    model.dispose();
  }
  return { config, finalLoss, steps: step, seconds: (performance.now() - started) / 1000 };
}

/** Whether this run's steps can be CUDA graphs: asked for (or not declined), on a GPU, plain objective. */
function graphsFit(opts: TrainDiffusionOptions, t: TrainingConfig): boolean {
  const onGpu = opts.device !== undefined && opts.device.startsWith('cuda');
  return (opts.cudaGraphs ?? true) && onGpu && cudaGraphsAvailable() && t.x0DomainLoss === undefined && t.nStepLoss === undefined;
}

/** The graph's inputs, in the order graphedLossStep reads them. */
function graphInputs(b: TrainingBatch): Tensor[] {
  return [b.xt, b.t, b.target, b.labels, ...(b.cond === undefined ? [] : [b.cond]), ...(b.level === undefined ? [] : [b.level])];
}

/** The loss of a drawn batch and its backward, as one CUDA graph (see GraphedFunction). */
function graphedLossStep(model: DiffusionModel, batchForward: (b: Pick<TrainingBatch, 'labels' | 'cond' | 'level'>) => BatchForward, optimizer: Adam, device: string): GraphedFunction {
  return new GraphedFunction(
    ([xt, time, target, labels, ...rest]) => {
      const cond = model.isUpscaler ? rest[0] : undefined;
      const level = model.augmentsConditioning ? rest[1] : undefined;
      const loss = mseLoss(batchForward({ labels: labels!, cond, level })(xt!, time!), target!);
      loss.backward();
      return loss;
    },
    {
      device,
      reset: () => optimizer.zeroGrad(),
      onFallback: (reason) => process.emitWarning(`${reason}; training continues without CUDA graphs`),
    },
  );
}

// Training batches that measure the moving average's batch-norm statistics (see updateBatchNorm).
const CALIBRATION_BATCHES = 40;

function epochSeed(seed: number, epoch: number): number {
  return seed * 1_000_003 + epoch;
}
