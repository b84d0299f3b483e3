// A trained diffusion model as sampling sees it, whatever engine evaluates its network: what it was trained
// with (noise schedule, image size, normalisation, conditioning), the schedulers it samples with, the
// conversions to and from pixel space, and the reverse process around the engine's denoising loop. The
// schedule is built once here and shared by training and every scheduler. Engines: libtorch (DiffusionModel,
// which also trains) and ONNX Runtime (OnnxDiffusionModel).
import { upscale } from '../data/tensor-dataset.ts';
import { DDIMScheduler } from '../diffusion/ddim.ts';
import { DDPMScheduler } from '../diffusion/ddpm.ts';
import { DPMSolverMultistepScheduler } from '../diffusion/dpm-solver.ts';
import { guide } from '../diffusion/guidance.ts';
import { sampleLoop, type NoisePredictor, type SampleLoopOptions, type SampleLoopResult } from '../diffusion/sample.ts';
import { NoiseSchedule, guidedTimesteps } from '../diffusion/schedule.ts';
import type { Scheduler } from '../diffusion/scheduler.ts';
import type { Prediction } from '../diffusion/step-coefficients.ts';
import type { TimestepSpacing } from '../diffusion/step-coefficients.ts';
import { canonicalJson } from '../io/content-hash.ts';
import type { Generator } from '../torch/generator.ts';
import { full } from '../torch/ops/creation.ts';
import { randn } from '../torch/ops/random.ts';
import { tidy } from '../torch/scope.ts';
import type { Tensor } from '../torch/tensor.ts';
import type { DiffusionModelConfig } from './model-config.ts';

/** The reverse-process samplers. */
export const SAMPLERS = ['ddpm', 'ddim', 'dpmpp-2m'] as const;
export type Sampler = (typeof SAMPLERS)[number];

export interface SamplingOptions {
  generator?: Generator;
  /** Clip x̂0 to the data range at every step (the paper's §1.3 remedy). Default false. */
  clip?: boolean;
  /** Dynamic thresholding of x̂0 at this percentile (Imagen), instead of clipping; e.g. 0.995. */
  dynamicThreshold?: number;
  /**
   * 'ddpm' (ancestral, every timestep; the default), 'ddim' over `steps` timesteps with noise scale `eta`, or
   * 'dpmpp-2m' (DPM-Solver++(2M), deterministic) over `steps` timesteps.
   */
  sampler?: Sampler;
  /** DDIM and DPM-Solver++: network evaluations per sample (default and at most T: a cascade caps it per model). */
  steps?: number;
  /** DDIM only: η ∈ [0, 1] (default 0, deterministic). */
  eta?: number;
  /** DDIM and DPM-Solver++: 'linspace' (default: evenly over T−1 … 0) or 'trailing' (back from T−1 by T/steps). */
  spacing?: TimestepSpacing;
  /**
   * Upscalers trained with conditioning augmentation: the noise level in [0, 1] (a fraction of the training
   * maximum) added to the conditioning image and given to the network. Default 0 (clean conditioning).
   */
  conditioningLevel?: number;
  /**
   * Classifier-free guidance scale w ≥ 0 (models trained with label dropout): ε̃ = (1 + w) ε̂(label) − w ε̂(∅),
   * both predictions in one batched call. A pipeline takes one scale for all its models or one per model.
   * Default 0: the conditional prediction alone.
   */
  guidance?: number | readonly number[];
  /**
   * Guidance in a limited interval of noise levels (Kynkäänniemi et al. 2024): guided only at the timesteps whose
   * σ_t = √((1 − ᾱ_t) / ᾱ_t) lies in (lo, hi], the conditional prediction alone (one network row per sample)
   * elsewhere. The same σ scale for every model, whatever its T. Default: guided at every timestep.
   */
  guidanceInterval?: readonly [number, number];
  /**
   * With a guide model (autoguidance): classifier-free guidance of the guided model's own prediction first, at this
   * scale (models trained with label dropout), then autoguidance of the result:
   * ε̃ = (1 + w) ε̂_cfg − w ε̂_guide, ε̂_cfg = (1 + w_label) ε̂(label) − w_label ε̂(∅). One scale, or one per model.
   */
  labelGuidance?: number | readonly number[];
  /** Where `labelGuidance` applies, as `guidanceInterval` does for `guidance`. Default: at every timestep. */
  labelGuidanceInterval?: readonly [number, number];
  /** Reverse-step variance: β̃ ('posterior', default) or β ('beta'). */
  variance?: 'posterior' | 'beta';
  /** Estimate x̂0 with √α_t where √ᾱ_t belongs, as the paper's public code did (for comparison only). */
  authorX0?: boolean;
  keepTrajectory?: boolean;
  onStep?: (done: number, total: number) => void;
  /**
   * libtorch only: evaluate the network through UNet.forward at every step instead of its prepared inference
   * form (InferenceUNet: the same maths, faster). For checking one against the other.
   */
  plainForward?: boolean;
  /**
   * libtorch on a GPU: replay each step's network evaluation as one CUDA graph (default true where the addon can
   * capture them). Same results; fewer launches.
   */
  cudaGraphs?: boolean;
}

/** The engines that evaluate a model's network when sampling. */
export const ENGINES = ['onnxruntime', 'libtorch'] as const;
export type Engine = (typeof ENGINES)[number];

/** What a model's noise prediction for one batch needs, in model space. */
export interface PredictorInputs {
  labels: readonly number[];
  /** Upscalers: the conditioning image [N, 1, S, S]. */
  cond?: Tensor;
  /** Augmented upscalers: the conditioning's noise level, one for the batch. */
  level?: number;
  /** libtorch only: as in SamplingOptions. */
  plainForward?: boolean;
  cudaGraphs?: boolean;
}

/** A model's prediction for one batch, classifier-free guided where asked, in model space. */
export interface GuidedPredictorInputs extends PredictorInputs {
  /** Classifier-free guidance scale (> 0), for models trained with label dropout. */
  guidance?: number;
  /** With guidance: whether it applies at each timestep t (default: at every one). */
  guidedAt?: readonly boolean[];
}

/** What one reverse process needs besides the scheduler, in model space. */
export interface ReverseProcessInputs extends GuidedPredictorInputs {
  loop: SampleLoopOptions;
}

export abstract class SamplingModel {
  readonly config: Readonly<DiffusionModelConfig>;
  readonly schedule: NoiseSchedule;
  abstract readonly engine: Engine;

  constructor(config: DiffusionModelConfig) {
    if (config.conditioningNoise !== undefined) {
      if (config.lowResSize === undefined) throw new RangeError('conditioning augmentation (conditioningNoise) is for upscalers');
      if (!(config.conditioningNoise > 0)) throw new RangeError(`conditioningNoise must be positive, got ${config.conditioningNoise}`);
      if ((config.unet.extraContext ?? 0) !== 1) throw new RangeError('an upscaler with conditioning augmentation needs unet.extraContext = 1 (the noise level)');
    }
    this.config = config;
    this.schedule = new NoiseSchedule(config.schedule);
  }

  abstract get device(): string;

  /** Runs the engine's denoising loop from pure noise (model space in, model space out). */
  protected abstract reverseProcess(scheduler: Scheduler, inputs: ReverseProcessInputs): SampleLoopResult;

  /**
   * Runs `body` with the network's prediction for the batch with its labels at the scheduler's timesteps
   * (classifier-free guided where `inputs` say), and releases what the engine prepared for it afterwards.
   */
  protected abstract withPredictor<R>(scheduler: Scheduler, inputs: GuidedPredictorInputs, body: (predict: NoisePredictor) => R): R;

  abstract dispose(): void;

  get isUpscaler(): boolean {
    return this.config.lowResSize !== undefined;
  }

  /** Pixel values 0 and 1 in model space: the range x̂0 is clipped to. */
  get dataRange(): [number, number] {
    const { mean, std } = this.config.normalization;
    return [(0 - mean) / std, (1 - mean) / std];
  }

  /** The sampler's scheduler: DDPM over every timestep, or DDIM or DPM-Solver++(2M) over `steps` of them. */
  samplingScheduler(opts: Pick<SamplingOptions, 'clip' | 'dynamicThreshold' | 'variance' | 'authorX0' | 'sampler' | 'steps' | 'eta' | 'spacing'> = {}): Scheduler {
    if (opts.sampler === 'dpmpp-2m') {
      if (opts.variance !== undefined || opts.authorX0) throw new RangeError('variance and authorX0 are DDPM options');
      if (opts.eta !== undefined) throw new RangeError('eta is a DDIM option: DPM-Solver++(2M) is deterministic');
      return new DPMSolverMultistepScheduler({
        schedule: this.schedule,
        steps: Math.min(opts.steps ?? this.numTimesteps, this.numTimesteps),
        spacing: opts.spacing,
        clip: opts.clip ?? false,
        dynamicThreshold: opts.dynamicThreshold,
        clipRange: this.dataRange,
        prediction: this.prediction,
      });
    }
    if (opts.sampler === 'ddim') {
      if (opts.variance !== undefined || opts.authorX0) throw new RangeError('variance and authorX0 are DDPM options; DDIM has eta');
      return new DDIMScheduler({
        schedule: this.schedule,
        steps: Math.min(opts.steps ?? this.numTimesteps, this.numTimesteps),
        eta: opts.eta ?? 0,
        spacing: opts.spacing,
        clip: opts.clip ?? false,
        dynamicThreshold: opts.dynamicThreshold,
        clipRange: this.dataRange,
        prediction: this.prediction,
      });
    }
    if (opts.steps !== undefined && opts.steps !== this.numTimesteps) throw new RangeError(`the DDPM sampler takes every timestep (${this.numTimesteps}); use the DDIM or DPM-Solver++ sampler for ${opts.steps} steps`);
    if (opts.eta !== undefined || opts.spacing !== undefined) throw new RangeError('eta and spacing are DDIM options');
    return this.scheduler(opts);
  }

  /** The DDPM scheduler for this model's T (forward process and ancestral steps), with the given sampling choices. */
  scheduler(opts: Pick<SamplingOptions, 'clip' | 'dynamicThreshold' | 'variance' | 'authorX0'> = {}): DDPMScheduler {
    return new DDPMScheduler({
      schedule: this.schedule,
      variance: opts.variance ?? 'posterior',
      clip: opts.clip ?? false,
      dynamicThreshold: opts.dynamicThreshold,
      clipRange: this.dataRange,
      authorX0: opts.authorX0 ?? false,
      prediction: this.prediction,
    });
  }

  /** What the network predicts: ε (the paper) or v. */
  get prediction(): Prediction {
    return this.config.prediction ?? 'epsilon';
  }

  /** T: the model's timesteps are 0..T−1. */
  get numTimesteps(): number {
    return this.schedule.numTimesteps;
  }

  /** Pixel space ([0, 1]) → model space (mean 0, std 1). */
  toModelSpace(x: Tensor): Tensor {
    const { mean, std } = this.config.normalization;
    return tidy(() => x.sub(mean).div_(std));
  }

  /** Model space → pixel space ([0, 1], not clamped). */
  toPixelSpace(x: Tensor): Tensor {
    const { mean, std } = this.config.normalization;
    return tidy(() => x.mul(std).add_(mean));
  }

  /** The upscaler's conditioning image in model space, from low-resolution images in pixel space. */
  conditioning(lowRes: Tensor): Tensor {
    return tidy(() => this.toModelSpace(upscale(lowRes, this.config.imageSize)));
  }

  /** Whether the upscaler was trained with conditioning augmentation (and takes a noise level). */
  get augmentsConditioning(): boolean {
    return this.config.conditioningNoise !== undefined;
  }

  /**
   * Conditioning augmentation: cond + level · conditioningNoise · z for levels [N] in [0, 1]. In training the
   * levels are drawn uniformly; at sampling one level is chosen.
   */
  corruptConditioning(cond: Tensor, level: Tensor, generator?: Generator): Tensor {
    const max = this.config.conditioningNoise;
    if (max === undefined) throw new Error('this model was not trained with conditioning augmentation');
    return tidy(() => {
      const sigma = level.mul(max).view([-1, 1, 1, 1]);
      return cond.add(randn(cond.shape, { generator, device: cond.device }).mul_(sigma));
    });
  }

  /**
   * The guidance scale asked for, checked: undefined for none (0), else a positive scale this model can take:
   * by a guide model (`byModel`), or without its label, which needs training with label dropout.
   */
  guidanceScale(asked: number | readonly number[] | undefined, byModel = false): number | undefined {
    if (typeof asked !== 'number' && asked !== undefined && asked.length !== 1) throw new RangeError('one guidance scale per model is for pipelines; a model takes one');
    const w = typeof asked === 'number' ? asked : asked?.[0] ?? 0;
    if (!(w >= 0) || !Number.isFinite(w)) throw new RangeError(`the guidance scale must be a number ≥ 0, got ${w}`);
    if (w > 0 && !byModel && this.config.labelDropout === undefined) throw new RangeError(`guidance needs a model trained with label dropout (train --label-dropout) or a guide model; this ${this.config.kind} model has neither`);
    return w > 0 ? w : undefined;
  }

  /**
   * Why `g` cannot guide this model (autoguidance), or undefined where it can: it must be a model of the same
   * kind, images, noise schedule, prediction, normalisation, labels and conditioning, on the same device, so
   * that their predictions at a step are of one quantity.
   */
  guideProblem(g: SamplingModel): string | undefined {
    const a = this.config;
    const b = g.config;
    return (
      b.kind !== a.kind ? `it is ${article(b.kind)} ${b.kind} model, this ${article(a.kind)} ${a.kind} one` :
      b.imageSize !== a.imageSize || b.lowResSize !== a.lowResSize ? `it makes ${b.imageSize}×${b.imageSize} images${b.lowResSize === undefined ? '' : ` from ${b.lowResSize}×${b.lowResSize}`}, this ${a.imageSize}×${a.imageSize}${a.lowResSize === undefined ? '' : ` from ${a.lowResSize}×${a.lowResSize}`}` :
      canonicalJson(b.schedule) !== canonicalJson(a.schedule) ? `its noise schedule (${canonicalJson(b.schedule)}) is not this one's (${canonicalJson(a.schedule)})` :
      g.prediction !== this.prediction ? `it predicts ${g.prediction}, this ${this.prediction}` :
      canonicalJson(b.normalization) !== canonicalJson(a.normalization) ? 'its data were normalised otherwise' :
      b.unet.numClasses !== a.unet.numClasses ? `it knows ${b.unet.numClasses} labels, this ${a.unet.numClasses}` :
      b.conditioningNoise !== a.conditioningNoise ? `its conditioning augmentation (${b.conditioningNoise ?? 'none'}) is not this one's (${a.conditioningNoise ?? 'none'})` :
      g.device !== this.device ? `it is on ${g.device}, this on ${this.device}` :
      undefined
    );
  }

  /**
   * Samples one image per label, in pixel space ([0, 1] up to sampling error; not clamped).
   * The upscaler needs `lowRes`: [N, 1, s, s] images in pixel space (the small model's samples).
   */
  sample(labels: readonly number[], opts: SamplingOptions & { lowRes?: Tensor; guide?: SamplingModel } = {}): SampleLoopResult {
    const n = labels.length;
    for (const l of labels) {
      if (!Number.isInteger(l) || l < 0 || l >= this.config.unet.numClasses) throw new RangeError(`label ${l} is outside 0..${this.config.unet.numClasses - 1}`);
    }
    if (this.isUpscaler && opts.lowRes === undefined) throw new Error('the upscaler samples from low-resolution images: pass lowRes');
    const level = opts.conditioningLevel ?? 0;
    if (!(level >= 0 && level <= 1)) throw new RangeError(`conditioning level must be in [0, 1], got ${level}`);
    if (level > 0 && !this.augmentsConditioning) throw new RangeError('a conditioning level needs an upscaler trained with conditioning augmentation');
    const guideModel = opts.guide;
    const problem = guideModel === undefined ? undefined : this.guideProblem(guideModel);
    if (problem !== undefined) throw new RangeError(`the guide model cannot guide this ${this.config.kind} model: ${problem}`);
    const scale = this.guidanceScale(opts.guidance, guideModel !== undefined);
    if (guideModel !== undefined && scale === undefined) throw new RangeError('a guide model needs a guidance scale > 0');
    const labelScale = this.guidanceScale(opts.labelGuidance);
    if (guideModel === undefined && labelScale !== undefined) throw new RangeError('label guidance is classifier-free guidance under autoguidance: it needs a guide model (without one, guidance is classifier-free)');
    const [guidance, guidedAt] = this.#guidedSteps(scale, opts.guidanceInterval);
    const [labelGuidance, labelGuidedAt] = this.#guidedSteps(labelScale, opts.labelGuidanceInterval);
    const scheduler = this.samplingScheduler(opts);
    const device = this.device;
    try {
      return tidy(() => {
        let cond = opts.lowRes === undefined ? undefined : this.conditioning(opts.lowRes);
        if (cond !== undefined && this.augmentsConditioning && level > 0) cond = this.corruptConditioning(cond, full([n], level, { device }), opts.generator);
        const inputs: PredictorInputs = { labels, cond, level: this.augmentsConditioning ? level : undefined, plainForward: opts.plainForward, cudaGraphs: opts.cudaGraphs };
        const loop = { generator: opts.generator, device, keepTrajectory: opts.keepTrajectory, onStep: opts.onStep };
        const result =
          guideModel !== undefined && guidance !== undefined ? this.#autoguidedProcess(scheduler, guideModel, { ...inputs, guidance: labelGuidance, guidedAt: labelGuidedAt }, guidance, guidedAt, loop) :
          this.reverseProcess(scheduler, { ...inputs, guidance, guidedAt, loop });
        const sample = this.toPixelSpace(result.sample);
        result.sample.dispose();
        const trajectory = result.trajectory && {
          t: result.trajectory.t,
          xt: result.trajectory.xt.map((x) => this.toPixelSpace(x)),
          predX0: result.trajectory.predX0.map((x) => this.toPixelSpace(x)),
        };
        return { sample, trajectory };
      });
    } finally {
      scheduler.dispose();
    }
  }

  // A scale and where it applies ([undefined, undefined] for none): an interval with none of this model's
  // timesteps leaves it unguided.
  #guidedSteps(scale: number | undefined, interval: readonly [number, number] | undefined): [number | undefined, readonly boolean[] | undefined] {
    const at = interval === undefined ? undefined : guidedTimesteps(this.schedule.terms, interval);
    return scale === undefined || (at !== undefined && !at.includes(true)) ? [undefined, undefined] : [scale, at];
  }

  // Autoguidance: each (guided) step's prediction (classifier-free guided where `inputs` say) pushed away from
  // the guide model's, both with the labels.
  #autoguidedProcess(scheduler: Scheduler, g: SamplingModel, inputs: GuidedPredictorInputs, w: number, guidedAt: readonly boolean[] | undefined, loop: SampleLoopOptions): SampleLoopResult {
    const S = this.config.imageSize;
    return this.withPredictor(scheduler, inputs, (predict) =>
      g.withPredictor(scheduler, { ...inputs, guidance: undefined, guidedAt: undefined }, (reference) => {
        const guided = (xt: Tensor, t: number) => (guidedAt === undefined || guidedAt[t] ? tidy(() => guide(predict(xt, t), reference(xt, t), w)) : predict(xt, t));
        return sampleLoop(scheduler, guided, [inputs.labels.length, 1, S, S], loop);
      }),
    );
  }
}

/** 'a' or 'an' before `word`. */
export const article = (word: string): string => (/^[aeiou]/.test(word) ? 'an' : 'a');
