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
