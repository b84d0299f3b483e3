// The CAS core (§0.2): classifiers trained on a set and scored on the real test set; pooling generated sets into
// a balanced training set; the mean and spread over the classifiers; training and scoring one classifier.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { loadDataset } from '../src/data/datasets.ts';
import { DataError } from '../src/data/idx.ts';
import { classCounts, type ImageSet } from '../src/data/image-set.ts';
import { balancedSubset, permutation, subset } from '../src/data/sampling.ts';
import { classificationAccuracyScore, combineBalanced, meanStd } from '../src/eval/cas.ts';
import { scoreClassifier, trainClassifier, type TrainedClassifier } from '../src/eval/classifier.ts';
import { Classifier } from '../src/models/classifier.ts';
import type { Linear } from '../src/nn/layers.ts';
import { inferenceMode, noGrad } from '../src/torch/grad-mode.ts';
import { tensor } from '../src/torch/ops/creation.ts';
import { tidy } from '../src/torch/scope.ts';
import { withNoLeaks } from './helpers.ts';

test('meanStd: mean and sample (n − 1) standard deviation, by hand', () => {
  // [1, 2, 3, 4]: mean 2.5; squared deviations 2.25 + 0.25 + 0.25 + 2.25 = 5, over n − 1 = 3.
  const [m, s] = meanStd([1, 2, 3, 4]);
  assert.equal(m, 2.5);
  assert.ok(Math.abs(s - Math.sqrt(5 / 3)) < 1e-12, `std ${s}`);
  // [0, 10]: mean 5; (25 + 25) / 1 = 50.
  const [m2, s2] = meanStd([0, 10]);
  assert.equal(m2, 5);
  assert.ok(Math.abs(s2 - Math.sqrt(50)) < 1e-12, `std ${s2}`);
  // One value: no spread. Equal values: none either.
  assert.deepEqual(meanStd([0.7]), [0.7, 0]);
  const [m3, s3] = meanStd([0.25, 0.25, 0.25]);
  assert.equal(m3, 0.25);
  assert.equal(s3, 0);
});

/**
 * Synthetic set `source` of 1×2 images whose pixels are (source, index in the set), so every pooled image can
 * be traced back to where it came from and compared with the label it had there.
 */
function tracedSet(source: number, labels: readonly number[], numClasses = 3): ImageSet {
  const images = new Uint8Array(labels.length * 2);
  labels.forEach((_, i) => {
    images[2 * i] = source;
    images[2 * i + 1] = i;
  });
  return { images, labels: Uint8Array.from(labels), count: labels.length, height: 1, width: 2, numClasses };
}

describe('combineBalanced', () => {
  // Set 0: 10 of class 0, 4 of class 1, 7 of class 2; set 1: 5, 12, 6. Pooled: 15, 16, 13.
  const labels0 = [...Array<number>(10).fill(0), ...Array<number>(4).fill(1), ...Array<number>(7).fill(2)].reverse();
  const labels1 = [1, 0, 2, 1, 1, 0, 2, 1, 1, 0, 1, 2, 1, 1, 0, 2, 1, 2, 1, 0, 1, 2, 1];
  const sets = [tracedSet(0, labels0), tracedSet(1, labels1)];
  assert.deepEqual(classCounts(sets[1]!), [5, 12, 6]);

  test('keeps exactly total / numClasses images of every class, each with the label it had in its source set', () => {
    for (const [total, seed] of [[36, 1], [39, 2], [3, 3]] as const) {
      const out = combineBalanced(sets, total, seed);
      assert.equal(out.count, total);
      assert.equal(out.labels.length, total);
      assert.equal(out.images.length, total * 2);
      assert.deepEqual([out.height, out.width, out.numClasses], [1, 2, 3]);
      assert.deepEqual(classCounts(out), [total / 3, total / 3, total / 3]);
      const seen = new Set<string>();
      for (let k = 0; k < out.count; k++) {
        const source = out.images[2 * k]!;
        const index = out.images[2 * k + 1]!;
        assert.ok(source === 0 || source === 1, `image ${k} comes from no set (${source})`);
        assert.equal(out.labels[k], sets[source]!.labels[index], `image ${k} (set ${source}, #${index}) lost its label`);
        seen.add(`${source}:${index}`);
      }
      assert.equal(seen.size, total, 'an image was kept twice');
    }
    // 13 images of class 2 in all: total 39 takes every one of them.
    const all = combineBalanced(sets, 39, 5);
    const class2 = new Set<string>();
    for (let k = 0; k < all.count; k++) if (all.labels[k] === 2) class2.add(`${all.images[2 * k]}:${all.images[2 * k + 1]}`);
    assert.equal(class2.size, 13);
  });

  test('draws from the whole pool at random: deterministic for a seed, another seed another choice, every set used', () => {
    const a = combineBalanced(sets, 24, 7);
    const b = combineBalanced(sets, 24, 7);
    assert.deepEqual(a.images, b.images);
    assert.deepEqual(a.labels, b.labels);
    const c = combineBalanced(sets, 24, 8);
    assert.notDeepEqual(c.images, a.images);
    // 8 per class out of 15 / 16 / 13 pooled: over a few seeds both sets supply images of every class.
    const fromSet = [new Set<number>(), new Set<number>()];
    for (let seed = 0; seed < 5; seed++) {
      const out = combineBalanced(sets, 24, seed);
      for (let k = 0; k < out.count; k++) fromSet[out.images[2 * k]!]!.add(out.labels[k]!);
    }
    assert.deepEqual([...fromSet[0]!].sort(), [0, 1, 2]);
    assert.deepEqual([...fromSet[1]!].sort(), [0, 1, 2]);
  });

  test('a class with too few images, mismatched sets, or no sets: an error naming the problem', () => {
    // 14 per class needs 14 of class 2, which has 13.
    assert.throws(
      () => combineBalanced(sets, 42, 1),
      (e: unknown) => e instanceof DataError && /class 2 has only 13 images; 14 are needed/.test(e.message),
    );
    // Only set 0: class 1 has 4.
    assert.throws(() => combineBalanced([sets[0]!], 15, 1), (e: unknown) => e instanceof DataError && /class 1 has only 4/.test(e.message));
    const wide: ImageSet = { images: new Uint8Array(3 * 3), labels: Uint8Array.from([0, 1, 2]), count: 3, height: 1, width: 3, numClasses: 3 };
    assert.throws(() => combineBalanced([sets[0]!, wide], 3, 1), (e: unknown) => e instanceof DataError && /1×3.*1×2/.test(e.message));
    const tall: ImageSet = { ...wide, images: new Uint8Array(3 * 2 * 2), height: 2, width: 2 };
    assert.throws(() => combineBalanced([sets[0]!, tall], 3, 1), DataError);
    assert.throws(() => combineBalanced([sets[0]!, { ...sets[1]!, numClasses: 4 }], 3, 1), DataError);
    assert.throws(() => combineBalanced([], 3, 1), RangeError);
  });
});

/** argmax of each row of a row-major [n, k] array (first index on ties, as torch does). */
function rowArgmax(values: ArrayLike<number>, k: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < values.length / k; i++) {
    let best = 0;
    for (let j = 1; j < k; j++) if (values[i * k + j]! > values[i * k + best]!) best = j;
    out.push(best);
  }
  return out;
}

describe('on MNIST', () => {
  let trainAll: ImageSet;
  let testAll: ImageSet;
  /** 200 per class (2000 images) to train on, 50 per class (500) to score on: disjoint splits. */
  let train: ImageSet;
  let testSet: ImageSet;
  /** The first 400 test images without the 9s: unbalanced classes, and class 9 absent. */
  let uneven: ImageSet;
  before(() => {
    trainAll = loadDataset('mnist', 'train');
    testAll = loadDataset('mnist', 'test');
    train = balancedSubset(trainAll, 200, 11);
    testSet = balancedSubset(testAll, 50, 21);
    const keep: number[] = [];
    for (let i = 0; i < 400; i++) if (testAll.labels[i] !== 9) keep.push(i);
    uneven = subset(testAll, keep);
  });

  test('scoreClassifier on a classifier that always answers 3: accuracy is the share of 3s, per class [0, 0, 0, 1, 0, …], NaN for an absent class', () => {
    withNoLeaks(() => {
      const model = new Classifier();
      noGrad(() => {
        for (const p of model.parameters()) p.zero_();
        const last = model.layers[model.layers.length - 1] as Linear;
        last.bias!.copy_(tensor(Float32Array.from({ length: 10 }, (_, c) => (c === 3 ? 1 : 0))));
      });
      const counts = classCounts(uneven);
      assert.equal(counts[9], 0);
      const score = scoreClassifier({ model, normalization: { mean: 0, std: 1 }, finalLoss: 0 }, uneven, 64);
      assert.deepEqual(score.classCounts, counts);
      assert.equal(score.accuracy, counts[3]! / uneven.count);
      assert.deepEqual(score.perClass.slice(0, 9), [0, 0, 0, 1, 0, 0, 0, 0, 0]);
      assert.ok(Number.isNaN(score.perClass[9]), `class 9 has no image: ${score.perClass[9]}`);
      model.dispose();
    });
  });

  describe('one classifier trained on 1000 images for an epoch', () => {
    let trained: TrainedClassifier;
    const losses: number[] = [];
    const steps: [number, number][] = [];
    const small = () => balancedSubset(trainAll, 100, 5);
    before(() => {
      trained = trainClassifier(small(), {
        epochs: 1,
        batchSize: 50,
        seed: 2,
        onStep: (step, total, loss) => {
          steps.push([step, total]);
          losses.push(loss);
        },
      });
    });
    after(() => trained.model.dispose());

    test('trainClassifier: one step per batch, the loss falls from chance level, the normalisation is the training set\'s pixel statistics', () => {
      assert.deepEqual(steps, Array.from({ length: 20 }, (_, i) => [i + 1, 20]));
      // Cross-entropy of a uniform guess over 10 classes is ln 10 ≈ 2.30.
      assert.ok(losses[0]! > 1.8, `first loss ${losses[0]}`);
      assert.ok(trained.finalLoss < 1.2, `final loss ${trained.finalLoss}`);
      assert.equal(trained.finalLoss, losses[losses.length - 1]);
      // Two-pass mean and standard deviation of the pixels on the [0, 1] scale.
      const pixels = Array.from(small().images, (v) => v / 255);
      const mean = pixels.reduce((a, b) => a + b, 0) / pixels.length;
      const std = Math.sqrt(pixels.reduce((a, b) => a + (b - mean) ** 2, 0) / pixels.length);
      assert.ok(Math.abs(trained.normalization.mean - mean) < 1e-9, `mean ${trained.normalization.mean} vs ${mean}`);
      assert.ok(Math.abs(trained.normalization.std - std) < 1e-9, `std ${trained.normalization.std} vs ${std}`);
      assert.ok(mean > 0.1 && mean < 0.16 && std > 0.25 && std < 0.35, `MNIST pixel statistics ${mean}, ${std}`);
    });

    test('scoreClassifier: accuracy and per-class accuracy agree with argmax of the logits computed here, for any batch size', () => {
      withNoLeaks(() => {
        const { mean, std } = trained.normalization;
        const n = uneven.count;
        const x = tensor(Float32Array.from(uneven.images, (v) => (v / 255 - mean) / std), { shape: [n, 1, 28, 28] });
        const logits = inferenceMode(() => tidy(() => trained.model.forward(x).toArray()));
        const predicted = rowArgmax(logits, 10);
        const counts = new Array<number>(10).fill(0);
        const hits = new Array<number>(10).fill(0);
        for (let i = 0; i < n; i++) {
          counts[uneven.labels[i]!]!++;
          if (predicted[i] === uneven.labels[i]) hits[uneven.labels[i]!]!++;
        }
        const accuracy = hits.reduce((a, b) => a + b, 0) / n;
        const perClass = hits.map((h, c) => h / counts[c]!);
        // The check is not vacuous: there are mistakes, and the unbalanced classes make the overall accuracy
        // differ from the mean of the per-class accuracies.
        assert.ok(accuracy > 0.6 && accuracy < 1, `accuracy ${accuracy}`);
        const meanOfClasses = perClass.slice(0, 9).reduce((a, b) => a + b, 0) / 9;
        assert.ok(Math.abs(accuracy - meanOfClasses) > 1e-3);
        for (const batchSize of [1000, 64, 7]) {
          const score = scoreClassifier(trained, uneven, batchSize);
          assert.deepEqual(score.classCounts, counts);
          assert.ok(Math.abs(score.accuracy - accuracy) < 1e-12, `batch ${batchSize}: accuracy ${score.accuracy}, expected ${accuracy}`);
          for (let c = 0; c < 9; c++) {
            assert.ok(Math.abs(score.perClass[c]! - perClass[c]!) < 1e-12, `batch ${batchSize}: class ${c} ${score.perClass[c]}, expected ${perClass[c]}`);
          }
          assert.ok(Number.isNaN(score.perClass[9]));
        }
      });
    });

    test('scoreClassifier on test labels shifted by one (c → c + 1 mod 10) scores what the classifier gets "wrong" that way, near 0', () => {
      const shifted: ImageSet = { ...testSet, labels: testSet.labels.map((l) => (l + 1) % 10) };
      const right = scoreClassifier(trained, testSet).accuracy;
      const wrong = scoreClassifier(trained, shifted).accuracy;
      assert.ok(right > 0.7, `accuracy ${right}`);
      assert.ok(wrong < 0.1, `accuracy against shifted labels ${wrong}`);
    });
  });

  test('CAS of real images is high; the same images with shuffled labels score near chance', () => {
    withNoLeaks(() => {
      const opts = { classifiers: 1, epochs: 2, batchSize: 64, seed: 0 };
      const real = classificationAccuracyScore(train, testSet, opts);
      const perm = permutation(train.count, 7);
      const shuffled: ImageSet = { ...train, labels: Uint8Array.from(perm, (i) => train.labels[i]!) };
      assert.deepEqual(classCounts(shuffled), classCounts(train));
      const chance = classificationAccuracyScore(shuffled, testSet, opts);
      assert.ok(real.mean > 0.85, `CAS of real images ${real.mean}`);
      assert.ok(chance.mean < 0.25, `CAS with shuffled labels ${chance.mean}`);
      for (const s of [real, chance]) {
        assert.equal(s.trainImages, 2000);
        assert.deepEqual(s.accuracies, [s.mean]);
        assert.equal(s.std, 0);
        assert.equal(s.perClassMean.length, 10);
        assert.deepEqual(s.perClassStd, new Array<number>(10).fill(0));
        // Balanced test set: the overall accuracy is the mean of the per-class ones.
        const m = s.perClassMean.reduce((a, b) => a + b, 0) / 10;
        assert.ok(Math.abs(m - s.mean) < 1e-12, `per-class mean ${m} vs ${s.mean}`);
      }
    });
  });

  test('CAS scores on the test set, not the training set: against test labels shifted by one (c → c + 1 mod 10), real images score near 0', () => {
    withNoLeaks(() => {
      const shiftedTest: ImageSet = { ...testSet, labels: testSet.labels.map((l) => (l + 1) % 10) };
      const against = classificationAccuracyScore(train, shiftedTest, { classifiers: 1, epochs: 2, batchSize: 64, seed: 0 });
      assert.ok(against.mean < 0.1, `CAS against shifted test labels ${against.mean}`);
      assert.equal(against.trainImages, 2000);
    });
  });

  test('CAS with m classifiers: classifier k is the one trained with seed + k; mean, std and per-class stats are over the m', () => {
    withNoLeaks(() => {
      const small = balancedSubset(trainAll, 50, 3);
      const opts = { epochs: 1, batchSize: 50, seed: 40 };
      const calls: number[] = [];
      const two = classificationAccuracyScore(small, testSet, { ...opts, classifiers: 2, onStep: (k) => calls.push(k) });
      assert.deepEqual(calls, [...Array<number>(10).fill(0), ...Array<number>(10).fill(1)]);
      const first = classificationAccuracyScore(small, testSet, { ...opts, classifiers: 1 });
      const second = classificationAccuracyScore(small, testSet, { ...opts, classifiers: 1, seed: 41 });
      assert.deepEqual(two.accuracies, [first.mean, second.mean]);
      assert.notEqual(first.mean, second.mean, 'two seeds, two classifiers');
      const [mean, std] = [(first.mean + second.mean) / 2, Math.abs(first.mean - second.mean) / Math.SQRT2];
      assert.ok(Math.abs(two.mean - mean) < 1e-12 && Math.abs(two.std - std) < 1e-12, `${two.mean} ± ${two.std}, expected ${mean} ± ${std}`);
      for (let c = 0; c < 10; c++) {
        const [a, b] = [first.perClassMean[c]!, second.perClassMean[c]!];
        assert.ok(Math.abs(two.perClassMean[c]! - (a + b) / 2) < 1e-12);
        assert.ok(Math.abs(two.perClassStd[c]! - Math.abs(a - b) / Math.SQRT2) < 1e-12);
      }
    });
  });

  test('CAS rejects a training set that does not match the test set, and a classifier count that is not a positive integer', () => {
    const tiny = subset(testSet, [0, 1, 2]);
    const small: ImageSet = { images: new Uint8Array(3 * 14 * 14), labels: Uint8Array.from([0, 1, 2]), count: 3, height: 14, width: 14, numClasses: 10 };
    assert.throws(() => classificationAccuracyScore(small, tiny, { classifiers: 1, epochs: 1, seed: 0 }), (e: unknown) => e instanceof DataError && /14×14.*28×28/.test(e.message));
    assert.throws(() => classificationAccuracyScore({ ...tiny, numClasses: 11 }, tiny, { classifiers: 1, epochs: 1, seed: 0 }), DataError);
    for (const classifiers of [0, 1.5, -1]) assert.throws(() => classificationAccuracyScore(tiny, tiny, { classifiers, epochs: 1, seed: 0 }), RangeError);
  });
});
