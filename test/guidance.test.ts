// Classifier-free guidance: training with label dropout, the null label's context, guided sampling on both
// engines, and the refusals.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadMnist } from '../src/data/datasets.ts';
import { unetContext } from '../src/models/unet.ts';
import { disposePipeline, loadPipeline, samplePipeline } from '../src/pipelines/pipeline.ts';
import { readRunConfig } from '../src/pipelines/run-dir.ts';
import { Generator } from '../src/torch/generator.ts';
import { int64 } from '../src/torch/ops/creation.ts';
import { tidy } from '../src/torch/scope.ts';
import { trainDiffusion } from '../src/training/train-diffusion.ts';

const PRETRAINED = fileURLToPath(new URL('../pretrained/mnist/', import.meta.url));

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

test('the null label (numClasses) has an all-zero one-hot context; real labels are unchanged', () => {
  tidy(() => {
    const ctx = unetContext(int64([3, 3]), 10, int64([2, 10]), 10).toArray();
    assert.deepEqual(ctx.slice(1, 11), [0, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
    assert.deepEqual(ctx.slice(12, 22), new Array(10).fill(0));
    assert.equal(ctx[0], ctx[11], 'the timestep part is the same');
  });
});

test('label dropout: a model trained with it samples guided on both engines; w = 0 is the conditional sample', () => {
  const root = mkdtempSync(join(tmpdir(), 'ssddpm-guidance-'));
  try {
    const run = join(root, 'run');
    trainDiffusion({ out: run, model: 'small', labelDropout: 0.2, images: loadMnist('test'), training: { epochs: 1, perClass: 4, batchSize: 10 } });
    assert.equal(readRunConfig(run).model.labelDropout, 0.2);
    assert.throws(() => trainDiffusion({ out: run, resume: true, labelDropout: 0.5 }), /was trained with labelDropout 0\.2 \(asked: 0\.5\)/);
    const torchPipeline = loadPipeline({ runs: [run], engine: 'libtorch' });
    const ortPipeline = loadPipeline({ runs: [run], engine: 'onnxruntime' });
    try {
      const labels = [1, 4, 7];
      const sample = (p: typeof torchPipeline, guidance?: number) => {
        const x = samplePipeline(p, labels, { clip: true, guidance, generator: new Generator(9) });
        const data = x.data() as Float32Array;
        x.dispose();
        return data;
      };
      const plain = sample(torchPipeline);
      assert.deepEqual(sample(torchPipeline, 0), plain, 'w = 0: the conditional prediction alone');
      const guided = sample(torchPipeline, 3);
      assert.ok(maxAbsDiff(plain, guided) > 1e-3, 'guidance changes the samples');
      assert.ok(maxAbsDiff(sample(ortPipeline, 3), guided) <= 1 / 512, 'both engines guide alike');
      assert.ok(maxAbsDiff(sample(ortPipeline, 0), plain) <= 1 / 512);

      // Guidance in an interval of noise levels σ_t = √((1 − ᾱ_t) / ᾱ_t): every σ is all steps, none is none.
      const [model] = torchPipeline.models;
      const sigmas = Array.from(model!.schedule.terms.alphasCumprod, (a) => Math.sqrt((1 - a) / a));
      const within = (lo: number, hi: number, w = 3) => {
        const x = samplePipeline(torchPipeline, labels, { clip: true, guidance: w, guidanceInterval: [lo, hi], generator: new Generator(9) });
        const data = x.data() as Float32Array;
        x.dispose();
        return data;
      };
      assert.deepEqual(within(0, Infinity), guided, 'an interval holding every σ_t guides every step');
      assert.deepEqual(within(sigmas.at(-1)! + 1, Infinity), plain, 'an interval holding no σ_t guides none');
      const mid = sigmas[Math.floor(sigmas.length / 2)]!;
      const lowNoise = within(0, mid);
      assert.ok(maxAbsDiff(lowNoise, plain) > 1e-3 && maxAbsDiff(lowNoise, guided) > 1e-3, 'a partial interval is neither');
      assert.deepEqual(within(0, (mid + sigmas[Math.floor(sigmas.length / 2) + 1]!) / 2), lowNoise, 'the steps are picked by σ_t ∈ (lo, hi]');
      const ortLowNoise = samplePipeline(ortPipeline, labels, { clip: true, guidance: 3, guidanceInterval: [0, mid], generator: new Generator(9) });
      assert.ok(maxAbsDiff(ortLowNoise.data() as Float32Array, lowNoise) <= 1 / 512, 'both engines guide the same steps');
      ortLowNoise.dispose();
      assert.throws(() => samplePipeline(torchPipeline, labels, { guidanceInterval: [0, 1] }), /a guidance interval needs a guidance scale > 0/);
      assert.throws(() => samplePipeline(torchPipeline, labels, { guidance: 1, guidanceInterval: [2, 1] }), /the guidance interval must be noise levels 0 ≤ lo < hi, got 2,1/);
      assert.throws(() => samplePipeline(torchPipeline, labels, { guidance: [1, 2] }), /one guidance scale, or one per model of the pipeline \(1\), not 2/);
      assert.throws(() => samplePipeline(torchPipeline, labels, { guidance: -1 }), /the guidance scale must be a number ≥ 0, got -1/);
    } finally {
      disposePipeline(torchPipeline);
      disposePipeline(ortPipeline);
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('guidance is refused for a model trained without label dropout', () => {
  const p = loadPipeline({ runs: [join(PRETRAINED, 'baseline-1')], engine: 'libtorch' });
  try {
    assert.throws(() => samplePipeline(p, [0], { guidance: 2 }), /guidance needs a model trained with label dropout \(train --label-dropout\) or a guide model; this baseline model has neither/);
  } finally {
    disposePipeline(p);
  }
});
