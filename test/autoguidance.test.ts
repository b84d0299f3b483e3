// Autoguidance (Karras et al. 2024): a model's prediction pushed away from a weaker model's, both with the label;
// its arithmetic (also under classifier-free guidance of the model's own prediction), both engines, the cascade's
// per-model guides, and the refusals.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { guideRuns } from '../src/cli/parse.ts';
import { loadMnist } from '../src/data/datasets.ts';
import { disposePipeline, loadPipeline, samplePipeline, type Pipeline, type PipelineSpec } from '../src/pipelines/pipeline.ts';
import type { SamplingModel, SamplingOptions } from '../src/pipelines/sampling-model.ts';
import { Generator } from '../src/torch/generator.ts';
import { tidy } from '../src/torch/scope.ts';
import type { Tensor } from '../src/torch/tensor.ts';
import { trainDiffusion, type TrainDiffusionOptions } from '../src/training/train-diffusion.ts';
import { engineDifference } from './helpers.ts';

let root = '';
const run = (name: string) => join(root, name);

before(() => {
  root = mkdtempSync(join(tmpdir(), 'ssddpm-autoguidance-'));
  const images = loadMnist('test');
  const tiny = (name: string, opts: Partial<TrainDiffusionOptions>) =>
    trainDiffusion({ out: run(name), model: 'small', prediction: 'v', baseChannels: 4, images, training: { epochs: 1, perClass: 3, batchSize: 10 }, ...opts });
  tiny('small', {});
  tiny('small-cfg', { labelDropout: 0.5 });
  // The weaker models: narrower, another seed.
  const weaker = { baseChannels: 2, training: { epochs: 1, perClass: 3, batchSize: 10, seed: 2 } };
  tiny('weak', weaker);
  tiny('upscaler', { model: 'upscaler' });
  tiny('weak-upscaler', { model: 'upscaler', ...weaker });
  // Another subset of the images: another normalisation.
  tiny('other-data', { training: { epochs: 1, perClass: 1, batchSize: 10 } });
  tiny('epsilon', { prediction: 'epsilon' });
  tiny('t40', { numTimesteps: 40 });
  tiny('baseline', { model: 'baseline' });
});

after(() => rmSync(root, { recursive: true, force: true }));

function withPipeline<R>(spec: Omit<PipelineSpec, 'engine'>, body: (p: Pipeline) => R): R {
  const p = loadPipeline({ engine: 'libtorch', ...spec });
  try {
    return body(p);
  } finally {
    disposePipeline(p);
  }
}

const labels = [0, 3, 8];

function pixels(p: Pipeline, opts: SamplingOptions, seed = 5): Float32Array {
  return tidy(() => samplePipeline(p, labels, { ...opts, generator: new Generator(seed) }).data() as Float32Array);
}

function maxAbsDiff(a: Float32Array | Tensor, b: Float32Array | Tensor): number {
  const [x, y] = [a, b].map((v) => (v instanceof Float32Array ? v : (v.data() as Float32Array)));
  return x!.reduce((m, v, i) => Math.max(m, Math.abs(v - y![i]!)), 0);
}

// One deterministic DDIM step from the same x_{T−1}, in unclamped pixel space (the model's own samples): affine in ε̂ or v̂.
const oneStep = (m: SamplingModel, opts: Parameters<SamplingModel['sample']>[1] = {}): Tensor =>
  m.sample(labels, { sampler: 'ddim', steps: 1, eta: 0, ...opts, generator: new Generator(7) }).sample;

test('one deterministic DDIM step is linear in the prediction: the guided sample is (1 + w)·own − w·guide\'s', () => {
  withPipeline({ runs: [run('small')], guides: [run('weak')] }, (p) => {
    tidy(() => {
      const model = p.models[0]!;
      const guideModel = p.guides![0]!;
      const own = oneStep(model);
      const weak = oneStep(guideModel);
      for (const w of [0.5, 2]) {
        const guided = oneStep(model, { guidance: w, guide: guideModel });
        assert.ok(maxAbsDiff(guided, own.mul(1 + w).sub(weak.mul(w))) < 1e-4, `w = ${w}`);
        assert.ok(maxAbsDiff(guided, own) > 1e-3, 'the guide changes the sample');
      }
    });
  });
});

test('label guidance under autoguidance: the one step is (1 + w)·own classifier-free guided − w·guide\'s, on both engines', () => {
  withPipeline({ runs: [run('small-cfg')], guides: [run('weak')] }, (p) => {
    tidy(() => {
      const model = p.models[0]!;
      const guideModel = p.guides![0]!;
      const weak = oneStep(guideModel);
      const w = 2;
      const autoguided = oneStep(model, { guidance: w, guide: guideModel });
      for (const wLabel of [2, 8]) {
        const cfg = oneStep(model, { guidance: wLabel });
        const both = oneStep(model, { guidance: w, guide: guideModel, labelGuidance: wLabel });
        assert.ok(maxAbsDiff(both, cfg.mul(1 + w).sub(weak.mul(w))) < 1e-4, `label guidance ${wLabel}`);
        assert.ok(maxAbsDiff(both, autoguided) > 1e-3, 'label guidance changes the sample');
      }
      // Outside its interval, label guidance leaves autoguidance alone.
      const outside = oneStep(model, { guidance: w, guide: guideModel, labelGuidance: 3, labelGuidanceInterval: [1e6, Infinity] });
      assert.ok(maxAbsDiff(outside, autoguided) < 1e-6);
    });
  });
  const opts = { sampler: 'ddim', steps: 6, clip: true, guidance: 1, labelGuidance: 2, labelGuidanceInterval: [0, 2] } as const;
  assert.ok(engineDifference([run('small-cfg')], labels, opts, 4, { guides: [run('weak')] }) <= 1 / 512);
});

test('a model guided by itself samples as unguided; a guide changes the samples alike on both engines', () => {
  const opts = { sampler: 'ddim', steps: 6, clip: true } as const;
  const plain = withPipeline({ runs: [run('small')] }, (p) => pixels(p, opts));
  withPipeline({ runs: [run('small')], guides: [run('small')] }, (p) => {
    assert.ok(maxAbsDiff(pixels(p, { ...opts, guidance: 3 }), plain) < 1e-6, 'ε + w (ε − ε) = ε');
  });
  withPipeline({ runs: [run('small')], guides: [run('weak')] }, (p) => {
    assert.ok(maxAbsDiff(pixels(p, { ...opts, guidance: 1 }), plain) > 1e-3);
    // An interval of noise levels that holds none of the steps leaves the model unguided.
    assert.ok(maxAbsDiff(pixels(p, { ...opts, guidance: 1, guidanceInterval: [1e6, Infinity] }), plain) < 1e-6);
  });
  assert.ok(engineDifference([run('small')], labels, { ...opts, guidance: 1 }, 4, { guides: [run('weak')] }) <= 1 / 512);
  assert.ok(engineDifference([run('small')], labels, { guidance: 2, guidanceInterval: [0, 2] }, 4, { guides: [run('weak')] }) <= 1 / 512, 'DDPM, guided at low noise');
});

test('a cascade takes a guide per model, an empty entry for none', () => {
  const cascade = [run('small'), run('upscaler')];
  const opts = { sampler: 'ddim', steps: 4, clip: true } as const;
  const plain = withPipeline({ runs: cascade }, (p) => pixels(p, opts));
  const upscalerOnly = withPipeline({ runs: cascade, guides: [undefined, run('weak-upscaler')] }, (p) => {
    assert.equal(p.guides?.[0], undefined);
    return pixels(p, { ...opts, guidance: [0, 2] });
  });
  assert.ok(maxAbsDiff(upscalerOnly, plain) > 1e-3);
  // The small model guided by itself: the upscaler's guide alone changes the samples.
  const selfGuided = withPipeline({ runs: cascade, guides: [run('small'), run('weak-upscaler')] }, (p) => pixels(p, { ...opts, guidance: [2, 2] }));
  assert.ok(maxAbsDiff(selfGuided, upscalerOnly) < 1e-6);
  assert.ok(engineDifference(cascade, labels, { ...opts, guidance: [2, 1] }, 4, { guides: [run('weak'), run('weak-upscaler')] }) <= 1 / 512);
});

test('guides that cannot guide are refused with the reason, before sampling', () => {
  const refuse = (guide: string, pattern: RegExp) => assert.throws(() => loadPipeline({ runs: [run('small')], guides: [run(guide)], engine: 'libtorch' }), pattern);
  refuse('baseline', /baseline cannot guide .*small: it is a baseline model, this a small one/);
  refuse('epsilon', /it predicts epsilon, this v/);
  refuse('other-data', /its data were normalised otherwise/);
  refuse('t40', /its noise schedule .*"numTimesteps":40.* is not this one's .*"numTimesteps":20/);
  assert.throws(() => loadPipeline({ runs: [run('small'), run('upscaler')], guides: [run('weak')], engine: 'libtorch' }), /one guide model per model of the pipeline \(2; an empty entry for none\), not 1/);
  assert.throws(() => loadPipeline({ runs: [run('small'), run('upscaler')], guides: [undefined, run('weak')], engine: 'libtorch' }), /weak cannot guide .*upscaler: it is a small model, this an upscaler one/);
  withPipeline({ runs: [run('small')], guides: [run('weak')] }, (p) => {
    assert.throws(() => samplePipeline(p, labels, {}), /has a guide model but no guidance scale > 0 \(--guidance\)/);
  });
  // Label guidance is for autoguided models trained with label dropout.
  withPipeline({ runs: [run('small-cfg')] }, (p) => assert.throws(() => samplePipeline(p, labels, { guidance: 1, labelGuidance: 1 }), /model 1 of the pipeline has a label guidance scale but no guide model/));
  withPipeline({ runs: [run('small')], guides: [run('weak')] }, (p) => {
    assert.throws(() => samplePipeline(p, labels, { guidance: 1, labelGuidance: 1 }), /label dropout \(train --label-dropout\)/);
    assert.throws(() => samplePipeline(p, labels, { guidance: 1, labelGuidanceInterval: [0, 1] }), /a label guidance interval needs a label guidance scale > 0/);
  });
  // Without a guide, guidance still needs label dropout.
  withPipeline({ runs: [run('small')] }, (p) => assert.throws(() => samplePipeline(p, labels, { guidance: 1 }), /label dropout \(train --label-dropout\) or a guide model/));
  assert.deepEqual(guideRuns('a'), ['a']);
  assert.deepEqual(guideRuns('a,'), ['a', undefined]);
  assert.deepEqual(guideRuns(',b'), [undefined, 'b']);
  assert.throws(() => guideRuns('a,b,c'), /expected RUN, or SMALL_GUIDE,UPSCALER_GUIDE/);
  assert.throws(() => guideRuns(','), /expected RUN/);
});
