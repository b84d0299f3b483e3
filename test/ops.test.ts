import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as torch from '../src/torch/index.ts';
import * as F from '../src/nn/functional.ts';
import { Rng, assertClose, assertShape, fromValues, indices, numelOf, stridesOf, withNoLeaks } from './helpers.ts';

interface OpsFixture {
  antialias_28_to_14: { input_shape: number[]; input: number[]; output_shape: number[]; output: number[] };
  randn_seed1: { shape: number[]; values: number[] };
}
const fixture = JSON.parse(readFileSync(new URL('./fixtures/ops.json', import.meta.url), 'utf8')) as OpsFixture;

/** Reads element `idx` of a row-major array of `shape`. */
function at(values: readonly number[], shape: readonly number[], idx: readonly number[]): number {
  const s = stridesOf(shape);
  let off = 0;
  for (let d = 0; d < idx.length; d++) off += idx[d]! * s[d]!;
  return values[off]!;
}

// ---------------------------------------------------------------------------------------------------------
// Convolution, pooling, linear

interface ConvParams {
  stride: [number, number];
  padding: [number, number];
  dilation: [number, number];
  groups: number;
}

function naiveConv2d(
  x: number[], xs: number[], w: number[], ws: number[], b: number[] | null, p: ConvParams,
): { out: number[]; shape: number[] } {
  const [n, cin, h, wd] = xs as [number, number, number, number];
  const [cout, cinG, kh, kw] = ws as [number, number, number, number];
  assert.equal(cinG * p.groups, cin);
  const oh = Math.floor((h + 2 * p.padding[0] - p.dilation[0] * (kh - 1) - 1) / p.stride[0]) + 1;
  const ow = Math.floor((wd + 2 * p.padding[1] - p.dilation[1] * (kw - 1) - 1) / p.stride[1]) + 1;
  const coutG = cout / p.groups;
  const out: number[] = [];
  for (let b0 = 0; b0 < n; b0++)
    for (let co = 0; co < cout; co++) {
      const g = Math.floor(co / coutG);
      for (let oy = 0; oy < oh; oy++)
        for (let ox = 0; ox < ow; ox++) {
          let acc = b === null ? 0 : b[co]!;
          for (let ci = 0; ci < cinG; ci++)
            for (let ky = 0; ky < kh; ky++)
              for (let kx = 0; kx < kw; kx++) {
                const iy = oy * p.stride[0] - p.padding[0] + ky * p.dilation[0];
                const ix = ox * p.stride[1] - p.padding[1] + kx * p.dilation[1];
                if (iy < 0 || iy >= h || ix < 0 || ix >= wd) continue;
                acc += at(x, xs, [b0, g * cinG + ci, iy, ix]) * at(w, ws, [co, ci, ky, kx]);
              }
          out.push(acc);
        }
    }
  return { out, shape: [n, cout, oh, ow] };
}

test('conv2d [2, 4, 9, 8] * [6, 2, 3, 3] with stride 2, padding 1, dilation 2, groups 2 and bias matches a naive loop', () => {
  withNoLeaks(() => {
    const rng = new Rng(101);
    const xs = [2, 4, 9, 8];
    const ws = [6, 2, 3, 3];
    const x = rng.normals(numelOf(xs));
    const w = rng.normals(numelOf(ws));
    const b = rng.normals(6);
    const p: ConvParams = { stride: [2, 2], padding: [1, 1], dilation: [2, 2], groups: 2 };
    const ref = naiveConv2d(x, xs, w, ws, b, p);
    const y = F.conv2d(fromValues(x, xs), fromValues(w, ws), fromValues(b, [6]), { stride: 2, padding: 1, dilation: 2, groups: 2 });
    assertShape(y, ref.shape);
    assert.deepEqual(ref.shape, [2, 6, 4, 3]);
    assertClose(y.toArray(), ref.out, { atol: 1e-12, what: 'conv2d float64' });
    // float32 agrees to float32 precision.
    const y32 = F.conv2d(fromValues(x, xs, 'float32'), fromValues(w, ws, 'float32'), fromValues(b, [6], 'float32'), { stride: 2, padding: 1, dilation: 2, groups: 2 });
    assert.equal(y32.dtype, 'float32');
    assertClose(y32.toArray(), ref.out, { atol: 1e-4, rtol: 1e-4, what: 'conv2d float32' });
  });
});

test('conv2d [1, 3, 5, 6] * [2, 3, 2, 3] with asymmetric stride [1, 2] and padding [0, 2], no bias, matches a naive loop', () => {
  withNoLeaks(() => {
    const rng = new Rng(102);
    const xs = [1, 3, 5, 6];
    const ws = [2, 3, 2, 3];
    const x = rng.normals(numelOf(xs));
    const w = rng.normals(numelOf(ws));
    const p: ConvParams = { stride: [1, 2], padding: [0, 2], dilation: [1, 1], groups: 1 };
    const ref = naiveConv2d(x, xs, w, ws, null, p);
    const y = F.conv2d(fromValues(x, xs), fromValues(w, ws), null, { stride: [1, 2], padding: [0, 2] });
    assertShape(y, ref.shape);
    assertClose(y.toArray(), ref.out, { atol: 1e-12 });
  });
});

function naiveMaxPool2d(x: number[], xs: number[], k: number, s: number, pad: number, ceil: boolean): { out: number[]; shape: number[] } {
  const [n, c, h, w] = xs as [number, number, number, number];
  const size = (len: number): number => {
    const r = (len + 2 * pad - k) / s;
    let o = (ceil ? Math.ceil(r) : Math.floor(r)) + 1;
    // PyTorch: the last window must start inside the input or left padding.
    if (ceil && (o - 1) * s >= len + pad) o--;
    return o;
  };
  const [oh, ow] = [size(h), size(w)];
  const out: number[] = [];
  for (let b = 0; b < n; b++)
    for (let ch = 0; ch < c; ch++)
      for (let oy = 0; oy < oh; oy++)
        for (let ox = 0; ox < ow; ox++) {
          let m = -Infinity;
          for (let ky = 0; ky < k; ky++)
            for (let kx = 0; kx < k; kx++) {
              const iy = oy * s - pad + ky;
              const ix = ox * s - pad + kx;
              if (iy >= 0 && iy < h && ix >= 0 && ix < w) m = Math.max(m, at(x, xs, [b, ch, iy, ix]));
            }
          out.push(m);
        }
  return { out, shape: [n, c, oh, ow] };
}

test('maxPool2d [2, 3, 7, 8] with kernel 3, stride 2, padding 1; kernel 2; ceil mode, against a naive loop', () => {
  withNoLeaks(() => {
    const xs = [2, 3, 7, 8];
    const x = new Rng(7).normals(numelOf(xs));
    const xt = fromValues(x, xs);
    const cases: [number, number, number, boolean][] = [
      [3, 2, 1, false],
      [2, 2, 0, false],
      [3, 2, 0, true],
      [2, 1, 1, false],
      [2, 3, 1, true],
    ];
    for (const [k, s, pad, ceil] of cases) {
      const ref = naiveMaxPool2d(x, xs, k, s, pad, ceil);
      const y = F.maxPool2d(xt, k, { stride: s, padding: pad, ceilMode: ceil });
      assertShape(y, ref.shape, `maxPool2d k=${k} s=${s} p=${pad} ceil=${ceil} shape`);
      assert.deepEqual(y.toArray(), ref.out, `maxPool2d k=${k} s=${s} p=${pad} ceil=${ceil}`);
    }
    assertShape(F.maxPool2d(xt, 2), [2, 3, 3, 4]);
    assert.throws(() => F.maxPool2d(fromValues([1, 2, 3, 4], [2, 2]), 2), /rank 4/);
  });
});

test('linear [5, 4] and [2, 3, 4] with weight [3, 4] and bias [3] matches a naive loop', () => {
  withNoLeaks(() => {
    const rng = new Rng(55);
    const w = rng.normals(12);
    const b = rng.normals(3);
    for (const xs of [[5, 4], [2, 3, 4]]) {
      const x = rng.normals(numelOf(xs));
      const rows = numelOf(xs) / 4;
      const ref: number[] = [];
      const refNoBias: number[] = [];
      for (let r = 0; r < rows; r++)
        for (let o = 0; o < 3; o++) {
          let acc = 0;
          for (let i = 0; i < 4; i++) acc += x[r * 4 + i]! * w[o * 4 + i]!;
          refNoBias.push(acc);
          ref.push(acc + b[o]!);
        }
      const y = F.linear(fromValues(x, xs), fromValues(w, [3, 4]), fromValues(b, [3]));
      assertShape(y, [...xs.slice(0, -1), 3]);
      assertClose(y.toArray(), ref, { atol: 1e-12, what: `linear ${xs}` });
      assertClose(F.linear(fromValues(x, xs), fromValues(w, [3, 4])).toArray(), refNoBias, { atol: 1e-12, what: 'linear without bias' });
    }
    assert.throws(() => F.linear(fromValues([1, 2, 3], [1, 3]), fromValues(w, [3, 4])), /shape|size|mat/);
  });
});

function naiveMatmul(a: number[], b: number[], n: number, m: number, p: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++)
    for (let j = 0; j < p; j++) {
      let acc = 0;
      for (let k = 0; k < m; k++) acc += a[i * m + k]! * b[k * p + j]!;
      out.push(acc);
    }
  return out;
}

test('matmul [3, 4]@[4, 2], batched [2, 3, 4]@[4, 5], vector [4]@[4, 2] and bmm against naive loops', () => {
  withNoLeaks(() => {
    const rng = new Rng(56);
    const a = rng.normals(12);
    const b = rng.normals(8);
    const y = torch.matmul(fromValues(a, [3, 4]), fromValues(b, [4, 2]));
    assertShape(y, [3, 2]);
    assertClose(y.toArray(), naiveMatmul(a, b, 3, 4, 2), { atol: 1e-12 });
    const ab = rng.normals(24);
    const bb = rng.normals(20);
    const yb = fromValues(ab, [2, 3, 4]).matmul(fromValues(bb, [4, 5]));
    assertShape(yb, [2, 3, 5]);
    assertClose(yb.toArray(), [...naiveMatmul(ab.slice(0, 12), bb, 3, 4, 5), ...naiveMatmul(ab.slice(12), bb, 3, 4, 5)], { atol: 1e-12 });
    const v = rng.normals(4);
    const yv = torch.matmul(fromValues(v, [4]), fromValues(b, [4, 2]));
    assertShape(yv, [2]);
    assertClose(yv.toArray(), naiveMatmul(v, b, 1, 4, 2), { atol: 1e-12 });
    const b2 = rng.normals(40);
    const ybmm = torch.bmm(fromValues(ab, [2, 3, 4]), fromValues(b2, [2, 4, 5]));
    assertClose(ybmm.toArray(), [...naiveMatmul(ab.slice(0, 12), b2.slice(0, 20), 3, 4, 5), ...naiveMatmul(ab.slice(12), b2.slice(20), 3, 4, 5)], { atol: 1e-12 });
    assert.throws(() => torch.matmul(fromValues(a, [3, 4]), fromValues(a, [3, 4])), /shapes cannot be multiplied|size/);
  });
});

// ---------------------------------------------------------------------------------------------------------
// Normalisation and activations

test('batchNorm in training on [4, 3, 2, 2] with weight and bias normalises with the biased batch variance', () => {
  withNoLeaks(() => {
    const rng = new Rng(9);
    const xs = [4, 3, 2, 2];
    const x = rng.normals(numelOf(xs)).map((v, i) => 3 * v + (i % 5));
    const w = [0.5, 1.5, -2];
    const b = [0.1, -0.3, 2];
    const eps = 1e-5;
    const mean = [0, 0, 0];
    const sq = [0, 0, 0];
    const count = 4 * 2 * 2;
    for (const idx of indices(xs)) mean[idx[1]!]! += at(x, xs, idx) / count;
    for (const idx of indices(xs)) sq[idx[1]!]! += (at(x, xs, idx) - mean[idx[1]!]!) ** 2;
    const varB = sq.map((s) => s / count);
    const varU = sq.map((s) => s / (count - 1));
    const ref: number[] = [];
    for (const idx of indices(xs)) {
      const c = idx[1]!;
      ref.push(((at(x, xs, idx) - mean[c]!) / Math.sqrt(varB[c]! + eps)) * w[c]! + b[c]!);
    }
    const rm = torch.zeros([3], { dtype: 'float64' });
    const rv = torch.ones([3], { dtype: 'float64' });
    const y = F.batchNorm(fromValues(x, xs), rm, rv, { weight: fromValues(w, [3]), bias: fromValues(b, [3]), training: true, momentum: 0.1, eps });
    assertShape(y, xs);
    assertClose(y.toArray(), ref, { atol: 1e-10, what: 'batchNorm output' });
    assertClose(rm.toArray(), mean.map((m) => 0.1 * m), { atol: 1e-12, what: 'running mean' });
    assertClose(rv.toArray(), varU.map((v) => 0.9 + 0.1 * v), { atol: 1e-12, what: 'running var (unbiased)' });
    // Without running statistics and without affine parameters.
    const plain = F.batchNorm(fromValues(x, xs), null, null, { training: true, eps });
    const refPlain = [...indices(xs)].map((idx) => (at(x, xs, idx) - mean[idx[1]!]!) / Math.sqrt(varB[idx[1]!]! + eps));
    assertClose(plain.toArray(), refPlain, { atol: 1e-10, what: 'batchNorm without affine' });
    // Evaluation uses the given statistics.
    const ev = F.batchNorm(fromValues(x, xs), rm, rv, { training: false, eps });
    const rmv = rm.toArray();
    const rvv = rv.toArray();
    const refEval = [...indices(xs)].map((idx) => (at(x, xs, idx) - rmv[idx[1]!]!) / Math.sqrt(rvv[idx[1]!]! + eps));
    assertClose(ev.toArray(), refEval, { atol: 1e-10, what: 'batchNorm eval' });
  });
});

/** erf to ~1e-15: the everywhere-convergent series 2/√π·e^{-x²}·Σ 2ⁿx^{2n+1}/(1·3·…·(2n+1)), no cancellation. */
function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax > 6) return Math.sign(x);
  let term = ax;
  let sum = ax;
  for (let n = 1; n < 500 && term > 1e-17 * sum; n++) {
    term *= (2 * ax * ax) / (2 * n + 1);
    sum += term;
  }
  return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * Math.exp(-ax * ax) * sum;
}

test('erf reference itself: known values', () => {
  withNoLeaks(() => {
    assertClose([erf(0), erf(0.5), erf(1), erf(2), erf(-3), erf(5)], [0, 0.5204998778130465, 0.8427007929497149, 0.9953222650189527, -0.9999779095030014, 0.9999999999984626], {
      atol: 1e-15,
      rtol: 1e-14,
    });
  });
});

test('gelu of [64] values in [-6, 6] matches 0.5·x·(1 + erf(x/√2)); tanh approximation matches its formula', () => {
  withNoLeaks(() => {
    const x = new Rng(4).uniforms(64, -6, 6);
    x.push(0, -0.5, 0.5, 3, -3);
    const xt = fromValues(x, [x.length]);
    const ref = x.map((v) => 0.5 * v * (1 + erf(v / Math.SQRT2)));
    assertClose(F.gelu(xt).toArray(), ref, { atol: 1e-14, rtol: 1e-12, what: 'gelu float64' });
    assertClose(F.gelu(fromValues(x, [x.length], 'float32')).toArray(), ref, { atol: 1e-6, rtol: 1e-6, what: 'gelu float32' });
    const refTanh = x.map((v) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3))));
    assertClose(F.gelu(xt, 'tanh').toArray(), refTanh, { atol: 1e-14, rtol: 1e-12, what: 'gelu tanh' });
  });
});

// ---------------------------------------------------------------------------------------------------------
// Softmax and losses

function jsLogSoftmaxRows(x: number[], n: number, c: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const row = x.slice(i * c, (i + 1) * c);
    const m = Math.max(...row);
    const lse = m + Math.log(row.reduce((a, v) => a + Math.exp(v - m), 0));
    out.push(...row.map((v) => v - lse));
  }
  return out;
}

test('softmax and logSoftmax of [3, 5] over dims 1 and 0 against plain JS; large logits stay finite', () => {
  withNoLeaks(() => {
    const x = new Rng(31).normals(15).map((v) => 4 * v);
    const xt = fromValues(x, [3, 5]);
    const ls = jsLogSoftmaxRows(x, 3, 5);
    assertClose(F.logSoftmax(xt, 1).toArray(), ls, { atol: 1e-12 });
    assertClose(F.softmax(xt, -1).toArray(), ls.map(Math.exp), { atol: 1e-12 });
    // dim 0: transpose, do rows, transpose back.
    const xT: number[] = [];
    for (let j = 0; j < 5; j++) for (let i = 0; i < 3; i++) xT.push(x[i * 5 + j]!);
    const lsT = jsLogSoftmaxRows(xT, 5, 3);
    const ls0: number[] = [];
    for (let i = 0; i < 3; i++) for (let j = 0; j < 5; j++) ls0.push(lsT[j * 3 + i]!);
    assertClose(F.logSoftmax(xt, 0).toArray(), ls0, { atol: 1e-12 });
    const sm = F.softmax(xt, 1).sum(1).toArray();
    assertClose(sm, [1, 1, 1], { atol: 1e-12 });
    const big = F.logSoftmax(fromValues([1000, 0, -1000], [1, 3]), 1).toArray();
    assertClose(big, [0, -1000, -2000], { atol: 1e-9 });
  });
});

test('crossEntropy of [6, 4] logits with label smoothing 0 and 0.2, reductions and ignoreIndex against plain JS', () => {
  withNoLeaks(() => {
    const n = 6;
    const c = 4;
    const rng = new Rng(77);
    const x = rng.normals(n * c).map((v) => 2 * v);
    const target = [0, 3, 1, 1, 2, 3];
    const ls = jsLogSoftmaxRows(x, n, c);
    const xt = fromValues(x, [n, c]);
    const tt = torch.tensor(target, { dtype: 'int64' });
    for (const eps of [0, 0.2]) {
      const per = target.map((y, i) => {
        const nll = -ls[i * c + y]!;
        const smooth = -ls.slice(i * c, (i + 1) * c).reduce((a, b) => a + b, 0) / c;
        return (1 - eps) * nll + eps * smooth;
      });
      const mean = per.reduce((a, b) => a + b, 0) / n;
      const loss = F.crossEntropy(xt, tt, { labelSmoothing: eps });
      assertShape(loss, []);
      assertClose([loss.item()], [mean], { atol: 1e-12, what: `crossEntropy mean ε=${eps}` });
      assertClose(F.crossEntropy(xt, tt, { labelSmoothing: eps, reduction: 'none' }).toArray(), per, { atol: 1e-12, what: `crossEntropy none ε=${eps}` });
      assertClose([F.crossEntropy(xt, tt, { labelSmoothing: eps, reduction: 'sum' }).item()], [mean * n], { atol: 1e-12, what: `crossEntropy sum ε=${eps}` });
    }
    // ignoreIndex drops samples from the mean.
    const ignored = torch.tensor([0, 3, -100, 1, -100, 3], { dtype: 'int64' });
    const kept = [0, 1, 3, 5];
    const expected = kept.reduce((a, i) => a - ls[i * c + target[i]!]!, 0) / kept.length;
    assertClose([F.crossEntropy(xt, ignored).item()], [expected], { atol: 1e-12, what: 'ignoreIndex' });
    assertClose([F.nllLoss(F.logSoftmax(xt, 1), tt).item()], [target.reduce((a, y, i) => a - ls[i * c + y]!, 0) / n], { atol: 1e-12, what: 'nllLoss' });
    assert.throws(() => F.crossEntropy(xt, torch.tensor([0, 1, 2, 3, 4, 0], { dtype: 'int64' })), /out of bounds|Target/);
    assert.throws(() => F.crossEntropy(xt, tt, { reduction: 'avg' as 'mean' }), /reduction/);
  });
});

test('mseLoss of [3, 4] with mean, sum and none reductions against plain JS', () => {
  withNoLeaks(() => {
    const rng = new Rng(12);
    const a = rng.normals(12);
    const b = rng.normals(12);
    const sq = a.map((v, i) => (v - b[i]!) ** 2);
    const at = fromValues(a, [3, 4]);
    const bt = fromValues(b, [3, 4]);
    assertClose([F.mseLoss(at, bt).item()], [sq.reduce((x, y) => x + y, 0) / 12], { atol: 1e-12 });
    assertClose([F.mseLoss(at, bt, 'sum').item()], [sq.reduce((x, y) => x + y, 0)], { atol: 1e-12 });
    const none = F.mseLoss(at, bt, 'none');
    assertShape(none, [3, 4]);
    assertClose(none.toArray(), sq, { atol: 1e-12 });
  });
});

test('oneHot of [4] and [2, 2] int64 indices with 5 classes, float32 and int64 results', () => {
  withNoLeaks(() => {
    const idx = torch.tensor([3, 0, 4, 0], { dtype: 'int64' });
    const h = F.oneHot(idx, 5);
    assert.equal(h.dtype, 'float32');
    assertShape(h, [4, 5]);
    const ref = [3, 0, 4, 0].flatMap((k) => [0, 1, 2, 3, 4].map((j) => (j === k ? 1 : 0)));
    assert.deepEqual(h.toArray(), ref);
    const hi = F.oneHot(idx, 5, 'int64');
    assert.equal(hi.dtype, 'int64');
    assert.deepEqual(hi.toArray(), ref);
    const h2 = F.oneHot(torch.tensor([[1, 2], [0, 1]], { dtype: 'int64' }), 3);
    assertShape(h2, [2, 2, 3]);
    assert.deepEqual(h2.toArray(), [0, 1, 0, 0, 0, 1, 1, 0, 0, 0, 1, 0]);
    assert.throws(() => F.oneHot(idx, 3), /class/);
  });
});

// ---------------------------------------------------------------------------------------------------------
// Interpolation

/** PyTorch's bilinear resampling (upsample_bilinear2d with an explicit output size). */
function jsBilinear(x: number[], xs: number[], oh: number, ow: number, alignCorners: boolean): number[] {
  const [n, c, h, w] = xs as [number, number, number, number];
  const src = (dst: number, inLen: number, outLen: number): [number, number, number] => {
    let s: number;
    if (alignCorners) s = outLen > 1 ? (dst * (inLen - 1)) / (outLen - 1) : 0;
    else s = Math.max(0, ((dst + 0.5) * inLen) / outLen - 0.5);
    const i0 = Math.floor(s);
    const i1 = Math.min(i0 + 1, inLen - 1);
    return [i0, i1, s - i0];
  };
  const out: number[] = [];
  for (let b = 0; b < n; b++)
    for (let ch = 0; ch < c; ch++)
      for (let oy = 0; oy < oh; oy++) {
        const [y0, y1, ly] = src(oy, h, oh);
        for (let ox = 0; ox < ow; ox++) {
          const [x0, x1, lx] = src(ox, w, ow);
          const v = (yy: number, xx: number): number => at(x, xs, [b, ch, yy, xx]);
          out.push((1 - ly) * ((1 - lx) * v(y0, x0) + lx * v(y0, x1)) + ly * ((1 - lx) * v(y1, x0) + lx * v(y1, x1)));
        }
      }
  return out;
}

test('interpolate bilinear [1, 2, 5, 4] → [7, 9], [3, 3] and [1, 1] with alignCorners true and false against plain JS', () => {
  withNoLeaks(() => {
    const xs = [1, 2, 5, 4];
    const x = new Rng(14).normals(numelOf(xs));
    const xt = fromValues(x, xs);
    for (const alignCorners of [false, true]) {
      for (const [oh, ow] of [[7, 9], [3, 3], [1, 1], [5, 4]] as const) {
        const y = F.interpolate(xt, { size: [oh, ow], alignCorners });
        assertShape(y, [1, 2, oh, ow]);
        assertClose(y.toArray(), jsBilinear(x, xs, oh, ow, alignCorners), { atol: 1e-12, what: `bilinear → [${oh}, ${ow}] alignCorners=${alignCorners}` });
      }
    }
    // Same size is the identity; alignCorners changes upsampled values.
    assertClose(F.interpolate(xt, { size: [5, 4] }).toArray(), x, { atol: 1e-12 });
    const a = F.interpolate(xt, { size: [7, 9], alignCorners: true }).toArray();
    const b = F.interpolate(xt, { size: [7, 9], alignCorners: false }).toArray();
    assert.ok(a.some((v, i) => Math.abs(v - b[i]!) > 1e-3));
    // scaleFactor 2 gives the doubled size.
    const s = F.interpolate(xt, { scaleFactor: 2 });
    assertShape(s, [1, 2, 10, 8]);
    assertClose(s.toArray(), jsBilinear(x, xs, 10, 8, false), { atol: 1e-12, what: 'scaleFactor 2' });
    const nearest = F.interpolate(xt, { size: [10, 8], mode: 'nearest' });
    assertClose(nearest.toArray(), [...indices([1, 2, 10, 8])].map(([b0, c, i, j]) => at(x, xs, [b0!, c!, i! >> 1, j! >> 1])), { atol: 0, what: 'nearest ×2' });
    assert.throws(() => F.interpolate(xt, {}), /size/);
    assert.throws(() => F.interpolate(fromValues(x, [2, 20]), { size: 3 }), /rank 4/);
  });
});

test('antialiased bilinear downscale [1, 1, 28, 28] → [14, 14] matches PyTorch golden values', () => {
  withNoLeaks(() => {
    const f = fixture.antialias_28_to_14;
    assert.deepEqual(f.input_shape, [1, 1, 28, 28]);
    const x = fromValues(f.input, f.input_shape, 'float32');
    const y = F.interpolate(x, { size: [14, 14], alignCorners: false, antialias: true });
    assertShape(y, f.output_shape);
    assert.equal(y.dtype, 'float32');
    assertClose(y.toArray(), f.output, { atol: 2e-6, rtol: 1e-6, what: 'antialias 28→14' });
    // The antialias flag matters: plain bilinear differs on this image.
    const plain = F.interpolate(x, { size: [14, 14], alignCorners: false }).toArray();
    const maxDiff = Math.max(...plain.map((v, i) => Math.abs(v - f.output[i]!)));
    assert.ok(maxDiff > 1e-2, `antialiased and plain bilinear should differ, max diff ${maxDiff}`);
  });
});

// ---------------------------------------------------------------------------------------------------------
// Random numbers

test('randn [3] with a generator seeded 1 equals PyTorch torch.randn(3, generator=Generator().manual_seed(1))', () => {
  withNoLeaks(() => {
    const g = new torch.Generator(1);
    assert.equal(g.initialSeed, 1);
    const r = torch.randn(fixture.randn_seed1.shape, { generator: g });
    assert.equal(r.dtype, 'float32');
    assertClose(r.toArray(), fixture.randn_seed1.values, { atol: 1e-7, rtol: 0 });
    // The global generator seeded 1 gives the same stream.
    torch.manualSeed(1);
    assertClose(torch.randn([3]).toArray(), fixture.randn_seed1.values, { atol: 1e-7, rtol: 0 });
  });
});

test('same seed ⇒ same values for randn [4, 5], rand [7], randint [9], randperm 10 (global and generator)', () => {
  withNoLeaks(() => {
    const draw = (opts: { generator?: torch.Generator }): number[][] => [
      torch.randn([4, 5], opts).toArray(),
      torch.rand([7], opts).toArray(),
      torch.randint(0, 100, [9], opts).toArray(),
      torch.randperm(10, opts).toArray(),
    ];
    torch.manualSeed(1234);
    const a = draw({});
    torch.manualSeed(1234);
    const b = draw({});
    assert.deepEqual(a, b);
    torch.manualSeed(1235);
    assert.notDeepEqual(draw({}), a);
    const g1 = draw({ generator: new torch.Generator(1234) });
    const g2 = draw({ generator: new torch.Generator(1234) });
    assert.deepEqual(g1, g2);
    assert.deepEqual(g1, a); // a generator seeded like the global one replays its stream
    assert.deepEqual([...a[3]!].sort((x, y) => x - y), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });
});

test('generators are independent of the global generator and of each other', () => {
  withNoLeaks(() => {
    const g = new torch.Generator(42);
    const first = torch.randn([6], { generator: g }).toArray();
    // Drawing from the global generator (and another generator) in between does not disturb g.
    const g2 = new torch.Generator(42);
    torch.manualSeed(7);
    torch.randn([100]);
    const other = new torch.Generator(99);
    torch.rand([50], { generator: other });
    assert.deepEqual(torch.randn([6], { generator: g2 }).toArray(), first);
    // Drawing from g does not advance the global generator.
    torch.manualSeed(5);
    const x1 = torch.randn([4]).toArray();
    torch.manualSeed(5);
    torch.randn([64], { generator: g });
    torch.normal_(torch.empty([8]), 0, 1, g);
    const x2 = torch.randn([4]).toArray();
    assert.deepEqual(x2, x1);
    // Successive draws from one generator differ.
    assert.notDeepEqual(torch.randn([6], { generator: g }).toArray(), first);
    assert.throws(() => new torch.Generator(-1), RangeError);
    assert.throws(() => new torch.Generator(1.5), RangeError);
    assert.throws(() => torch.manualSeed(-3), RangeError);
  });
});

test('generator getState/setState replays randn [5] and rand [3] exactly', () => {
  withNoLeaks(() => {
    const g = new torch.Generator(2024);
    torch.randn([3], { generator: g }); // advance a little first
    const state = g.getState();
    assert.equal(state.dtype, 'uint8');
    const a = [torch.randn([5], { generator: g }).toArray(), torch.rand([3], { generator: g }).toArray()];
    const b0 = [torch.randn([5], { generator: g }).toArray()];
    assert.notDeepEqual(b0[0], a[0]);
    g.setState(state);
    const b = [torch.randn([5], { generator: g }).toArray(), torch.rand([3], { generator: g }).toArray()];
    assert.deepEqual(b, a);
    // The state transfers to another generator.
    const h = new torch.Generator(1);
    h.setState(state);
    assert.deepEqual(torch.randn([5], { generator: h }).toArray(), a[0]);
    // A malformed state is rejected with an Error.
    assert.throws(() => g.setState(torch.zeros([3], { dtype: 'uint8' })), Error);
    assert.throws(() => g.setState(torch.zeros([3])), Error);
  });
});

test('randint [2000] stays within [low, high), covers every value, is int64; bad bounds throw', () => {
  withNoLeaks(() => {
    const g = new torch.Generator(3);
    const r = torch.randint(-3, 4, [2000], { generator: g });
    assert.equal(r.dtype, 'int64');
    const v = r.toArray();
    assert.ok(v.every((x) => Number.isInteger(x) && x >= -3 && x < 4));
    assert.deepEqual([...new Set(v)].sort((a, b) => a - b), [-3, -2, -1, 0, 1, 2, 3]);
    const r32 = torch.randint(0, 2, [50], { generator: g, dtype: 'int32' });
    assert.equal(r32.dtype, 'int32');
    assert.throws(() => torch.randint(5, 5, [2]), RangeError);
  });
});

test('uniform_ fills [4000] float32 and float64 tensors within [low, high) with the right mean', () => {
  withNoLeaks(() => {
    const g = new torch.Generator(11);
    for (const dtype of ['float32', 'float64'] as const) {
      const t = torch.empty([4000], { dtype });
      const same = torch.uniform_(t, -2, 5, g);
      assert.equal(same, t);
      const v = t.toArray();
      assert.ok(v.every((x) => x >= -2 && x < 5), `${dtype}: out of range`);
      const mean = v.reduce((a, b) => a + b, 0) / v.length;
      assert.ok(Math.abs(mean - 1.5) < 0.15, `${dtype}: mean ${mean}`);
      assert.ok(Math.min(...v) < -1.9 && Math.max(...v) > 4.9);
    }
    const r = torch.rand([1000], { generator: g }).toArray();
    assert.ok(r.every((x) => x >= 0 && x < 1));
    const n = torch.normal_(torch.empty([4000], { dtype: 'float64' }), 3, 2, g).toArray();
    const m = n.reduce((a, b) => a + b, 0) / n.length;
    const sd = Math.sqrt(n.reduce((a, b) => a + (b - m) ** 2, 0) / n.length);
    assert.ok(Math.abs(m - 3) < 0.15 && Math.abs(sd - 2) < 0.15, `normal_: mean ${m}, std ${sd}`);
  });
});
