// More timesteps than the paper's (`train --timesteps`): the same cosine curve sampled finer, recorded in the run,
// refused on resume, sampled by DDIM over fewer steps alike on both engines.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadMnist } from '../src/data/datasets.ts';
import { NoiseSchedule } from '../src/diffusion/schedule.ts';
import { disposePipeline, loadPipeline, samplePipeline } from '../src/pipelines/pipeline.ts';
import { readRunConfig } from '../src/pipelines/run-dir.ts';
import { trainDiffusion } from '../src/training/train-diffusion.ts';
import { newRunConfig, runSettings } from '../src/training/training-config.ts';
import { engineDifference } from './helpers.ts';

test('a finer schedule follows the same curve: ᾱ at the same fraction of T agrees', () => {
  const coarse = new NoiseSchedule(newRunConfig({ model: 'small' }).model.schedule);
  const fine = new NoiseSchedule(newRunConfig({ model: 'small', numTimesteps: 200 }).model.schedule);
  assert.equal(coarse.numTimesteps, 20);
  assert.equal(fine.terms.betas.length, 200);
  // ᾱ_t = f(t+1)/f(0): timestep t of T = 20 is timestep 10t + 9 of T = 200.
  for (const t of [0, 5, 12, 18]) assert.ok(Math.abs(coarse.terms.alphasCumprod[t]! - fine.terms.alphasCumprod[10 * t + 9]!) < 1e-12);
  assert.equal(runSettings(newRunConfig({ model: 'baseline' })).numTimesteps, 30);
  assert.throws(() => newRunConfig({ model: 'baseline', numTimesteps: 0 }), /numTimesteps \(T\) must be a positive integer, got 0/);
});

test('train --timesteps: the run keeps T, a resume asking another is refused, DDIM samples it alike on both engines', () => {
  const root = mkdtempSync(join(tmpdir(), 'ssddpm-timesteps-'));
  try {
    const run = join(root, 'run');
    trainDiffusion({ out: run, model: 'small', numTimesteps: 100, prediction: 'v', baseChannels: 4, images: loadMnist('test'), training: { epochs: 1, perClass: 2, batchSize: 10 } });
    assert.equal(readRunConfig(run).model.schedule.numTimesteps, 100);
    assert.throws(() => trainDiffusion({ out: run, resume: true, numTimesteps: 20 }), /was trained with numTimesteps 100 \(asked: 20\)/);
    assert.ok(engineDifference([run], [1, 6], { sampler: 'ddim', steps: 8, clip: true }) <= 1 / 512);
    const p = loadPipeline({ runs: [run], engine: 'libtorch' });
    try {
      assert.throws(() => samplePipeline(p, [1], { steps: 8 }), /the DDPM sampler takes every timestep \(100\)/);
    } finally {
      disposePipeline(p);
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
