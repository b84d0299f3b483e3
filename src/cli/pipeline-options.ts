// The options that choose what samples — one run, a small run upscaled, or a cascade — on which device and with
// which weights, shared by `sample`, `generate` and `speed`.
import { Option, type Command, type OptionValues } from '@commander-js/extra-typings';
import { loadPipeline, type Pipeline } from '../pipelines/pipeline.ts';
import { ENGINES, type Engine } from '../pipelines/sampling-model.ts';
import { device, guideRuns, runPair } from './parse.ts';

/** The --engine option: which engine evaluates the networks when sampling. */
export function engineOption() {
  return new Option('--engine <engine>', 'onnxruntime (the default on the CPU where it is installed: fastest there) or libtorch (also CUDA)').choices(ENGINES);
}

/** Adds --run, --cascade, --upscale, --guide-model, --no-ema, --device and --engine. */
export function withPipelineOptions<Args extends unknown[], Opts extends OptionValues, Globals extends OptionValues>(cmd: Command<Args, Opts, Globals>) {
  return cmd
    .option('--run <dir>', 'a baseline or small run folder')
    .option('--cascade <small,upscaler>', 'small → ×2 → upscaler', runPair)
    .option('--upscale', 'with a small run: upscale its samples ×2 bilinearly ("small upscaled")')
    .option('--guide-model <run[,run]>', 'autoguidance (Karras et al. 2024): guide with a weaker model of the same kind (e.g. narrower or trained less) instead of the prediction without the label; one run per model (a cascade: SMALL_GUIDE,UPSCALER_GUIDE, one may be empty); --guidance sets the scale', guideRuns)
    .option('--no-ema', 'use the trained weights even where a run kept a moving average of them')
    .option('--device <dev>', "'cpu' or 'cuda[:N]'", device)
    .addOption(engineOption());
}

export interface ParsedPipeline {
  run?: string;
  cascade?: [string, string];
  upscale?: true;
  guideModel?: (string | undefined)[];
  ema: boolean;
  device?: string;
  engine?: Engine;
}

/** Loads the pipeline the options name; throws for combinations that mean nothing. */
export function loadPipelineFrom(o: ParsedPipeline): Pipeline {
  if (o.run !== undefined && o.cascade !== undefined) throw new RangeError('give --run or --cascade, not both');
  return loadPipeline({ runs: o.cascade ?? (o.run === undefined ? [] : [o.run]), upscale: o.upscale, guides: o.guideModel, device: o.device, ema: o.ema, engine: o.engine });
}
