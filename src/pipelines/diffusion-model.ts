// A trained diffusion model as users handle it: the U-Net plus what it was trained with (noise schedule,
// image size, normalisation, conditioning), so noise prediction, sampling and conversions to and from
// pixel space live in one place. The schedule is built once here and shared by training and every scheduler.
import { upscale } from '../data/tensor-dataset.ts';
import { DDIMScheduler } from '../diffusion/ddim.ts';
import { DDPMScheduler } from '../diffusion/ddpm.ts';
import { NoiseSchedule } from '../diffusion/schedule.ts';
import type { Scheduler } from '../diffusion/scheduler.ts';
import { sampleLoop, type SampleLoopResult } from '../diffusion/sample.ts';
import { UNet, unetContext } from '../models/unet.ts';
import { InferenceUNet } from '../models/unet-inference.ts';
import type { Generator } from '../torch/generator.ts';
import { full, int64 } from '../torch/ops/creation.ts';
import { randn } from '../torch/ops/random.ts';
import { cat } from '../torch/ops/shape.ts';
import { tidy } from '../torch/scope.ts';
import type { Tensor } from '../torch/tensor.ts';
import type { DiffusionModelConfig } from './model-config.ts';

export interface SamplingOptions {
  generator?: Generator;
  /** Clip x̂0 to the data range at every step (the paper's §1.3 remedy). Default false. */
  clip?: boolean;
  /** Dynamic thresholding of x̂0 at this percentile (Imagen), instead of clipping; e.g. 0.995. */
  dynamicThreshold?: number;
  /** 'ddpm' (ancestral, every timestep; the default) or 'ddim' over `steps` timesteps with noise scale `eta`. */
  sampler?: 'ddpm' | 'ddim';
  /** DDIM only: network evaluations per sample (default and at most T: a cascade caps it per model). */
  steps?: number;
  /** DDIM only: η ∈ [0, 1] (default 0, deterministic). */
  eta?: number;
  /**
   * Upscalers trained with conditioning augmentation: the noise level in [0, 1] (a fraction of the training
   * maximum) added to the conditioning image and given to the network. Default 0 (clean conditioning).
   */
  conditioningLevel?: number;
  /** Reverse-step variance: β̃ ('posterior', default) or β ('beta'). */
  variance?: 'posterior' | 'beta';
  /** Estimate x̂0 with √α_t where √ᾱ_t belongs, as the paper's public code did (for comparison only). */
  authorX0?: boolean;
  keepTrajectory?: boolean;
  onStep?: (done: number, total: number) => void;
  /**
   * Evaluate the network through UNet.forward at every step instead of its prepared inference form
   * (InferenceUNet: the same maths, faster). For checking one against the other.
   */
  plainForward?: boolean;
}

export class DiffusionModel {
  readonly config: Readonly<DiffusionModelConfig>;
  readonly schedule: NoiseSchedule;
  readonly unet: UNet;

  constructor(config: DiffusionModelConfig, device?: string) {
    if (config.conditioningNoise !== undefined) {
      if (config.lowResSize === undefined) throw new RangeError('conditioning augmentation (conditioningNoise) is for upscalers');
      if (!(config.conditioningNoise > 0)) throw new RangeError(`conditioningNoise must be positive, got ${config.conditioningNoise}`);
      if ((config.unet.extraContext ?? 0) !== 1) throw new RangeError('an upscaler with conditioning augmentation needs unet.extraContext = 1 (the noise level)');
    }
    this.config = config;
    this.schedule = new NoiseSchedule(config.schedule);
    this.unet = new UNet(config.unet);
    // Channels-last is faster for libtorch's CPU kernels; on GPUs the default layout is kept.
    if (device !== undefined && device !== 'cpu') this.unet.to({ device });
    else this.unet.setMemoryFormat('channels-last');
  }

  get device(): string {
    return this.unet.parameters()[0]!.device;
  }

  get isUpscaler(): boolean {
    return this.config.lowResSize !== undefined;
  }

  /** Pixel values 0 and 1 in model space: the range x̂0 is clipped to. */
  get dataRange(): [number, number] {
    const { mean, std } = this.config.normalization;
    return [(0 - mean) / std, (1 - mean) / std];
  }

  /** The sampler's scheduler: DDPM over every timestep, or DDIM over `steps` of them. */
  samplingScheduler(opts: Pick<SamplingOptions, 'clip' | 'dynamicThreshold' | 'variance' | 'authorX0' | 'sampler' | 'steps' | 'eta'> = {}): Scheduler {
    if (opts.sampler === 'ddim') {
      if (opts.variance !== undefined || opts.authorX0) throw new RangeError('variance and authorX0 are DDPM options; DDIM has eta');
      return new DDIMScheduler({
        schedule: this.schedule,
        steps: Math.min(opts.steps ?? this.numTimesteps, this.numTimesteps),
        eta: opts.eta ?? 0,
        clip: opts.clip ?? false,
        dynamicThreshold: opts.dynamicThreshold,
        clipRange: this.dataRange,
      });
    }
    if (opts.steps !== undefined && opts.steps !== this.numTimesteps) throw new RangeError(`the DDPM sampler takes every timestep (${this.numTimesteps}); use the DDIM sampler for ${opts.steps} steps`);
    if (opts.eta !== undefined) throw new RangeError('eta is a DDIM option');
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
    });
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
   * ε̂(x_t, t, label [, conditioning [, its noise level]]).
   * @param xt [N, 1, S, S] in model space
   * @param t int64 [N]
   * @param labels int64 [N]
   * @param cond upscaler only: [N, 1, S, S] conditioning image in model space
   * @param condLevel augmented upscaler only: float32 [N], the conditioning's noise level in [0, 1]
   */
  predictNoise(xt: Tensor, t: Tensor, labels: Tensor, cond?: Tensor, condLevel?: Tensor): Tensor {
    if (this.isUpscaler !== (cond !== undefined)) {
      throw new Error(this.isUpscaler ? 'the upscaler needs a conditioning image' : `a ${this.config.kind} model takes no conditioning image`);
    }
    if (this.augmentsConditioning !== (condLevel !== undefined)) {
      throw new Error(this.augmentsConditioning ? 'this upscaler was trained with conditioning augmentation: pass the noise level' : 'a conditioning noise level is only for upscalers trained with conditioning augmentation');
    }
    return tidy(() => {
      const ctx = unetContext(t, this.numTimesteps, labels, this.config.unet.numClasses, condLevel?.unsqueeze(1));
      const input = cond === undefined ? xt : cat([xt, cond], 1);
      return this.unet.forward(input, ctx);
    });
  }

  /**
   * Samples one image per label, in pixel space ([0, 1] up to sampling error; not clamped).
   * The upscaler needs `lowRes`: [N, 1, s, s] images in pixel space (the small model's samples).
   */
  sample(labels: readonly number[], opts: SamplingOptions & { lowRes?: Tensor } = {}): SampleLoopResult {
    const n = labels.length;
    const size = this.config.imageSize;
    for (const l of labels) {
      if (!Number.isInteger(l) || l < 0 || l >= this.config.unet.numClasses) throw new RangeError(`label ${l} is outside 0..${this.config.unet.numClasses - 1}`);
    }
    if (this.isUpscaler && opts.lowRes === undefined) throw new Error('the upscaler samples from low-resolution images: pass lowRes');
    const level = opts.conditioningLevel ?? 0;
    if (!(level >= 0 && level <= 1)) throw new RangeError(`conditioning level must be in [0, 1], got ${level}`);
    if (level > 0 && !this.augmentsConditioning) throw new RangeError('a conditioning level needs an upscaler trained with conditioning augmentation');
    const scheduler = this.samplingScheduler(opts);
    const device = this.device;
    this.unet.eval();
    const net = opts.plainForward ? undefined : new InferenceUNet(this.unet);
    try {
      return tidy(() => {
        const labelTensor = int64(labels, { device });
        const levels = this.augmentsConditioning ? full([n], level, { device }) : undefined;
        let cond = opts.lowRes === undefined ? undefined : this.conditioning(opts.lowRes);
        if (cond !== undefined && levels !== undefined && level > 0) cond = this.corruptConditioning(cond, levels, opts.generator);
        const predict = net === undefined
          ? (xt: Tensor, t: number) => tidy(() => this.predictNoise(xt, full([n], t, { dtype: 'int64', device }), labelTensor, cond, levels))
          : this.#inferencePredictor(net, labels, cond, levels === undefined ? undefined : level);
        const result = sampleLoop(
          scheduler,
          predict,
          [n, 1, size, size],
          { generator: opts.generator, device, keepTrajectory: opts.keepTrajectory, onStep: opts.onStep },
        );
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
      net?.dispose();
    }
  }

  // ε̂ per step through the inference form, with the FiLM modulation of every (step, label) computed up front.
  #inferencePredictor(net: InferenceUNet, labels: readonly number[], cond: Tensor | undefined, level: number | undefined): (xt: Tensor, t: number) => Tensor {
    const n = labels.length;
    const T = this.numTimesteps;
    const device = this.device;
    const mod = tidy(() => {
      const t = int64(Array.from({ length: T * n }, (_, k) => Math.floor(k / n)), { device });
      const y = int64(Array.from({ length: T * n }, (_, k) => labels[k % n]!), { device });
      const extra = level === undefined ? undefined : full([T * n, 1], level, { device });
      return net.modulation(unetContext(t, T, y, this.config.unet.numClasses, extra));
    });
    return (xt, t) => tidy(() => net.forward(cond === undefined ? xt : cat([xt, cond], 1), InferenceUNet.rows(mod, t * n, n)));
  }

  dispose(): void {
    this.unet.dispose();
  }
}
