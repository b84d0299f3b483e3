// Profiling (torch.profile): libtorch's records of a call, paired and summed by operator.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as torch from '../src/torch/index.ts';

test('profile: the operators of the call and of its backward pass, each with its calls, own time and total time', () => {
  const a = torch.keep(torch.randn([64, 64]).requiresGrad_());
  try {
    torch.tidy(() => torch.exp(a).sum().item()); // outside the profile: not counted
    const { result, profile } = torch.profile(() => torch.tidy(() => {
      const y = torch.matmul(a, a).mul(2).sum();
      y.backward();
      return y.item();
    }));
    assert.ok(Number.isFinite(result));
    const op = (name: string) => profile.ops.find((o) => o.name === name);
    assert.equal(op('aten::exp'), undefined, 'an operator that ran before the profile is not in it');
    // One product forward, two backward (a is both factors, so both gradients are products).
    assert.equal(op('aten::mm')?.calls, 3);
    assert.equal(op('aten::matmul')?.calls, 1);
    assert.ok(op('MmBackward0') !== undefined, 'the backward pass is profiled too');
    for (const o of profile.ops) assert.ok(o.selfUs >= 0 && o.selfUs <= o.totalUs + 1e-6, `${o.name}: own time within its total`);
    // matmul calls mm: its total holds mm's forward call, so it is longer than its own time.
    assert.ok(op('aten::matmul')!.totalUs > op('aten::matmul')!.selfUs);
    assert.ok(profile.ops.every((o, i) => i === 0 || profile.ops[i - 1]!.selfUs >= o.selfUs), 'sorted by own time');
    assert.ok(profile.wallUs > 0 && op('aten::mm')!.totalUs < profile.wallUs, 'the call as a whole takes longer than its products');
  } finally {
    torch.dispose(a);
  }
});

test('profile: profiles do not nest, and a call that throws leaves the profiler stopped', () => {
  assert.throws(() => torch.profile(() => torch.profile(() => 0)), /already profiling/);
  assert.throws(() => torch.profile(() => {
    throw new Error('boom');
  }), /boom/);
  const { profile } = torch.profile(() => torch.tidy(() => torch.exp(torch.ones([4])).sum().item()));
  assert.equal(profile.ops.find((o) => o.name === 'aten::exp')?.calls, 1, 'a profile after both runs as usual');
});
