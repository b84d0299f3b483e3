import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../src/torch/index.ts';
import * as F from '../src/nn/functional.ts';
import { BatchNorm2d, Conv2d, Flatten, GELU, Linear, MaxPool2d, Sequential } from '../src/nn/index.ts';
import './helpers.ts'; // single intra-op thread for tiny tensors

test('a small conv net [8, 1, 8, 8] trained 300 steps in tidy keeps the live-tensor count constant and RSS flat', () => {
  const start = torch.memory().numTensors;
  const g = new torch.Generator(17);
  const net = new Sequential(
    new Conv2d(1, 4, 3, { padding: 1, generator: g }),
    new BatchNorm2d(4),
    new GELU(),
    new MaxPool2d(2),
    new Flatten(),
    new Linear(4 * 4 * 4, 3, { generator: g }),
  );
  const x = torch.keep(torch.randn([8, 1, 8, 8], { generator: g }));
  const y = torch.keep(torch.randint(0, 3, [8], { generator: g }));
  const params = net.parameters();
  const afterSetup = torch.memory().numTensors;
  assert.equal(afterSetup, start + params.length + net.buffers().length + 2);

  const lr = 0.1;
  const counts: number[] = [];
  const losses: number[] = [];
  let rssAfterWarmup = 0;
  for (let step = 0; step < 300; step++) {
    torch.tidy(() => {
      const logits = net.forward(x);
      const loss = F.crossEntropy(logits, y);
      loss.backward();
      torch.noGrad(() => {
        for (const p of params) p.sub_(p.grad!, lr);
      });
      // Alternate between dropping gradients and zeroing them in place.
      net.zeroGrad(step % 2 === 0);
      losses.push(loss.item());
    });
    counts.push(torch.memory().numTensors);
    if (step === 50) rssAfterWarmup = process.memoryUsage().rss;
  }
  const rssGrowth = process.memoryUsage().rss - rssAfterWarmup;

  // The strict check: every step ends with exactly the tensors the model and data own.
  assert.ok(counts.every((c) => c === counts[0]), `live tensors drifted: first ${counts[0]}, max ${Math.max(...counts)}, last ${counts.at(-1)}`);
  assert.equal(counts[0], afterSetup);
  assert.equal(torch.memory().scopeDepth, 0);
  // RSS is noisy; only a leak of native buffers would grow it this much.
  assert.ok(rssGrowth < 50 * 2 ** 20, `RSS grew by ${(rssGrowth / 2 ** 20).toFixed(1)} MB after warm-up`);
  // And the loop really trained.
  assert.ok(losses.every(Number.isFinite));
  assert.ok(losses.at(-1)! < 0.5 * losses[0]!, `loss went from ${losses[0]} to ${losses.at(-1)}`);
  assert.equal((net.layers[1] as BatchNorm2d).numBatchesTracked!.item(), 300);

  net.dispose();
  x.dispose();
  y.dispose();
  assert.equal(torch.memory().numTensors, start);
});
