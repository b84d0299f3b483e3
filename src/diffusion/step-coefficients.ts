// One reverse step of DDPM or DDIM as plain numbers: the form both schedulers step through on libtorch
// (scheduler.ts, applyStep), that our ONNX graphs evaluate, and that a sampler without libtorch (a browser)
// computes. Nothing here touches tensors.
import type { ScheduleTerms } from './schedule.ts';

/**
 * One reverse step as numbers, the form DDPM and DDIM share (and that other engines evaluate):
 *   x̂0 = (x_t − epsScale · ε̂) / x0Divisor, then constrained to the data range;
 *   x_prev = x0Coef · x̂0 + xtCoef · x_t + epsCoef · ε̃ + sigma · z,
 * where ε̃ is ε̂, or — when `rederiveEps` and x̂0 was constrained — the noise that the constrained x̂0 implies,
 * (x_t − x0Divisor · x̂0) / epsScale.
 */
export interface StepCoefficients {
  epsScale: number;
  x0Divisor: number;
  x0Coef: number;
  xtCoef: number;
  epsCoef: number;
  sigma: number;
  rederiveEps: boolean;
}

/**
 * The step as x_prev = x0Coef · x̂0 + xtCoef · x_t + epsCoef · ε̂ + sigma · z, with ε̃ folded into the first two
 * terms where it is re-derived (equal up to rounding): the form of a step that has no branches.
 */
export function linearStep(c: StepCoefficients, constrained: boolean): Omit<StepCoefficients, 'rederiveEps'> {
  const { rederiveEps, ...rest } = c;
  if (!rederiveEps || !constrained || c.epsCoef === 0) return rest;
  const k = c.epsCoef / c.epsScale;
  return { ...rest, x0Coef: c.x0Coef - k * c.x0Divisor, xtCoef: c.xtCoef + k, epsCoef: 0 };
}

/**
 * The ancestral step at t (Ho et al. Algorithm 2): x̂0 by eq. 15, the posterior mean μ̃_t(x_t, x̂0) by eq. 7, and
 * σ_t z with variance β̃_t ('posterior') or β_t ('beta'), none at t = 0. `authorX0` divides by √α_t instead of
 * √ᾱ_t, as the paper's public code did.
 */
export function ddpmStepCoefficients(terms: ScheduleTerms, t: number, opts: { variance?: 'posterior' | 'beta'; authorX0?: boolean } = {}): StepCoefficients {
  const variance = t === 0 ? 0 : (opts.variance ?? 'posterior') === 'posterior' ? terms.posteriorVariance[t]! : terms.betas[t]!;
  return {
    epsScale: terms.sqrtOneMinusAlphasCumprod[t]!,
    x0Divisor: opts.authorX0 ? Math.sqrt(terms.alphas[t]!) : terms.sqrtAlphasCumprod[t]!,
    x0Coef: terms.posteriorMeanCoef1[t]!,
    xtCoef: terms.posteriorMeanCoef2[t]!,
    epsCoef: 0,
    sigma: Math.sqrt(variance),
    rederiveEps: false,
  };
}

/** How DDIM picks its timesteps: evenly over T−1 … 0 with both ends, or 'trailing' (Lin et al. 2024). */
export type TimestepSpacing = 'linspace' | 'trailing';

/**
 * `count` timesteps from T−1 down: 'linspace' spreads them evenly over T−1 … 0 (rounded, distinct, both ends
 * included); 'trailing' steps back from T−1 by T/count (rounded), so the last step lands at T/count − 1.
 */
export function ddimTimesteps(numTimesteps: number, count: number, spacing: TimestepSpacing = 'linspace'): Int32Array {
  if (!Number.isInteger(count) || count < 1 || count > numTimesteps) {
    throw new RangeError(`DDIM: the number of inference steps must be an integer in 1..${numTimesteps} (T), got ${count}`);
  }
  if (spacing === 'trailing') return Int32Array.from({ length: count }, (_, i) => Math.round(numTimesteps - (i * numTimesteps) / count) - 1);
  if (spacing !== 'linspace') throw new RangeError(`DDIM: timestep spacing must be 'linspace' or 'trailing', got '${String(spacing)}'`);
  if (count === 1) return Int32Array.of(numTimesteps - 1);
  return Int32Array.from({ length: count }, (_, i) => Math.round(((numTimesteps - 1) * (count - 1 - i)) / (count - 1)));
}

/** DDIM (Song et al. eq. 12) from t to `prev` (−1 after the last step: ᾱ = 1, the clean sample), noise scale η. */
export function ddimStepCoefficients(terms: ScheduleTerms, t: number, prev: number, eta: number): StepCoefficients {
  const ab = terms.alphasCumprod[t]!;
  const abPrev = prev < 0 ? 1 : terms.alphasCumprod[prev]!;
  const sigma = eta * Math.sqrt(((1 - abPrev) / (1 - ab)) * (1 - ab / abPrev));
  return {
    epsScale: Math.sqrt(1 - ab),
    x0Divisor: Math.sqrt(ab),
    x0Coef: Math.sqrt(abPrev),
    xtCoef: 0,
    epsCoef: Math.sqrt(Math.max(1 - abPrev - sigma * sigma, 0)),
    sigma,
    // The direction to x_t re-derived from the (possibly constrained) x̂0, so both stay consistent.
    rederiveEps: true,
  };
}
