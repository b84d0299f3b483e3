// What a cascade's upscaler alone costs: real training images it did not train on, downscaled as its
// conditioning was (28 → 14) and upscaled by it, written as generated sets beside the same images as they are
// and bilinearly upscaled, for `ssddpm cas` and `ssddpm fidelity` to score.
//   npm run example:upscaler-ceiling -- --upscaler pretrained/mnist/upscaler-vcfg-aug-ema-1 --out /tmp/ceiling
import { Buffer } from 'node:buffer';
import { parseArgs } from 'node:util';
import { writeGeneratedSet } from '../src/data/generated-set.ts';
import { loadDataset } from '../src/data/datasets.ts';
import type { ImageSet } from '../src/data/image-set.ts';
import { balancedSubset, subset } from '../src/data/sampling.ts';
import { downscale, upscale } from '../src/data/tensor-dataset.ts';
import { loadModel } from '../src/pipelines/pipeline.ts';
import { readRunConfig } from '../src/pipelines/run-dir.ts';
import { Generator } from '../src/torch/generator.ts';
import { tidy } from '../src/torch/scope.ts';
import { tensor } from '../src/torch/ops/creation.ts';
import type { Tensor } from '../src/torch/tensor.ts';

const { values } = parseArgs({
  options: {
    upscaler: { type: 'string' },
    out: { type: 'string' },
    count: { type: 'string', default: '3334' },
    seed: { type: 'string', default: '1001' },
  },
});
if (values.upscaler === undefined || values.out === undefined) throw new Error('give --upscaler RUN and --out DIR');
const count = Number(values.count);
const seed = Number(values.seed);
if (!Number.isInteger(count) || count < 10) throw new Error(`--count must be an integer ≥ 10, got '${values.count}'`);
if (!Number.isInteger(seed) || seed < 0) throw new Error(`--seed must be a non-negative integer, got '${values.seed}'`);

const run = readRunConfig(values.upscaler);
const { dataset, imageSize, lowResSize } = run.model;
if (lowResSize === undefined) throw new Error(`${values.upscaler} is a ${run.model.kind} model, not an upscaler`);
const S = imageSize;
const train = loadDataset(dataset, 'train');
// The images the upscaler trained on are its balanced subset; the others of the training split are unseen.
const seen = balancedSubset(train, run.training.perClass, run.training.subsetSeed);
const key = (set: ImageSet, i: number) => Buffer.from(set.images.subarray(i * S * S, (i + 1) * S * S)).toString('base64');
const seenKeys = new Set(Array.from({ length: seen.count }, (_, i) => key(seen, i)));
const unseen = subset(train, Array.from({ length: train.count }, (_, i) => i).filter((i) => !seenKeys.has(key(train, i))));
const picked = balancedSubset(unseen, Math.ceil(count / 10), seed);
const images = subset(picked, Array.from({ length: count }, (_, i) => i));
console.log(`${dataset}: ${unseen.count} training images outside ${values.upscaler}'s subset; ${count} of them, balanced`);

const model = loadModel(values.upscaler);
const generator = new Generator(seed);
const upscaled = new Uint8Array(count * S * S);
const bilinear = new Uint8Array(count * S * S);
const bytes = (x: Tensor) => x.clamp(0, 1).mul(255).round().to({ dtype: 'uint8' }).data() as Uint8Array;
const started = performance.now();
for (let start = 0; start < count; start += 256) {
  const n = Math.min(256, count - start);
  tidy(() => {
    const x = tensor(Float32Array.from(images.images.subarray(start * S * S, (start + n) * S * S), (v) => v / 255), { shape: [n, 1, S, S] });
    const lowRes = downscale(x, lowResSize).clamp(0, 1);
    const labels = Array.from(images.labels.subarray(start, start + n));
    upscaled.set(bytes(model.sample(labels, { lowRes, sampler: 'ddim', eta: 0, clip: true, generator }).sample), start * S * S);
    bilinear.set(bytes(upscale(lowRes, S)), start * S * S);
  });
}
model.dispose();
writeGeneratedSet(`${values.out}/real`, images, { dataset });
writeGeneratedSet(`${values.out}/upscaled`, { ...images, images: upscaled }, { dataset, upscaler: values.upscaler, sampler: 'ddim', eta: 0, clip: true, seed });
writeGeneratedSet(`${values.out}/bilinear`, { ...images, images: bilinear }, { dataset });
console.log(`wrote ${values.out}/{real,upscaled,bilinear} in ${((performance.now() - started) / 1000).toFixed(1)} s; score each with ssddpm cas --set and ssddpm fidelity --set`);
