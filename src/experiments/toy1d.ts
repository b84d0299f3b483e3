// The paper's one-dimensional study (§1.3, appendix 3.8): a small MLP DDPM trained on data uniform on two
// points, whose reverse trajectories show how samples can end between the modes (off the data's support),
// and how shifting the data from {−1, 1} to {0, 2} unbalances the modes.
import { join } from 'node:path';
import * as vega from 'vega';
import * as vl from 'vega-lite';
import { DDPMScheduler } from '../diffusion/ddpm.ts';
import { NoiseSchedule, checkScheduleConfig, type ScheduleConfig } from '../diffusion/schedule.ts';
import { sampleLoop } from '../diffusion/sample.ts';
import { writeFileAtomic } from '../io/atomic.ts';
import { mseLoss } from '../nn/functional.ts';
import { GELU, Linear, Sequential } from '../nn/layers.ts';
import { Adam } from '../optim/adam.ts';
import type { Toy1dResult } from '../report/results.ts';
import { Generator } from '../torch/generator.ts';
import { noGrad } from '../torch/grad-mode.ts';
import { full } from '../torch/ops/creation.ts';
import { randint, randn } from '../torch/ops/random.ts';
import { cat, stack } from '../torch/ops/shape.ts';
import { tidy } from '../torch/scope.ts';
import type { Tensor } from '../torch/tensor.ts';

export interface Toy1dConfig {
  /** The two points the data is uniform on, e.g. [−1, 1] or [0, 2]. */
  support: [number, number];
  /** The noise schedule (the paper: cosine, T = 20, exponent 1.5). */
  schedule: ScheduleConfig;
  epochs: number;
  batchesPerEpoch: number;
  batchSize: number;
  lr: number;
  /** Seeds the weights, the training data and noise, and (seed + 1, seed + 2) the forward and reverse draws. */
  seed: number;
  /** Trajectories to draw for the analysis. */
  samples: number;
  /** An endpoint farther than this from both support points is off the support. */
  tolerance: number;
  /** Clip x̂0 to [min(support), max(support)] at every reverse step (the domain constraint). Default false. */
  clip?: boolean;
}

/** Appendix 3.8: 20 timesteps, cosine power 1.5, Adam lr 1e-4, 200 epochs of 100 × 128 samples, batch 128. */
export const PAPER_TOY1D: Readonly<Toy1dConfig> = Object.freeze({
  // Frozen too: spreading the preset shares this array.
  support: Object.freeze([-1, 1]) as unknown as [number, number],
  schedule: Object.freeze({ kind: 'cosine', numTimesteps: 20, power: 1.5 }) as ScheduleConfig,
  epochs: 200,
  batchesPerEpoch: 100,
  batchSize: 128,
  lr: 1e-4,
  seed: 0,
  samples: 1000,
  tolerance: 0.25,
  clip: false,
});

/** Throws a RangeError naming the first invalid field. */
export function validateToy1dConfig(c: Toy1dConfig): void {
  const positiveInt = (name: string, v: number, min = 1) => {
    if (!Number.isInteger(v) || v < min) throw new RangeError(`toy1d: ${name} must be an integer ≥ ${min}, got ${v}`);
  };
  if (!Array.isArray(c.support) || c.support.length !== 2 || !c.support.every(Number.isFinite) || c.support[0] === c.support[1]) {
    throw new RangeError(`toy1d: support must be two distinct finite numbers, got ${JSON.stringify(c.support)}`);
  }
  try {
    checkScheduleConfig(c.schedule);
  } catch (err) {
    throw new RangeError(`toy1d: ${(err as Error).message}`);
  }
  // t/(T−1) needs T ≥ 2.
  positiveInt('schedule.numTimesteps', c.schedule.numTimesteps, 2);
  positiveInt('epochs', c.epochs);
  positiveInt('batchesPerEpoch', c.batchesPerEpoch);
  positiveInt('batchSize', c.batchSize);
  if (!(c.lr > 0 && Number.isFinite(c.lr))) throw new RangeError(`toy1d: lr must be positive, got ${c.lr}`);
  if (!Number.isSafeInteger(c.seed) || c.seed < 0) throw new RangeError(`toy1d: seed must be a non-negative integer, got ${c.seed}`);
  positiveInt('samples', c.samples);
  if (!(c.tolerance > 0 && Number.isFinite(c.tolerance))) throw new RangeError(`toy1d: tolerance must be positive, got ${c.tolerance}`);
  if (c.clip !== undefined && typeof c.clip !== 'boolean') throw new RangeError(`toy1d: clip must be a boolean, got ${String(c.clip)}`);
}

/** Appendix 3.8's network: FC 2→64, GELU, FC 64→64, GELU, FC 64→1, on [x_t, t/(T−1)]. */
export function toy1dModel(generator?: Generator): Sequential {
  return new Sequential(new Linear(2, 64, { generator }), new GELU(), new Linear(64, 64, { generator }), new GELU(), new Linear(64, 1, { generator }));
}

/**
 * ε̂(x_t, t) for x_t [N, 1] at timestep `t` (a number shared by the batch, or int64 [N]). The time input is
 * t/(T−1) ∈ [0, 1], the same scaling as the U-Net's context (the paper's "normalized timestep").
 */
export function predictToy1dNoise(model: Sequential, xt: Tensor, t: number | Tensor, numTimesteps: number): Tensor {
  return tidy(() => {
    const time = typeof t === 'number' ? full([xt.size(0), 1], t / (numTimesteps - 1)) : t.float().div_(numTimesteps - 1).unsqueeze(1);
    return model.forward(cat([xt, time], 1));
  });
}

// The study's scheduler over its schedule; x̂0 is clipped to the support's interval when asked.
function schedulerFor(config: Toy1dConfig, clip: boolean): DDPMScheduler {
  return new DDPMScheduler({ schedule: new NoiseSchedule(config.schedule), clip, clipRange: supportRange(config.support) });
}

function supportRange(support: readonly [number, number]): [number, number] {
  return [Math.min(support[0], support[1]), Math.max(support[0], support[1])];
}

/** n data points [n, 1], each support point with probability ½. */
function drawData(support: readonly [number, number], n: number, generator?: Generator): Tensor {
  return tidy(() => randint(0, 2, [n, 1], { generator }).float().mul_(support[1] - support[0]).add_(support[0]));
}

export type Toy1dProgress = (step: number, total: number, loss: number) => void;

/**
 * Trains the toy DDPM (Ho et al. Algorithm 1 with ε-prediction). Returns the model (in eval mode; the
 * caller disposes it) and `finalLoss`, the mean loss of the last epoch (one batch's loss is too noisy).
 */
export function trainToy1d(config: Toy1dConfig, onProgress?: Toy1dProgress): { model: Sequential; finalLoss: number } {
  validateToy1dConfig(config);
  // 1. One seeded stream for the weights, the data, the timesteps and the noise.
  const generator = new Generator(config.seed);
  const model = toy1dModel(generator);
  const scheduler = schedulerFor(config, false);
  const optimizer = new Adam(model.parameters(), { lr: config.lr });
  const total = config.epochs * config.batchesPerEpoch;
  let step = 0;
  let finalLoss = Number.NaN;
  let ok = false;
  try {
    model.train();
    for (let epoch = 0; epoch < config.epochs; epoch++) {
      let sum = 0;
      for (let b = 0; b < config.batchesPerEpoch; b++) {
        // 2. x0 ~ U{a, b}, t ~ U{0..T−1}, ε ~ N(0, 1); minimise ‖ε − ε̂(√ᾱ_t x0 + √(1−ᾱ_t) ε, t)‖².
        const loss = tidy(() => {
          const x0 = drawData(config.support, config.batchSize, generator);
          const t = randint(0, config.schedule.numTimesteps, [config.batchSize], { generator });
          const noise = randn([config.batchSize, 1], { generator });
          const xt = scheduler.addNoise(x0, noise, t);
          const l = mseLoss(predictToy1dNoise(model, xt, t, config.schedule.numTimesteps), noise);
          optimizer.zeroGrad();
          l.backward();
          return l.item();
        });
        if (!Number.isFinite(loss)) throw new Error(`toy1d: the loss became ${loss} at step ${step + 1}`);
        // 3. Adam update.
        noGrad(() => tidy(() => optimizer.step()));
        sum += loss;
        step++;
        onProgress?.(step, total, loss);
      }
      finalLoss = sum / config.batchesPerEpoch;
    }
    ok = true;
  } finally {
    optimizer.dispose();
    scheduler.dispose();
    if (ok) model.zeroGrad();
    else model.dispose();
  }
  model.eval();
  return { model, finalLoss };
}

/**
 * A bundle of 1-D trajectories, row-major [count, length], each in the order the process runs: forward
 * trajectories start at the data, reverse ones at the noise.
 */
export interface Toy1dTrajectories {
  direction: 'forward' | 'reverse';
  count: number;
  /** Values per trajectory: T + 1 (the data and the T noisy states). */
  length: number;
  /**
   * The state index of each column in Ho et al.'s notation, 0 = data x_0 and T = pure noise x_T (the
   * scheduler's x_t at timestep t is state t + 1): forward 0..T, reverse T..0.
   */
  steps: number[];
  values: Float32Array;
}

/** The value at the data end (state 0) of trajectory i. */
function dataEnd(tr: Toy1dTrajectories, i: number): number {
  return tr.values[i * tr.length + (tr.direction === 'forward' ? 0 : tr.length - 1)]!;
}

export interface Toy1dSamples {
  /** x_0 of each trajectory. */
  endpoints: Float32Array;
  trajectories: Toy1dTrajectories;
}

/**
 * Draws n reverse trajectories (Ho et al. Algorithm 2) from x_T ~ N(0, 1). With `clip` (default
 * `config.clip`), x̂0 is clipped to [min, max] of the support at every step; the last step's output is the
 * clipped x̂0 itself, so every endpoint lies in that interval.
 */
export function sampleToy1d(model: Sequential, config: Toy1dConfig, n: number, opts: { generator?: Generator; clip?: boolean } = {}): Toy1dSamples {
  validateToy1dConfig(config);
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`sampleToy1d: n must be a positive integer, got ${n}`);
  const scheduler = schedulerFor(config, opts.clip ?? config.clip ?? false);
  const wasTraining = model.training;
  model.eval();
  try {
    return tidy(() => {
      const { sample, trajectory } = sampleLoop(scheduler, (xt, t) => predictToy1dNoise(model, xt, t, config.schedule.numTimesteps), [n, 1], {
        generator: opts.generator,
        keepTrajectory: true,
      });
      // x_t before each step (t = T−1..0), then the final sample: T + 1 columns.
      const values = stack([...trajectory!.xt, sample], 1).contiguous().data() as Float32Array;
      const endpoints = sample.data() as Float32Array;
      const length = config.schedule.numTimesteps + 1;
      const steps = Array.from({ length }, (_, k) => config.schedule.numTimesteps - k);
      return { endpoints, trajectories: { direction: 'reverse' as const, count: n, length, steps, values } };
    });
  } finally {
    model.train(wasTraining);
    scheduler.dispose();
  }
}

/** n trajectories of the forward process from the data, one `forwardStep` per timestep (paper Fig. 3). */
export function forwardTrajectories(config: Toy1dConfig, n: number, generator?: Generator): Toy1dTrajectories {
  validateToy1dConfig(config);
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`forwardTrajectories: n must be a positive integer, got ${n}`);
  const scheduler = schedulerFor(config, false);
  try {
    return tidy(() => {
      const states = [drawData(config.support, n, generator)];
      for (let t = 0; t < config.schedule.numTimesteps; t++) states.push(scheduler.forwardStep(states[states.length - 1]!, t, generator));
      const values = stack(states, 1).contiguous().data() as Float32Array;
      const length = config.schedule.numTimesteps + 1;
      return { direction: 'forward' as const, count: n, length, steps: Array.from({ length }, (_, k) => k), values };
    });
  } finally {
    scheduler.dispose();
  }
}

export interface EndpointAnalysis {
  /** Endpoints farther than `tolerance` from both support points (non-finite ones included). */
  offSupport: number;
  /** Share of all endpoints nearest to each support point (ties go to the first); non-finite ones count for neither. */
  shareNear: [number, number];
}

export function analyseEndpoints(endpoints: ArrayLike<number>, support: readonly [number, number], tolerance: number): EndpointAnalysis {
  if (endpoints.length === 0) throw new RangeError('analyseEndpoints: no endpoints');
  if (!(tolerance >= 0)) throw new RangeError(`analyseEndpoints: tolerance must be non-negative, got ${tolerance}`);
  const [a, b] = support;
  let offSupport = 0;
  let nearA = 0;
  let nearB = 0;
  for (let i = 0; i < endpoints.length; i++) {
    const x = endpoints[i]!;
    if (!Number.isFinite(x)) {
      offSupport++;
      continue;
    }
    const da = Math.abs(x - a);
    const db = Math.abs(x - b);
    if (da <= db) nearA++;
    else nearB++;
    if (da > tolerance && db > tolerance) offSupport++;
  }
  return { offSupport, shareNear: [nearA / endpoints.length, nearB / endpoints.length] };
}

export interface Toy1dFigureOptions {
  title: string;
  support: readonly [number, number];
  /** Distance from the support beyond which a trajectory's data end is highlighted (default 0.25). */
  tolerance?: number;
  /** Trajectories drawn (default 100): every off-support one first, then the others in order. */
  maxLines?: number;
}

/**
 * Value against state for a subset of trajectories (paper Figs. 3 and 4), as an SVG string. Lines are
 * coloured by the support point nearest their data end (x_0); off-support ones are drawn thick, on top.
 * Reverse figures run the axis from T down to 0, so both read in the process's own direction.
 */
export async function toy1dFigure(trajectories: Toy1dTrajectories, opts: Toy1dFigureOptions): Promise<string> {
  const tolerance = opts.tolerance ?? 0.25;
  const maxLines = opts.maxLines ?? 100;
  const [a, b] = opts.support;
  const labels = [`near ${a}`, `near ${b}`, 'off support'];
  const modeOf = (x: number): string => {
    const da = Math.abs(x - a);
    const db = Math.abs(x - b);
    if (!(da <= tolerance || db <= tolerance)) return labels[2]!;
    return da <= db ? labels[0]! : labels[1]!;
  };
  // 1. The subset: off-support trajectories are the point of the figure, so they go in first.
  const modes = Array.from({ length: trajectories.count }, (_, i) => modeOf(dataEnd(trajectories, i)));
  const order = [...modes.keys()].sort((i, j) => Number(modes[j] === labels[2]) - Number(modes[i] === labels[2]) || i - j);
  const chosen = order.slice(0, maxLines);
  const rows: { id: number; step: number; value: number; mode: string }[] = [];
  for (const i of chosen) {
    for (let k = 0; k < trajectories.length; k++) {
      const v = trajectories.values[i * trajectories.length + k]!;
      // Vega cannot draw non-finite values; such points are left out of the line.
      if (Number.isFinite(v)) rows.push({ id: i, step: trajectories.steps[k]!, value: v, mode: modes[i]! });
    }
  }
  // 2. Two line layers (on-support thin and faint, off-support thick on top) over dashed support lines.
  const T = trajectories.length - 1;
  const x = {
    field: 'step',
    type: 'quantitative' as const,
    title: trajectories.direction === 'forward' ? 'state t (0 = data, T = noise)' : 'state t (T = noise → 0 = sample)',
    scale: { domain: [0, T], reverse: trajectories.direction === 'reverse', nice: false },
    axis: { tickMinStep: 1 },
  };
  const y = { field: 'value', type: 'quantitative' as const, title: 'x_t' };
  const color = { field: 'mode', type: 'nominal' as const, title: 'x_0', scale: { domain: labels, range: ['#1f77b4', '#2ca02c', '#d62728'] },
    legend: { symbolOpacity: 1, symbolStrokeWidth: 2 },
  };
  const spec: vl.TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: opts.title,
    width: 520,
    height: 320,
    background: 'white',
    layer: [
      { data: { values: [{ s: a }, { s: b }] }, mark: { type: 'rule', strokeDash: [4, 4], color: '#888' }, encoding: { y: { field: 's', type: 'quantitative' } } },
      {
        data: { values: rows.filter((r) => r.mode !== labels[2]) },
        mark: { type: 'line', strokeWidth: 0.8, opacity: 0.45, interpolate: 'linear' },
        encoding: { x, y, color, detail: { field: 'id', type: 'nominal' } },
      },
      {
        data: { values: rows.filter((r) => r.mode === labels[2]) },
        mark: { type: 'line', strokeWidth: 2.2, opacity: 1 },
        encoding: { x, y, color, detail: { field: 'id', type: 'nominal' } },
      },
    ],
  };
  const view = new vega.View(vega.parse(vl.compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/**
 * The whole study for one support: trains, draws `samples` forward and reverse trajectories, writes
 * `<prefix>-forward.svg` and `<prefix>-reverse.svg` into `outDir` and analyses the reverse endpoints.
 */
export async function runToy1d(config: Toy1dConfig, outDir: string, prefix: string, onProgress?: Toy1dProgress): Promise<Toy1dResult> {
  validateToy1dConfig(config);
  if (prefix === '' || /[/\\]/.test(prefix)) throw new RangeError(`runToy1d: prefix must be a plain file-name prefix, got '${prefix}'`);
  // 1. Train (appendix 3.8).
  const { model, finalLoss } = trainToy1d(config, onProgress);
  let forward: Toy1dTrajectories;
  let reverse: Toy1dSamples;
  let clipped: Toy1dSamples | undefined;
  try {
    // 2. Forward trajectories from the data (Fig. 3) and reverse ones from noise (Fig. 4), on separate streams.
    forward = forwardTrajectories(config, config.samples, new Generator(config.seed + 1));
    reverse = sampleToy1d(model, config, config.samples, { generator: new Generator(config.seed + 2), clip: config.clip ?? false });
    // The same noise again with x̂0 clipped: what the domain constraint changes for this very model.
    if (!config.clip) clipped = sampleToy1d(model, config, config.samples, { generator: new Generator(config.seed + 2), clip: true });
  } finally {
    model.dispose();
  }
  // 3. Endpoint analysis (§1.3: off-support samples, balance of the two modes).
  const { offSupport, shareNear } = analyseEndpoints(reverse.endpoints, config.support, config.tolerance);
  // 4. Figures.
  const forwardFigure = `${prefix}-forward.svg`;
  const reverseFigure = `${prefix}-reverse.svg`;
  const name = `{${config.support.join(', ')}}`;
  const common = { support: config.support, tolerance: config.tolerance };
  writeFileAtomic(join(outDir, forwardFigure), await toy1dFigure(forward, { ...common, title: `Forward process from data on ${name}` }));
  writeFileAtomic(
    join(outDir, reverseFigure),
    await toy1dFigure(reverse.trajectories, { ...common, title: `Reverse process, data on ${name}${config.clip ? ', x̂0 clipped' : ''}` }),
  );
  const result: Toy1dResult = { support: [config.support[0], config.support[1]], samples: config.samples, offSupport, tolerance: config.tolerance, shareNear, finalLoss, forwardFigure, reverseFigure };
  if (clipped) result.clipped = analyseEndpoints(clipped.endpoints, config.support, config.tolerance);
  return result;
}
