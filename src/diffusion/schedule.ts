// Noise schedules, computed once in float64 (lucidrains' habit) and handed to schedulers as plain arrays.

/**
 * The cosine β schedule of Nichol & Dhariwal (2021) with a configurable exponent:
 *   f(t) = cos(((t/T + s) / (1 + s)) · π/2)^power,  β_t = min(1 − f(t+1)/f(t), maxBeta),  t = 0..T−1.
 * Nichol & Dhariwal use power 2; the paper uses 1.5, which leaves the high-noise regime sooner.
 */
export function cosineBetas(numStates: number, power = 1.5, s = 0.003, maxBeta = 0.999): Float64Array {
  if (!Number.isInteger(numStates) || numStates < 1) throw new RangeError(`cosineBetas: the number of states T must be a positive integer, got ${numStates}`);
  if (!(power > 0)) throw new RangeError(`cosineBetas: power must be positive, got ${power}`);
  const f = (t: number) => Math.cos(((t / numStates + s) / (1 + s)) * (Math.PI / 2)) ** power;
  const betas = new Float64Array(numStates);
  for (let t = 0; t < numStates; t++) betas[t] = Math.min(Math.max(1 - f(t + 1) / f(t), 0), maxBeta);
  return betas;
}

/** β_t evenly spaced from `start` to `end` (Ho et al. 2020 use 1e-4 → 0.02 over 1000 steps). */
export function linearBetas(numStates: number, start = 1e-4, end = 0.02): Float64Array {
  if (!Number.isInteger(numStates) || numStates < 1) throw new RangeError(`linearBetas: the number of states T must be a positive integer, got ${numStates}`);
  const betas = new Float64Array(numStates);
  for (let t = 0; t < numStates; t++) betas[t] = numStates === 1 ? start : start + ((end - start) * t) / (numStates - 1);
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
    if (!(beta > 0 && beta < 1)) throw new RangeError(`scheduleTerms: β_${t} = ${beta} is outside (0, 1)`);
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
