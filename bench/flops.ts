// Floating-point work of our networks and this CPU's peak, for the GFLOP/s column of the bench.
// Only convolutions and linear layers are counted (2 FLOPs per multiply-add); activations, normalisation,
// pooling and the sampler's arithmetic are a few percent on top and left out, so the rates are lower bounds.
import { readFileSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import type { UNetConfig } from '../src/models/unet.ts';
import * as torch from '../src/torch/index.ts';

const conv3 = (cin: number, cout: number, side: number) => 2 * cin * cout * 9 * side * side;

/** FLOPs of one U-Net forward pass on one size×size image (same block layout as src/models/unet.ts). */
export function unetForwardFlops(c: UNetConfig, size: number): number {
  const width = (i: number) => c.baseChannels * 2 ** i;
  const ctx = 1 + c.numClasses + (c.extraContext ?? 0);
  let flops = 0;
  const sides: number[] = [];
  let side = size;
  for (let i = 0; i < c.depth; i++) {
    if (i > 0) side = Math.floor(side / 2);
    sides.push(side);
    const cin = i === 0 ? c.inChannels : width(i - 1);
    flops += 2 * (ctx * cin + cin * 2 * cin); // FiLM MLP
    flops += conv3(cin, width(i), side) + conv3(width(i), width(i), side);
  }
  for (let i = 0; i < c.depth; i++) {
    const level = c.depth - 1 - i;
    const cin = i === 0 ? width(level) : 2 * width(level);
    const cout = width(Math.max(level - 1, 0));
    flops += conv3(cin, cout, sides[level]!) + conv3(cout, cout, sides[level]!);
  }
  return flops + conv3(c.baseChannels, c.outChannels, size);
}

/** FLOPs of one CAS classifier forward pass on a 28×28 image. */
export function classifierForwardFlops(): number {
  return conv3(1, 32, 28) + conv3(32, 64, 12) + 2 * (64 * 6 * 6 * 128 + 128 * 10);
}

/** A training step costs about three forward passes (the backward pass computes two products per layer). */
export const TRAINING_FLOPS_PER_FORWARD = 3;

/**
 * The GFLOP/s libtorch's own matrix multiply reaches here (n × n products, the best of `reps` timed after one
 * warm-up): what a convolution-bound step could hope for, measured rather than read off a data sheet.
 */
export function measuredMatmulGflops(dtype: 'float32' | 'bfloat16', device = 'cpu', n = 2048, reps = 5): number {
  const a = torch.randn([n, n], { device }).to({ dtype });
  const b = torch.randn([n, n], { device }).to({ dtype });
  let best = Infinity;
  for (let i = 0; i <= reps; i++) {
    torch.cuda.synchronize();
    const start = performance.now();
    const c = a.matmul(b);
    torch.cuda.synchronize();
    const seconds = (performance.now() - start) / 1000;
    c.dispose();
    if (i > 0) best = Math.min(best, seconds);
  }
  torch.dispose([a, b]);
  return (2 * n ** 3) / best / 1e9;
}

export interface CpuPeak {
  gflops: number;
  description: string;
}

/**
 * Peak FP32 GFLOP/s = cores × clock × FLOPs per cycle, with 2 FMA units per core of 8 (AVX2) or 16 (AVX-512)
 * lanes. The FLOPs per cycle are those of the instruction set libtorch's kernels use here (ATen dispatches
 * AVX2; oneDNN may use AVX-512), so the peak is the AVX2 one.
 */
export function cpuPeak(): CpuPeak {
  const cores = availableParallelism();
  const model = cpus()[0]?.model ?? 'unknown CPU';
  const nominal = /@\s*([\d.]+)\s*GHz/.exec(model);
  const ghz = nominal ? Number(nominal[1]) : (cpus()[0]?.speed ?? 0) / 1000;
  let flags = '';
  try {
    flags = readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    // not Linux: assume AVX2
  }
  const avx512 = /\bavx512f\b/.test(flags);
  const perCycle = 2 * 8 * 2;
  return {
    gflops: cores * ghz * perCycle,
    description: `${cores} cores × ${ghz.toFixed(2)} GHz × ${perCycle} FLOP/cycle (2 AVX2 FMA units × 8 lanes × 2)${avx512 ? '; the CPU also has AVX-512, which would double it' : ''}`,
  };
}
