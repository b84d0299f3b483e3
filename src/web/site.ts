// `ssddpm web`: a static site that samples the trained models in the browser. It holds the page (page/, bundled
// with esbuild), onnxruntime-web's runtime files, each model exported as one ONNX step graph, a manifest of what
// the page needs (configurations, schedules, pipelines) and the report. Everything is local: the folder works
// offline and on any static host. It is built in a temporary folder renamed into place at the end.
import { build } from 'esbuild';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { removeStaleTemporaries, nameTheTarget } from '../io/atomic.ts';
import { sha256 } from '../io/content-hash.ts';
import { lockFolder } from '../io/lock.ts';
import { NoiseSchedule } from '../diffusion/schedule.ts';
import type { DiffusionModelConfig, ModelKind } from '../pipelines/model-config.ts';
import { LOW_NOISE_GUIDANCE, type PaperPipeline } from '../pipelines/paper-pipelines.ts';
import { ONNX_MODEL_FILE, describeOnnxModel, diffusionModelToOnnx } from '../pipelines/onnx-export.ts';
import { loadModel } from '../pipelines/pipeline.ts';
import { RunError, latestCheckpoint, noCheckpointReason, readRunConfig } from '../pipelines/run-dir.ts';
import { migrateResults, type PaperResults } from '../report/results.ts';
import { MANIFEST_FILE, SITE_FORMAT, SITE_FORMAT_VERSION, type SiteManifest, type SiteModel, type SitePipeline } from './page/manifest.ts';
import { pageHtml } from './site-html.ts';

const PAGE_DIR = fileURLToPath(new URL('./page/', import.meta.url));
const require = createRequire(import.meta.url);

/** The shipped runs of the paper's three models, and the committed report. */
export const DEFAULT_RUNS: Readonly<Record<ModelKind, string>> = {
  baseline: 'pretrained/mnist/baseline-1',
  small: 'pretrained/mnist/small-1',
  upscaler: 'pretrained/mnist/upscaler-1',
};
/**
 * The shipped runs trained with label dropout, sampled with classifier-free guidance at low noise levels only:
 * digits a person recognises, their variety kept (the README's "Samples a person recognises"). They are the
 * models of the protocol's low-noise recipes, sampled from moving averages of their weights: the v-prediction
 * baseline, and a small model twice as wide with an upscaler trained under conditioning augmentation.
 */
export const DEFAULT_GUIDED_RUNS: Readonly<Record<ModelKind, string>> = {
  baseline: 'pretrained/mnist/baseline-vcfg-ema-1',
  small: 'pretrained/mnist/small-wide-vcfg-ema-1',
  upscaler: 'pretrained/mnist/upscaler-vcfg-aug-ema-1',
};
export const DEFAULT_REPORT = 'docs/paper-report';

/** onnxruntime-web's files the page loads at run time: the WebAssembly build and the one WebGPU needs. */
export const ORT_RUNTIME_FILES = [
  'ort-wasm-simd-threaded.mjs',
  'ort-wasm-simd-threaded.wasm',
  'ort-wasm-simd-threaded.asyncify.mjs',
  'ort-wasm-simd-threaded.asyncify.wasm',
] as const;

export interface SiteOptions {
  /** Run folders (or ONNX exports: config.json beside model.onnx) per model; a pipeline needs its models. */
  runs?: Partial<Record<ModelKind, string>>;
  /** Runs trained with label dropout, offered as guided pipelines beside those of `runs`; null: none. */
  guided?: Partial<Record<ModelKind, string>> | null;
  /**
   * The guided pipelines' guidance scale until the visitor changes it, at every step unless `guidanceSigma` bounds
   * it. Default: each pipeline's low-noise recipe (LOW_NOISE_GUIDANCE, DDIM over every step).
   */
  guidance?: number;
  /** The guided pipelines' bound on the noise level σ_t guidance applies at, until the visitor changes it. */
  guidanceSigma?: number;
  /** A report folder written by `ssddpm paper` (results.json, charts, figures); null: no report tab. */
  report?: string | null;
}

export interface SiteBuild {
  out: string;
  manifest: SiteManifest;
  /** Every source file esbuild put into the page's scripts (relative to the repository or node_modules). */
  bundleInputs: string[];
  bytes: number;
}

export function onnxruntimeWebDir(): string {
  return dirname(require.resolve('onnxruntime-web'));
}

function onnxruntimeWebVersion(): string {
  return (JSON.parse(readFileSync(join(onnxruntimeWebDir(), '..', 'package.json'), 'utf8')) as { version: string }).version;
}

interface ExportedModel {
  name: string;
  run: string;
  bytes: Uint8Array;
  config: DiffusionModelConfig;
  weights: 'ema' | 'model';
}

// Checked before anything is written: the folder is a run (or an ONNX export) of the expected kind with
// something to export.
function checkRun(kind: ModelKind, run: string, guided: boolean): void {
  const config = readRunConfig(run);
  if (config.model.kind !== kind) throw new RunError(`${run} holds ${config.model.kind === 'upscaler' ? 'an' : 'a'} ${config.model.kind} model, not the ${kind} model the page needs`);
  if (guided && config.model.labelDropout === undefined) throw new RunError(`${run} was trained without --label-dropout, so it cannot be sampled with guidance; give a run trained with it as the guided ${kind} model`);
  if (!existsSync(join(run, ONNX_MODEL_FILE)) && latestCheckpoint(run) === undefined) throw new RunError(`${run}: no checkpoint to export: ${noCheckpointReason(run)}`);
}

function exportModel(name: string, run: string): ExportedModel {
  const config = readRunConfig(run);
  const file = join(run, ONNX_MODEL_FILE);
  if (existsSync(file)) {
    const bytes = readFileSync(file);
    let d;
    try {
      d = describeOnnxModel(bytes);
    } catch (err) {
      throw new RunError(`${file}: ${(err as Error).message}`);
    }
    return { name, run, bytes, config: d.config, weights: d.weights };
  }
  const weights = config.training.ema !== undefined ? 'ema' : 'model';
  const model = loadModel(run);
  try {
    return { name, run, bytes: diffusionModelToOnnx(model, weights), config: model.config, weights };
  } finally {
    model.dispose();
  }
}

function siteModel(m: ExportedModel): SiteModel {
  const { kind, imageSize, lowResSize, conditioningNoise, labelDropout, prediction, normalization, schedule, unet } = m.config;
  return {
    file: `models/${m.name}.onnx`,
    bytes: m.bytes.length,
    sha256: sha256(m.bytes),
    run: m.run,
    weights: m.weights,
    config: { kind, imageSize, ...(lowResSize === undefined ? {} : { lowResSize }), ...(conditioningNoise === undefined ? {} : { conditioningNoise }), ...(labelDropout === undefined ? {} : { labelDropout }), ...(prediction === undefined ? {} : { prediction }), normalization, schedule, unet: { numClasses: unet.numClasses } },
    betas: Array.from(new NoiseSchedule(schedule).terms.betas),
  };
}

type ModelSet = Partial<Record<ModelKind, ExportedModel>>;

const GUIDED = '-guided';

/** The pipelines a set of models makes; a guided set's names end in -guided and carry their guidance scale. */
function sitePipelines(models: ModelSet, guided: boolean, guidance: number | undefined, guidanceSigma: number | undefined): SitePipeline[] {
  const out: SitePipeline[] = [];
  const size = (k: ModelKind) => models[k]!.config.imageSize;
  const suffix = guided ? GUIDED : '';
  // Each guided pipeline starts at its recipe: DDIM over every step, its scale at σ_t ≤ its bound. A scale given
  // replaces the recipe's scale and bound (guided at every step unless a bound is given too).
  const w = (pipeline: PaperPipeline) => {
    if (!guided) return {};
    const recipe = LOW_NOISE_GUIDANCE[pipeline];
    const sigma = guidanceSigma ?? (guidance === undefined ? recipe.sigma[1] : undefined);
    return { guidance: guidance ?? recipe.scale, ...(sigma === undefined ? {} : { guidanceSigma: sigma }), sampler: 'ddim' as const };
  };
  const with_ = guided ? ', guided' : '';
  if (models.baseline) out.push({ name: `baseline${suffix}`, title: `Baseline${with_} (${size('baseline')}×${size('baseline')})`, models: [models.baseline.name], ...w('baseline') });
  if (models.small) out.push({ name: `small-upscaled${suffix}`, title: `Small upscaled${with_} (${size('small')}×${size('small')}, then bilinear ×2)`, models: [models.small.name], upscaleTo: 2 * size('small'), ...w('small-upscaled') });
  if (models.small && models.upscaler) {
    if (models.upscaler.config.lowResSize !== size('small')) throw new RunError(`the upscaler (${models.upscaler.run}) expects ${models.upscaler.config.lowResSize}×${models.upscaler.config.lowResSize} inputs but the small model (${models.small.run}) makes ${size('small')}×${size('small')}`);
    out.push({ name: `cascaded${suffix}`, title: `Cascaded${with_} (${size('small')}×${size('small')}, then the upscaler)`, models: [models.small.name, models.upscaler.name], ...w('cascaded') });
  }
  return out;
}

const runKinds = (runs: Partial<Record<ModelKind, string>>) => (Object.keys(runs) as ModelKind[]).filter((k) => runs[k] !== undefined);

function readReport(dir: string): PaperResults {
  const file = join(dir, 'results.json');
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new RunError(`${dir}: no such report folder`);
  if (!existsSync(file)) throw new RunError(`${dir}: not a report folder (no results.json); give one written by \`ssddpm paper\``);
  try {
    return migrateResults(JSON.parse(readFileSync(file, 'utf8')));
  } catch (err) {
    throw new RunError(`${file}: ${(err as Error).message}`);
  }
}

async function bundlePage(appDir: string, repoRoot: string): Promise<string[]> {
  const result = await build({
    entryPoints: { main: join(PAGE_DIR, 'main.ts'), worker: join(PAGE_DIR, 'worker.ts') },
    outdir: appDir,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'browser',
    target: ['es2022'],
    // onnxruntime-web's builds that load their WebAssembly files from ort/ (env.wasm.wasmPaths) at run time.
    conditions: ['onnxruntime-web-use-extern-wasm'],
    chunkNames: 'chunk-[hash]',
    minify: true,
    sourcemap: 'linked',
    metafile: true,
    logLevel: 'silent',
    legalComments: 'linked',
  });
  return Object.keys(result.metafile.inputs).map((p) => relative(repoRoot, resolve(repoRoot, p)));
}

function folderBytes(dir: string): number {
  return readdirSync(dir, { withFileTypes: true }).reduce((n, e) => n + (e.isDirectory() ? folderBytes(join(dir, e.name)) : statSync(join(dir, e.name)).size), 0);
}

/** Whether `dir` holds a site this command built (which a new build may replace). */
function isSite(dir: string): boolean {
  try {
    return (JSON.parse(readFileSync(join(dir, MANIFEST_FILE), 'utf8')) as { format?: string }).format === SITE_FORMAT;
  } catch {
    return false;
  }
}

/**
 * Builds the site into `out` (a new folder, or a site built before, which is replaced whole). Nothing is written
 * when a run or the report is missing or wrong.
 */
export async function buildSite(out: string, opts: SiteOptions = {}): Promise<SiteBuild> {
  // The guided pipelines first: the page opens on the first, and those are the digits a person recognises.
  const sets = [
    ...(opts.guided === null ? [] : [{ runs: opts.guided ?? DEFAULT_GUIDED_RUNS, guided: true }]),
    { runs: opts.runs ?? DEFAULT_RUNS, guided: false },
  ];
  if (sets.every((s) => runKinds(s.runs).length === 0)) throw new RunError('give at least one run folder');
  for (const { runs, guided } of sets) {
    for (const k of runKinds(runs)) checkRun(k, runs[k]!, guided);
    if (runs.upscaler !== undefined && runs.small === undefined) throw new RunError(`the upscaler samples in a cascade: give the ${guided ? 'guided ' : ''}small model too`);
  }
  if (opts.guidance !== undefined && !(Number.isFinite(opts.guidance) && opts.guidance >= 0)) throw new RunError(`the guidance scale must be a number ≥ 0, got ${opts.guidance}`);
  if (opts.guidanceSigma !== undefined && !(opts.guidanceSigma > 0)) throw new RunError(`the noise level to guide up to must be a number > 0, got ${opts.guidanceSigma}`);
  const reportDir = opts.report === undefined ? DEFAULT_REPORT : opts.report;
  const results = reportDir === null ? undefined : readReport(reportDir);
  if (existsSync(out) && !(statSync(out).isDirectory() && (isSite(out) || readdirSync(out).length === 0))) {
    throw new RunError(`${out} exists and is not a site built by \`ssddpm web\`; choose another --out`);
  }
  const release = lockFolder(out, 'site folder');
  const tmp = join(dirname(out), `.tmp-${basename(out)}-${process.pid}`);
  const old = join(dirname(out), `.tmp-${basename(out)}-${process.pid}-old`);
  try {
    removeStaleTemporaries(out);
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(join(tmp, 'models'), { recursive: true });
    const models: Record<string, SiteModel> = {};
    const pipelines: SitePipeline[] = [];
    for (const { runs, guided } of sets) {
      const exported: ModelSet = {};
      for (const k of runKinds(runs)) {
        const m = (exported[k] = exportModel(guided ? `${k}${GUIDED}` : k, runs[k]!));
        models[m.name] = siteModel(m);
        writeFileSync(join(tmp, models[m.name]!.file), m.bytes);
      }
      pipelines.push(...sitePipelines(exported, guided, opts.guidance, opts.guidanceSigma));
    }
    const manifest: SiteManifest = {
      format: SITE_FORMAT,
      version: SITE_FORMAT_VERSION,
      createdAt: new Date().toISOString(),
      onnxruntimeWeb: onnxruntimeWebVersion(),
      models,
      pipelines,
    };
    writeFileSync(join(tmp, MANIFEST_FILE), `${JSON.stringify(manifest, null, 1)}\n`);
    const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
    const bundleInputs = await bundlePage(join(tmp, 'app'), repoRoot);
    mkdirSync(join(tmp, 'ort'));
    for (const f of ORT_RUNTIME_FILES) copyFileSync(join(onnxruntimeWebDir(), f), join(tmp, 'ort', f));
    const license = join(onnxruntimeWebDir(), '..', 'LICENSE');
    if (existsSync(license)) copyFileSync(license, join(tmp, 'ort', 'LICENSE'));
    copyFileSync(join(PAGE_DIR, 'style.css'), join(tmp, 'style.css'));
    let reportFiles = new Set<string>();
    if (reportDir !== null) {
      mkdirSync(join(tmp, 'report'));
      for (const e of readdirSync(reportDir, { withFileTypes: true })) {
        if (e.isFile() && !e.name.startsWith('.')) copyFileSync(join(reportDir, e.name), join(tmp, 'report', e.name));
      }
      reportFiles = new Set(readdirSync(join(tmp, 'report')));
    }
    writeFileSync(join(tmp, 'index.html'), pageHtml(manifest, results, reportFiles));
    writeFileSync(join(tmp, '.nojekyll'), '');
    const bytes = folderBytes(tmp);
    if (existsSync(out)) renameSync(out, old);
    renameSync(tmp, out);
    rmSync(old, { recursive: true, force: true });
    return { out, manifest, bundleInputs, bytes };
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    if (existsSync(old) && !existsSync(out)) renameSync(old, out);
    throw nameTheTarget(err, tmp, out);
  } finally {
    release();
  }
}
