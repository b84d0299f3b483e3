// A generated set as a folder: MNIST-format IDX files (`train-images-idx3-ubyte`, `train-labels-idx1-ubyte`) plus
// `generated.json`, which records how it was made and how much of it left the data range before clamping.
import { existsSync, renameSync, rmSync, statSync } from 'node:fs';
import { readInputFile } from '../io/input-file.ts';
import { basename, dirname, join } from 'node:path';
import { nameTheTarget, removeStaleTemporaries, writeFileAtomic } from '../io/atomic.ts';
import { DATASET_NAMES, type DatasetName } from './datasets.ts';
import { DataError } from './idx.ts';
import { writeImageSet, type ImageSet } from './image-set.ts';

/**
 * How much of a generated set its last model put outside the data range [0, 1] before clamping: the share of
 * pixels off by more than half a gray level (which changes a pixel's 8-bit value), and the share of samples with
 * a pixel off by more than 0.1.
 */
export interface OffRange {
  pixels: number;
  samples: number;
}

/** Generated images with their off-range record. */
export interface GeneratedSet extends ImageSet {
  offRange: OffRange;
}

export const GENERATED_INFO_FILE = 'generated.json';

/**
 * Writes a generated set into a temporary folder renamed to `dir` at the end: `dir` is either absent or complete.
 * `info` (how the set was made) goes into generated.json beside the count, size and off-range record.
 */
export function writeGeneratedSet(dir: string, set: ImageSet | GeneratedSet, info: Record<string, unknown>): void {
  if (existsSync(dir)) {
    throw new DataError(statSync(dir).isDirectory() ? `${dir} already exists; remove it or choose another --out` : `${dir} exists and is not a folder`);
  }
  const tmp = join(dirname(dir), `.tmp-${basename(dir)}-${process.pid}`);
  removeStaleTemporaries(dir);
  rmSync(tmp, { recursive: true, force: true });
  try {
    writeImageSet(tmp, set, 'train');
    const offRange = 'offRange' in set ? { offRange: set.offRange } : {};
    writeFileAtomic(join(tmp, GENERATED_INFO_FILE), `${JSON.stringify({ ...info, count: set.count, size: set.height, ...offRange }, null, 2)}\n`);
    renameSync(tmp, dir);
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw nameTheTarget(err, tmp, dir);
  }
}

// A set folder's generated.json, or undefined where it has none.
function readGeneratedInfo(dir: string): { offRange?: OffRange; dataset?: unknown } | undefined {
  const file = join(dir, GENERATED_INFO_FILE);
  if (!existsSync(file)) return undefined;
  try {
    return JSON.parse(readInputFile(file, (m) => new DataError(`${file}: ${m}`), 1 << 20).toString('utf8')) as { offRange?: OffRange; dataset?: unknown };
  } catch (err) {
    throw err instanceof SyntaxError ? new DataError(`${file}: not valid JSON (${err.message}); write the set again`) : err;
  }
}

/** The dataset whose models generated the set, as its generated.json records; undefined where it does not. */
export function generatedSetDataset(dir: string): DatasetName | undefined {
  const dataset = readGeneratedInfo(dir)?.dataset;
  return (DATASET_NAMES as readonly unknown[]).includes(dataset) ? (dataset as DatasetName) : undefined;
}

/** The mean off-range shares of generated sets (their generated.json), or undefined when any set lacks them. */
export function readOffRange(dirs: readonly string[]): OffRange | undefined {
  const all = dirs.map((d) => readGeneratedInfo(d)?.offRange);
  if (all.length === 0 || all.some((o) => o === undefined)) return undefined;
  const mean = (k: keyof OffRange) => all.reduce((a, o) => a + o![k], 0) / all.length;
  return { pixels: mean('pixels'), samples: mean('samples') };
}
