import { type DType, scalarType } from '../dtype.ts';
import { inplaceOp, tensorOp } from '../dispatch.ts';
import type { Generator } from '../generator.ts';
import type { Tensor } from '../tensor.ts';

export interface RandomOptions {
  /** A seeded generator; the global one (see `manualSeed`) when absent. */
  generator?: Generator;
  dtype?: DType;
  device?: string;
}

const randnOp = tensorOp('randn', 'generator');
const randOp = tensorOp('rand', 'generator');
const randintOp = tensorOp('randint', 'low_generator');
const randpermOp = tensorOp('randperm', 'generator');
const normalOp = inplaceOp('normal_');
const uniformOp = inplaceOp('uniform_');
const bernoulliOp = tensorOp('bernoulli', 'p');

/** Standard normal samples. */
export function randn(shape: readonly number[], opts: RandomOptions = {}): Tensor {
  return randnOp(shape, opts.generator ?? null, scalarType(opts.dtype), null, opts.device);
}

/** Uniform samples on [0, 1). */
export function rand(shape: readonly number[], opts: RandomOptions = {}): Tensor {
  return randOp(shape, opts.generator ?? null, scalarType(opts.dtype), null, opts.device);
}

/** Integers uniform on [low, high); int64 unless `dtype` says otherwise. */
export function randint(low: number, high: number, shape: readonly number[], opts: RandomOptions = {}): Tensor {
  if (!(high > low)) throw new RangeError(`randint: high (${high}) must exceed low (${low})`);
  return randintOp(low, high, shape, opts.generator ?? null, scalarType(opts.dtype ?? 'int64'), null, opts.device);
}

/** A random permutation of 0..n-1 (int64). */
export function randperm(n: number, opts: RandomOptions = {}): Tensor {
  return randpermOp(n, opts.generator ?? null, scalarType(opts.dtype ?? 'int64'), null, opts.device);
}

/** Fills `t` in place with N(mean, std²) samples. */
export function normal_(t: Tensor, mean = 0, std = 1, generator?: Generator): Tensor {
  return normalOp(t, mean, std, generator ?? null);
}

/** Fills `t` in place with samples uniform on [low, high). */
export function uniform_(t: Tensor, low = 0, high = 1, generator?: Generator): Tensor {
  return uniformOp(t, low, high, generator ?? null);
}

/** Bernoulli(p) samples shaped like `t`. */
export function bernoulli(t: Tensor, p: number, generator?: Generator): Tensor {
  return bernoulliOp(t, p, generator ?? null);
}
