// A trained diffusion model on libtorch: the U-Net plus what sampling needs (SamplingModel). It trains, and it
// samples through the U-Net's prepared inference form, on the CPU or a GPU.
import { classifierFreeGuidance } from '../diffusion/guidance.ts';
import { sampleLoop, type NoisePredictor, type SampleLoopResult } from '../diffusion/sample.ts';
import type { Scheduler } from '../diffusion/scheduler.ts';
import { UNet, unetContext } from '../models/unet.ts';
import { InferenceUNet } from '../models/unet-inference.ts';
import { arange, full, int64 } from '../torch/ops/creation.ts';
import { GraphedFunction, cudaGraphsAvailable } from '../torch/cuda-graph.ts';
import { cat } from '../torch/ops/shape.ts';
import { tidy } from '../torch/scope.ts';
import type { Tensor } from '../torch/tensor.ts';
import type { DiffusionModelConfig } from './model-config.ts';
import { SamplingModel, type GuidedPredictorInputs, type PredictorInputs, type ReverseProcessInputs } from './sampling-model.ts';

export class DiffusionModel extends SamplingModel {
  readonly unet: UNet;
  readonly engine = 'libtorch';

  constructor(config: DiffusionModelConfig, device?: string) {
    super(config);
    this.unet = new UNet(config.unet);
    // Channels-last is faster for libtorch's CPU kernels; on GPUs the default layout is kept.
    if (device !== undefined && device !== 'cpu') this.unet.to({ device });
    else this.unet.setMemoryFormat('channels-last');
  }

  get device(): string {
    return this.unet.parameters()[0]!.device;
  }

  /**
   * ε̂(x_t, t, label [, conditioning [, its noise level]]).
   * @param xt [N, 1, S, S] in model space
   * @param t int64 [N]
   * @param labels int64 [N]
   * @param cond upscaler only: [N, 1, S, S] conditioning image in model space
   * @param condLevel augmented upscaler only: float32 [N], the conditioning's noise level in [0, 1]
   */
  predictNoise(xt: Tensor, t: Tensor, labels: Tensor, cond?: Tensor, condLevel?: Tensor): Tensor {
    if (this.isUpscaler !== (cond !== undefined)) {
      throw new Error(this.isUpscaler ? 'the upscaler needs a conditioning image' : `a ${this.config.kind} model takes no conditioning image`);
    }
    if (this.augmentsConditioning !== (condLevel !== undefined)) {
      throw new Error(this.augmentsConditioning ? 'this upscaler was trained with conditioning augmentation: pass the noise level' : 'a conditioning noise level is only for upscalers trained with conditioning augmentation');
    }
    return tidy(() => {
      const ctx = unetContext(t, this.numTimesteps, labels, this.config.unet.numClasses, condLevel?.unsqueeze(1));
      const input = cond === undefined ? xt : cat([xt, cond], 1);
      return this.unet.forward(input, ctx);
    });
  }

  protected reverseProcess(scheduler: Scheduler, inputs: ReverseProcessInputs): SampleLoopResult {
    const shape = [inputs.labels.length, 1, this.config.imageSize, this.config.imageSize];
    return this.withPredictor(scheduler, inputs, (predict) => sampleLoop(scheduler, predict, shape, inputs.loop));
  }

  protected withPredictor<R>(_scheduler: Scheduler, inputs: GuidedPredictorInputs, body: (predict: NoisePredictor) => R): R {
    const { labels, cond, guidance, guidedAt } = inputs;
    const n = labels.length;
    return this.#withPredictors(inputs, (predictor) => {
      if (guidance === undefined) return body(predictor(labels, cond));
      // Guidance evaluates every sample twice in one batch: with its label, then with the null label.
      const doubled = predictor([...labels, ...labels.map(() => this.config.unet.numClasses)], cond === undefined ? undefined : cat([cond, cond], 0));
      const guided = (xt: Tensor, t: number) => tidy(() => classifierFreeGuidance(doubled(cat([xt, xt], 0), t), n, guidance));
      if (guidedAt === undefined) return body(guided);
      const conditional = predictor(labels, cond);
      return body((xt, t) => (guidedAt[t] ? guided(xt, t) : conditional(xt, t)));
    });
  }

  // Runs `body` with a maker of ε̂ for rows (labels, conditioning) of a batch, and releases the inference form
  // and CUDA graphs it made afterwards.
  #withPredictors<R>({ level, plainForward, cudaGraphs }: PredictorInputs, body: (predictor: (rows: readonly number[], condRows: Tensor | undefined) => NoisePredictor) => R): R {
    const device = this.device;
    this.unet.eval();
    const net = plainForward ? undefined : new InferenceUNet(this.unet);
    const graphs = (cudaGraphs ?? true) && device.startsWith('cuda') && cudaGraphsAvailable();
    try {
      return tidy(() =>
        body((rows, condRows) => {
          if (net !== undefined) return this.#inferencePredictor(net, rows, condRows, level, graphs);
          const labelTensor = int64(rows, { device });
          const levelRows = level === undefined ? undefined : full([rows.length], level, { device });
          return (xt, t) => tidy(() => this.predictNoise(xt, full([rows.length], t, { dtype: 'int64', device }), labelTensor, condRows, levelRows));
        }),
      );
    } finally {
      for (const g of this.#graphs.splice(0)) g.dispose();
      net?.dispose();
    }
  }

  // ε̂ per step through the inference form, with the FiLM modulation of every (step, label) computed up front.
  // As a CUDA graph, the step's rows of the modulation are picked inside it by an index tensor.
  #inferencePredictor(net: InferenceUNet, labels: readonly number[], cond: Tensor | undefined, level: number | undefined, graphs: boolean): NoisePredictor {
    const n = labels.length;
    const T = this.numTimesteps;
    const device = this.device;
    const mod = tidy(() => {
      const t = int64(Array.from({ length: T * n }, (_, k) => Math.floor(k / n)), { device });
      const y = int64(Array.from({ length: T * n }, (_, k) => labels[k % n]!), { device });
      const extra = level === undefined ? undefined : full([T * n, 1], level, { device });
      return net.modulation(unetContext(t, T, y, this.config.unet.numClasses, extra));
    });
    const input = (xt: Tensor) => (cond === undefined ? xt : cat([xt, cond], 1));
    if (!graphs) return (xt, t) => tidy(() => net.forward(input(xt), InferenceUNet.rows(mod, t * n, n)));
    const rows = arange(0, n, 1, { device });
    const graphed = new GraphedFunction(([xt, index]) => net.forward(input(xt!), InferenceUNet.select(mod, index!)), {
      device,
      warmup: 1,
      onFallback: (reason) => process.emitWarning(`${reason}; sampling continues without CUDA graphs`),
    });
    this.#graphs.push(graphed);
    return (xt, t) => tidy(() => graphed.call([xt, rows.add(t * n)])[0]!);
  }

  // The CUDA graphs of the reverse process under way, released with it (its tensors are its tidy scope's).
  #graphs: GraphedFunction[] = [];

  dispose(): void {
    this.unet.dispose();
  }
}
