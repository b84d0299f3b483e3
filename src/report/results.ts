// The numbers of a paper reproduction, as written to `results.json` beside the report. The report is
// rendered from this object alone, so other tools can read the same numbers. Its vocabulary is the producers':
// the paper's pipelines, the x̂0 constraint kinds, CAS scores and off-range records.
import type { OffRange } from '../data/generated-set.ts';
import type { X0ConstraintKind } from '../diffusion/thresholding.ts';
import type { CasScore } from '../eval/cas.ts';
import type { PaperPipeline } from '../pipelines/paper-pipelines.ts';
import type { Engine } from '../pipelines/sampling-model.ts';

export type { OffRange } from '../data/generated-set.ts';
export type { X0ConstraintKind } from '../diffusion/thresholding.ts';
export type { PaperPipeline } from '../pipelines/paper-pipelines.ts';

export type CasDatasetName = 'real' | PaperPipeline;
/** Table 1's two rows: plain sampling ('none') and x̂0 clipped at every step ('clip'). */
export type Table1X0 = Extract<X0ConstraintKind, 'none' | 'clip'>;

/** CAS of one dataset of Table 1: m classifiers trained on it, each scored on the real test set. */
export interface CasResult extends CasScore {
  dataset: CasDatasetName;
  /** How x̂0 was kept in range while sampling; null for real data. */
  x0: Table1X0 | null;
  /** Generated data: mean over its sets (absent for real data and for sets written without the measurement). */
  offRange?: OffRange;
  /** Of the set CAS trained on (real data: the floor); absent in results made before the metrics existed. */
  fidelity?: FidelityResult;
}

/** Seconds per sample at batch size 1 (the paper's §0.3), model loading excluded. */
export interface SpeedResult {
  pipeline: PaperPipeline;
  /** Plain sampling ('none', the paper's Table 1 row) or x̂0 clipped. */
  x0: Table1X0;
  secondsPerSample: number;
  samples: number;
  /** Network evaluations per sample. */
  steps: number;
  /** The engine that sampled (absent in results written before it was recorded: libtorch). */
  engine?: Engine;
}

export interface TrainingResult {
  model: 'baseline' | 'small' | 'upscaler';
  seed: number;
  epochs: number;
  finalLoss: number;
  /** Wall time of the training (as logged), in seconds. */
  seconds: number;
  run: string;
}

/** The 1-D study (§1.3): reverse-process endpoints against the two-point data distribution. */
export interface Toy1dResult {
  /** The data's two support points, e.g. [-1, 1] or [0, 2]. */
  support: [number, number];
  samples: number;
  /** Endpoints farther than `tolerance` from both support points. */
  offSupport: number;
  tolerance: number;
  /** Share of endpoints nearest to each support point. */
  shareNear: [number, number];
  /**
   * The same model and noise sampled with x̂0 clipped to the support's interval. With one value per sample,
   * dynamic thresholding is the same map (s = max(1, |x̂0|) in the interval's units), so this row stands for both.
   */
  clipped?: { offSupport: number; shareNear: [number, number] };
  finalLoss: number;
  /** Figure files (relative to the report folder). */
  forwardFigure: string;
  reverseFigure: string;
}

/** The experiments beyond the paper (src/experiments/protocol.ts), grouped as the report shows them. */
export type BeyondGroup = 'thresholding' | 'ddim' | 'ema' | 'conditioning' | 'first-step' | 'objective' | 'budget' | 'guidance' | 'autoguidance';

/**
 * What CAS forgives, judged by the CAS network trained on the real training set: the share of images it labels as
 * their own label, the Fréchet distance to the real test set in its 128 penultimate features, and precision and
 * recall (Kynkäänniemi et al. 2019, k-NN balls of k neighbours) in the same space.
 */
export interface FidelityResult {
  conditionalAccuracy: number;
  frechetDistance: number;
  precision: number;
  recall: number;
  k: number;
}

export interface BeyondResult {
  group: BeyondGroup;
  name: string;
  label: string;
  cas: { mean: number; std: number; accuracies: number[] };
  /** Seconds per sample at batch size 1, where timed; network evaluations per sample, where timed or set. */
  secondsPerSample?: number;
  steps?: number;
  /** DDIM's noise scale, for DDIM variants. */
  eta?: number;
  /** The sampler, for variants sampled by neither DDPM nor DDIM (recorded by their η). */
  sampler?: 'dpmpp-2m';
  /** How x̂0 was kept in range while sampling. */
  x0: X0ConstraintKind;
  offRange?: OffRange;
  /** The guidance scale, for guided variants: one for every model of the pipeline, or one per model. */
  guidance?: number | number[];
  /** The noise levels σ in (lo, hi] it was applied at, for variants guided in an interval. */
  guidanceInterval?: [number, number];
  /** Classifier-free guidance under autoguidance: its scale(s) and the noise levels σ in (lo, hi] it applied at. */
  labelGuidance?: number | number[];
  labelGuidanceInterval?: [number, number];
  /** Absent in results made before the metrics existed. */
  fidelity?: FidelityResult;
}

export interface StageTiming {
  name: string;
  seconds: number;
  /** 'cached': a result made earlier under the same key was reused; 'ran': it ran. */
  status: 'ran' | 'cached';
  /** Why it ran, or what was reused. */
  reason?: string;
  /** A cached stage: how long it took when it ran (when its record says). */
  ranSeconds?: number;
}

export interface MachineInfo {
  /** Where trainings, sampling, CAS and the speed stage ran (absent in results written before it was recorded: cpu). */
  device?: string;
  cpu: string;
  cores: number;
  threads: number;
  libtorch: string;
  /** The ONNX Runtime version, where the speed stage sampled on it. */
  onnxruntime?: string;
  node: string;
  os: string;
}

export interface Figure {
  /** File name relative to the report folder (PNG or SVG). */
  file: string;
  caption: string;
}

export interface PaperResults {
  format: 'ssddpm-paper-results';
  version: 2;
  preset: 'full' | 'quick' | 'ci';
  dataset: string;
  createdAt: string;
  machine: MachineInfo;
  settings: Record<string, number | string | boolean>;
  training: TrainingResult[];
  cas: CasResult[];
  speed: SpeedResult[];
  toy1d: Toy1dResult[];
  figures: Figure[];
  /** With `paper --beyond`. */
  beyond?: BeyondResult[];
  stages: StageTiming[];
  totalSeconds: number;
}

/** Table 1 of the paper (T4 GPU for the timings). */
export const PAPER_TABLE1 = {
  cas: { real: [0.9764, 0.0043], baseline: [0.73, 0.0401], 'small-upscaled': [0.8188, 0.0323], cascaded: [0.5997, 0.0477] } as Record<CasDatasetName, [number, number]>,
  secondsPerSample: { baseline: 0.0607, 'small-upscaled': 0.0412, cascaded: 0.0671 } as Record<PaperPipeline, number>,
};

/**
 * Results in the current format. Version 1 named Table 1's rows by `sampling` ('plain' | 'clipped'), the DDIM
 * variants' clipping `clip: true`, stage outcomes `skipped`, and timed only plain sampling; the numbers are the same.
 */
export function migrateResults(raw: unknown): PaperResults {
  const r = raw as { format?: unknown; version?: unknown } & Record<string, unknown>;
  if (r?.format !== 'ssddpm-paper-results') throw new Error('not an ssddpm results file (format missing)');
  if (r.version === 2) return raw as PaperResults;
  if (r.version !== 1) throw new Error(`results version ${String(r.version)} is newer than this ssddpm understands (2)`);
  type V1Cas = Omit<CasResult, 'x0'> & { sampling: 'plain' | 'clipped' | null };
  type V1Beyond = Omit<BeyondResult, 'x0'> & { clip?: boolean };
  type V1Stage = { name: string; seconds: number; skipped: boolean };
  const cas = (r.cas as V1Cas[]).map(({ sampling, ...c }): CasResult => ({ ...c, x0: sampling === null ? null : sampling === 'clipped' ? 'clip' : 'none' }));
  const beyond = (r.beyond as V1Beyond[] | undefined)?.map(({ clip, ...b }): BeyondResult => ({
    ...b,
    name: b.name.replace(/-clipped$/, '-clip'),
    x0: clip ? 'clip' : b.group === 'thresholding' ? 'dynamic' : 'none',
  }));
  const speed = (r.speed as Omit<SpeedResult, 'x0'>[]).map((s): SpeedResult => ({ ...s, x0: 'none' }));
  const stages = (r.stages as V1Stage[]).map(({ skipped, ...s }): StageTiming =>
    skipped ? { ...s, status: 'cached', reason: 'its outputs existed (version 1 checked no key)' } : { ...s, status: 'ran' });
  return { ...(raw as PaperResults), version: 2, cas, speed, stages, ...(beyond === undefined ? {} : { beyond }) };
}

/** The timing of a pipeline sampled plainly (the paper's) or with x̂0 clipped, when it was measured. */
export function speedOf(r: Pick<PaperResults, 'speed'>, pipeline: PaperPipeline, x0: Table1X0 = 'none'): SpeedResult | undefined {
  return r.speed.find((s) => s.pipeline === pipeline && s.x0 === x0);
}
