import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../src/torch/index.ts';
import type { Tensor } from '../src/torch/tensor.ts';
import * as F from '../src/nn/functional.ts';
import { Rng, assertClose, fromValues, numelOf, withNoLeaks } from './helpers.ts';

interface GradInput {
  name: string;
  values: number[];
  shape: number[];
  /** Check this input's gradient (default true). */
  check?: boolean;
}

/**
 * Compares autograd gradients of L = Σ fn(inputs)·R (R fixed random weights, so no symmetry hides errors)
 * with central finite differences in float64.
 */
function gradcheck(what: string, inputs: GradInput[], fn: (xs: Tensor[]) => Tensor, opts: { seed?: number; eps?: number; atol?: number; rtol?: number } = {}): void {
  const eps = opts.eps ?? 1e-6;
  const atol = opts.atol ?? 1e-7;
  const rtol = opts.rtol ?? 1e-5;
  const rng = new Rng(opts.seed ?? 1);
  withNoLeaks(() => {
    const leaves = inputs.map((inp) => fromValues(inp.values, inp.shape).requiresGrad_(inp.check ?? true));
    const out = fn(leaves);
    assert.equal(out.dtype, 'float64', `${what}: compute in float64`);
    assert.equal(out.requiresGrad, true, `${what}: output must require grad`);
    const weights = fromValues(rng.normals(out.numel), [...out.shape]);
    const loss = out.mul(weights).sum();
    loss.backward();
    const lossAt = (values: number[][]): number =>
      torch.tidy(() =>
        torch.noGrad(() => {
          const xs = values.map((v, i) => fromValues(v, inputs[i]!.shape));
          return fn(xs).mul(weights).sum().item();
        }),
      );
    inputs.forEach((inp, k) => {
      if (inp.check === false) {
        assert.equal(leaves[k]!.grad, null, `${what}: ${inp.name} should have no gradient`);
        return;
      }
      const g = leaves[k]!.grad;
      assert.ok(g !== null, `${what}: ${inp.name} has no gradient`);
      assert.deepEqual([...g.shape], inp.shape, `${what}: gradient shape of ${inp.name}`);
      const numeric: number[] = [];
      const base = inputs.map((i) => i.values.slice());
      for (let j = 0; j < inp.values.length; j++) {
        const plus = base.map((v) => v.slice());
        const minus = base.map((v) => v.slice());
        plus[k]![j]! += eps;
        minus[k]![j]! -= eps;
        numeric.push((lossAt(plus) - lossAt(minus)) / (2 * eps));
      }
      const analytic = g.toArray();
      assert.ok(analytic.some((v) => v !== 0), `${what}: gradient of ${inp.name} is all zero`);
      assertClose(analytic, numeric, { atol, rtol, what: `${what}: d/d${inp.name}` });
    });
  });
}

const rand = (rng: Rng, shape: number[], scale = 1): GradInput['values'] => rng.normals(numelOf(shape)).map((v) => v * scale);

test('conv2d gradients for input [2, 4, 5, 5], weight [4, 2, 3, 3] and bias [4] (stride 2, padding 1, dilation 1, groups 2)', () => {
  const rng = new Rng(201);
  gradcheck(
    'conv2d',
    [
      { name: 'input', values: rand(rng, [2, 4, 5, 5]), shape: [2, 4, 5, 5] },
      { name: 'weight', values: rand(rng, [4, 2, 3, 3]), shape: [4, 2, 3, 3] },
      { name: 'bias', values: rand(rng, [4]), shape: [4] },
    ],
    ([x, w, b]) => F.conv2d(x!, w!, b!, { stride: 2, padding: 1, groups: 2 }),
  );
});

test('conv2d gradients with dilation 2 on [1, 2, 6, 6] * [3, 2, 2, 2]', () => {
  const rng = new Rng(202);
  gradcheck(
    'conv2d dilated',
    [
      { name: 'input', values: rand(rng, [1, 2, 6, 6]), shape: [1, 2, 6, 6] },
      { name: 'weight', values: rand(rng, [3, 2, 2, 2]), shape: [3, 2, 2, 2] },
      { name: 'bias', values: rand(rng, [3]), shape: [3] },
    ],
    ([x, w, b]) => F.conv2d(x!, w!, b!, { dilation: 2, padding: 1 }),
  );
});

test('linear gradients for input [3, 5], weight [4, 5] and bias [4]', () => {
  const rng = new Rng(203);
  gradcheck(
    'linear',
    [
      { name: 'input', values: rand(rng, [3, 5]), shape: [3, 5] },
      { name: 'weight', values: rand(rng, [4, 5]), shape: [4, 5] },
      { name: 'bias', values: rand(rng, [4]), shape: [4] },
    ],
    ([x, w, b]) => F.linear(x!, w!, b!),
  );
});

test('gelu gradient on [20] values (exact and tanh approximation)', () => {
  const values = new Rng(204).uniforms(20, -4, 4);
  gradcheck('gelu', [{ name: 'x', values, shape: [20] }], ([x]) => F.gelu(x!));
  gradcheck('gelu tanh', [{ name: 'x', values, shape: [20] }], ([x]) => F.gelu(x!, 'tanh'));
});

test('batchNorm (training) gradients for input [4, 3, 2, 2], weight [3] and bias [3]', () => {
  const rng = new Rng(205);
  gradcheck(
    'batchNorm',
    [
      { name: 'input', values: rand(rng, [4, 3, 2, 2], 2), shape: [4, 3, 2, 2] },
      { name: 'weight', values: rand(rng, [3]), shape: [3] },
      { name: 'bias', values: rand(rng, [3]), shape: [3] },
    ],
    ([x, w, b]) => F.batchNorm(x!, null, null, { weight: w!, bias: b!, training: true, eps: 1e-5 }),
    { atol: 1e-6, rtol: 1e-5 },
  );
});

test('maxPool2d gradient for input [2, 2, 5, 6] with kernel 3, stride 2, padding 1', () => {
  const rng = new Rng(206);
  gradcheck('maxPool2d', [{ name: 'input', values: rand(rng, [2, 2, 5, 6]), shape: [2, 2, 5, 6] }], ([x]) =>
    F.maxPool2d(x!, 3, { stride: 2, padding: 1 }),
  );
});

test('bilinear interpolate gradients [1, 2, 4, 5] → [7, 3] with alignCorners false and true', () => {
  const rng = new Rng(207);
  const values = rand(rng, [1, 2, 4, 5]);
  for (const alignCorners of [false, true]) {
    gradcheck(`interpolate alignCorners=${alignCorners}`, [{ name: 'input', values, shape: [1, 2, 4, 5] }], ([x]) =>
      F.interpolate(x!, { size: [7, 3], alignCorners }),
    );
  }
});

test('mseLoss gradients for input and target [3, 4]', () => {
  const rng = new Rng(208);
  gradcheck(
    'mseLoss',
    [
      { name: 'input', values: rand(rng, [3, 4]), shape: [3, 4] },
      { name: 'target', values: rand(rng, [3, 4]), shape: [3, 4] },
    ],
    ([a, b]) => F.mseLoss(a!, b!),
  );
});

test('crossEntropy gradient for logits [5, 4] with and without label smoothing', () => {
  const rng = new Rng(209);
  const values = rand(rng, [5, 4], 2);
  withNoLeaks(() => {
    const target = torch.tensor([1, 0, 3, 3, 2], { dtype: 'int64' });
    for (const labelSmoothing of [0, 0.1]) {
      gradcheck(`crossEntropy ε=${labelSmoothing}`, [{ name: 'logits', values, shape: [5, 4] }], ([x]) => F.crossEntropy(x!, target, { labelSmoothing }));
      gradcheck(`crossEntropy none ε=${labelSmoothing}`, [{ name: 'logits', values, shape: [5, 4] }], ([x]) =>
        F.crossEntropy(x!, target, { labelSmoothing, reduction: 'none' }),
      );
    }
  });
});

test('composite conv2d → gelu → mean gradients for input [2, 2, 4, 4], weight [3, 2, 3, 3], bias [3]', () => {
  const rng = new Rng(210);
  gradcheck(
    'conv→gelu→mean',
    [
      { name: 'input', values: rand(rng, [2, 2, 4, 4]), shape: [2, 2, 4, 4] },
      { name: 'weight', values: rand(rng, [3, 2, 3, 3]), shape: [3, 2, 3, 3] },
      { name: 'bias', values: rand(rng, [3]), shape: [3] },
    ],
    ([x, w, b]) => F.gelu(F.conv2d(x!, w!, b!, { padding: 1 })).mean(),
  );
});

test('gradcheck itself catches a wrong gradient (detached branch)', () => {
  const rng = new Rng(211);
  assert.throws(
    () =>
      gradcheck('broken', [{ name: 'x', values: rand(rng, [4]), shape: [4] }], ([x]) => x!.mul(x!.detach())),
    /d\/dx/,
  );
});

test('an input without requiresGrad gets no gradient ([2, 3] linear weight frozen)', () => {
  const rng = new Rng(212);
  gradcheck(
    'frozen weight',
    [
      { name: 'input', values: rand(rng, [2, 3]), shape: [2, 3] },
      { name: 'weight', values: rand(rng, [2, 3]), shape: [2, 3], check: false },
    ],
    ([x, w]) => F.linear(x!, w!),
  );
});

// ---------------------------------------------------------------------------------------------------------
// Grad modes and autograd API

test('noGrad stops recording on [3] results and restores the mode, also after a throw', () => {
  withNoLeaks(() => {
    const x = torch.ones([3]).requiresGrad_();
    assert.equal(x.requiresGrad, true);
    assert.equal(x.isLeaf, true);
    assert.equal(torch.isGradEnabled(), true);
    const y = torch.noGrad(() => {
      assert.equal(torch.isGradEnabled(), false);
      return x.mul(2).add(1);
    });
    assert.equal(y.requiresGrad, false);
    assert.equal(torch.isGradEnabled(), true);
    assert.throws(() => y.sum().backward(), /grad/);
    // Recording resumes afterwards.
    const z = x.mul(2);
    assert.equal(z.requiresGrad, true);
    assert.equal(z.isLeaf, false);
    assert.throws(() => torch.noGrad(() => { throw new Error('inner'); }), /inner/);
    assert.equal(torch.isGradEnabled(), true);
    // enableGrad re-enables inside noGrad.
    const w = torch.noGrad(() => torch.enableGrad(() => x.mul(3)));
    assert.equal(w.requiresGrad, true);
    // In-place updates of a leaf that requires grad need noGrad.
    assert.throws(() => x.add_(1), /leaf|in-place/);
    torch.noGrad(() => x.add_(1));
    assert.deepEqual(x.toArray(), [2, 2, 2]);
  });
});

test('inferenceMode on [2, 2]: results do not require grad, cannot be saved for backward later, and the mode is restored', () => {
  withNoLeaks(() => {
    const x = torch.ones([2, 2]).requiresGrad_();
    const y = torch.inferenceMode(() => {
      assert.equal(torch.isGradEnabled(), false);
      return x.mul(3);
    });
    assert.equal(y.requiresGrad, false);
    assert.deepEqual(y.toArray(), [3, 3, 3, 3]);
    assert.equal(torch.isGradEnabled(), true);
    // Inference tensors cannot enter autograd afterwards.
    assert.throws(() => x.mul(y), /[Ii]nference/);
    assert.throws(() => torch.inferenceMode(() => { throw new Error('inner'); }), /inner/);
    assert.equal(torch.isGradEnabled(), true);
    const z = x.mul(2);
    assert.equal(z.requiresGrad, true);
  });
});

test('backward on a non-scalar [3] without a gradient throws a JS Error; with an explicit gradient it works', () => {
  withNoLeaks(() => {
    const x = fromValues([1, 2, 3], [3]).requiresGrad_();
    const y = x.mul(2);
    assert.throws(() => y.backward(), (e: unknown) => e instanceof Error && /scalar/.test(e.message));
    y.backward(fromValues([1, 10, 100], [3]));
    assert.deepEqual(x.grad!.toArray(), [2, 20, 200]);
    assert.throws(() => x.mul(2).backward(fromValues([1, 2], [2])), /shape|size|Mismatch/i);
  });
});

test('grad accumulates over two backward calls on [2]; grad = null resets it; retainGraph allows a second pass', () => {
  withNoLeaks(() => {
    const x = fromValues([1, -2], [2]).requiresGrad_();
    assert.equal(x.grad, null);
    x.mul(x).sum().backward(); // d/dx x² = 2x
    assert.deepEqual(x.grad!.toArray(), [2, -4]);
    x.mul(3).sum().backward();
    assert.deepEqual(x.grad!.toArray(), [5, -1]);
    x.grad = null;
    assert.equal(x.grad, null);
    x.mul(3).sum().backward();
    assert.deepEqual(x.grad!.toArray(), [3, 3]);
    // Setting a gradient explicitly.
    x.grad = fromValues([0.5, 0.5], [2]);
    assert.deepEqual(x.grad!.toArray(), [0.5, 0.5]);
    x.grad = null;
    // The graph is freed after backward unless retained.
    const loss = x.exp().sum();
    loss.backward(undefined, { retainGraph: true });
    loss.backward();
    assertClose(x.grad!.toArray(), [2 * Math.E, 2 * Math.exp(-2)], { atol: 1e-12 });
    assert.throws(() => loss.backward(), /second time|freed/);
    assert.throws(() => torch.tensor([1, 2], { dtype: 'int64' }).requiresGrad_(), /floating|complex/);
  });
});

test('detach of [3] shares data, cuts the graph and is a leaf without grad', () => {
  withNoLeaks(() => {
    const x = fromValues([1, 2, 3], [3]).requiresGrad_();
    const y = x.mul(2);
    const d = y.detach();
    assert.equal(d.requiresGrad, false);
    assert.equal(d.isLeaf, true);
    assert.deepEqual(d.toArray(), [2, 4, 6]);
    // The detached branch contributes no gradient.
    x.mul(d).sum().backward();
    assert.deepEqual(x.grad!.toArray(), [2, 4, 6]);
    // Same storage: writes through the detached tensor are visible in the original.
    const xd = x.detach();
    xd.fill_(7);
    assert.deepEqual(x.toArray(), [7, 7, 7]);
  });
});
