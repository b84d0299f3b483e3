import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as torch from '../src/torch/index.ts';
import type { Tensor } from '../src/torch/tensor.ts';
import { BatchNorm2d, Conv2d, Flatten, GELU, Linear, MaxPool2d, Module, ReLU, Sequential } from '../src/nn/index.ts';
import { Rng, assertClose, fromValues, indices, numelOf, withNoLeaks } from './helpers.ts';

interface InitFixture {
  init_seed0: {
    linear_4_3: { weight: number[]; bias: number[] };
    conv2d_2_3_3: { weight: number[]; bias: number[] };
  };
}
const fixture = JSON.parse(readFileSync(new URL('./fixtures/ops.json', import.meta.url), 'utf8')) as InitFixture;

/** conv(1→2, 3×3) → BN(2) → GELU → [Flatten → Linear(8, 3)], for inputs [N, 1, 4, 4]. */
function smallNet(): Sequential {
  return new Sequential(new Conv2d(1, 2, 3), new BatchNorm2d(2), new GELU(), new Sequential(new Flatten(), new Linear(8, 3)));
}

class WithExtras extends Module {
  readonly lin = this.registerModule('lin', new Linear(2, 2));
  readonly scale = this.registerParameter('scale', torch.ones([1]));
  readonly cache = this.registerBuffer('cache', torch.zeros([2]), { persistent: false });
  readonly stat = this.registerBuffer('stat', torch.zeros([2]));
  readonly nothing = this.registerParameter('nothing', null);
}

test('nested Sequential registries and state-dict key order/names: 0.weight, 1.running_mean, 3.1.weight ...', () => {
  withNoLeaks(() => {
    const net = smallNet();
    const keys = [...net.stateDict().keys()];
    assert.deepEqual(keys, [
      '0.weight',
      '0.bias',
      '1.weight',
      '1.bias',
      '1.running_mean',
      '1.running_var',
      '1.num_batches_tracked',
      '3.1.weight',
      '3.1.bias',
    ]);
    assert.deepEqual(net.namedParameters().map(([k]) => k), ['0.weight', '0.bias', '1.weight', '1.bias', '3.1.weight', '3.1.bias']);
    assert.deepEqual(net.namedBuffers().map(([k]) => k), ['1.running_mean', '1.running_var', '1.num_batches_tracked']);
    assert.deepEqual(net.namedModules().map(([k]) => k), ['', '0', '1', '2', '3', '3.0', '3.1']);
    assert.deepEqual(net.namedChildren().map(([k]) => k), ['0', '1', '2', '3']);
    assert.ok(net.namedModules().find(([k]) => k === '3.1')![1] instanceof Linear);
    // The state dict holds the live tensors, not copies.
    const conv = net.layers[0] as Conv2d;
    assert.equal(net.stateDict().get('0.weight'), conv.weight);
    assert.equal(net.parameters()[0], conv.weight);
    assert.deepEqual([...net.stateDict().get('1.num_batches_tracked')!.shape], []);
    assert.equal(net.stateDict().get('1.num_batches_tracked')!.dtype, 'int64');
    // A prefix is prepended.
    assert.equal([...net.stateDict('model').keys()][0], 'model.0.weight');
    // Parameters require grad and are kept across tidy; buffers do not require grad.
    assert.ok(net.parameters().every((p) => p.requiresGrad && p.kept && !p.isDisposed));
    assert.ok(net.buffers().every((b) => !b.requiresGrad && b.kept));
    // Forward shape.
    const y = net.forward(torch.randn([5, 1, 4, 4]));
    assert.deepEqual([...y.shape], [5, 3]);
    net.dispose();
    assert.ok(net.parameters().every((p) => p.isDisposed));
  });
});

test('custom module: own parameters before buffers before children; non-persistent buffers and null parameters left out', () => {
  withNoLeaks(() => {
    const m = new WithExtras();
    assert.deepEqual([...m.stateDict().keys()], ['scale', 'stat', 'lin.weight', 'lin.bias']);
    assert.deepEqual(m.namedBuffers().map(([k]) => k), ['cache', 'stat']);
    assert.deepEqual(m.namedParameters().map(([k]) => k), ['scale', 'lin.weight', 'lin.bias']);
    assert.equal(m.nothing, null);
    assert.throws(() => m.registerParameter('a.b', null), /'\.'/);
    assert.throws(() => m.registerBuffer('', null), /non-empty/);
    assert.throws(() => m.registerModule('x.y', new ReLU()), /'\.'/);
    m.dispose();
  });
});

test('train() and eval() propagate to every nested module', () => {
  withNoLeaks(() => {
    const net = smallNet();
    assert.ok(net.namedModules().every(([, m]) => m.training));
    assert.equal(net.eval(), net);
    assert.ok(net.namedModules().every(([, m]) => !m.training));
    net.train();
    assert.ok(net.namedModules().every(([, m]) => m.training));
    net.train(false);
    assert.ok(net.namedModules().every(([, m]) => !m.training));
    // Only the subtree changes when a child is switched.
    net.train();
    (net.layers[3] as Sequential).eval();
    assert.deepEqual(net.namedModules().map(([k, m]) => [k, m.training]), [
      ['', true], ['0', true], ['1', true], ['2', true], ['3', false], ['3.0', false], ['3.1', false],
    ]);
    net.dispose();
  });
});

/** Per-channel batch mean, biased and unbiased variance of [N, C, H, W] values. */
function channelStats(x: number[], shape: number[]): { mean: number[]; varB: number[]; varU: number[] } {
  const c = shape[1]!;
  const count = numelOf(shape) / c;
  const sum = new Array<number>(c).fill(0);
  let k = 0;
  for (const idx of indices(shape)) sum[idx[1]!]! += x[k++]!;
  const mean = sum.map((s) => s / count);
  const sq = new Array<number>(c).fill(0);
  k = 0;
  for (const idx of indices(shape)) sq[idx[1]!]! += (x[k++]! - mean[idx[1]!]!) ** 2;
  return { mean, varB: sq.map((s) => s / count), varU: sq.map((s) => s / (count - 1)) };
}

function runBatchNorm(momentum: number | null): void {
  withNoLeaks(() => {
    const shape = [4, 2, 3, 3];
    const rng = new Rng(momentum === null ? 61 : 62);
    const bn = new BatchNorm2d(2, { momentum });
    bn.to({ dtype: 'float64' });
    let rm = [0, 0];
    let rv = [1, 1];
    for (let step = 1; step <= 3; step++) {
      const x = rng.normals(numelOf(shape)).map((v, i) => (1 + step) * v + step * (i % 3));
      const y = bn.forward(fromValues(x, shape));
      const { mean, varB, varU } = channelStats(x, shape);
      const f = momentum ?? 1 / step;
      rm = rm.map((r, c) => (1 - f) * r + f * mean[c]!);
      rv = rv.map((r, c) => (1 - f) * r + f * varU[c]!);
      // Training output uses the batch statistics (biased variance).
      let k = 0;
      const ref = [...indices(shape)].map((idx) => (x[k++]! - mean[idx[1]!]!) / Math.sqrt(varB[idx[1]!]! + 1e-5));
      assertClose(y.toArray(), ref, { atol: 1e-9, what: `step ${step} output` });
      assertClose(bn.runningMean!.toArray(), rm, { atol: 1e-12, what: `step ${step} running_mean (momentum ${momentum})` });
      assertClose(bn.runningVar!.toArray(), rv, { atol: 1e-12, what: `step ${step} running_var (momentum ${momentum})` });
      assert.equal(bn.numBatchesTracked!.item(), step);
    }
    // Evaluation uses the running statistics and leaves them alone.
    bn.eval();
    const x = rng.normals(numelOf(shape));
    const y = bn.forward(fromValues(x, shape));
    let k = 0;
    const ref = [...indices(shape)].map((idx) => (x[k++]! - rm[idx[1]!]!) / Math.sqrt(rv[idx[1]!]! + 1e-5));
    assertClose(y.toArray(), ref, { atol: 1e-9, what: 'eval output' });
    assertClose(bn.runningMean!.toArray(), rm, { atol: 1e-12, what: 'running_mean after eval' });
    assert.equal(bn.numBatchesTracked!.item(), 3);
    assert.equal(bn.numBatchesTracked!.dtype, 'int64');
    bn.dispose();
  });
}

test('BatchNorm2d [4, 2, 3, 3]: running statistics after 3 training batches with momentum 0.1 (unbiased running var)', () => {
  runBatchNorm(0.1);
});

test('BatchNorm2d [4, 2, 3, 3]: momentum null keeps a cumulative average over 3 batches', () => {
  runBatchNorm(null);
});

test('BatchNorm2d weight and bias apply per channel; rank-2 input is rejected', () => {
  withNoLeaks(() => {
    const bn = new BatchNorm2d(3);
    torch.noGrad(() => {
      bn.weight!.copy_(torch.tensor([2, -1, 0.5]));
      bn.bias!.copy_(torch.tensor([1, 0, -3]));
    });
    const shape = [2, 3, 2, 2];
    const x = new Rng(63).normals(numelOf(shape));
    const { mean, varB } = channelStats(x, shape);
    const y = bn.forward(fromValues(x, shape, 'float32'));
    const w = [2, -1, 0.5];
    const b = [1, 0, -3];
    let k = 0;
    const ref = [...indices(shape)].map(([, c]) => ((x[k++]! - mean[c!]!) / Math.sqrt(varB[c!]! + 1e-5)) * w[c!]! + b[c!]!);
    assertClose(y.toArray(), ref, { atol: 1e-5, what: 'affine batch norm' });
    assert.throws(() => bn.forward(torch.ones([2, 3])), /rank 4/);
    bn.dispose();
  });
});

// ---------------------------------------------------------------------------------------------------------
// Initialisation

function stats(v: number[]): { mean: number; std: number; max: number } {
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  const std = Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length);
  return { mean, std, max: Math.max(...v.map(Math.abs)) };
}

test('PyTorch-default init: Linear(50, 200), Conv2d(3, 64, 5) and Conv2d(4, 8, 3, groups 2) within ±1/√fan_in with uniform std', () => {
  withNoLeaks(() => {
    torch.manualSeed(123);
    const cases: [string, Linear | Conv2d, number][] = [
      ['Linear(50, 200)', new Linear(50, 200), 50],
      ['Conv2d(3, 64, 5)', new Conv2d(3, 64, 5), 3 * 25],
      ['Conv2d(4, 8, 3, groups 2)', new Conv2d(4, 8, 3, { groups: 2 }), 2 * 9],
    ];
    for (const [name, m, fanIn] of cases) {
      const bound = 1 / Math.sqrt(fanIn);
      const w = stats(m.weight.toArray());
      assert.ok(w.max <= bound, `${name}: weight ${w.max} exceeds ${bound}`);
      assert.ok(w.max > 0.9 * bound, `${name}: weights do not fill the range (max ${w.max}, bound ${bound})`);
      const tol = name.startsWith('Conv2d(4') ? 0.15 : 0.05; // 144 weights only
      assert.ok(Math.abs(w.std / (bound / Math.sqrt(3)) - 1) < tol, `${name}: weight std ${w.std}, expected ${bound / Math.sqrt(3)}`);
      assert.ok(Math.abs(w.mean) < 0.1 * bound, `${name}: weight mean ${w.mean}`);
      const b = stats(m.bias!.toArray());
      assert.ok(b.max <= bound, `${name}: bias ${b.max} exceeds ${bound}`);
      assert.ok(b.std > 0, `${name}: bias not initialised`);
      m.dispose();
    }
    // bias: false leaves no bias.
    const nb = new Linear(3, 2, { bias: false });
    assert.equal(nb.bias, null);
    assert.deepEqual(nb.namedParameters().map(([k]) => k), ['weight']);
    nb.dispose();
    // A generator makes initialisation reproducible.
    const a = new Conv2d(2, 3, 3, { generator: new torch.Generator(5) });
    const b = new Conv2d(2, 3, 3, { generator: new torch.Generator(5) });
    assert.deepEqual(a.weight.toArray(), b.weight.toArray());
    assert.deepEqual(a.bias!.toArray(), b.bias!.toArray());
    a.dispose();
    b.dispose();
    assert.throws(() => new Conv2d(3, 4, 3, { groups: 2 }), /groups/);
    assert.throws(() => new Linear(0, 2), /positive integer/);
  });
});

test('Linear(4, 3) then Conv2d(2, 3, 3) after manualSeed(0) equal PyTorch nn.Linear/nn.Conv2d initial values', () => {
  withNoLeaks(() => {
    torch.manualSeed(0);
    const lin = new Linear(4, 3);
    const conv = new Conv2d(2, 3, 3);
    const f = fixture.init_seed0;
    assertClose(lin.weight.toArray(), f.linear_4_3.weight, { atol: 1e-7, what: 'Linear weight' });
    assertClose(lin.bias!.toArray(), f.linear_4_3.bias, { atol: 1e-7, what: 'Linear bias' });
    assertClose(conv.weight.toArray(), f.conv2d_2_3_3.weight, { atol: 1e-7, what: 'Conv2d weight' });
    assertClose(conv.bias!.toArray(), f.conv2d_2_3_3.bias, { atol: 1e-7, what: 'Conv2d bias' });
    lin.dispose();
    conv.dispose();
  });
});

// ---------------------------------------------------------------------------------------------------------
// State dicts

function snapshot(m: Module): Map<string, number[]> {
  return new Map([...m.stateDict()].map(([k, t]) => [k, t.toArray()]));
}

test('loadStateDict copies values into the live tensors; errors name the missing, unexpected or mis-shaped tensor and copy nothing', () => {
  withNoLeaks(() => {
    const dst = smallNet();
    const src = smallNet();
    const dstTensors = new Map(dst.stateDict());
    const before = snapshot(dst);
    const srcValues = snapshot(src);
    assert.notDeepEqual(before.get('0.weight'), srcValues.get('0.weight'));

    const fresh = (): Map<string, Tensor> => new Map([...src.stateDict()].map(([k, t]) => [k, t.detach()]));

    // Missing
    const missing = fresh();
    missing.delete('1.running_var');
    assert.throws(() => dst.loadStateDict(missing), (e: unknown) => e instanceof Error && e.message.includes("'1.running_var'") && /missing/.test(e.message));
    assert.deepEqual(snapshot(dst), before);
    // Unexpected
    const unexpected = fresh();
    unexpected.set('3.2.weight', torch.ones([1]));
    assert.throws(() => dst.loadStateDict(unexpected), (e: unknown) => e instanceof Error && e.message.includes("'3.2.weight'") && /unexpected/.test(e.message));
    assert.deepEqual(snapshot(dst), before);
    // Shape mismatch on the last tensor: the earlier ones must not have been copied either.
    const misshaped = fresh();
    misshaped.set('3.1.bias', torch.zeros([4]));
    assert.throws(
      () => dst.loadStateDict(misshaped),
      (e: unknown) => e instanceof Error && e.message.includes("'3.1.bias'") && e.message.includes('[4]') && e.message.includes('[3]'),
    );
    assert.deepEqual(snapshot(dst), before);
    // Shape mismatch is an error even when not strict.
    assert.throws(() => dst.loadStateDict(misshaped, { strict: false }), /'3\.1\.bias'/);
    assert.deepEqual(snapshot(dst), before);

    // Non-strict load reports keys and copies what matches.
    const partial = fresh();
    partial.delete('0.bias');
    partial.set('extra', torch.ones([1]));
    const result = dst.loadStateDict(partial, { strict: false });
    assert.deepEqual(result, { missingKeys: ['0.bias'], unexpectedKeys: ['extra'] });
    assert.deepEqual(dst.stateDict().get('0.weight')!.toArray(), srcValues.get('0.weight'));
    assert.deepEqual(dst.stateDict().get('0.bias')!.toArray(), before.get('0.bias'));

    // A full load from a plain object copies everything and keeps the destination's tensors.
    const ok = dst.loadStateDict(Object.fromEntries(fresh()));
    assert.deepEqual(ok, { missingKeys: [], unexpectedKeys: [] });
    assert.deepEqual(snapshot(dst), srcValues);
    for (const [k, t] of dst.stateDict()) assert.equal(t, dstTensors.get(k), `${k} identity`);
    assert.ok(dst.parameters().every((p) => p.requiresGrad && p.isLeaf));
    dst.dispose();
    src.dispose();
  });
});

test('Module.to({dtype: float64}) keeps tensor identities, casts floating tensors only, and still trains', () => {
  withNoLeaks(() => {
    const net = smallNet();
    const params = net.parameters();
    const buffers = net.buffers();
    const entries = [...net.stateDict()];
    const values = snapshot(net);
    assert.equal(params[0]!.dtype, 'float32');
    assert.equal(net.to({ dtype: 'float64' }), net);
    assert.deepEqual(net.parameters(), params);
    params.forEach((p, i) => assert.equal(net.parameters()[i], p));
    buffers.forEach((b, i) => assert.equal(net.buffers()[i], b));
    for (const [k, t] of net.stateDict()) {
      assert.equal(t, entries.find(([k2]) => k2 === k)![1], `${k} identity`);
      assert.equal(t.dtype, k.endsWith('num_batches_tracked') ? 'int64' : 'float64', `${k} dtype`);
      assert.deepEqual(t.toArray(), values.get(k), `${k} values`);
    }
    assert.ok(params.every((p) => p.requiresGrad && p.isLeaf && p.kept));
    // Float64 forward and backward reach the same parameter objects.
    const y = net.forward(torch.randn([2, 1, 4, 4], { dtype: 'float64' }));
    assert.equal(y.dtype, 'float64');
    y.sum().backward();
    const g = params[0]!.grad!;
    assert.equal(g.dtype, 'float64');
    assert.deepEqual([...g.shape], [2, 1, 3, 3]);
    // zeroGrad drops gradients (or zeroes them).
    net.zeroGrad(false);
    assert.deepEqual(params[0]!.grad!.toArray(), new Array(18).fill(0));
    net.zeroGrad();
    assert.ok(params.every((p) => p.grad === null));
    // And back to float32.
    net.to({ dtype: 'float32' });
    assert.ok(params.every((p) => p.dtype === 'float32'));
    net.dispose();
  });
});

test('parameter counts: Linear(10, 5) 55, no bias 50, Conv2d(3, 8, 3) 224, groups 2 152, BatchNorm2d(16) 32, Sequential sum', () => {
  withNoLeaks(() => {
    const mods: [Module, number][] = [
      [new Linear(10, 5), 55],
      [new Linear(10, 5, { bias: false }), 50],
      [new Conv2d(3, 8, 3), 8 * 3 * 9 + 8],
      [new Conv2d(4, 8, 3, { groups: 2 }), 8 * 2 * 9 + 8],
      [new BatchNorm2d(16), 32],
      [new BatchNorm2d(16, { affine: false }), 0],
      [new GELU(), 0],
      [new MaxPool2d(2), 0],
    ];
    for (const [m, n] of mods) assert.equal(m.numParameters(), n, m.constructor.name);
    const seq = smallNet();
    assert.equal(seq.numParameters(), 2 * 9 + 2 + 2 + 2 + 8 * 3 + 3);
    for (const [m] of mods) m.dispose();
    seq.dispose();
    // A BatchNorm2d without tracking has no buffers at all.
    const untracked = new BatchNorm2d(4, { trackRunningStats: false });
    assert.deepEqual([...untracked.stateDict().keys()], ['weight', 'bias']);
    untracked.dispose();
  });
});
