// The paper's class-conditional U-Net (its appendix, with the block order of the author's public code):
// encoder blocks pool → FiLM → (conv → GELU → BN) ×2, decoder blocks (conv → GELU → BN) ×2 → bilinear
// upsample (aligned corners) to the skip's size, FiLM fed the context [t/(T−1), one-hot label].
import { cat } from '../torch/ops/shape.ts';
import { consume, tidy } from '../torch/scope.ts';
import type { Tensor } from '../torch/tensor.ts';
import * as F from '../nn/functional.ts';
import { BatchNorm2d, Conv2d, GELU, Linear } from '../nn/layers.ts';
import { Module } from '../nn/module.ts';

export interface UNetConfig {
  /** Image channels in (1; 2 for the upscaler, whose input is noisy image ⊕ conditioning image). */
  inChannels: number;
  /** Channels predicted (1: the noise ε of one grey image). */
  outChannels: number;
  /** Width of the first block; block i has baseChannels·2^i channels. */
  baseChannels: number;
  /** Number of encoder (and decoder) blocks. */
  depth: number;
  numClasses: number;
  /** Context values beyond [t, one-hot label] (e.g. a conditioning-noise level). */
  extraContext?: number;
}

export const PAPER_UNET: UNetConfig = { inChannels: 1, outChannels: 1, baseChannels: 16, depth: 3, numClasses: 10 };

/** Feature-wise linear modulation: a two-layer MLP maps the context to per-channel γ and β; out = γ·x + β. */
export class FiLM extends Module {
  readonly fc1: Linear;
  readonly fc2: Linear;

  constructor(
    contextSize: number,
    readonly channels: number,
  ) {
    super();
    this.fc1 = this.registerModule('fc1', new Linear(contextSize, channels));
    this.fc2 = this.registerModule('fc2', new Linear(channels, 2 * channels));
  }

  /** γ and β for contexts [M, contextSize], [M, C, 1, 1] each. */
  modulation(context: Tensor): { gamma: Tensor; beta: Tensor } {
    return tidy(() => {
      const gb = this.fc2.forward(F.gelu(this.fc1.forward(context)));
      const m = gb.size(0);
      return {
        gamma: gb.narrow(1, 0, this.channels).reshape([m, this.channels, 1, 1]),
        beta: gb.narrow(1, this.channels, this.channels).reshape([m, this.channels, 1, 1]),
      };
    });
  }

  forward(x: Tensor, context: Tensor): Tensor {
    const { gamma, beta } = this.modulation(context);
    const out = x.mul(gamma).add_(beta);
    gamma.dispose();
    beta.dispose();
    return out;
  }
}

/** (conv 3×3 → GELU → BN) twice. */
export class DoubleConv extends Module {
  readonly conv1: Conv2d;
  readonly bn1: BatchNorm2d;
  readonly conv2: Conv2d;
  readonly bn2: BatchNorm2d;
  readonly act: GELU;

  constructor(inChannels: number, outChannels: number) {
    super();
    this.conv1 = this.registerModule('conv1', new Conv2d(inChannels, outChannels, 3, { padding: 1 }));
    this.bn1 = this.registerModule('bn1', new BatchNorm2d(outChannels));
    this.conv2 = this.registerModule('conv2', new Conv2d(outChannels, outChannels, 3, { padding: 1 }));
    this.bn2 = this.registerModule('bn2', new BatchNorm2d(outChannels));
    this.act = this.registerModule('act', new GELU());
  }

  forward(x: Tensor): Tensor {
    let h = this.conv1.forward(x);
    h = consume(h, (t) => this.act.forward(t));
    h = consume(h, (t) => this.bn1.forward(t));
    h = consume(h, (t) => this.conv2.forward(t));
    h = consume(h, (t) => this.act.forward(t));
    return consume(h, (t) => this.bn2.forward(t));
  }
}

export class EncoderBlock extends Module {
  readonly film: FiLM;
  readonly conv: DoubleConv;

  constructor(
    contextSize: number,
    inChannels: number,
    outChannels: number,
    readonly pool: boolean,
  ) {
    super();
    this.film = this.registerModule('film', new FiLM(contextSize, inChannels));
    this.conv = this.registerModule('conv', new DoubleConv(inChannels, outChannels));
  }

  forward(x: Tensor, context: Tensor): Tensor {
    const pooled = this.pool ? F.maxPool2d(x, 2) : x;
    const modulated = this.film.forward(pooled, context);
    if (pooled !== x) pooled.dispose();
    return consume(modulated, (t) => this.conv.forward(t));
  }
}

export class DecoderBlock extends Module {
  readonly conv: DoubleConv;

  constructor(inChannels: number, outChannels: number) {
    super();
    this.conv = this.registerModule('conv', new DoubleConv(inChannels, outChannels));
  }

  /** Upsamples to `size` ([H, W]) when given. */
  forward(x: Tensor, size?: readonly [number, number]): Tensor {
    const h = this.conv.forward(x);
    if (size === undefined || (h.shape[2] === size[0] && h.shape[3] === size[1])) return h;
    return consume(h, (t) => F.interpolate(t, { size, mode: 'bilinear', alignCorners: true }));
  }
}

/**
 * ε-prediction network. `forward(x, context)`: x [N, inChannels, H, W], context [N, 1 + numClasses (+ extra)]
 * → [N, outChannels, H, W]. Build the context with `unetContext`.
 */
export class UNet extends Module {
  readonly config: Readonly<UNetConfig>;
  readonly encoders: EncoderBlock[] = [];
  readonly decoders: DecoderBlock[] = [];
  readonly out: Conv2d;

  constructor(config: UNetConfig) {
    super();
    for (const k of ['inChannels', 'outChannels', 'baseChannels', 'depth', 'numClasses'] as const) {
      const v = config[k];
      if (!Number.isInteger(v) || v < 1) throw new RangeError(`UNet: ${k} must be a positive integer, got ${v}`);
    }
    this.config = Object.freeze({ ...config });
    const ctx = 1 + config.numClasses + (config.extraContext ?? 0);
    const width = (i: number) => config.baseChannels * 2 ** i;
    for (let i = 0; i < config.depth; i++) {
      const block = new EncoderBlock(ctx, i === 0 ? config.inChannels : width(i - 1), width(i), i > 0);
      this.encoders.push(this.registerModule(`enc${i}`, block));
    }
    // Decoder i takes the deeper features (concatenated with the matching skip after the first) and
    // narrows them to the next skip's width.
    for (let i = 0; i < config.depth; i++) {
      const level = config.depth - 1 - i;
      const inCh = i === 0 ? width(level) : 2 * width(level);
      const outCh = width(Math.max(level - 1, 0));
      this.decoders.push(this.registerModule(`dec${i}`, new DecoderBlock(inCh, outCh)));
    }
    this.out = this.registerModule('out', new Conv2d(config.baseChannels, config.outChannels, 3, { padding: 1 }));
  }

  forward(x: Tensor, context: Tensor): Tensor {
    const { depth } = this.config;
    const skips: Tensor[] = [];
    const channelsLast = this.memoryFormat === 'channels-last';
    let h = channelsLast ? x.contiguous('channels-last') : x;
    for (const enc of this.encoders) {
      const next = enc.forward(h, context);
      if (h !== x && skips.length === 0) h.dispose();
      h = next;
      skips.push(h);
    }
    let d: Tensor | undefined;
    for (let i = 0; i < depth; i++) {
      const level = depth - 1 - i;
      // cat hands d back a channel slice of its gradient, on which the backward kernels before it are slow.
      const dense = d !== undefined && channelsLast ? F.denseChannelsLastGrad(d) : d;
      const input = dense === undefined ? skips[level]! : cat([dense, skips[level]!], 1);
      if (dense !== d) dense!.dispose();
      const target = level > 0 ? skips[level - 1]! : undefined;
      const next = this.decoders[i]!.forward(input, target ? [target.shape[2]!, target.shape[3]!] : undefined);
      if (d !== undefined) {
        d.dispose();
        input.dispose();
      }
      d = next;
    }
    for (const s of skips) s.dispose();
    const y = this.out.forward(d!);
    d!.dispose();
    return channelsLast ? consume(y, (t) => t.contiguous()) : y;
  }
}

/**
 * The FiLM context [t/(T−1), one-hot(label) (, extra)] for timesteps t ∈ {0..T−1} (int64 [N]) and labels
 * (int64 [N]; numClasses is the null label of classifier-free guidance, whose one-hot part is all zeros), as
 * float32 [N, 1 + numClasses (+ k)]; `extra` [N, k] holds further context values (e.g. the conditioning-noise
 * level of an augmented upscaler).
 */
export function unetContext(t: Tensor, numTimesteps: number, labels: Tensor, numClasses: number, extra?: Tensor): Tensor {
  const time = t.float();
  const divided = time.div(Math.max(numTimesteps - 1, 1));
  const scaled = divided.unsqueeze(1);
  const withNull = F.oneHot(labels, numClasses + 1);
  const hot = withNull.narrow(1, 0, numClasses);
  const ctx = cat(extra === undefined ? [scaled, hot] : [scaled, hot, extra], 1);
  for (const x of [time, divided, scaled, withNull, hot]) x.dispose();
  return ctx;
}
