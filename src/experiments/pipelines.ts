// The ways the paper turns trained models into 28×28 samples: one model alone (baseline), the small model's
// samples upscaled bilinearly ("small upscaled"), and small → ×2 → upscaler ("cascaded").
import { rmSync, renameSync, existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import type { ImageSet } from '../data/image-set.ts';
import { writeImageSet } from '../data/image-set.ts';
import { upscale } from '../data/tensor-dataset.ts';
import { restoreCheckpoint } from '../io/checkpoint.ts';
import { writeFileAtomic } from '../io/atomic.ts';
import type { OffRange } from '../report/results.ts';
import { Generator } from '../torch/generator.ts';
import { amax } from '../torch/ops/reduction.ts';
import { gt } from '../torch/ops/pointwise.ts';
import { tidy } from '../torch/scope.ts';
import type { Tensor } from '../torch/tensor.ts';
import { DiffusionModel, type SamplingOptions } from './diffusion-model.ts';
import { RunError, checkCheckpointModel, latestCheckpoint, noCheckpointReason, readRunConfig } from './run-dir.ts';

/**
 * Loads a run's model from its newest checkpoint (or `checkpoint`), in evaluation mode: the moving average of
 * its weights when the run kept one (training.ema), unless `ema` is false.
 */
export function loadModel(runDir: string, opts: { checkpoint?: string; device?: string; ema?: boolean } = {}): DiffusionModel {
  const config = readRunConfig(runDir);
  const path = opts.checkpoint ?? latestCheckpoint(runDir)?.path;
  if (path === undefined) throw new RunError(`${runDir}: no checkpoint to load: ${noCheckpointReason(runDir)}`);
  checkCheckpointModel(path, config);
  const model = new DiffusionModel(config.model, opts.device);
  try {
    const weights = config.training.ema !== undefined && opts.ema !== false ? 'ema' : 'model';
    restoreCheckpoint(path, { model: model.unet, weights });
  } catch (err) {
    model.dispose();
    throw err;
  }
  model.unet.eval();
  return model;
}

export type Pipeline =
  | { kind: 'single'; model: DiffusionModel }
  | { kind: 'upscaled'; model: DiffusionModel; size: number }
  | { kind: 'cascade'; small: DiffusionModel; upscaler: DiffusionModel };

export interface PipelineSpec {
  /** One run folder (baseline, or small with `upscale`). */
  run?: string;
  /** Small then upscaler run folders. */
  cascade?: readonly [string, string];
  /** Upscale a small model's samples ×2 bilinearly. */
  upscale?: boolean;
  device?: string;
  /** Use the runs' moving-average weights where they kept one (default true). */
  ema?: boolean;
}

export function loadPipeline(spec: PipelineSpec): Pipeline {
  if ((spec.run === undefined) === (spec.cascade === undefined)) throw new RunError('give either one run folder or a cascade (small,upscaler)');
  if (spec.cascade !== undefined) {
    const small = loadModel(spec.cascade[0], { device: spec.device, ema: spec.ema });
    const upscaler = loadModel(spec.cascade[1], { device: spec.device, ema: spec.ema });
    const problem =
      small.isUpscaler ? `${spec.cascade[0]} is an upscaler; the cascade starts from a small model` :
      !upscaler.isUpscaler ? `${spec.cascade[1]} is a ${upscaler.config.kind} model, not an upscaler` :
      upscaler.config.lowResSize !== small.config.imageSize ? `the upscaler expects ${upscaler.config.lowResSize}×${upscaler.config.lowResSize} inputs but the small model makes ${small.config.imageSize}×${small.config.imageSize}` :
      undefined;
    if (problem !== undefined) {
      small.dispose();
      upscaler.dispose();
      throw new RunError(problem);
    }
    return { kind: 'cascade', small, upscaler };
  }
  const model = loadModel(spec.run!, { device: spec.device, ema: spec.ema });
  if (model.isUpscaler) {
    model.dispose();
    throw new RunError(`${spec.run} is an upscaler: sample it in a cascade (--cascade small,upscaler)`);
  }
  if (spec.upscale) return { kind: 'upscaled', model, size: 2 * model.config.imageSize };
  return { kind: 'single', model };
}

export function pipelineImageSize(p: Pipeline): number {
  return p.kind === 'single' ? p.model.config.imageSize : p.kind === 'upscaled' ? p.size : p.upscaler.config.imageSize;
}

/** The device the pipeline's models live on. */
export function pipelineDevice(p: Pipeline): string {
  return p.kind === 'cascade' ? p.small.device : p.model.device;
}

/** Denoising steps per sample (network evaluations at batch size 1) under the given sampling options. */
export function pipelineSteps(p: Pipeline, opts: Pick<SamplingOptions, 'sampler' | 'steps'> = {}): number {
  const steps = (m: DiffusionModel) => (opts.sampler === 'ddim' ? Math.min(opts.steps ?? m.config.numStates, m.config.numStates) : m.config.numStates);
  return p.kind === 'cascade' ? steps(p.small) + steps(p.upscaler) : steps(p.model);
}

export function disposePipeline(p: Pipeline): void {
  if (p.kind === 'cascade') {
    p.small.dispose();
    p.upscaler.dispose();
  } else {
    p.model.dispose();
  }
}

/** Samples one image per label, [N, 1, S, S] in pixel space clamped to [0, 1]. */
export function samplePipeline(p: Pipeline, labels: readonly number[], opts: SamplingOptions & { onRaw?: (x: Tensor) => void } = {}): Tensor {
  const total = pipelineSteps(p, opts);
  const last = (x: Tensor) => {
    opts.onRaw?.(x);
    return x.clamp_(0, 1);
  };
  return tidy(() => {
    if (p.kind === 'cascade') {
      const low = p.small.sample(labels, { ...opts, conditioningLevel: undefined, keepTrajectory: false, onStep: (d) => opts.onStep?.(d, total) }).sample.clamp_(0, 1);
      const offset = pipelineSteps({ kind: 'single', model: p.small }, opts);
      return last(p.upscaler.sample(labels, { ...opts, keepTrajectory: false, lowRes: low, onStep: (d) => opts.onStep?.(offset + d, total) }).sample);
    }
    const x = last(p.model.sample(labels, { ...opts, keepTrajectory: false }).sample);
    return p.kind === 'upscaled' ? upscale(x, p.size).clamp_(0, 1) : x;
  });
}

/**
 * Labels cycling through the classes from `offset`, `count` of them: balanced up to one image per class.
 * Offsetting the sets of different runs spreads the extra images over different classes.
 */
export function balancedLabels(count: number, numClasses = 10, offset = 0): number[] {
  return Array.from({ length: count }, (_, i) => (i + offset) % numClasses);
}

export interface GenerateOptions extends SamplingOptions {
  count: number;
  seed: number;
  batchSize?: number;
  /** First label of the cycle (see balancedLabels). */
  labelOffset?: number;
  onProgress?: (done: number, total: number) => void;
}

/**
 * A generated set and how much of it the last model put outside the data range before clamping (see OffRange:
 * half a gray level changes a pixel's 8-bit value). Constrained sampling (clip, dynamic thresholding) ends inside
 * the range by construction; for "small upscaled" it is measured on the small model's 14×14 samples.
 */
export interface GeneratedSet extends ImageSet {
  offRange: OffRange;
}

const HALF_GRAY_LEVEL = 0.5 / 255;
const SAMPLE_OFF_RANGE = 0.1;

/** A generated set of `count` images, balanced over labels, as 8-bit images. */
export function generateSet(p: Pipeline, opts: GenerateOptions): GeneratedSet {
  const batchSize = opts.batchSize ?? 256;
  if (!Number.isInteger(opts.count) || opts.count < 1) throw new RangeError(`count must be a positive integer, got ${opts.count}`);
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`batch size must be a positive integer, got ${batchSize}`);
  const size = pipelineImageSize(p);
  const labels = balancedLabels(opts.count, 10, opts.labelOffset ?? 0);
  const images = new Uint8Array(opts.count * size * size);
  const generator = opts.generator ?? new Generator(opts.seed, pipelineDevice(p));
  let offPixels = 0;
  let rawPixels = 0;
  let offSamples = 0;
  const onRaw = (x: Tensor) => tidy(() => {
    const distance = x.clamp(0, 1).sub(x).abs();
    offPixels += gt(distance, HALF_GRAY_LEVEL).sum().item();
    offSamples += gt(amax(distance.flatten(1), 1), SAMPLE_OFF_RANGE).sum().item();
    rawPixels += x.numel;
  });
  for (let start = 0; start < opts.count; start += batchSize) {
    const batch = labels.slice(start, start + batchSize);
    const pixels = tidy(() => samplePipeline(p, batch, { ...opts, generator, onRaw }).mul(255).round().to({ dtype: 'uint8' }).data() as Uint8Array);
    images.set(pixels, start * size * size);
    opts.onProgress?.(Math.min(start + batchSize, opts.count), opts.count);
  }
  return {
    images, labels: Uint8Array.from(labels), count: opts.count, height: size, width: size, numClasses: 10,
    offRange: { pixels: offPixels / rawPixels, samples: offSamples / opts.count },
  };
}

/**
 * Writes a generated set as MNIST-format IDX files (`train-images-idx3-ubyte`, `train-labels-idx1-ubyte`)
 * plus `generated.json`, into a temporary folder renamed to `dir` at the end: `dir` is either absent or complete.
 */
export function writeGeneratedSet(dir: string, set: ImageSet | GeneratedSet, info: Record<string, unknown>): void {
  if (existsSync(dir)) {
    throw new RunError(statSync(dir).isDirectory() ? `${dir} already exists; remove it or choose another --out` : `${dir} exists and is not a folder`);
  }
  const tmp = join(dirname(dir), `.tmp-${basename(dir)}-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  try {
    writeImageSet(tmp, set, 'train');
    const offRange = 'offRange' in set ? { offRange: set.offRange } : {};
    writeFileAtomic(join(tmp, 'generated.json'), `${JSON.stringify({ ...info, count: set.count, size: set.height, ...offRange }, null, 2)}\n`);
    renameSync(tmp, dir);
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
}

/** The mean off-range shares of generated sets (their generated.json), or undefined when any set lacks them. */
export function readOffRange(dirs: readonly string[]): OffRange | undefined {
  const all = dirs.map((d) => {
    const file = join(d, 'generated.json');
    return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as { offRange?: OffRange }).offRange : undefined;
  });
  if (all.length === 0 || all.some((o) => o === undefined)) return undefined;
  const mean = (k: keyof OffRange) => all.reduce((a, o) => a + o![k], 0) / all.length;
  return { pixels: mean('pixels'), samples: mean('samples') };
}
