// src/distributed in one process (a world of one rank): collectives in place, bytes broadcast, the differentiable
// all-reduce, gradient buckets, c10d errors as JavaScript errors, and synchronised batch norm giving the U-Net the
// gradients of libtorch's batch norm (channels-last activations included).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { DistributedError } from '../src/distributed/environment.ts';
import { GradientBuckets } from '../src/distributed/gradient-buckets.ts';
import { initProcessGroup } from '../src/distributed/rendezvous.ts';
import { convertSyncBatchNorm } from '../src/distributed/sync-batch-norm.ts';
import { mseLoss } from '../src/nn/functional.ts';
import { DiffusionModel } from '../src/pipelines/diffusion-model.ts';
import { presetModel } from '../src/pipelines/model-config.ts';
import * as torch from '../src/torch/index.ts';
import { assertClose, withNoLeaks } from './helpers.ts';

const group = initProcessGroup({ rank: 0, worldSize: 1, localRank: 0, masterAddr: '127.0.0.1', masterPort: 0, agentStore: false }, 2000);
after(() => {
  group.destroy();
  group.store.close();
});

test('collectives work in place on tensors of any shapes and dtypes, and bytes go through a broadcast', () => {
  withNoLeaks(() => {
    const a = torch.tensor([[1, 2, 3], [4, 5, 6]]);
    const b = torch.tensor([7, 8], { dtype: 'int64' });
    const c = torch.tensor([1.5, -2]).reshape([2, 1]).expand([2, 3]).contiguous('contiguous').transpose(0, 1);
    group.allReduce([a, b, c]);
    assert.deepEqual(a.toArray(), [1, 2, 3, 4, 5, 6]);
    assert.deepEqual(b.toArray(), [7, 8]);
    assert.deepEqual(c.toArray(), [1.5, -2, 1.5, -2, 1.5, -2]);
    group.allReduce([a], 'max');
    group.broadcast([a, b]);
    group.barrier();
    assert.deepEqual(a.toArray(), [1, 2, 3, 4, 5, 6]);
  });
  const bytes = new TextEncoder().encode('{"config":"é"}');
  assert.deepEqual(group.broadcastBytes(bytes), bytes);
  assert.throws(() => group.broadcastBytes(undefined), /the root rank 0, and only it, gives the bytes/);
});

test('the differentiable all-reduce passes the gradient back (summed over ranks)', () => {
  withNoLeaks(() => {
    const x = torch.tensor([1, 2, 3]).requiresGrad_();
    const y = group.allReduceSumWithGrad(x);
    y.mul(y).sum().backward();
    assert.deepEqual(x.grad!.toArray(), [2, 4, 6]);
    x.grad = null;
  });
});

test('gradient buckets hold the parameters in reverse order within the size cap, and a missing gradient counts as zero', () => {
  withNoLeaks(() => {
    const params = [torch.keep(torch.ones([10]).requiresGrad_()), torch.keep(torch.ones([2, 10]).requiresGrad_()), torch.keep(torch.ones([30]).requiresGrad_())];
    const buckets = new GradientBuckets(group, params, 1, 25);
    assert.equal(buckets.bucketCount, 3);
    params[0]!.grad = torch.full([10], 3);
    params[2]!.grad = torch.full([30], -1);
    assert.deepEqual(buckets.sum([0.25]), [0.25]);
    assert.deepEqual(params[0]!.grad!.toArray(), new Array(10).fill(3));
    assert.deepEqual(params[1]!.grad!.toArray(), new Array(20).fill(0));
    assert.throws(() => buckets.sum([]), /expected 1 extra values, got 0/);
    buckets.dispose();
    for (const p of params) {
      p.grad = null;
      p.dispose();
    }
  });
});

test('c10d failures are JavaScript errors', () => {
  assert.throws(() => group.store.get('nobody-sets-this', 100), /timeout/i);
  const other = initProcessGroup({ rank: 0, worldSize: 1, localRank: 0, masterAddr: '127.0.0.1', masterPort: 0, agentStore: false }, 2000);
  other.destroy();
  other.store.close();
  const t = torch.zeros([2]);
  assert.throws(() => other.allReduce([t]), (err: Error) => err instanceof DistributedError && /destroyed/.test(err.message));
  assert.throws(() => other.store.get('k'), /closed/);
  t.dispose();
});

test('synchronised batch norm gives the U-Net the forward and gradients of libtorch\'s batch norm', () => {
  const config = { ...presetModel('small'), normalization: { mean: 0, std: 1 } };
  const run = (sync: boolean) => {
    torch.manualSeed(4);
    const model = new DiffusionModel(config);
    if (sync) assert.equal(convertSyncBatchNorm(model.unet, group), 12);
    const g = new torch.Generator(9);
    return torch.tidy(() => {
      const x = torch.randn([6, 1, 14, 14], { generator: g });
      const t = torch.randint(0, model.numTimesteps, [6], { generator: g });
      const y = torch.randint(0, 10, [6], { generator: g });
      const out = model.predictNoise(x, t, y);
      mseLoss(out, torch.randn(out.shape, { generator: g })).backward();
      const grads = model.unet.namedParameters().map(([name, p]) => [name, p.grad!.toArray()] as const);
      const result = { out: out.toArray(), grads, runningVar: model.unet.buffers()[1]!.toArray() };
      model.dispose();
      return result;
    });
  };
  const plain = run(false);
  const synced = run(true);
  assertClose(synced.out, plain.out, { atol: 1e-5, rtol: 1e-4, what: 'output' });
  assertClose(synced.runningVar, plain.runningVar, { atol: 1e-6, rtol: 1e-5, what: 'running variance' });
  plain.grads.forEach(([name, g], i) => {
    const scale = Math.max(...g.map(Math.abs));
    assertClose(synced.grads[i]![1], g, { atol: 1e-4 * scale, rtol: 0, what: `gradient of ${name}` });
  });
});
