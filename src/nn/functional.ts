// Stateless neural-network operators (torch.nn.functional). Shapes follow PyTorch: images are NCHW.
import { tensorOp, tensorsOp } from '../torch/dispatch.ts';
import type { Tensor } from '../torch/tensor.ts';
import { scalarType } from '../torch/dtype.ts';
import type { Generator } from '../torch/generator.ts';

type Pair = number | readonly [number, number];

const linearOp = tensorOp('linear');
const conv2dOp = tensorOp('conv2d');
const maxPool2dOp = tensorOp('max_pool2d');
const avgPool2dOp = tensorOp('avg_pool2d');
const batchNormOp = tensorOp('batch_norm');
const geluOp = tensorOp('gelu');
const reluOp = tensorOp('relu');
const siluOp = tensorOp('silu');
const softmaxOp = tensorOp('softmax', 'int');
const logSoftmaxOp = tensorOp('log_softmax', 'int');
const crossEntropyOp = tensorOp('cross_entropy_loss');
const nllLossOp = tensorOp('nll_loss_nd');
const mseLossOp = tensorOp('mse_loss');
const oneHotOp = tensorOp('one_hot');
const bilinearOp = tensorOp('upsample_bilinear2d');
const bilinearAAOp = tensorOp('_upsample_bilinear2d_aa');
const nearestOp = tensorOp('upsample_nearest2d');
const dropoutOp = tensorsOp('native_dropout');
const bernoulliOp = tensorOp('bernoulli', 'p');
const toOp = tensorOp('to', 'dtype');

export type Reduction = 'none' | 'mean' | 'sum';
const REDUCTION: Record<Reduction, number> = { none: 0, mean: 1, sum: 2 };

function reduction(r: Reduction): number {
  const code = REDUCTION[r];
  if (code === undefined) throw new TypeError(`reduction must be 'none', 'mean' or 'sum', got '${r}'`);
  return code;
}

function pair(v: Pair): readonly [number, number] {
  return typeof v === 'number' ? [v, v] : v;
}

function expectRank(name: string, x: Tensor, rank: number): void {
  if (x.ndim !== rank) throw new RangeError(`${name}: input must be rank ${rank}, got rank ${x.ndim} [${x.shape.join(', ')}]`);
}

/**
 * y = x Wᵀ + b.
 * @param x [..., in]
 * @param weight [out, in]
 * @param bias [out]
 */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  return linearOp(x, weight, bias ?? null);
}

export interface Conv2dOptions {
  stride?: Pair;
  padding?: Pair;
  dilation?: Pair;
  groups?: number;
}

/**
 * 2-D cross-correlation.
 * @param x [N, C_in, H, W]
 * @param weight [C_out, C_in / groups, kH, kW]
 * @param bias [C_out]
 */
export function conv2d(x: Tensor, weight: Tensor, bias?: Tensor | null, opts: Conv2dOptions = {}): Tensor {
  expectRank('conv2d', x, 4);
  return conv2dOp(x, weight, bias ?? null, pair(opts.stride ?? 1), pair(opts.padding ?? 0), pair(opts.dilation ?? 1), opts.groups ?? 1);
}

export interface Pool2dOptions {
  /** Defaults to the kernel size. */
  stride?: Pair;
  padding?: Pair;
  ceilMode?: boolean;
}

/** Max pooling over [N, C, H, W]. */
export function maxPool2d(x: Tensor, kernelSize: Pair, opts: Pool2dOptions = {}): Tensor {
  expectRank('maxPool2d', x, 4);
  return maxPool2dOp(x, pair(kernelSize), pair(opts.stride ?? kernelSize), pair(opts.padding ?? 0), [1, 1], opts.ceilMode ?? false);
}

/** Average pooling over [N, C, H, W]. */
export function avgPool2d(x: Tensor, kernelSize: Pair, opts: Pool2dOptions = {}): Tensor {
  expectRank('avgPool2d', x, 4);
  return avgPool2dOp(x, pair(kernelSize), pair(opts.stride ?? kernelSize), pair(opts.padding ?? 0), opts.ceilMode ?? false, true, null);
}

export interface BatchNormOptions {
  weight?: Tensor | null;
  bias?: Tensor | null;
  /** Normalise with batch statistics (and update the running ones) rather than with the running ones. */
  training?: boolean;
  momentum?: number;
  eps?: number;
}

/**
 * Batch normalisation over dimension 1. In training, `runningMean`/`runningVar` are updated in place with
 * `momentum` (the running variance uses the unbiased batch variance, as PyTorch does).
 */
export function batchNorm(x: Tensor, runningMean: Tensor | null, runningVar: Tensor | null, opts: BatchNormOptions = {}): Tensor {
  return batchNormOp(x, opts.weight ?? null, opts.bias ?? null, runningMean, runningVar, opts.training ?? false, opts.momentum ?? 0.1, opts.eps ?? 1e-5, true);
}

/** Gaussian error linear unit; `approximate: 'tanh'` for the tanh approximation. */
export function gelu(x: Tensor, approximate: 'none' | 'tanh' = 'none'): Tensor {
  return geluOp(x, approximate);
}

/**
 * GELU of a channels-last [N, C, H, W] tensor, computed on its NHWC view, where memory is contiguous: libtorch's
 * CPU GELU kernel is several times slower on channels-last strides. Differentiable.
 */
export function geluChannelsLast(x: Tensor, approximate: 'none' | 'tanh' = 'none'): Tensor {
  const nhwc = x.permute([0, 2, 3, 1]);
  const g = gelu(nhwc, approximate);
  nhwc.dispose();
  const y = g.permute([0, 3, 1, 2]);
  g.dispose();
  return y;
}

/**
 * x itself in the forward (a view of [N, C, H, W] channels-last memory); in the backward, its gradient made dense
 * in channels-last memory. `cat` hands each input back a channel slice of its gradient, and libtorch 1.13's CPU
 * backward kernels take slow strided paths on such slices (bilinear upsampling's: 3-4× slower). The reshape of the
 * NHWC view to [N, H·W·C] is free forwards and copies a strided gradient densely backwards.
 */
export function denseChannelsLastGrad(x: Tensor): Tensor {
  expectRank('denseChannelsLastGrad', x, 4);
  const [n, c, h, w] = x.shape as [number, number, number, number];
  const nhwc = x.permute([0, 2, 3, 1]);
  const flat = nhwc.reshape([n, h * w * c]);
  const back = flat.reshape([n, h, w, c]);
  const y = back.permute([0, 3, 1, 2]);
  for (const t of [nhwc, flat, back]) t.dispose();
  return y;
}

export const relu = (x: Tensor): Tensor => reluOp(x);
export const silu = (x: Tensor): Tensor => siluOp(x);
export const softmax = (x: Tensor, dim: number): Tensor => softmaxOp(x, dim, null);
export const logSoftmax = (x: Tensor, dim: number): Tensor => logSoftmaxOp(x, dim, null);

export interface CrossEntropyOptions {
  reduction?: Reduction;
  labelSmoothing?: number;
  weight?: Tensor | null;
  ignoreIndex?: number;
}

/**
 * Cross-entropy between logits [N, C] and int64 class indices [N].
 */
export function crossEntropy(logits: Tensor, target: Tensor, opts: CrossEntropyOptions = {}): Tensor {
  return crossEntropyOp(logits, target, opts.weight ?? null, reduction(opts.reduction ?? 'mean'), opts.ignoreIndex ?? -100, opts.labelSmoothing ?? 0);
}

/** Negative log-likelihood of log-probabilities [N, C] at int64 targets [N]. */
export function nllLoss(logProbs: Tensor, target: Tensor, r: Reduction = 'mean'): Tensor {
  return nllLossOp(logProbs, target, null, reduction(r), -100);
}

/** Mean squared error. */
export function mseLoss(input: Tensor, target: Tensor, r: Reduction = 'mean'): Tensor {
  return mseLossOp(input, target, reduction(r));
}

/** One-hot encoding of int64 indices; float32 result unless `dtype` says otherwise (PyTorch gives int64). */
export function oneHot(indices: Tensor, numClasses: number, dtype: 'float32' | 'int64' = 'float32'): Tensor {
  const hot = oneHotOp(indices, numClasses);
  if (dtype === 'int64') return hot;
  const out = toOp(hot, scalarType(dtype), false, false, null);
  hot.dispose();
  return out;
}

export interface InterpolateOptions {
  /** Output [H, W]; give this or `scaleFactor`. */
  size?: Pair;
  scaleFactor?: number;
  mode?: 'bilinear' | 'nearest';
  /** Bilinear only: corner pixels of input and output align (PyTorch's align_corners). */
  alignCorners?: boolean;
  /** Bilinear only: low-pass filter when downscaling (PyTorch's antialias, as PIL does). */
  antialias?: boolean;
}

/** Resizes [N, C, H, W] images (torch.nn.functional.interpolate). */
export function interpolate(x: Tensor, opts: InterpolateOptions): Tensor {
  expectRank('interpolate', x, 4);
  const [h, w] = [x.shape[2]!, x.shape[3]!];
  let size: readonly [number, number];
  let scales: [number | null, number | null] = [null, null];
  if (opts.size !== undefined) {
    size = pair(opts.size);
  } else if (opts.scaleFactor !== undefined && opts.scaleFactor > 0) {
    size = [Math.floor(h * opts.scaleFactor), Math.floor(w * opts.scaleFactor)];
    scales = [opts.scaleFactor, opts.scaleFactor];
  } else {
    throw new RangeError('interpolate: give `size` or a positive `scaleFactor`');
  }
  const mode = opts.mode ?? 'bilinear';
  if (mode === 'nearest') return nearestOp(x, size, scales[0], scales[1]);
  if (mode !== 'bilinear') throw new TypeError(`interpolate: unsupported mode '${String(mode)}'`);
  const op = opts.antialias ? bilinearAAOp : bilinearOp;
  // libtorch 1.13's CPU bilinear kernels (and their backward) have no vectorised bfloat16 path: ~10× slower than
  // float32, a third of a bfloat16 U-Net training step. Resize in float32, as autocast would for an fp32-list op.
  if (x.dtype === 'bfloat16' && x.device === 'cpu') {
    const wide = x.float();
    const y = op(wide, size, opts.alignCorners ?? false, scales[0], scales[1]);
    wide.dispose();
    return y;
  }
  return op(x, size, opts.alignCorners ?? false, scales[0], scales[1]);
}

/** Zeroes elements with probability p and rescales the rest by 1/(1-p) when `training`. */
export function dropout(x: Tensor, p = 0.5, training = true, generator?: Generator): Tensor {
  if (p < 0 || p > 1) throw new RangeError(`dropout: p must be in [0, 1], got ${p}`);
  if (!training || p === 0) return x.mul(1);
  if (generator !== undefined) {
    const keepMask = bernoulliOp(x, 1 - p, generator);
    const out = x.mul(keepMask).div(1 - p);
    keepMask.dispose();
    return out;
  }
  const [out, mask] = dropoutOp(x, p, true) as [Tensor, Tensor];
  mask.dispose();
  return out;
}
