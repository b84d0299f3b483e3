// DDIM and dynamic thresholding: DDIM with η = 1 over every timestep is the DDPM ancestral step (plain and
// clipped), its timestep subsequences are well formed, and dynamic thresholding does what Imagen describes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DDIMScheduler } from '../src/diffusion/ddim.ts';
import { ddimTimesteps } from '../src/diffusion/step-coefficients.ts';
import { DDPMScheduler } from '../src/diffusion/ddpm.ts';
import { sampleLoop } from '../src/diffusion/sample.ts';
import { constrainX0 } from '../src/diffusion/thresholding.ts';
import { DiffusionModel } from '../src/pipelines/diffusion-model.ts';
import { presetModel } from '../src/pipelines/model-config.ts';
import { Generator } from '../src/torch/generator.ts';
import { sin, tensor } from '../src/torch/index.ts';
import type { Tensor } from '../src/torch/tensor.ts';
import { assertClose, cosineSchedule, withNoLeaks } from './helpers.ts';

// A fixed, input-dependent stand-in for the network: enough to make every step's arithmetic matter.
const fakeEps = (x: Tensor, t: number) => sin(x.mul(0.4 + 0.01 * t));

for (const clip of [false, true]) {
  test(`DDIM with η = 1 over all timesteps reproduces DDPM ancestral sampling${clip ? ' with x̂0 clipping' : ''}`, () => {
    withNoLeaks(() => {
      const common = { schedule: cosineSchedule(12), clip, clipRange: [-0.5, 0.8] as const };
      const ddpm = new DDPMScheduler({ ...common, variance: 'posterior' });
      const ddim = new DDIMScheduler({ ...common, steps: 12, eta: 1 });
      assert.deepEqual(Array.from(ddim.timesteps), Array.from(ddpm.timesteps));
      const a = sampleLoop(ddpm, fakeEps, [3, 1, 4, 4], { generator: new Generator(5) }).sample;
      const b = sampleLoop(ddim, fakeEps, [3, 1, 4, 4], { generator: new Generator(5) }).sample;
      assertClose(b.toArray(), a.toArray(), { atol: 1e-5, rtol: 1e-5 });
      ddpm.dispose();
    });
  });
}

test('DDIM timesteps: evenly spread from T−1 to 0, distinct; η = 0 is deterministic given the starting noise', () => {
  assert.deepEqual(Array.from(ddimTimesteps(30, 10)), [29, 26, 23, 19, 16, 13, 10, 6, 3, 0]);
  assert.deepEqual(Array.from(ddimTimesteps(30, 1)), [29]);
  assert.deepEqual(Array.from(ddimTimesteps(10, 10)), [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
  for (const n of [2, 7, 29]) assert.equal(new Set(ddimTimesteps(30, n)).size, n);
  assert.throws(() => ddimTimesteps(30, 31), /1\.\.30/);
  assert.throws(() => new DDIMScheduler({ schedule: cosineSchedule(30), eta: 1.5 }), /eta/);
  withNoLeaks(() => {
    const ddim = new DDIMScheduler({ schedule: cosineSchedule(20), steps: 5, eta: 0 });
    const x = tensor([0.3, -1.2, 2.0, 0.1], { shape: [1, 1, 2, 2] });
    // Step noise would come from the generator; with η = 0 two different generators agree.
    const run = (seed: number) => ddim.timesteps.reduce((acc, t) => ddim.step(fakeEps(acc, t), t, acc, { generator: new Generator(seed) }).prevSample, x);
    assert.deepEqual(run(1).toArray(), run(2).toArray());
    assert.throws(() => ddim.step(x, 7, x), /not one of the sampler's timesteps/);
  });
});

test('dynamic thresholding: samples inside the range are only clipped; a saturated sample is rescaled into it', () => {
  withNoLeaks(() => {
    // Range [0, 2]: centre 1, half-width 1. Row 0 lies inside; row 1 overshoots to 4 (distance 3 from the centre).
    const x0 = tensor([0.5, 1.5, 1.0, 2.0, -1.0, 4.0, 1.0, 0.0], { shape: [2, 4] });
    const out = constrainX0(x0, [0, 2], { kind: 'dynamic', ratio: 1 }).toArray();
    assertClose(out.slice(0, 4), [0.5, 1.5, 1.0, 2.0], { atol: 1e-6 });
    // s = 3: y = [-2, 3, 0, -1] / 3 → x = 1 + y.
    assertClose(out.slice(4), [1 - 2 / 3, 2, 1, 1 - 1 / 3], { atol: 1e-6 });
    // A lower percentile clips the outlier first: s = the 50 % quantile of |y| = 1.5 (of 0, 1, 2, 3).
    const half = constrainX0(x0, [0, 2], { kind: 'dynamic', ratio: 0.5 }).toArray().slice(4);
    assertClose(half, [1 - 1.5 / 1.5, 1 + 1.5 / 1.5, 1, 1 - 1 / 1.5], { atol: 1e-6 });
    assert.throws(() => new DDPMScheduler({ schedule: cosineSchedule(30), clip: true, dynamicThreshold: 0.99 }), /exclude/);
  });
});

test('DiffusionModel.sample with DDIM: --steps network evaluations, finite pixels; DDPM refuses a step count', () => {
  withNoLeaks(() => {
    const preset = presetModel('small');
    const model = new DiffusionModel({ ...preset, unet: { ...preset.unet, baseChannels: 4 }, normalization: { mean: 0.13, std: 0.3 } });
    const steps: number[] = [];
    const { sample } = model.sample([1, 2], { sampler: 'ddim', steps: 5, eta: 0.5, dynamicThreshold: 0.99, generator: new Generator(3), onStep: (d) => steps.push(d) });
    assert.deepEqual(steps, [1, 2, 3, 4, 5]);
    assert.ok(sample.toArray().every(Number.isFinite));
    assert.throws(() => model.sample([1], { steps: 5 }), /DDIM/);
    model.dispose();
  });
});
