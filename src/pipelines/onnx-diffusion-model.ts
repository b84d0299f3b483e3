// A trained model sampled by ONNX Runtime. Models we export take one call per reverse step (network, FiLM,
// scheduler update and x̂0 clipping in one graph, see onnx-export.ts); a graph that only predicts the noise
// (e.g. PyTorch's export of the same U-Net) runs inside our libtorch sampling loop instead, as does dynamic
// thresholding, whose per-sample percentile is not in the graph. Noise is drawn from the same libtorch
// generator in the same order as on the libtorch engine, so both engines give the same samples from one seed.
import { nonFiniteNoiseError, sampleLoop, type NoisePredictor, type SampleLoopResult } from '../diffusion/sample.ts';
import type { Scheduler } from '../diffusion/scheduler.ts';
import { linearStep } from '../diffusion/step-coefficients.ts';
import { OrtSession, type OrtValue } from '../onnx/runtime.ts';
import { IO, STEP_SCALARS } from '../onnx/step-graph.ts';
import { tensor } from '../torch/ops/creation.ts';
import { randn } from '../torch/ops/random.ts';
import { tidy } from '../torch/scope.ts';
import type { Tensor } from '../torch/tensor.ts';
import type { DiffusionModelConfig } from './model-config.ts';
import { describeOnnxModel, type ExportedWeights } from './onnx-export.ts';
import { SamplingModel, type GuidedPredictorInputs, type PredictorInputs, type ReverseProcessInputs } from './sampling-model.ts';

export interface OnnxModelOptions {
  /** Threads ONNX Runtime uses for one operator (default 1). */
  threads?: number;
}

const f32 = (data: Float32Array, dims: readonly number[]): OrtValue => ({ type: 'float32', data, dims });
const scalar = (v: number): OrtValue => f32(Float32Array.of(v), []);
const timestep = (n: number, t: number): OrtValue => ({ type: 'int64', data: new BigInt64Array(n).fill(BigInt(t)), dims: [n] });

function floats(t: Tensor): Float32Array {
  return t.contiguous().data() as Float32Array;
}

export class OnnxDiffusionModel extends SamplingModel {
  readonly engine = 'onnxruntime';
  /** Whether one call takes a whole reverse step (our export) or only predicts the noise. */
  readonly fusedStep: boolean;
  /** Which weights the graph holds, where it says. */
  readonly weights: ExportedWeights | undefined;
  readonly #session: OrtSession;

  /** A model we exported (see diffusionModelToOnnx); throws with the reason when `bytes` are not one. */
  static fromBytes(bytes: Uint8Array, opts: OnnxModelOptions = {}): OnnxDiffusionModel {
    const d = describeOnnxModel(bytes);
    return new OnnxDiffusionModel(d.config, new OrtSession(bytes, { threads: opts.threads }), d.weights);
  }

  /**
   * A graph from elsewhere that predicts the noise of the model `config` describes, with our input and output
   * names (sample, timestep, label [, conditioning [, conditioning_level]] → eps).
   */
  static fromNoisePredictor(bytes: Uint8Array, config: DiffusionModelConfig, opts: OnnxModelOptions = {}): OnnxDiffusionModel {
    return new OnnxDiffusionModel(config, new OrtSession(bytes, { threads: opts.threads }), undefined);
  }

  private constructor(config: DiffusionModelConfig, session: OrtSession, weights: ExportedWeights | undefined) {
    super(config);
    try {
      this.#checkInterface(session);
    } catch (err) {
      session.dispose();
      throw err;
    }
    this.#session = session;
    this.weights = weights;
    this.fusedStep = session.outputNames.includes(IO.prevSample);
  }

  #checkInterface(session: OrtSession): void {
    const S = this.config.imageSize;
    const expected: string[] = [IO.sample, IO.timestep, IO.label];
    if (this.isUpscaler) expected.push(IO.conditioning);
    if (this.augmentsConditioning) expected.push(IO.conditioningLevel);
    if (session.outputNames.includes(IO.prevSample)) expected.push(IO.noise, ...STEP_SCALARS, ...(this.config.labelDropout === undefined ? [] : [IO.guidance]));
    const missing = expected.filter((n) => !session.inputNames.includes(n));
    if (missing.length > 0) throw new Error(`the graph lacks the input${missing.length > 1 ? 's' : ''} ${missing.join(', ')} that ${this.#what()} takes`);
    const extra = session.inputNames.filter((n) => !expected.includes(n));
    if (extra.length > 0) throw new Error(`the graph takes ${extra.join(', ')}, which ${this.#what()} does not`);
    if (!session.outputNames.includes(IO.eps)) throw new Error(`the graph has no output ${IO.eps}`);
    const dims = session.inputDims.get(IO.sample)!;
    const side = dims.slice(2);
    if (dims.length !== 4 || side.some((d) => typeof d === 'number' && d !== S)) throw new Error(`the graph's ${IO.sample} is [${dims.join(', ')}], not the [N, 1, ${S}, ${S}] of ${this.#what()}`);
  }

  #what(): string {
    return `a ${this.config.imageSize}×${this.config.imageSize} ${this.config.kind} model${this.augmentsConditioning ? ' with conditioning augmentation' : ''}`;
  }

  get device(): string {
    return 'cpu';
  }

  protected reverseProcess(scheduler: Scheduler, inputs: ReverseProcessInputs): SampleLoopResult {
    const { labels, loop } = inputs;
    const n = labels.length;
    const S = this.config.imageSize;
    const shape = [n, 1, S, S];
    // The noise prediction only; the step is the scheduler's, on libtorch (a multistep one needs earlier steps).
    if (!this.fusedStep || scheduler.constraint.kind === 'dynamic' || scheduler.multistep) return sampleLoop(scheduler, this.#noisePredictor(scheduler, inputs), shape, loop);
    const stepFeeds = this.#stepFeeds(scheduler, inputs);
    const zeros = new Float32Array(n * S * S);
    return tidy(() => {
      const draw = () => {
        const z = randn(shape, { generator: loop.generator });
        const values = z.data() as Float32Array;
        z.dispose();
        return values;
      };
      let x = draw();
      const trajectory = loop.keepTrajectory ? { t: [] as number[], xt: [] as Tensor[], predX0: [] as Tensor[] } : undefined;
      const fetch = trajectory === undefined ? [IO.prevSample, IO.eps] : [IO.prevSample, IO.predX0, IO.eps];
      const total = scheduler.timesteps.length;
      let done = 0;
      for (const t of scheduler.timesteps) {
        const step = stepFeeds.get(t)!;
        const out = this.#session.run({ ...step.feeds, [IO.sample]: f32(x, shape), [IO.noise]: f32(step.sigma > 0 ? draw() : zeros, shape) }, fetch);
        // NaN weights or an overflow would otherwise end as black images, silently.
        if (!(out[IO.eps]!.data as Float32Array).every(Number.isFinite)) throw nonFiniteNoiseError(t, done, total);
        if (trajectory !== undefined) {
          trajectory.t.push(t);
          trajectory.xt.push(tensor(x, { shape }));
          trajectory.predX0.push(tensor(out[IO.predX0]!.data as Float32Array, { shape }));
        }
        x = out[IO.prevSample]!.data as Float32Array;
        loop.onStep?.(++done, total);
      }
      return { sample: tensor(x, { shape }), trajectory };
    });
  }

  protected withPredictor<R>(scheduler: Scheduler, inputs: GuidedPredictorInputs, body: (predict: NoisePredictor) => R): R {
    return body(this.#noisePredictor(scheduler, inputs));
  }

  // The network's output (ε̂ or v̂, guided where `inputs` say) for a batch of x_t at each of the scheduler's timesteps.
  #noisePredictor(scheduler: Scheduler, inputs: GuidedPredictorInputs): NoisePredictor {
    const n = inputs.labels.length;
    const S = this.config.imageSize;
    const shape = [n, 1, S, S];
    if (!this.fusedStep) {
      if (inputs.guidance !== undefined) throw new RangeError('guidance on ONNX Runtime needs a graph exported by ssddpm (one that takes the step)');
      const fixed = this.#fixedFeeds(inputs);
      return (xt, t) => this.#eps({ ...fixed, [IO.timestep]: timestep(n, t), [IO.sample]: f32(floats(xt), shape) }, shape);
    }
    const stepFeeds = this.#stepFeeds(scheduler, inputs);
    const zeros = f32(new Float32Array(n * S * S), shape);
    return (xt, t) => this.#eps({ ...stepFeeds.get(t)!.feeds, [IO.noise]: zeros, [IO.sample]: f32(floats(xt), shape) }, shape);
  }

  #eps(feeds: Record<string, OrtValue>, shape: number[]): Tensor {
    return tensor(this.#session.run(feeds, [IO.eps])[IO.eps]!.data as Float32Array, { shape });
  }

  // The inputs that are the same at every step: labels, conditioning and its level.
  #fixedFeeds({ labels, cond, level }: PredictorInputs): Record<string, OrtValue> {
    const n = labels.length;
    const S = this.config.imageSize;
    const fixed: Record<string, OrtValue> = { [IO.label]: { type: 'int64', data: BigInt64Array.from(labels, BigInt), dims: [n] } };
    if (cond !== undefined) fixed[IO.conditioning] = f32(floats(cond), [n, 1, S, S]);
    if (level !== undefined) fixed[IO.conditioningLevel] = f32(new Float32Array(n).fill(level), [n]);
    return fixed;
  }

  // Everything a fused step takes but x_t and the noise, for each of the scheduler's timesteps: known before the
  // first step, so prepared once, as the runtime's tensors.
  #stepFeeds(scheduler: Scheduler, inputs: GuidedPredictorInputs): Map<number, { feeds: Record<string, OrtValue>; sigma: number }> {
    const { guidance, guidedAt } = inputs;
    const n = inputs.labels.length;
    const fixed = this.#fixedFeeds(inputs);
    const guided = this.config.labelDropout !== undefined;
    // Outside the guidance interval the scale is 0, and the graph evaluates the conditional rows alone.
    const guidanceAt = (t: number): OrtValue => scalar(guidedAt === undefined || guidedAt[t] ? guidance ?? 0 : 0);
    const constrained = scheduler.constraint.kind !== 'none';
    const [lo, hi] = scheduler.constraint.kind === 'clip' ? scheduler.clipRange : [-Infinity, Infinity];
    return new Map(Array.from(scheduler.timesteps, (t) => {
      const c = linearStep(scheduler.stepCoefficients(t), constrained);
      const feeds: Record<string, OrtValue> = {
        ...fixed,
        ...(guided ? { [IO.guidance]: guidanceAt(t) } : {}),
        [IO.timestep]: timestep(n, t),
        [IO.xtScale]: scalar(c.xtScale),
        [IO.epsScale]: scalar(c.epsScale),
        [IO.x0Divisor]: scalar(c.x0Divisor),
        [IO.x0Coef]: scalar(c.x0Coef),
        [IO.xtCoef]: scalar(c.xtCoef),
        [IO.epsCoef]: scalar(c.epsCoef),
        [IO.sigma]: scalar(c.sigma),
        [IO.clipMin]: scalar(lo),
        [IO.clipMax]: scalar(hi),
      };
      for (const k of Object.keys(feeds)) feeds[k] = OrtSession.prepare(feeds[k]!);
      return [t, { feeds, sigma: c.sigma }];
    }));
  }

  dispose(): void {
    this.#session.dispose();
  }
}
