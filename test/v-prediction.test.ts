// v-prediction (Salimans & Ho 2022) and schedules rescaled to zero terminal SNR (Lin et al. 2024).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadMnist } from '../src/data/datasets.ts';
import { DDIMScheduler } from '../src/diffusion/ddim.ts';
import { DDPMScheduler } from '../src/diffusion/ddpm.ts';
import { NoiseSchedule, rescaleZeroTerminalSnr, cosineBetas } from '../src/diffusion/schedule.ts';
import { linearStep } from '../src/diffusion/step-coefficients.ts';
import { disposePipeline, loadPipeline, samplePipeline } from '../src/pipelines/pipeline.ts';
import { readRunConfig } from '../src/pipelines/run-dir.ts';
import * as torch from '../src/torch/index.ts';
import { trainDiffusion } from '../src/training/train-diffusion.ts';
import { newRunConfig, settingDifferences } from '../src/training/training-config.ts';

const maxDiff = (a: torch.Tensor, b: torch.Tensor) => a.sub(b).abs().max().item() as number;

test('zero terminal SNR: ᾱ_{T−1} = 0, √ᾱ_0 kept, ᾱ decreasing; β = 1 only at the last timestep', () => {
  const plain = new NoiseSchedule({ kind: 'cosine', numTimesteps: 30, power: 1.5 });
  const zero = new NoiseSchedule({ kind: 'cosine', numTimesteps: 30, power: 1.5, zeroTerminalSnr: true });
  const z = zero.terms;
  assert.equal(z.alphasCumprod[29], 0);
  assert.equal(z.betas[29], 1);
  assert.ok(Math.abs(z.sqrtAlphasCumprod[0]! - plain.terms.sqrtAlphasCumprod[0]!) < 1e-12);
  for (let t = 1; t < 30; t++) assert.ok(z.alphasCumprod[t]! < z.alphasCumprod[t - 1]!);
  assert.ok(plain.terms.alphasCumprod[29]! > 0);
  // Lin et al.'s rescaling is linear in √ᾱ: the shifted, scaled plain schedule.
  const s = plain.terms.sqrtAlphasCumprod;
  const expected = ((s[15]! - s[29]!) * s[0]!) / (s[0]! - s[29]!);
  assert.ok(Math.abs(z.sqrtAlphasCumprod[15]! - expected) < 1e-12);
  assert.throws(() => rescaleZeroTerminalSnr(cosineBetas(1)), /at least 2 timesteps/);
  // ε-prediction cannot sample it.
  assert.throws(() => new DDPMScheduler({ schedule: zero }), /zero terminal SNR needs v-prediction/);
  assert.throws(() => newRunConfig({ model: 'baseline', zeroTerminalSnr: true }), /needs v-prediction.*--prediction v/);
});

test('v-prediction steps: the true v gives back x0 and (DDIM) the true noise, on both the tensor and the linear form', () => {
  const schedule = new NoiseSchedule({ kind: 'cosine', numTimesteps: 20, power: 1.5, zeroTerminalSnr: true });
  const ddpm = new DDPMScheduler({ schedule, prediction: 'v' });
  torch.manualSeed(3);
  const x0 = torch.rand([4, 1, 5, 5]).mul(2).sub(1);
  const noise = torch.randn([4, 1, 5, 5]);
  try {
    for (const t of [19, 10, 0]) {
      const tt = torch.full([4], t, { dtype: 'int64' });
      const xt = ddpm.addNoise(x0, noise, tt);
      const v = ddpm.velocity(x0, noise, tt);
      const x0Hat = ddpm.predictStartFromNoise(xt, t, v);
      assert.ok(maxDiff(x0Hat, x0) < 1e-5, `x̂0 at t = ${t}`);
      // DDIM η = 0 from t to t − 1 with the true v lands on the forward process's x_{t−1} for the same noise.
      const ddim = new DDIMScheduler({ schedule, prediction: 'v' });
      if (t > 0) {
        const prev = ddim.step(v, t, xt).prevSample;
        const want = ddpm.addNoise(x0, noise, torch.full([4], t - 1, { dtype: 'int64' }));
        assert.ok(maxDiff(prev, want) < 1e-5, `DDIM x_{t−1} at t = ${t}`);
        // The branch-free form other engines evaluate agrees.
        const l = linearStep(ddim.stepCoefficients(t), false);
        const x0Lin = xt.mul(l.xtScale).sub(v.mul(l.epsScale)).div(l.x0Divisor);
        const lin = x0Lin.mul(l.x0Coef).add(xt.mul(l.xtCoef)).add(v.mul(l.epsCoef));
        assert.ok(maxDiff(lin, prev) < 1e-5);
        torch.dispose([prev, want, x0Lin, lin]);
      }
      torch.dispose([tt, xt, v, x0Hat]);
    }
    assert.throws(() => new DDPMScheduler({ schedule, prediction: 'v', authorX0: true }).stepCoefficients(3), /no meaning for v-prediction/);
  } finally {
    torch.dispose([x0, noise]);
    ddpm.dispose();
  }
});

test('train --prediction v --zero-terminal-snr: recorded, refused on resume with other settings, sampled alike by both engines', () => {
  const root = mkdtempSync(join(tmpdir(), 'ssddpm-vpred-'));
  try {
    const run = join(root, 'run');
    trainDiffusion({ out: run, model: 'small', prediction: 'v', zeroTerminalSnr: true, images: loadMnist('test'), training: { epochs: 1, perClass: 4, batchSize: 10 } });
    const config = readRunConfig(run);
    assert.equal(config.model.prediction, 'v');
    assert.equal(config.model.schedule.zeroTerminalSnr, true);
    assert.deepEqual(settingDifferences(config, { prediction: 'epsilon' }, 'asked'), ['prediction "v" (asked: "epsilon")']);
    assert.throws(() => trainDiffusion({ out: run, resume: true, zeroTerminalSnr: false }), /was trained with zeroTerminalSnr true \(asked: false\)/);
    const a = loadPipeline({ runs: [run], engine: 'libtorch' });
    const b = loadPipeline({ runs: [run], engine: 'onnxruntime' });
    try {
      for (const opts of [{ clip: true }, { sampler: 'ddim' as const, steps: 6, eta: 0.5, clip: true }, { sampler: 'ddim' as const, steps: 5 }]) {
        const x = samplePipeline(a, [3, 8], { ...opts, generator: new torch.Generator(2) });
        const y = samplePipeline(b, [3, 8], { ...opts, generator: new torch.Generator(2) });
        assert.ok(Number.isFinite(x.sum().item() as number));
        assert.ok(maxDiff(x, y) <= 1 / 512, `engines differ by ${maxDiff(x, y)} with ${JSON.stringify(opts)}`);
        torch.dispose([x, y]);
      }
    } finally {
      disposePipeline(a);
      disposePipeline(b);
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
