import { DataError } from './idx.ts';
import { checkImageSet, classCounts } from './image-set.ts';
import type { ImageSet } from './image-set.ts';

const TWO_32 = 4294967296;

/** splitmix32 (the 32-bit variant of SplitMix, as used to seed xoshiro generators): one step from `state`. */
function splitmix32(state: number): { state: number; value: number } {
  state = (state + 0x9e3779b9) | 0;
  let z = state;
  z = Math.imul(z ^ (z >>> 16), 0x21f0aaad);
  z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
  return { state, value: (z ^ (z >>> 15)) >>> 0 };
}

const rotl = (x: number, k: number): number => (x << k) | (x >>> (32 - k));

/**
 * Seeded PRNG: xoshiro128** (Blackman & Vigna), its 128-bit state filled by splitmix32 from an integer seed.
 * Deterministic across platforms; not cryptographic.
 */
export class Rng {
  private s0 = 0;
  private s1 = 0;
  private s2 = 0;
  private s3 = 0;

  /** @param seed any safe integer; the low and high 32 bits are folded into the splitmix32 seed. */
  constructor(seed: number) {
    if (!Number.isSafeInteger(seed)) throw new RangeError(`Rng seed must be a safe integer, got ${seed}`);
    const hi = Math.floor(seed / TWO_32) >>> 0;
    let state = (seed >>> 0) ^ Math.imul(hi, 0x85ebca6b);
    const words: number[] = [];
    for (let i = 0; i < 4; i++) {
      const r = splitmix32(state);
      state = r.state;
      words.push(r.value);
    }
    // xoshiro must not start from the all-zero state.
    if ((words[0]! | words[1]! | words[2]! | words[3]!) === 0) words[0] = 1;
    this.setState(words as [number, number, number, number]);
  }

  /** Generator with the raw xoshiro128** state (for checking against reference vectors). */
  static fromState(state: readonly [number, number, number, number]): Rng {
    const r = new Rng(0);
    r.setState(state);
    return r;
  }

  private setState([a, b, c, d]: readonly [number, number, number, number]): void {
    this.s0 = a | 0;
    this.s1 = b | 0;
    this.s2 = c | 0;
    this.s3 = d | 0;
  }

  /** Next raw output, a uniform integer in [0, 2^32). */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform float in [0, 1) with 32 bits of resolution. */
  next(): number {
    return this.nextUint32() / TWO_32;
  }

  /** Uniform integer in [0, n), without modulo bias; n must be an integer in [1, 2^32]. */
  int(n: number): number {
    if (!Number.isInteger(n) || n < 1 || n > TWO_32) throw new RangeError(`Rng.int: n must be an integer in [1, 2^32], got ${n}`);
    // Reject the top partial block so every residue is equally likely.
    const limit = TWO_32 - (TWO_32 % n);
    for (;;) {
      const x = this.nextUint32();
      if (x < limit) return x % n;
    }
  }
}

/** Writable array-like (plain arrays and typed arrays). */
export interface MutableArrayLike<T> {
  readonly length: number;
  [index: number]: T;
}

/** Shuffles `array` in place with Fisher-Yates using `rng`, and returns it. */
export function shuffle<A extends MutableArrayLike<unknown>>(array: A, rng: Rng): A {
  for (let i = array.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const tmp = array[i];
    array[i] = array[j];
    array[j] = tmp;
  }
  return array;
}

function checkCount(what: string, n: number): void {
  if (!Number.isInteger(n) || n < 0 || n > 0x7fffffff) throw new RangeError(`${what} must be a non-negative integer, got ${n}`);
}

/** A uniformly random permutation of 0..n-1, determined by `seed` (or drawn from `rng`). */
export function permutation(n: number, seed: number | Rng): Int32Array {
  checkCount('permutation: n', n);
  const perm = new Int32Array(n);
  for (let i = 0; i < n; i++) perm[i] = i;
  return shuffle(perm, typeof seed === 'number' ? new Rng(seed) : seed);
}

/**
 * New ImageSet holding the images at `indices` (in that order, repeats allowed); pixel and label data are copied.
 * @throws RangeError for an index that is not an integer in [0, count).
 */
export function subset(set: ImageSet, indices: ArrayLike<number>): ImageSet {
  const hw = set.height * set.width;
  const n = indices.length;
  const images = new Uint8Array(n * hw);
  const labels = new Uint8Array(n);
  for (let k = 0; k < n; k++) {
    const i = indices[k]!;
    if (!Number.isInteger(i) || i < 0 || i >= set.count) {
      throw new RangeError(`subset: index ${i} at position ${k} is out of range [0, ${set.count})`);
    }
    images.set(set.images.subarray(i * hw, (i + 1) * hw), k * hw);
    labels[k] = set.labels[i]!;
  }
  return { images, labels, count: n, height: set.height, width: set.width, numClasses: set.numClasses };
}

/**
 * New ImageSet with exactly `perClass` images of every class, picked at random and shuffled, determined by
 * `seed`. E.g. MNIST train with perClass = 5000 gives the balanced 50k training subset.
 * @throws DataError when some class has fewer than `perClass` images.
 */
export function balancedSubset(set: ImageSet, perClass: number, seed: number): ImageSet {
  checkCount('balancedSubset: perClass', perClass);
  checkImageSet(set);
  const counts = classCounts(set);
  counts.forEach((c, cls) => {
    if (c < perClass) {
      throw new DataError(`balancedSubset: class ${cls} has only ${c} images, fewer than the ${perClass} per class requested`);
    }
  });
  const byClass = counts.map((c) => new Int32Array(c));
  const fill = new Array<number>(set.numClasses).fill(0);
  for (let i = 0; i < set.count; i++) {
    const l = set.labels[i]!;
    byClass[l]![fill[l]!++] = i;
  }
  const rng = new Rng(seed);
  const chosen = new Int32Array(perClass * set.numClasses);
  byClass.forEach((idx, cls) => chosen.set(shuffle(idx, rng).subarray(0, perClass), cls * perClass));
  return subset(set, shuffle(chosen, rng));
}

/** Options for {@link batches}. */
export interface BatchOptions {
  /** Shuffle with this seed; without it the indices come in order 0..n-1. */
  seed?: number;
  /** Drop the last batch when it has fewer than batchSize indices. */
  dropLast?: boolean;
}

/**
 * One epoch of index batches over 0..n-1: every index once (the last batch may be short unless dropLast),
 * in a permutation fixed by `seed`, or in order when no seed is given. Arguments are checked on call.
 * @throws RangeError when n is not a non-negative integer or batchSize is not an integer >= 1.
 */
export function batches(n: number, batchSize: number, options: BatchOptions = {}): Generator<Int32Array, void, undefined> {
  checkCount('batches: n', n);
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new RangeError(`batches: batchSize must be an integer >= 1, got ${batchSize}`);
  }
  const { seed, dropLast = false } = options;
  let order: Int32Array;
  if (seed === undefined) {
    order = new Int32Array(n);
    for (let i = 0; i < n; i++) order[i] = i;
  } else {
    order = permutation(n, seed);
  }
  const end = dropLast ? n - (n % batchSize) : n;
  return (function* () {
    for (let start = 0; start < end; start += batchSize) yield order.slice(start, Math.min(start + batchSize, end));
  })();
}
