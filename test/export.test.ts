// An exported run (config, log, weights without optimizer state) samples exactly like the original.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { withNoLeaks } from './helpers.ts';
import { loadMnist } from '../src/data/datasets.ts';
import { exportRun } from '../src/pipelines/export-run.ts';
import { loadModel } from '../src/pipelines/pipeline.ts';
import { trainDiffusion } from '../src/training/train-diffusion.ts';
import { Generator } from '../src/torch/index.ts';

test('export keeps config, log and weights (no optimizer state) and samples bit-identically', () => {
  const root = mkdtempSync(join(tmpdir(), 'ssddpm-export-'));
  try {
    const run = join(root, 'run');
    trainDiffusion({ out: run, model: 'small', images: loadMnist('test'), training: { epochs: 1, perClass: 2, batchSize: 10 } });
    const out = join(root, 'shared');
    const { file: checkpoint } = exportRun(run, out);
    assert.ok(existsSync(join(out, 'config.json')) && existsSync(join(out, 'train.jsonl')));
    assert.ok(statSync(checkpoint).size < statSync(join(run, 'checkpoints', 'epoch-0001.safetensors')).size / 2, 'no optimizer state');
    assert.deepEqual(readdirSync(root).sort(), ['run', 'shared'], 'no temporary folder left');
    assert.throws(() => exportRun(run, out), /already exists/);
    withNoLeaks(() => {
      const [a, b] = [loadModel(run), loadModel(out)];
      const sa = a.sample([1, 7], { generator: new Generator(4) }).sample.toArray();
      const sb = b.sample([1, 7], { generator: new Generator(4) }).sample.toArray();
      assert.deepEqual(sb, sa);
      a.dispose();
      b.dispose();
    });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
