// The training log of a run folder (train.jsonl): one line per step ({step, epoch, loss}) and per epoch
// ({epoch, meanLoss, seconds}); what a resumed run keeps of it, and a finished run's summary.
import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../io/atomic.ts';
import { CHECKPOINT_DIR, logPath } from '../pipelines/run-dir.ts';

/**
 * Drops log lines past the resumed checkpoint (steps after `step`, summaries of epochs after `epochs`
 * completed ones, a line torn by a crash), so the log reads as one uninterrupted run. Returns the losses of
 * the kept steps of the unfinished epoch, in order.
 */
export function truncateLog(dir: string, step: number, epochs: number): number[] {
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

/**
 * Removes what a killed process left of its atomic writes (`.tmp-<name>-<pid>-…`, see writeFileAtomic) in the
 * run folder and its checkpoints: the files they were to replace are intact.
 */
export function removeTemporaries(dir: string): void {
  for (const folder of [dir, join(dir, CHECKPOINT_DIR)]) {
    if (!existsSync(folder)) continue;
    for (const name of readdirSync(folder)) if (name.startsWith('.tmp-')) rmSync(join(folder, name), { force: true });
  }
}

/** A run's training time (the sum of its epochs' logged seconds) and its last step's loss. */
export function readLogSummary(dir: string): { seconds: number; finalLoss: number } {
  let seconds = 0;
  let finalLoss = Number.NaN;
  const path = logPath(dir);
  if (!existsSync(path)) return { seconds, finalLoss };
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (line.trim() === '') continue;
    const entry = JSON.parse(line) as { loss?: number; seconds?: number };
    if (entry.seconds !== undefined) seconds += entry.seconds;
    if (entry.loss !== undefined) finalLoss = entry.loss;
  }
  return { seconds, finalLoss };
}
