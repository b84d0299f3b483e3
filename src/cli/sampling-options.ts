// The sampling choices shared by `sample`, `generate` and `speed`: sampler (DDPM, DDIM with its steps and η, or
// DPM-Solver++ with its steps), how x̂0 is kept in the data range, and the author-code variants.
import { InvalidArgumentError, Option, type Command, type OptionValues } from '@commander-js/extra-typings';
import { SAMPLERS, type Sampler, type SamplingOptions } from '../pipelines/sampling-model.ts';
import { guidanceScales, positiveInt, noiseInterval } from './parse.ts';

function unitInterval(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !(n >= 0 && n <= 1)) throw new InvalidArgumentError(`expected a number in [0, 1], got '${value}'`);
  return n;
}

export const samplingOptionList = {
  sampler: () => new Option('--sampler <kind>', 'ddpm (ancestral, every timestep), ddim (--steps of them) or dpmpp-2m (DPM-Solver++(2M), Lu et al. 2022: deterministic, second order, --steps of them)').choices(SAMPLERS).default('ddpm' as const),
  steps: () => new Option('--steps <n>', 'DDIM and DPM-Solver++: network evaluations per sample (at most T; a cascade caps it per model)').argParser(positiveInt),
  eta: () => new Option('--eta <η>', 'DDIM: noise scale in [0, 1] (0: deterministic)').argParser(unitInterval),
  spacing: () => new Option('--spacing <kind>', "DDIM and DPM-Solver++: timesteps evenly over T−1 … 0 ('linspace', default) or back from T−1 by T/steps ('trailing', Lin et al. 2024)").choices(['linspace', 'trailing'] as const),
  clip: () => new Option('--clip', "clip x̂0 to the data range at every step (the paper's §1.3 remedy)"),
  dynamicThreshold: () => new Option('--dynamic-threshold <p>', 'dynamic thresholding of x̂0 at percentile p (Imagen; e.g. 0.995) instead of clipping').argParser(unitInterval),
  variance: () => new Option('--variance <kind>', 'DDPM reverse-step variance: posterior β̃ or β').choices(['posterior', 'beta'] as const),
  conditioningLevel: () => new Option('--cond-level <l>', 'upscalers trained with --cond-noise: conditioning noise level in [0, 1] at sampling (default 0)').argParser(unitInterval),
  guidance: () => new Option('--guidance <w>', 'classifier-free guidance scale (models trained with --label-dropout); a cascade takes one for both models or one each (e.g. 3,1)').argParser(guidanceScales),
  guidanceInterval: () => new Option('--guidance-interval <lo,hi>', 'guide only at the timesteps whose noise level σ = √((1 − ᾱ)/ᾱ) lies in (lo, hi] (Kynkäänniemi et al. 2024; e.g. 0.5,5; hi may be inf), the label alone elsewhere').argParser(noiseInterval),
  labelGuidance: () => new Option('--label-guidance <w>', 'with --guide-model: classifier-free guidance of the guided model first (trained with --label-dropout), then autoguidance of the result; one scale, or one per model of a cascade').argParser(guidanceScales),
  labelGuidanceInterval: () => new Option('--label-guidance-interval <lo,hi>', 'where --label-guidance applies, as --guidance-interval for --guidance (e.g. 0,1: at low noise only)').argParser(noiseInterval),
  cudaGraphs: () => new Option('--no-cuda-graphs', "libtorch on a GPU: launch every kernel eagerly instead of replaying each network evaluation as one CUDA graph (the default where the addon can capture them; same samples)"),
  authorX0: () => new Option('--author-x0', "DDPM: estimate x̂0 with √α_t where √ᾱ_t belongs, as the paper's public code did (for comparison)"),
};

/** Adds the sampler and x̂0-constraint options every sampling command takes. */
export function withSamplerOptions<Args extends unknown[], Opts extends OptionValues, Globals extends OptionValues>(cmd: Command<Args, Opts, Globals>) {
  const o = samplingOptionList;
  return cmd.addOption(o.sampler()).addOption(o.steps()).addOption(o.eta()).addOption(o.spacing()).addOption(o.clip()).addOption(o.dynamicThreshold()).addOption(o.conditioningLevel()).addOption(o.guidance()).addOption(o.guidanceInterval()).addOption(o.labelGuidance()).addOption(o.labelGuidanceInterval()).addOption(o.cudaGraphs());
}

/** withSamplerOptions plus the DDPM author-code variants (for commands that make images). */
export function withSamplingOptions<Args extends unknown[], Opts extends OptionValues, Globals extends OptionValues>(cmd: Command<Args, Opts, Globals>) {
  return withSamplerOptions(cmd).addOption(samplingOptionList.variance()).addOption(samplingOptionList.authorX0());
}

export interface ParsedSampling {
  sampler: Sampler;
  steps?: number;
  eta?: number;
  spacing?: 'linspace' | 'trailing';
  clip?: true;
  dynamicThreshold?: number;
  variance?: 'posterior' | 'beta';
  authorX0?: true;
  condLevel?: number;
  guidance?: number[];
  guidanceInterval?: [number, number];
  labelGuidance?: number[];
  labelGuidanceInterval?: [number, number];
  cudaGraphs?: boolean;
}

/** The parsed options as SamplingOptions; throws a RangeError for combinations that mean nothing. */
export function samplingFrom(o: ParsedSampling): SamplingOptions {
  if (o.sampler === 'ddpm' && (o.steps !== undefined || o.eta !== undefined || o.spacing !== undefined)) throw new RangeError('--steps, --eta and --spacing need --sampler ddim (or dpmpp-2m, for --steps and --spacing)');
  if (o.sampler === 'dpmpp-2m' && o.eta !== undefined) throw new RangeError('--eta belongs to the DDIM sampler: DPM-Solver++(2M) is deterministic');
  if (o.sampler !== 'ddpm' && (o.variance !== undefined || o.authorX0)) throw new RangeError('--variance and --author-x0 belong to the DDPM sampler');
  if (o.clip && o.dynamicThreshold !== undefined) throw new RangeError('--clip and --dynamic-threshold exclude each other');
  return {
    sampler: o.sampler,
    steps: o.steps,
    eta: o.eta,
    spacing: o.spacing,
    clip: o.clip ?? false,
    dynamicThreshold: o.dynamicThreshold,
    variance: o.sampler === 'ddpm' ? (o.variance ?? 'posterior') : undefined,
    authorX0: o.sampler === 'ddpm' ? (o.authorX0 ?? false) : undefined,
    conditioningLevel: o.condLevel,
    guidance: o.guidance,
    guidanceInterval: o.guidanceInterval,
    labelGuidance: o.labelGuidance,
    labelGuidanceInterval: o.labelGuidanceInterval,
    cudaGraphs: o.cudaGraphs,
  };
}
