// Remedies for the first reverse step (β_T = 0.999 makes it multiply the network's error by ≈ 32): a lower cap on
// β_t, and DDIM's trailing timestep spacing.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { NoiseSchedule, checkScheduleConfig } from '../src/diffusion/schedule.ts';
import { ddimTimesteps } from '../src/diffusion/step-coefficients.ts';
import { disposePipeline, loadPipeline, samplePipeline } from '../src/pipelines/pipeline.ts';
import { Generator } from '../src/torch/generator.ts';
import { newRunConfig, runSettings, settingDifferences } from '../src/training/training-config.ts';

test('trailing spacing steps back from T−1 by T/steps; linspace keeps both ends', () => {
  assert.deepEqual(Array.from(ddimTimesteps(30, 10, 'trailing')), [29, 26, 23, 20, 17, 14, 11, 8, 5, 2]);
  assert.deepEqual(Array.from(ddimTimesteps(30, 10)), [29, 26, 23, 19, 16, 13, 10, 6, 3, 0]);
  assert.deepEqual(Array.from(ddimTimesteps(30, 30, 'trailing')), Array.from({ length: 30 }, (_, i) => 29 - i));
  assert.deepEqual(Array.from(ddimTimesteps(30, 1, 'trailing')), [29]);
  assert.throws(() => ddimTimesteps(30, 5, 'leading' as 'trailing'), /spacing must be 'linspace' or 'trailing'/);
});

test('a lower β cap: β_t ≤ cap, a larger √ᾱ at the last timestep, recorded in the run and refused on resume', () => {
  const paper = new NoiseSchedule({ kind: 'cosine', numTimesteps: 30, power: 1.5 });
  const capped = new NoiseSchedule({ kind: 'cosine', numTimesteps: 30, power: 1.5, maxBeta: 0.9 });
  assert.ok(Math.max(...capped.terms.betas) <= 0.9);
  assert.equal(Math.max(...paper.terms.betas), 0.999);
  assert.ok(capped.terms.sqrtAlphasCumprod[29]! > 3 * paper.terms.sqrtAlphasCumprod[29]!);
  assert.throws(() => checkScheduleConfig({ kind: 'cosine', numTimesteps: 30, maxBeta: 1.2 }), /maxBeta must be in \(0, 1\)/);
  assert.throws(() => checkScheduleConfig({ kind: 'linear', numTimesteps: 30, maxBeta: 0.5 }), /maxBeta caps the cosine schedule/);
  const run = newRunConfig({ model: 'baseline', maxBeta: 0.9 });
  assert.equal(run.model.schedule.maxBeta, 0.9);
  assert.deepEqual(settingDifferences(run, { maxBeta: 0.99 }, 'asked'), ['maxBeta 0.9 (asked: 0.99)']);
  assert.deepEqual(settingDifferences(run, { maxBeta: 0.9 }, 'asked'), []);
  assert.equal(runSettings(newRunConfig({ model: 'baseline' })).maxBeta, undefined, "the paper's runs keep their settings");
});

test('trailing DDIM samples alike on both engines, differs from linspace, and is a DDIM option only', () => {
  const runs = [fileURLToPath(new URL('../pretrained/mnist/baseline-1', import.meta.url))];
  const a = loadPipeline({ runs, engine: 'libtorch' });
  const b = loadPipeline({ runs, engine: 'onnxruntime' });
  try {
    const opts = { sampler: 'ddim' as const, steps: 10, clip: true };
    const draw = (p: typeof a, spacing?: 'trailing') => {
      const x = samplePipeline(p, [2, 5], { ...opts, spacing, generator: new Generator(3) });
      const d = x.data() as Float32Array;
      x.dispose();
      return d;
    };
    const trailing = draw(a, 'trailing');
    const diff = (u: Float32Array, v: Float32Array) => Math.max(...Array.from(u, (x, i) => Math.abs(x - v[i]!)));
    assert.ok(diff(trailing, draw(b, 'trailing')) <= 1 / 512);
    assert.ok(diff(trailing, draw(a)) > 1e-2);
    assert.throws(() => samplePipeline(a, [1], { spacing: 'trailing' }), /eta and spacing are DDIM options/);
  } finally {
    disposePipeline(a);
    disposePipeline(b);
  }
});
