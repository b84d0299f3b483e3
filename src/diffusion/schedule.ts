// Noise schedules: a model's configuration names one (kind, number of timesteps, exponent); NoiseSchedule builds
// its terms once, in float64 (lucidrains' habit), and the same object serves training and every scheduler.

/**
 * The cosine β schedule of Nichol & Dhariwal (2021) with a configurable exponent:
 *   f(t) = cos(((t/T + s) / (1 + s)) · π/2)^power,  β_t = min(1 − f(t+1)/f(t), maxBeta),  t = 0..T−1.
 * Nichol & Dhariwal use power 2; the paper uses 1.5, which leaves the high-noise regime sooner.
 */
export function cosineBetas(numTimesteps: number, power = 1.5, s = 0.003, maxBeta = 0.999): Float64Array {
  if (!Number.isInteger(numTimesteps) || numTimesteps < 1) throw new RangeError(`cosineBetas: the number of timesteps T must be a positive integer, got ${numTimesteps}`);
  if (!(power > 0)) throw new RangeError(`cosineBetas: power must be positive, got ${power}`);
  const f = (t: number) => Math.cos(((t / numTimesteps + s) / (1 + s)) * (Math.PI / 2)) ** power;
  const betas = new Float64Array(numTimesteps);
  for (let t = 0; t < numTimesteps; t++) betas[t] = Math.min(Math.max(1 - f(t + 1) / f(t), 0), maxBeta);
  return betas;
}

/** β_t evenly spaced from `start` to `end` (Ho et al. 2020 use 1e-4 → 0.02 over 1000 steps). */
export function linearBetas(numTimesteps: number, start = 1e-4, end = 0.02): Float64Array {
  if (!Number.isInteger(numTimesteps) || numTimesteps < 1) throw new RangeError(`linearBetas: the number of timesteps T must be a positive integer, got ${numTimesteps}`);
  const betas = new Float64Array(numTimesteps);
  for (let t = 0; t < numTimesteps; t++) betas[t] = numTimesteps === 1 ? start : start + ((end - start) * t) / (numTimesteps - 1);
  return betas;
}

/** Every quantity the forward and reverse processes need, indexed by t = 0..T−1 (float64). */
export interface ScheduleTerms {
  betas: Float64Array;
  alphas: Float64Array;
  /** ᾱ_t = ∏_{s≤t} α_s */
  alphasCumprod: Float64Array;
  /** ᾱ_{t−1}, with ᾱ_{−1} = 1 */
  alphasCumprodPrev: Float64Array;
  sqrtAlphasCumprod: Float64Array;
  sqrtOneMinusAlphasCumprod: Float64Array;
  /** β̃_t = β_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t), the variance of q(x_{t−1} | x_t, x_0) */
  posteriorVariance: Float64Array;
  /** μ̃_t = coef1 · x_0 + coef2 · x_t (Ho et al. eq. 7) */
  posteriorMeanCoef1: Float64Array;
  posteriorMeanCoef2: Float64Array;
}

/**
 * The schedule rescaled to zero terminal SNR (Lin et al. 2024, Algorithm 1): √ᾱ_t shifted so that it reaches 0
 * at t = T−1 and scaled so that √ᾱ_0 stays, β_t recomputed from it (β_{T−1} = 1: the last x_t is pure noise,
 * as sampling starts). Training then sees the noise level sampling starts from.
 */
export function rescaleZeroTerminalSnr(betas: Float64Array): Float64Array {
  const T = betas.length;
  if (T < 2) throw new RangeError('rescaleZeroTerminalSnr: needs at least 2 timesteps');
  const root = new Float64Array(T);
  let prod = 1;
  for (let t = 0; t < T; t++) root[t] = Math.sqrt((prod *= 1 - betas[t]!));
  const [first, last] = [root[0]!, root[T - 1]!];
  const out = new Float64Array(T);
  let prevAb = 1;
  for (let t = 0; t < T; t++) {
    const ab = t === T - 1 ? 0 : (((root[t]! - last) * first) / (first - last)) ** 2;
    out[t] = 1 - ab / prevAb;
    prevAb = ab;
  }
  return out;
}

export function scheduleTerms(betas: Float64Array): ScheduleTerms {
  const T = betas.length;
  const make = () => new Float64Array(T);
  const alphas = make();
  const alphasCumprod = make();
  const alphasCumprodPrev = make();
  const sqrtAlphasCumprod = make();
  const sqrtOneMinusAlphasCumprod = make();
  const posteriorVariance = make();
  const posteriorMeanCoef1 = make();
  const posteriorMeanCoef2 = make();
  let prod = 1;
  for (let t = 0; t < T; t++) {
    const beta = betas[t]!;
    // β = 1 (ᾱ = 0: zero terminal SNR) only at the last timestep, where x_t is pure noise.
    if (!(beta > 0 && (beta < 1 || (beta === 1 && t === T - 1)))) throw new RangeError(`scheduleTerms: β_${t} = ${beta} is outside (0, 1)${t === T - 1 ? ' (1 allowed at the last timestep)' : ''}`);
    alphas[t] = 1 - beta;
    alphasCumprodPrev[t] = prod;
    prod *= 1 - beta;
    alphasCumprod[t] = prod;
    sqrtAlphasCumprod[t] = Math.sqrt(prod);
    sqrtOneMinusAlphasCumprod[t] = Math.sqrt(1 - prod);
    const prev = alphasCumprodPrev[t]!;
    posteriorVariance[t] = (beta * (1 - prev)) / (1 - prod);
    posteriorMeanCoef1[t] = (beta * Math.sqrt(prev)) / (1 - prod);
    posteriorMeanCoef2[t] = ((1 - prev) * Math.sqrt(1 - beta)) / (1 - prod);
  }
  return {
    betas: Float64Array.from(betas),
    alphas,
    alphasCumprod,
    alphasCumprodPrev,
    sqrtAlphasCumprod,
    sqrtOneMinusAlphasCumprod,
    posteriorVariance,
    posteriorMeanCoef1,
    posteriorMeanCoef2,
  };
}

/**
 * Whether guidance applies at each timestep t: where the noise level σ_t = √((1 − ᾱ_t)/ᾱ_t) (the noise's scale
 * against the signal's; ∞ where ᾱ_t = 0) lies in the interval (lo, hi] (Kynkäänniemi et al. 2024); every t without one.
 */
export function guidedTimesteps(terms: Pick<ScheduleTerms, 'alphasCumprod'>, interval?: readonly [number, number]): boolean[] {
  if (interval === undefined) return Array.from(terms.alphasCumprod, () => true);
  const [lo, hi] = interval;
  if (!(lo >= 0 && hi > lo)) throw new RangeError(`the guidance interval must be noise levels 0 ≤ lo < hi, got ${lo},${hi}`);
  return Array.from(terms.alphasCumprod, (a) => {
    const sigma = Math.sqrt((1 - a) / a);
    return sigma > lo && sigma <= hi;
  });
}

/** How a model's β schedule is made: the kind, the number of timesteps T (0..T−1) and the cosine exponent. */
export interface ScheduleConfig {
  kind: 'cosine' | 'linear';
  numTimesteps: number;
  /** Exponent of the cosine schedule (the paper: 1.5; Nichol & Dhariwal: 2); cosine only. */
  power?: number;
  /**
   * The cap on β_t (cosine only; default 0.999, the paper's). With 0.999 the first reverse step divides by
   * √ᾱ_{T−1} ≈ 0.03, multiplying the network's error by ≈ 32; a lower cap is one remedy.
   */
  maxBeta?: number;
  /**
   * Rescale the schedule to zero terminal SNR (Lin et al. 2024; see rescaleZeroTerminalSnr): ᾱ_{T−1} = 0, so
   * training covers the pure noise sampling starts from. Needs v-prediction. Absent: off, as the paper.
   */
  zeroTerminalSnr?: boolean;
}

export const SCHEDULE_KINDS = ['cosine', 'linear'] as const;

/** A schedule built once from its configuration: β_t and every derived term. */
export class NoiseSchedule {
  readonly config: Readonly<ScheduleConfig>;
  readonly terms: ScheduleTerms;

  constructor(config: ScheduleConfig) {
    checkScheduleConfig(config);
    this.config = Object.freeze({ ...config });
    const betas = config.kind === 'cosine' ? cosineBetas(config.numTimesteps, config.power ?? 1.5, undefined, config.maxBeta ?? 0.999) : linearBetas(config.numTimesteps);
    this.terms = scheduleTerms(config.zeroTerminalSnr ? rescaleZeroTerminalSnr(betas) : betas);
  }

  /** T: timesteps are 0..T−1. */
  get numTimesteps(): number {
    return this.config.numTimesteps;
  }
}

/** Throws a RangeError naming the first invalid field. */
export function checkScheduleConfig(c: ScheduleConfig): void {
  if (c === null || typeof c !== 'object') throw new RangeError('schedule: expected { kind, numTimesteps, power }');
  if (!(SCHEDULE_KINDS as readonly string[]).includes(c.kind)) throw new RangeError(`schedule: kind must be one of ${SCHEDULE_KINDS.join(', ')}, got '${String(c.kind)}'`);
  if (!Number.isInteger(c.numTimesteps) || c.numTimesteps < 1) throw new RangeError(`schedule: numTimesteps (T) must be a positive integer, got ${c.numTimesteps}`);
  if (c.power !== undefined && !(c.power > 0 && Number.isFinite(c.power))) throw new RangeError(`schedule: power must be a positive number, got ${c.power}`);
  if (c.maxBeta !== undefined && !(c.maxBeta > 0 && c.maxBeta < 1)) throw new RangeError(`schedule: maxBeta must be in (0, 1), got ${c.maxBeta}`);
  if (c.maxBeta !== undefined && c.kind !== 'cosine') throw new RangeError('schedule: maxBeta caps the cosine schedule');
  if (c.kind === 'linear' && c.power !== undefined) throw new RangeError('schedule: power is for the cosine schedule');
  if (c.zeroTerminalSnr !== undefined && typeof c.zeroTerminalSnr !== 'boolean') throw new RangeError(`schedule: zeroTerminalSnr must be true or false, got ${String(c.zeroTerminalSnr)}`);
  if (c.zeroTerminalSnr && c.numTimesteps < 2) throw new RangeError('schedule: zeroTerminalSnr needs at least 2 timesteps');
}
