// The ways trained models become samples: a chain of models — a generator, then upscalers each conditioned on
// the previous model's samples — optionally followed by a bilinear upscale. The paper's three pipelines are
// chains of its models (paper-pipelines.ts).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { upscale } from '../data/tensor-dataset.ts';
import { canonicalJson } from '../io/content-hash.ts';
import { restoreCheckpoint } from '../io/checkpoint.ts';
import { onnxRuntimeAvailable } from '../onnx/runtime.ts';
import { getNumThreads } from '../torch/runtime.ts';
import { tidy } from '../torch/scope.ts';
import type { Tensor } from '../torch/tensor.ts';
import { DiffusionModel } from './diffusion-model.ts';
import { OnnxDiffusionModel } from './onnx-diffusion-model.ts';
import { ONNX_MODEL_FILE, diffusionModelToOnnx, type ExportedWeights } from './onnx-export.ts';
import { RunError, checkCheckpointModel, latestCheckpoint, noCheckpointReason, readRunConfig, type RunConfig } from './run-dir.ts';
import { article, type Engine, type SamplingModel, type SamplingOptions } from './sampling-model.ts';

/**
 * Loads a run's model from its newest checkpoint (or `checkpoint`), in evaluation mode: the moving average of
 * its weights when the run kept one (training.ema), unless `ema` is false.
 */
export function loadModel(runDir: string, opts: { checkpoint?: string; device?: string; ema?: boolean } = {}): DiffusionModel {
  const config = readRunConfig(runDir);
  const path = opts.checkpoint ?? latestCheckpoint(runDir)?.path;
  if (path === undefined) {
    if (existsSync(join(runDir, ONNX_MODEL_FILE))) throw new RunError(`${runDir} holds an ONNX export (${ONNX_MODEL_FILE}) and no checkpoint: sample it with --engine onnxruntime`);
    throw new RunError(`${runDir}: no checkpoint to load: ${noCheckpointReason(runDir)}`);
  }
  checkCheckpointModel(path, config);
  const model = new DiffusionModel(config.model, opts.device);
  try {
    restoreCheckpoint(path, { model: model.unet, weights: samplingWeights(config, opts.ema) });
  } catch (err) {
    model.dispose();
    throw err;
  }
  model.unet.eval();
  return model;
}

/** The weights sampling uses: the moving average where the run kept one, unless `ema` is false. */
export function samplingWeights(config: RunConfig, ema?: boolean): ExportedWeights {
  return config.training.ema !== undefined && ema !== false ? 'ema' : 'model';
}

/** A run's model as ONNX (one reverse step per call), from its newest checkpoint or `checkpoint`. */
export function runToOnnx(runDir: string, opts: { checkpoint?: string; ema?: boolean } = {}): Uint8Array {
  const model = loadModel(runDir, opts);
  try {
    return diffusionModelToOnnx(model, samplingWeights(readRunConfig(runDir), opts.ema));
  } finally {
    model.dispose();
  }
}

/**
 * A run's model on ONNX Runtime: its exported `model.onnx` where the folder has one (an export made with
 * `ssddpm export --format onnx`), else exported in memory from its newest checkpoint.
 */
export function loadOnnxModel(runDir: string, opts: { ema?: boolean; threads?: number } = {}): OnnxDiffusionModel {
  const config = readRunConfig(runDir);
  const file = join(runDir, ONNX_MODEL_FILE);
  const threads = opts.threads ?? getNumThreads();
  if (!existsSync(file)) return OnnxDiffusionModel.fromBytes(runToOnnx(runDir, { ema: opts.ema }), { threads });
  let m: OnnxDiffusionModel;
  try {
    m = OnnxDiffusionModel.fromBytes(readFileSync(file), { threads });
  } catch (err) {
    throw new RunError(`${file}: ${err instanceof Error ? err.message : String(err)}; export it again (ssddpm export --format onnx)`);
  }
  const problem =
    canonicalJson(m.config) !== canonicalJson(config.model) ? `is not the model its config.json describes (a ${m.config.imageSize}×${m.config.imageSize} ${m.config.kind} model, not a ${config.model.imageSize}×${config.model.imageSize} ${config.model.kind} one)` :
    opts.ema === false && m.weights === 'ema' ? 'holds the moving-average weights; export with --no-ema for the trained ones' :
    undefined;
  if (problem !== undefined) {
    m.dispose();
    throw new RunError(`${file} ${problem}`);
  }
  return m;
}

/** ONNX Runtime on the CPU where it is installed (it samples fastest there), else libtorch. */
export function defaultEngine(device?: string): Engine {
  return (device === undefined || device === 'cpu') && onnxRuntimeAvailable() ? 'onnxruntime' : 'libtorch';
}

export interface Pipeline {
  /** A generator, then upscalers: model i > 0 is conditioned on model i − 1's samples. */
  models: readonly SamplingModel[];
  /** Autoguidance: for model i, a weaker model of the same task whose prediction guidance pushes away from. */
  guides?: readonly (SamplingModel | undefined)[];
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
  /** The engine that evaluates the networks (default: defaultEngine(device)). */
  engine?: Engine;
  /**
   * Autoguidance (Karras et al. 2024): a run folder per model (undefined for none) whose model, weaker at the
   * same task, guidance pushes the prediction away from instead of the prediction without the label.
   */
  guides?: readonly (string | undefined)[];
}

export function loadPipeline(spec: PipelineSpec): Pipeline {
  const { runs } = spec;
  if (runs.length === 0) throw new RunError('give either one run folder or a cascade (small,upscaler)');
  if (spec.upscale && runs.length > 1) throw new RunError('upscaling (--upscale) is for a single small model; a cascade ends with its upscaler');
  const engine = spec.engine ?? defaultEngine(spec.device);
  if (engine === 'onnxruntime' && spec.device !== undefined && spec.device !== 'cpu') throw new RunError(`the onnxruntime engine samples on the CPU; use --engine libtorch for ${spec.device}`);
  if (spec.guides !== undefined && spec.guides.length !== runs.length) throw new RunError(`give one guide model per model of the pipeline (${runs.length}; an empty entry for none), not ${spec.guides.length}`);
  const load = (run: string) => (engine === 'onnxruntime' ? loadOnnxModel(run, { ema: spec.ema }) : loadModel(run, { device: spec.device, ema: spec.ema }));
  const models: SamplingModel[] = [];
  const guides: (SamplingModel | undefined)[] = [];
  try {
    for (const [i, run] of runs.entries()) {
      const m = load(run);
      models.push(m);
      const prev = models[i - 1];
      const problem =
        i === 0 && m.isUpscaler ? (runs.length === 1 ? `${run} is an upscaler: sample it in a cascade (--cascade small,upscaler)` : `${run} is an upscaler; the cascade starts from a small model`) :
        prev !== undefined && !m.isUpscaler ? `${run} is ${article(m.config.kind)} ${m.config.kind} model, not an upscaler` :
        prev !== undefined && m.config.lowResSize !== prev.config.imageSize ? `the upscaler expects ${m.config.lowResSize}×${m.config.lowResSize} inputs but ${runs[i - 1]} makes ${prev.config.imageSize}×${prev.config.imageSize}` :
        undefined;
      if (problem !== undefined) throw new RunError(problem);
      const guideRun = spec.guides?.[i];
      const g = guideRun === undefined ? undefined : load(guideRun);
      guides.push(g);
      const mismatch = g === undefined ? undefined : m.guideProblem(g);
      if (mismatch !== undefined) throw new RunError(`${guideRun} cannot guide ${run}: ${mismatch}`);
    }
  } catch (err) {
    for (const m of [...models, ...guides]) m?.dispose();
    throw err;
  }
  const withGuides = guides.some((g) => g !== undefined) ? { guides } : {};
  return spec.upscale ? { models, ...withGuides, upscaleTo: 2 * models[0]!.config.imageSize } : { models, ...withGuides };
}

export function pipelineImageSize(p: Pipeline): number {
  return p.upscaleTo ?? p.models[p.models.length - 1]!.config.imageSize;
}

/** The device the pipeline's models live on. */
export function pipelineDevice(p: Pipeline): string {
  return p.models[0]!.device;
}

// Network evaluations of one model per sample.
function modelSteps(m: SamplingModel, opts: Pick<SamplingOptions, 'sampler' | 'steps'>): number {
  return opts.sampler === 'ddim' || opts.sampler === 'dpmpp-2m' ? Math.min(opts.steps ?? m.numTimesteps, m.numTimesteps) : m.numTimesteps;
}

/** Denoising steps per sample (network evaluations at batch size 1) under the given sampling options. */
export function pipelineSteps(p: Pipeline, opts: Pick<SamplingOptions, 'sampler' | 'steps'> = {}): number {
  return p.models.reduce((n, m) => n + modelSteps(m, opts), 0);
}

export function disposePipeline(p: Pipeline): void {
  for (const m of [...p.models, ...(p.guides ?? [])]) m?.dispose();
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
  const guidanceOf = perModel(p, opts.guidance, 'guidance scale');
  const labelGuidanceOf = perModel(p, opts.labelGuidance, 'label guidance scale');
  if (opts.guidanceInterval !== undefined && !p.models.some((_, i) => (guidanceOf(i) ?? 0) > 0)) throw new RangeError('a guidance interval needs a guidance scale > 0');
  if (opts.labelGuidanceInterval !== undefined && !p.models.some((_, i) => (labelGuidanceOf(i) ?? 0) > 0)) throw new RangeError('a label guidance interval needs a label guidance scale > 0');
  for (const [i] of p.models.entries()) {
    if ((labelGuidanceOf(i) ?? 0) > 0 && p.guides?.[i] === undefined) throw new RangeError(`model ${i + 1} of the pipeline has a label guidance scale but no guide model: label guidance is classifier-free guidance under autoguidance (without a guide model, --guidance is classifier-free)`);
  }
  for (const [i, g] of (p.guides ?? []).entries()) {
    if (g !== undefined && !((guidanceOf(i) ?? 0) > 0)) throw new RangeError(`model ${i + 1} of the pipeline has a guide model but no guidance scale > 0 (--guidance)`);
  }
  return tidy(() => {
    let x: Tensor | undefined;
    let done = 0;
    for (const [i, m] of p.models.entries()) {
      const offset = done;
      const out = m.sample(labels, {
        ...opts,
        conditioningLevel: m.isUpscaler ? opts.conditioningLevel : undefined,
        guidance: guidanceOf(i),
        labelGuidance: labelGuidanceOf(i),
        guide: p.guides?.[i],
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

// A pipeline's option given once for all its models or once per model, as model i's value.
function perModel(p: Pipeline, values: number | readonly number[] | undefined, what: string): (i: number) => number | undefined {
  if (typeof values !== 'number' && values !== undefined && values.length !== 1 && values.length !== p.models.length) {
    throw new RangeError(`give one ${what}, or one per model of the pipeline (${p.models.length}), not ${values.length}`);
  }
  return (i) => (typeof values === 'number' || values === undefined ? values : values.length === 1 ? values[0] : values[i]);
}
