// The U-Net prepared for sampling, the way torch.jit.freeze prepares a model for inference: the same maths
// with fewer and cheaper operations per network evaluation.
//  - Batch norm in evaluation mode is a per-channel affine map; it is applied with one fused multiply-add.
//  - The FiLM modulation depends only on the context [t, label], which a sampling run knows in advance: the
//    γ and β of every step are computed once, in one batched pass, instead of an MLP per block per step.
//  - Optionally channels-last (NHWC) memory: libtorch's CPU convolutions are faster on it at small batch
//    sizes, while its GELU kernel is slow on it, so GELU runs on the NHWC view where memory is contiguous.
// Outputs equal UNet.forward's up to float rounding (tests hold them within 1e-5).
import * as F from '../nn/functional.ts';
import type { BatchNorm2d, Conv2d } from '../nn/layers.ts';
import { noGrad } from '../torch/grad-mode.ts';
import { addcmul } from '../torch/ops/pointwise.ts';
import { cat, indexSelect } from '../torch/ops/shape.ts';
import { consume, keep, tidy } from '../torch/scope.ts';
import type { Tensor } from '../torch/tensor.ts';
import type { DoubleConv, FiLM, UNet } from './unet.ts';

interface FrozenConv {
  weight: Tensor;
  bias: Tensor | null;
  padding: number;
}

interface FrozenDoubleConv {
  conv1: FrozenConv;
  /** Batch norm as y = x · scale + shift, [1, C, 1, 1]. */
  scale1: Tensor;
  shift1: Tensor;
  conv2: FrozenConv;
  scale2: Tensor;
  shift2: Tensor;
}

/** γ and β of one encoder block for M contexts, [M, C, 1, 1] each. */
export interface BlockModulation {
  gamma: Tensor;
  beta: Tensor;
}

/** The FiLM modulation of every encoder block for M contexts (rows in the order of the contexts). */
export type Modulation = BlockModulation[];

export interface InferenceUNetOptions {
  /** Run the convolutions on channels-last memory (default true on CPU). */
  channelsLast?: boolean;
}

export class InferenceUNet {
  readonly channelsLast: boolean;
  readonly #films: FiLM[];
  readonly #encoders: { pool: boolean; conv: FrozenDoubleConv }[];
  readonly #decoders: FrozenDoubleConv[];
  readonly #out: FrozenConv;
  readonly #depth: number;
  readonly #owned: Tensor[] = [];

  /**
   * Copies the convolution and normalisation weights of `unet` (in evaluation mode) as they are now: build a new
   * one after further training. The FiLM layers are used in place.
   */
  constructor(unet: UNet, opts: InferenceUNetOptions = {}) {
    const device = unet.parameters()[0]!.device;
    this.channelsLast = opts.channelsLast ?? device === 'cpu';
    this.#depth = unet.config.depth;
    this.#films = unet.encoders.map((e) => e.film);
    this.#encoders = noGrad(() => unet.encoders.map((e) => ({ pool: e.pool, conv: this.#freezeDouble(e.conv) })));
    this.#decoders = noGrad(() => unet.decoders.map((d) => this.#freezeDouble(d.conv)));
    this.#out = noGrad(() => this.#freezeConv(unet.out));
  }

  #own(t: Tensor): Tensor {
    this.#owned.push(keep(t));
    return t;
  }

  #freezeConv(c: Conv2d): FrozenConv {
    const weight = this.#own(tidy(() => c.weight.contiguous(this.channelsLast ? 'channels-last' : 'contiguous').clone()));
    return { weight, bias: c.bias === null ? null : this.#own(tidy(() => c.bias!.clone())), padding: c.padding };
  }

  #freezeNorm(bn: BatchNorm2d): [Tensor, Tensor] {
    const shape = [1, bn.numFeatures, 1, 1];
    return tidy(() => bn.evalAffine().map((t) => this.#own(t.view(shape))) as [Tensor, Tensor]);
  }

  #freezeDouble(d: DoubleConv): FrozenDoubleConv {
    const [scale1, shift1] = this.#freezeNorm(d.bn1);
    const [scale2, shift2] = this.#freezeNorm(d.bn2);
    return { conv1: this.#freezeConv(d.conv1), scale1, shift1, conv2: this.#freezeConv(d.conv2), scale2, shift2 };
  }

  /** γ and β of every encoder block for contexts [M, contextSize] (see unetContext). */
  modulation(context: Tensor): Modulation {
    return noGrad(() => this.#films.map((film) => film.modulation(context)));
  }

  /** The rows `index` (int64 [N]) of a modulation (copies). */
  static select(mod: Modulation, index: Tensor): Modulation {
    return mod.map(({ gamma, beta }) => ({ gamma: indexSelect(gamma, 0, index), beta: indexSelect(beta, 0, index) }));
  }

  /** Rows start…start+length of a modulation (views). */
  static rows(mod: Modulation, start: number, length: number): Modulation {
    return mod.map(({ gamma, beta }) => ({ gamma: gamma.narrow(0, start, length), beta: beta.narrow(0, start, length) }));
  }

  #conv(x: Tensor, c: FrozenConv): Tensor {
    return F.conv2d(x, c.weight, c.bias, { padding: c.padding });
  }

  // Each helper releases its input handle: at large batches, freeing activations as soon as they are used
  // lets the allocator hand the same memory back instead of faulting in fresh pages.
  #gelu(x: Tensor): Tensor {
    return consume(x, (t) => (this.channelsLast ? F.geluChannelsLast(t) : F.gelu(t)));
  }

  #double(x: Tensor, d: FrozenDoubleConv): Tensor {
    let h = this.#gelu(consume(x, (t) => this.#conv(t, d.conv1)));
    h = consume(h, (t) => addcmul(d.shift1, t, d.scale1));
    h = this.#gelu(consume(h, (t) => this.#conv(t, d.conv2)));
    return consume(h, (t) => addcmul(d.shift2, t, d.scale2));
  }

  /** ε̂ for x [N, inChannels, H, W] under a modulation of N rows; returns a contiguous (NCHW) tensor. */
  forward(x: Tensor, mod: Modulation): Tensor {
    const skips: Tensor[] = [];
    let h = this.channelsLast ? x.contiguous('channels-last') : x;
    this.#encoders.forEach((e, i) => {
      if (e.pool) h = consume(h, (t) => F.maxPool2d(t, 2), skips);
      const modulated = consume(h, (t) => addcmul(mod[i]!.beta, t, mod[i]!.gamma), [x, ...skips]);
      h = this.#double(modulated, e.conv);
      skips.push(h);
    });
    let d: Tensor | undefined;
    for (let i = 0; i < this.#depth; i++) {
      const level = this.#depth - 1 - i;
      const input = d === undefined ? skips.pop()! : consume(d, (t) => cat([t, skips[level]!], 1));
      d = this.#double(input, this.#decoders[i]!);
      const target = level > 0 ? skips[level - 1]! : undefined;
      if (target !== undefined && (d.shape[2] !== target.shape[2] || d.shape[3] !== target.shape[3])) {
        d = consume(d, (t) => F.interpolate(t, { size: [target.shape[2]!, target.shape[3]!], mode: 'bilinear', alignCorners: true }));
      }
    }
    for (const s of skips) s.dispose();
    const y = consume(d!, (t) => this.#conv(t, this.#out));
    return this.channelsLast ? consume(y, (t) => t.contiguous()) : y;
  }

  dispose(): void {
    for (const t of this.#owned) t.dispose();
    this.#owned.length = 0;
  }
}
