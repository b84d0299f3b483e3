// Shared test utilities: leak checks, a seeded PRNG, plain-JS array helpers and tolerant comparisons.
import { NoiseSchedule } from '../src/diffusion/schedule.ts';
import { disposePipeline, loadPipeline, samplePipeline, type PipelineSpec } from '../src/pipelines/pipeline.ts';
import type { SamplingOptions } from '../src/pipelines/sampling-model.ts';
import { Generator as TorchGenerator } from '../src/torch/generator.ts';
import assert from 'node:assert/strict';
import { memory, tidy } from '../src/torch/scope.ts';
import { tensor } from '../src/torch/ops/creation.ts';
import type { DType } from '../src/torch/dtype.ts';
import type { Tensor } from '../src/torch/tensor.ts';
import { setNumThreads } from '../src/torch/runtime.ts';

// Test tensors are tiny and `node --test` runs files in parallel, so intra-op threads only add contention
// (idle OpenMP workers spin; on a busy 2-core machine a small conv ran 50x slower with 2 threads). One thread
// unless TORCH_NUM_THREADS says otherwise.
if (process.env.TORCH_NUM_THREADS === undefined) setNumThreads(1);

/**
 * Runs `fn` inside `tidy` and asserts that the number of live native tensors is the same afterwards.
 * Tensors `fn` returns are released too, so a test body may simply return what it built.
 */
export function withNoLeaks(fn: () => unknown): void {
  const before = memory().numTensors;
  const depth = memory().scopeDepth;
  tidy(() => {
    fn();
  });
  const after = memory().numTensors;
  assert.equal(after, before, `native tensors leaked: ${before} before, ${after} after`);
  assert.equal(memory().scopeDepth, depth, 'a tidy scope was left open');
}

/** mulberry32: a tiny deterministic PRNG, so random tests are reproducible without any native code. */
export class Rng {
  #state: number;

  constructor(seed: number) {
    this.#state = seed >>> 0;
  }

  /** Uniform on [0, 1). */
  next(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }

  /** Integer on [lo, hi). */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo));
  }

  /** Standard normal (Box–Muller). */
  normal(): number {
    const u = 1 - this.next();
    const v = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(0, items.length)]!;
  }

  normals(n: number): number[] {
    return Array.from({ length: n }, () => this.normal());
  }

  uniforms(n: number, lo = -1, hi = 1): number[] {
    return Array.from({ length: n }, () => this.uniform(lo, hi));
  }
}

export const numelOf = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/** Row-major strides of a contiguous array of `shape`. */
export function stridesOf(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
}

/** Every multi-index of `shape` in row-major order. */
export function* indices(shape: readonly number[]): Generator<number[]> {
  const n = numelOf(shape);
  const idx = new Array<number>(shape.length).fill(0);
  for (let k = 0; k < n; k++) {
    yield idx.slice();
    for (let d = shape.length - 1; d >= 0; d--) {
      if (++idx[d]! < shape[d]!) break;
      idx[d] = 0;
    }
  }
}

/** A tensor holding `values` with `shape` (float64 unless said otherwise). */
export function fromValues(values: readonly number[], shape: readonly number[], dtype: DType = 'float64'): Tensor {
  return dtype === 'float64' ? tensor(Float64Array.from(values), { shape }) : tensor(Float32Array.from(values), { shape, dtype });
}

/** Elementwise |a - b| <= atol + rtol·|b|, with a message naming the first offending index. */
export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  opts: { atol?: number; rtol?: number; what?: string } = {},
): void {
  const atol = opts.atol ?? 1e-5;
  const rtol = opts.rtol ?? 1e-5;
  const what = opts.what ?? 'values';
  assert.equal(actual.length, expected.length, `${what}: length ${actual.length}, expected ${expected.length}`);
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    const err = Math.abs(a - e);
    if (!(err <= atol + rtol * Math.abs(e))) {
      assert.fail(`${what}[${i}]: got ${a}, expected ${e} (|diff| ${err.toExponential(3)} > atol ${atol} + rtol ${rtol}·|expected|)`);
    }
  }
}

export function assertShape(t: Tensor, shape: readonly number[], what = 'shape'): void {
  assert.deepEqual([...t.shape], [...shape], what);
}

/** The paper's cosine schedule (exponent 1.5 unless given) over T timesteps. */
export function cosineSchedule(numTimesteps: number, power = 1.5): NoiseSchedule {
  return new NoiseSchedule({ kind: 'cosine', numTimesteps, power });
}

/** The largest difference between `labels` sampled from `runs` on libtorch and on ONNX Runtime, one seed for both. */
export function engineDifference(runs: string[], labels: readonly number[], opts: SamplingOptions, seed = 4, spec: Omit<PipelineSpec, 'runs' | 'engine'> = {}): number {
  const pipelines = (['libtorch', 'onnxruntime'] as const).map((engine) => loadPipeline({ ...spec, runs, engine }));
  try {
    return tidy(() => {
      const [x, y] = pipelines.map((p) => samplePipeline(p, labels, { ...opts, generator: new TorchGenerator(seed) }));
      return x!.sub(y!).abs().max().item() as number;
    });
  } finally {
    pipelines.forEach(disposePipeline);
  }
}
