// What Algorithm 1 draws from: the class-balanced training subset at the model's size, held once in libtorch
// memory in model space (with the upscaler's conditioning images), and one batch of the objective (lines 2–5).
import type { ImageSet } from '../data/image-set.ts';
import { balancedSubset } from '../data/sampling.ts';
import { downscale, type Normalization } from '../data/tensor-dataset.ts';
import type { DDPMScheduler } from '../diffusion/ddpm.ts';
import type { DiffusionModel } from '../pipelines/diffusion-model.ts';
import type { DiffusionModelConfig } from '../pipelines/model-config.ts';
import type { TrainingConfig } from '../pipelines/run-dir.ts';
import type { Generator } from '../torch/generator.ts';
import { full, int64, tensor } from '../torch/ops/creation.ts';
import { lt, where } from '../torch/ops/pointwise.ts';
import { rand, randint, randn } from '../torch/ops/random.ts';
import { indexSelect } from '../torch/ops/shape.ts';
import { keep, tidy } from '../torch/scope.ts';
import type { Tensor } from '../torch/tensor.ts';

/** One batch of the training objective (model space; rows are samples). */
export interface TrainingBatch {
  x0: Tensor;
  xt: Tensor;
  /** int64 timesteps. */
  t: Tensor;
  noise: Tensor;
  labels: Tensor;
  cond?: Tensor;
  level?: Tensor;
  /** What the network should output at (x_t, t). */
  target: Tensor;
  /** Starts of the n-step rollouts, when drawn. */
  nStepStart?: Tensor;
}

/** The balanced subset in pixel space ([0, 1]) at the model's image size, and its labels. */
export interface TrainingPixels {
  count: number;
  pixels: Tensor;
  labels: Tensor;
}

export function trainingPixels(source: ImageSet, model: Pick<DiffusionModelConfig, 'imageSize'>, t: Pick<TrainingConfig, 'perClass' | 'subsetSeed'>, device?: string): TrainingPixels {
  const subset = balancedSubset(source, t.perClass, t.subsetSeed);
  const pixels = keep(tidy(() => {
    const x = tensor(subset.images, { shape: [subset.count, 1, subset.height, subset.width], device }).float().div_(255);
    return x.size(2) === model.imageSize ? x : downscale(x, model.imageSize);
  }));
  return { count: subset.count, pixels, labels: keep(int64(subset.labels, { device })) };
}

/** The model space of a new run: the pixels' mean and standard deviation ('standard', the paper), or [0, 1] ('unit'). */
export function measureNormalization(pixels: Tensor, scaling: TrainingConfig['dataScaling']): Normalization {
  if (scaling === 'unit') return { mean: 0, std: 1 };
  return tidy(() => {
    const mean = pixels.mean().item();
    return { mean, std: pixels.sub(mean).square().mean().sqrt().item() };
  });
}

/** The subset in `model`'s space: clean images x0, labels, and (upscalers) the conditioning images. */
export class TrainingData {
  readonly count: number;
  readonly x0: Tensor;
  readonly labels: Tensor;
  readonly cond?: Tensor;

  /** Takes over `pixels` (released here) and `labels`. */
  constructor(model: DiffusionModel, { count, pixels, labels }: TrainingPixels) {
    this.count = count;
    this.labels = labels;
    this.x0 = keep(model.toModelSpace(pixels));
    const lowRes = model.config.lowResSize;
    if (lowRes !== undefined) this.cond = keep(tidy(() => model.conditioning(downscale(pixels, lowRes))));
    pixels.dispose();
  }

  /** The network's output for the batch `idx` (see drawBatch) and its target. */
  predictBatch(net: DiffusionModel, scheduler: DDPMScheduler, idx: Int32Array, gen: Generator, rows?: [number, number]): [Tensor, Tensor] {
    const b = this.drawBatch(net, scheduler, idx, gen, { rows });
    return [net.predictNoise(b.xt, b.t, b.labels, b.cond, b.level), b.target];
  }

  /**
   * One batch of the objective for the rows `idx`: t ~ U{0..T−1}, ε ~ N(0, I), x_t from the forward process
   * (Algorithm 1, lines 2–5), the network's target (the noise; the velocity for v-prediction); an augmented
   * upscaler's conditioning is corrupted at a uniform level, and with label dropout some labels are the null one.
   * `nStep` also draws each row's start s ~ U{n..T−1} of an n-step rollout. With `rows` [start, end), only those
   * rows are returned (one rank's share of a data-parallel batch): the random draws are still the whole batch's,
   * so every share sees what one process does.
   */
  drawBatch(net: DiffusionModel, scheduler: DDPMScheduler, idx: Int32Array, gen: Generator, opts: { rows?: [number, number]; nStep?: number } = {}): TrainingBatch {
    const { rows, nStep } = opts;
    const device = this.x0.device;
    const index = int64(idx, { device });
    let x0 = indexSelect(this.x0, 0, index);
    let y = indexSelect(this.labels, 0, index);
    let time = randint(0, net.numTimesteps, [idx.length], { generator: gen, device });
    let noise = randn(x0.shape, { generator: gen, device });
    let xt = scheduler.addNoise(x0, noise, time);
    let c = this.cond === undefined ? undefined : indexSelect(this.cond, 0, index);
    let level = net.augmentsConditioning ? rand([idx.length], { generator: gen, device }) : undefined;
    if (c !== undefined && level !== undefined) c = net.corruptConditioning(c, level, gen);
    // Classifier-free guidance: the null label (numClasses) in place of the label with probability p.
    const p = net.config.labelDropout;
    if (p !== undefined) y = where(lt(rand([idx.length], { generator: gen, device }), p), full([idx.length], net.config.unet.numClasses, { dtype: 'int64', device }), y);
    let start = nStep === undefined ? undefined : randint(nStep, net.numTimesteps, [idx.length], { generator: gen, device });
    if (rows !== undefined) {
      const share = (t: Tensor) => t.narrow(0, rows[0], rows[1] - rows[0]);
      [x0, xt, time, y, noise] = [share(x0), share(xt), share(time), share(y), share(noise)];
      c = c === undefined ? undefined : share(c);
      level = level === undefined ? undefined : share(level);
      start = start === undefined ? undefined : share(start);
    }
    // The network's target: the noise, or for v-prediction the velocity √ᾱ ε − √(1 − ᾱ) x0.
    const target = net.prediction === 'v' ? scheduler.velocity(x0, noise, time) : noise;
    return { x0, xt, t: time, noise, labels: y, cond: c, level, target, nStepStart: start };
  }

  dispose(): void {
    for (const x of [this.x0, this.labels, this.cond]) x?.dispose();
  }
}
