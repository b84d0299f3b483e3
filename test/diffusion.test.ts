// The diffusion maths: cosine schedule against the formula, derived terms against the Gaussian posterior,
// the forward process by its statistics, the reverse step by its closed form, and sampling determinism.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NoiseSchedule, cosineBetas, linearBetas, scheduleTerms, type ScheduleConfig } from '../src/diffusion/schedule.ts';
import { DDPMScheduler, type DDPMConfig } from '../src/diffusion/ddpm.ts';
import { DDIMScheduler } from '../src/diffusion/ddim.ts';
import { sampleLoop } from '../src/diffusion/sample.ts';
import { DiffusionModel } from '../src/pipelines/diffusion-model.ts';
import { presetModel, type ModelKind } from '../src/pipelines/model-config.ts';
import { Generator } from '../src/torch/generator.ts';
import { full, randn, rand, tensor, zeros } from '../src/torch/index.ts';
import type { Tensor } from '../src/torch/tensor.ts';
import { assertClose, assertShape, cosineSchedule, withNoLeaks } from './helpers.ts';

const f32 = (t: Tensor) => t.data() as Float32Array;
const longs = (values: readonly number[]) => tensor(BigInt64Array.from(values, (v) => BigInt(v)));

/** The cosine schedule written out again from the paper's formula, in plain JS. */
function cosineReference(T: number, p: number): number[] {
  const f = (t: number) => Math.pow(Math.cos(((t / T + 0.003) / 1.003) * (Math.PI / 2)), p);
  return Array.from({ length: T }, (_, t) => Math.min(1 - f(t + 1) / f(t), 0.999));
}

function stats(values: ArrayLike<number>, from = 0, count = values.length - from): { mean: number; std: number } {
  let s = 0;
  for (let i = from; i < from + count; i++) s += values[i]!;
  const mean = s / count;
  let v = 0;
  for (let i = from; i < from + count; i++) v += (values[i]! - mean) ** 2;
  return { mean, std: Math.sqrt(v / (count - 1)) };
}

test('cosineBetas matches f(t)=cos(((t/T+0.003)/1.003)·π/2)^p, β_t=min(1−f(t+1)/f(t), 0.999) for T=30/p=1.5 and T=20/p=2', () => {
  for (const [T, p] of [[30, 1.5], [20, 2]] as const) {
    const betas = cosineBetas(T, p);
    assert.equal(betas.length, T);
    assertClose(betas, cosineReference(T, p), { atol: 1e-15, rtol: 1e-12, what: `β (T=${T}, p=${p})` });
    for (let t = 1; t < T; t++) assert.ok(betas[t]! > betas[t - 1]!, `β increases (t=${t})`);
    assert.equal(betas[T - 1], 0.999, 'the last β is clipped to 0.999');
    assert.ok(betas[0]! > 0 && betas[0]! < 0.01, `β_0 = ${betas[0]} is small`);
  }
  // The paper's default exponent is 1.5; exponent 2 is Nichol & Dhariwal's and differs.
  assert.deepEqual(Array.from(cosineBetas(30)), Array.from(cosineBetas(30, 1.5)));
  assert.ok(Math.abs(cosineBetas(30, 2)[10]! - cosineBetas(30, 1.5)[10]!) > 1e-3);
  // The schedules the three presets use: T = 30, 20, 10.
  for (const kind of ['baseline', 'small', 'upscaler'] as ModelKind[]) {
    const m = presetModel(kind);
    const T = m.schedule.numTimesteps;
    const s = new DDPMScheduler({ schedule: new NoiseSchedule(m.schedule) });
    assertClose(s.terms.betas, cosineReference(T, 1.5), { atol: 1e-15, rtol: 1e-12, what: kind });
    assert.deepEqual(Array.from(s.timesteps), Array.from({ length: T }, (_, i) => T - 1 - i));
  }
  const lin = linearBetas(1000);
  assert.equal(lin[0], 1e-4);
  assert.ok(Math.abs(lin[999]! - 0.02) < 1e-15);
  assert.ok(Math.abs(lin[500]! - (1e-4 + (0.02 - 1e-4) * (500 / 999))) < 1e-15);
});

test('scheduleTerms: ᾱ products, ᾱ_{t−1}, square roots, posterior variance, and coef1·x0 + coef2·xt equal to the exact Gaussian posterior', () => {
  for (const betas of [cosineBetas(30), cosineBetas(20, 2), linearBetas(50)]) {
    const s = scheduleTerms(betas);
    const T = betas.length;
    let prod = 1;
    for (let t = 0; t < T; t++) {
      const b = betas[t]!;
      assert.ok(Math.abs(s.alphas[t]! - (1 - b)) < 1e-15);
      assert.ok(Math.abs(s.alphasCumprodPrev[t]! - prod) <= 1e-15 * prod, `ᾱ_{t−1} at ${t}`);
      prod *= 1 - b;
      assert.ok(Math.abs(s.alphasCumprod[t]! - prod) <= 1e-14 * prod, `ᾱ at ${t}`);
      assert.ok(Math.abs(s.sqrtAlphasCumprod[t]! ** 2 - prod) <= 1e-14 * prod);
      assert.ok(Math.abs(s.sqrtOneMinusAlphasCumprod[t]! ** 2 - (1 - prod)) <= 1e-14);
      const abPrev = t === 0 ? 1 : s.alphasCumprod[t - 1]!;
      const ab = s.alphasCumprod[t]!;
      assert.ok(Math.abs(s.posteriorVariance[t]! - (b * (1 - abPrev)) / (1 - ab)) <= 1e-15, `β̃ at ${t}`);
      // q(x_{t−1} | x_t, x_0) from Gaussian conditioning: prior x_{t−1} ~ N(√ᾱ_{t−1} x0, 1 − ᾱ_{t−1}),
      // likelihood x_t | x_{t−1} ~ N(√α_t x_{t−1}, β_t).
      for (const [x0, xt] of [[0.7, -1.3], [-2, 0.25], [1, 1]] as const) {
        const mean = s.posteriorMeanCoef1[t]! * x0 + s.posteriorMeanCoef2[t]! * xt;
        let exactMean: number;
        let exactVar: number;
        if (t === 0) {
          exactMean = x0; // ᾱ_{−1} = 1: x_{−1} is x0 itself
          exactVar = 0;
        } else {
          const precision = 1 / (1 - abPrev) + (1 - b) / b;
          exactVar = 1 / precision;
          exactMean = exactVar * ((Math.sqrt(abPrev) * x0) / (1 - abPrev) + (Math.sqrt(1 - b) * xt) / b);
        }
        assert.ok(Math.abs(mean - exactMean) <= 1e-12 * (1 + Math.abs(exactMean)), `posterior mean at t=${t}: ${mean} vs ${exactMean}`);
        assert.ok(Math.abs(s.posteriorVariance[t]! - exactVar) <= 1e-12 * (1 + exactVar), `posterior variance at t=${t}`);
      }
    }
    assert.equal(s.alphasCumprodPrev[0], 1);
    assert.equal(s.posteriorVariance[0], 0);
  }
  assert.throws(() => scheduleTerms(Float64Array.from([1, 0.1])), /β_0 = 1 is outside/);
  assert.throws(() => scheduleTerms(Float64Array.from([0.1, 1.5])), RangeError);
  // β = 1 at the last timestep is a schedule with zero terminal SNR.
  assert.equal(scheduleTerms(Float64Array.from([0.1, 1])).alphasCumprod[1], 0);
  assert.throws(() => scheduleTerms(Float64Array.from([0, 0.1])), RangeError);
});

test('addNoise: x_t = √ᾱ_t·x0 + √(1−ᾱ_t)·ε exactly for a given ε, per-sample t', () => {
  withNoLeaks(() => {
    const s = new DDPMScheduler({ schedule: cosineSchedule(30) });
    const x0 = rand([4, 1, 3, 3]).mul_(2).sub_(1);
    const eps = randn([4, 1, 3, 3]);
    const ts = [0, 9, 17, 29];
    const xt = s.addNoise(x0, eps, longs(ts));
    assertShape(xt, [4, 1, 3, 3]);
    const a = f32(x0);
    const e = f32(eps);
    const expected = Array.from(a, (v, i) => {
      const t = ts[Math.floor(i / 9)]!;
      return s.terms.sqrtAlphasCumprod[t]! * v + s.terms.sqrtOneMinusAlphasCumprod[t]! * e[i]!;
    });
    assertClose(f32(xt), expected, { atol: 1e-6, rtol: 1e-6 });
    s.dispose();
  });
});

test('addNoise statistics: for x0 = c, mean ≈ √ᾱ_t·c and std ≈ √(1−ᾱ_t) (tolerances reject ᾱ_{t±1} and ᾱ for √ᾱ)', () => {
  withNoLeaks(() => {
    const s = new DDPMScheduler({ schedule: cosineSchedule(30) });
    const c = 1.5;
    const ts = [5, 15, 25];
    const n = 40_000;
    const x0 = full([ts.length, 1, 200, 200], c);
    const eps = randn(x0.shape, { generator: new Generator(123) });
    const xt = f32(s.addNoise(x0, eps, longs(ts)));
    const ab = s.terms.alphasCumprod;
    ts.forEach((t, k) => {
      const { mean, std } = stats(xt, k * n, n);
      const wantMean = Math.sqrt(ab[t]!) * c;
      const wantStd = Math.sqrt(1 - ab[t]!);
      const meanTol = (5 * wantStd) / Math.sqrt(n);
      const stdTol = (5 * wantStd) / Math.sqrt(2 * n);
      assert.ok(Math.abs(mean - wantMean) < meanTol, `t=${t}: mean ${mean}, expected ${wantMean} ± ${meanTol}`);
      assert.ok(Math.abs(std - wantStd) < stdTol, `t=${t}: std ${std}, expected ${wantStd} ± ${stdTol}`);
      // The tolerances are tight enough to catch an off-by-one timestep or ᾱ used for √ᾱ.
      for (const u of [t - 1, t + 1]) {
        assert.ok(Math.abs(Math.sqrt(ab[u]!) * c - wantMean) > meanTol || Math.abs(Math.sqrt(1 - ab[u]!) - wantStd) > stdTol, `t±1 distinguishable at ${t}`);
      }
      assert.ok(Math.abs(ab[t]! * c - wantMean) > meanTol);
    });
    s.dispose();
  });
});

test('a forwardStep chain from a constant has mean √ᾱ_t·c and variance 1−ᾱ_t at every t', () => {
  withNoLeaks(() => {
    const s = new DDPMScheduler({ schedule: cosineSchedule(20) });
    const c = -0.8;
    const n = 40_000;
    const g = new Generator(7);
    let x = full([n], c);
    for (let t = 0; t < 20; t++) {
      x = s.forwardStep(x, t, g);
      if (t % 6 === 1 || t === 19) {
        const { mean, std } = stats(f32(x));
        const ab = s.terms.alphasCumprod[t]!;
        const wantStd = Math.sqrt(1 - ab);
        assert.ok(Math.abs(mean - Math.sqrt(ab) * c) < (5 * wantStd) / Math.sqrt(n), `t=${t}: mean ${mean} vs ${Math.sqrt(ab) * c}`);
        assert.ok(Math.abs(std ** 2 - (1 - ab)) < (5 * Math.SQRT2 * (1 - ab)) / Math.sqrt(n), `t=${t}: variance ${std ** 2} vs ${1 - ab}`);
      }
    }
    // Same generator seed, same chain.
    const a = s.forwardStep(full([5], 1), 3, new Generator(1));
    const b = s.forwardStep(full([5], 1), 3, new Generator(1));
    assert.deepEqual(f32(a), f32(b));
    assert.throws(() => s.forwardStep(a, 20), RangeError);
    s.dispose();
  });
});

test('step() with the true noise and σ forced to 0: x̂0 = x0 and x_{t−1} = the posterior mean; with noise z: mean + σ_t·z', () => {
  withNoLeaks(() => {
    const s = new DDPMScheduler({ schedule: cosineSchedule(30) });
    const shape = [2, 1, 4, 4];
    for (const t of [0, 1, 12, 28, 29]) {
      const x0 = rand(shape, { generator: new Generator(t) }).mul_(2).sub_(1);
      const eps = randn(shape, { generator: new Generator(100 + t) });
      const xt = s.addNoise(x0, eps, longs([t, t]));
      const out = s.step(eps, t, xt, { noise: zeros(shape) });
      assertShape(out.prevSample, shape);
      assertShape(out.predOriginalSample, shape);
      // x̂0 divides by √ᾱ_t: float32 rounding of x_t grows by 1/√ᾱ_t (≈ 290 at t = 29).
      const tol = 2e-6 / s.terms.sqrtAlphasCumprod[t]!;
      assertClose(f32(out.predOriginalSample), f32(x0), { atol: tol, rtol: 0, what: `x̂0 at t=${t}` });
      const c1 = s.terms.posteriorMeanCoef1[t]!;
      const c2 = s.terms.posteriorMeanCoef2[t]!;
      const a = f32(x0);
      const b = f32(xt);
      const mean = Array.from(a, (v, i) => c1 * v + c2 * b[i]!);
      assertClose(f32(out.prevSample), mean, { atol: 1e-5 + c1 * tol, rtol: 1e-5, what: `posterior mean at t=${t}` });
      // A given z is scaled by σ_t = √β̃_t (and ignored at t = 0).
      const z = randn(shape, { generator: new Generator(200 + t) });
      const noisy = s.step(eps, t, xt, { noise: z });
      const sigma = s.stepCoefficients(t).sigma;
      const zs = f32(z);
      assertClose(f32(noisy.prevSample), Array.from(f32(out.prevSample), (v, i) => v + sigma * zs[i]!), { atol: 1e-5, rtol: 1e-5, what: `noisy step at t=${t}` });
      if (t === 0) assert.deepEqual(f32(noisy.prevSample), f32(out.prevSample));
      // With a generator instead, the same seed gives the same step.
      const g1 = s.step(eps, t, xt, { generator: new Generator(5) });
      const g2 = s.step(eps, t, xt, { generator: new Generator(5) });
      assert.deepEqual(f32(g1.prevSample), f32(g2.prevSample));
    }
    assert.throws(() => s.step(zeros([1]), 30, zeros([1])), RangeError);
    assert.throws(() => s.step(zeros([1]), -1, zeros([1])), RangeError);
    s.dispose();
  });
});

test('clip clamps x̂0 to clipRange and takes the posterior mean from the clipped estimate', () => {
  withNoLeaks(() => {
    const range: [number, number] = [-0.5, 2];
    const clipped = new DDPMScheduler({ schedule: cosineSchedule(30), clip: true, clipRange: range });
    const free = new DDPMScheduler({ schedule: cosineSchedule(30), clip: false, clipRange: range });
    const t = 20;
    const xt = tensor(Float32Array.from([3, -3, 0.1, 0, 1.5, -0.2]), { shape: [1, 1, 2, 3] });
    const eps = zeros([1, 1, 2, 3]);
    const noise = zeros([1, 1, 2, 3]);
    const raw = f32(free.step(eps, t, xt, { noise }).predOriginalSample);
    const out = clipped.step(eps, t, xt, { noise });
    const x0 = f32(out.predOriginalSample);
    const want = Array.from(raw, (v) => Math.min(Math.max(v, range[0]), range[1]));
    assertClose(x0, want, { atol: 1e-6, rtol: 1e-6, what: 'clipped x̂0' });
    assert.ok(raw.some((v) => v > range[1]) && raw.some((v) => v < range[0]), 'the unclipped estimate leaves the range');
    const c1 = clipped.terms.posteriorMeanCoef1[t]!;
    const c2 = clipped.terms.posteriorMeanCoef2[t]!;
    const xs = f32(xt);
    assertClose(f32(out.prevSample), want.map((v, i) => c1 * v + c2 * xs[i]!), { atol: 1e-6, rtol: 1e-6, what: 'mean from clipped x̂0' });
    clipped.dispose();
    free.dispose();
  });
});

test('the step\'s noise scale σ_t: 0 at t = 0, √β̃_t (posterior) or √β_t (beta) otherwise', () => {
  const post = new DDPMScheduler({ schedule: cosineSchedule(30), variance: 'posterior' });
  const beta = new DDPMScheduler({ schedule: cosineSchedule(30), variance: 'beta' });
  assert.equal(post.stepCoefficients(0).sigma, 0);
  assert.equal(beta.stepCoefficients(0).sigma, 0);
  for (const t of [1, 10, 29]) {
    assert.equal(post.stepCoefficients(t).sigma, Math.sqrt(post.terms.posteriorVariance[t]!));
    assert.equal(beta.stepCoefficients(t).sigma, Math.sqrt(beta.terms.betas[t]!));
    assert.ok(post.stepCoefficients(t).sigma < beta.stepCoefficients(t).sigma, 'β̃_t < β_t');
  }
});

test('invalid schedules and schedulers throw RangeErrors naming the field', () => {
  const badSchedules: [ScheduleConfig, RegExp][] = [
    [{ kind: 'cosine', numTimesteps: 0 }, /numTimesteps/],
    [{ kind: 'cosine', numTimesteps: 2.5 }, /numTimesteps/],
    [{ kind: 'cosine', numTimesteps: -3 }, /numTimesteps/],
    [{ kind: 'cosine', numTimesteps: 10, power: 0 }, /power/],
    [{ kind: 'quadratic' as ScheduleConfig['kind'], numTimesteps: 10 }, /kind/],
    [{ kind: 'linear', numTimesteps: 10, power: 2 }, /power is for the cosine/],
  ];
  for (const [cfg, message] of badSchedules) assert.throws(() => new NoiseSchedule(cfg), { name: 'RangeError', message }, JSON.stringify(cfg));
  // DDPM and DDIM share one validation of what they have in common.
  const schedule = cosineSchedule(10);
  const badSchedulers: [Partial<DDPMConfig>, RegExp][] = [
    [{ variance: 'fixed' as DDPMConfig['variance'] }, /variance/],
    [{ clipRange: [1, -1] }, /clipRange/],
    [{ clipRange: [0, 0] }, /clipRange/],
    [{ clip: true, dynamicThreshold: 0.99 }, /exclude/],
    [{ dynamicThreshold: 1.5 }, /ratio/],
    [{ schedule: undefined }, /schedule is required/],
  ];
  for (const [cfg, message] of badSchedulers) {
    assert.throws(() => new DDPMScheduler({ schedule, ...cfg } as DDPMConfig), { name: 'RangeError', message }, JSON.stringify(cfg));
    if (cfg.variance === undefined) assert.throws(() => new DDIMScheduler({ schedule, ...cfg } as DDPMConfig), { name: 'RangeError', message }, `DDIM ${JSON.stringify(cfg)}`);
  }
  assert.throws(() => cosineBetas(0), RangeError);
  assert.throws(() => cosineBetas(10, 0), RangeError);
  assert.throws(() => cosineBetas(10, -1), RangeError);
  assert.throws(() => linearBetas(0), RangeError);
  assert.equal(new DDPMScheduler({ schedule: cosineSchedule(1) }).numTimesteps, 1);
});

test('a model builds its schedule once, from its configuration, and every scheduler shares it', () => {
  const model = new DiffusionModel({ ...presetModel('small'), schedule: { kind: 'cosine', numTimesteps: 7, power: 2 }, normalization: { mean: 0, std: 1 } });
  try {
    assert.deepEqual(Array.from(model.schedule.terms.betas), Array.from(cosineBetas(7, 2)));
    for (const s of [model.scheduler(), model.samplingScheduler({ sampler: 'ddim', steps: 3 }), model.samplingScheduler({ clip: true })]) {
      assert.equal((s as DDPMScheduler | DDIMScheduler).schedule, model.schedule, 'the same object');
      s.dispose();
    }
    assert.equal(model.numTimesteps, 7);
  } finally {
    model.dispose();
  }
});

test('sampleLoop walks t = T−1 … 0, one predictor call and one onStep per step', () => {
  withNoLeaks(() => {
    const s = new DDPMScheduler({ schedule: cosineSchedule(6) });
    const seen: number[] = [];
    const steps: [number, number][] = [];
    const { sample, trajectory } = sampleLoop(
      s,
      (xt, t) => {
        seen.push(t);
        return zeros(xt.shape);
      },
      [2, 1, 3, 3],
      { generator: new Generator(0), onStep: (d, n) => steps.push([d, n]) },
    );
    assert.deepEqual(seen, [5, 4, 3, 2, 1, 0]);
    assert.deepEqual(steps, [1, 2, 3, 4, 5, 6].map((d) => [d, 6]));
    assert.equal(trajectory, undefined);
    assertShape(sample, [2, 1, 3, 3]);
    s.dispose();
  });
});

/** A narrow small model (14×14, T = 20) with fresh weights: sampling behaviour does not need training. */
function tinyModel(kind: ModelKind = 'small'): DiffusionModel {
  const preset = presetModel(kind);
  return new DiffusionModel({ ...preset, unet: { ...preset.unet, baseChannels: 4 }, normalization: { mean: 0.13, std: 0.3 } });
}

test('DiffusionModel.sample: the same seed gives bit-identical samples, another seed differs; keepTrajectory keeps T states', () => {
  withNoLeaks(() => {
    const model = tinyModel();
    const labels = [0, 3, 9];
    const a = f32(model.sample(labels, { generator: new Generator(11) }).sample);
    const b = f32(model.sample(labels, { generator: new Generator(11) }).sample);
    const c = f32(model.sample(labels, { generator: new Generator(12) }).sample);
    assert.equal(a.length, 3 * 14 * 14);
    assert.ok(a.every(Number.isFinite));
    assert.deepEqual(a, b, 'same seed, same samples');
    assert.ok(a.some((v, i) => v !== c[i]), 'another seed, other samples');
    // The clip and variance choices change the result.
    const clipped = f32(model.sample(labels, { generator: new Generator(11), clip: true }).sample);
    assert.ok(a.some((v, i) => v !== clipped[i]));

    const { sample, trajectory } = model.sample(labels, { generator: new Generator(11), keepTrajectory: true });
    assert.deepEqual(f32(sample), a, 'keeping the trajectory does not change the sample');
    assert.ok(trajectory !== undefined);
    assert.deepEqual(trajectory.t, Array.from({ length: 20 }, (_, i) => 19 - i));
    assert.equal(trajectory.xt.length, 20);
    assert.equal(trajectory.predX0.length, 20);
    for (const x of [...trajectory.xt, ...trajectory.predX0]) assertShape(x, [3, 1, 14, 14]);
    // x_{T−1} is the starting noise, in pixel space: (z · std + mean) has about that spread.
    const start = stats(f32(trajectory.xt[0]!));
    assert.ok(Math.abs(start.std - 0.3) < 0.1 && Math.abs(start.mean - 0.13) < 0.1, `x_{T−1} stats ${JSON.stringify(start)}`);

    assert.throws(() => model.sample([10]), RangeError);
    assert.throws(() => model.sample([1.5]), RangeError);
    model.dispose();
  });
});

test('the upscaler refuses to sample without low-resolution images; with them it gives 28×28 samples', () => {
  withNoLeaks(() => {
    const up = tinyModel('upscaler');
    assert.throws(() => up.sample([1, 2]), /lowRes/);
    const low = rand([2, 1, 14, 14]);
    const out = up.sample([1, 2], { lowRes: low, generator: new Generator(0) });
    assertShape(out.sample, [2, 1, 28, 28]);
    up.dispose();
  });
});
