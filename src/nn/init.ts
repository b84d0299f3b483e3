// Parameter initialisers (torch.nn.init), in place under no-grad.
import { noGrad } from '../torch/grad-mode.ts';
import type { Generator } from '../torch/generator.ts';
import { normal_ as normalOp, uniform_ as uniformOp } from '../torch/ops/random.ts';
import type { Tensor } from '../torch/tensor.ts';

/** fan_in and fan_out of a weight [out, in, ...kernel], as PyTorch computes them. */
export function fans(t: Tensor): { fanIn: number; fanOut: number } {
  if (t.ndim < 2) throw new RangeError(`fans: need at least 2 dimensions, got shape [${t.shape.join(', ')}]`);
  const receptive = t.shape.slice(2).reduce((a, b) => a * b, 1);
  return { fanIn: t.shape[1]! * receptive, fanOut: t.shape[0]! * receptive };
}

export function uniform_(t: Tensor, low = 0, high = 1, generator?: Generator): Tensor {
  return noGrad(() => uniformOp(t, low, high, generator));
}

export function normal_(t: Tensor, mean = 0, std = 1, generator?: Generator): Tensor {
  return noGrad(() => normalOp(t, mean, std, generator));
}

export function zeros_(t: Tensor): Tensor {
  return noGrad(() => t.zero_());
}

export function ones_(t: Tensor): Tensor {
  return noGrad(() => t.fill_(1));
}

/** Gain for a leaky ReLU with negative slope `a` (torch.nn.init.calculate_gain('leaky_relu', a)). */
export function leakyReluGain(a: number): number {
  return Math.sqrt(2 / (1 + a * a));
}

/** U(-b, b) with b = gain·√(3 / fan_in), gain for leaky ReLU slope `a` (kaiming_uniform_, mode fan_in). */
export function kaimingUniform_(t: Tensor, a = 0, generator?: Generator): Tensor {
  const bound = leakyReluGain(a) * Math.sqrt(3 / fans(t).fanIn);
  return uniform_(t, -bound, bound, generator);
}

/** U(-b, b) with b = gain·√(6 / (fan_in + fan_out)). */
export function xavierUniform_(t: Tensor, gain = 1, generator?: Generator): Tensor {
  const { fanIn, fanOut } = fans(t);
  const bound = gain * Math.sqrt(6 / (fanIn + fanOut));
  return uniform_(t, -bound, bound, generator);
}
