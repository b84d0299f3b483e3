// Messages between the page (main.ts) and its sampling worker (worker.ts).
import type { SampleRequest, SampleResult, StageStart, StepFrame } from './sampler.ts';

/** 'auto': WebGPU where the browser has an adapter, WebAssembly otherwise. */
export type BackendChoice = 'auto' | 'webgpu' | 'wasm';
export type Backend = 'webgpu' | 'wasm';

export type ToWorker =
  /**
   * Sent first, before the page has the manifest: the worker fetches it itself while onnxruntime-web starts, then
   * loads the models of `pipeline` (default: the manifest's first): 'ready' follows.
   */
  | { type: 'init'; backend: BackendChoice; threads: number; pipeline?: string }
  /** Loads more models (after the first sample, so that it comes sooner). */
  | { type: 'load'; models: string[] }
  | { type: 'sample'; id: number; request: SampleRequest };

export type FromWorker =
  | { type: 'loaded'; model: string; ms: number }
  | { type: 'ready'; backend: Backend; threads: number; ms: number; models: string[] }
  | { type: 'fatal'; message: string }
  | { type: 'stage'; id: number; stage: StageStart }
  | { type: 'step'; id: number; frame: StepFrame }
  | { type: 'done'; id: number; result: SampleResult; ms: number }
  | { type: 'error'; id: number; message: string };

/** The graph's input and output names (onnx/step-graph.ts IO; a test checks they agree). */
export const GRAPH_IO = {
  sample: 'sample',
  timestep: 'timestep',
  label: 'label',
  conditioning: 'conditioning',
  conditioningLevel: 'conditioning_level',
  guidance: 'guidance',
  noise: 'noise',
  xtScale: 'xt_scale',
  epsScale: 'eps_scale',
  x0Divisor: 'x0_divisor',
  x0Coef: 'x0_coef',
  xtCoef: 'xt_coef',
  epsCoef: 'eps_coef',
  sigma: 'sigma',
  clipMin: 'clip_min',
  clipMax: 'clip_max',
  prevSample: 'prev_sample',
  predX0: 'pred_x0',
} as const;
