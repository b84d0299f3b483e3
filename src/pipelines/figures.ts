// The paper's pictures: forward-process strips (Figs. 5-7), sample grids with one label per column
// (Figs. 8-10) and reverse-process strips with each step's x̂0 (Fig. 2).
import { loadDataset } from '../data/datasets.ts';
import { downscale } from '../data/tensor-dataset.ts';
import type { GrayCanvas } from '../images/canvas.ts';
import { sampleGrid, strip, type StripRow } from '../images/grid.ts';
import { Generator } from '../torch/generator.ts';
import { tensor } from '../torch/ops/creation.ts';
import { cat } from '../torch/ops/shape.ts';
import { tidy } from '../torch/scope.ts';
import type { Tensor } from '../torch/tensor.ts';
import type { DiffusionModel } from './diffusion-model.ts';
import type { SamplingOptions } from './sampling-model.ts';
import { pipelineDevice, samplePipeline, type Pipeline } from './pipeline.ts';

export interface FigureOptions {
  seed?: number;
  /** Pixel magnification. */
  scale?: number;
}

/** The most rows a process figure draws (each row is a strip of T + 1 images). */
export const MAX_STRIP_ROWS = 1000;

/** `count` test images taken through q(x_t | x_{t−1}) for t = 0..T−1: one row per image. */
export function forwardProcessFigure(model: DiffusionModel, count: number, opts: FigureOptions = {}): GrayCanvas {
  if (count > MAX_STRIP_ROWS) throw new RangeError(`a figure of ${count} rows is more than ${MAX_STRIP_ROWS}`);
  const { imageSize: size, dataset } = model.config;
  const T = model.numTimesteps;
  const test = loadDataset(dataset, 'test');
  const n = Math.min(count, test.count);
  const generator = new Generator(opts.seed ?? 0);
  const scheduler = model.scheduler();
  try {
    const rows: StripRow[] = tidy(() => {
      const raw = tensor(test.images.subarray(0, n * test.height * test.width), { shape: [n, 1, test.height, test.width] });
      let pixels = raw.float().div_(255);
      if (size !== test.height) pixels = downscale(pixels, size);
      let x = model.toModelSpace(pixels);
      const states = [model.toPixelSpace(x)];
      for (let t = 0; t < T; t++) {
        x = scheduler.forwardStep(x, t, generator);
        states.push(model.toPixelSpace(x));
      }
      return Array.from({ length: n }, (_, i) => ({ label: `#${i}`, images: row(states, i) }));
    });
    return strip(rows, { columnLabels: ['x0', ...Array.from({ length: T }, (_, t) => `${t}`)], scale: opts.scale ?? 2 });
  } finally {
    scheduler.dispose();
  }
}

/** For each label, a row of x_t and a row of the x̂0 predicted at each reverse step. */
export function reverseProcessFigure(model: DiffusionModel, labels: readonly number[], opts: FigureOptions & { clip?: boolean } = {}): GrayCanvas {
  if (2 * labels.length > MAX_STRIP_ROWS) throw new RangeError(`a figure of ${2 * labels.length} rows is more than ${MAX_STRIP_ROWS}`);
  if (model.isUpscaler) throw new Error('draw the reverse process of a baseline or small model; the upscaler needs conditioning images');
  const rows: StripRow[] = tidy(() => {
    const { trajectory } = model.sample(labels, { generator: new Generator(opts.seed ?? 0, model.device), clip: opts.clip ?? false, keepTrajectory: true });
    return labels.flatMap((label, i) => [
      { label: `${label} xt`, images: row(trajectory!.xt, i) },
      { label: `${label} x0`, images: row(trajectory!.predX0, i) },
    ]);
  });
  const steps = model.numTimesteps;
  return strip(rows, { columnLabels: Array.from({ length: steps }, (_, k) => `${steps - 1 - k}`), scale: opts.scale ?? 2 });
}

/** The largest sample grid, and how many of its samples are drawn at once. */
export const MAX_GRID_SAMPLES = 10_000;
const GRID_BATCH = 256;

/** `perLabel` samples of each label, one column per label (row-major). */
export function sampleGridFigure(p: Pipeline, labels: readonly number[], perLabel: number, opts: FigureOptions & Omit<SamplingOptions, 'generator' | 'keepTrajectory'> = {}): GrayCanvas {
  const count = labels.length * perLabel;
  if (count > MAX_GRID_SAMPLES) throw new RangeError(`a grid of ${count} samples is more than ${MAX_GRID_SAMPLES}; write a set with \`ssddpm generate\` for more`);
  const all = Array.from({ length: perLabel }, () => labels).flat();
  const { seed, scale, onStep, ...sampling } = opts;
  const generator = new Generator(seed ?? 0, pipelineDevice(p));
  const batches = Math.ceil(count / GRID_BATCH);
  const images = tidy(() => {
    const parts = Array.from({ length: batches }, (_, k) =>
      samplePipeline(p, all.slice(k * GRID_BATCH, (k + 1) * GRID_BATCH), { ...sampling, generator, onStep: (d, t) => onStep?.(k * t + d, batches * t) }));
    return parts.length === 1 ? parts[0]! : cat(parts, 0);
  });
  try {
    return sampleGrid(images, { columns: labels.length, labels: labels.map(String), scale: scale ?? 2 });
  } finally {
    images.dispose();
  }
}

// Image i of every state, as one [states, 1, H, W] tensor.
function row(states: readonly Tensor[], i: number): Tensor {
  return tidy(() => cat(states.map((s) => s.narrow(0, i, 1)), 0));
}
