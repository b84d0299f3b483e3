// Synchronised batch norm (torch.nn.SyncBatchNorm): in training, every BatchNorm2d normalises with the mean and
// variance of the whole global batch, summed over the ranks by differentiable all-reduces, so that N ranks with
// B/N images each compute what one process computes with B. Running statistics are then the same on every rank.
import { BatchNorm2d } from '../nn/layers.ts';
import type { Module } from '../nn/module.ts';
import { noGrad } from '../torch/grad-mode.ts';
import { tensor } from '../torch/ops/creation.ts';
import { rsqrt } from '../torch/ops/pointwise.ts';
import { cat } from '../torch/ops/shape.ts';
import type { Tensor } from '../torch/tensor.ts';
import type { ProcessGroup } from './process-group.ts';

/**
 * Makes every BatchNorm2d of `module` synchronised over `group`'s ranks in training mode (evaluation mode is
 * unchanged). The layers keep their identity, parameters and buffers: their forward is replaced. Every rank
 * must then run forward and backward passes in step, with at least one image each.
 * @returns how many layers were converted.
 */
export function convertSyncBatchNorm(module: Module, group: ProcessGroup): number {
  let converted = 0;
  for (const [, m] of module.namedModules()) {
    if (!(m instanceof BatchNorm2d)) continue;
    const local = m.forward.bind(m);
    m.forward = (x: Tensor) => (m.training ? syncForward(m, x, group) : local(x));
    converted++;
  }
  return converted;
}

/**
 * `x` through a flat view and back, so that backward hands x its gradient in x's own memory layout, as aten's
 * batch norm does. Otherwise a channels-last gradient can reach an NCHW activation (the first block's, whose
 * one-channel input leaves its convolution's output NCHW), and libtorch 1.13's GELU backward is wrong for mixed
 * layouts (PyTorch 1.13 too: gelu(x).mul(w_channels_last).sum().backward() gives x a wrong gradient).
 */
function withOwnLayoutGradient(x: Tensor): Tensor {
  const [n, c, h, w] = x.shape as [number, number, number, number];
  if (x.stride(3) === 1 && x.stride(2) === w && x.stride(1) === h * w) return x.reshape([-1]).view([n, c, h, w]);
  if (x.stride(1) === 1 && x.stride(3) === c && x.stride(2) === w * c) return x.permute([0, 2, 3, 1]).reshape([-1]).view([n, h, w, c]).permute([0, 3, 1, 2]);
  return x;
}

function syncForward(bn: BatchNorm2d, x: Tensor, group: ProcessGroup): Tensor {
  if (x.ndim !== 4) throw new RangeError(`BatchNorm2d: input must be rank 4, got rank ${x.ndim}`);
  const channels = x.size(1);
  const shape = [1, channels, 1, 1];
  const localCount = x.size(0) * x.size(2) * x.size(3);
  // Two passes, as libtorch computes them: the global mean first, then the global variance around it.
  x = withOwnLayoutGradient(x);
  const sums = group.allReduceSumWithGrad(cat([x.sum([0, 2, 3]), tensor([localCount], { device: x.device })]));
  const count = sums.narrow(0, channels, 1).item();
  const mean = sums.narrow(0, 0, channels).div(count);
  const centred = x.sub(mean.view(shape));
  const variance = group.allReduceSumWithGrad(centred.square().sum([0, 2, 3])).div(count);
  // γ / √(σ² + ε) per channel first: the activations see one multiply (and one add).
  let scale = rsqrt(variance.add(bn.eps));
  if (bn.weight !== null) scale = scale.mul(bn.weight);
  let y = centred.mul(scale.view(shape));
  if (bn.bias !== null) y = y.add(bn.bias.view(shape));
  if (bn.runningMean !== null && bn.runningVar !== null) {
    noGrad(() => {
      bn.numBatchesTracked?.add_(1);
      const factor = bn.momentum ?? 1 / (bn.numBatchesTracked?.item() ?? 1);
      bn.runningMean!.mul_(1 - factor).add_(mean.detach().mul(factor));
      // Running variance is unbiased, as in PyTorch.
      bn.runningVar!.mul_(1 - factor).add_(variance.detach().mul((factor * count) / Math.max(count - 1, 1)));
    });
  }
  return y;
}
