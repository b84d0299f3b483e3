// Mixed precision: autocast by dispatch, and bfloat16 training (`train --precision bf16`).
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadMnist } from '../src/data/datasets.ts';
import { readSafetensors } from '../src/io/safetensors.ts';
import { Conv2d } from '../src/nn/layers.ts';
import * as F from '../src/nn/functional.ts';
import { latestCheckpoint, logPath, readRunConfig } from '../src/pipelines/run-dir.ts';
import * as torch from '../src/torch/index.ts';
import { trainDiffusion } from '../src/training/train-diffusion.ts';

const bf16Problem = torch.cpuBfloat16Problem();

test('autocast: convolutions in bfloat16 inside, float32 outside, nested regions restore, float32 weight gradients', () => {
  torch.manualSeed(0);
  const conv = new Conv2d(2, 3, 3, { padding: 1 });
  const x = torch.randn([2, 2, 5, 5]);
  try {
    const inside = torch.autocast({ device: 'cpu' }, () => {
      const y = conv.forward(x);
      // A nested region leaves autocast on when it ends.
      torch.autocast({ device: 'cpu' }, () => undefined);
      const z = conv.forward(x);
      const dtypes = [y.dtype, z.dtype];
      const exact = conv.forward(x.mul(1)).float();
      torch.dispose([y, z]);
      return { dtypes, exact };
    });
    assert.deepEqual(inside.dtypes, ['bfloat16', 'bfloat16']);
    const outside = conv.forward(x);
    assert.equal(outside.dtype, 'float32');
    // bfloat16 keeps 8 bits of mantissa: the same convolution agrees to a few parts in a thousand.
    const a = inside.exact.data() as Float32Array;
    const b = outside.data() as Float32Array;
    const scale = Math.max(...Array.from(b, Math.abs));
    assert.ok(Math.max(...Array.from(a, (v, i) => Math.abs(v - b[i]!))) < 2e-2 * scale);
    assert.ok(a.some((v, i) => v !== b[i]), 'the autocast result is really bfloat16 arithmetic');
    // Gradients reach the float32 weights as float32.
    const loss = torch.autocast({ device: 'cpu' }, () => conv.forward(x)).float().pow(2).mean();
    loss.backward();
    assert.equal(conv.weight.grad?.dtype, 'float32');
    assert.ok((conv.weight.grad!.abs().sum().item() as number) > 0);
    torch.dispose([inside.exact, outside, loss]);
    assert.throws(() => torch.autocast({ device: 'tpu' }, () => 0), /device must be 'cpu' or 'cuda/);
  } finally {
    x.dispose();
    conv.dispose();
  }
});

test('bilinear resizing of bfloat16 on the CPU computes in float32', () => {
  const x = torch.randn([1, 2, 4, 4]);
  const y = F.interpolate(x.to({ dtype: 'bfloat16' }), { size: [7, 7], mode: 'bilinear', alignCorners: true });
  const ref = F.interpolate(x.to({ dtype: 'bfloat16' }).float(), { size: [7, 7], mode: 'bilinear', alignCorners: true });
  assert.equal(y.dtype, 'float32');
  assert.deepEqual(y.data(), ref.data());
  torch.dispose([x, y, ref]);
});

test('bfloat16 support is read from the CPU flags', () => {
  const flags = (f: string) => `processor\t: 0\nflags\t\t: fpu sse2 avx2 ${f}\n`;
  assert.equal(torch.cpuBfloat16Problem(flags('avx512f avx512_bf16')), undefined);
  assert.equal(torch.cpuBfloat16Problem(flags('amx_tile amx_bf16')), undefined);
  assert.match(torch.cpuBfloat16Problem(flags('avx512f avx512bw')) ?? '', /neither AVX-512 BF16 nor AMX-BF16/);
});

test('train --precision bf16: recorded, float32 weights, losses near float32 training, kept on resume', { skip: bf16Problem }, () => {
  const root = mkdtempSync(join(tmpdir(), 'ssddpm-precision-'));
  try {
    const images = loadMnist('test');
    const training = { epochs: 1, perClass: 6, batchSize: 20, seed: 4 };
    const losses = (run: string) => readFileSync(logPath(run), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { loss?: number }).filter((l) => l.loss !== undefined).map((l) => l.loss!);
    const bf16 = join(root, 'bf16');
    const fp32 = join(root, 'fp32');
    trainDiffusion({ out: bf16, model: 'small', images, training: { ...training, precision: 'bf16' } });
    trainDiffusion({ out: fp32, model: 'small', images, training });
    assert.equal(readRunConfig(bf16).training.precision, 'bf16');
    const [a, b] = [losses(bf16), losses(fp32)];
    assert.equal(a.length, 3);
    // The same first batch, noise and initial weights: only the arithmetic differs.
    assert.notEqual(a[0], b[0]);
    assert.ok(Math.abs(a[0]! - b[0]!) < 0.02 * b[0]!, `first losses ${a[0]} vs ${b[0]}`);
    for (const [name, t] of Object.entries(readSafetensors(latestCheckpoint(bf16)!.path).tensors)) {
      if (!name.startsWith('optimizer.')) assert.ok(t.dtype === 'F32' || t.dtype === 'I64', `${name}: ${t.dtype}`);
    }
    assert.throws(() => trainDiffusion({ out: bf16, resume: true, epochs: 2, training: { precision: 'float32' } }), /was trained with precision "bf16" \(asked: "float32"\)/);
    trainDiffusion({ out: bf16, resume: true, epochs: 2 });
    assert.equal(losses(bf16).length, 6);
    assert.equal(readRunConfig(bf16).training.precision, 'bf16');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
