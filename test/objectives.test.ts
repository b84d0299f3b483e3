// The paper's two proposed training terms (§1.3): the x̂0-domain loss and the n-step loss.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadMnist } from '../src/data/datasets.ts';
import { DDPMScheduler } from '../src/diffusion/ddpm.ts';
import { NoiseSchedule } from '../src/diffusion/schedule.ts';
import { logPath, readRunConfig } from '../src/pipelines/run-dir.ts';
import * as torch from '../src/torch/index.ts';
import { auxiliaryLoss } from '../src/training/objectives.ts';
import { trainDiffusion } from '../src/training/train-diffusion.ts';
import type { TrainingBatch } from '../src/training/training-data.ts';
import { newRunConfig } from '../src/training/training-config.ts';

const RANGE = [-1, 1] as const;

function batchOf(scheduler: DDPMScheduler, x0: torch.Tensor, t: number[], start?: number[]): TrainingBatch {
  const tt = torch.int64(Int32Array.from(t));
  const noise = torch.randn(x0.shape);
  const xt = scheduler.addNoise(x0, noise, tt);
  return { x0, xt, t: tt, noise, labels: torch.zeros([t.length], { dtype: 'int64' }), target: noise, nStepStart: start === undefined ? undefined : torch.int64(Int32Array.from(start)) };
}

test('x̂0-domain loss: zero for x̂0 in the data range, ᾱ-weighted squared excess outside it', () => {
  torch.manualSeed(1);
  const scheduler = new DDPMScheduler({ schedule: new NoiseSchedule({ kind: 'cosine', numTimesteps: 20 }) });
  const x0 = torch.rand([3, 1, 4, 4]).mul(1.8).sub(0.9);
  const b = batchOf(scheduler, x0, [2, 9, 15]);
  const none = auxiliaryLoss({ x0DomainLoss: 2 }, scheduler, RANGE, b, b.noise, () => assert.fail('no rollout'), 3)!;
  assert.ok((none.item() as number) < 1e-9, 'the true noise gives back x0, inside the range');
  // An output that pushes x̂0 = (x_t − √(1−ᾱ) o) / √ᾱ exactly δ above x0 everywhere.
  const terms = scheduler.terms;
  const delta = 0.5;
  const shift = torch.tensor(Float32Array.from([2, 9, 15], (t) => (delta * terms.sqrtAlphasCumprod[t]!) / terms.sqrtOneMinusAlphasCumprod[t]!)).view([3, 1, 1, 1]);
  const out = b.noise.sub(shift);
  const got = auxiliaryLoss({ x0DomainLoss: 2 }, scheduler, RANGE, b, out, () => assert.fail('no rollout'), 3)!.item() as number;
  const x0v = x0.data() as Float32Array;
  let want = 0;
  for (let i = 0; i < 3; i++) {
    const ab = terms.alphasCumprod[[2, 9, 15][i]!]!;
    for (let j = 0; j < 16; j++) want += ab * Math.max(x0v[i * 16 + j]! + delta - 1, 0) ** 2;
  }
  want *= 2 / (3 * 16);
  assert.ok(want > 0);
  assert.ok(Math.abs(got - want) < 1e-4 * want + 1e-7, `${got} vs ${want}`);
  torch.dispose([none, shift, out]);
  scheduler.dispose();
});

test('n-step loss: zero along the true trajectory, positive for a biased model, growing with n', () => {
  torch.manualSeed(2);
  const scheduler = new DDPMScheduler({ schedule: new NoiseSchedule({ kind: 'cosine', numTimesteps: 20 }) });
  const x0 = torch.rand([4, 1, 3, 3]).mul(2).sub(1);
  const b = batchOf(scheduler, x0, [5, 5, 5, 5], [10, 12, 15, 19]);
  // A model that knows x0: its noise estimate at (x, t) is (x − √ᾱ x0) / √(1 − ᾱ), plus a bias.
  const oracle = (bias: number) => (x: torch.Tensor, t: torch.Tensor) => scheduler.noiseFromX0(x, x0, t).add(bias);
  const loss = (steps: number, bias: number) => {
    const l = auxiliaryLoss({ nStepLoss: { steps, weight: 1 } }, scheduler, RANGE, b, b.noise, oracle(bias), 4)!;
    const v = l.item() as number;
    l.dispose();
    return v;
  };
  assert.ok(loss(3, 0) < 1e-8, 'the true noise stays on the forward trajectory');
  const [one, three] = [loss(1, 0.05), loss(3, 0.05)];
  assert.ok(one > 0 && three > one, `errors accumulate over steps: ${one} then ${three}`);
  assert.throws(() => auxiliaryLoss({ nStepLoss: { steps: 2, weight: 1 } }, scheduler, RANGE, { ...b, nStepStart: undefined }, b.noise, oracle(0), 4), /without rollout starts/);
  scheduler.dispose();
});

test('train --x0-domain-loss and --n-step-loss: validated, recorded, finite losses above the 1-step loss alone', () => {
  assert.throws(() => newRunConfig({ model: 'small', training: { nStepLoss: { steps: 20, weight: 1 } } }), /steps must be below the model's T = 20/);
  assert.throws(() => newRunConfig({ model: 'small', training: { x0DomainLoss: -1 } }), /x̂0-domain loss weight must be a positive number/);
  const root = mkdtempSync(join(tmpdir(), 'ssddpm-objectives-'));
  try {
    const images = loadMnist('test');
    const training = { epochs: 1, perClass: 4, batchSize: 10, seed: 3 };
    const losses = (run: string) => readFileSync(logPath(run), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { loss?: number }).filter((l) => l.loss !== undefined).map((l) => l.loss!);
    const plain = join(root, 'plain');
    const both = join(root, 'both');
    trainDiffusion({ out: plain, model: 'small', images, training });
    trainDiffusion({ out: both, model: 'small', images, training: { ...training, x0DomainLoss: 1, nStepLoss: { steps: 2, weight: 0.5 } } });
    assert.deepEqual(readRunConfig(both).training.nStepLoss, { steps: 2, weight: 0.5 });
    assert.equal(readRunConfig(both).training.x0DomainLoss, 1);
    const [a, c] = [losses(plain), losses(both)];
    assert.ok(c.every(Number.isFinite));
    // Same weights and draws at the first step: the terms add to the 1-step loss.
    assert.ok(c[0]! > a[0]!, `${c[0]} vs ${a[0]}`);
    assert.throws(() => trainDiffusion({ out: both, resume: true, epochs: 2, training: { nStepLoss: { steps: 3, weight: 0.5 } } }), /was trained with nStepLoss/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
