// The reverse process of a pipeline, as the page runs it: the loop of OnnxDiffusionModel.reverseProcess and of
// samplePipeline (pipelines/), step for step, around an engine that evaluates one exported step graph. Pure
// numbers and Float32Arrays: the same code runs in the page's worker on onnxruntime-web.
//
// Order of the noise draws (as in Node with one generator): per model of the chain, the initial x_T, then one
// draw per step whose σ > 0.
import { guidedTimesteps, scheduleTerms, type ScheduleTerms } from '../../diffusion/schedule.ts';
import { ddimStepCoefficients, ddimTimesteps, ddpmStepCoefficients, dpmSolverCorrection, linearStep } from '../../diffusion/step-coefficients.ts';
import type { SiteManifest, SiteModel } from './manifest.ts';

export type SamplerName = 'ddpm' | 'ddim' | 'dpmpp-2m';

export interface SampleRequest {
  pipeline: string;
  /** One sample per label. */
  labels: number[];
  seed: number;
  sampler: SamplerName;
  /** DDIM and DPM-Solver++(2M): network evaluations per model (capped at its T). */
  steps?: number;
  /** DDIM: η ∈ [0, 1]. */
  eta?: number;
  /** Clip x̂0 to the data range at every step. */
  clip: boolean;
  /** The classifier-free guidance scale of the models trained with label dropout (default: the pipeline's, else 0). */
  guidance?: number;
  /** Guide only the steps whose noise level σ_t = √((1 − ᾱ_t) / ᾱ_t) lies in (lo, hi] (default: every step). */
  guidanceInterval?: [number, number];
  /** Instead of the seeded generator: every draw, in order (tests compare engines with the same noise). */
  noise?: Float32Array[];
}

/** The scalars of one step graph call besides the tensors: the branch-free step and the clip bounds (see onnx/step-graph.ts). */
export type StepScalars = ReturnType<typeof linearStep> & { clipMin: number; clipMax: number };

/** One call of a model's step graph, in model space; arrays are [N, 1, S, S] row-major. */
export interface StepCall {
  model: string;
  sample: Float32Array;
  timestep: number;
  labels: readonly number[];
  conditioning?: Float32Array;
  /** Upscalers trained with conditioning augmentation: the level (the page uses 0, clean conditioning). */
  conditioningLevel?: number;
  /** Models trained with label dropout: the classifier-free guidance scale (0: none). */
  guidance?: number;
  noise: Float32Array;
  scalars: StepScalars;
}

/** Evaluates one step: x_{t−1} and x̂0. */
export type StepEngine = (call: StepCall) => Promise<{ prev: Float32Array; x0: Float32Array }>;

export interface StageStart {
  stage: number;
  model: string;
  size: number;
  steps: number;
}

/** One step as shown: x_t and the step's x̂0 in pixel space (not clamped), and how long the step took. */
export interface StepFrame {
  stage: number;
  step: number;
  steps: number;
  t: number;
  size: number;
  xt: Float32Array;
  x0: Float32Array;
  ms: number;
}

export interface SampleResult {
  /** The pipeline's samples in pixel space, clamped to [0, 1]: [N, 1, size, size]. */
  images: Float32Array;
  size: number;
  /** Each model's clamped output (a cascade's 14×14 stage, then its upscaler's). */
  stages: { model: string; size: number; images: Float32Array }[];
  /** Time spent in the engine, and per step. */
  engineMs: number;
  stepMs: number[];
}

/** Bilinear resize of [N, 1, s, s] to size×size, align_corners = false, no antialiasing (libtorch's upsample_bilinear2d). */
export function upscaleBilinear(x: Float32Array, n: number, from: number, size: number): Float32Array {
  const out = new Float32Array(n * size * size);
  const scale = Math.fround(from / size);
  const src = (d: number) => {
    const s = Math.fround(Math.fround(scale * Math.fround(d + 0.5)) - 0.5);
    const c = s < 0 ? 0 : s;
    const i0 = Math.floor(c);
    const i1 = i0 < from - 1 ? i0 + 1 : i0;
    const l1 = Math.fround(c - i0);
    return { i0, i1, l0: Math.fround(1 - l1), l1 };
  };
  const idx = Array.from({ length: size }, (_, d) => src(d));
  for (let b = 0; b < n; b++) {
    const inBase = b * from * from;
    const outBase = b * size * size;
    for (let y = 0; y < size; y++) {
      const h = idx[y]!;
      for (let xx = 0; xx < size; xx++) {
        const w = idx[xx]!;
        const r0 = inBase + h.i0 * from;
        const r1 = inBase + h.i1 * from;
        const top = Math.fround(Math.fround(w.l0 * x[r0 + w.i0]!) + Math.fround(w.l1 * x[r0 + w.i1]!));
        const bottom = Math.fround(Math.fround(w.l0 * x[r1 + w.i0]!) + Math.fround(w.l1 * x[r1 + w.i1]!));
        out[outBase + y * size + xx] = Math.fround(h.l0 * top) + Math.fround(h.l1 * bottom);
      }
    }
  }
  return out;
}

/** Model space → pixel space (x · std + mean), not clamped. */
export function toPixelSpace(x: Float32Array, norm: { mean: number; std: number }): Float32Array {
  const std = Math.fround(norm.std);
  const mean = Math.fround(norm.mean);
  return x.map((v) => Math.fround(v * std) + mean);
}

/** Pixel space → model space ((x − mean) / std). */
export function toModelSpace(x: Float32Array, norm: { mean: number; std: number }): Float32Array {
  const std = Math.fround(norm.std);
  const mean = Math.fround(norm.mean);
  return x.map((v) => Math.fround(v - mean) / std);
}

function clamp01(x: Float32Array): Float32Array {
  return x.map((v) => (v < 0 ? 0 : v > 1 ? 1 : v));
}

/**
 * The timesteps a model visits and the step coefficients at each (as its Node scheduler gives them); for
 * DPM-Solver++(2M), DDIM's step plus `correction` · (x̂0 − the x̂0 of the step before) (0: none).
 */
export function modelSchedule(model: SiteModel, req: Pick<SampleRequest, 'sampler' | 'steps' | 'eta' | 'clip' | 'guidanceInterval'>): { t: number; guided: boolean; scalars: StepScalars; correction: number }[] {
  const terms: ScheduleTerms = scheduleTerms(Float64Array.from(model.betas));
  const T = terms.betas.length;
  const guided = guidedTimesteps(terms, req.guidanceInterval);
  const { mean, std } = model.config.normalization;
  const [clipMin, clipMax] = req.clip ? [(0 - mean) / std, (1 - mean) / std] : [-Infinity, Infinity];
  const eta = req.sampler === 'ddim' ? (req.eta ?? 0) : 0;
  if (!(eta >= 0 && eta <= 1)) throw new RangeError(`η must be in [0, 1], got ${eta}`);
  const subsequence = req.sampler === 'ddim' || req.sampler === 'dpmpp-2m';
  const timesteps = subsequence ? Array.from(ddimTimesteps(T, Math.min(req.steps ?? T, T))) : Array.from({ length: T }, (_, i) => T - 1 - i);
  return timesteps.map((t, i) => {
    const prediction = model.config.prediction ?? 'epsilon';
    const next = timesteps[i + 1] ?? -1;
    const c = subsequence ? ddimStepCoefficients(terms, t, next, eta, prediction) : ddpmStepCoefficients(terms, t, { prediction });
    const correction = req.sampler === 'dpmpp-2m' && i > 0 ? dpmSolverCorrection(terms, timesteps[i - 1]!, t, next) : 0;
    return { t, guided: guided[t]!, scalars: { ...linearStep(c, req.clip), clipMin, clipMax }, correction };
  });
}

/** A source of standard normal draws: the seeded generator, or the arrays a test passed in. */
export function noiseSource(req: Pick<SampleRequest, 'noise'>, rng: { randn(count: number): Float32Array }): (count: number) => Float32Array {
  let next = 0;
  return (count) => {
    if (req.noise === undefined) return rng.randn(count);
    const draw = req.noise[next++];
    if (draw === undefined) throw new Error(`the noise given ran out after ${next - 1} draws`);
    if (draw.length !== count) throw new Error(`noise draw ${next - 1} has ${draw.length} values, not ${count}`);
    return draw;
  };
}

/** Samples one image per label through the pipeline; `on` sees each stage start and each step. */
export async function samplePipeline(
  manifest: SiteManifest,
  req: SampleRequest,
  engine: StepEngine,
  draw: (count: number) => Float32Array,
  on: { stage?: (s: StageStart) => void; step?: (f: StepFrame) => void | Promise<void> } = {},
): Promise<SampleResult> {
  const pipeline = manifest.pipelines.find((p) => p.name === req.pipeline);
  if (pipeline === undefined) throw new Error(`no pipeline ${req.pipeline} in this site (${manifest.pipelines.map((p) => p.name).join(', ')})`);
  const n = req.labels.length;
  if (n === 0) throw new RangeError('no labels to sample');
  const guidance = req.guidance ?? pipeline.guidance ?? 0;
  if (!(Number.isFinite(guidance) && guidance >= 0)) throw new RangeError(`the guidance scale must be a number ≥ 0, got ${req.guidance}`);
  const stages: SampleResult['stages'] = [];
  const stepMs: number[] = [];
  let engineMs = 0;
  let lowRes: { images: Float32Array; size: number } | undefined;
  for (const [stage, name] of pipeline.models.entries()) {
    const model = manifest.models[name];
    if (model === undefined) throw new Error(`the manifest lacks model ${name}`);
    const { config } = model;
    for (const l of req.labels) {
      if (!Number.isInteger(l) || l < 0 || l >= config.unet.numClasses) throw new RangeError(`label ${l} is outside 0..${config.unet.numClasses - 1}`);
    }
    const S = config.imageSize;
    const count = n * S * S;
    const schedule = modelSchedule(model, req);
    const conditioning = lowRes === undefined ? undefined : toModelSpace(upscaleBilinear(lowRes.images, n, lowRes.size, S), config.normalization);
    if (config.lowResSize !== undefined && conditioning === undefined) throw new Error(`${name} is an upscaler: it needs a model before it in the pipeline`);
    on.stage?.({ stage, model: name, size: S, steps: schedule.length });
    const zeros = new Float32Array(count);
    let x = draw(count);
    let previousX0: Float32Array | undefined;
    for (const [i, { t, guided, scalars, correction }] of schedule.entries()) {
      const noise = scalars.sigma > 0 ? draw(count) : zeros;
      const start = performance.now();
      const out = await engine({
        model: name,
        sample: x,
        timestep: t,
        labels: req.labels,
        conditioning,
        conditioningLevel: config.conditioningNoise === undefined ? undefined : 0,
        guidance: config.labelDropout === undefined ? undefined : guided ? guidance : 0,
        noise,
        scalars,
      });
      const ms = performance.now() - start;
      engineMs += ms;
      stepMs.push(ms);
      if (!out.prev.every(Number.isFinite)) throw new Error(`${name}: the network returned non-finite values at timestep ${t}`);
      if (correction !== 0) {
        const before = previousX0!;
        for (let j = 0; j < count; j++) out.prev[j] = Math.fround(out.prev[j]! + Math.fround(correction * Math.fround(out.x0[j]! - before[j]!)));
      }
      previousX0 = out.x0;
      await on.step?.({ stage, step: i + 1, steps: schedule.length, t, size: S, xt: toPixelSpace(x, config.normalization), x0: toPixelSpace(out.x0, config.normalization), ms });
      x = out.prev;
    }
    const images = clamp01(toPixelSpace(x, config.normalization));
    stages.push({ model: name, size: S, images });
    lowRes = { images, size: S };
  }
  const last = lowRes!;
  const images = pipeline.upscaleTo === undefined ? last.images : clamp01(upscaleBilinear(last.images, n, last.size, pipeline.upscaleTo));
  return { images, size: pipeline.upscaleTo ?? last.size, stages, engineMs, stepMs };
}
