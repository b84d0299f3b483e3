// A run folder holds everything needed to continue or use a training run:
//   config.json           the full model and training configuration
//   train.jsonl           one JSON line per step ({step, epoch, loss}) and per epoch ({epoch, meanLoss, seconds})
//   checkpoints/          epoch-0001.safetensors … (weights, optimizer state, RNG state, step, epoch)
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../io/atomic.ts';
import { isDatasetName } from '../data/datasets.ts';
import { isModelKind, type RunConfig } from './model-config.ts';

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

// The step recorded in a checkpoint's header, read without loading its tensors.
function checkpointStep(path: string): number | undefined {
  try {
    const fd = readFileSync(path);
    const n = Number(fd.readBigUInt64LE(0));
    const header = JSON.parse(fd.subarray(8, 8 + n).toString('utf8')) as { __metadata__?: { metadata?: string } };
    const meta = JSON.parse(header.__metadata__?.metadata ?? '{}') as { step?: number };
    return typeof meta.step === 'number' ? meta.step : undefined;
  } catch {
    return undefined;
  }
}
