// CUDA graphs: without a CUDA build they are refused with a clear message; on a GPU a graphed function, a
// graphed training run and graphed sampling give what the eager paths give.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ImageSet } from '../src/data/image-set.ts';
import { loadCheckpoint } from '../src/io/checkpoint.ts';
import { loadModel } from '../src/pipelines/pipeline.ts';
import { epochCheckpointPath, logPath } from '../src/pipelines/run-dir.ts';
import { trainDiffusion } from '../src/training/train-diffusion.ts';
import { CUDAGraph, GraphedFunction, Generator, cuda, cudaGraphsAvailable, randn, tidy } from '../src/torch/index.ts';
import type { Tensor } from '../src/torch/tensor.ts';
import { Rng } from './helpers.ts';

const onGpu = cuda.isAvailable() && cudaGraphsAvailable();
const gpuOnly = onGpu ? false : 'needs a GPU and an addon built against a CUDA libtorch (scripts/gpu-bench.sh)';
const device = 'cuda';

const root = mkdtempSync(join(tmpdir(), 'ssddpm-graph-test-'));
after(() => rmSync(root, { recursive: true, force: true }));

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).reduce((m, v, i) => Math.max(m, Math.abs(v - (b[i] as number))), 0);

test('without CUDA graphs in the addon, a graph is refused with the reason', { skip: cudaGraphsAvailable() ? 'this addon has CUDA graphs' : false }, () => {
  assert.throws(() => new CUDAGraph(), /CUDA graphs need the addon built against a CUDA libtorch/);
});

test('a graphed function replays the eager result for new inputs', { skip: gpuOnly }, () => {
  const f = ([x, y]: readonly Tensor[]) => x!.mul(y!).add_(1).mul_(x!);
  const g = new GraphedFunction(f, { device, warmup: 1 });
  try {
    for (let i = 0; i < 4; i++) {
      tidy(() => {
        const x = randn([64, 32], { device });
        const y = randn([64, 32], { device });
        const got = g.call([x, y])[0]!.toArray();
        assert.ok(maxAbsDiff(got, f([x, y]).toArray()) < 1e-6, `call ${i + 1}`);
      });
    }
    assert.equal(g.replaying, true);
    assert.throws(() => tidy(() => g.call([randn([2, 2], { device }), randn([2, 2], { device })])), /captured with \[64, 32\]/);
  } finally {
    g.dispose();
  }
});

/** 30 random 14×14 images, 3 per class. */
function images(): ImageSet {
  const rng = new Rng(7);
  const count = 30;
  return {
    images: Uint8Array.from({ length: count * 14 * 14 }, () => Math.floor(rng.next() * 256)),
    labels: Uint8Array.from({ length: count }, (_, i) => i % 10),
    count,
    height: 14,
    width: 14,
    numClasses: 10,
  };
}

test('training with CUDA graphs takes the eager run\'s steps, partial batches included, and samples as eager sampling does', { skip: gpuOnly }, () => {
  // Batches of 8 from 30 images: three full ones (two eager warm-ups, then the capture) and a partial one per epoch.
  const run = (name: string, cudaGraphs: boolean) => {
    const out = join(root, name);
    trainDiffusion({ out, model: 'small', images: images(), device, cudaGraphs, training: { perClass: 3, batchSize: 8, epochs: 2, seed: 11 } });
    return out;
  };
  const [graphed, eager] = [run('graphed', true), run('eager', false)];
  const losses = (dir: string) => readFileSync(logPath(dir), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { loss?: number }).filter((e) => e.loss !== undefined).map((e) => e.loss!);
  assert.equal(losses(graphed).length, 8);
  assert.ok(maxAbsDiff(losses(graphed), losses(eager)) < 1e-4, `losses ${losses(graphed)} vs ${losses(eager)}`);
  const [a, b] = [graphed, eager].map((d) => loadCheckpoint(epochCheckpointPath(d, 2)));
  for (const [name, t] of a!.tensors) assert.ok(maxAbsDiff(t.toArray(), b!.tensors.get(name)!.toArray()) < 1e-4, name);
  // Every parameter moved: the captured backward's gradients reached the optimizer.
  const first = loadCheckpoint(epochCheckpointPath(graphed, 1));
  assert.ok(maxAbsDiff(first.tensors.get('out.weight')!.toArray(), a!.tensors.get('out.weight')!.toArray()) > 0, 'epoch 2 changed the weights');

  const model = loadModel(graphed, { device });
  try {
    const labels = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
    const sample = (cudaGraphs: boolean) => tidy(() => model.sample(labels, { generator: new Generator(3, device), cudaGraphs }).sample.toArray());
    assert.ok(maxAbsDiff(sample(true), sample(false)) < 1e-4, 'graphed sampling matches eager sampling');
  } finally {
    model.dispose();
  }
});

// Last: a failed capture must leave the device usable, but if it did not, the tests above are not affected.
test('a function that reads back to the host cannot be captured: it runs eagerly, and says why once', { skip: gpuOnly }, () => {
  const reasons: string[] = [];
  const h = new GraphedFunction(([x]) => x!.mul(x!.sum().item()), { device, warmup: 0, onFallback: (r) => reasons.push(r) });
  try {
    tidy(() => {
      const x = randn([8], { device });
      assert.ok(maxAbsDiff(h.call([x])[0]!.toArray(), x.mul(x.sum().item()).toArray()) < 1e-5);
      h.call([x]);
    });
    assert.equal(reasons.length, 1);
    assert.match(h.fallbackReason!, /could not be captured as a CUDA graph/);
    assert.equal(h.replaying, false);
  } finally {
    h.dispose();
  }
  // The device still works.
  tidy(() => assert.equal(randn([4], { device }).mul(0).sum().item(), 0));
});
