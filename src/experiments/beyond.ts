// Beyond the paper: the open questions it ends with, answered under its own protocol (3 runs × samples per
// run, pooled, CAS with m classifiers). Each experiment is a variant of a paper pipeline — another sampler, an
// x̂0 constraint, averaged weights, or an upscaler trained with conditioning augmentation — whose generated
// sets and CAS sit beside Table 1's numbers in the report. Like the paper's stages, each is skipped when its
// outputs exist.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { readImageSetDir, type ImageSet } from '../data/image-set.ts';
import { classificationAccuracyScore, combineBalanced } from '../eval/cas.ts';
import { measureSamplingSpeed } from '../eval/speed.ts';
import type { BeyondGroup, BeyondResult } from '../report/results.ts';
import { getNumThreads, setNumThreads } from '../torch/runtime.ts';
import type { SamplingOptions } from './diffusion-model.ts';
import type { ModelKind } from './model-config.ts';
import { disposePipeline, generateSet, loadPipeline, readOffRange, writeGeneratedSet, type PipelineSpec } from './pipelines.ts';
import type { PaperPreset } from './paper.ts';
import { epochCheckpointPath } from './run-dir.ts';
import { trainOrContinue } from './train-diffusion.ts';

export interface BeyondSettings {
  /** DDIM network evaluations per baseline sample, and the noise scales η tried at each. */
  ddimSteps: number[];
  ddimEta: number[];
  /** DDIM without and/or with x̂0 clipped at every step. */
  ddimClip: boolean[];
  /** Percentile of dynamic thresholding. */
  dynamicRatio: number;
  /** Decay of the weight average of the EMA baselines. */
  emaDecay: number;
  /** Maximum conditioning noise of the augmented upscalers (model space), and the levels sampled with. */
  conditioningNoise: number;
  conditioningLevels: number[];
}

export const BEYOND_DEFAULTS: BeyondSettings = { ddimSteps: [5, 10, 20], ddimEta: [0, 1], ddimClip: [false, true], dynamicRatio: 0.995, emaDecay: 0.999, conditioningNoise: 0.5, conditioningLevels: [0, 0.2] };

interface Variant {
  group: BeyondGroup;
  name: string;
  label: string;
  spec: (seed: number) => PipelineSpec;
  sampling: SamplingOptions;
  /** Also time it at batch size 1. */
  speed?: boolean;
}

/** What runBeyond needs from the paper run it extends. */
export interface BeyondContext {
  preset: PaperPreset;
  settings: BeyondSettings;
  seeds: number[];
  /** The paper's runs (baseline, small, upscaler), and where the extra trainings go (never a shipped folder). */
  runDir: (name: string, seed: number) => string;
  extraRunDir: (name: string, seed: number) => string;
  setsDir: string;
  evalDir: string;
  test: ImageSet;
  dataset: Parameters<typeof trainOrContinue>[0]['dataset'];
  device?: string;
  stage: <T>(name: string, done: boolean, body: () => T | Promise<T>) => Promise<T>;
  progress: (label: string, done: number, total: number, fields?: Record<string, string>) => void;
  readJson: <T>(path: string) => T | undefined;
  writeJson: (path: string, value: unknown) => void;
}

function variants(s: BeyondSettings, runDir: BeyondContext['runDir'], extraRunDir: BeyondContext['extraRunDir']): Variant[] {
  const single = (model: string) => (seed: number): PipelineSpec => ({ run: runDir(model, seed) });
  const ema = (seed: number): PipelineSpec => ({ run: extraRunDir('baseline-ema', seed) });
  const pipelines: [string, (seed: number) => PipelineSpec][] = [
    ['baseline', single('baseline')],
    ['small-upscaled', (seed) => ({ run: runDir('small', seed), upscale: true })],
    ['cascaded', (seed) => ({ cascade: [runDir('small', seed), runDir('upscaler', seed)] })],
  ];
  return [
    ...pipelines.map(([p, spec]): Variant => ({ group: 'thresholding', name: `${p}-dynamic`, label: `${p}, dynamic thresholding (p = ${s.dynamicRatio})`, spec, sampling: { dynamicThreshold: s.dynamicRatio } })),
    ...s.ddimClip.flatMap((clip) => s.ddimEta.flatMap((eta) => s.ddimSteps.map((steps): Variant => ({
      group: 'ddim',
      name: `baseline-ddim${steps}-eta${eta}${clip ? '-clipped' : ''}`,
      label: `baseline, DDIM ${steps} steps (η = ${eta})${clip ? ', x̂0 clipped' : ''}`,
      spec: single('baseline'),
      sampling: { sampler: 'ddim', steps, eta, clip },
      // Clipping costs nothing measurable: the plain variant's time stands for both.
      speed: !clip,
    })))),
    { group: 'ema', name: 'baseline-ema', label: `baseline, EMA of weights (decay ${s.emaDecay})`, spec: ema, sampling: {} },
    { group: 'ema', name: 'baseline-ema-clipped', label: `baseline, EMA of weights (decay ${s.emaDecay}), x̂0 clipped`, spec: ema, sampling: { clip: true } },
    ...s.conditioningLevels.flatMap((level): Variant[] => [false, true].map((clip) => ({
      group: 'conditioning',
      name: `cascaded-aug${level}${clip ? '-clipped' : ''}`,
      label: `cascaded, upscaler with conditioning augmentation (σ ≤ ${s.conditioningNoise}), sampled at level ${level}${clip ? ', x̂0 clipped' : ''}`,
      spec: (seed) => ({ cascade: [runDir('small', seed), extraRunDir('upscaler-aug', seed)] }),
      sampling: { conditioningLevel: level, clip },
    }))),
  ];
}

/** The extra trainings (EMA baselines, augmented upscalers), then every variant's sets, CAS and speed. */
export async function runBeyond(ctx: BeyondContext): Promise<BeyondResult[]> {
  const { preset, settings, seeds } = ctx;
  const extra: { name: string; model: ModelKind; training: { ema?: number }; conditioningNoise?: number }[] = [
    { name: 'baseline-ema', model: 'baseline', training: { ema: settings.emaDecay } },
    { name: 'upscaler-aug', model: 'upscaler', training: {}, conditioningNoise: settings.conditioningNoise },
  ];
  for (const run of extra) {
    for (const seed of seeds) {
      const dir = ctx.extraRunDir(run.name, seed);
      const finished = existsSync(epochCheckpointPath(dir, preset.epochs));
      await ctx.stage(`train ${run.name}-${seed}`, finished, () => {
        if (finished) return;
        trainOrContinue({
          out: dir,
          model: run.model,
          dataset: ctx.dataset,
          device: ctx.device,
          conditioningNoise: run.conditioningNoise,
          training: { epochs: preset.epochs, seed, perClass: preset.perClass, ...run.training },
          onProgress: (p) => ctx.progress(`train ${run.name}-${seed}`, p.step, p.totalSteps, { loss: p.loss.toFixed(4) }),
        });
      });
    }
  }

  const results: BeyondResult[] = [];
  for (const v of variants(settings, ctx.runDir, ctx.extraRunDir)) {
    const setDir = (seed: number) => join(ctx.setsDir, `beyond-${v.name}-${seed}`);
    for (const seed of seeds) {
      const dir = setDir(seed);
      await ctx.stage(`generate ${v.name} ${seed}`, existsSync(dir), () => {
        if (existsSync(dir)) return;
        const p = loadPipeline({ ...v.spec(seed), device: ctx.device });
        try {
          const set = generateSet(p, {
            ...v.sampling,
            count: preset.samplesPerRun,
            seed: 1000 + seed,
            labelOffset: ((seed - 1) * preset.samplesPerRun) % 10,
            onProgress: (done, total) => ctx.progress(`generate ${v.name} ${seed}`, done, total),
          });
          writeGeneratedSet(dir, set, { variant: v.name, seed, ...v.sampling });
        } finally {
          disposePipeline(p);
        }
      });
    }
    const file = join(ctx.evalDir, `beyond-${v.name}.json`);
    const cached = ctx.readJson<BeyondResult>(file);
    results.push(await ctx.stage(`cas ${v.name}`, cached !== undefined, () => {
      if (cached) return cached;
      const train = combineBalanced(seeds.map((s) => readImageSetDir(setDir(s))), preset.casImages, 7);
      const score = classificationAccuracyScore(train, ctx.test, {
        classifiers: preset.classifiers,
        epochs: preset.casEpochs,
        seed: 100,
        device: ctx.device,
        onStep: (k, step, total) => ctx.progress(`cas ${v.name} ${k + 1}/${preset.classifiers}`, step, total),
      });
      const r: BeyondResult = { group: v.group, name: v.name, label: v.label, cas: { mean: score.mean, std: score.std, accuracies: score.accuracies } };
      if (v.sampling.eta !== undefined) r.eta = v.sampling.eta;
      if (v.sampling.steps !== undefined) r.steps = v.sampling.steps;
      if (v.sampling.clip) r.clip = true;
      const offRange = readOffRange(seeds.map(setDir));
      if (offRange) r.offRange = offRange;
      if (v.speed) {
        const threads = getNumThreads();
        setNumThreads(preset.speedThreads);
        const p = loadPipeline({ ...v.spec(1), device: ctx.device });
        try {
          const m = measureSamplingSpeed(p, { ...v.sampling, samples: preset.speedSamples, onSample: (d, t) => ctx.progress(`speed ${v.name}`, d, t) });
          r.secondsPerSample = m.secondsPerSample;
          r.steps = m.steps;
        } finally {
          disposePipeline(p);
          setNumThreads(threads);
        }
      }
      ctx.writeJson(file, r);
      return r;
    }));
  }
  return results;
}
