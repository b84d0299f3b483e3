// Training and the sampling pipelines, on a few hundred real MNIST images: the loss falls, the U-Net can
// overfit, resumption is exact, run-folder errors, upscaler conditioning, cascades and generated sets.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadMnist } from '../src/data/datasets.ts';
import { classCounts, readImageSet, type ImageSet } from '../src/data/image-set.ts';
import { downscale } from '../src/data/tensor-dataset.ts';
import { DDPMScheduler } from '../src/diffusion/ddpm.ts';
import { DiffusionModel } from '../src/pipelines/diffusion-model.ts';
import { presetModel, type ModelKind } from '../src/pipelines/model-config.ts';
import { generatedSetDataset, readOffRange, writeGeneratedSet } from '../src/data/generated-set.ts';
import { DataError } from '../src/data/idx.ts';
import { balancedLabels, generateSet } from '../src/pipelines/generate.ts';
import { disposePipeline, loadModel, loadPipeline, pipelineImageSize, pipelineSteps, samplePipeline } from '../src/pipelines/pipeline.ts';
import { RunError, epochCheckpointPath, logPath, readRunConfig } from '../src/pipelines/run-dir.ts';
import { trainDiffusion, trainOrContinue, type TrainDiffusionOptions } from '../src/training/train-diffusion.ts';
import { loadCheckpoint } from '../src/io/checkpoint.ts';
import { UNet, unetContext } from '../src/models/unet.ts';
import { mseLoss } from '../src/nn/functional.ts';
import { Adam, ExponentialMovingAverage } from '../src/optim/index.ts';
import { BatchNorm2d, Conv2d, Sequential } from '../src/nn/layers.ts';
import { exportRun } from '../src/pipelines/export-run.ts';
import { Generator, dispose, manualSeed, memory, noGrad, rand, randn, tensor, tidy } from '../src/torch/index.ts';
import type { Tensor } from '../src/torch/tensor.ts';
import { assertShape, cosineSchedule, withNoLeaks } from './helpers.ts';

const root = mkdtempSync(join(tmpdir(), 'ssddpm-train-test-'));
after(() => rmSync(root, { recursive: true, force: true }));
let dirCount = 0;
const freshDir = (name: string) => join(root, `${++dirCount}-${name}`);

/** The first 400 MNIST training images (at least 16 of each class). */
const mnist: ImageSet = (() => {
  const all = loadMnist('train');
  const n = 400;
  return { ...all, images: all.images.slice(0, n * all.height * all.width), labels: all.labels.slice(0, n), count: n };
})();
assert.ok(Math.min(...classCounts(mnist)) >= 16, 'the subset holds ≥ 16 images per class');

const longs = (values: ArrayLike<number>) => tensor(BigInt64Array.from(Array.from(values), (v) => BigInt(v)));

function stepLosses(dir: string): { step: number; epoch: number; loss: number }[] {
  return readFileSync(logPath(dir), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { step?: number; epoch: number; loss: number })
    .filter((e): e is { step: number; epoch: number; loss: number } => e.step !== undefined);
}

const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/** A tiny run: 2 images per class, one step per epoch. */
function tinyRun(kind: ModelKind, extra: Partial<TrainDiffusionOptions> = {}): string {
  const out = freshDir(kind);
  trainDiffusion({ out, model: kind, images: mnist, training: { perClass: 2, batchSize: 20, epochs: 1, seed: 5 }, ...extra });
  return out;
}

test('trainDiffusion (small, 160 real MNIST images, 100 steps): the loss of the last 10 steps is ≥ 2.5× below the first 5', () => {
  const out = freshDir('loss');
  const result = trainDiffusion({ out, model: 'small', images: mnist, training: { perClass: 16, batchSize: 16, epochs: 10, seed: 1 } });
  assert.equal(result.steps, 100);
  const log = stepLosses(out);
  assert.deepEqual(log.map((e) => e.step), Array.from({ length: 100 }, (_, i) => i + 1));
  assert.deepEqual(log.map((e) => e.epoch), Array.from({ length: 100 }, (_, i) => Math.floor(i / 10) + 1));
  const losses = log.map((e) => e.loss);
  assert.ok(losses.every(Number.isFinite));
  const first = mean(losses.slice(0, 5));
  const last = mean(losses.slice(-10));
  assert.ok(first / last >= 2.5, `loss fell from ${first.toFixed(4)} to ${last.toFixed(4)} (×${(first / last).toFixed(2)})`);
  assert.equal(result.finalLoss, losses.at(-1));
  // One epoch summary line per epoch, and a checkpoint per epoch.
  const epochs = readFileSync(logPath(out), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { step?: number; meanLoss?: number }).filter((e) => e.step === undefined);
  assert.equal(epochs.length, 10);
  for (let e = 1; e <= 10; e++) assert.ok(existsSync(epochCheckpointPath(out, e)), `checkpoint of epoch ${e}`);
  // The run records the model and the pixel statistics of its training subset.
  const config = readRunConfig(out);
  assert.equal(config.model.kind, 'small');
  assert.equal(config.model.imageSize, 14);
  assert.ok(config.model.normalization.mean > 0.05 && config.model.normalization.mean < 0.25, `mean ${config.model.normalization.mean}`);
  assert.ok(config.model.normalization.std > 0.2 && config.model.normalization.std < 0.45, `std ${config.model.normalization.std}`);
});

test('the U-Net overfits 4 images at a fixed t and fixed noise with Adam: the loss falls ≥ 10× in 50 steps', () => {
  withNoLeaks(() => {
    manualSeed(0);
    const net = new UNet(presetModel('small').unet);
    const n = 4;
    const x0 = downscale(tensor(mnist.images.slice(0, n * 784), { shape: [n, 1, 28, 28] }).float().div_(255), 14).sub_(0.13).div_(0.3);
    const scheduler = new DDPMScheduler({ schedule: cosineSchedule(20) });
    const t = longs([10, 10, 10, 10]);
    const noise = randn([n, 1, 14, 14], { generator: new Generator(3) });
    const xt = scheduler.addNoise(x0, noise, t);
    const ctx = unetContext(t, 20, longs(mnist.labels.slice(0, n)), 10);
    const opt = new Adam(net.parameters(), { lr: 1e-3 });
    const losses: number[] = [];
    for (let i = 0; i < 50; i++) {
      losses.push(
        tidy(() => {
          const l = mseLoss(net.forward(xt, ctx), noise);
          opt.zeroGrad();
          l.backward();
          return l.item();
        }),
      );
      noGrad(() => tidy(() => opt.step()));
    }
    const last = mean(losses.slice(-5));
    assert.ok(losses[0]! / last >= 10, `loss ${losses[0]!.toFixed(4)} → ${last.toFixed(5)} (×${(losses[0]! / last).toFixed(1)})`);
    opt.dispose();
    scheduler.dispose();
    net.dispose();
  });
});

/** The model tensors of a checkpoint as name → bytes. */
function checkpointBytes(path: string): Map<string, Uint8Array> {
  const ckpt = loadCheckpoint(path);
  const out = new Map<string, Uint8Array>();
  for (const [name, t] of ckpt.tensors) {
    const d = t.data();
    out.set(name, new Uint8Array(d.buffer.slice(d.byteOffset, d.byteOffset + d.byteLength)));
    t.dispose();
  }
  for (const s of ckpt.optimizerState?.state.values() ?? []) for (const t of Object.values(s)) (t as Tensor).dispose();
  return out;
}

function assertSameWeights(a: string, b: string): void {
  const wa = checkpointBytes(a);
  const wb = checkpointBytes(b);
  assert.deepEqual([...wa.keys()], [...wb.keys()]);
  for (const [name, bytes] of wa) assert.ok(Buffer.from(bytes).equals(Buffer.from(wb.get(name)!)), `tensor ${name} differs`);
}

test('resume: 2 epochs then resumed to 3 equals an uninterrupted 3-epoch run bit for bit (also from a mid-epoch checkpoint)', () => {
  const training = { perClass: 4, batchSize: 16, seed: 9 }; // 40 images: 3 steps per epoch
  const whole = freshDir('whole');
  trainDiffusion({ out: whole, model: 'small', images: mnist, training: { ...training, epochs: 3 } });
  const split = freshDir('split');
  trainDiffusion({ out: split, model: 'small', images: mnist, training: { ...training, epochs: 2 } });
  assert.equal(readRunConfig(split).training.epochs, 2);
  const resumed = trainDiffusion({ out: split, resume: true, epochs: 3, images: mnist });
  assert.equal(resumed.steps, 9);
  assert.equal(readRunConfig(split).training.epochs, 3, 'the raised epoch count is recorded');
  assertSameWeights(epochCheckpointPath(whole, 3), epochCheckpointPath(split, 3));
  assert.deepEqual(stepLosses(split), stepLosses(whole), 'the same losses, step by step');

  // Interrupted at step 5 (mid-epoch 2) with a checkpoint every 2 steps: resumes from step 4.
  const broken = freshDir('interrupted');
  assert.throws(
    () =>
      trainDiffusion({
        out: broken,
        model: 'small',
        images: mnist,
        training: { ...training, epochs: 3, checkpointEvery: 2 },
        onProgress: (p) => {
          if (p.step === 5) throw new Error('interrupted');
        },
      }),
    /interrupted/,
  );
  assert.equal(stepLosses(broken).length, 5);
  trainDiffusion({ out: broken, resume: true, images: mnist });
  assertSameWeights(epochCheckpointPath(whole, 3), epochCheckpointPath(broken, 3));
  assert.deepEqual(stepLosses(broken), stepLosses(whole), 'the log reads as one run');
});

test('run-folder errors: --resume without a run, a new run over an existing one, bad training settings', () => {
  const empty = freshDir('empty');
  mkdirSync(empty);
  assert.throws(() => trainDiffusion({ out: empty, resume: true, images: mnist }), (e: unknown) => e instanceof RunError && /nothing to resume/.test(e.message));
  assert.throws(() => trainDiffusion({ out: freshDir('absent'), resume: true, images: mnist }), RunError);
  const run = tinyRun('small');
  const before = readFileSync(logPath(run), 'utf8');
  assert.throws(() => trainDiffusion({ out: run, model: 'small', images: mnist }), (e: unknown) => e instanceof RunError && /already holds a run/.test(e.message));
  assert.equal(readFileSync(logPath(run), 'utf8'), before, 'the existing run is untouched');
  for (const bad of [{ epochs: 0 }, { batchSize: -1 }, { lr: 0 }, { seed: 1.5 }, { perClass: 2.5 }]) {
    const out = freshDir('bad');
    assert.throws(() => trainDiffusion({ out, model: 'small', images: mnist, training: { perClass: 2, ...bad } }), RangeError, JSON.stringify(bad));
    assert.equal(existsSync(out), false, 'nothing is written');
  }
  assert.throws(() => trainDiffusion({ out: freshDir('too-many'), model: 'small', images: mnist, training: { perClass: 1000 } }), /fewer than/);
});

/** A narrow upscaler or baseline model with fresh weights (conditioning plumbing needs no training). */
function narrowModel(kind: ModelKind): DiffusionModel {
  const preset = presetModel(kind);
  return new DiffusionModel({ ...preset, unet: { ...preset.unet, baseChannels: 4 }, normalization: { mean: 0.13, std: 0.3 } });
}

test('the upscaler\'s conditioning reaches the network; predictNoise checks that conditioning matches the model', () => {
  withNoLeaks(() => {
    const up = narrowModel('upscaler');
    const base = narrowModel('baseline');
    up.unet.eval();
    const xt = randn([2, 1, 28, 28]);
    const t = longs([3, 7]);
    const labels = longs([1, 8]);
    const lowA = rand([2, 1, 14, 14], { generator: new Generator(1) });
    const lowB = rand([2, 1, 14, 14], { generator: new Generator(2) });
    const condA = up.conditioning(lowA);
    assertShape(condA, [2, 1, 28, 28]);
    const a = noGrad(() => up.predictNoise(xt, t, labels, condA)).data() as Float32Array;
    const a2 = noGrad(() => up.predictNoise(xt, t, labels, up.conditioning(lowA))).data() as Float32Array;
    const b = noGrad(() => up.predictNoise(xt, t, labels, up.conditioning(lowB))).data() as Float32Array;
    assert.deepEqual(a, a2);
    assert.ok(a.some((v, i) => Math.abs(v - b[i]!) > 1e-4), 'another conditioning image, another prediction');
    assert.throws(() => up.predictNoise(xt, t, labels), /needs a conditioning image/);
    assert.throws(() => base.predictNoise(xt, t, labels, condA), /takes no conditioning image/);
    assertShape(noGrad(() => base.predictNoise(xt, t, labels)), [2, 1, 28, 28]);
    up.dispose();
    base.dispose();
  });
});

test('pipelines: loadPipeline checks the chain of runs; samplePipeline shapes for one model, upscaled (14→28) and cascade', () => {
  const small = tinyRun('small');
  const upscaler = tinyRun('upscaler');
  const baseline = tinyRun('baseline');
  assert.equal(readRunConfig(upscaler).model.lowResSize, 14);
  withNoLeaks(() => {
    const before = memory().numTensors;
    const refused: [Parameters<typeof loadPipeline>[0], RegExp][] = [
      [{ runs: [small, baseline] }, /is a baseline model, not an upscaler/],
      [{ runs: [upscaler, upscaler] }, /is an upscaler; the cascade starts from a small model/],
      [{ runs: [baseline, upscaler] }, /expects 14×14 inputs but .* makes 28×28/],
      [{ runs: [upscaler] }, /is an upscaler: sample it in a cascade/],
      [{ runs: [] }, /either one run folder or a cascade/],
      [{ runs: [small, upscaler], upscale: true }, /upscaling .* is for a single small model/],
      [{ runs: [freshDir('nothing')] }, /no such run folder/],
    ];
    for (const [spec, message] of refused) assert.throws(() => loadPipeline(spec), (e: unknown) => e instanceof RunError && message.test(e.message), message.source);
    assert.equal(memory().numTensors, before, 'refused pipelines release their models');

    const labels = [0, 4, 9];
    const cases: [Parameters<typeof loadPipeline>[0], string, number, number][] = [
      [{ runs: [baseline] }, 'baseline', 28, 30],
      [{ runs: [small] }, 'small', 14, 20],
      [{ runs: [small], upscale: true }, 'small', 28, 20],
      [{ runs: [small, upscaler] }, 'small,upscaler', 28, 30],
    ];
    for (const [spec, kind, size, steps] of cases) {
      const p = loadPipeline(spec);
      assert.equal(p.models.map((m) => m.config.kind).join(','), kind);
      assert.equal(pipelineImageSize(p), size);
      assert.equal(pipelineSteps(p), steps);
      let calls = 0;
      const x = samplePipeline(p, labels, { generator: new Generator(0), onStep: () => calls++ });
      assertShape(x, [3, 1, size, size], `${kind} ${size}`);
      assert.equal(calls, steps, `${kind}: one progress call per denoising step`);
      const v = x.data() as Float32Array;
      assert.ok(v.every((y) => y >= 0 && y <= 1), `${kind}: clamped to [0, 1]`);
      disposePipeline(p);
    }
    // The model loads in eval mode with the checkpoint's weights.
    const m = loadModel(small);
    assert.equal(m.unet.training, false);
    assert.equal(m.config.kind, 'small');
    m.dispose();
  });
});

test('generateSet balances labels (25 → counts within 1) and writeGeneratedSet writes readable IDX files, atomically', () => {
  const small = tinyRun('small');
  const p = loadPipeline({ runs: [small] });
  try {
    assert.deepEqual(balancedLabels(12), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]);
    const progress: number[] = [];
    const set = generateSet(p, { count: 25, seed: 3, batchSize: 10, onProgress: (d) => progress.push(d) });
    assert.deepEqual(progress, [10, 20, 25]);
    assert.equal(set.count, 25);
    assert.equal(set.height, 14);
    assert.equal(set.images.length, 25 * 14 * 14);
    const counts = classCounts(set);
    assert.equal(counts.reduce((a, b) => a + b, 0), 25);
    assert.ok(Math.max(...counts) - Math.min(...counts) <= 1, `label counts ${counts.join(',')}`);
    // The same seed and batch size give the same set; another seed another one.
    assert.deepEqual(generateSet(p, { count: 25, seed: 3, batchSize: 10 }).images, set.images);
    assert.notDeepEqual(generateSet(p, { count: 25, seed: 4, batchSize: 10 }).images, set.images);
    assert.throws(() => generateSet(p, { count: 0, seed: 0 }), RangeError);
    // A barely trained model leaves the data range when sampled plainly; x̂0 clipping ends inside it by construction.
    assert.ok(set.offRange.pixels > 0 && set.offRange.pixels <= 1 && set.offRange.samples <= 1, JSON.stringify(set.offRange));
    assert.deepEqual(generateSet(p, { count: 10, seed: 3, clip: true }).offRange, { pixels: 0, samples: 0 });

    const parent = freshDir('sets');
    mkdirSync(parent);
    const out = join(parent, 'gen');
    writeGeneratedSet(out, set, { run: small, seed: 3 });
    const back = readImageSet(join(out, 'train-images-idx3-ubyte'), join(out, 'train-labels-idx1-ubyte'));
    assert.equal(back.count, 25);
    assert.equal(back.height, 14);
    assert.deepEqual(back.images, set.images);
    assert.deepEqual(back.labels, set.labels);
    const info = JSON.parse(readFileSync(join(out, 'generated.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(info.count, 25);
    assert.equal(info.seed, 3);
    assert.deepEqual(info.offRange, set.offRange);
    assert.deepEqual(readOffRange([out, out]), set.offRange);
    assert.equal(readOffRange([out, parent]), undefined, 'a set without the measurement gives none');
    // The dataset the set records (generate writes its models'), which cas and fidelity score against by default.
    assert.equal(generatedSetDataset(out), undefined, 'none recorded');
    const fashion = join(parent, 'fashion');
    writeGeneratedSet(fashion, set, { dataset: 'fashion-mnist' });
    assert.equal(generatedSetDataset(fashion), 'fashion-mnist');
    rmSync(fashion, { recursive: true });
    assert.deepEqual(readdirSync(parent), ['gen'], 'no temporary folder is left');
    assert.throws(() => writeGeneratedSet(out, set, {}), (e: unknown) => e instanceof DataError && /already exists/.test(e.message));
    assert.deepEqual(readdirSync(parent), ['gen']);
    // A set that cannot be written (label out of range) leaves nothing behind.
    assert.throws(() => writeGeneratedSet(join(parent, 'bad'), { ...set, labels: set.labels.map(() => 12) }, {}));
    assert.deepEqual(readdirSync(parent), ['gen'], 'a failed write leaves neither the folder nor its temporary');
  } finally {
    disposePipeline(p);
  }
});

test('trainOrContinue: a run stopped inside its first epoch starts over, a run with a checkpoint continues to the length asked', () => {
  const training = { perClass: 2, batchSize: 20, epochs: 1, seed: 5 };
  const out = tinyRun('small');
  rmSync(join(out, 'checkpoints'), { recursive: true });
  assert.throws(() => trainDiffusion({ out, resume: true }), RunError, 'the trainer alone cannot resume it');
  const fresh = trainOrContinue({ out, model: 'small', images: mnist, training });
  assert.equal(fresh.steps, 1);
  assert.ok(existsSync(epochCheckpointPath(out, 1)));
  assert.equal(stepLosses(out).length, 1, 'the stopped attempt left nothing in the log');
  const longer = trainOrContinue({ out, model: 'small', images: mnist, training: { ...training, epochs: 2 } });
  assert.equal(longer.steps, 2, 'two epochs of one step each');
  assert.equal(readRunConfig(out).training.epochs, 2);
  assert.ok(existsSync(epochCheckpointPath(out, 2)));
});

test('a training step leaves no tensors behind', () => {
  const before = memory().numTensors;
  tinyRun('upscaler');
  assert.equal(memory().numTensors, before);
});

test('EMA: the average moves by (1 − decay) toward the weights, buffers follow; a run with --ema saves it with its own batch-norm statistics, resumes bit for bit and samples from the average', () => {
  withNoLeaks(() => {
    const net = new Sequential(new Conv2d(1, 2, 1), new BatchNorm2d(2));
    const w0 = net.stateDict().get('0.weight')!.toArray();
    const ema = new ExponentialMovingAverage(net, 0.75);
    noGrad(() => {
      net.stateDict().get('0.weight')!.fill_(2);
      net.stateDict().get('1.running_mean')!.fill_(5);
    });
    ema.update(net);
    const avg = ema.stateDict();
    avg.get('0.weight')!.toArray().forEach((v, i) => assert.ok(Math.abs(v - (0.75 * w0[i]! + 0.25 * 2)) < 1e-6, `weight ${i}: ${v}`));
    assert.deepEqual(avg.get('1.running_mean')!.toArray(), [5, 5]);
    assert.throws(() => new ExponentialMovingAverage(net, 1), /decay/);
    ema.dispose();
    net.dispose();
  });

  const training = { perClass: 4, batchSize: 16, seed: 3, ema: 0.9 };
  const whole = freshDir('ema-whole');
  trainDiffusion({ out: whole, model: 'small', images: mnist, training: { ...training, epochs: 3 } });
  const split = freshDir('ema-split');
  trainDiffusion({ out: split, model: 'small', images: mnist, training: { ...training, epochs: 2 } });
  trainDiffusion({ out: split, resume: true, epochs: 3, images: mnist });
  const [a, b] = [whole, split].map((d) => loadCheckpoint(epochCheckpointPath(d, 3)));
  assert.ok(a!.ema !== undefined && a!.ema.size === a!.tensors.size, 'the checkpoint holds the average of every tensor');
  for (const [name, t] of a!.ema!) assert.deepEqual(t.toArray(), b!.ema!.get(name)!.toArray(), `EMA ${name} after resume`);
  const differs = [...a!.ema!].some(([name, t]) => t.toArray().some((v, i) => v !== a!.tensors.get(name)!.toArray()[i]));
  assert.ok(differs, 'the average is not the last iterate');
  // Keeping the average leaves the training as it was, bit for bit (the protocol trains such twins once).
  const { ema: _, ...withoutAverage } = training;
  const plainDir = freshDir('ema-none');
  trainDiffusion({ out: plainDir, model: 'small', images: mnist, training: { ...withoutAverage, epochs: 3 } });
  const plain = loadCheckpoint(epochCheckpointPath(plainDir, 3));
  assert.equal(plain.ema, undefined);
  for (const [name, t] of a!.tensors) assert.deepEqual(t.toArray(), plain.tensors.get(name)!.toArray(), `${name} with and without the average`);
  // Its batch-norm statistics were measured on the averaged weights, over all 3 batches of the 40 images.
  const bn = 'enc0.conv.bn1';
  assert.deepEqual(a!.tensors.get(`${bn}.num_batches_tracked`)!.toArray(), [9], 'the model saw 3 epochs × 3 batches');
  assert.deepEqual(a!.ema!.get(`${bn}.num_batches_tracked`)!.toArray(), [3], 'the average was calibrated on 3 batches');
  assert.notDeepEqual(a!.ema!.get(`${bn}.running_mean`)!.toArray(), a!.tensors.get(`${bn}.running_mean`)!.toArray());
  // Sampling loads the average by default, the trained weights with ema: false; an export keeps both.
  const averaged = loadModel(whole);
  const raw = loadModel(whole, { ema: false });
  const name = 'enc0.conv.conv1.weight';
  assert.deepEqual(averaged.unet.stateDict().get(name)!.toArray(), a!.ema!.get(name)!.toArray());
  assert.deepEqual(raw.unet.stateDict().get(name)!.toArray(), a!.tensors.get(name)!.toArray());
  const exported = freshDir('ema-export');
  exportRun(whole, exported);
  const e = loadCheckpoint(epochCheckpointPath(exported, 3));
  assert.deepEqual(e.ema!.get(name)!.toArray(), a!.ema!.get(name)!.toArray());
  assert.equal(e.optimizerState, undefined);
  for (const c of [a!, b!, e, plain]) dispose([c.tensors, c.ema, [...(c.optimizerState?.state.values() ?? [])]]);
  averaged.dispose();
  raw.dispose();
});

test('conditioning augmentation: an upscaler trains with it, its run records the level input, a cascade samples with a chosen level', () => {
  const dir = freshDir('cond-aug');
  trainDiffusion({ out: dir, model: 'upscaler', conditioningNoise: 0.5, images: mnist, training: { perClass: 2, batchSize: 10, epochs: 1 } });
  const config = readRunConfig(dir);
  assert.equal(config.model.conditioningNoise, 0.5);
  assert.equal(config.model.unet.extraContext, 1);
  const small = tinyRun('small');
  withNoLeaks(() => {
    const p = loadPipeline({ runs: [small, dir] });
    const x = samplePipeline(p, [3, 5], { generator: new Generator(1), conditioningLevel: 0.3 });
    assert.deepEqual(x.shape, [2, 1, 28, 28]);
    assert.ok(x.toArray().every((v) => v >= 0 && v <= 1));
    disposePipeline(p);
  });
  assert.throws(() => trainDiffusion({ out: freshDir('cond-aug-small'), model: 'small', conditioningNoise: 0.5, images: mnist }), /upscaler/);
});

test('run folders of version 1 (numStates, cosinePower) read as version 2 (schedule), and sample alike', () => {
  const dir = tinyRun('small');
  const v2 = readRunConfig(dir);
  const old = freshDir('v1-run');
  cpSync(dir, old, { recursive: true });
  const { schedule, ...model } = v2.model;
  writeFileSync(join(old, 'config.json'), JSON.stringify({ ...v2, version: 1, model: { ...model, numStates: schedule.numTimesteps, cosinePower: schedule.power } }));
  assert.deepEqual(readRunConfig(old), v2);
  const sample = (run: string) => {
    const p = loadPipeline({ runs: [run] });
    try {
      return tidy(() => samplePipeline(p, [1, 7], { generator: new Generator(4) }).toArray());
    } finally {
      disposePipeline(p);
    }
  };
  assert.deepEqual(sample(old), sample(dir));
  writeFileSync(join(old, 'config.json'), JSON.stringify({ ...v2, version: 3 }));
  assert.throws(() => readRunConfig(old), /version 3 is newer than this ssddpm understands/);
});
