// The paper's U-Net against the PyTorch peer (bench/peer/unet.py, golden values from scripts/fixtures/unet.py):
// shapes, parameter counts, state-dict layout, outputs for deterministic weights, the FiLM context.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { PAPER_UNET, UNet, unetContext, type UNetConfig } from '../src/models/unet.ts';
import { MODEL_KINDS, presetModel, type ModelKind } from '../src/pipelines/model-config.ts';
import { noGrad } from '../src/torch/grad-mode.ts';
import { memory } from '../src/torch/scope.ts';
import { randn, tensor } from '../src/torch/index.ts';
import type { Tensor } from '../src/torch/tensor.ts';
import { assertClose, assertShape, withNoLeaks } from './helpers.ts';

interface ConfigFixture {
  inChannels: number;
  size: number;
  numTimesteps: number;
  paper: { numParameters: number; stateDict: [string, number[]][] };
  det: {
    baseChannels: number;
    numParameters: number;
    stateDict: [string, number[]][];
    timesteps: number[];
    input: number[];
    context: number[];
    outputEval: number[];
    outputTrain: number[];
  };
}
interface UNetFixture {
  torch_version: string;
  labels: number[];
  configs: Record<ModelKind, ConfigFixture>;
}
const fixture = JSON.parse(readFileSync(new URL('./fixtures/unet.json', import.meta.url), 'utf8')) as UNetFixture;

const longs = (values: readonly number[]) => tensor(BigInt64Array.from(values, (v) => BigInt(v)));

/** The values scripts/fixtures/unet.py puts in state-dict tensor number k (same float64 operations). */
function detValues(name: string, shape: readonly number[], k: number): Float32Array | undefined {
  const n = shape.reduce((a, b) => a * b, 1);
  const pattern = (i: number) => ((i * i * 7 + i * 37 + k * 101) % 61) - 30;
  if (name.endsWith('num_batches_tracked')) return undefined;
  if (name.endsWith('running_var')) return Float32Array.from({ length: n }, (_, i) => 1 + ((i * 13 + k * 5) % 17) / 16);
  if (shape.length >= 2) {
    const denom = 10 * Math.sqrt(Math.floor(n / shape[0]!));
    return Float32Array.from({ length: n }, (_, i) => pattern(i) / denom);
  }
  if (name.endsWith('weight')) return Float32Array.from({ length: n }, (_, i) => 1 + pattern(i) / 120);
  return Float32Array.from({ length: n }, (_, i) => pattern(i) / 120);
}

/** The narrow network of the fixture with its deterministic weights. */
function detUNet(kind: ModelKind): UNet {
  const f = fixture.configs[kind].det;
  const net = new UNet({ ...presetModel(kind).unet, baseChannels: f.baseChannels });
  const values = new Map<string, Tensor>();
  let k = 0;
  for (const [name, t] of net.stateDict()) {
    const v = detValues(name, t.shape, k++);
    if (v !== undefined) values.set(name, tensor(v, { shape: t.shape }));
  }
  const { missingKeys, unexpectedKeys } = net.loadStateDict(values, { strict: false });
  for (const t of values.values()) t.dispose();
  assert.ok(missingKeys.every((key) => key.endsWith('num_batches_tracked')), `unexpected missing keys ${missingKeys.join(', ')}`);
  assert.deepEqual(unexpectedKeys, []);
  return net;
}

const stateDictLayout = (net: UNet) => [...net.stateDict()].map(([name, t]) => [name, [...t.shape]]);

test('every preset gives [N, 1, S, S]: baseline 1×28×28 → 1×28×28, small 1×14×14 → 1×14×14, upscaler 2×28×28 → 1×28×28', () => {
  withNoLeaks(() => {
    const expected: Record<ModelKind, { inChannels: number; size: number }> = {
      baseline: { inChannels: 1, size: 28 },
      small: { inChannels: 1, size: 14 },
      upscaler: { inChannels: 2, size: 28 },
    };
    for (const kind of MODEL_KINDS) {
      const m = presetModel(kind);
      assert.equal(m.unet.inChannels, expected[kind].inChannels, `${kind} input channels`);
      assert.equal(m.imageSize, expected[kind].size, `${kind} image size`);
      const net = new UNet(m.unet);
      const n = 3;
      const x = randn([n, m.unet.inChannels, m.imageSize, m.imageSize]);
      const T = m.schedule.numTimesteps;
      const ctx = unetContext(longs([0, 1, T - 1]), T, longs([0, 5, 9]), 10);
      for (const mode of ['train', 'eval'] as const) {
        net.train(mode === 'train');
        const y = noGrad(() => net.forward(x, ctx));
        assertShape(y, [n, 1, m.imageSize, m.imageSize], `${kind} output shape (${mode})`);
        assert.equal(y.dtype, 'float32');
        assert.ok(Array.from(y.data() as Float32Array).every(Number.isFinite), `${kind}: finite output`);
      }
      net.dispose();
    }
  });
});

test('other depths and odd sizes keep the input size (7×7, 10×10, 13×13; depth 1, 2, 4)', () => {
  withNoLeaks(() => {
    for (const [depth, size] of [[1, 7], [2, 10], [3, 13], [4, 16]] as const) {
      const net = new UNet({ inChannels: 1, outChannels: 2, baseChannels: 2, depth, numClasses: 3 });
      const y = noGrad(() => net.forward(randn([2, 1, size, size]), unetContext(longs([0, 4]), 5, longs([0, 2]), 3)));
      assertShape(y, [2, 2, size, size], `depth ${depth}, ${size}×${size}`);
      net.dispose();
    }
  });
});

test('parameter counts equal PyTorch\'s: baseline and small 122,097, upscaler 122,261 (paper size, base 16, depth 3)', () => {
  assert.equal(fixture.configs.baseline.paper.numParameters, 122_097);
  assert.equal(fixture.configs.small.paper.numParameters, 122_097);
  assert.equal(fixture.configs.upscaler.paper.numParameters, 122_261);
  withNoLeaks(() => {
    for (const kind of MODEL_KINDS) {
      const net = new UNet(presetModel(kind).unet);
      assert.equal(net.numParameters(), fixture.configs[kind].paper.numParameters, `${kind} parameters`);
      net.dispose();
    }
    const paper = new UNet(PAPER_UNET);
    assert.equal(paper.numParameters(), 122_097, 'PAPER_UNET');
    paper.dispose();
  });
});

test('state-dict keys, their order and shapes equal PyTorch\'s for every preset (98 tensors each)', () => {
  withNoLeaks(() => {
    for (const kind of MODEL_KINDS) {
      const net = new UNet(presetModel(kind).unet);
      assert.equal(fixture.configs[kind].paper.stateDict.length, 98);
      assert.deepEqual(stateDictLayout(net), fixture.configs[kind].paper.stateDict, `${kind} state dict`);
      net.dispose();
      const narrow = new UNet({ ...presetModel(kind).unet, baseChannels: fixture.configs[kind].det.baseChannels });
      assert.deepEqual(stateDictLayout(narrow), fixture.configs[kind].det.stateDict, `${kind} narrow state dict`);
      assert.equal(narrow.numParameters(), fixture.configs[kind].det.numParameters);
      narrow.dispose();
    }
  });
});

test('outputs equal PyTorch\'s within 1e-5 for deterministic weights, in eval mode (running statistics) and train mode (batch statistics)', () => {
  withNoLeaks(() => {
    for (const kind of MODEL_KINDS) {
      const f = fixture.configs[kind];
      const net = detUNet(kind);
      const x = tensor(Float32Array.from(f.det.input), { shape: [fixture.labels.length, f.inChannels, f.size, f.size] });
      const ctx = unetContext(longs(f.det.timesteps), f.numTimesteps, longs(fixture.labels), 10);
      assertClose(ctx.data() as Float32Array, f.det.context, { atol: 0, rtol: 1e-7, what: `${kind} context` });
      net.eval();
      const yEval = noGrad(() => net.forward(x, ctx));
      assertShape(yEval, [fixture.labels.length, 1, f.size, f.size]);
      assertClose(yEval.data() as Float32Array, f.det.outputEval, { atol: 1e-5, rtol: 1e-5, what: `${kind} eval output` });
      net.train();
      const yTrain = noGrad(() => net.forward(x, ctx));
      assertClose(yTrain.data() as Float32Array, f.det.outputTrain, { atol: 1e-5, rtol: 1e-5, what: `${kind} train output` });
      net.dispose();
    }
  });
});

test('the fixture is sensitive: another timestep or label changes the output', () => {
  withNoLeaks(() => {
    const f = fixture.configs.small;
    const net = detUNet('small').eval();
    const x = tensor(Float32Array.from(f.det.input), { shape: [3, 1, 14, 14] });
    const y0 = noGrad(() => net.forward(x, unetContext(longs(f.det.timesteps), f.numTimesteps, longs(fixture.labels), 10))).data() as Float32Array;
    const yT = noGrad(() => net.forward(x, unetContext(longs([1, 8, 18]), f.numTimesteps, longs(fixture.labels), 10))).data() as Float32Array;
    const yL = noGrad(() => net.forward(x, unetContext(longs(f.det.timesteps), f.numTimesteps, longs([4, 1, 8]), 10))).data() as Float32Array;
    const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
    assert.ok(maxDiff(y0, yT) > 1e-3, 'the timestep reaches the output');
    assert.ok(maxDiff(y0, yL) > 1e-3, 'the label reaches the output');
    net.dispose();
  });
});

test('unetContext is [t/(T−1), one-hot(label)] as float32 [N, 1 + classes]', () => {
  withNoLeaks(() => {
    const t = [0, 5, 29, 14];
    const labels = [3, 0, 9, 3];
    const ctx = unetContext(longs(t), 30, longs(labels), 10);
    assertShape(ctx, [4, 11]);
    assert.equal(ctx.dtype, 'float32');
    const expected = t.flatMap((ti, i) => [Math.fround(ti / 29), ...Array.from({ length: 10 }, (_, c) => (c === labels[i] ? 1 : 0))]);
    assertClose(ctx.data() as Float32Array, expected, { atol: 0, rtol: 1e-7 });
    // T = 1: the only timestep is 0 (no division by zero).
    assert.deepEqual(Array.from(unetContext(longs([0]), 1, longs([1]), 2).data() as Float32Array), [0, 0, 1]);
    // numClasses is the null label of classifier-free guidance (all-zero one-hot); beyond it, one_hot refuses.
    assert.deepEqual(Array.from(unetContext(longs([0]), 30, longs([10]), 10).data() as Float32Array), new Array(11).fill(0));
    assert.throws(() => unetContext(longs([0]), 30, longs([11]), 10));
  });
});

test('invalid configurations throw a RangeError naming the field; a wrong input channel count throws', () => {
  withNoLeaks(() => {
    const bad: [Partial<UNetConfig>, string][] = [
      [{ inChannels: 0 }, 'inChannels'],
      [{ outChannels: -1 }, 'outChannels'],
      [{ baseChannels: 2.5 }, 'baseChannels'],
      [{ depth: 0 }, 'depth'],
      [{ numClasses: Number.NaN }, 'numClasses'],
    ];
    for (const [patch, field] of bad) {
      assert.throws(() => new UNet({ ...PAPER_UNET, ...patch }), (e: unknown) => e instanceof RangeError && e.message.includes(field), field);
    }
    const net = new UNet({ ...PAPER_UNET, baseChannels: 2 });
    const ctx = unetContext(longs([0]), 30, longs([1]), 10);
    assert.throws(() => noGrad(() => net.forward(randn([1, 2, 28, 28]), ctx)));
    assert.throws(() => noGrad(() => net.forward(randn([1, 1, 28, 28]), unetContext(longs([0]), 30, longs([1]), 5))));
    net.dispose();
  });
});

test('forward and backward leave no tensors behind (outside any tidy scope)', () => {
  const net = new UNet({ ...presetModel('small').unet, baseChannels: 4 });
  const before = memory().numTensors;
  for (let i = 0; i < 2; i++) {
    net.train();
    const inputs = [randn([2, 1, 14, 14]), longs([0, 19]), longs([2, 7])] as const;
    const ctx = unetContext(inputs[1], 20, inputs[2], 10);
    const y = net.forward(inputs[0], ctx);
    const sq = y.square();
    const loss = sq.mean();
    loss.backward();
    for (const p of net.parameters()) {
      const g = p.grad; // a new handle each read
      assert.ok(g !== null, 'every parameter gets a gradient');
      g.dispose();
    }
    net.zeroGrad();
    net.eval();
    const xe = randn([1, 1, 14, 14]);
    const te = inputs[1].narrow(0, 0, 1);
    const le = inputs[2].narrow(0, 0, 1);
    const ctxe = noGrad(() => unetContext(te, 20, le, 10));
    const e = noGrad(() => net.forward(xe, ctxe));
    for (const z of [...inputs, ctx, y, sq, loss, xe, te, le, ctxe, e]) z.dispose();
  }
  assert.equal(memory().numTensors, before, 'live tensors after forward/backward/dispose');
  net.dispose();
});
