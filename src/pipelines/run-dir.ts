// A run folder holds everything needed to continue or use a training run:
//   config.json           the full model and training configuration
//   train.jsonl           one JSON line per step ({step, epoch, loss}) and per epoch ({epoch, meanLoss, seconds})
//   checkpoints/          epoch-0001.safetensors … (weights, optimizer state, RNG state, step, epoch)
import { closeSync, existsSync, openSync, readdirSync, readSync, statSync } from 'node:fs';
import { readInputFile } from '../io/input-file.ts';
import { join } from 'node:path';
import { writeFileAtomic } from '../io/atomic.ts';
import { isDatasetName } from '../data/datasets.ts';
import { checkScheduleConfig } from '../diffusion/schedule.ts';
import { isModelKind, type DiffusionModelConfig } from './model-config.ts';

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
  /**
   * Data-parallel runs: batch norm over the global batch (true) or over each process's share (false). Absent for
   * runs trained by one process. A resumed run keeps it unless told otherwise.
   */
  syncBatchNorm?: boolean;
  /**
   * Arithmetic of the network's forward and backward passes: 'float32' (the paper's; also when absent) or 'bf16'
   * (autocast: bfloat16 convolutions and matrix products; float32 weights, loss and optimizer).
   */
  precision?: Precision;
  /**
   * Add the x̂0-domain loss with this weight (training/objectives.ts: the part of x̂0 outside the data range,
   * on the noise scale). Absent: none, as the paper.
   */
  x0DomainLoss?: number;
  /**
   * Add the n-step loss: the error after `steps` deterministic DDIM steps of the model itself, with this weight
   * (training/objectives.ts; costs `steps` extra network passes per step). Absent: none, as the paper.
   */
  nStepLoss?: { steps: number; weight: number };
}

export const PRECISIONS = ['float32', 'bf16'] as const;
export type Precision = (typeof PRECISIONS)[number];

/** A run folder's config.json: the model and how it is trained. */
export interface RunConfig {
  format: 'ssddpm-run';
  version: 2;
  model: DiffusionModelConfig;
  training: TrainingConfig;
}

/**
 * A run configuration in the current format. Version 1 (before the schedule was part of the model
 * configuration) named T `numStates` and the cosine exponent `cosinePower`: its schedule is the paper's cosine.
 */
export function migrateRunConfig(raw: unknown): RunConfig {
  const cfg = raw as { format?: unknown; version?: unknown; model?: Record<string, unknown>; training?: unknown };
  if (cfg?.format !== 'ssddpm-run' || cfg.model === undefined || cfg.training === undefined) throw new RunError('not an ssddpm run configuration (format/version missing)');
  if (cfg.version === 2) return raw as RunConfig;
  if (cfg.version !== 1) throw new RunError(`run configuration version ${String(cfg.version)} is newer than this ssddpm understands (2)`);
  const { numStates, cosinePower, ...model } = cfg.model;
  return { ...(cfg as object), version: 2, model: { ...model, schedule: { kind: 'cosine', numTimesteps: numStates, power: cosinePower } } } as RunConfig;
}

export class RunError extends Error {
  override name = 'RunError';
}

export const CONFIG_FILE = 'config.json';
export const LOG_FILE = 'train.jsonl';
export const CHECKPOINT_DIR = 'checkpoints';

export function configPath(dir: string): string {
  return join(dir, CONFIG_FILE);
}

export function logPath(dir: string): string {
  return join(dir, LOG_FILE);
}

export function epochCheckpointPath(dir: string, epoch: number): string {
  return join(dir, CHECKPOINT_DIR, `epoch-${String(epoch).padStart(4, '0')}.safetensors`);
}

/** The rolling mid-epoch checkpoint (written every `checkpointEvery` steps, replaced each time). */
export function stepCheckpointPath(dir: string): string {
  return join(dir, CHECKPOINT_DIR, 'latest-step.safetensors');
}

export function writeRunConfig(dir: string, config: RunConfig): void {
  writeFileAtomic(configPath(dir), `${JSON.stringify(config, null, 2)}\n`);
}

/** Reads and checks a run folder's config.json. */
export function readRunConfig(dir: string): RunConfig {
  const path = configPath(dir);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new RunError(`${dir}: no such run folder`);
  if (!existsSync(path)) throw new RunError(`${dir}: not a run folder (no ${CONFIG_FILE})`);
  const text = readInputFile(path, (m) => new RunError(`${path}: ${m}`), 1 << 20).toString('utf8');
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new RunError(`${path}: not valid JSON (${(err as Error).message})`);
  }
  let cfg: RunConfig;
  try {
    cfg = migrateRunConfig(raw);
  } catch (err) {
    throw new RunError(`${path}: ${(err as Error).message}`);
  }
  const m = cfg.model;
  const problem =
    !isModelKind(m.kind) ? `model.kind ${JSON.stringify(m.kind)} is not one of baseline, small, upscaler` :
    !isDatasetName(m.dataset) ? `model.dataset ${JSON.stringify(m.dataset)} is not a known dataset` :
    !(m.imageSize > 0) ? 'model.imageSize is missing or not positive' :
    !(m.normalization?.std > 0) ? 'model.normalization is missing or its std is not positive' :
    typeof m.unet !== 'object' || m.unet === null ? 'model.unet is missing' :
    typeof cfg.training !== 'object' || cfg.training === null ? 'training is missing' :
    undefined;
  if (problem !== undefined) throw new RunError(`${path}: malformed run configuration: ${problem}`);
  try {
    checkScheduleConfig(m.schedule);
  } catch (err) {
    throw new RunError(`${path}: ${(err as Error).message}`);
  }
  return cfg;
}

/**
 * The checkpoint to resume from or sample with: the newest by step among the epoch checkpoints and the
 * rolling step checkpoint; undefined when there is none.
 */
export function latestCheckpoint(dir: string): { path: string; step: number } | undefined {
  const folder = join(dir, CHECKPOINT_DIR);
  if (!existsSync(folder)) return undefined;
  let best: { path: string; step: number } | undefined;
  for (const name of readdirSync(folder)) {
    if (!name.endsWith('.safetensors') || name.startsWith('.')) continue;
    const path = join(folder, name);
    const step = checkpointStep(path);
    if (step !== undefined && (best === undefined || step > best.step)) best = { path, step };
  }
  return best;
}

/**
 * Why a run folder has no checkpoint to use (for messages): it holds none yet, or only unreadable ones.
 */
export const NO_CHECKPOINT_YET = 'it holds no checkpoint yet';

export function noCheckpointReason(dir: string): string {
  const folder = join(dir, CHECKPOINT_DIR);
  const files = existsSync(folder) ? readdirSync(folder).filter((n) => n.endsWith('.safetensors') && !n.startsWith('.')) : [];
  if (files.length === 0) return NO_CHECKPOINT_YET;
  return `its checkpoint${files.length === 1 ? '' : 's'} (${files.join(', ')}) cannot be read: truncated or not a checkpoint`;
}

// The trainer's metadata in a checkpoint's header ({ config, step, ... }), read without loading its tensors;
// undefined when the header cannot be read.
function checkpointMetadata(path: string): { config?: unknown; step?: number } | undefined {
  let fd = -1;
  try {
    if (!statSync(path).isFile()) return undefined;
    fd = openSync(path, 'r');
    const prefix = Buffer.alloc(8);
    if (readSync(fd, prefix, 0, 8, 0) !== 8) return undefined;
    const n = Number(prefix.readBigUInt64LE(0));
    if (n > 100_000_000) return undefined;
    const text = Buffer.alloc(n);
    if (readSync(fd, text, 0, n, 8) !== n) return undefined;
    const header = JSON.parse(text.toString('utf8')) as { __metadata__?: { metadata?: string } };
    const meta = JSON.parse(header.__metadata__?.metadata ?? '{}') as unknown;
    return typeof meta === 'object' && meta !== null ? meta : undefined;
  } catch {
    return undefined;
  } finally {
    if (fd >= 0) closeSync(fd);
  }
}

// The step recorded in a checkpoint's header.
function checkpointStep(path: string): number | undefined {
  const step = checkpointMetadata(path)?.step;
  return typeof step === 'number' ? step : undefined;
}

const describeModel = (m: DiffusionModelConfig) =>
  `${m.kind} model (${m.dataset} ${m.imageSize}×${m.imageSize}, T=${m.schedule.numTimesteps}, ${m.unet.inChannels} input channel${m.unet.inChannels === 1 ? '' : 's'})`;

/**
 * Refuses a checkpoint whose recorded model differs from the run's (one copied from another run: the weights
 * may even fit, e.g. a 14×14 model's in a 28×28 run, and give wrong results silently).
 */
export function checkCheckpointModel(path: string, config: RunConfig): void {
  const recorded = checkpointMetadata(path)?.config;
  if (recorded === undefined) return;
  let saved: DiffusionModelConfig;
  try {
    saved = migrateRunConfig(recorded).model;
  } catch {
    return;
  }
  const m = config.model;
  const key = (x: DiffusionModelConfig) =>
    JSON.stringify([x.kind, x.dataset, x.imageSize, x.schedule.kind, x.schedule.numTimesteps, x.schedule.power ?? null, x.lowResSize ?? null, x.unet]);
  if (key(saved) !== key(m)) {
    throw new RunError(`${path} holds ${/^[aeiou]/.test(saved.kind) ? 'an' : 'a'} ${describeModel(saved)}, not this run's ${describeModel(m)}: it comes from another run`);
  }
}
