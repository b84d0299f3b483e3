// Seeded noise for the page: xoshiro128** (Blackman & Vigna) seeded through splitmix32, and standard normal
// values by the Box–Muller transform. The same seed gives the same noise in every browser; it is not libtorch's
// stream (the page cannot reach libtorch), so a seed samples differently here and in Node — tests that compare
// the two engines pass the noise in instead.

function splitmix32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
}

const rotl = (x: number, k: number) => (x << k) | (x >>> (32 - k));

export class NoiseRng {
  readonly #s = new Uint32Array(4);
  #spare: number | undefined;

  /** `seed`: a non-negative integer below 2^32. */
  constructor(seed: number) {
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new RangeError(`seed must be an integer in 0..4294967295, got ${seed}`);
    const next = splitmix32(seed);
    for (let i = 0; i < 4; i++) this.#s[i] = next();
  }

  /** 32 random bits. */
  nextUint32(): number {
    const s = this.#s;
    const result = Math.imul(rotl(Math.imul(s[1]!, 5), 7), 9) >>> 0;
    const t = s[1]! << 9;
    s[2]! ^= s[0]!;
    s[3]! ^= s[1]!;
    s[1]! ^= s[2]!;
    s[0]! ^= s[3]!;
    s[2]! ^= t;
    s[3] = rotl(s[3]!, 11);
    return result;
  }

  /** Uniform on (0, 1]: 53 random bits, never 0 (Box–Muller takes its logarithm). */
  uniform(): number {
    const hi = this.nextUint32() >>> 5;
    const lo = this.nextUint32() >>> 6;
    return (hi * 67108864 + lo + 1) / 9007199254740992;
  }

  /** One standard normal value; Box–Muller makes them in pairs, the second is kept for the next call. */
  normal(): number {
    if (this.#spare !== undefined) {
      const v = this.#spare;
      this.#spare = undefined;
      return v;
    }
    const r = Math.sqrt(-2 * Math.log(this.uniform()));
    const theta = 2 * Math.PI * this.uniform();
    this.#spare = r * Math.sin(theta);
    return r * Math.cos(theta);
  }

  /** `count` standard normal values as float32. */
  randn(count: number): Float32Array {
    const out = new Float32Array(count);
    for (let i = 0; i < count; i++) out[i] = this.normal();
    return out;
  }
}
