// Fidelity metrics: the Fréchet distance against its closed form, precision and recall on distributions whose
// answer is known, and conditional accuracy with a classifier trained on real MNIST.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadMnist } from '../src/data/datasets.ts';
import { balancedSubset } from '../src/data/sampling.ts';
import { trainClassifier } from '../src/eval/classifier.ts';
import { classifierFeatures, conditionalAccuracy, fidelity, frechetDistance, precisionRecall } from '../src/eval/fidelity.ts';
import { referenceClassifier, referenceClassifierPath } from '../src/eval/reference-classifier.ts';
import { Generator } from '../src/torch/generator.ts';
import { tensor } from '../src/torch/ops/creation.ts';
import { randn } from '../src/torch/ops/random.ts';
import { tidy } from '../src/torch/scope.ts';

const gaussian = (n: number, mean: number[], std: number[], seed: number) =>
  randn([n, mean.length], { generator: new Generator(seed), dtype: 'float64' }).mul(tensor(std, { dtype: 'float64' })).add(tensor(mean, { dtype: 'float64' }));

test('Fréchet distance: 0 for a set against itself, the closed form for Gaussians with diagonal covariances', () => {
  tidy(() => {
    const a = gaussian(20000, [0, 0, 0, 0], [1, 1, 1, 1], 1);
    assert.ok(Math.abs(frechetDistance(a, a)) < 1e-8);
    const mean = [1, -2, 0, 0.5];
    const std = [1, 2, 0.5, 1];
    const b = gaussian(20000, mean, std, 2);
    // ‖m‖² + Σ (1 − s_i)² for N(0, I) against N(m, diag(s²)).
    const expected = mean.reduce((x, m) => x + m * m, 0) + std.reduce((x, s) => x + (1 - s) ** 2, 0);
    const fd = frechetDistance(a, b);
    assert.ok(Math.abs(fd - expected) < 0.05 * expected, `FD ${fd}, expected ${expected}`);
    assert.ok(Math.abs(frechetDistance(b, a) - fd) < 1e-6, 'symmetric');
    assert.throws(() => frechetDistance(a.narrow(0, 0, 1), b), /at least 2 samples/);
  });
});

test('precision and recall: same distribution, a collapsed generator, a distant one', () => {
  tidy(() => {
    const real = gaussian(1500, [0, 0, 0], [1, 1, 1], 3);
    const same = precisionRecall(real, gaussian(1500, [0, 0, 0], [1, 1, 1], 4));
    assert.ok(same.precision > 0.85 && same.recall > 0.85, JSON.stringify(same));
    // Every sample near the mode: faithful but not diverse.
    const collapsed = precisionRecall(real, gaussian(1500, [0, 0, 0], [0.05, 0.05, 0.05], 5));
    assert.ok(collapsed.precision > 0.95 && collapsed.recall < 0.1, JSON.stringify(collapsed));
    const distant = precisionRecall(real, gaussian(1500, [50, 0, 0], [1, 1, 1], 6));
    assert.deepEqual(distant, { precision: 0, recall: 0 });
  });
});

test('conditional accuracy and features from a classifier trained on real MNIST; a set with wrong labels scores low', () => {
  const train = balancedSubset(loadMnist('train'), 300, 1);
  const testSet = balancedSubset(loadMnist('test'), 100, 2);
  const classifier = trainClassifier(train, { epochs: 2, seed: 0 });
  try {
    const f = classifierFeatures(classifier, testSet);
    assert.deepEqual(f.features.shape, [testSet.count, 128]);
    assert.equal(f.features.dtype, 'float64');
    const accuracy = conditionalAccuracy(f, testSet);
    assert.ok(accuracy > 0.85, `accuracy on real test digits ${accuracy}`);
    const mislabelled = { ...testSet, labels: testSet.labels.map((l) => (l + 1) % 10) };
    assert.ok(conditionalAccuracy(f, mislabelled) < 0.1);
    // Real training digits are close to the test digits; random pixels are far.
    const reference = f;
    const realScore = fidelity(classifier, balancedSubset(loadMnist('train'), 100, 3), reference);
    const noise = { ...testSet, images: testSet.images.map((_, i) => (i * 7919) % 256) };
    const noiseScore = fidelity(classifier, noise, reference);
    assert.ok(realScore.frechetDistance * 5 < noiseScore.frechetDistance, `FD real ${realScore.frechetDistance}, noise ${noiseScore.frechetDistance}`);
    assert.ok(realScore.precision > 0.5 && realScore.recall > 0.5, JSON.stringify(realScore));
    assert.ok(noiseScore.precision < 0.05, JSON.stringify(noiseScore));
    assert.ok(realScore.conditionalAccuracy > 0.85);
    f.features.dispose();
  } finally {
    classifier.model.dispose();
  }
});

test('the reference classifier is trained once, then loaded from its cache with the same predictions', () => {
  const cacheDir = mkdtempSync(join(tmpdir(), 'ssddpm-judge-'));
  try {
    const opts = { dataset: 'mnist' as const, cacheDir, epochs: 1, perClass: 50 };
    const first = referenceClassifier(opts);
    assert.equal(first.cached, false);
    assert.ok(existsSync(referenceClassifierPath(opts)));
    const second = referenceClassifier(opts);
    assert.equal(second.cached, true);
    assert.deepEqual(second.normalization, first.normalization);
    const probe = balancedSubset(loadMnist('test'), 10, 4);
    const a = classifierFeatures(first, probe);
    const b = classifierFeatures(second, probe);
    assert.deepEqual(b.predicted, a.predicted);
    assert.ok(frechetDistance(a.features, b.features) < 1e-9);
    assert.notEqual(referenceClassifierPath({ ...opts, epochs: 2 }), referenceClassifierPath(opts), 'other settings, another file');
    for (const x of [a.features, b.features]) x.dispose();
    first.model.dispose();
    second.model.dispose();
  } finally {
    rmSync(cacheDir, { recursive: true, force: true });
  }
});
