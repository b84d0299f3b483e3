// One reverse step of a sampler in the graph, in the coefficient form DDPM and DDIM share
// (diffusion/scheduler.ts, StepCoefficients through linearStep): the coefficients are inputs, so one graph
// serves DDPM, DDIM and any η, and x̂0 clipping is a Clip whose bounds are inputs (±∞ to turn it off).
import type { GraphBuilder } from './graph.ts';

/** The names of a diffusion model's graph inputs and outputs (the same in every model we export). */
export const IO = {
  sample: 'sample',
  timestep: 'timestep',
  label: 'label',
  conditioning: 'conditioning',
  conditioningLevel: 'conditioning_level',
  guidance: 'guidance',
  noise: 'noise',
  xtScale: 'xt_scale',
  epsScale: 'eps_scale',
  x0Divisor: 'x0_divisor',
  x0Coef: 'x0_coef',
  xtCoef: 'xt_coef',
  epsCoef: 'eps_coef',
  sigma: 'sigma',
  clipMin: 'clip_min',
  clipMax: 'clip_max',
  prevSample: 'prev_sample',
  predX0: 'pred_x0',
  eps: 'eps',
} as const;

/** The scalar inputs of the step, in order. */
export const STEP_SCALARS = [IO.xtScale, IO.epsScale, IO.x0Divisor, IO.x0Coef, IO.xtCoef, IO.epsCoef, IO.sigma, IO.clipMin, IO.clipMax] as const;

/**
 * x̂0 = clip((xt_scale · x_t − eps_scale · o) / x0_divisor, clip_min, clip_max);
 * x_prev = x0_coef · x̂0 + xt_coef · x_t + eps_coef · o + sigma · noise,
 * where o is the network's output (ε̂, or v̂ for v-prediction).
 */
export function stepGraph(g: GraphBuilder, xt: string, eps: string, noise: string): { prev: string; x0: string } {
  const s = Object.fromEntries(STEP_SCALARS.map((n) => [n, g.input(n, 'float32', [])])) as Record<(typeof STEP_SCALARS)[number], string>;
  const raw = g.op('Div', [g.op('Sub', [g.op('Mul', [xt, s.xt_scale]), g.op('Mul', [eps, s.eps_scale])]), s.x0_divisor], {}, 'x0_raw');
  // Named as the graph's outputs, so that they need no Identity node.
  const x0 = g.op('Clip', [raw, s.clip_min, s.clip_max], {}, IO.predX0);
  const mean = g.op('Add', [g.op('Add', [g.op('Mul', [x0, s.x0_coef]), g.op('Mul', [xt, s.xt_coef])]), g.op('Mul', [eps, s.eps_coef])]);
  return { prev: g.op('Add', [mean, g.op('Mul', [noise, s.sigma])], {}, IO.prevSample), x0 };
}
