// The trainings of a protocol: a run folder is reused when it holds a finished run of exactly the configuration
// the protocol asks for, continued when it is unfinished, trained when missing, and refused (with the settings
// that differ) when it is another run: a run folder is its own record of how it was made.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { DatasetName } from '../data/datasets.ts';
import { RunError, configPath, epochCheckpointPath, latestCheckpoint, readRunConfig, type RunConfig } from '../pipelines/run-dir.ts';
import { readLogSummary } from '../training/run-log.ts';
import { trainOrContinue, type TrainProgress } from '../training/train-diffusion.ts';
import { newRunConfig, runSettings, settingDifferences } from '../training/training-config.ts';
import type { ProtocolPreset, TrainingSpec } from './protocol.ts';
import { canonicalJson, contentHash, sha256 } from '../io/content-hash.ts';

export interface RunLocation {
  dir: string;
  /** Content hash of the run: its configuration and the checkpoint sampling loads. */
  hash: string;
  /** Whether this call trained (or continued) it, and why. */
  trained: boolean;
  reason?: string;
  finalLoss: number;
  seconds: number;
}

function differences(found: RunConfig, wanted: RunConfig): string[] {
  const out = settingDifferences(found, runSettings(wanted), 'the protocol');
  if (found.training.epochs > wanted.training.epochs) out.push(`epochs ${found.training.epochs} (the protocol: ${wanted.training.epochs})`);
  return out;
}

export function runHash(dir: string): string {
  const checkpoint = latestCheckpoint(dir);
  if (checkpoint === undefined) throw new RunError(`${dir}: no checkpoint`);
  return sha256(canonicalJson(readRunConfig(dir)), contentHash(checkpoint.path));
}

export interface FindRunOptions {
  spec: TrainingSpec;
  seed: number;
  preset: ProtocolPreset;
  dataset: DatasetName;
  device: string;
  /** Looked in first. */
  runs?: string;
  /** Missing runs train into `<work>/runs`. */
  work: string;
  onProgress?: (p: TrainProgress) => void;
  log?: (line: string) => void;
  /** Train on this many processes (synchronised batch norm: the same training as one process's). */
  nproc?: number;
}

/** The run folder of training `spec` with `seed`, trained or continued as needed. */
export function findRun(o: FindRunOptions): RunLocation {
  const { spec, seed, preset } = o;
  const name = `${spec.name}-${seed}`;
  const { name: _, model, epochsFactor, ema, x0DomainLoss, nStepLoss, ...options } = spec;
  const recipe = Object.fromEntries(Object.entries({ ema, x0DomainLoss, nStepLoss }).filter(([, v]) => v !== undefined));
  const wanted = newRunConfig({
    model,
    dataset: o.dataset,
    ...options,
    training: { epochs: preset.epochs * (epochsFactor ?? 1), seed, perClass: preset.perClass, ...recipe },
  });
  const own = join(o.work, 'runs', name);
  const candidates = [...(o.runs === undefined || resolve(o.runs) === resolve(o.work, 'runs') ? [] : [join(o.runs, name)]), own];
  let dir = candidates.find((d) => existsSync(configPath(d)));
  let reason = 'not trained yet';
  if (dir !== undefined) {
    const found = readRunConfig(dir);
    const diff = differences(found, wanted);
    if (diff.length > 0) throw new RunError(`${dir} is not the protocol's ${name}: ${diff.join(', ')}; move it away or point --runs/--work elsewhere`);
    if (existsSync(epochCheckpointPath(dir, wanted.training.epochs))) {
      return { dir, hash: runHash(dir), trained: false, ...readLogSummary(dir) };
    }
    const last = latestCheckpoint(dir);
    reason = last === undefined ? 'stopped inside its first epoch' : `unfinished (${found.training.epochs < wanted.training.epochs ? `${found.training.epochs} epochs asked, ` : ''}stopped at step ${last.step})`;
  } else {
    dir = own;
  }
  o.log?.(`training (${reason})`);
  trainOrContinue({ out: dir, model, dataset: o.dataset, device: o.device, ...options, training: wanted.training, onProgress: o.onProgress, nproc: o.nproc, syncBatchNorm: true });
  return { dir, hash: runHash(dir), trained: true, reason, ...readLogSummary(dir) };
}
