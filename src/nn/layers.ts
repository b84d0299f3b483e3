// The layers this project needs, each as in torch.nn with PyTorch's default initialisation.
import { empty, ones, zeros, tensor } from '../torch/ops/creation.ts';
import type { Generator } from '../torch/generator.ts';
import { noGrad } from '../torch/grad-mode.ts';
import { rsqrt } from '../torch/ops/pointwise.ts';
import type { MemoryFormat } from '../torch/ops/shape.ts';
import { tidy } from '../torch/scope.ts';
import type { Tensor } from '../torch/tensor.ts';
import * as F from './functional.ts';
import { fans, kaimingUniform_, uniform_ } from './init.ts';
import { Module, type UnaryModule } from './module.ts';

export interface InitOptions {
  /** Generator for the initial weights (the global one when absent). */
  generator?: Generator;
  device?: string;
}

function checkPositiveInt(layer: string, what: string, v: number): void {
  if (!Number.isInteger(v) || v < 1) throw new RangeError(`${layer}: ${what} must be a positive integer, got ${v}`);
}

// PyTorch initialises Linear and Conv weights with kaiming_uniform_(a=√5), i.e. U(±1/√fan_in), and biases
// with U(±1/√fan_in).
function initWeightAndBias(weight: Tensor, bias: Tensor | null, generator?: Generator): void {
  kaimingUniform_(weight, Math.sqrt(5), generator);
  if (bias !== null) {
    const { fanIn } = fans(weight);
    const bound = fanIn > 0 ? 1 / Math.sqrt(fanIn) : 0;
    uniform_(bias, -bound, bound, generator);
  }
}

/** y = x Wᵀ + b. Input [..., inFeatures], output [..., outFeatures]. */
export class Linear extends Module implements UnaryModule {
  readonly weight: Tensor;
  readonly bias: Tensor | null;

  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    opts: InitOptions & { bias?: boolean } = {},
  ) {
    super();
    checkPositiveInt('Linear', 'inFeatures', inFeatures);
    checkPositiveInt('Linear', 'outFeatures', outFeatures);
    this.weight = this.registerParameter('weight', empty([outFeatures, inFeatures], { device: opts.device }));
    this.bias = this.registerParameter('bias', opts.bias === false ? null : empty([outFeatures], { device: opts.device }));
    initWeightAndBias(this.weight, this.bias, opts.generator);
  }

  forward(x: Tensor): Tensor {
    return F.linear(x, this.weight, this.bias);
  }
}

export interface Conv2dOptions extends InitOptions {
  stride?: number;
  padding?: number;
  dilation?: number;
  groups?: number;
  bias?: boolean;
}

/** 2-D convolution over [N, C_in, H, W]. */
export class Conv2d extends Module implements UnaryModule {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  readonly stride: number;
  readonly padding: number;
  readonly dilation: number;
  readonly groups: number;

  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    readonly kernelSize: number,
    opts: Conv2dOptions = {},
  ) {
    super();
    checkPositiveInt('Conv2d', 'inChannels', inChannels);
    checkPositiveInt('Conv2d', 'outChannels', outChannels);
    checkPositiveInt('Conv2d', 'kernelSize', kernelSize);
    this.stride = opts.stride ?? 1;
    this.padding = opts.padding ?? 0;
    this.dilation = opts.dilation ?? 1;
    this.groups = opts.groups ?? 1;
    if (inChannels % this.groups !== 0 || outChannels % this.groups !== 0) {
      throw new RangeError(`Conv2d: groups (${this.groups}) must divide inChannels (${inChannels}) and outChannels (${outChannels})`);
    }
    const shape = [outChannels, inChannels / this.groups, kernelSize, kernelSize];
    this.weight = this.registerParameter('weight', empty(shape, { device: opts.device }));
    this.bias = this.registerParameter('bias', opts.bias === false ? null : empty([outChannels], { device: opts.device }));
    initWeightAndBias(this.weight, this.bias, opts.generator);
  }

  protected override applyMemoryFormat(format: MemoryFormat): void {
    const laidOut = this.weight.contiguous(format);
    this.weight.setData(laidOut);
    laidOut.dispose();
  }

  forward(x: Tensor): Tensor {
    return F.conv2d(x, this.weight, this.bias, { stride: this.stride, padding: this.padding, dilation: this.dilation, groups: this.groups });
  }
}

export interface BatchNormOptions {
  eps?: number;
  /** Weight of the newest batch in the running statistics; null for a cumulative average. */
  momentum?: number | null;
  affine?: boolean;
  trackRunningStats?: boolean;
  device?: string;
}

/** Batch normalisation over the channels of [N, C, H, W], with running statistics for evaluation. */
export class BatchNorm2d extends Module implements UnaryModule {
  readonly weight: Tensor | null;
  readonly bias: Tensor | null;
  readonly runningMean: Tensor | null;
  readonly runningVar: Tensor | null;
  readonly numBatchesTracked: Tensor | null;
  readonly eps: number;
  /** Mutable, as in PyTorch: null switches the running statistics to a cumulative average (see updateBatchNorm). */
  momentum: number | null;

  constructor(
    readonly numFeatures: number,
    opts: BatchNormOptions = {},
  ) {
    super();
    checkPositiveInt('BatchNorm2d', 'numFeatures', numFeatures);
    this.eps = opts.eps ?? 1e-5;
    this.momentum = opts.momentum === undefined ? 0.1 : opts.momentum;
    const device = opts.device;
    const affine = opts.affine ?? true;
    this.weight = this.registerParameter('weight', affine ? ones([numFeatures], { device }) : null);
    this.bias = this.registerParameter('bias', affine ? zeros([numFeatures], { device }) : null);
    const track = opts.trackRunningStats ?? true;
    this.runningMean = this.registerBuffer('running_mean', track ? zeros([numFeatures], { device }) : null);
    this.runningVar = this.registerBuffer('running_var', track ? ones([numFeatures], { device }) : null);
    this.numBatchesTracked = this.registerBuffer('num_batches_tracked', track ? tensor(0, { dtype: 'int64', device }) : null);
  }

  /**
   * The layer in evaluation mode as a per-channel affine map y = x · scale + shift ([C] each, new tensors):
   * scale = γ / √(running_var + ε), shift = β − running_mean · scale. What inference folds into one multiply-add.
   */
  evalAffine(): [Tensor, Tensor] {
    if (this.runningMean === null || this.runningVar === null) throw new Error('BatchNorm2d: no running statistics to fold');
    return noGrad(() => tidy(() => {
      let scale = rsqrt(this.runningVar!.add(this.eps));
      if (this.weight !== null) scale = scale.mul(this.weight);
      let shift = this.runningMean!.mul(scale).neg();
      if (this.bias !== null) shift = shift.add(this.bias);
      return [scale, shift] as [Tensor, Tensor];
    }));
  }

  /** Running statistics back to their initial state: mean 0, variance 1, no batch seen. */
  resetRunningStats(): void {
    noGrad(() => {
      this.runningMean?.zero_();
      this.runningVar?.fill_(1);
      this.numBatchesTracked?.zero_();
    });
  }

  forward(x: Tensor): Tensor {
    if (x.ndim !== 4) throw new RangeError(`BatchNorm2d: input must be rank 4, got rank ${x.ndim}`);
    let factor = this.momentum ?? 0;
    if (this.training && this.numBatchesTracked !== null) {
      noGrad(() => this.numBatchesTracked!.add_(1));
      if (this.momentum === null) factor = 1 / this.numBatchesTracked.item();
    }
    // Batch statistics in training, or when there are no running statistics to use.
    const useBatchStats = this.training || this.runningMean === null;
    return F.batchNorm(x, this.runningMean, this.runningVar, {
      weight: this.weight,
      bias: this.bias,
      training: useBatchStats,
      momentum: factor,
      eps: this.eps,
    });
  }
}

export class GELU extends Module implements UnaryModule {
  constructor(readonly approximate: 'none' | 'tanh' = 'none') {
    super();
  }
  forward(x: Tensor): Tensor {
    // Channel stride 1: the activations really are channels-last (NHWC in memory).
    if (this.memoryFormat === 'channels-last' && x.ndim === 4 && x.stride(1) === 1) return F.geluChannelsLast(x, this.approximate);
    return F.gelu(x, this.approximate);
  }
}

export class ReLU extends Module implements UnaryModule {
  forward(x: Tensor): Tensor {
    return F.relu(x);
  }
}

export class MaxPool2d extends Module implements UnaryModule {
  constructor(
    readonly kernelSize: number,
    readonly opts: F.Pool2dOptions = {},
  ) {
    super();
    checkPositiveInt('MaxPool2d', 'kernelSize', kernelSize);
  }
  forward(x: Tensor): Tensor {
    return F.maxPool2d(x, this.kernelSize, this.opts);
  }
}

/** Flattens dimensions startDim..endDim (by default all but the batch dimension). */
export class Flatten extends Module implements UnaryModule {
  constructor(
    readonly startDim = 1,
    readonly endDim = -1,
  ) {
    super();
  }
  forward(x: Tensor): Tensor {
    return x.flatten(this.startDim, this.endDim);
  }
}

/** Chains modules; children are named '0', '1', ... as in PyTorch. */
export class Sequential extends Module implements UnaryModule {
  readonly layers: UnaryModule[];

  constructor(...layers: UnaryModule[]) {
    super();
    this.layers = layers;
    layers.forEach((m, i) => this.registerModule(String(i), m));
  }

  forward(x: Tensor): Tensor {
    let h = x;
    for (const layer of this.layers) {
      const next = layer.forward(h);
      if (h !== x) h.dispose();
      h = next;
    }
    return h;
  }
}
