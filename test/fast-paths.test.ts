// Every fast path computes what the plain one computes: the inference form of the U-Net (both memory layouts),
// sampling through it, and channels-last training of the U-Net and the CAS classifier.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DiffusionModel } from '../src/pipelines/diffusion-model.ts';
import { presetModel } from '../src/pipelines/model-config.ts';
import { Classifier } from '../src/models/classifier.ts';
import { InferenceUNet } from '../src/models/unet-inference.ts';
import { crossEntropy } from '../src/nn/functional.ts';
import { BatchNorm2d } from '../src/nn/layers.ts';
import type { Module } from '../src/nn/module.ts';
import { UNet, unetContext, type UNetConfig } from '../src/models/unet.ts';
import { Generator, manualSeed } from '../src/torch/generator.ts';
import { inferenceMode, noGrad } from '../src/torch/grad-mode.ts';
import { int64, rand, randn, tensor } from '../src/torch/index.ts';
import type { Tensor } from '../src/torch/tensor.ts';
import { withNoLeaks } from './helpers.ts';

/** Largest |a − b| relative to the largest |b| (at least 1). */
function relativeError(a: Tensor, b: Tensor): number {
  const xs = a.toArray();
  const ys = b.toArray();
  assert.equal(xs.length, ys.length);
  let err = 0;
  let scale = 1;
  for (let i = 0; i < xs.length; i++) {
    err = Math.max(err, Math.abs(xs[i]! - ys[i]!));
    scale = Math.max(scale, Math.abs(ys[i]!));
  }
  return err / scale;
}

/**
 * Gives every batch norm in `module` random affine parameters (γ uniform in [0.5, 1.5], β normal · 0.3) and random
 * running statistics (mean normal, variance uniform in [0.5, 2]), so a fold that dropped any of the four would
 * change the output by tens of percent. Returns the number of batch norms.
 */
function randomizeBatchNorms(module: Module): number {
  const norms = module.namedModules().map(([, m]) => m).filter((m): m is BatchNorm2d => m instanceof BatchNorm2d);
  noGrad(() => {
    for (const bn of norms) {
      const c = [bn.numFeatures];
      bn.weight!.copy_(rand(c).add_(0.5));
      bn.bias!.copy_(randn(c).mul_(0.3));
      bn.runningMean!.copy_(randn(c));
      bn.runningVar!.copy_(rand(c).mul_(1.5).add_(0.5));
    }
  });
  return norms.length;
}

/** A U-Net whose batch norms hold non-trivial affine parameters and running statistics and whose output is not near zero. */
function trainedLooking(config: UNetConfig, size: number): UNet {
  const unet = new UNet(config);
  unet.train();
  noGrad(() => {
    for (let i = 0; i < 3; i++) {
      const x = randn([6, config.inChannels, size, size]).mul(2).add(0.5);
      unet.forward(x, unetContext(int64([0, 3, 5, 9, 1, 2]), 10, int64([1, 2, 3, 4, 5, 6]), config.numClasses)).dispose();
    }
    unet.out.weight.mul_(40);
  });
  // Two batch norms per encoder and decoder block.
  assert.equal(randomizeBatchNorms(unet), 2 * (unet.encoders.length + unet.decoders.length));
  return unet.eval();
}

for (const [name, config, size] of [
  ['baseline 28×28', { inChannels: 1, outChannels: 1, baseChannels: 8, depth: 3, numClasses: 10 }, 28],
  ['upscaler input (2 channels)', { inChannels: 2, outChannels: 1, baseChannels: 8, depth: 3, numClasses: 10 }, 28],
  ['14×14 (a 3×3 level, so the decoder resizes)', { inChannels: 1, outChannels: 1, baseChannels: 4, depth: 3, numClasses: 10 }, 14],
] as const) {
  test(`InferenceUNet.forward equals UNet.forward within 1e-5, dense and channels-last: ${name}`, () => {
    withNoLeaks(() => {
      manualSeed(3);
      const unet = trainedLooking(config, size);
      const x = randn([3, config.inChannels, size, size]);
      const ctx = unetContext(int64([0, 4, 9]), 10, int64([7, 0, 3]), 10);
      inferenceMode(() => {
        const reference = unet.forward(x, ctx);
        for (const channelsLast of [false, true]) {
          const net = new InferenceUNet(unet, { channelsLast });
          const y = net.forward(x, net.modulation(ctx));
          assert.deepEqual(y.shape, reference.shape);
          const err = relativeError(y, reference);
          assert.ok(err < 1e-5, `channelsLast=${channelsLast}: relative error ${err}`);
          // Rows of a modulation select the matching samples.
          const one = net.forward(x.narrow(0, 1, 1), InferenceUNet.rows(net.modulation(ctx), 1, 1));
          assert.ok(relativeError(one, reference.narrow(0, 1, 1)) < 1e-5);
          net.dispose();
        }
      });
      unet.dispose();
    });
  });
}

test('InferenceUNet copies the weights it folds: a later change to the U-Net does not reach it', () => {
  withNoLeaks(() => {
    const config = { inChannels: 1, outChannels: 1, baseChannels: 4, depth: 2, numClasses: 10 };
    const unet = trainedLooking(config, 8);
    const x = randn([2, 1, 8, 8]);
    const ctx = unetContext(int64([1, 2]), 10, int64([3, 4]), 10);
    inferenceMode(() => {
      const net = new InferenceUNet(unet);
      const before = net.forward(x, net.modulation(ctx));
      noGrad(() => unet.out.weight.mul_(3));
      const after = net.forward(x, net.modulation(ctx));
      assert.equal(relativeError(after, before), 0);
      net.dispose();
    });
    unet.dispose();
  });
});

test('DiffusionModel.sample through the inference form gives the plain path\'s samples (baseline and cascade upscaler)', () => {
  withNoLeaks(() => {
    manualSeed(5);
    for (const kind of ['small', 'upscaler'] as const) {
      const preset = presetModel(kind);
      const model = new DiffusionModel({ ...preset, unet: { ...preset.unet, baseChannels: 4 }, normalization: { mean: 0.13, std: 0.3 } });
      noGrad(() => model.unet.out.weight.mul_(20));
      assert.ok(randomizeBatchNorms(model.unet) > 0);
      const lowRes = kind === 'upscaler' ? rand([3, 1, 14, 14]) : undefined;
      const labels = [2, 7, 7];
      const fast = model.sample(labels, { generator: new Generator(9), lowRes }).sample;
      const plain = model.sample(labels, { generator: new Generator(9), lowRes, plainForward: true }).sample;
      const err = relativeError(fast, plain);
      assert.ok(err < 1e-5, `${kind}: relative error ${err}`);
      model.dispose();
    }
  });
});

test('UNet channels-last: the same outputs (1e-5) and gradients (1e-4: sums over the batch round differently) as contiguous', () => {
  withNoLeaks(() => {
    manualSeed(8);
    const config = { inChannels: 2, outChannels: 1, baseChannels: 8, depth: 3, numClasses: 10 };
    const dense = trainedLooking(config, 14).train();
    const fast = new UNet(config).train();
    fast.loadStateDict(dense.stateDict());
    fast.setMemoryFormat('channels-last');
    assert.equal(fast.memoryFormat, 'channels-last');
    const x = randn([4, 2, 14, 14]);
    const ctx = unetContext(int64([0, 4, 9, 2]), 10, int64([7, 0, 3, 3]), 10);
    const run = (net: UNet) => {
      const input = x.detach().requiresGrad_(true);
      const y = net.forward(input, ctx);
      y.square().sum().backward();
      return { y, dx: input.grad!, grads: net.parameters().map((p) => p.grad!) };
    };
    const a = run(dense);
    const b = run(fast);
    assert.ok(relativeError(b.y, a.y) < 1e-5, `outputs: ${relativeError(b.y, a.y)}`);
    assert.ok(relativeError(b.dx, a.dx) < 1e-4, `input gradient: ${relativeError(b.dx, a.dx)}`);
    a.grads.forEach((g, i) => assert.ok(relativeError(b.grads[i]!, g) < 1e-4, `gradient of parameter ${i}: ${relativeError(b.grads[i]!, g)}`));
    // The running statistics batch norm updated in training mode agree too.
    dense.buffers().forEach((buf, i) => assert.ok(relativeError(fast.buffers()[i]!.float(), buf.float()) < 1e-5));
    dense.dispose();
    fast.dispose();
  });
});

test('Classifier channels-last: the same logits (1e-5) and gradients (1e-4) as contiguous', () => {
  withNoLeaks(() => {
    manualSeed(4);
    const dense = new Classifier();
    const fast = new Classifier();
    fast.loadStateDict(dense.stateDict());
    fast.setMemoryFormat('channels-last');
    const x = randn([5, 1, 28, 28]);
    const y = int64([0, 1, 2, 3, 9]);
    const run = (net: Classifier) => {
      const logits = net.forward(x);
      crossEntropy(logits, y).backward();
      return { logits, grads: net.parameters().map((p) => p.grad!) };
    };
    const a = run(dense);
    const b = run(fast);
    assert.ok(relativeError(b.logits, a.logits) < 1e-5, `logits: ${relativeError(b.logits, a.logits)}`);
    a.grads.forEach((g, i) => assert.ok(relativeError(b.grads[i]!, g) < 1e-4, `gradient of parameter ${i}: ${relativeError(b.grads[i]!, g)}`));
    dense.dispose();
    fast.dispose();
  });
});

test('an upscaler trained with conditioning augmentation: the level reaches the network, and the inference form agrees with the plain path', () => {
  withNoLeaks(() => {
    manualSeed(12);
    const preset = presetModel('upscaler');
    const model = new DiffusionModel({ ...preset, unet: { ...preset.unet, baseChannels: 4, extraContext: 1 }, conditioningNoise: 0.5, normalization: { mean: 0.13, std: 0.3 } });
    noGrad(() => model.unet.out.weight.mul_(20));
    assert.ok(randomizeBatchNorms(model.unet) > 0);
    const lowRes = rand([2, 1, 14, 14]);
    const labels = [4, 8];
    for (const conditioningLevel of [0, 0.6]) {
      const fast = model.sample(labels, { generator: new Generator(2), lowRes, conditioningLevel }).sample;
      const plain = model.sample(labels, { generator: new Generator(2), lowRes, conditioningLevel, plainForward: true }).sample;
      assert.ok(relativeError(fast, plain) < 1e-5, `level ${conditioningLevel}: ${relativeError(fast, plain)}`);
    }
    // The level is a real input: the same noise and conditioning with another level give another prediction.
    const xt = randn([2, 1, 28, 28]);
    const cond = model.conditioning(lowRes);
    const t = int64([3, 3]);
    const y = int64(labels);
    const a = model.predictNoise(xt, t, y, cond, tensor([0, 0]));
    const b = model.predictNoise(xt, t, y, cond, tensor([1, 1]));
    assert.ok(relativeError(a, b) > 1e-4);
    assert.throws(() => model.predictNoise(xt, t, y, cond), /noise level/);
    model.dispose();
    const plainUpscaler = new DiffusionModel({ ...preset, normalization: { mean: 0.13, std: 0.3 } });
    assert.throws(() => plainUpscaler.sample([1], { lowRes: rand([1, 1, 14, 14]), conditioningLevel: 0.5 }), /conditioning augmentation/);
    plainUpscaler.dispose();
  });
});
