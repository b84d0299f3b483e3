// Metrics beside CAS that a generator cannot game by making a classifier-friendly mess. All use one classifier
// trained on real data (the paper's CAS network) and its penultimate features — the 128 GELU outputs feeding
// the last linear layer, the analogue of FID's Inception pool features:
//   - conditional accuracy: the share of samples the classifier labels as the label they were asked for;
//   - Fréchet distance between Gaussians fitted to the features of two sets (Heusel et al. 2017);
//   - precision and recall (Kynkäänniemi et al. 2019): the share of generated samples inside the real data's
//     manifold (the union of balls reaching each real sample's k-th nearest real neighbour), and the share of
//     real samples inside the generated data's manifold; k = 3.
import type { ImageSet } from '../data/image-set.ts';
import { DataError } from '../data/idx.ts';
import { TensorDataset, normalize } from '../data/tensor-dataset.ts';
import { batches } from '../data/sampling.ts';
import { inferenceMode } from '../torch/grad-mode.ts';
import { eye } from '../torch/ops/creation.ts';
import { ge, gt } from '../torch/ops/pointwise.ts';
import { cat } from '../torch/ops/shape.ts';
import { cdist, eigh, matmul } from '../torch/ops/linalg.ts';
import { argmax, kthvalue } from '../torch/ops/reduction.ts';
import { keep, tidy } from '../torch/scope.ts';
import type { Tensor } from '../torch/tensor.ts';
import type { TrainedClassifier } from './classifier.ts';

export interface SetFeatures {
  /** Penultimate features, float64 [N, 128]. */
  features: Tensor;
  /** The classifier's label for each image. */
  predicted: Int32Array;
}

/** The classifier's penultimate features and predicted labels of every image of `set`. */
export function classifierFeatures(c: TrainedClassifier, set: ImageSet, batchSize = 1000): SetFeatures {
  const layers = c.model.layers;
  const head = layers[layers.length - 1]!;
  c.model.eval();
  const data = new TensorDataset(set, c.model.parameters()[0]!.device);
  const parts: Tensor[] = [];
  const predicted = new Int32Array(set.count);
  try {
    inferenceMode(() => {
      for (const idx of batches(set.count, batchSize)) {
        const [features, labels] = tidy(() => {
          let h = normalize(data.batch(idx).images, c.normalization);
          for (const layer of layers.slice(0, -1)) h = layer.forward(h);
          return [keep(h.to({ dtype: 'float64', device: 'cpu' })), argmax(head.forward(h), 1).toArray()] as const;
        });
        parts.push(features);
        idx.forEach((i, k) => (predicted[i] = labels[k]!));
      }
    });
    // Batches come in order (no shuffling), so rows follow the set's order.
    return { features: tidy(() => keep(cat(parts, 0))), predicted };
  } finally {
    for (const p of parts) p.dispose();
    data.dispose();
  }
}

/** The share of images whose predicted label is their own label. */
export function conditionalAccuracy(f: SetFeatures, set: ImageSet): number {
  let hits = 0;
  for (let i = 0; i < set.count; i++) if (f.predicted[i] === set.labels[i]) hits++;
  return hits / set.count;
}

// Mean [d] and covariance [d, d] (n − 1) of the rows of x [n, d].
function moments(x: Tensor): [Tensor, Tensor] {
  return tidy(() => {
    const mu = x.mean(0);
    const centred = x.sub(mu);
    return [mu, matmul(centred.transpose(0, 1), centred).div_(x.size(0) - 1)];
  });
}

// Tr(√A) of a symmetric positive semi-definite matrix, from its eigenvalues (negatives from rounding → 0).
function traceSqrt(a: Tensor): number {
  return tidy(() => eigh(a)[0].clamp(0, null).sqrt().sum().item());
}

/**
 * ‖μa − μb‖² + Tr(Σa + Σb − 2 (Σa^½ Σb Σa^½)^½) between Gaussians fitted to the rows of a and b (float64 [n, d]);
 * the trace of the matrix square root is taken through a symmetric form, so it needs only eigendecompositions.
 */
export function frechetDistance(a: Tensor, b: Tensor): number {
  if (a.size(0) < 2 || b.size(0) < 2) throw new RangeError('the Fréchet distance needs at least 2 samples on each side');
  return tidy(() => {
    const [muA, covA] = moments(a);
    const [muB, covB] = moments(b);
    const [w, v] = eigh(covA);
    const rootA = matmul(v.mul(w.clamp(0, null).sqrt()), v.transpose(0, 1));
    const middle = matmul(matmul(rootA, covB), rootA);
    const symmetric = middle.add(middle.transpose(0, 1)).div_(2);
    const meanTerm = muA.sub(muB).square().sum().item();
    const trace = (m: Tensor) => m.mul(eye(m.size(0), { dtype: 'float64' })).sum().item();
    return meanTerm + trace(covA) + trace(covB) - 2 * traceSqrt(symmetric);
  });
}

/** Distance from each row of x to its k-th nearest other row (float64 [n]). */
function kthNeighbourRadii(x: Tensor, k: number, chunk: number): Tensor {
  const parts: Tensor[] = [];
  try {
    for (let start = 0; start < x.size(0); start += chunk) {
      const rows = Math.min(chunk, x.size(0) - start);
      // k + 1: the row itself is at distance 0.
      parts.push(tidy(() => keep(kthvalue(cdist(x.narrow(0, start, rows), x), k + 1, 1)[0])));
    }
    return tidy(() => keep(cat(parts, 0)));
  } finally {
    for (const p of parts) p.dispose();
  }
}

/** The share of rows of `query` within the k-NN ball of some row of `support`. */
function coverage(query: Tensor, support: Tensor, radii: Tensor, chunk: number): number {
  let inside = 0;
  for (let start = 0; start < query.size(0); start += chunk) {
    const rows = Math.min(chunk, query.size(0) - start);
    inside += tidy(() => {
      const within = ge(radii.unsqueeze(0).sub(cdist(query.narrow(0, start, rows), support)), 0).float();
      return gt(within.sum(1), 0).float().sum().item();
    });
  }
  return inside / query.size(0);
}

/** Improved precision and recall (Kynkäänniemi et al. 2019) of generated features against real ones. */
export function precisionRecall(real: Tensor, generated: Tensor, k = 3, chunk = 1000): { precision: number; recall: number } {
  if (real.size(0) <= k || generated.size(0) <= k) throw new RangeError(`precision and recall with k = ${k} need more than ${k} samples on each side`);
  const realRadii = kthNeighbourRadii(real, k, chunk);
  const generatedRadii = kthNeighbourRadii(generated, k, chunk);
  try {
    return { precision: coverage(generated, real, realRadii, chunk), recall: coverage(real, generated, generatedRadii, chunk) };
  } finally {
    realRadii.dispose();
    generatedRadii.dispose();
  }
}

export interface FidelityScore {
  /** Share of generated images the real-data classifier labels as their conditioning label. */
  conditionalAccuracy: number;
  /** Fréchet distance to the real test set in the classifier's penultimate features. */
  frechetDistance: number;
  precision: number;
  recall: number;
  /** k of the k-NN balls of precision and recall. */
  k: number;
}

/** The fidelity of a labelled set against the real test set's features, with the real-data classifier. */
export function fidelity(c: TrainedClassifier, set: ImageSet, reference: SetFeatures, k = 3): FidelityScore {
  if (set.numClasses !== c.model.config.numClasses) throw new DataError(`the set has ${set.numClasses} classes but the classifier ${c.model.config.numClasses}`);
  const f = classifierFeatures(c, set);
  try {
    return {
      conditionalAccuracy: conditionalAccuracy(f, set),
      frechetDistance: frechetDistance(f.features, reference.features),
      ...precisionRecall(reference.features, f.features, k),
      k,
    };
  } finally {
    f.features.dispose();
  }
}
