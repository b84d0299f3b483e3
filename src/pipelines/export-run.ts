// Sharing a trained model: a copy of a run folder with only what sampling needs — config.json, the
// training log and the newest checkpoint (with its moving-average weights, if any) without optimizer state;
// or, as ONNX, config.json beside model.onnx, which samples with one call per step on ONNX Runtime anywhere.
import { copyFileSync, existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative } from 'node:path';
import { nameTheTarget, removeStaleTemporaries } from '../io/atomic.ts';
import { loadCheckpoint, saveCheckpoint } from '../io/checkpoint.ts';
import { withFolderLock } from '../io/lock.ts';
import { dispose } from '../torch/scope.ts';
import { ONNX_MODEL_FILE } from './onnx-export.ts';
import { loadModel, runToOnnx } from './pipeline.ts';
import { RunError, configPath, epochCheckpointPath, latestCheckpoint, logPath } from './run-dir.ts';

export const EXPORT_FORMATS = ['safetensors', 'onnx'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

export interface ExportOptions {
  format?: ExportFormat;
  /** ONNX: the run's moving-average weights where it kept them (default true), else the trained ones. */
  ema?: boolean;
}

/**
 * Writes the export into a temporary folder renamed to `out` at the end; `out` must not exist. Returns the
 * weights file written.
 */
export function exportRun(runDir: string, out: string, opts: ExportOptions = {}): { file: string } {
  return withFolderLock(out, 'export folder', () => {
    if (existsSync(out)) throw new RunError(`${out} already exists; choose another --out`);
    const latest = latestCheckpoint(runDir);
    if (latest === undefined) throw new RunError(`${runDir}: no checkpoint to export`);
    const tmp = join(dirname(out), `.tmp-${basename(out)}-${process.pid}`);
    removeStaleTemporaries(out);
    rmSync(tmp, { recursive: true, force: true });
    try {
      const file = (opts.format ?? 'safetensors') === 'onnx' ? writeOnnx(runDir, latest.path, tmp, opts.ema) : writeCheckpoint(runDir, latest.path, tmp);
      copyFileSync(configPath(runDir), configPath(tmp));
      if (existsSync(logPath(runDir))) copyFileSync(logPath(runDir), logPath(tmp));
      renameSync(tmp, out);
      return { file: join(out, file) };
    } catch (err) {
      rmSync(tmp, { recursive: true, force: true });
      throw nameTheTarget(err, tmp, out);
    }
  });
}

function writeOnnx(runDir: string, checkpoint: string, tmp: string, ema: boolean | undefined): string {
  mkdirSync(tmp, { recursive: true });
  writeFileSync(join(tmp, ONNX_MODEL_FILE), runToOnnx(runDir, { checkpoint, ema }));
  return ONNX_MODEL_FILE;
}

// The newest checkpoint without optimizer state; the moving average stays beside the weights.
function writeCheckpoint(runDir: string, latestPath: string, tmp: string): string {
  const model = loadModel(runDir, { checkpoint: latestPath, ema: false });
  const saved = loadCheckpoint(latestPath);
  dispose([saved.tensors, [...(saved.optimizerState?.state.values() ?? [])]]);
  const ema = saved.ema;
  const epoch = typeof saved.metadata.epoch === 'number' ? saved.metadata.epoch : 0;
  try {
    const checkpoint = basename(latestPath).startsWith('epoch-') ? epochCheckpointPath(tmp, epoch) : join(tmp, 'checkpoints', basename(latestPath));
    saveCheckpoint(checkpoint, { model: model.unet, ema, metadata: saved.metadata });
    return relative(tmp, checkpoint);
  } finally {
    model.dispose();
    dispose(ema);
  }
}
