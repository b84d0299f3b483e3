// The paper's whole protocol as one resumable pipeline: trainings → generated sets → CAS → sampling speed
// → the 1-D study → figures → report. Each stage writes its outputs atomically into the work folder and
// is skipped when they already exist, so an interrupted run continues where it stopped.
import { existsSync, readFileSync } from 'node:fs';
import { cpus, platform, release } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadDataset, type DatasetName } from '../data/datasets.ts';
import { readImageSetDir } from '../data/image-set.ts';
import { balancedSubset } from '../data/sampling.ts';
import { classificationAccuracyScore, combineBalanced } from '../eval/cas.ts';
import { measureSamplingSpeed } from '../eval/speed.ts';
import { writeFileAtomic } from '../io/atomic.ts';
import type { CasDatasetName, CasResult, Figure, PaperResults, SamplingMode, SpeedPipelineName, SpeedResult, StageTiming, Toy1dResult, TrainingResult } from '../report/results.ts';
import { writeReport } from '../report/write.ts';
import { getNumThreads, setNumThreads, torchVersion } from '../torch/runtime.ts';
import { forwardProcessFigure, reverseProcessFigure, sampleGridFigure } from './figures.ts';
import { MODEL_KINDS, type ModelKind } from './model-config.ts';
import { disposePipeline, generateSet, loadModel, loadPipeline, readOffRange, writeGeneratedSet, type Pipeline, type PipelineSpec } from './pipelines.ts';
import { epochCheckpointPath, logPath, readRunConfig } from './run-dir.ts';
import { PAPER_TOY1D, runToy1d, type Toy1dConfig } from './toy1d.ts';
import { runBeyond, type BeyondSettings } from './beyond.ts';
import { trainOrContinue, type TrainProgress } from './train-diffusion.ts';

export interface PaperPreset {
  name: 'full' | 'quick' | 'ci';
  /** Independent trainings per model (the paper: 3). */
  runs: number;
  epochs: number;
  /** Images per class in each training subset (5000: the paper's 50k). */
  perClass: number;
  /** Samples generated per training run (the paper: 3334). */
  samplesPerRun: number;
  /** Size of each CAS training set (the paper: 10,000), real anchor included. */
  casImages: number;
  /** Classifiers per CAS dataset (the paper: 5) and their epochs (5). */
  classifiers: number;
  casEpochs: number;
  /** Real test images the classifiers are scored on, balanced (undefined: the whole test set, as the paper). */
  testImages?: number;
  /** Samples timed at batch size 1 (the paper: 1000), and the threads used for it. */
  speedSamples: number;
  speedThreads: number;
  toy1d: Partial<Toy1dConfig>;
  /** Rows of the sample-grid figures. */
  gridRows: number;
}

export const PAPER_PRESETS: Record<PaperPreset['name'], PaperPreset> = {
  full: { name: 'full', runs: 3, epochs: 10, perClass: 5000, samplesPerRun: 3334, casImages: 10_000, classifiers: 5, casEpochs: 5, speedSamples: 1000, speedThreads: 1, toy1d: {}, gridRows: 10 },
  // The paper's models (one run each: the shipped pretrained ones when present), evaluated on reduced settings.
  quick: { name: 'quick', runs: 1, epochs: 10, perClass: 5000, samplesPerRun: 1000, casImages: 1000, classifiers: 2, casEpochs: 5, speedSamples: 50, speedThreads: 1, toy1d: { samples: 500 }, gridRows: 4 },
  ci: { name: 'ci', runs: 1, epochs: 1, perClass: 20, samplesPerRun: 40, casImages: 40, classifiers: 1, casEpochs: 1, testImages: 500, speedSamples: 2, speedThreads: 1, toy1d: { epochs: 2, batchesPerEpoch: 10, samples: 50 }, gridRows: 1 },
};

export interface PaperOptions {
  preset: PaperPreset;
  dataset: DatasetName;
  /** Where runs/, sets/ and eval/ live. */
  work: string;
  /** Where the trainings live (default `<work>/runs`). */
  runs?: string;
  /** The report folder. */
  out: string;
  seed?: number;
  /** Where trainings, sampling, CAS and the speed stage run: cpu (default) or cuda[:N]. The 1-D study stays on the CPU. */
  device?: string;
  /** Also run the experiments beyond the paper (DDIM, dynamic thresholding, EMA, conditioning augmentation). */
  beyond?: BeyondSettings;
  log?: (line: string) => void;
  /** Progress of the current stage: a label, done and total, and extra fields. */
  progress?: (label: string, done: number, total: number, fields?: Record<string, string>) => void;
}

const PIPELINES: readonly SpeedPipelineName[] = ['baseline', 'small-upscaled', 'cascaded'];
const SAMPLINGS: readonly SamplingMode[] = ['plain', 'clipped'];

function readJson<T>(path: string): T | undefined {
  return existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as T) : undefined;
}

function writeJson(path: string, value: unknown): void {
  writeFileAtomic(path, `${JSON.stringify(value, null, 2)}\n`);
}

/** The shipped pretrained runs of a dataset (`pretrained/<dataset>`), when the package has them. */
export function pretrainedRuns(dataset: DatasetName): string | undefined {
  const dir = fileURLToPath(new URL(`../../pretrained/${dataset}`, import.meta.url));
  return existsSync(dir) ? dir : undefined;
}

/** Runs (or resumes) the protocol and writes the report; returns the results written to results.json. */
export async function runPaper(opts: PaperOptions): Promise<PaperResults> {
  const started = performance.now();
  const { preset, work } = opts;
  const runsDir = opts.runs ?? join(work, 'runs');
  const setsDir = join(work, 'sets');
  const evalDir = join(work, 'eval');
  const log = opts.log ?? (() => {});
  const progress = opts.progress ?? (() => {});
  const stages: StageTiming[] = [];
  const stage = async <T>(name: string, done: boolean, body: () => T | Promise<T>): Promise<T> => {
    const t0 = performance.now();
    log(done ? `${name}: done before, skipped` : `${name}…`);
    const value = await body();
    stages.push({ name, seconds: (performance.now() - t0) / 1000, skipped: done });
    return value;
  };
  const runDir = (model: ModelKind, seed: number) => join(runsDir, `${model}-${seed}`);
  const device = opts.device;
  const load = (spec: PipelineSpec): Pipeline => loadPipeline({ ...spec, device });
  const seeds = Array.from({ length: preset.runs }, (_, i) => i + 1);

  // 1. Trainings: every model, every seed; a finished run has its last epoch's checkpoint.
  const training: TrainingResult[] = [];
  for (const model of MODEL_KINDS) {
    for (const seed of seeds) {
      const dir = runDir(model, seed);
      const finished = existsSync(epochCheckpointPath(dir, preset.epochs));
      await stage(`train ${model}-${seed}`, finished, () => {
        if (finished) return;
        trainOrContinue({
          out: dir,
          model,
          dataset: opts.dataset,
          device,
          training: { epochs: preset.epochs, seed, perClass: preset.perClass },
          onProgress: (p: TrainProgress) => progress(`train ${model}-${seed}`, p.step, p.totalSteps, { loss: p.loss.toFixed(4) }),
        });
      });
      training.push(trainingSummary(model, seed, dir, preset.epochs));
    }
  }

  // 2. Generated sets: each pipeline × sampling mode × run, MNIST-format IDX in sets/.
  const specOf = (pipeline: SpeedPipelineName, seed: number): PipelineSpec =>
    pipeline === 'baseline' ? { run: runDir('baseline', seed) } :
    pipeline === 'small-upscaled' ? { run: runDir('small', seed), upscale: true } :
    { cascade: [runDir('small', seed), runDir('upscaler', seed)] };
  const setDir = (pipeline: string, sampling: SamplingMode, seed: number) => join(setsDir, `${pipeline}-${sampling}-${seed}`);
  for (const pipeline of PIPELINES) {
    for (const sampling of SAMPLINGS) {
      for (const seed of seeds) {
        const dir = setDir(pipeline, sampling, seed);
        await stage(`generate ${pipeline} ${sampling} ${seed}`, existsSync(dir), () => {
          if (existsSync(dir)) return;
          const p = load(specOf(pipeline, seed));
          try {
            const set = generateSet(p, {
              count: preset.samplesPerRun,
              seed: 1000 + seed,
              clip: sampling === 'clipped',
              // Spread the sets' extra images over different classes so the pooled set balances.
              labelOffset: ((seed - 1) * preset.samplesPerRun) % 10,
              onProgress: (done, total) => progress(`generate ${pipeline} ${sampling} ${seed}`, done, total),
            });
            writeGeneratedSet(dir, set, { pipeline, sampling, seed });
          } finally {
            disposePipeline(p);
          }
        });
      }
    }
  }

  // 3. CAS: the real anchor and every generated dataset (pooled over runs, balanced, truncated).
  const fullTest = loadDataset(opts.dataset, 'test');
  const test = preset.testImages === undefined ? fullTest : balancedSubset(fullTest, Math.floor(preset.testImages / 10), 2);
  const cas: CasResult[] = [];
  const casJobs: { dataset: CasDatasetName; sampling: SamplingMode | null }[] = [
    { dataset: 'real', sampling: null },
    ...PIPELINES.flatMap((p) => SAMPLINGS.map((s) => ({ dataset: p as CasDatasetName, sampling: s }))),
  ];
  for (const job of casJobs) {
    const file = join(evalDir, `cas-${job.dataset}${job.sampling ? `-${job.sampling}` : ''}.json`);
    const cached = readJson<CasResult>(file);
    const result = await stage(`cas ${job.dataset}${job.sampling ? ` ${job.sampling}` : ''}`, cached !== undefined, () => {
      if (cached) return cached;
      const train = job.sampling === null
        ? balancedSubset(loadDataset(opts.dataset, 'train'), Math.floor(preset.casImages / 10), 1)
        : combineBalanced(seeds.map((s) => readImageSetDir(setDir(job.dataset, job.sampling!, s))), preset.casImages, 7);
      const score = classificationAccuracyScore(train, test, {
        classifiers: preset.classifiers,
        epochs: preset.casEpochs,
        seed: 100,
        device,
        onStep: (k, step, total) => progress(`cas ${job.dataset}${job.sampling ? ` ${job.sampling}` : ''} ${k + 1}/${preset.classifiers}`, step, total),
      });
      const offRange = job.sampling === null ? undefined : readOffRange(seeds.map((s) => setDir(job.dataset, job.sampling!, s)));
      const r: CasResult = { dataset: job.dataset, sampling: job.sampling, ...score, ...(offRange ? { offRange } : {}) };
      writeJson(file, r);
      return r;
    });
    cas.push(result);
  }

  // 4. Sampling speed at batch size 1 (seed-1 models), on `speedThreads` threads.
  const speed: SpeedResult[] = [];
  for (const pipeline of PIPELINES) {
    const file = join(evalDir, `speed-${pipeline}.json`);
    const cached = readJson<SpeedResult>(file);
    speed.push(await stage(`speed ${pipeline}`, cached !== undefined, () => {
      if (cached) return cached;
      const threads = getNumThreads();
      setNumThreads(preset.speedThreads);
      const p = load(specOf(pipeline, 1));
      try {
        const m = measureSamplingSpeed(p, { samples: preset.speedSamples, onSample: (d, t) => progress(`speed ${pipeline}`, d, t) });
        const r: SpeedResult = { pipeline, ...m };
        writeJson(file, r);
        return r;
      } finally {
        disposePipeline(p);
        setNumThreads(threads);
      }
    }));
  }

  // 4b. Beyond the paper, on the same protocol.
  const beyond = opts.beyond === undefined ? undefined : await runBeyond({
    preset, settings: opts.beyond, seeds, runDir: (name, seed) => join(runsDir, `${name}-${seed}`), extraRunDir: (name, seed) => join(work, 'runs', `${name}-${seed}`), setsDir, evalDir, test,
    dataset: opts.dataset, device, stage, progress, readJson, writeJson,
  });

  // 5. The 1-D study, on {−1, 1} and on {0, 2}.
  const toy1d: Toy1dResult[] = [];
  for (const support of [[-1, 1], [0, 2]] as [number, number][]) {
    const name = `toy1d_${support[0]}_${support[1]}`;
    const file = join(evalDir, `${name}.json`);
    const cached = readJson<Toy1dResult>(file);
    const figuresExist = cached !== undefined && existsSync(join(opts.out, cached.forwardFigure)) && existsSync(join(opts.out, cached.reverseFigure));
    toy1d.push(await stage(`1-D study on {${support.join(', ')}}`, figuresExist, async () => {
      if (figuresExist) return cached!;
      const config: Toy1dConfig = { ...PAPER_TOY1D, ...preset.toy1d, support, seed: opts.seed ?? 1 };
      const r = await runToy1d(config, opts.out, name, (step, total, loss) => progress(`1-D study {${support.join(', ')}}`, step, total, { loss: loss.toFixed(4) }));
      writeJson(file, r);
      return r;
    }));
  }

  // 6. Figures from the seed-1 models.
  const figures: Figure[] = [];
  await stage('figures', false, () => {
    const png = (file: string, caption: string, draw: () => { toPng(): Uint8Array }) => {
      writeFileAtomic(join(opts.out, file), draw().toPng());
      figures.push({ file, caption });
    };
    for (const model of MODEL_KINDS) {
      const m = loadModel(runDir(model, 1), { device });
      try {
        png(`forward-${model}.png`, `Forward process of the ${model} model's data (T=${m.config.numStates}, ${m.config.imageSize}×${m.config.imageSize}): each column one step of q(x_t | x_{t−1}).`, () => forwardProcessFigure(m, 4));
        if (model !== 'upscaler') {
          png(`reverse-${model}.png`, `Reverse process of the ${model} model, plain sampling: rows of x_t and of the x̂0 predicted at each step (cf. the paper's Fig. 2).`, () => reverseProcessFigure(m, [0, 2, 4, 8]));
        }
      } finally {
        m.dispose();
      }
    }
    const labels = Array.from({ length: 10 }, (_, i) => i);
    for (const pipeline of PIPELINES) {
      const p: Pipeline = load(specOf(pipeline, 1));
      try {
        for (const sampling of SAMPLINGS) {
          png(`samples-${pipeline}-${sampling}.png`, `Samples of ${pipeline} (${sampling} sampling), one label per column.`, () => sampleGridFigure(p, labels, preset.gridRows, { clip: sampling === 'clipped', seed: 3 }));
        }
      } finally {
        disposePipeline(p);
      }
    }
  });

  // 7. The report.
  const results: PaperResults = {
    format: 'ssddpm-paper-results',
    version: 1,
    preset: preset.name,
    dataset: opts.dataset,
    createdAt: new Date().toISOString(),
    machine: machineInfo(device),
    settings: { ...Object.fromEntries(Object.entries(preset).filter(([, v]) => typeof v !== 'object')), runsFolder: relative(opts.out, runsDir) },
    training,
    cas,
    speed,
    toy1d,
    figures,
    ...(beyond === undefined ? {} : { beyond }),
    stages,
    totalSeconds: 0,
  };
  results.totalSeconds = (performance.now() - started) / 1000;
  await writeReport(opts.out, results);
  return results;
}

function trainingSummary(model: ModelKind, seed: number, dir: string, epochs: number): TrainingResult {
  readRunConfig(dir);
  let seconds = 0;
  let finalLoss = Number.NaN;
  for (const line of readFileSync(logPath(dir), 'utf8').split('\n')) {
    if (line.trim() === '') continue;
    const entry = JSON.parse(line) as { loss?: number; seconds?: number };
    if (entry.seconds !== undefined) seconds += entry.seconds;
    if (entry.loss !== undefined) finalLoss = entry.loss;
  }
  return { model, seed, epochs, finalLoss, seconds, run: dir };
}

function machineInfo(device = 'cpu') {
  return {
    device,
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    threads: getNumThreads(),
    libtorch: torchVersion,
    node: process.version,
    os: `${platform()} ${release()}`,
  };
}
