import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DATASET_NAMES, FASHION_MNIST_DIR, isDatasetName, loadDataset, loadFashionMnist, loadMnist } from '../src/data/datasets.ts';
import { DataError } from '../src/data/idx.ts';
import { classCounts } from '../src/data/image-set.ts';
import type { ImageSet } from '../src/data/image-set.ts';
import { Rng, balancedSubset, batches, permutation, shuffle, subset } from '../src/data/sampling.ts';

const MNIST_TRAIN = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949];
const MNIST_TEST = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009];

/** Synthetic set whose 1x2 images encode their own index (low byte, high byte), so picks can be traced. */
function tracedSet(labels: number[], numClasses = 10): ImageSet {
  const count = labels.length;
  const images = new Uint8Array(count * 2);
  for (let i = 0; i < count; i++) {
    images[2 * i] = i & 0xff;
    images[2 * i + 1] = i >> 8;
  }
  return { images, labels: Uint8Array.from(labels), count, height: 1, width: 2, numClasses };
}
const sourceIndex = (set: ImageSet, k: number): number => set.images[2 * k]! | (set.images[2 * k + 1]! << 8);

/** Labels 0..numClasses-1 with class c appearing 20 + 3c times, interleaved. */
function unevenLabels(numClasses = 10): number[] {
  const labels: number[] = [];
  for (let c = 0; c < numClasses; c++) for (let k = 0; k < 20 + 3 * c; k++) labels.push(c);
  return shuffle(labels, new Rng(99));
}

function isPermutation(a: ArrayLike<number>, n: number): boolean {
  if (a.length !== n) return false;
  const seen = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const v = a[i]!;
    if (!Number.isInteger(v) || v < 0 || v >= n || seen[v]) return false;
    seen[v] = 1;
  }
  return true;
}

test('MNIST train/test: 28x28, class counts', () => {
  const train = loadMnist('train');
  assert.deepEqual([train.count, train.height, train.width, train.numClasses], [60000, 28, 28, 10]);
  assert.equal(train.images.length, 60000 * 28 * 28);
  assert.deepEqual(classCounts(train), MNIST_TRAIN);
  const test_ = loadDataset('mnist', 'test');
  assert.deepEqual([test_.count, test_.height, test_.width], [10000, 28, 28]);
  assert.deepEqual(classCounts(test_), MNIST_TEST);
});

test('Fashion-MNIST train/test: 28x28, balanced classes', (t) => {
  if (!existsSync(join(FASHION_MNIST_DIR, 'train-images-idx3-ubyte.gz'))) {
    t.skip(`Fashion-MNIST not installed in ${FASHION_MNIST_DIR}`);
    return;
  }
  const train = loadDataset('fashion-mnist', 'train');
  assert.deepEqual([train.count, train.height, train.width], [60000, 28, 28]);
  assert.deepEqual(classCounts(train), new Array(10).fill(6000));
  const test_ = loadFashionMnist('test');
  assert.deepEqual([test_.count, test_.height, test_.width], [10000, 28, 28]);
  assert.deepEqual(classCounts(test_), new Array(10).fill(1000));
});

test('Fashion-MNIST missing: DataError with the install command', () => {
  const empty = mkdtempSync(join(tmpdir(), 'no-fashion-'));
  try {
    assert.throws(() => loadFashionMnist('train', empty), (err: unknown) => {
      assert.ok(err instanceof DataError);
      assert.match(err.message, /apt-get install dataset-fashion-mnist/);
      return true;
    });
  } finally {
    rmSync(empty, { recursive: true, force: true });
  }
});

test('dataset names', () => {
  assert.deepEqual([...DATASET_NAMES], ['mnist', 'fashion-mnist']);
  assert.ok(isDatasetName('fashion-mnist'));
  assert.ok(!isDatasetName('cifar10'));
  assert.throws(() => loadDataset('cifar10' as 'mnist', 'train'), /unknown dataset "cifar10"/);
  assert.throws(() => loadMnist('val' as 'train'), /split must be 'train' or 'test'/);
});

test('Rng: xoshiro128** reference outputs, ranges, determinism', () => {
  // Hand-computed from the reference algorithm with state {1, 2, 3, 4}.
  const ref = Rng.fromState([1, 2, 3, 4]);
  assert.deepEqual([ref.nextUint32(), ref.nextUint32(), ref.nextUint32()], [11520, 0, 5927040]);
  // Published vector of the C reference with state {0, 1, 2, 3}.
  const ref2 = Rng.fromState([0, 1, 2, 3]);
  assert.deepEqual(
    Array.from({ length: 10 }, () => ref2.nextUint32()),
    [5760, 17280, 2966400, 32451840, 2604340873, 3891234569, 1254043636, 216095511, 3291724652, 2070429911],
  );

  const a = new Rng(42);
  const b = new Rng(42);
  const c = new Rng(43);
  const xs = Array.from({ length: 1000 }, () => a.next());
  assert.deepEqual(xs, Array.from({ length: 1000 }, () => b.next()));
  assert.notDeepEqual(xs, Array.from({ length: 1000 }, () => c.next()));
  assert.ok(xs.every((x) => x >= 0 && x < 1));
  const hist = new Array(7).fill(0);
  for (let i = 0; i < 7000; i++) hist[a.int(7)]++;
  assert.ok(hist.every((h) => h > 850 && h < 1150), `roughly uniform: ${hist}`);
  assert.throws(() => a.int(0), /integer in \[1, 2\^32\]/);
  assert.throws(() => new Rng(1.5), /safe integer/);
  assert.notDeepEqual(new Rng(0).nextUint32(), new Rng(2 ** 32).nextUint32());
});

test('shuffle is an in-place permutation; permutation is seeded', () => {
  const arr = Array.from({ length: 100 }, (_, i) => i);
  const out = shuffle(arr, new Rng(1));
  assert.equal(out, arr);
  assert.ok(isPermutation(arr, 100));
  assert.notDeepEqual(arr, Array.from({ length: 100 }, (_, i) => i));
  const typed = shuffle(Float64Array.from({ length: 50 }, (_, i) => i), new Rng(2));
  assert.ok(isPermutation(typed, 50));

  const p = permutation(1000, 7);
  assert.ok(p instanceof Int32Array);
  assert.ok(isPermutation(p, 1000));
  assert.deepEqual(p, permutation(1000, 7));
  assert.notDeepEqual(p, permutation(1000, 8));
  assert.equal(permutation(0, 1).length, 0);
});

test('subset copies the chosen images and labels', () => {
  const set = tracedSet([3, 1, 4, 1, 5, 9, 2, 6]);
  const s = subset(set, [5, 0, 5]);
  assert.equal(s.count, 3);
  assert.deepEqual(Array.from(s.labels), [9, 3, 9]);
  assert.deepEqual([0, 1, 2].map((k) => sourceIndex(s, k)), [5, 0, 5]);
  s.images[0] = 77;
  assert.equal(set.images[10], 5, 'original untouched');
  assert.throws(() => subset(set, [8]), /index 8 at position 0 is out of range \[0, 8\)/);
});

test('balancedSubset: exactly perClass per class, seeded, shuffled, traceable', () => {
  const set = tracedSet(unevenLabels());
  const s = balancedSubset(set, 20, 5);
  assert.equal(s.count, 200);
  assert.deepEqual(classCounts(s), new Array(10).fill(20));
  const picked = new Set<number>();
  for (let k = 0; k < s.count; k++) {
    const i = sourceIndex(s, k);
    assert.equal(s.labels[k], set.labels[i], 'label travels with its image');
    picked.add(i);
  }
  assert.equal(picked.size, 200, 'no image picked twice');
  assert.notDeepEqual(Array.from(s.labels.subarray(0, 20)), new Array(20).fill(s.labels[0]), 'classes are mixed');

  const again = balancedSubset(set, 20, 5);
  assert.deepEqual(again.images, s.images);
  assert.deepEqual(again.labels, s.labels);
  const other = balancedSubset(set, 20, 6);
  assert.notDeepEqual(other.images, s.images);

  assert.throws(() => balancedSubset(set, 21, 5), (err: unknown) => {
    assert.ok(err instanceof DataError);
    assert.match(err.message, /class 0 has only 20 images.*21 per class/);
    return true;
  });
});

test('balancedSubset on MNIST train: the balanced 50k subset', () => {
  const s = balancedSubset(loadMnist('train'), 5000, 0);
  assert.equal(s.count, 50000);
  assert.deepEqual(classCounts(s), new Array(10).fill(5000));
  assert.throws(() => balancedSubset(loadMnist('test'), 900, 0), /class 5 has only 892 images/);
});

test('batches: one epoch covers every index once, dropLast, seeded', () => {
  const collect = (it: Iterable<Int32Array>) => [...it];
  const plain = collect(batches(10, 4));
  assert.deepEqual(plain.map((b) => Array.from(b)), [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]);
  assert.ok(plain.every((b) => b instanceof Int32Array));
  assert.deepEqual(collect(batches(10, 4, { dropLast: true })).map((b) => b.length), [4, 4]);
  assert.deepEqual(collect(batches(8, 4, { dropLast: true })).map((b) => b.length), [4, 4]);
  assert.equal(collect(batches(3, 4, { dropLast: true })).length, 0);
  assert.equal(collect(batches(0, 4)).length, 0);

  const n = 1003;
  const seeded = collect(batches(n, 32, { seed: 11 }));
  assert.equal(seeded.length, Math.ceil(n / 32));
  const flat = seeded.flatMap((b) => Array.from(b));
  assert.ok(isPermutation(flat, n));
  assert.notDeepEqual(flat, Array.from({ length: n }, (_, i) => i), 'shuffled');
  assert.deepEqual(collect(batches(n, 32, { seed: 11 })), seeded);
  assert.notDeepEqual(collect(batches(n, 32, { seed: 12 })), seeded);

  const dropped = collect(batches(n, 32, { seed: 11, dropLast: true }));
  assert.equal(dropped.length, Math.floor(n / 32));
  assert.ok(dropped.every((b) => b.length === 32));
  assert.equal(new Set(dropped.flatMap((b) => Array.from(b))).size, 31 * 32);

  // Bad arguments fail at the call, not at the first next().
  assert.throws(() => batches(10, 0), /batchSize must be an integer >= 1, got 0/);
  assert.throws(() => batches(10, 2.5), /batchSize must be an integer >= 1, got 2.5/);
  assert.throws(() => batches(-1, 2), /n must be a non-negative integer/);
});
