// Sampling speed as the paper measures it (§0.3): wall time of producing one sample at batch size 1,
// averaged over many samples; loading and initialising the models is not timed.
import type { SamplingOptions } from '../pipelines/sampling-model.ts';
import { pipelineDevice, samplePipeline, pipelineSteps, type Pipeline } from '../pipelines/pipeline.ts';
import { Generator } from '../torch/generator.ts';
import { cuda } from '../torch/runtime.ts';

export interface SpeedOptions extends Omit<SamplingOptions, 'generator' | 'keepTrajectory' | 'onStep'> {
  /** Samples timed (the paper: 1000). */
  samples: number;
  /** Untimed samples first (allocator and caches warm up). */
  warmup?: number;
  seed?: number;
  onSample?: (done: number, total: number) => void;
}

export interface SpeedMeasurement {
  secondsPerSample: number;
  samples: number;
  /** Network evaluations per sample. */
  steps: number;
}

export function measureSamplingSpeed(p: Pipeline, opts: SpeedOptions): SpeedMeasurement {
  if (!Number.isInteger(opts.samples) || opts.samples < 1) throw new RangeError(`samples must be a positive integer, got ${opts.samples}`);
  const generator = new Generator(opts.seed ?? 0, pipelineDevice(p));
  const { samples: _samples, warmup: _warmup, seed: _seed, onSample: _onSample, ...sampling } = opts;
  const one = (i: number) => samplePipeline(p, [i % 10], { ...sampling, generator }).dispose();
  for (let i = 0; i < (opts.warmup ?? 5); i++) one(i);
  cuda.synchronize();
  const start = performance.now();
  for (let i = 0; i < opts.samples; i++) {
    one(i);
    opts.onSample?.(i + 1, opts.samples);
  }
  cuda.synchronize();
  const seconds = (performance.now() - start) / 1000;
  return { secondsPerSample: seconds / opts.samples, samples: opts.samples, steps: pipelineSteps(p, sampling) };
}
