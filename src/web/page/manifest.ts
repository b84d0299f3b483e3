// What `ssddpm web` writes beside the page (manifest.json) and the page reads: each model's exported step graph
// with its configuration and noise schedule, and the pipelines the models make. Types only, shared by the
// site builder (Node) and the page.

export const SITE_FORMAT = 'ssddpm-site';
export const SITE_FORMAT_VERSION = 1;
export const MANIFEST_FILE = 'manifest.json';

/** The parts of a model's configuration (pipelines/model-config.ts) the page uses. */
export interface SiteModelConfig {
  kind: 'baseline' | 'small' | 'upscaler';
  imageSize: number;
  lowResSize?: number;
  conditioningNoise?: number;
  /** Models trained with label dropout take a classifier-free guidance scale (0: none). */
  labelDropout?: number;
  /** What the network predicts; absent: the noise ε. */
  prediction?: 'epsilon' | 'v';
  normalization: { mean: number; std: number };
  schedule: { kind: 'cosine' | 'linear'; numTimesteps: number; power?: number };
  unet: { numClasses: number };
}

export interface SiteModel {
  /** The ONNX file (one reverse step per call), relative to the site. */
  file: string;
  bytes: number;
  /** SHA-256 of the file, hex: the page refuses a file that differs. */
  sha256: string;
  /** The run folder it was exported from, as given to `ssddpm web`. */
  run: string;
  /** Which weights: the run's moving average ('ema') or the trained ones. */
  weights: 'ema' | 'model';
  config: SiteModelConfig;
  /** β_t of the model's noise schedule, t = 0..T−1 (float64): every other term follows (scheduleTerms). */
  betas: number[];
}

/** The paper's three pipelines, and the same of models trained with label dropout, sampled with guidance. */
export type SitePipelineName = `${'baseline' | 'small-upscaled' | 'cascaded'}${'' | '-guided'}`;

export interface SitePipeline {
  name: SitePipelineName;
  title: string;
  /** Model names (keys of SiteManifest.models): a generator, then upscalers. */
  models: string[];
  /** Upscale the last model's samples bilinearly to this size ("small upscaled"). */
  upscaleTo?: number;
  /** The classifier-free guidance scale of every model trained with label dropout, unless a request gives one. */
  guidance?: number;
  /** The page's first bound on the noise level σ_t that guidance applies at (absent: every step). */
  guidanceSigma?: number;
  /** The page's first sampler: 'ddim' over every step of each model, η = 0 (absent: DDPM). */
  sampler?: 'ddim';
}

export interface SiteManifest {
  format: typeof SITE_FORMAT;
  version: typeof SITE_FORMAT_VERSION;
  createdAt: string;
  /** The onnxruntime-web version whose runtime files are under ort/. */
  onnxruntimeWeb: string;
  models: Record<string, SiteModel>;
  pipelines: SitePipeline[];
}
