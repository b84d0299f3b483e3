import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { DataError, readIdx, writeIdx } from './idx.ts';

/** A labelled set of 8-bit grey images, stored row-major as count×height×width bytes. */
export interface ImageSet {
  images: Uint8Array;
  labels: Uint8Array;
  count: number;
  height: number;
  width: number;
  numClasses: number;
}

function checkNumClasses(numClasses: number): void {
  if (!Number.isInteger(numClasses) || numClasses < 1 || numClasses > 256) {
    throw new RangeError(`numClasses must be an integer in [1, 256], got ${numClasses}`);
  }
}

/**
 * Reads an image set from an IDX image file (3-D uint8) and an IDX label file (1-D uint8), plain or gzipped.
 * @throws DataError when a file is missing or malformed, the counts differ, or a label is >= numClasses.
 */
export function readImageSet(imagesPath: string, labelsPath: string, numClasses = 10): ImageSet {
  checkNumClasses(numClasses);
  const img = readIdx(imagesPath);
  if (img.dtype !== 'uint8' || img.shape.length !== 3) {
    throw new DataError(
      `${imagesPath}: expected a 3-D uint8 image file (count x height x width), got ${img.shape.length}-D ${img.dtype} [${img.shape.join('x')}]`,
    );
  }
  const lab = readIdx(labelsPath);
  if (lab.dtype !== 'uint8' || lab.shape.length !== 1) {
    throw new DataError(
      `${labelsPath}: expected a 1-D uint8 label file, got ${lab.shape.length}-D ${lab.dtype} [${lab.shape.join('x')}]`,
    );
  }
  const [count, height, width] = img.shape as [number, number, number];
  if (lab.data.length !== count) {
    throw new DataError(
      `image/label count mismatch: ${imagesPath} has ${count} images but ${labelsPath} has ${lab.data.length} labels`,
    );
  }
  const labels = lab.data;
  for (let i = 0; i < labels.length; i++) {
    if (labels[i]! >= numClasses) {
      throw new DataError(
        `${labelsPath}: label ${labels[i]} at index ${i} is out of range (must be < ${numClasses} classes)`,
      );
    }
  }
  return { images: img.data, labels, count, height, width, numClasses };
}

/**
 * Checks that the fields of `set` agree with each other (array sizes, label range).
 * @throws RangeError naming the first inconsistency.
 */
export function checkImageSet(set: ImageSet): void {
  const { count, height, width, numClasses, images, labels } = set;
  checkNumClasses(numClasses);
  for (const [k, v] of [['count', count], ['height', height], ['width', width]] as const) {
    if (!Number.isInteger(v) || v < 0) throw new RangeError(`ImageSet.${k} must be a non-negative integer, got ${v}`);
  }
  if (images.length !== count * height * width) {
    throw new RangeError(`ImageSet.images has ${images.length} bytes, expected ${count}x${height}x${width} = ${count * height * width}`);
  }
  if (labels.length !== count) throw new RangeError(`ImageSet.labels has ${labels.length} entries, expected count = ${count}`);
  for (let i = 0; i < count; i++) {
    if (labels[i]! >= numClasses) {
      throw new RangeError(`ImageSet label ${labels[i]} at index ${i} is out of range (must be < ${numClasses} classes)`);
    }
  }
}

/**
 * Writes `set` as `<dir>/<prefix>-images-idx3-ubyte` and `<dir>/<prefix>-labels-idx1-ubyte` (MNIST naming,
 * e.g. prefix `train` or `t10k`), each atomically. Returns the two paths.
 */
export function writeImageSet(dir: string, set: ImageSet, prefix: string): { imagesPath: string; labelsPath: string } {
  checkImageSet(set);
  const imagesPath = join(dir, `${prefix}-images-idx3-ubyte`);
  const labelsPath = join(dir, `${prefix}-labels-idx1-ubyte`);
  writeIdx(imagesPath, { dtype: 'uint8', shape: [set.count, set.height, set.width], data: set.images });
  writeIdx(labelsPath, { dtype: 'uint8', shape: [set.count], data: set.labels });
  return { imagesPath, labelsPath };
}

/** Number of images of each class, indexed by label (length `numClasses`). */
export function classCounts(set: ImageSet): number[] {
  const counts = new Array<number>(set.numClasses).fill(0);
  for (let i = 0; i < set.count; i++) {
    const l = set.labels[i]!;
    if (l >= set.numClasses) {
      throw new RangeError(`ImageSet label ${l} at index ${i} is out of range (must be < ${set.numClasses} classes)`);
    }
    counts[l]!++;
  }
  return counts;
}

/**
 * Reads the image set in a folder: one `<prefix>-images-idx3-ubyte` file (optionally `.gz`) and its
 * `<prefix>-labels-idx1-ubyte` partner, as `generate` writes and MNIST ships them.
 * @throws DataError when the folder is missing, holds no such pair, or holds several.
 */
export function readImageSetDir(dir: string, numClasses = 10): ImageSet {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new DataError(`${dir}: no such folder`);
  const images = readdirSync(dir).filter((f) => /-images-idx3-ubyte(\.gz)?$/.test(f));
  if (images.length !== 1) {
    throw new DataError(images.length === 0 ? `${dir}: no *-images-idx3-ubyte file` : `${dir}: several image files (${images.join(', ')}); give one set per folder`);
  }
  const labels = images[0]!.replace('-images-idx3-ubyte', '-labels-idx1-ubyte');
  if (!existsSync(join(dir, labels))) throw new DataError(`${dir}: ${images[0]} has no matching ${labels}`);
  return readImageSet(join(dir, images[0]!), join(dir, labels), numClasses);
}
