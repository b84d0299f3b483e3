// One reverse step of DDPM or DDIM as plain numbers: the form both schedulers step through on libtorch
// (scheduler.ts, applyStep), that our ONNX graphs evaluate, and that a sampler without libtorch (a browser)
// computes. Nothing here touches tensors.
import type { ScheduleTerms } from './schedule.ts';

/**
 * What the network predicts: the noise ε (Ho et al.), or the velocity v = √ᾱ_t ε − √(1 − ᾱ_t) x0 (Salimans & Ho
 * 2022), which stays well defined where ᾱ_t = 0 (a schedule with zero terminal SNR).
 */
export type Prediction = 'epsilon' | 'v';
export const PREDICTIONS: readonly Prediction[] = ['epsilon', 'v'];

/**
 * One reverse step as numbers, the form DDPM and DDIM share (and that other engines evaluate), for the network's
 * output o (ε̂, or v̂ for v-prediction):
 *   x̂0 = (xtScale · x_t − epsScale · o) / x0Divisor, then constrained to the data range;
 *   x_prev = x0Coef · x̂0 + xtCoef · x_t + epsCoef · ε̃ + sigma · z,
 * where ε̃ is o, or the noise that x̂0 implies, (x_t − √ᾱ_t x̂0) / √(1 − ᾱ_t) with √ᾱ_t = xtScale · x0Divisor:
 * 'when-constrained' (DDIM on ε: keeps the constrained x̂0 and its noise consistent) or 'always' (DDIM on v,
 * where it is how ε̂ follows from v̂).
 */
export interface StepCoefficients {
  xtScale: number;
  epsScale: number;
  x0Divisor: number;
  x0Coef: number;
  xtCoef: number;
  epsCoef: number;
  sigma: number;
  rederiveEps: 'never' | 'when-constrained' | 'always';
}

/** Whether the step takes the noise that x̂0 implies rather than the network's output. */
export function rederivesEps(c: StepCoefficients, constrained: boolean): boolean {
  return c.epsCoef !== 0 && (c.rederiveEps === 'always' || (c.rederiveEps === 'when-constrained' && constrained));
}

/**
 * The step as x_prev = x0Coef · x̂0 + xtCoef · x_t + epsCoef · o + sigma · z, with ε̃ folded into the first two
 * terms where it is re-derived (equal up to rounding): the form of a step that has no branches.
 */
export function linearStep(c: StepCoefficients, constrained: boolean): Omit<StepCoefficients, 'rederiveEps'> {
  const { rederiveEps: _, ...rest } = c;
  if (!rederivesEps(c, constrained)) return rest;
  const k = c.epsCoef / c.epsScale;
  return { ...rest, x0Coef: c.x0Coef - k * c.xtScale * c.x0Divisor, xtCoef: c.xtCoef + k, epsCoef: 0 };
}

/** x̂0 from the network's output at t: ε̂ by Ho et al. eq. 15, or v̂ as x̂0 = √ᾱ_t x_t − √(1 − ᾱ_t) v̂. */
function x0Terms(terms: ScheduleTerms, t: number, prediction: Prediction): Pick<StepCoefficients, 'xtScale' | 'epsScale' | 'x0Divisor'> {
  if (prediction === 'v') return { xtScale: terms.sqrtAlphasCumprod[t]!, epsScale: terms.sqrtOneMinusAlphasCumprod[t]!, x0Divisor: 1 };
  if (prediction !== 'epsilon') throw new RangeError(`prediction must be 'epsilon' or 'v', got '${String(prediction)}'`);
  if (terms.sqrtAlphasCumprod[t] === 0) throw new RangeError(`ᾱ_${t} = 0 (zero terminal SNR): x̂0 cannot be recovered from a noise prediction there; use v-prediction`);
  return { xtScale: 1, epsScale: terms.sqrtOneMinusAlphasCumprod[t]!, x0Divisor: terms.sqrtAlphasCumprod[t]! };
}

/**
 * The ancestral step at t (Ho et al. Algorithm 2): x̂0 by eq. 15, the posterior mean μ̃_t(x_t, x̂0) by eq. 7, and
 * σ_t z with variance β̃_t ('posterior') or β_t ('beta'), none at t = 0. `authorX0` divides by √α_t instead of
 * √ᾱ_t, as the paper's public code did (ε-prediction only).
 */
export function ddpmStepCoefficients(terms: ScheduleTerms, t: number, opts: { variance?: 'posterior' | 'beta'; authorX0?: boolean; prediction?: Prediction } = {}): StepCoefficients {
  const variance = t === 0 ? 0 : (opts.variance ?? 'posterior') === 'posterior' ? terms.posteriorVariance[t]! : terms.betas[t]!;
  const prediction = opts.prediction ?? 'epsilon';
  if (opts.authorX0 && prediction !== 'epsilon') throw new RangeError("authorX0 reproduces the paper's code for noise prediction; it has no meaning for v-prediction");
  const x0 = x0Terms(terms, t, prediction);
  return {
    ...x0,
    x0Divisor: opts.authorX0 ? Math.sqrt(terms.alphas[t]!) : x0.x0Divisor,
    x0Coef: terms.posteriorMeanCoef1[t]!,
    xtCoef: terms.posteriorMeanCoef2[t]!,
    epsCoef: 0,
    sigma: Math.sqrt(variance),
    rederiveEps: 'never',
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
export function ddimStepCoefficients(terms: ScheduleTerms, t: number, prev: number, eta: number, prediction: Prediction = 'epsilon'): StepCoefficients {
  const ab = terms.alphasCumprod[t]!;
  const abPrev = prev < 0 ? 1 : terms.alphasCumprod[prev]!;
  const sigma = eta * Math.sqrt(((1 - abPrev) / (1 - ab)) * (1 - ab / abPrev));
  return {
    ...(prediction === 'v' ? x0Terms(terms, t, prediction) : { xtScale: 1, epsScale: Math.sqrt(1 - ab), x0Divisor: Math.sqrt(ab) }),
    x0Coef: Math.sqrt(abPrev),
    xtCoef: 0,
    epsCoef: Math.sqrt(Math.max(1 - abPrev - sigma * sigma, 0)),
    sigma,
    // The direction to x_t re-derived from the (possibly constrained) x̂0, so both stay consistent; for v̂ it is
    // how ε̂ is had at all.
    rederiveEps: prediction === 'v' ? 'always' : 'when-constrained',
  };
}

/**
 * DPM-Solver++(2M)'s second-order term (Lu et al. 2022, Algorithm 2, as diffusers' midpoint form): the step from t to
 * `next` is DDIM's (η = 0) from the x̂0 predicted at t, plus k · (x̂0_t − x̂0_prevT), x̂0_prevT being the one
 * predicted at the timestep visited before t. With λ = log(α/σ), h = λ_next − λ_t and r = (λ_t − λ_prevT) / h:
 * k = −α_next (e^{−h} − 1) / (2r). 0 at the last step (next = −1, the clean sample: x_next = x̂0).
 */
export function dpmSolverCorrection(terms: ScheduleTerms, prevT: number, t: number, next: number): number {
  if (next < 0) return 0;
  const lambda = (s: number) => 0.5 * Math.log(terms.alphasCumprod[s]! / (1 - terms.alphasCumprod[s]!));
  const h = lambda(next) - lambda(t);
  const r = (lambda(t) - lambda(prevT)) / h;
  return (-Math.sqrt(terms.alphasCumprod[next]!) * Math.expm1(-h)) / (2 * r);
}
