// Sharing a trained model: a copy of a run folder with only what sampling needs — config.json, the
// training log and the newest checkpoint (with its moving-average weights, if any) without optimizer state.
import { copyFileSync, existsSync, renameSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { nameTheTarget, removeStaleTemporaries } from '../io/atomic.ts';
import { loadCheckpoint, saveCheckpoint } from '../io/checkpoint.ts';
import { withFolderLock } from '../io/lock.ts';
import { dispose } from '../torch/scope.ts';
import { loadModel } from './pipeline.ts';
import { RunError, configPath, epochCheckpointPath, latestCheckpoint, logPath } from './run-dir.ts';

/** Writes the export into a temporary folder renamed to `out` at the end; `out` must not exist. */
export function exportRun(runDir: string, out: string): { checkpoint: string } {
  return withFolderLock(out, 'export folder', () => exportUnlocked(runDir, out));
}

function exportUnlocked(runDir: string, out: string): { checkpoint: string } {
  if (existsSync(out)) throw new RunError(`${out} already exists; choose another --out`);
  const latest = latestCheckpoint(runDir);
  if (latest === undefined) throw new RunError(`${runDir}: no checkpoint to export`);
  const model = loadModel(runDir, { checkpoint: latest.path, ema: false });
  const saved = loadCheckpoint(latest.path);
  dispose([saved.tensors, [...(saved.optimizerState?.state.values() ?? [])]]);
  const ema = saved.ema;
  const epoch = typeof saved.metadata.epoch === 'number' ? saved.metadata.epoch : 0;
  const tmp = join(dirname(out), `.tmp-${basename(out)}-${process.pid}`);
  removeStaleTemporaries(out);
  rmSync(tmp, { recursive: true, force: true });
  try {
    const checkpoint = basename(latest.path).startsWith('epoch-') ? epochCheckpointPath(tmp, epoch) : join(tmp, 'checkpoints', basename(latest.path));
    saveCheckpoint(checkpoint, { model: model.unet, ema, metadata: saved.metadata });
    copyFileSync(configPath(runDir), configPath(tmp));
    if (existsSync(logPath(runDir))) copyFileSync(logPath(runDir), logPath(tmp));
    renameSync(tmp, out);
    return { checkpoint: join(out, 'checkpoints', basename(checkpoint)) };
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw nameTheTarget(err, tmp, out);
  } finally {
    model.dispose();
    dispose(ema);
  }
}
