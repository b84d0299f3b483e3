// The classifier the fidelity metrics judge with: the paper's CAS network trained on a dataset's whole real
// training set, trained once and cached (a safetensors checkpoint named by a hash of everything that made it).
import { existsSync, mkdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { loadDataset, type DatasetName } from '../data/datasets.ts';
import { balancedSubset } from '../data/sampling.ts';
import type { Normalization } from '../data/tensor-dataset.ts';
import { loadCheckpoint, restoreCheckpoint, saveCheckpoint } from '../io/checkpoint.ts';
import { canonicalJson, sha256 } from '../io/content-hash.ts';
import { Classifier, type ClassifierConfig } from '../models/classifier.ts';
import { dispose } from '../torch/scope.ts';
import { trainClassifier, type TrainedClassifier } from './classifier.ts';

export interface ReferenceClassifierOptions {
  dataset: DatasetName;
  /** Where trained classifiers are kept (default: defaultCacheDir()). */
  cacheDir?: string;
  /** The paper's CAS recipe: 5 epochs, seed 0. */
  epochs?: number;
  /** Train on a class-balanced subset of this many images per class instead of the whole training set. */
  perClass?: number;
  seed?: number;
  device?: string;
  onStep?: (step: number, total: number, loss: number) => void;
}

// Bumped when training or the network changes what a cached classifier would be.
const REFERENCE_VERSION = 1;

/** $XDG_CACHE_HOME/ssddpm, or ~/.cache/ssddpm. */
export function defaultCacheDir(): string {
  return join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'ssddpm');
}

/** The cached classifier's file for these settings (it may not exist yet). */
export function referenceClassifierPath(opts: ReferenceClassifierOptions): string {
  const settings = { version: REFERENCE_VERSION, dataset: opts.dataset, epochs: opts.epochs ?? 5, seed: opts.seed ?? 0, ...(opts.perClass === undefined ? {} : { perClass: opts.perClass }) };
  return join(opts.cacheDir ?? defaultCacheDir(), `classifier-${opts.dataset}-${sha256(canonicalJson(settings)).slice(0, 16)}.safetensors`);
}

/** The real-data classifier: loaded from the cache, or trained on the whole training set and cached. */
export function referenceClassifier(opts: ReferenceClassifierOptions): TrainedClassifier & { cached: boolean } {
  const path = referenceClassifierPath(opts);
  if (existsSync(path)) {
    const saved = loadCheckpoint(path);
    const meta = saved.metadata as { config: ClassifierConfig; normalization: Normalization; finalLoss: number };
    dispose([...saved.tensors.values()]);
    const model = new Classifier(meta.config);
    try {
      restoreCheckpoint(path, { model, device: opts.device });
    } catch (err) {
      model.dispose();
      throw err;
    }
    if (opts.device !== undefined) model.to({ device: opts.device });
    return { model, normalization: meta.normalization, finalLoss: meta.finalLoss, cached: true };
  }
  const all = loadDataset(opts.dataset, 'train');
  const train = opts.perClass === undefined ? all : balancedSubset(all, opts.perClass, opts.seed ?? 0);
  const trained = trainClassifier(train, { epochs: opts.epochs ?? 5, seed: opts.seed ?? 0, device: opts.device, onStep: opts.onStep });
  mkdirSync(opts.cacheDir ?? defaultCacheDir(), { recursive: true });
  saveCheckpoint(path, { model: trained.model, metadata: { config: trained.model.config, normalization: trained.normalization, finalLoss: trained.finalLoss, dataset: opts.dataset } });
  return { ...trained, cached: false };
}
