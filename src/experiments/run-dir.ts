// A run folder holds everything needed to continue or use a training run:
//   config.json           the full model and training configuration
//   train.jsonl           one JSON line per step ({step, epoch, loss}) and per epoch ({epoch, meanLoss, seconds})
//   checkpoints/          epoch-0001.safetensors … (weights, optimizer state, RNG state, step, epoch)
import { closeSync, existsSync, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../io/atomic.ts';
import { isDatasetName } from '../data/datasets.ts';
import { isModelKind, type DiffusionModelConfig, type RunConfig } from './model-config.ts';

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
  let cfg: RunConfig;
  try {
    cfg = JSON.parse(readFileSync(path, 'utf8')) as RunConfig;
  } catch (err) {
    throw new RunError(`${path}: not valid JSON (${(err as Error).message})`);
  }
  const m = cfg?.model;
  if (cfg?.format !== 'ssddpm-run' || cfg.version !== 1 || m === undefined || cfg.training === undefined) {
    throw new RunError(`${path}: not an ssddpm run configuration (format/version missing)`);
  }
  if (!isModelKind(m.kind) || !isDatasetName(m.dataset) || !(m.imageSize > 0) || !(m.numStates > 0) || !(m.normalization?.std > 0)) {
    throw new RunError(`${path}: malformed model configuration`);
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
export function noCheckpointReason(dir: string): string {
  const folder = join(dir, CHECKPOINT_DIR);
  const files = existsSync(folder) ? readdirSync(folder).filter((n) => n.endsWith('.safetensors') && !n.startsWith('.')) : [];
  if (files.length === 0) return 'it holds no checkpoint yet';
  return `its checkpoint${files.length === 1 ? '' : 's'} (${files.join(', ')}) cannot be read: truncated or not a checkpoint`;
}

// The trainer's metadata in a checkpoint's header ({ config, step, ... }), read without loading its tensors;
// undefined when the header cannot be read.
function checkpointMetadata(path: string): { config?: RunConfig; step?: number } | undefined {
  let fd = -1;
  try {
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
  `${m.kind} model (${m.dataset} ${m.imageSize}×${m.imageSize}, T=${m.numStates}, ${m.unet.inChannels} input channel${m.unet.inChannels === 1 ? '' : 's'})`;

/**
 * Refuses a checkpoint whose recorded model differs from the run's (one copied from another run: the weights
 * may even fit, e.g. a 14×14 model's in a 28×28 run, and give wrong results silently).
 */
export function checkCheckpointModel(path: string, config: RunConfig): void {
  const saved = checkpointMetadata(path)?.config?.model;
  if (saved === undefined) return;
  const m = config.model;
  const key = (x: DiffusionModelConfig) =>
    JSON.stringify([x.kind, x.dataset, x.imageSize, x.numStates, x.cosinePower, x.lowResSize ?? null, x.unet]);
  if (key(saved) !== key(m)) {
    throw new RunError(`${path} holds ${/^[aeiou]/.test(saved.kind) ? 'an' : 'a'} ${describeModel(saved)}, not this run's ${describeModel(m)}: it comes from another run`);
  }
}
