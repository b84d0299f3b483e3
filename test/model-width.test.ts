// A wider U-Net than the paper's (`train --base-channels`): recorded, refused on resume, sampled by both engines.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadMnist } from '../src/data/datasets.ts';
import { readRunConfig } from '../src/pipelines/run-dir.ts';
import { trainDiffusion } from '../src/training/train-diffusion.ts';
import { newRunConfig } from '../src/training/training-config.ts';
import { engineDifference } from './helpers.ts';

test('train --base-channels: the U-Net is that wide, the run keeps it, both engines sample it alike', () => {
  assert.equal(newRunConfig({ model: 'upscaler', baseChannels: 24, conditioningNoise: 0.5 }).model.unet.baseChannels, 24);
  assert.throws(() => newRunConfig({ model: 'baseline', baseChannels: 0 }), /base channels must be a positive integer/);
  const root = mkdtempSync(join(tmpdir(), 'ssddpm-width-'));
  try {
    const run = join(root, 'run');
    trainDiffusion({ out: run, model: 'small', baseChannels: 8, images: loadMnist('test'), training: { epochs: 1, perClass: 2, batchSize: 10 } });
    assert.equal(readRunConfig(run).model.unet.baseChannels, 8);
    assert.throws(() => trainDiffusion({ out: run, resume: true, baseChannels: 16 }), /was trained with baseChannels 8 \(asked: 16\)/);
    assert.ok(engineDifference([run], [1, 6], { clip: true }) <= 1 / 512);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
