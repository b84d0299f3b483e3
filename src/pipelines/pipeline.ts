// The ways trained models become samples: a chain of models — a generator, then upscalers each conditioned on
// the previous model's samples — optionally followed by a bilinear upscale. The paper's three pipelines are
// chains of its models (paper-pipelines.ts).
import { upscale } from '../data/tensor-dataset.ts';
import { restoreCheckpoint } from '../io/checkpoint.ts';
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

export interface Pipeline {
  /** A generator, then upscalers: model i > 0 is conditioned on model i − 1's samples. */
  models: readonly DiffusionModel[];
  /** Upscale the last model's samples bilinearly to this size. */
  upscaleTo?: number;
}

export interface PipelineSpec {
  /** Run folders: one model (baseline or small), or a cascade (small, then upscaler). */
  runs: readonly string[];
  /** Upscale a single small model's samples ×2 bilinearly ("small upscaled"). */
  upscale?: boolean;
  device?: string;
  /** Use the runs' moving-average weights where they kept one (default true). */
  ema?: boolean;
}

const article = (word: string) => (/^[aeiou]/.test(word) ? 'an' : 'a');

export function loadPipeline(spec: PipelineSpec): Pipeline {
  const { runs } = spec;
  if (runs.length === 0) throw new RunError('give either one run folder or a cascade (small,upscaler)');
  if (spec.upscale && runs.length > 1) throw new RunError('upscaling (--upscale) is for a single small model; a cascade ends with its upscaler');
  const models: DiffusionModel[] = [];
  try {
    for (const [i, run] of runs.entries()) {
      const m = loadModel(run, { device: spec.device, ema: spec.ema });
      models.push(m);
      const prev = models[i - 1];
      const problem =
        i === 0 && m.isUpscaler ? (runs.length === 1 ? `${run} is an upscaler: sample it in a cascade (--cascade small,upscaler)` : `${run} is an upscaler; the cascade starts from a small model`) :
        prev !== undefined && !m.isUpscaler ? `${run} is ${article(m.config.kind)} ${m.config.kind} model, not an upscaler` :
        prev !== undefined && m.config.lowResSize !== prev.config.imageSize ? `the upscaler expects ${m.config.lowResSize}×${m.config.lowResSize} inputs but ${runs[i - 1]} makes ${prev.config.imageSize}×${prev.config.imageSize}` :
        undefined;
      if (problem !== undefined) throw new RunError(problem);
    }
  } catch (err) {
    for (const m of models) m.dispose();
    throw err;
  }
  return spec.upscale ? { models, upscaleTo: 2 * models[0]!.config.imageSize } : { models };
}

export function pipelineImageSize(p: Pipeline): number {
  return p.upscaleTo ?? p.models[p.models.length - 1]!.config.imageSize;
}

/** The device the pipeline's models live on. */
export function pipelineDevice(p: Pipeline): string {
  return p.models[0]!.device;
}

// Network evaluations of one model per sample.
function modelSteps(m: DiffusionModel, opts: Pick<SamplingOptions, 'sampler' | 'steps'>): number {
  return opts.sampler === 'ddim' ? Math.min(opts.steps ?? m.numTimesteps, m.numTimesteps) : m.numTimesteps;
}

/** Denoising steps per sample (network evaluations at batch size 1) under the given sampling options. */
export function pipelineSteps(p: Pipeline, opts: Pick<SamplingOptions, 'sampler' | 'steps'> = {}): number {
  return p.models.reduce((n, m) => n + modelSteps(m, opts), 0);
}

export function disposePipeline(p: Pipeline): void {
  for (const m of p.models) m.dispose();
}

/**
 * Samples one image per label, [N, 1, S, S] in pixel space clamped to [0, 1]. `onRaw` sees the last model's
 * samples before clamping. The conditioning level goes to the upscalers.
 */
export function samplePipeline(p: Pipeline, labels: readonly number[], opts: SamplingOptions & { onRaw?: (x: Tensor) => void } = {}): Tensor {
  if ((opts.conditioningLevel ?? 0) > 0 && !p.models.some((m) => m.augmentsConditioning)) {
    throw new RangeError('a conditioning level needs an upscaler trained with conditioning augmentation');
  }
  const total = pipelineSteps(p, opts);
  return tidy(() => {
    let x: Tensor | undefined;
    let done = 0;
    for (const [i, m] of p.models.entries()) {
      const offset = done;
      const out = m.sample(labels, {
        ...opts,
        conditioningLevel: m.isUpscaler ? opts.conditioningLevel : undefined,
        keepTrajectory: false,
        lowRes: x,
        onStep: (d) => opts.onStep?.(offset + d, total),
      }).sample;
      done += modelSteps(m, opts);
      if (i === p.models.length - 1) opts.onRaw?.(out);
      x = out.clamp_(0, 1);
    }
    return p.upscaleTo === undefined ? x! : upscale(x!, p.upscaleTo).clamp_(0, 1);
  });
}
