// The paper's protocol and the experiments beyond it, run by one stage runner: trainings → for every variant its
// generated sets, CAS and (where asked) sampling speed → the real-data anchor → the 1-D study → figures →
// report. Every stage but the figures is cached under a key of everything it depends on (stage-cache.ts), so
// an interrupted run continues where it stopped and a changed setting, input or code version reruns exactly the
// stages it affects, saying why.
import { existsSync, rmSync } from 'node:fs';
import { cpus, platform, release } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadDataset, type DatasetName } from '../data/datasets.ts';
import { readOffRange, writeGeneratedSet } from '../data/generated-set.ts';
import { readImageSetDir, type ImageSet } from '../data/image-set.ts';
import { balancedSubset } from '../data/sampling.ts';
import { x0Constraint } from '../diffusion/thresholding.ts';
import { classificationAccuracyScore, combineBalanced, type CasScore } from '../eval/cas.ts';
import { measureSamplingSpeed, type SpeedMeasurement } from '../eval/speed.ts';
import { classifierFeatures, fidelity, type FidelityScore, type SetFeatures } from '../eval/fidelity.ts';
import type { TrainedClassifier } from '../eval/classifier.ts';
import { referenceClassifier } from '../eval/reference-classifier.ts';
import { writeFileAtomic } from '../io/atomic.ts';
import { sha256 } from '../io/content-hash.ts';
import { lockFolder } from '../io/lock.ts';
import { forwardProcessFigure, reverseProcessFigure, sampleGridFigure } from '../pipelines/figures.ts';
import { generateSet } from '../pipelines/generate.ts';
import { MODEL_KINDS, type ModelKind } from '../pipelines/model-config.ts';
import { PAPER_PIPELINES, PAPER_PIPELINE_MODELS, type PaperPipeline } from '../pipelines/paper-pipelines.ts';
import { defaultEngine, disposePipeline, loadModel, loadPipeline, type PipelineSpec } from '../pipelines/pipeline.ts';
import type { Engine } from '../pipelines/sampling-model.ts';
import { onnxRuntimeVersion } from '../onnx/runtime.ts';
import type { BeyondResult, CasResult, FidelityResult, Table1X0, Figure, PaperResults, SpeedResult, StageTiming, Toy1dResult, TrainingResult } from '../report/results.ts';
import { writeReport } from '../report/write.ts';
import { getNumThreads, setNumThreads, torchVersion } from '../torch/runtime.ts';
import { findRun, type RunLocation } from './find-run.ts';
import { SEEDS, labelOffset, trainings, variants, type BeyondSettings, type ProtocolPreset, type Variant } from './protocol.ts';
import { STAGE_VERSIONS, StageCache, type StageKey } from './stage-cache.ts';
import { PAPER_TOY1D, runToy1d, type Toy1dConfig } from './toy1d.ts';

export interface PaperOptions {
  preset: ProtocolPreset;
  dataset: DatasetName;
  /** Where runs/, sets/ and stages/ live. */
  work: string;
  /** Where finished trainings are looked for first (e.g. the shipped pretrained runs); missing ones train into `<work>/runs`. */
  runs?: string;
  /** The report folder. */
  out: string;
  seed?: number;
  /** Where trainings, sampling, CAS and the speed stage run: cpu (default) or cuda[:N]. The 1-D study stays on the CPU. */
  device?: string;
  /**
   * The engine that samples the generated sets and the speed stage. Default: sets on libtorch (the engine the
   * committed results were made with; ONNX Runtime gives the same images to float rounding), speed on the
   * fastest engine installed (defaultEngine).
   */
  engine?: Engine;
  /** Data-parallel trainings on this many processes of this machine (see FindRunOptions.nproc). */
  nproc?: number;
  /** Also run the experiments beyond the paper (DDIM, dynamic thresholding, EMA, conditioning augmentation). */
  beyond?: BeyondSettings;
  /**
   * Only these variants (Table 1's or, with `beyond`, those beyond it; by name) and the trainings they sample;
   * the real-data anchor always. Default: every variant.
   */
  variants?: readonly string[];
  log?: (line: string) => void;
  /** Progress of the current stage: a label, done and total, and extra fields. */
  progress?: (label: string, done: number, total: number, fields?: Record<string, string>) => void;
}

/** The shipped pretrained runs of a dataset (`pretrained/<dataset>`), when the package has them. */
export function pretrainedRuns(dataset: DatasetName): string | undefined {
  const dir = fileURLToPath(new URL(`../../pretrained/${dataset}`, import.meta.url));
  return existsSync(dir) ? dir : undefined;
}

// Images sampled at once: the noise drawn depends on it, so it is part of a set's key.
const GENERATION_BATCH = 256;

/** A content hash of an in-memory image set. */
function imageSetHash(set: ImageSet): string {
  return sha256(`${set.count}×${set.height}×${set.width}/${set.numClasses}`, set.images, set.labels);
}

function withThreads<T>(n: number, body: () => T): T {
  const threads = getNumThreads();
  setNumThreads(n);
  try {
    return body();
  } finally {
    setNumThreads(threads);
  }
}

/** Runs (or resumes) the protocol and writes the report, as the only writer of both folders; returns the results. */
export async function runPaper(opts: PaperOptions): Promise<PaperResults> {
  const selected = selectVariants(variants(opts.beyond), opts.variants); // a wrong name is refused before any folder is touched
  const releaseWork = lockFolder(opts.work, 'work folder');
  try {
    const releaseOut = lockFolder(opts.out, 'report folder');
    try {
      return await runProtocol(opts, selected);
    } finally {
      releaseOut();
    }
  } finally {
    releaseWork();
  }
}

async function runProtocol(opts: PaperOptions, selected: readonly Variant[]): Promise<PaperResults> {
  const started = performance.now();
  const { preset, work } = opts;
  const device = opts.device ?? 'cpu';
  const setsDir = join(work, 'sets');
  const cache = new StageCache(join(work, 'stages'));
  const log = opts.log ?? (() => {});
  const progress = opts.progress ?? (() => {});
  const seeds = Array.from({ length: preset.runs }, (_, i) => i + 1);
  const stages: StageTiming[] = [];
  const sampled = new Set(selected.flatMap((v) => [...PAPER_PIPELINE_MODELS[v.pipeline].models.map((m) => v.trainings?.[m] ?? m), ...Object.values(v.guides ?? {})]));

  // Runs `body` unless the stage `id` is cached under `key`; `outputs` are the files it writes.
  const stage = async <T>(name: string, id: string, key: StageKey, outputs: readonly string[], body: () => T | Promise<T>): Promise<T> => {
    const t0 = performance.now();
    const found = cache.lookup<T>(id, key);
    if ('result' in found) {
      log(`${name}: cached`);
      stages.push({ name, seconds: (performance.now() - t0) / 1000, status: 'cached', ...(found.seconds === undefined ? {} : { ranSeconds: found.seconds }) });
      return found.result;
    }
    log(`${name}: running (${found.reason})`);
    for (const o of outputs) rmSync(o, { recursive: true, force: true });
    const result = await body();
    const seconds = (performance.now() - t0) / 1000;
    cache.store(id, key, result, outputs, seconds);
    stages.push({ name, seconds, status: 'ran', reason: found.reason });
    return result;
  };

  // 1. Trainings: every training of the protocol, every seed; finished runs matching the protocol are reused.
  const runs = new Map<string, RunLocation>();
  const training: TrainingResult[] = [];
  for (const spec of trainings(opts.beyond).filter((t) => opts.variants === undefined || sampled.has(t.name))) {
    for (const seed of seeds) {
      const t0 = performance.now();
      const name = `train ${spec.name}-${seed}`;
      const found = findRun({ spec, seed, preset, dataset: opts.dataset, device, runs: opts.runs, work, nproc: opts.nproc, onProgress: (p) => progress(name, p.step, p.totalSteps, { loss: p.loss.toFixed(4) }), log: (line) => log(`${name}: ${line}`) });
      runs.set(`${spec.name}-${seed}`, found);
      if (!found.trained) log(`${name}: cached (finished run ${found.dir})`);
      stages.push({ name, seconds: (performance.now() - t0) / 1000, status: found.trained ? 'ran' : 'cached', reason: found.trained ? found.reason : `finished run ${found.dir}` });
      if (spec.name === spec.model) training.push({ model: spec.model, seed, epochs: preset.epochs, finalLoss: found.finalLoss, seconds: found.seconds, run: found.dir });
    }
  }
  const run = (name: string, seed: number) => runs.get(`${name}-${seed}`)!;
  const generationEngine = opts.engine ?? 'libtorch';
  const speedEngine = opts.engine ?? defaultEngine(device);
  const pipelineSpec = (v: Pick<Variant, 'pipeline' | 'trainings' | 'guides' | 'ema'>, seed: number, engine: Engine): PipelineSpec => {
    const p = PAPER_PIPELINE_MODELS[v.pipeline];
    const guide = (m: ModelKind) => (v.guides?.[m] === undefined ? undefined : run(v.guides[m], seed).dir);
    return { runs: p.models.map((m) => run(v.trainings?.[m] ?? m, seed).dir), upscale: p.upscale, device, engine, ema: v.ema, ...(v.guides === undefined ? {} : { guides: p.models.map(guide) }) };
  };
  const pipelineInputs = (v: Variant, seed: number): Record<string, string> => {
    const p = PAPER_PIPELINE_MODELS[v.pipeline];
    const guides = Object.entries(v.guides ?? {}).map(([m, t]) => [`${m}-guide`, run(t, seed).hash]);
    return Object.fromEntries([...p.models.map((m) => [m, run(v.trainings?.[m] ?? m, seed).hash]), ...guides]);
  };

  // 2. The real test set every classifier is scored on, and the real anchor.
  const fullTest = loadDataset(opts.dataset, 'test');
  const test = preset.testImages === undefined ? fullTest : balancedSubset(fullTest, Math.floor(preset.testImages / 10), SEEDS.realTest);
  const testHash = imageSetHash(test);
  const casConfig = { images: preset.casImages, classifiers: preset.classifiers, epochs: preset.casEpochs, seed: SEEDS.cas, pool: SEEDS.casPool, device };
  const scoreCas = (label: string, train: ImageSet): CasScore =>
    classificationAccuracyScore(train, test, {
      classifiers: preset.classifiers,
      epochs: preset.casEpochs,
      seed: SEEDS.cas,
      device,
      onStep: (k, step, total) => progress(`${label} ${k + 1}/${preset.classifiers}`, step, total),
    });
  const realTrain = balancedSubset(loadDataset(opts.dataset, 'train'), Math.floor(preset.casImages / 10), SEEDS.realTrain);
  // The fidelity metrics' judge (trained once, when a fidelity stage first runs; kept in the work folder) and the
  // real test set's features; a set's fidelity is measured on the pooled set its CAS trains on.
  const judgeOptions = { dataset: opts.dataset, cacheDir: join(work, 'judge'), epochs: preset.judge.epochs, perClass: preset.judge.perClass, device };
  let judge: { classifier: TrainedClassifier; reference: SetFeatures } | undefined;
  const fidelityConfig = { judge: preset.judge, k: FIDELITY_K, device };
  const scoreFidelity = (set: ImageSet): FidelityScore => {
    if (judge === undefined) {
      const classifier = referenceClassifier({ ...judgeOptions, onStep: (step, total) => progress('fidelity judge (once)', step, total) });
      judge = { classifier, reference: classifierFeatures(classifier, test) };
    }
    return fidelity(judge.classifier, set, judge.reference, FIDELITY_K);
  };
  const real = await stage('cas real', 'cas-real', { stage: 'cas', version: STAGE_VERSIONS.cas, config: { ...casConfig, realSubset: SEEDS.realTrain }, inputs: { train: imageSetHash(realTrain), test: testHash } }, [], () =>
    scoreCas('cas real', realTrain));
  const realFidelity = await stage('fidelity real', 'fidelity-real', { stage: 'fidelity', version: STAGE_VERSIONS.fidelity, config: { ...fidelityConfig, realSubset: SEEDS.realTrain }, inputs: { set: imageSetHash(realTrain), test: testHash } }, [], () =>
    scoreFidelity(realTrain));

  // 3. Every variant: a generated set per run, their CAS, and the speed where asked.
  const measured: { variant: Variant; cas: CasScore; fidelity: FidelityScore; offRange?: CasResult['offRange']; speed?: SpeedMeasurement }[] = [];
  for (const v of selected) {
    const setDir = (seed: number) => join(setsDir, `${v.name}-${seed}`);
    const setHashes: Record<string, string> = {};
    for (const seed of seeds) {
      const dir = setDir(seed);
      // libtorch, the engine of every set made before the choice existed, is implied.
      const engine = generationEngine === 'libtorch' ? {} : { engine: generationEngine };
      const config = { sampling: v.sampling, pipeline: v.pipeline, count: preset.samplesPerRun, batchSize: GENERATION_BATCH, seed: SEEDS.generation(seed), labelOffset: labelOffset(seed, preset.samplesPerRun), device, ...engine, ...(v.ema === false ? { ema: false } : {}) };
      const label = `generate ${v.name} ${seed}`;
      await stage(label, `generate-${v.name}-${seed}`, { stage: 'generate', version: STAGE_VERSIONS.generate, config, inputs: pipelineInputs(v, seed) }, [dir], () => {
        const p = loadPipeline(pipelineSpec(v, seed, generationEngine));
        try {
          const set = generateSet(p, { ...v.sampling, count: config.count, batchSize: config.batchSize, seed: config.seed, labelOffset: config.labelOffset, onProgress: (done, total) => progress(label, done, total) });
          writeGeneratedSet(dir, set, { variant: v.name, run: seed, ...config });
        } finally {
          disposePipeline(p);
        }
        return {};
      });
      setHashes[`set-${seed}`] = cache.outputHash(`generate-${v.name}-${seed}`, dir);
    }
    const pooled = () => combineBalanced(seeds.map((s) => readImageSetDir(setDir(s))), preset.casImages, SEEDS.casPool);
    const cas = await stage(`cas ${v.name}`, `cas-${v.name}`, { stage: 'cas', version: STAGE_VERSIONS.cas, config: casConfig, inputs: { ...setHashes, test: testHash } }, [], () =>
      scoreCas(`cas ${v.name}`, pooled()));
    const fid = await stage(`fidelity ${v.name}`, `fidelity-${v.name}`, { stage: 'fidelity', version: STAGE_VERSIONS.fidelity, config: { ...fidelityConfig, images: preset.casImages, pool: SEEDS.casPool }, inputs: { ...setHashes, test: testHash } }, [], () =>
      scoreFidelity(pooled()));
    measured.push({ variant: v, cas, fidelity: fid, offRange: readOffRange(seeds.map(setDir)) });
  }

  // 4. Sampling speed at batch size 1 (seed-1 models) of the variants that ask for it, last: timings want a
  //    quiet machine.
  for (const m of measured.filter((x) => x.variant.speed)) {
    const v = m.variant;
    const config = { sampling: v.sampling, pipeline: v.pipeline, samples: preset.speedSamples, threads: preset.speedThreads, seed: SEEDS.speed, device, cpu: cpus()[0]?.model ?? 'unknown', libtorch: torchVersion, engine: speedEngine, ...(speedEngine === 'onnxruntime' ? { onnxruntime: onnxRuntimeVersion() } : {}) };
    m.speed = await stage(`speed ${v.name}`, `speed-${v.name}`, { stage: 'speed', version: STAGE_VERSIONS.speed, config, inputs: pipelineInputs(v, 1) }, [], () =>
      withThreads(preset.speedThreads, () => {
        const p = loadPipeline(pipelineSpec(v, 1, speedEngine));
        try {
          return measureSamplingSpeed(p, { ...v.sampling, samples: preset.speedSamples, seed: SEEDS.speed, onSample: (d, t) => progress(`speed ${v.name}`, d, t) });
        } finally {
          disposePipeline(p);
        }
      }));
  }

  // 5. The 1-D study, on {−1, 1} and on {0, 2}.
  const toy1d: Toy1dResult[] = [];
  for (const support of [[-1, 1], [0, 2]] as [number, number][]) {
    const prefix = `toy1d_${support[0]}_${support[1]}`;
    const config: Toy1dConfig = { ...PAPER_TOY1D, ...preset.toy1d, support, seed: opts.seed ?? 1 };
    const outputs = [join(opts.out, `${prefix}-forward.svg`), join(opts.out, `${prefix}-reverse.svg`)];
    toy1d.push(await stage(`1-D study on {${support.join(', ')}}`, prefix, { stage: 'toy1d', version: STAGE_VERSIONS.toy1d, config, inputs: {} }, outputs, () =>
      runToy1d(config, opts.out, prefix, (step, total, loss) => progress(`1-D study {${support.join(', ')}}`, step, total, { loss: loss.toFixed(4) }))));
  }

  // 6. Figures from the seed-1 models that were part of this run, and a sample grid of every variant named beyond
  //    the paper (cheap: drawn every time).
  const figures: Figure[] = [];
  const t0 = performance.now();
  const png = (file: string, caption: string, draw: () => { toPng(): Uint8Array }) => {
    writeFileAtomic(join(opts.out, file), draw().toPng());
    figures.push({ file, caption });
  };
  for (const model of MODEL_KINDS.filter((m) => runs.has(`${m}-1`))) {
    const m = loadModel(run(model, 1).dir, { device });
    try {
      const T = m.numTimesteps;
      png(`forward-${model}.png`, `Forward process of the ${model} model's data (T=${T}, ${m.config.imageSize}×${m.config.imageSize}): each column one step of q(x_t | x_{t−1}).`, () => forwardProcessFigure(m, 4, { seed: SEEDS.processFigures }));
      if (!m.isUpscaler) {
        png(`reverse-${model}.png`, `Reverse process of the ${model} model, plain sampling: rows of x_t and of the x̂0 predicted at each step (cf. the paper's Fig. 2).`, () => reverseProcessFigure(m, [0, 2, 4, 8], { seed: SEEDS.processFigures }));
      }
    } finally {
      m.dispose();
    }
  }
  const labels = Array.from({ length: 10 }, (_, i) => i);
  for (const pipeline of PAPER_PIPELINES.filter((p) => PAPER_PIPELINE_MODELS[p].models.every((m) => runs.has(`${m}-1`)))) {
    const p = loadPipeline(pipelineSpec({ pipeline }, 1, generationEngine));
    try {
      for (const clip of [false, true]) {
        png(`samples-${pipeline}${clip ? '-clip' : ''}.png`, `Samples of ${pipeline} (${clip ? 'x̂0 clipped' : 'plain sampling'}), one label per column.`,
          () => sampleGridFigure(p, labels, preset.gridRows, { clip, seed: SEEDS.grids }));
      }
    } finally {
      disposePipeline(p);
    }
  }
  // Variants beyond the paper that were named (a full --beyond run has too many for a grid each).
  for (const v of opts.variants === undefined ? [] : selected.filter((x) => x.group !== 'table1')) {
    const p = loadPipeline(pipelineSpec(v, 1, generationEngine));
    try {
      png(`samples-${v.name}.png`, `Samples of ${v.label} (seed-1 models), one label per column.`, () => sampleGridFigure(p, labels, preset.gridRows, { ...v.sampling, seed: SEEDS.grids }));
    } finally {
      disposePipeline(p);
    }
  }
  stages.push({ name: 'figures', seconds: (performance.now() - t0) / 1000, status: 'ran' });

  // 7. The report.
  const table1 = measured.filter((m) => m.variant.group === 'table1');
  const x0Of = (v: Variant) => x0Constraint(v.sampling).kind;
  const cas: CasResult[] = [
    { dataset: 'real', x0: null, ...real, fidelity: fidelityResult(realFidelity) },
    ...table1.map((m): CasResult => ({ dataset: m.variant.pipeline, x0: x0Of(m.variant) as Table1X0, ...m.cas, ...(m.offRange ? { offRange: m.offRange } : {}), fidelity: fidelityResult(m.fidelity) })),
  ];
  const speed: SpeedResult[] = table1.flatMap((m) => (m.speed ? [{ pipeline: m.variant.pipeline as PaperPipeline, x0: x0Of(m.variant) as Table1X0, ...m.speed, engine: speedEngine }] : []));
  // A guidance scale as results.json records it: one number, or a plain array of one per model.
  const plainScale = (w: number | readonly number[]) => (typeof w === 'number' ? w : [...w]);
  const beyond = opts.beyond === undefined ? undefined : measured.filter((m) => m.variant.group !== 'table1').map((m): BeyondResult => {
    const { variant: v } = m;
    return {
      group: v.group as BeyondResult['group'],
      name: v.name,
      label: v.label,
      cas: { mean: m.cas.mean, std: m.cas.std, accuracies: m.cas.accuracies },
      x0: x0Of(v),
      ...(v.sampling.eta !== undefined ? { eta: v.sampling.eta } : {}),
      ...(v.sampling.sampler === 'dpmpp-2m' ? { sampler: v.sampling.sampler } : {}),
      ...(m.speed ? { secondsPerSample: m.speed.secondsPerSample, steps: m.speed.steps } : v.sampling.steps !== undefined ? { steps: v.sampling.steps } : {}),
      ...(m.offRange ? { offRange: m.offRange } : {}),
      ...(v.sampling.guidance !== undefined ? { guidance: plainScale(v.sampling.guidance) } : {}),
      ...(v.sampling.guidanceInterval !== undefined ? { guidanceInterval: [...v.sampling.guidanceInterval] as [number, number] } : {}),
      ...(v.sampling.labelGuidance !== undefined ? { labelGuidance: plainScale(v.sampling.labelGuidance) } : {}),
      ...(v.sampling.labelGuidanceInterval !== undefined ? { labelGuidanceInterval: [...v.sampling.labelGuidanceInterval] as [number, number] } : {}),
      fidelity: fidelityResult(m.fidelity),
    };
  });
  if (judge !== undefined) {
    judge.reference.features.dispose();
    judge.classifier.model.dispose();
  }
  const results: PaperResults = {
    format: 'ssddpm-paper-results',
    version: 2,
    preset: preset.name,
    dataset: opts.dataset,
    createdAt: new Date().toISOString(),
    machine: { ...machineInfo(device), ...(speedEngine === 'onnxruntime' && measured.some((m) => m.speed) ? { onnxruntime: onnxRuntimeVersion() } : {}) },
    settings: { ...Object.fromEntries(Object.entries(preset).filter(([, v]) => typeof v !== 'object')), runsFolder: relative(opts.out, opts.runs ?? join(work, 'runs')), ...(opts.variants === undefined ? {} : { variants: selected.map((v) => v.name).join(', ') }) },
    training,
    cas,
    speed,
    toy1d,
    figures,
    ...(beyond === undefined ? {} : { beyond }),
    stages,
    totalSeconds: (performance.now() - started) / 1000,
  };
  await writeReport(opts.out, results);
  return results;
}

/** The variants named in `names` (all when undefined), in the protocol's order; an unknown name is refused. */
export function selectVariants(all: readonly Variant[], names: readonly string[] | undefined): Variant[] {
  if (names === undefined) return [...all];
  const known = new Set(all.map((v) => v.name));
  const unknown = names.filter((n) => !known.has(n));
  if (unknown.length > 0) {
    throw new RangeError(`unknown variant${unknown.length > 1 ? 's' : ''} ${unknown.map((n) => `"${n}"`).join(', ')}; this protocol's variants are: ${[...known].join(', ')}`);
  }
  if (names.length === 0) throw new RangeError('no variant named: give at least one');
  const wanted = new Set(names);
  return all.filter((v) => wanted.has(v.name));
}

// Neighbours of the k-NN balls of precision and recall (Kynkäänniemi et al. 2019).
const FIDELITY_K = 3;

function fidelityResult(f: FidelityScore): FidelityResult {
  return { conditionalAccuracy: f.conditionalAccuracy, frechetDistance: f.frechetDistance, precision: f.precision, recall: f.recall, k: f.k };
}

function machineInfo(device: string) {
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
