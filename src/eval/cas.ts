// Classification Accuracy Score (Ravuri & Vinyals 2019), as the paper uses it (§0.2): m classifiers are
// trained on a dataset (real or generated) and scored on the real test set; the score is their mean
// accuracy, with the spread over the m runs.
import { classCounts, type ImageSet } from '../data/image-set.ts';
import { DataError } from '../data/idx.ts';
import { Rng, shuffle, subset } from '../data/sampling.ts';
import { scoreClassifier, trainClassifier } from './classifier.ts';

export interface CasOptions {
  /** Classifiers trained per dataset (the paper: 5). */
  classifiers: number;
  /** Epochs per classifier (the paper: 5). */
  epochs: number;
  batchSize?: number;
  lr?: number;
  /** Classifier k uses seed + k. */
  seed: number;
  device?: string;
  /** Called after every training step of every classifier. */
  onStep?: (classifier: number, step: number, totalSteps: number, loss: number) => void;
}

/** The score of one dataset: m classifiers trained on it, each scored on the real test set. */
export interface CasScore {
  /** Mean and standard deviation of the m test accuracies. */
  mean: number;
  std: number;
  /** Test accuracy of each classifier. */
  accuracies: number[];
  /** Per-class accuracy: mean and std over the m classifiers, one entry per class. */
  perClassMean: number[];
  perClassStd: number[];
  /** Images the classifiers were trained on. */
  trainImages: number;
}

/** Mean and sample standard deviation (n − 1, as numpy's std(ddof=1); 0 for a single value). */
export function meanStd(xs: readonly number[]): [number, number] {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const variance = xs.length > 1 ? xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1) : 0;
  return [mean, Math.sqrt(variance)];
}

/** Images of each class a CAS training set must hold (a classifier that never saw a class cannot be scored fairly). */
export const MIN_PER_CLASS = 1;

/** Trains `classifiers` classifiers on `train` and scores each on `test`. */
export function classificationAccuracyScore(train: ImageSet, test: ImageSet, opts: CasOptions): CasScore {
  if (!Number.isInteger(opts.classifiers) || opts.classifiers < 1) throw new RangeError(`classifiers must be a positive integer, got ${opts.classifiers}`);
  if (train.height !== test.height || train.width !== test.width) {
    throw new DataError(`the training images are ${train.height}×${train.width} but the test images are ${test.height}×${test.width}`);
  }
  if (train.numClasses !== test.numClasses) throw new DataError(`the training set has ${train.numClasses} classes but the test set has ${test.numClasses}`);
  const counts = classCounts(train);
  if (counts.some((n) => n < MIN_PER_CLASS)) {
    throw new DataError(`CAS needs at least ${MIN_PER_CLASS} training image${MIN_PER_CLASS === 1 ? '' : 's'} of every class; this set has ${counts.map((n, c) => `${c}: ${n}`).join(', ')}`);
  }
  const accuracies: number[] = [];
  const perClass: number[][] = [];
  for (let k = 0; k < opts.classifiers; k++) {
    const trained = trainClassifier(train, {
      epochs: opts.epochs,
      batchSize: opts.batchSize,
      lr: opts.lr,
      seed: opts.seed + k,
      device: opts.device,
      onStep: (step, total, loss) => opts.onStep?.(k, step, total, loss),
    });
    const score = scoreClassifier(trained, test);
    trained.model.dispose();
    accuracies.push(score.accuracy);
    perClass.push(score.perClass);
  }
  const [mean, std] = meanStd(accuracies);
  const perClassStats = Array.from({ length: test.numClasses }, (_, c) => meanStd(perClass.map((p) => p[c]!)));
  return {
    mean,
    std,
    accuracies,
    perClassMean: perClassStats.map(([m]) => m),
    perClassStd: perClassStats.map(([, s]) => s),
    trainImages: train.count,
  };
}

/**
 * The paper's CAS training set from several generated sets: pooled, shuffled, then at most
 * `total / numClasses` images of each class kept, so the result is balanced and `total` images long
 * whenever every class has enough images.
 */
export function combineBalanced(sets: readonly ImageSet[], total: number, seed: number): ImageSet {
  if (sets.length === 0) throw new RangeError('combineBalanced: no sets');
  const first = sets[0]!;
  for (const s of sets) {
    if (s.height !== first.height || s.width !== first.width || s.numClasses !== first.numClasses) {
      throw new DataError(`cannot pool ${s.height}×${s.width} images with ${first.height}×${first.width} ones`);
    }
  }
  const pooled = pool(sets);
  const order = shuffle(Array.from({ length: pooled.count }, (_, i) => i), new Rng(seed));
  const cap = Math.floor(total / first.numClasses);
  const taken = new Array<number>(first.numClasses).fill(0);
  const keep: number[] = [];
  for (const i of order) {
    const label = pooled.labels[i]!;
    if (taken[label]! < cap) {
      taken[label]!++;
      keep.push(i);
    }
  }
  const short = taken.findIndex((n) => n < cap);
  if (short >= 0) throw new DataError(`class ${short} has only ${taken[short]} images; ${cap} are needed for a balanced set of ${total}`);
  return subset(pooled, keep);
}

function pool(sets: readonly ImageSet[]): ImageSet {
  const count = sets.reduce((n, s) => n + s.count, 0);
  const { height, width, numClasses } = sets[0]!;
  const images = new Uint8Array(count * height * width);
  const labels = new Uint8Array(count);
  let at = 0;
  for (const s of sets) {
    images.set(s.images, at * height * width);
    labels.set(s.labels, at);
    at += s.count;
  }
  return { images, labels, count, height, width, numClasses };
}
