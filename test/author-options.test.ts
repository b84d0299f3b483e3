// The paper's public code differs from the paper in two places the toolkit offers as options (defaults follow
// the paper): pixels kept in [0, 1] instead of standardised, and x̂0 estimated with √α_t instead of √ᾱ_t.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DDPMScheduler } from '../src/diffusion/ddpm.ts';
import { loadMnist } from '../src/data/datasets.ts';
import { trainDiffusion } from '../src/training/train-diffusion.ts';
import { readRunConfig } from '../src/pipelines/run-dir.ts';
import { tensor } from '../src/torch/index.ts';
import { cosineSchedule, withNoLeaks } from './helpers.ts';

test('authorX0 divides by √α_t, the default by √ᾱ_t (T=30, t=17, one value)', () => {
  withNoLeaks(() => {
    const xt = tensor([0.8]);
    const eps = tensor([-0.3]);
    for (const authorX0 of [false, true]) {
      const s = new DDPMScheduler({ schedule: cosineSchedule(30), authorX0 });
      const t = 17;
      const got = s.predictStartFromNoise(xt, t, eps).item();
      const abar = s.terms.alphasCumprod[t]!;
      const denominator = authorX0 ? Math.sqrt(s.terms.alphas[t]!) : Math.sqrt(abar);
      const expected = (0.8 - Math.sqrt(1 - abar) * -0.3) / denominator;
      assert.ok(Math.abs(got - expected) < 1e-5 * Math.abs(expected), `authorX0=${authorX0}: ${got} vs ${expected}`);
      s.dispose();
    }
  });
});

test("dataScaling 'unit' keeps model space in [0, 1]; 'standard' standardises it", () => {
  const root = mkdtempSync(join(tmpdir(), 'ssddpm-scaling-'));
  try {
    const images = loadMnist('test');
    for (const dataScaling of ['unit', 'standard'] as const) {
      const out = join(root, dataScaling);
      trainDiffusion({ out, model: 'small', images, training: { epochs: 1, perClass: 2, batchSize: 10, dataScaling } });
      const { normalization } = readRunConfig(out).model;
      if (dataScaling === 'unit') assert.deepEqual(normalization, { mean: 0, std: 1 });
      else assert.ok(normalization.mean > 0.05 && normalization.mean < 0.3 && normalization.std > 0.2 && normalization.std < 0.5, JSON.stringify(normalization));
    }
    assert.throws(() => trainDiffusion({ out: join(root, 'bad'), model: 'small', images, training: { dataScaling: 'odd' as 'unit' } }), /data scaling must be/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
