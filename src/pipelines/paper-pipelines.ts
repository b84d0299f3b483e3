// The paper's three pipelines by name, and the models each chains: the baseline alone, the small model's
// samples upscaled ×2 bilinearly, and the small model followed by the upscaler (cascaded).
import type { ModelKind } from './model-config.ts';

/** The paper's pipelines, in the order of its Table 1. */
export const PAPER_PIPELINES = ['baseline', 'small-upscaled', 'cascaded'] as const;
export type PaperPipeline = (typeof PAPER_PIPELINES)[number];

/** The models each of the paper's pipelines chains, and whether it upscales the last one's samples ×2. */
export const PAPER_PIPELINE_MODELS: Readonly<Record<PaperPipeline, { models: readonly ModelKind[]; upscale: boolean }>> = {
  baseline: { models: ['baseline'], upscale: false },
  'small-upscaled': { models: ['small'], upscale: true },
  cascaded: { models: ['small', 'upscaler'], upscale: false },
};

/**
 * Classifier-free guidance at low noise only, per pipeline: the scale, and the noise levels σ_t = √((1 − ᾱ_t)/ᾱ_t)
 * in (lo, hi] it applies at (where a sample's label is settled depends on the resolution and the model). Measured
 * on the v-prediction models trained with label dropout (the protocol's low-noise variants); the page starts there.
 */
export const LOW_NOISE_GUIDANCE: Readonly<Record<PaperPipeline, { scale: number; sigma: [number, number] }>> = {
  baseline: { scale: 3, sigma: [0, 3] },
  'small-upscaled': { scale: 2, sigma: [0, 2] },
  cascaded: { scale: 2, sigma: [0, 1] },
};
