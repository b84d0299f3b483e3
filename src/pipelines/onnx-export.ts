// A trained model as an ONNX model that advances the reverse process by one step per call: the U-Net (with
// the FiLM terms and batch norm folded in), the scheduler's update and x̂0 clipping in one graph, and in its
// metadata everything a sampler needs besides (model configuration, schedule terms, normalisation, labels).
import { contextGraph, filmFromContext, filmFromTable, unetGraph } from '../onnx/unet-graph.ts';
import { GraphBuilder, readOnnxModel } from '../onnx/graph.ts';
import { IO, stepGraph } from '../onnx/step-graph.ts';
import type { DiffusionModel } from './diffusion-model.ts';
import { isModelKind, type DiffusionModelConfig } from './model-config.ts';

export const ONNX_FORMAT = 'ssddpm-onnx';
export const ONNX_FORMAT_VERSION = 1;
/** The file name of an exported model in its folder (beside config.json). */
export const ONNX_MODEL_FILE = 'model.onnx';

const KEY = {
  format: 'ssddpm.format',
  version: 'ssddpm.format_version',
  model: 'ssddpm.model',
  weights: 'ssddpm.weights',
  schedule: 'ssddpm.schedule_terms',
  dataRange: 'ssddpm.data_range',
} as const;

export type ExportedWeights = 'ema' | 'model';

const DOC = `One reverse step of a class-conditional diffusion model (ssddpm).
Inputs: ${IO.sample} x_t [N,1,S,S] and ${IO.noise} z [N,1,S,S] in model space ((pixel - mean) / std), ${IO.timestep} t and ${IO.label} (int64 [N]),
upscalers also ${IO.conditioning} (the low-resolution image upscaled bilinearly to S, model space) and, when trained with
conditioning augmentation, ${IO.conditioningLevel} [N] in [0, 1]; models trained with label dropout ${IO.guidance} w
(eps = c + w*(c - u) from the label's and the null label's outputs, u evaluated only where w != 0); scalars ${IO.xtScale}, ${IO.epsScale}, ${IO.x0Divisor}, ${IO.x0Coef}, ${IO.xtCoef}, ${IO.epsCoef}, ${IO.sigma}, ${IO.clipMin}, ${IO.clipMax}.
Outputs: ${IO.eps} = the network's output (its noise prediction; the velocity for models whose configuration says
prediction "v"), ${IO.predX0} = clip((xt_scale*x_t - eps_scale*eps) / x0_divisor, clip_min, clip_max),
${IO.prevSample} = x0_coef*pred_x0 + xt_coef*x_t + eps_coef*eps + sigma*z.
DDPM at t: xt_scale = 1, eps_scale = sqrt(1 - abar_t), x0_divisor = sqrt(abar_t) (v-prediction: xt_scale = sqrt(abar_t),
eps_scale = sqrt(1 - abar_t), x0_divisor = 1), x0_coef and xt_coef the posterior mean's coefficients, eps_coef = 0,
sigma = sqrt(posterior variance) (0 at t = 0). Metadata ${KEY.schedule} holds the schedule's terms, ${KEY.model} the model configuration.`;

/**
 * The rows of a guided step: the batch's n rows, then m = n·[w ≠ 0] more with the null label, so that an unguided
 * step (w = 0, also outside a guidance interval) costs one network row per sample. `head(v)` is v's first m rows;
 * `guide(rows, name)` is c + w·(c − u) from the network's n + m rows: c the first n, u the last n (the
 * unconditional rows, or for m = 0 the conditional ones again, which w = 0 ignores).
 */
function guidanceRows(g: GraphBuilder, label: string, w: string): { head(v: string): string; guide(rows: string, name: string): string } {
  const n = g.op('Shape', [label], {}, 'n');
  const [first, axis0] = [g.constant('first', BigInt64Array.of(0n), [1]), g.constant('axis0', BigInt64Array.of(0n), [1])];
  const m = g.op('Mul', [n, g.op('Cast', [g.op('Not', [g.op('Equal', [w, g.scalar(0)])])], { to: 7 })], {}, 'null_rows');
  return {
    head: (v) => g.op('Slice', [v, first, m, axis0]),
    guide: (rows, name) => {
      const c = g.op('Slice', [rows, first, n, axis0], {}, 'eps_conditional');
      const u = g.op('Slice', [rows, m, g.op('Add', [m, n]), axis0], {}, 'eps_unconditional');
      return g.op('Add', [c, g.op('Mul', [g.op('Sub', [c, u]), w])], {}, name);
    },
  };
}

/** The model's step graph as ONNX bytes; `weights` says which weights it holds (the moving average or the trained ones). */
export function diffusionModelToOnnx(model: DiffusionModel, weights: ExportedWeights): Uint8Array {
  const g = new GraphBuilder();
  const S = model.config.imageSize;
  const T = model.numTimesteps;
  const K = model.config.unet.numClasses;
  const image = ['batch', 1, S, S];
  const xt = g.input(IO.sample, 'float32', image);
  const t = g.input(IO.timestep, 'int64', ['batch']);
  const label = g.input(IO.label, 'int64', ['batch']);
  const cond = model.isUpscaler ? g.input(IO.conditioning, 'float32', image) : undefined;
  const level = model.augmentsConditioning ? g.input(IO.conditioningLevel, 'float32', ['batch']) : undefined;
  const noise = g.input(IO.noise, 'float32', image);
  model.unet.eval();
  // Classifier-free guidance: the rows with their labels, and with the null label (K) where w ≠ 0.
  const guided = model.config.labelDropout !== undefined;
  const rows = guided ? guidanceRows(g, label, g.input(IO.guidance, 'float32', [])) : undefined;
  const twice = (v: string | undefined) => (v === undefined || rows === undefined ? v : g.op('Concat', [v, rows.head(v)], { axis: 0 }));
  const rowsLabel = rows === undefined ? label : g.op('Concat', [label, rows.head(g.op('Add', [g.op('Mul', [label, g.constant('zero', BigInt64Array.of(0n), [])]), g.constant('null_label', BigInt64Array.of(BigInt(K)), [])]))], { axis: 0 }, 'row_label');
  const [rowsT, rowsCond, rowsLevel] = [twice(t)!, twice(cond), twice(level)];
  // A continuous context (the conditioning level) needs FiLM's MLP; a discrete one is a table lookup.
  const modulation = rowsLevel === undefined
    ? filmFromTable(g, model.unet, T, rowsT, rowsLabel, { nullLabel: guided })
    : filmFromContext(g, model.unet.encoders.map((e) => e.film), contextGraph(g, rowsT, rowsLabel, T, K, rowsLevel));
  const rowsX = twice(xt)!;
  const input = rowsCond === undefined ? rowsX : g.op('Concat', [rowsX, rowsCond], { axis: 1 }, 'unet_input');
  const eps = rows === undefined ? unetGraph(g, model.unet, input, modulation, IO.eps) : rows.guide(unetGraph(g, model.unet, input, modulation, 'eps_rows'), IO.eps);
  const { prev, x0 } = stepGraph(g, xt, eps, noise);
  g.output(prev, IO.prevSample, 'float32', image);
  g.output(x0, IO.predX0, 'float32', image);
  g.output(eps, IO.eps, 'float32', image);
  const terms = model.schedule.terms;
  return g.encode({
    graphName: `ssddpm-${model.config.kind}-step`,
    docString: DOC,
    metadata: {
      [KEY.format]: ONNX_FORMAT,
      [KEY.version]: String(ONNX_FORMAT_VERSION),
      [KEY.model]: JSON.stringify(model.config),
      [KEY.weights]: weights,
      [KEY.schedule]: JSON.stringify({
        betas: Array.from(terms.betas),
        alphasCumprod: Array.from(terms.alphasCumprod),
        posteriorVariance: Array.from(terms.posteriorVariance),
        posteriorMeanCoef1: Array.from(terms.posteriorMeanCoef1),
        posteriorMeanCoef2: Array.from(terms.posteriorMeanCoef2),
      }),
      [KEY.dataRange]: JSON.stringify(model.dataRange),
    },
  });
}

export interface OnnxModelDescription {
  config: DiffusionModelConfig;
  weights: ExportedWeights;
  inputs: string[];
  outputs: string[];
}

/** Reads and checks the metadata of a model we exported; throws with the reason when it is not one. */
export function describeOnnxModel(bytes: Uint8Array): OnnxModelDescription {
  let summary;
  try {
    summary = readOnnxModel(bytes);
  } catch (err) {
    throw new Error(`not a readable ONNX model (${err instanceof Error ? err.message : String(err)})`);
  }
  const m = summary.metadata;
  if (m[KEY.format] !== ONNX_FORMAT) throw new Error(`an ONNX model, but not one exported by ssddpm (no ${KEY.format} metadata)`);
  if (m[KEY.version] !== String(ONNX_FORMAT_VERSION)) throw new Error(`exported in format version ${m[KEY.version]}; this version reads ${ONNX_FORMAT_VERSION}`);
  let config: DiffusionModelConfig;
  try {
    config = JSON.parse(m[KEY.model] ?? '') as DiffusionModelConfig;
  } catch {
    throw new Error(`its ${KEY.model} metadata is not JSON`);
  }
  if (typeof config !== 'object' || config === null || !isModelKind(String(config.kind)) || typeof config.imageSize !== 'number') throw new Error(`its ${KEY.model} metadata is not a model configuration`);
  const weights = m[KEY.weights] === 'ema' ? 'ema' : 'model';
  return { config, weights, inputs: summary.inputs, outputs: summary.outputs };
}
