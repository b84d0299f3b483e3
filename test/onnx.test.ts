// The ONNX export and the ONNX Runtime engine against libtorch: the network, the fused step, whole samplers,
// PyTorch's own export of the same weights, and the failures a user can meet.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { applyStep } from '../src/diffusion/scheduler.ts';
import { linearStep } from '../src/diffusion/step-coefficients.ts';
import { OrtSession, type OrtValue } from '../src/onnx/runtime.ts';
import { IO } from '../src/onnx/step-graph.ts';
import { DiffusionModel } from '../src/pipelines/diffusion-model.ts';
import { exportRun } from '../src/pipelines/export-run.ts';
import { presetModel, type ModelKind } from '../src/pipelines/model-config.ts';
import { OnnxDiffusionModel } from '../src/pipelines/onnx-diffusion-model.ts';
import { diffusionModelToOnnx } from '../src/pipelines/onnx-export.ts';
import { disposePipeline, loadModel, loadOnnxModel, loadPipeline, samplePipeline } from '../src/pipelines/pipeline.ts';
import { latestCheckpoint, RunError } from '../src/pipelines/run-dir.ts';
import type { SamplingOptions } from '../src/pipelines/sampling-model.ts';
import { Generator } from '../src/torch/generator.ts';
import { int64 } from '../src/torch/ops/creation.ts';
import { rand, randn } from '../src/torch/ops/random.ts';
import { noGrad } from '../src/torch/grad-mode.ts';
import { tidy } from '../src/torch/scope.ts';
import type { Tensor } from '../src/torch/tensor.ts';

const repo = fileURLToPath(new URL('..', import.meta.url));
const PRETRAINED = join(repo, 'pretrained', 'mnist');
/** The five kinds of model the toolkit trains, as shipped runs. */
const SHIPPED = ['baseline-1', 'baseline-ema-1', 'small-1', 'upscaler-1', 'upscaler-aug-1'];
/**
 * Network outputs of the two engines agree to this, relative to the output's scale (the largest |value|, at
 * least 1): random inputs far from the data give |ε̂| up to ~40.
 */
const NETWORK_TOLERANCE = 1e-4;
/** Whole samples agree to half a grey level of an 8-bit image (pixel space [0, 1]). */
const SAMPLE_TOLERANCE = 1 / 512;

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

const f32 = (t: Tensor): OrtValue => ({ type: 'float32', data: t.contiguous().data() as Float32Array, dims: t.shape });
const i64 = (values: number[]): OrtValue => ({ type: 'int64', data: BigInt64Array.from(values, BigInt), dims: [values.length] });
const scalar = (v: number): OrtValue => ({ type: 'float32', data: Float32Array.of(v), dims: [] });

/** Random inputs for a model's network at mixed timesteps and labels. */
function randomInputs(m: DiffusionModel, n: number, seed: number) {
  const g = new Generator(seed);
  const S = m.config.imageSize;
  const t = Array.from({ length: n }, (_, i) => (i * 7 + seed) % m.numTimesteps);
  const labels = Array.from({ length: n }, (_, i) => (i * 3 + seed) % 10);
  return {
    xt: randn([n, 1, S, S], { generator: g }),
    noise: randn([n, 1, S, S], { generator: g }),
    cond: m.isUpscaler ? randn([n, 1, S, S], { generator: g }) : undefined,
    level: m.augmentsConditioning ? rand([n], { generator: g }) : undefined,
    t,
    labels,
  };
}

/**
 * Runs the exported step once through ONNX Runtime and the same step on libtorch (predictNoise + applyStep with
 * the DDPM scheduler's coefficients at a middle timestep, clipped); returns the largest differences relative to
 * each output's scale.
 */
function compareStep(m: DiffusionModel, bytes: Uint8Array, seed: number): { eps: number; x0: number; prev: number } {
  return tidy(() => noGrad(() => {
    const n = 6;
    const inp = randomInputs(m, n, seed);
    const scheduler = m.scheduler({ clip: true });
    const tStep = Math.floor(m.numTimesteps / 2);
    const c = scheduler.stepCoefficients(tStep);
    const tt = int64(inp.t);
    const expectedEps = m.predictNoise(inp.xt, tt, int64(inp.labels), inp.cond, inp.level);
    const expected = applyStep(c, expectedEps, inp.xt, scheduler.clipRange, scheduler.constraint, { noise: inp.noise });
    const session = new OrtSession(bytes);
    try {
      const l = linearStep(c, true);
      const feeds: Record<string, OrtValue> = {
        [IO.sample]: f32(inp.xt), [IO.timestep]: i64(inp.t), [IO.label]: i64(inp.labels), [IO.noise]: f32(inp.noise),
        [IO.xtScale]: scalar(l.xtScale), [IO.epsScale]: scalar(l.epsScale), [IO.x0Divisor]: scalar(l.x0Divisor), [IO.x0Coef]: scalar(l.x0Coef), [IO.xtCoef]: scalar(l.xtCoef),
        [IO.epsCoef]: scalar(l.epsCoef), [IO.sigma]: scalar(l.sigma), [IO.clipMin]: scalar(scheduler.clipRange[0]), [IO.clipMax]: scalar(scheduler.clipRange[1]),
      };
      if (inp.cond) feeds[IO.conditioning] = f32(inp.cond);
      if (inp.level) feeds[IO.conditioningLevel] = f32(inp.level);
      const out = session.run(feeds, [IO.eps, IO.predX0, IO.prevSample]);
      scheduler.dispose();
      const d = (name: string, t: Tensor) => {
        const expectedValues = t.contiguous().data() as Float32Array;
        const scale = Math.max(1, ...Array.from(expectedValues, Math.abs));
        return maxAbsDiff(out[name]!.data as Float32Array, expectedValues) / scale;
      };
      // eps at every row's own timestep; x̂0 and the step at tStep use row timesteps too, which is what we compare.
      return { eps: d(IO.eps, expectedEps), x0: d(IO.predX0, expected.predOriginalSample), prev: d(IO.prevSample, expected.prevSample) };
    } finally {
      session.dispose();
    }
  }));
}

/** A model of `kind` with random weights and random batch-norm statistics. */
function randomModel(kind: ModelKind | 'upscaler-aug', seed: number): DiffusionModel {
  const base = presetModel(kind === 'upscaler-aug' ? 'upscaler' : kind);
  const config = kind === 'upscaler-aug'
    ? { ...base, conditioningNoise: 0.5, unet: { ...base.unet, extraContext: 1 }, normalization: { mean: 0.13, std: 0.31 } }
    : { ...base, normalization: { mean: 0.13, std: 0.31 } };
  const m = new DiffusionModel(config);
  const g = new Generator(seed);
  noGrad(() => {
    for (const [name, b] of m.unet.namedBuffers()) {
      if (name.endsWith('running_mean')) b.copy_(tidy(() => randn(b.shape, { generator: g }).mul_(0.3)));
      if (name.endsWith('running_var')) b.copy_(tidy(() => rand(b.shape, { generator: g }).add_(0.5)));
    }
  });
  m.unet.eval();
  return m;
}

test('the exported step equals libtorch for every model kind, on random weights and inputs', () => {
  for (const [i, kind] of (['baseline', 'small', 'upscaler', 'upscaler-aug'] as const).entries()) {
    const m = randomModel(kind, 10 + i);
    try {
      const d = compareStep(m, diffusionModelToOnnx(m, 'model'), 20 + i);
      assert.ok(d.eps <= NETWORK_TOLERANCE, `${kind}: ε̂ differs by ${d.eps}`);
      assert.ok(d.x0 <= NETWORK_TOLERANCE * 10 && d.prev <= NETWORK_TOLERANCE * 10, `${kind}: x̂0 by ${d.x0}, x_prev by ${d.prev}`);
    } finally {
      m.dispose();
    }
  }
});

test('the exported step equals libtorch on the shipped trained runs (moving-average weights where kept)', () => {
  for (const [i, run] of SHIPPED.entries()) {
    const m = loadModel(join(PRETRAINED, run));
    try {
      const d = compareStep(m, diffusionModelToOnnx(m, run.includes('ema') ? 'ema' : 'model'), 30 + i);
      assert.ok(d.eps <= NETWORK_TOLERANCE, `${run}: ε̂ differs by ${d.eps}`);
      assert.ok(d.prev <= NETWORK_TOLERANCE * 10, `${run}: x_prev differs by ${d.prev}`);
    } finally {
      m.dispose();
    }
  }
});

const PYTHON = '/usr/bin/python3';
const hasTorch = spawnSync(PYTHON, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;

test('PyTorch\'s own ONNX export of the same weights predicts the same noise as ours', { skip: hasTorch ? false : 'PyTorch is not importable' }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'ssddpm-onnx-peer-'));
  try {
    for (const run of ['baseline-1', 'upscaler-aug-1']) {
      const runDir = join(PRETRAINED, run);
      const file = join(dir, `${run}.onnx`);
      const r = spawnSync(PYTHON, [join(repo, 'bench/peer/export_onnx.py'), join(runDir, 'config.json'), latestCheckpoint(runDir)!.path, file, 'model'], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      const m = loadModel(runDir);
      const theirs = new OrtSession(readFileSync(file));
      const ours = new OrtSession(diffusionModelToOnnx(m, 'model'));
      try {
        tidy(() => {
          const inp = randomInputs(m, 5, 3);
          const feeds: Record<string, OrtValue> = { [IO.sample]: f32(inp.xt), [IO.timestep]: i64(inp.t), [IO.label]: i64(inp.labels) };
          if (inp.cond) feeds[IO.conditioning] = f32(inp.cond);
          if (inp.level) feeds[IO.conditioningLevel] = f32(inp.level);
          const stepFeeds: Record<string, OrtValue> = { [IO.noise]: f32(inp.noise) };
          for (const name of [IO.xtScale, IO.epsScale, IO.x0Divisor, IO.x0Coef, IO.xtCoef, IO.epsCoef, IO.sigma, IO.clipMin, IO.clipMax]) stepFeeds[name] = scalar(1);
          const a = theirs.run(feeds, [IO.eps])[IO.eps]!.data as Float32Array;
          const b = ours.run({ ...feeds, ...stepFeeds }, [IO.eps])[IO.eps]!.data as Float32Array;
          assert.ok(maxAbsDiff(a, b) <= NETWORK_TOLERANCE, `${run}: PyTorch's export and ours differ by ${maxAbsDiff(a, b)}`);
        });
        // And through our sampling loop, PyTorch's graph samples what ours samples.
        const peer = OnnxDiffusionModel.fromNoisePredictor(readFileSync(file), m.config);
        if (!m.isUpscaler) {
          const ortPipeline = loadPipeline({ runs: [runDir], engine: 'onnxruntime', ema: false });
          const x = samplePipeline(ortPipeline, [0, 5], { clip: true, generator: new Generator(4) });
          const y = samplePipeline({ models: [peer] }, [0, 5], { clip: true, generator: new Generator(4) });
          assert.ok(maxAbsDiff(x.data() as Float32Array, y.data() as Float32Array) <= SAMPLE_TOLERANCE);
          x.dispose();
          y.dispose();
          disposePipeline(ortPipeline);
        }
        peer.dispose();
      } finally {
        theirs.dispose();
        ours.dispose();
        m.dispose();
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('both engines draw the same samples from one seed: plain, clipped, DDIM, dynamic thresholding, small upscaled, cascade', () => {
  const cases: { runs: string[]; upscale?: boolean; sampling: SamplingOptions }[] = [
    { runs: ['baseline-1'], sampling: {} },
    { runs: ['baseline-1'], sampling: { clip: true } },
    { runs: ['baseline-ema-1'], sampling: { sampler: 'ddim', steps: 10, eta: 0.5, clip: true } },
    { runs: ['baseline-1'], sampling: { sampler: 'ddim', steps: 5 } },
    { runs: ['baseline-1'], sampling: { dynamicThreshold: 0.99 } },
    { runs: ['small-1'], upscale: true, sampling: { clip: true } },
    { runs: ['small-1', 'upscaler-1'], sampling: { clip: true } },
    { runs: ['small-1', 'upscaler-aug-1'], sampling: { conditioningLevel: 0.3 } },
  ];
  for (const c of cases) {
    const runs = c.runs.map((r) => join(PRETRAINED, r));
    const a = loadPipeline({ runs, upscale: c.upscale, engine: 'libtorch' });
    const b = loadPipeline({ runs, upscale: c.upscale, engine: 'onnxruntime' });
    try {
      assert.equal(b.models[0]!.engine, 'onnxruntime');
      const labels = [0, 3, 7, 9];
      const x = samplePipeline(a, labels, { ...c.sampling, generator: new Generator(11) });
      const y = samplePipeline(b, labels, { ...c.sampling, generator: new Generator(11) });
      const d = maxAbsDiff(x.data() as Float32Array, y.data() as Float32Array);
      assert.ok(d <= SAMPLE_TOLERANCE, `${c.runs.join(' → ')} ${JSON.stringify(c.sampling)}: the engines differ by ${d}`);
      // A different seed gives different images (the comparison is not vacuous).
      const z = samplePipeline(b, labels, { ...c.sampling, generator: new Generator(12) });
      assert.ok(maxAbsDiff(y.data() as Float32Array, z.data() as Float32Array) > 0.1);
      for (const t of [x, y, z]) t.dispose();
    } finally {
      disposePipeline(a);
      disposePipeline(b);
    }
  }
});

test('the ONNX engine keeps the reverse trajectory like libtorch', () => {
  const run = join(PRETRAINED, 'small-1');
  const a = loadModel(run);
  const b = loadOnnxModel(run);
  try {
    const opts = { clip: true, keepTrajectory: true };
    const x = a.sample([1, 2], { ...opts, generator: new Generator(3) });
    const y = b.sample([1, 2], { ...opts, generator: new Generator(3) });
    assert.deepEqual(y.trajectory!.t, x.trajectory!.t);
    x.trajectory!.predX0.forEach((p, i) => assert.ok(maxAbsDiff(p.data() as Float32Array, y.trajectory!.predX0[i]!.data() as Float32Array) <= SAMPLE_TOLERANCE));
    for (const r of [x, y]) tidy(() => [r.sample, ...r.trajectory!.xt, ...r.trajectory!.predX0].forEach((t) => t.dispose()));
  } finally {
    a.dispose();
    b.dispose();
  }
});

test('export --format onnx: the folder samples on ONNX Runtime like the run, and says what it is to libtorch', () => {
  const root = mkdtempSync(join(tmpdir(), 'ssddpm-onnx-export-'));
  try {
    const run = join(PRETRAINED, 'baseline-ema-1');
    const out = join(root, 'onnx');
    const { file } = exportRun(run, out, { format: 'onnx' });
    assert.equal(file, join(out, 'model.onnx'));
    const fromFolder = loadPipeline({ runs: [out], engine: 'onnxruntime' });
    const fromRun = loadPipeline({ runs: [run], engine: 'onnxruntime' });
    const x = samplePipeline(fromFolder, [4, 8], { generator: new Generator(1) });
    const y = samplePipeline(fromRun, [4, 8], { generator: new Generator(1) });
    assert.deepEqual(x.data(), y.data(), 'the exported file is the graph the engine builds from the run');
    x.dispose();
    y.dispose();
    disposePipeline(fromFolder);
    disposePipeline(fromRun);
    assert.throws(() => loadPipeline({ runs: [out], engine: 'libtorch' }), /holds an ONNX export \(model\.onnx\) and no checkpoint: sample it with --engine onnxruntime/);
    assert.throws(() => loadOnnxModel(out, { ema: false }), /holds the moving-average weights; export with --no-ema/);
    const plain = join(root, 'onnx-no-ema');
    exportRun(run, plain, { format: 'onnx', ema: false });
    const trained = loadOnnxModel(plain, { ema: false });
    assert.equal(trained.weights, 'model');
    trained.dispose();
    assert.throws(() => loadPipeline({ runs: [out], engine: 'onnxruntime', device: 'cuda' }), /the onnxruntime engine samples on the CPU; use --engine libtorch for cuda/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('bad ONNX files: corrupt, truncated, another model kind, another image size, not ours', () => {
  const root = mkdtempSync(join(tmpdir(), 'ssddpm-onnx-bad-'));
  try {
    const good = join(root, 'good');
    exportRun(join(PRETRAINED, 'baseline-1'), good, { format: 'onnx' });
    const bytes = readFileSync(join(good, 'model.onnx'));
    const doctored = (name: string, content: Uint8Array, config = join(good, 'config.json')) => {
      const dir = join(root, name);
      cpSync(good, dir, { recursive: true });
      cpSync(config, join(dir, 'config.json'));
      writeFileSync(join(dir, 'model.onnx'), content);
      return dir;
    };
    const load = (dir: string) => () => loadOnnxModel(dir);
    assert.throws(load(doctored('corrupt', Uint8Array.from({ length: 5000 }, (_, i) => (i * 7919) % 251))), (err: Error) => err instanceof RunError && /corrupt\/model\.onnx: not a readable ONNX model .*; export it again \(ssddpm export --format onnx\)/.test(err.message));
    assert.throws(load(doctored('truncated', bytes.subarray(0, bytes.length >> 1))), /truncated\/model\.onnx: not a readable ONNX model/);
    const small = join(root, 'small');
    exportRun(join(PRETRAINED, 'small-1'), small, { format: 'onnx' });
    assert.throws(load(doctored('kind', readFileSync(join(small, 'model.onnx')))), /kind\/model\.onnx is not the model its config\.json describes \(a 14×14 small model, not a 28×28 baseline one\)/);
    // A graph of another image size or kind handed over as a noise predictor.
    const smallConfig = loadModel(join(PRETRAINED, 'small-1'));
    assert.throws(() => OnnxDiffusionModel.fromNoisePredictor(bytes, smallConfig.config), /the graph's sample is \[batch, 1, 28, 28\], not the \[N, 1, 14, 14\] of a 14×14 small model/);
    smallConfig.dispose();
    // A valid ONNX model that is not ours.
    const foreign = readOnnxNetworkOnly();
    assert.throws(() => OnnxDiffusionModel.fromBytes(foreign), /an ONNX model, but not one exported by ssddpm/);
    const base = loadModel(join(PRETRAINED, 'upscaler-1'));
    assert.throws(() => OnnxDiffusionModel.fromNoisePredictor(bytes, base.config), /the graph lacks the input conditioning that a 28×28 upscaler model takes/);
    base.dispose();
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

// A tiny valid ONNX model without our metadata.
function readOnnxNetworkOnly(): Uint8Array {
  const m = new DiffusionModel({ ...presetModel('small'), normalization: { mean: 0, std: 1 } });
  const bytes = diffusionModelToOnnx(m, 'model');
  m.dispose();
  // The same bytes with our metadata keys renamed (same length: the protobuf stays valid).
  const text = Buffer.from(bytes).toString('latin1').replaceAll('ssddpm.', 'xxxxxx.');
  return Buffer.from(text, 'latin1');
}

test('without onnxruntime-node: a clear message naming --engine libtorch, and libtorch is the default', () => {
  const root = mkdtempSync(join(tmpdir(), 'ssddpm-no-ort-'));
  try {
    const hide = join(root, 'hide-onnxruntime.cjs');
    // Makes the package unresolvable, as on a machine where it was never installed.
    writeFileSync(hide, `const M = require('node:module');
const resolve = M._resolveFilename;
M._resolveFilename = function (request, ...rest) {
  if (request === 'onnxruntime-node') { const e = new Error("Cannot find module 'onnxruntime-node'"); e.code = 'MODULE_NOT_FOUND'; throw e; }
  return resolve.call(this, request, ...rest);
};\n`);
    const run = (...args: string[]) => spawnSync(process.execPath, ['--require', hide, 'bin/ssddpm.js', ...args], { cwd: repo, encoding: 'utf8', env: { ...process.env, TORCH_NUM_THREADS: '1' } });
    const base = ['sample', '--run', join(PRETRAINED, 'small-1'), '--labels', '3', '--per-label', '1'];
    const refused = run(...base, '--out', join(root, 'a.png'), '--engine', 'onnxruntime');
    assert.notEqual(refused.status, 0);
    assert.match(refused.stderr, /ONNX Runtime \(the npm package onnxruntime-node\) is not installed or cannot load here .*or sample with --engine libtorch/);
    const fallback = run(...base, '--out', join(root, 'b.png'));
    assert.equal(fallback.status, 0, fallback.stderr);
    assert.match(fallback.stdout, /on libtorch/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
