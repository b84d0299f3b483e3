import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../src/torch/index.ts';
import type { Tensor } from '../src/torch/tensor.ts';
import type { TypedArrayLike } from '../src/torch/binding.ts';
import { Rng, assertClose, assertShape, fromValues, indices, numelOf, stridesOf, withNoLeaks } from './helpers.ts';

// ---------------------------------------------------------------------------------------------------------
// Plain-JS references

/** The values of a row-major array of `shape` permuted by `perm` (as torch.permute(...).contiguous()). */
function jsPermute(values: readonly number[], shape: readonly number[], perm: readonly number[]): number[] {
  const strides = stridesOf(shape);
  const outShape = perm.map((p) => shape[p]!);
  const out: number[] = [];
  for (const idx of indices(outShape)) {
    let off = 0;
    idx.forEach((v, d) => (off += v * strides[perm[d]!]!));
    out.push(values[off]!);
  }
  return out;
}

/** Gathers `values` of `shape` at the positions where `keep(idx)` holds, in row-major order. */
function jsPick(values: readonly number[], shape: readonly number[], keep: (idx: number[]) => boolean): number[] {
  const out: number[] = [];
  let k = 0;
  for (const idx of indices(shape)) {
    if (keep(idx)) out.push(values[k]!);
    k++;
  }
  return out;
}

/** Groups the elements by their index with `dims` removed and reduces each group. */
function jsReduce(
  values: readonly number[],
  shape: readonly number[],
  dims: readonly number[],
  reducer: (group: number[]) => number,
): number[] {
  const norm = dims.map((d) => (d < 0 ? d + shape.length : d));
  const outShape = shape.map((s, d) => (norm.includes(d) ? 1 : s));
  const outStrides = stridesOf(outShape);
  const groups: number[][] = Array.from({ length: numelOf(outShape) }, () => []);
  let k = 0;
  for (const idx of indices(shape)) {
    let off = 0;
    idx.forEach((v, d) => (off += (norm.includes(d) ? 0 : v) * outStrides[d]!));
    groups[off]!.push(values[k++]!);
  }
  return groups.map(reducer);
}

const jsSum = (g: number[]): number => g.reduce((a, b) => a + b, 0);
const jsMean = (g: number[]): number => jsSum(g) / g.length;
const jsVar = (correction: number) => (g: number[]): number => {
  const m = jsMean(g);
  return g.reduce((a, b) => a + (b - m) ** 2, 0) / (g.length - correction);
};
const jsArgmax = (g: number[]): number => g.reduce((best, v, i) => (v > g[best]! ? i : best), 0);

const arange = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

// ---------------------------------------------------------------------------------------------------------
// Creation and data round trips

test('typed array round trips [2, 3] for float32, float64, int64, int32, uint8 and bool', () => {
  withNoLeaks(() => {
    const cases: { dtype: string; data: TypedArrayLike; ctor: Function; opts?: { dtype: 'bool' } }[] = [
      { dtype: 'float32', data: Float32Array.from([-0, 1.5, -Infinity, Infinity, 3.4e38, -1e-30]), ctor: Float32Array },
      { dtype: 'float64', data: Float64Array.from([Math.PI, -0, 1e-300, -1e300, Infinity, 2 ** 53 + 2]), ctor: Float64Array },
      { dtype: 'int64', data: BigInt64Array.from([-(2n ** 63n), 2n ** 63n - 1n, 0n, -1n, 2n ** 53n + 1n, 42n]), ctor: BigInt64Array },
      { dtype: 'int32', data: Int32Array.from([-(2 ** 31), 2 ** 31 - 1, 0, -1, 65536, 7]), ctor: Int32Array },
      { dtype: 'uint8', data: Uint8Array.from([0, 1, 127, 128, 254, 255]), ctor: Uint8Array },
      { dtype: 'bool', data: Uint8Array.from([1, 0, 0, 1, 1, 0]), ctor: Uint8Array, opts: { dtype: 'bool' } },
    ];
    for (const c of cases) {
      const t = torch.tensor(c.data, { shape: [2, 3], ...c.opts });
      assert.equal(t.dtype, c.dtype);
      assertShape(t, [2, 3], `${c.dtype} shape`);
      assert.equal(t.numel, 6);
      assert.equal(t.ndim, 2);
      assert.equal(t.device, 'cpu');
      const back = t.data();
      assert.ok(back instanceof c.ctor, `${c.dtype}: came back as ${back.constructor.name}`);
      assert.deepEqual(Array.from(back as ArrayLike<unknown>), Array.from(c.data as ArrayLike<unknown>), `${c.dtype} values`);
      // The input array is copied, not shared.
      assert.notEqual(back.buffer, c.data.buffer);
    }
    // NaN survives (deepEqual treats NaN as equal to itself).
    const nan = torch.tensor(Float32Array.from([NaN]));
    assert.ok(Number.isNaN(nan.item()));
    // A subarray view starts at its own offset.
    const base = Float64Array.from([9, 8, 7, 6, 5]);
    assert.deepEqual(torch.tensor(base.subarray(2, 4)).toArray(), [7, 6]);
    // Empty tensors.
    const empty = torch.tensor(new Float32Array(0), { shape: [0, 3] });
    assertShape(empty, [0, 3]);
    assert.equal(empty.data().length, 0);
  });
});

test('typed array with a dtype conversion creates exactly one native tensor', () => {
  const before = torch.memory().numTensors;
  const t = torch.tensor(Int32Array.from([1, -2, 3]), { dtype: 'float64' });
  assert.equal(torch.memory().numTensors, before + 1);
  assert.equal(t.dtype, 'float64');
  assert.deepEqual(t.toArray(), [1, -2, 3]);
  t.dispose();
  assert.equal(torch.memory().numTensors, before);
});

test('nested-array creation [2, 2, 3] with default float32, int64 and bool dtypes', () => {
  withNoLeaks(() => {
    const nested = [
      [
        [1, 2, 3],
        [4, 5, 6],
      ],
      [
        [7, 8, 9],
        [10, 11, 12.5],
      ],
    ];
    const t = torch.tensor(nested);
    assert.equal(t.dtype, 'float32');
    assertShape(t, [2, 2, 3]);
    assert.deepEqual(t.toArray(), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12.5]);
    const i = torch.tensor([[-3, 4]], { dtype: 'int64' });
    assert.equal(i.dtype, 'int64');
    assertShape(i, [1, 2]);
    assert.deepEqual(i.toArray(), [-3, 4]);
    const b = torch.tensor([true, false, true]);
    assert.equal(b.dtype, 'float32'); // nested booleans are numbers unless a dtype says otherwise
    assert.deepEqual(torch.tensor([true, false, true], { dtype: 'bool' }).toArray(), [1, 0, 1]);
    assert.equal(torch.tensor(true).dtype, 'bool');
    const scalar = torch.tensor(2.5);
    assertShape(scalar, []);
    assert.equal(scalar.numel, 1);
    assert.throws(() => torch.tensor([[1, 2], [3]]), RangeError);
    assert.throws(() => torch.tensor([[1, 2], 3] as unknown as number[][]), RangeError);
    assert.throws(() => torch.tensor(['a'] as unknown as number[]), TypeError);
  });
});

test('item on [] and [1, 1] tensors of float32, float64, int64 and bool; throws on [2]', () => {
  withNoLeaks(() => {
    assert.equal(torch.tensor(3.25).item(), 3.25);
    assert.equal(torch.tensor([[-7]], { dtype: 'int64' }).item(), -7);
    assert.equal(torch.tensor(Float64Array.from([Math.E]), { shape: [1, 1] }).item(), Math.E);
    assert.equal(torch.tensor(true).item(), 1);
    assert.equal(torch.ones([2]).sum().item(), 2);
    assert.throws(() => torch.ones([2]).item(), RangeError);
  });
});

test('to({dtype}) on [2, 3]: float32 → int64 truncates, → bool tests non-zero, → float64 is exact', () => {
  withNoLeaks(() => {
    const values = [1.5, -1.7, 0, 2.99, -0.2, 1e6];
    const t = torch.tensor(Float32Array.from(values), { shape: [2, 3] });
    const i = t.to({ dtype: 'int64' });
    assert.equal(i.dtype, 'int64');
    assertShape(i, [2, 3]);
    assert.deepEqual(i.toArray(), values.map(Math.trunc).map((v) => v + 0));
    const b = t.to({ dtype: 'bool' });
    assert.equal(b.dtype, 'bool');
    assert.deepEqual(b.toArray(), values.map((v) => (v !== 0 ? 1 : 0)));
    const d = t.to({ dtype: 'float64' });
    assert.equal(d.dtype, 'float64');
    assert.deepEqual(d.toArray(), Array.from(Float32Array.from(values)));
    const back = i.to({ dtype: 'float32' });
    assert.equal(back.dtype, 'float32');
    assert.deepEqual(back.toArray(), [1, -1, 0, 2, 0, 1e6]);
    assert.equal(torch.tensor([300], { dtype: 'int32' }).to({ dtype: 'uint8' }).item(), 300 % 256);
    assert.equal(t.long().dtype, 'int64');
    assert.equal(i.float().dtype, 'float32');
    // Same dtype: an alias with the same values (its own handle).
    const same = t.to({ dtype: 'float32' });
    assert.notEqual(same, t);
    assert.deepEqual(same.toArray(), t.toArray());
    // copy: true gives independent storage.
    const copy = t.to({ dtype: 'float32', copy: true });
    copy.fill_(0);
    assert.deepEqual(t.toArray(), Array.from(Float32Array.from(values)));
  });
});

// ---------------------------------------------------------------------------------------------------------
// Shape ops

test('reshape, view and flatten of [2, 3, 4] keep row-major order; -1 is inferred', () => {
  withNoLeaks(() => {
    const x = fromValues(arange(24), [2, 3, 4]);
    const r = x.reshape([4, -1]);
    assertShape(r, [4, 6]);
    assert.deepEqual(r.toArray(), arange(24));
    assertShape(x.view([6, 4]), [6, 4]);
    assertShape(x.flatten(), [24]);
    assertShape(x.flatten(1), [2, 12]);
    assertShape(x.flatten(0, 1), [6, 4]);
    assert.throws(() => x.reshape([5, 5]), Error);
  });
});

test('permute [2, 3, 4] → [4, 2, 3] and transpose(0, 2) against plain JS', () => {
  withNoLeaks(() => {
    const rng = new Rng(11);
    const vals = rng.normals(24);
    const x = fromValues(vals, [2, 3, 4]);
    const p = x.permute([2, 0, 1]);
    assertShape(p, [4, 2, 3]);
    assert.deepEqual(p.toArray(), jsPermute(vals, [2, 3, 4], [2, 0, 1]));
    const t = x.transpose(0, 2);
    assertShape(t, [4, 3, 2]);
    assert.deepEqual(t.toArray(), jsPermute(vals, [2, 3, 4], [2, 1, 0]));
    assert.deepEqual(x.transpose(-1, -2).toArray(), jsPermute(vals, [2, 3, 4], [0, 2, 1]));
    // A permuted (non-contiguous) tensor cannot be viewed to another size but can be reshaped.
    assert.throws(() => p.view([24]), /view/);
    assert.deepEqual(p.reshape([24]).toArray(), jsPermute(vals, [2, 3, 4], [2, 0, 1]));
    assert.deepEqual(p.contiguous().view([24]).toArray(), jsPermute(vals, [2, 3, 4], [2, 0, 1]));
  });
});

test('cat of [2, 3] and [1, 3] on dim 0 and of [2, 3] and [2, 2] on dim -1', () => {
  withNoLeaks(() => {
    const a = fromValues(arange(6), [2, 3]);
    const b = fromValues([10, 11, 12], [1, 3]);
    const c0 = torch.cat([a, b], 0);
    assertShape(c0, [3, 3]);
    assert.deepEqual(c0.toArray(), [0, 1, 2, 3, 4, 5, 10, 11, 12]);
    const d = fromValues([20, 21, 22, 23], [2, 2]);
    const c1 = torch.cat([a, d], -1);
    assertShape(c1, [2, 5]);
    assert.deepEqual(c1.toArray(), [0, 1, 2, 20, 21, 3, 4, 5, 22, 23]);
    assert.throws(() => torch.cat([a, d], 0), /size/i);
  });
});

test('stack of three [2, 2] tensors on dims 0, 1 and 2', () => {
  withNoLeaks(() => {
    const parts = [0, 1, 2].map((k) => fromValues([4 * k, 4 * k + 1, 4 * k + 2, 4 * k + 3], [2, 2]));
    const all = parts.flatMap((p) => p.toArray());
    const s0 = torch.stack(parts, 0);
    assertShape(s0, [3, 2, 2]);
    assert.deepEqual(s0.toArray(), all);
    const s1 = torch.stack(parts, 1);
    assertShape(s1, [2, 3, 2]);
    assert.deepEqual(s1.toArray(), jsPermute(all, [3, 2, 2], [1, 0, 2]));
    const s2 = torch.stack(parts, 2);
    assertShape(s2, [2, 2, 3]);
    assert.deepEqual(s2.toArray(), jsPermute(all, [3, 2, 2], [1, 2, 0]));
  });
});

test('split of [5, 2] into size 2 (2, 2, 1) and into sizes [1, 4]; split of [2, 5] on dim 1', () => {
  withNoLeaks(() => {
    const x = fromValues(arange(10), [5, 2]);
    const parts = x.split(2);
    assert.deepEqual(parts.map((p) => [...p.shape]), [[2, 2], [2, 2], [1, 2]]);
    assert.deepEqual(parts.map((p) => p.toArray()), [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]);
    const sized = x.split([1, 4]);
    assert.deepEqual(sized.map((p) => [...p.shape]), [[1, 2], [4, 2]]);
    assert.deepEqual(sized[1]!.toArray(), arange(8).map((v) => v + 2));
    const y = fromValues(arange(10), [2, 5]);
    const cols = y.split([3, 2], 1);
    assert.deepEqual(cols[0]!.toArray(), [0, 1, 2, 5, 6, 7]);
    assert.deepEqual(cols[1]!.toArray(), [3, 4, 8, 9]);
    assert.throws(() => x.split([1, 1]), /split/i);
  });
});

test('slice of [4, 6] with negative start/end and steps, narrow and select', () => {
  withNoLeaks(() => {
    const shape = [4, 6];
    const vals = arange(24);
    const x = fromValues(vals, shape);
    // x[:, -4:-1]
    const s = x.slice(1, -4, -1);
    assertShape(s, [4, 3]);
    assert.deepEqual(s.toArray(), jsPick(vals, shape, ([, j]) => j! >= 2 && j! < 5));
    // x[-2:]
    assert.deepEqual(x.slice(0, -2).toArray(), jsPick(vals, shape, ([i]) => i! >= 2));
    // x[:, ::2]
    assert.deepEqual(x.slice(1, null, null, 2).toArray(), jsPick(vals, shape, ([, j]) => j! % 2 === 0));
    // x[1:3, 1::3]
    assert.deepEqual(x.slice(0, 1, 3).slice(1, 1, null, 3).toArray(), [7, 10, 13, 16]);
    // Out-of-range ends clamp as in Python.
    assertShape(x.slice(1, -100, 100), [4, 6]);
    assertShape(x.slice(1, 5, 2), [4, 0]);
    // narrow(dim, start, length), negative start
    const n = x.narrow(1, -3, 2);
    assert.deepEqual(n.toArray(), jsPick(vals, shape, ([, j]) => j === 3 || j === 4));
    assert.throws(() => x.narrow(0, 3, 2), Error);
    // select
    const row = x.select(0, -1);
    assertShape(row, [6]);
    assert.deepEqual(row.toArray(), [18, 19, 20, 21, 22, 23]);
    assert.deepEqual(x.select(1, 2).toArray(), [2, 8, 14, 20]);
    assert.throws(() => x.select(0, 4), /out of range/);
  });
});

test('slices are views: writes through slice of [3, 3] reach the base tensor', () => {
  withNoLeaks(() => {
    const x = torch.zeros([3, 3]);
    x.select(0, 1).fill_(5);
    x.slice(1, -1).fill_(7);
    assert.deepEqual(x.toArray(), [0, 0, 7, 5, 5, 7, 0, 0, 7]);
  });
});

test('index of [3, 4] with int64 tensors, null keeping a dimension, and indexSelect', () => {
  withNoLeaks(() => {
    const vals = arange(12).map((v) => v * 1.5);
    const x = fromValues(vals, [3, 4]);
    const rows = torch.tensor([2, 0, 2], { dtype: 'int64' });
    const picked = torch.index(x, [rows]);
    assertShape(picked, [3, 4]);
    assert.deepEqual(picked.toArray(), [...vals.slice(8, 12), ...vals.slice(0, 4), ...vals.slice(8, 12)]);
    const cols = torch.tensor([-1, 1], { dtype: 'int64' });
    const byCol = torch.index(x, [null, cols]);
    assertShape(byCol, [3, 2]);
    assert.deepEqual(byCol.toArray(), [vals[3], vals[1], vals[7], vals[5], vals[11], vals[9]]);
    const pairs = torch.index(x, [torch.tensor([0, 2], { dtype: 'int64' }), torch.tensor([3, 0], { dtype: 'int64' })]);
    assert.deepEqual(pairs.toArray(), [vals[3], vals[8]]);
    // Boolean mask
    const mask = torch.tensor([true, false, true], { dtype: 'bool' });
    assert.deepEqual(torch.index(x, [mask]).toArray(), [...vals.slice(0, 4), ...vals.slice(8, 12)]);
    assert.deepEqual(x.indexSelect(1, torch.tensor([3, 1], { dtype: 'int64' })).toArray(), byCol.toArray());
    assert.throws(() => torch.index(x, [torch.tensor([3], { dtype: 'int64' })]), /out of bounds/);
  });
});

test('squeeze, unsqueeze and expand of [1, 3, 1]', () => {
  withNoLeaks(() => {
    const x = fromValues([1, 2, 3], [1, 3, 1]);
    assertShape(x.squeeze(), [3]);
    assertShape(x.squeeze(0), [3, 1]);
    assertShape(x.squeeze(-1), [1, 3]);
    assertShape(x.squeeze(1), [1, 3, 1]); // not of size 1: unchanged
    assertShape(x.unsqueeze(0), [1, 1, 3, 1]);
    assertShape(x.unsqueeze(-1), [1, 3, 1, 1]);
    assertShape(x.unsqueeze(2), [1, 3, 1, 1]);
    const e = x.expand([2, 3, 4]);
    assertShape(e, [2, 3, 4]);
    assert.deepEqual(e.toArray(), [1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3]);
    assertShape(x.expand([-1, -1, 5]), [1, 3, 5]);
    assert.throws(() => x.expand([2, 4, 1]), /expand|size/);
  });
});

// ---------------------------------------------------------------------------------------------------------
// Arithmetic

test('broadcasting arithmetic: [2, 1, 3] with [4, 3] gives [2, 4, 3]', () => {
  withNoLeaks(() => {
    const rng = new Rng(5);
    const av = rng.normals(6);
    const bv = rng.normals(12).map((v) => v + 3); // away from zero for division
    const a = fromValues(av, [2, 1, 3]);
    const b = fromValues(bv, [4, 3]);
    const ref = (f: (x: number, y: number) => number): number[] => {
      const out: number[] = [];
      for (const [i, j, k] of indices([2, 4, 3])) out.push(f(av[i! * 3 + k!]!, bv[j! * 3 + k!]!));
      return out;
    };
    const sum = a.add(b);
    assertShape(sum, [2, 4, 3]);
    assertClose(sum.toArray(), ref((x, y) => x + y), { atol: 1e-12, what: 'add' });
    assertClose(a.sub(b, 2).toArray(), ref((x, y) => x - 2 * y), { atol: 1e-12, what: 'sub alpha 2' });
    assertClose(a.mul(b).toArray(), ref((x, y) => x * y), { atol: 1e-12, what: 'mul' });
    assertClose(a.div(b).toArray(), ref((x, y) => x / y), { atol: 1e-12, what: 'div' });
    assertClose(b.add(a).toArray(), ref((x, y) => y + x), { atol: 1e-12, what: 'add reversed' });
    assertClose(a.mul(2).add(1).toArray(), av.map((x) => 2 * x + 1), { atol: 1e-12, what: 'scalar ops' });
    assertClose(torch.maximum(a, b).toArray(), ref(Math.max), { atol: 0, what: 'maximum' });
    assertClose(a.pow(2).toArray(), av.map((x) => x * x), { atol: 1e-12, what: 'pow' });
    assert.throws(() => a.add(fromValues([1, 2], [2])), /size|match/);
    // In-place broadcasting into the larger operand.
    const acc = torch.zeros([2, 4, 3], { dtype: 'float64' });
    acc.add_(a).add_(b);
    assertClose(acc.toArray(), ref((x, y) => x + y), { atol: 1e-12, what: 'add_' });
    // An in-place op cannot grow its target.
    assert.throws(() => fromValues(av, [2, 1, 3]).add_(b), /broadcast|shape|size/);
    // Mixed dtypes promote as in PyTorch.
    const i = torch.tensor([1, 2, 3], { dtype: 'int64' });
    const f = i.add(torch.tensor([0.5, 0.5, 0.5]));
    assert.equal(f.dtype, 'float32');
    assert.deepEqual(f.toArray(), [1.5, 2.5, 3.5]);
    assert.equal(i.mul(2).dtype, 'int64');
  });
});

// ---------------------------------------------------------------------------------------------------------
// Reductions

test('sum and mean of random [3, 4, 5] over dims 0, [0, 2], -1 with and without keepdim', () => {
  withNoLeaks(() => {
    const shape = [3, 4, 5];
    const vals = new Rng(21).normals(60);
    const x = fromValues(vals, shape);
    assertClose([x.sum().item()], [jsSum(vals)], { atol: 1e-12, what: 'sum all' });
    assertClose([x.mean().item()], [jsMean(vals)], { atol: 1e-12, what: 'mean all' });
    for (const dims of [[0], [0, 2], [-1], [1, 2]]) {
      const kept = shape.map((s, d) => (dims.map((v) => (v < 0 ? v + 3 : v)).includes(d) ? 1 : s));
      const dropped = kept.filter((_, d) => !dims.map((v) => (v < 0 ? v + 3 : v)).includes(d));
      const s = x.sum(dims);
      assertShape(s, dropped, `sum ${dims} shape`);
      assertClose(s.toArray(), jsReduce(vals, shape, dims, jsSum), { atol: 1e-12, what: `sum ${dims}` });
      const sk = x.sum(dims, true);
      assertShape(sk, kept, `sum ${dims} keepdim shape`);
      assertClose(sk.toArray(), jsReduce(vals, shape, dims, jsSum), { atol: 1e-12, what: `sum ${dims} keepdim` });
      const m = x.mean(dims, true);
      assertShape(m, kept);
      assertClose(m.toArray(), jsReduce(vals, shape, dims, jsMean), { atol: 1e-12, what: `mean ${dims}` });
    }
    // A float32 sum of integers is exact at this size; an int64 sum stays int64.
    const ints = torch.tensor([1, 2, 3, 4], { dtype: 'int64' });
    assert.equal(ints.sum().dtype, 'int64');
    assert.equal(ints.sum().item(), 10);
  });
});

test('variance with correction 0 and 1 over dims of random [4, 6]', () => {
  withNoLeaks(() => {
    const shape = [4, 6];
    const vals = new Rng(3).normals(24).map((v) => 2 * v + 1);
    const x = fromValues(vals, shape);
    for (const correction of [0, 1]) {
      assertClose([torch.variance(x, undefined, false, correction).item()], [jsVar(correction)(vals)], { atol: 1e-12, what: `var all c=${correction}` });
      for (const dim of [0, 1]) {
        const v = torch.variance(x, dim, false, correction);
        assertShape(v, [shape[1 - dim]!]);
        assertClose(v.toArray(), jsReduce(vals, shape, [dim], jsVar(correction)), { atol: 1e-12, what: `var dim ${dim} c=${correction}` });
        const vk = torch.variance(x, dim, true, correction);
        assertShape(vk, dim === 0 ? [1, 6] : [4, 1]);
        const sd = torch.std(x, dim, false, correction);
        assertClose(sd.toArray(), jsReduce(vals, shape, [dim], jsVar(correction)).map(Math.sqrt), { atol: 1e-12, what: `std c=${correction}` });
      }
    }
    // Default is the unbiased estimate.
    assertClose(torch.variance(x, 1).toArray(), jsReduce(vals, shape, [1], jsVar(1)), { atol: 1e-12 });
  });
});

test('argmax, maxDim, max and min of random [3, 5] against plain JS', () => {
  withNoLeaks(() => {
    const shape = [3, 5];
    const vals = new Rng(8).normals(15);
    const x = fromValues(vals, shape);
    const am = x.argmax();
    assert.equal(am.dtype, 'int64');
    assertShape(am, []);
    assert.equal(am.item(), jsArgmax(vals));
    for (const dim of [0, 1, -1]) {
      const d = dim < 0 ? dim + 2 : dim;
      const expectedIdx = jsReduce(vals, shape, [d], jsArgmax);
      const expectedMax = jsReduce(vals, shape, [d], (g) => Math.max(...g));
      assert.deepEqual(x.argmax(dim).toArray(), expectedIdx, `argmax ${dim}`);
      assertShape(x.argmax(dim, true), d === 0 ? [1, 5] : [3, 1]);
      const [values, idx] = torch.maxDim(x, dim);
      assert.deepEqual(values.toArray(), expectedMax, `maxDim values ${dim}`);
      assert.deepEqual(idx.toArray(), expectedIdx, `maxDim indices ${dim}`);
      assert.equal(idx.dtype, 'int64');
      const [vk] = torch.maxDim(x, dim, true);
      assertShape(vk, d === 0 ? [1, 5] : [3, 1]);
    }
    assert.equal(x.max().item(), Math.max(...vals));
    assert.equal(x.min().item(), Math.min(...vals));
  });
});

// ---------------------------------------------------------------------------------------------------------
// Memory management

test('tidy frees intermediates; returned tensors (also in arrays/objects) survive', () => {
  withNoLeaks(() => {
    const start = torch.memory().numTensors;
    let inner: Tensor | undefined;
    const out = torch.tidy(() => {
      inner = torch.ones([2]);
      const a = inner.add(1);
      const b = a.mul(3);
      return { b, list: [a.sub(1)], nested: new Map([['k', b.add(1)]]) };
    });
    assert.equal(inner!.isDisposed, true);
    assert.equal(out.b.isDisposed, false);
    assert.deepEqual(out.b.toArray(), [6, 6]);
    assert.deepEqual(out.list[0]!.toArray(), [1, 1]);
    assert.deepEqual(out.nested.get('k')!.toArray(), [7, 7]);
    assert.equal(torch.memory().numTensors, start + 3);
  });
});

test('kept tensors survive tidy; nested scopes hand results outwards', () => {
  withNoLeaks(() => {
    const start = torch.memory().numTensors;
    let kept: Tensor | undefined;
    let innerTemp: Tensor | undefined;
    let innerResult: Tensor | undefined;
    const outer = torch.tidy(() => {
      kept = torch.keep(torch.zeros([3]));
      innerResult = torch.tidy(() => {
        innerTemp = torch.ones([3]);
        return innerTemp.mul(2);
      });
      assert.equal(innerTemp!.isDisposed, true);
      assert.equal(innerResult.isDisposed, false);
      assert.equal(torch.memory().scopeDepth, 2); // withNoLeaks' and this one
      return innerResult.add(kept);
    });
    // innerResult moved to the outer scope, which released it since it was not returned.
    assert.equal(innerResult!.isDisposed, true);
    assert.equal(kept!.isDisposed, false);
    assert.deepEqual(outer.toArray(), [2, 2, 2]);
    assert.equal(torch.memory().numTensors, start + 2);
    kept!.dispose();
  });
});

test('an exception inside tidy frees every tensor created in it, nested scopes included', () => {
  withNoLeaks(() => {
    const start = torch.memory().numTensors;
    const created: Tensor[] = [];
    assert.throws(
      () =>
        torch.tidy(() => {
          created.push(torch.ones([4]));
          torch.tidy(() => {
            created.push(torch.zeros([4]));
            return created.at(-1);
          });
          created.push(created[0]!.add(1));
          throw new Error('boom');
        }),
      /boom/,
    );
    assert.equal(created.length, 3);
    assert.ok(created.every((t) => t.isDisposed));
    assert.equal(torch.memory().numTensors, start);
    assert.equal(torch.memory().scopeDepth, 1);
    // A native error inside tidy behaves the same.
    assert.throws(() => torch.tidy(() => torch.ones([2]).add(torch.ones([3]))), /size/);
    assert.equal(torch.memory().numTensors, start);
  });
});

test('tidy rejects an async function (Promise) and frees what it created synchronously', () => {
  withNoLeaks(() => {
    const start = torch.memory().numTensors;
    let t: Tensor | undefined;
    assert.throws(
      () =>
        torch.tidy(async () => {
          t = torch.ones([2]);
          return t;
        }),
      /synchronous|Promise/,
    );
    assert.equal(t!.isDisposed, true);
    assert.equal(torch.memory().numTensors, start);
  });
});

test('dispose is idempotent, dispose(container) frees nested tensors, use after dispose throws an Error', () => {
  withNoLeaks(() => {
    const start = torch.memory().numTensors;
    const t = torch.ones([2, 2]);
    t.dispose();
    t.dispose();
    assert.equal(t.isDisposed, true);
    assert.equal(torch.memory().numTensors, start);
    assert.equal(t.toString(), 'Tensor(disposed)');
    for (const use of [() => t.toArray(), () => t.shape, () => t.add(1), () => torch.ones([2, 2]).add(t), () => t.sum(), () => t.requiresGrad]) {
      assert.throws(use, (e: unknown) => e instanceof Error && /dispose|released/.test(e.message));
    }
    const bag = { a: torch.ones([1]), b: [torch.zeros([1]), new Map([['c', torch.ones([1])]])] };
    torch.dispose(bag);
    assert.ok(bag.a.isDisposed);
    assert.equal(torch.memory().numTensors, start + 1); // the ones([2, 2]) made in the loop above
    // Views keep their data alive after the base is disposed.
    const base = fromValues([1, 2, 3, 4], [2, 2]);
    const view = base.select(0, 1);
    base.dispose();
    assert.deepEqual(view.toArray(), [3, 4]);
    // `using` releases at block end.
    {
      using scoped = torch.ones([3]);
      assert.equal(scoped.isDisposed, false);
    }
  });
});
