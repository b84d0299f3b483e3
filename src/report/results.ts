// The numbers of a paper reproduction, as written to `results.json` beside the report. The report is
// rendered from this object alone, so other tools can read the same numbers.

export type CasDatasetName = 'real' | 'baseline' | 'small-upscaled' | 'cascaded';
export type SamplingMode = 'plain' | 'clipped';
export type SpeedPipelineName = 'baseline' | 'small-upscaled' | 'cascaded';

/**
 * How much of a generated dataset its last model put outside the data range [0, 1] before clamping: the share
 * of pixels off by more than half a gray level, and the share of samples with a pixel off by more than 0.1.
 */
export interface OffRange {
  pixels: number;
  samples: number;
}

/** CAS of one dataset: m classifiers trained on it, each scored on the real test set. */
export interface CasResult {
  dataset: CasDatasetName;
  /** How the generated images were sampled; null for real data. */
  sampling: SamplingMode | null;
  /** Mean and standard deviation of the m test accuracies. */
  mean: number;
  std: number;
  /** Test accuracy of each classifier. */
  accuracies: number[];
  /** Per-class accuracy: mean and std over the m classifiers, one entry per class. */
  perClassMean: number[];
  perClassStd: number[];
  /** Images the classifiers were trained on. */
  trainImages: number;
  /** Generated data: mean over its sets (absent for real data and for sets written without the measurement). */
  offRange?: OffRange;
}

/** Seconds per sample at batch size 1 (the paper's §0.3), model loading excluded. */
export interface SpeedResult {
  pipeline: SpeedPipelineName;
  secondsPerSample: number;
  samples: number;
  /** Network evaluations per sample. */
  steps: number;
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

/** The experiments beyond the paper (src/experiments/beyond.ts), grouped as the report shows them. */
export type BeyondGroup = 'thresholding' | 'ddim' | 'ema' | 'conditioning';

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
  /** Sampled with x̂0 clipped at every step (DDIM variants). */
  clip?: boolean;
  offRange?: OffRange;
}

export interface StageTiming {
  name: string;
  seconds: number;
  /** The stage's outputs already existed, so it was not run again. */
  skipped: boolean;
}

export interface MachineInfo {
  /** Where trainings, sampling, CAS and the speed stage ran (absent in results written before it was recorded: cpu). */
  device?: string;
  cpu: string;
  cores: number;
  threads: number;
  libtorch: string;
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
  version: 1;
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
  secondsPerSample: { baseline: 0.0607, 'small-upscaled': 0.0412, cascaded: 0.0671 } as Record<SpeedPipelineName, number>,
};
