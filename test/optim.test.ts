import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Adam, AdamW, updateBatchNorm, type AdamOptions, type Optimizer, type AdamHyperparameters } from '../src/optim/index.ts';
import { BatchNorm2d, Conv2d, GELU, Linear, Sequential } from '../src/nn/index.ts';
import { mseLoss } from '../src/nn/functional.ts';
import { Generator, dispose, memory, noGrad, randn, tensor, tidy, type Tensor } from '../src/torch/index.ts';

type Ctor = new (params: Tensor[], opts?: AdamOptions) => Optimizer<AdamHyperparameters>;

/** A leaf parameter holding `values` (float32). */
function param(values: number[], shape?: number[]): Tensor {
  return tensor(Float32Array.from(values), { shape: shape ?? [values.length] }).requiresGrad_(true);
}

function setGrad(p: Tensor, values: ArrayLike<number>): void {
  const g = tensor(Float32Array.from(values), { shape: [...p.shape] });
  p.grad = g;
  g.dispose();
}

/** Plain-double Adam/AdamW on a flat vector, straight from the PyTorch formulas. */
function referenceAdam(p0: number[], grads: number[][], opts: { lr: number; wd: number; decoupled: boolean; amsgrad?: boolean }): number[][] {
  const [b1, b2, eps] = [0.9, 0.999, 1e-8];
  const p = [...p0];
  const m = p.map(() => 0);
  const v = p.map(() => 0);
  const vmax = p.map(() => 0);
  const out: number[][] = [];
  grads.forEach((grad, k) => {
    const t = k + 1;
    for (let i = 0; i < p.length; i++) {
      let g = grad[i]!;
      if (opts.decoupled) p[i]! *= 1 - opts.lr * opts.wd;
      else g += opts.wd * p[i]!;
      m[i] = b1 * m[i]! + (1 - b1) * g;
      v[i] = b2 * v[i]! + (1 - b2) * g * g;
      vmax[i] = Math.max(vmax[i]!, v[i]!);
      const second = opts.amsgrad ? vmax[i]! : v[i]!;
      const denom = Math.sqrt(second) / Math.sqrt(1 - b2 ** t) + eps;
      p[i]! -= (opts.lr / (1 - b1 ** t)) * (m[i]! / denom);
    }
    out.push([...p]);
  });
  return out;
}

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < actual.length; i++) {
    const d = Math.abs(actual[i]! - expected[i]!);
    assert.ok(d <= tol, `${what}[${i}]: ${actual[i]} vs ${expected[i]} (|diff| ${d} > ${tol})`);
  }
}

function bytesOf(t: Tensor): Buffer {
  const d = t.data();
  return Buffer.from(d.buffer, d.byteOffset, d.byteLength);
}

test('Adam and AdamW steps 1 and 2 match a hand computation', () => {
  const p0 = [1, -2, 0.5, 3];
  const grads = [
    [0.5, -0.1, 0.02, -3],
    [0.2, 0.3, -0.04, 1],
  ];
  const cases: [string, Ctor, AdamOptions, { lr: number; wd: number; decoupled: boolean; amsgrad?: boolean }][] = [
    ['Adam', Adam, {}, { lr: 1e-3, wd: 0, decoupled: false }],
    ['Adam wd', Adam, { lr: 0.1, weightDecay: 0.5 }, { lr: 0.1, wd: 0.5, decoupled: false }],
    ['AdamW', AdamW, { lr: 0.1 }, { lr: 0.1, wd: 1e-2, decoupled: true }],
    ['AdamW amsgrad', AdamW, { lr: 0.1, amsgrad: true }, { lr: 0.1, wd: 1e-2, decoupled: true, amsgrad: true }],
  ];
  for (const [name, Cls, opts, ref] of cases) {
    const p = param(p0);
    const opt = new Cls([p], opts);
    const expected = referenceAdam(p0, grads, ref);
    grads.forEach((g, k) => {
      setGrad(p, g);
      opt.step();
      assertClose(p.toArray(), expected[k]!, 1e-6, `${name} step ${k + 1}`);
    });
    // Step 1 of plain Adam moves every coordinate by lr against the gradient's sign.
    if (name === 'Adam') assert.equal(opt.state.get(p)!.step!.item(), 2);
    opt.dispose();
    p.dispose();
  }
});

interface Fixture {
  shapes: Record<'weight' | 'bias', number[]>;
  initial: Record<'weight' | 'bias', number[]>;
  grads: Record<'weight' | 'bias', number[]>[];
  results: Record<string, { optimizer: 'Adam' | 'AdamW'; options: Record<string, unknown>; params: Record<'weight' | 'bias', number[]>[] }>;
}

const fixture = JSON.parse(readFileSync(new URL('./fixtures/optim.json', import.meta.url), 'utf8')) as Fixture;

function fromPythonOptions(o: Record<string, unknown>): AdamOptions {
  return {
    lr: o.lr as number | undefined,
    weightDecay: o.weight_decay as number | undefined,
    amsgrad: o.amsgrad as boolean | undefined,
  };
}

test('Adam and AdamW match PyTorch 1.13 over 5 steps (both code paths)', () => {
  assert.ok(Object.keys(fixture.results).length >= 3);
  for (const [name, r] of Object.entries(fixture.results)) {
    for (const foreach of [true, false]) {
      const w = param(fixture.initial.weight, fixture.shapes.weight);
      const b = param(fixture.initial.bias, fixture.shapes.bias);
      const Cls = r.optimizer === 'Adam' ? Adam : AdamW;
      const opt = new Cls([w, b], { ...fromPythonOptions(r.options), foreach });
      fixture.grads.forEach((g, k) => {
        setGrad(w, g.weight);
        setGrad(b, g.bias);
        opt.step();
        assertClose(w.toArray(), r.params[k]!.weight, 1e-6, `${name} foreach=${foreach} step ${k + 1} weight`);
        assertClose(b.toArray(), r.params[k]!.bias, 1e-6, `${name} foreach=${foreach} step ${k + 1} bias`);
      });
      opt.dispose();
      dispose([w, b]);
    }
  }
});

test('foreach and per-tensor paths are bit-identical', () => {
  const shapes = [[7, 5], [5], [3, 2, 3, 3], [1], [64]];
  const configs: [Ctor, AdamOptions][] = [
    [Adam, {}],
    [Adam, { lr: 0.05, weightDecay: 0.1, amsgrad: true }],
    [AdamW, { lr: 0.02 }],
    [AdamW, { lr: 0.02, amsgrad: true, betas: [0.8, 0.99] }],
  ];
  for (const [Cls, opts] of configs) {
    const gen = new Generator(1234);
    const init = shapes.map((s) => randn(s, { generator: gen }));
    const grads = Array.from({ length: 6 }, (_, k) => shapes.map((s) => randn(s, { generator: gen }).mul_(k === 3 ? 5 : 0.5)));
    const run = (foreach: boolean): Tensor[] => {
      const ps = init.map((t) => t.clone().requiresGrad_(true));
      const opt = new Cls(ps, { ...opts, foreach });
      for (const gs of grads) {
        ps.forEach((p, i) => (p.grad = gs[i]!));
        opt.step();
      }
      const states = ps.flatMap((p) => Object.values(opt.state.get(p)!).map((t) => t.clone()));
      opt.dispose();
      return [...ps, ...states];
    };
    const a = run(true);
    const b = run(false);
    assert.equal(a.length, b.length);
    a.forEach((t, i) => assert.ok(bytesOf(t).equals(bytesOf(b[i]!)), `${Cls.name} ${JSON.stringify(opts)}: tensor ${i} differs`));
    dispose([init, grads, a, b]);
  }
});

test('parameters without a gradient are skipped; later ones fall back to per-tensor steps', () => {
  const p0 = [0.3, -0.7];
  const q0 = [1.5, 2.5, -0.5];
  const gp = [[0.1, -0.2], [0.3, 0.4], [-0.5, 0.6]];
  const gq = [[0.7, -0.8, 0.9], [1.0, -1.1, 1.2]];
  const p = param(p0);
  const q = param(q0);
  const opt = new Adam([p, q], { lr: 0.01, foreach: true });
  setGrad(p, gp[0]!);
  opt.step();
  assert.deepEqual(q.toArray(), q0, 'q untouched');
  assert.equal(opt.state.has(q), false, 'no state for a parameter never stepped');
  // Now p is at step 1 and q at step 0: the counts differ, so each is updated on its own.
  setGrad(p, gp[1]!);
  setGrad(q, gq[0]!);
  opt.step();
  setGrad(p, gp[2]!);
  setGrad(q, gq[1]!);
  opt.step();
  assert.equal(opt.state.get(p)!.step!.item(), 3);
  assert.equal(opt.state.get(q)!.step!.item(), 2);
  assertClose(p.toArray(), referenceAdam(p0, gp, { lr: 0.01, wd: 0, decoupled: false })[2]!, 1e-6, 'p');
  assertClose(q.toArray(), referenceAdam(q0, gq, { lr: 0.01, wd: 0, decoupled: false })[1]!, 1e-6, 'q');
  opt.dispose();
  dispose([p, q]);
});

test('zeroGrad drops gradients by default and zeroes them in place on request', () => {
  const p = param([1, 2]);
  const q = param([3]);
  const opt = new AdamW([p, q]);
  setGrad(p, [5, 6]);
  opt.zeroGrad(false);
  const g = p.grad!;
  assert.deepEqual(g.toArray(), [0, 0]);
  g.dispose();
  assert.equal(q.grad, null, 'a missing gradient stays missing');
  // A zero gradient still counts as a gradient: the parameter is stepped (and decayed).
  opt.step();
  assert.equal(opt.state.get(p)!.step!.item(), 1);
  assert.equal(opt.state.has(q), false);
  assert.deepEqual(p.toArray(), [Math.fround(1 * (1 - 1e-3 * 1e-2)), Math.fround(2 * (1 - 1e-3 * 1e-2))]);
  opt.zeroGrad();
  assert.equal(p.grad, null);
  opt.dispose();
  dispose([p, q]);
});

test('invalid hyperparameters throw naming the value', () => {
  const p = param([1]);
  assert.throws(() => new Adam([p], { lr: -1 }), /^RangeError: Adam: invalid learning rate: -1$/);
  assert.throws(() => new Adam([p], { lr: Number.NaN }), /Adam: invalid learning rate: NaN/);
  assert.throws(() => new Adam([p], { eps: -1e-8 }), /Adam: invalid epsilon value: -1e-8/);
  assert.throws(() => new Adam([p], { betas: [1, 0.999] }), /Adam: invalid beta parameter at index 0: 1/);
  assert.throws(() => new Adam([p], { betas: [0.9, -0.1] }), /Adam: invalid beta parameter at index 1: -0.1/);
  assert.throws(() => new Adam([p], { weightDecay: -0.1 }), /Adam: invalid weight decay value: -0.1/);
  assert.throws(() => new AdamW([p], { lr: -2 }), /AdamW: invalid learning rate: -2/);
  assert.throws(() => new AdamW([{ params: [p], lr: -3 }]), /AdamW: invalid learning rate: -3/);
  assert.throws(() => new Adam([]), /Adam: got an empty parameter list/);
  assert.throws(() => new Adam([p, p]), /appears more than once/);
  const opt = new Adam([{ params: [p], lr: 0.5 }], { lr: 0.1, weightDecay: 0.2 });
  assert.equal(opt.paramGroups[0]!.lr, 0.5);
  assert.equal(opt.paramGroups[0]!.weightDecay, 0.2);
  assert.deepEqual(opt.paramGroups[0]!.betas, [0.9, 0.999]);
  assert.equal(new AdamW([p]).paramGroups[0]!.weightDecay, 1e-2);
  p.dispose();
});

function makeModel(seed: number): Sequential {
  const gen = new Generator(seed);
  return new Sequential(new Linear(4, 8, { generator: gen }), new GELU(), new Linear(8, 2, { generator: gen }));
}

function trainStep(model: Sequential, opt: Optimizer<AdamHyperparameters>, x: Tensor, y: Tensor): void {
  tidy(() => {
    opt.zeroGrad();
    mseLoss(model.forward(x), y).backward();
    opt.step();
  });
}

test('optimizer stateDict/loadStateDict resumes training identically', () => {
  const gen = new Generator(7);
  const xs = Array.from({ length: 5 }, () => randn([6, 4], { generator: gen }));
  const ys = Array.from({ length: 5 }, () => randn([6, 2], { generator: gen }));
  const groups = (m: Sequential) => [
    { params: m.layers[0]!.parameters(), lr: 0.01 },
    { params: m.layers[2]!.parameters(), lr: 0.02, weightDecay: 0.05 },
  ];

  const a = makeModel(1);
  const optA = new AdamW(groups(a), { amsgrad: true });
  for (let k = 0; k < 3; k++) trainStep(a, optA, xs[k]!, ys[k]!);

  const sd = optA.stateDict();
  assert.deepEqual([...sd.state.keys()], [0, 1, 2, 3]);
  assert.deepEqual(sd.paramGroups.map((g) => g.params), [[0, 1], [2, 3]]);
  assert.equal(sd.paramGroups[1]!.lr, 0.02);
  assert.deepEqual(Object.keys(sd.state.get(0)!).sort(), ['exp_avg', 'exp_avg_sq', 'max_exp_avg_sq', 'step']);
  const step = sd.state.get(0)!.step!;
  assert.deepEqual([step.dtype, step.shape, step.item()], ['float32', [], 3]);

  const b = makeModel(2);
  b.loadStateDict(a.stateDict());
  const optB = new AdamW(groups(b), { lr: 0.5 }); // hyperparameters come from the state dict
  // Existing state tensors keep their identity across a load.
  trainStep(b, optB, xs[0]!, ys[0]!);
  const before = optB.state.get(b.parameters()[0]!)!.exp_avg!;
  optB.loadStateDict(sd);
  assert.equal(optB.state.get(b.parameters()[0]!)!.exp_avg, before);
  b.loadStateDict(a.stateDict());
  assert.equal(optB.paramGroups[0]!.lr, 0.01);
  assert.notEqual(optB.state.get(b.parameters()[0]!)!.step, optA.state.get(a.parameters()[0]!)!.step, 'copied, not shared');

  for (let k = 3; k < 5; k++) {
    trainStep(a, optA, xs[k]!, ys[k]!);
    trainStep(b, optB, xs[k]!, ys[k]!);
  }
  const pa = a.parameters();
  b.parameters().forEach((p, i) => assert.ok(bytesOf(p).equals(bytesOf(pa[i]!)), `parameter ${i} differs after resuming`));

  // Mismatches are reported before anything changes.
  const c = makeModel(3);
  const optC = new AdamW(c.parameters());
  assert.throws(() => optC.loadStateDict(sd), /the state has 2 parameter groups but the optimizer has 1/);
  const d = new Sequential(new Linear(4, 8), new GELU(), new Linear(8, 3));
  const optD = new AdamW(groups(d));
  assert.throws(() => optD.loadStateDict(sd), /state 'exp_avg' of parameter 2 has shape \[2, 8\] but the parameter has shape \[3, 8\]/);
  assert.equal(optD.state.size, 0);
  const optE = new AdamW([{ params: a.layers[0]!.parameters() }, { params: [a.layers[2]!.parameters()[0]!] }]);
  assert.throws(() => optE.loadStateDict(sd), /parameter group 1 has 2 parameters in the state but 1 in the optimizer/);

  for (const o of [optA, optB, optC, optD, optE]) o.dispose();
  for (const m of [a, b, c, d]) m.dispose();
  dispose([xs, ys]);
});

test('no tensors leak across 50 optimizer steps', () => {
  const model = makeModel(5);
  const opt = new Adam(model.parameters(), { amsgrad: true, weightDecay: 0.01 });
  const x = randn([8, 4]);
  const y = randn([8, 2]);
  trainStep(model, opt, x, y); // creates the state
  const before = memory().numTensors;
  for (let k = 0; k < 50; k++) trainStep(model, opt, x, y);
  assert.equal(memory().numTensors, before);
  // Per-tensor path too (foreach off).
  opt.paramGroups[0]!.foreach = false;
  for (let k = 0; k < 5; k++) trainStep(model, opt, x, y);
  assert.equal(memory().numTensors, before);
  opt.dispose();
  model.dispose();
  dispose([x, y]);
});

test('updateBatchNorm: running statistics become the plain average over the given batches; momentum and mode come back', () => {
  const gen = new Generator(11);
  const conv = new Conv2d(1, 2, 1);
  const bn = new BatchNorm2d(2);
  const net = new Sequential(conv, bn).eval();
  const xs = [randn([4, 1, 3, 3], { generator: gen }), randn([4, 1, 3, 3], { generator: gen }).mul_(3).add_(1)];
  // Per channel: each batch's mean and unbiased variance of the conv output, from plain numbers.
  const expected = { mean: [0, 0], var: [0, 0] };
  for (const x of xs) {
    const y = noGrad(() => conv.forward(x));
    const v = y.toArray();
    for (let c = 0; c < 2; c++) {
      const vals: number[] = [];
      for (let n = 0; n < 4; n++) for (let k = 0; k < 9; k++) vals.push(v[(n * 2 + c) * 9 + k]!);
      const mean = vals.reduce((a, b) => a + b) / vals.length;
      expected.mean[c]! += mean / xs.length;
      expected.var[c]! += vals.reduce((a, b) => a + (b - mean) ** 2, 0) / (vals.length - 1) / xs.length;
    }
    y.dispose();
  }
  noGrad(() => bn.runningMean!.fill_(7));
  for (let round = 0; round < 2; round++) {
    updateBatchNorm(net, () => xs.forEach((x) => net.forward(x).dispose()));
    assertClose(bn.runningMean!.toArray(), expected.mean, 1e-5, `running mean, round ${round}`);
    assertClose(bn.runningVar!.toArray(), expected.var, 1e-4, `running variance, round ${round}`);
    assert.deepEqual(bn.numBatchesTracked!.toArray(), [2], 'counted from zero each time');
  }
  assert.equal(bn.momentum, 0.1);
  assert.equal(net.training, false);
  assert.equal(bn.training, false);
  dispose([xs, net]);
});
