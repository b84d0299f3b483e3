import { Command } from '@commander-js/extra-typings';
import { disposePipeline, generateSet, loadPipeline, writeGeneratedSet } from '../../experiments/pipelines.ts';
import { createProgress } from '../progress.ts';
import { samplingFrom, withSamplingOptions } from '../sampling-options.ts';
import { device, nonNegativeInt, positiveInt, runPair } from '../parse.ts';
import { checkOutputFolder } from '../output.ts';

export const generateCommand = withSamplingOptions(
  new Command('generate')
    .description('generate a labelled image set, balanced over labels, as MNIST-format IDX files (readable by numpy/torchvision)')
    .option('--run <dir>', 'a baseline or small run folder')
    .option('--cascade <small,upscaler>', 'generate with small → ×2 → upscaler', runPair)
    .option('--upscale', 'with a small run: upscale its samples ×2 bilinearly ("small upscaled")')
    .requiredOption('--out <dir>', 'folder to create: train-images-idx3-ubyte, train-labels-idx1-ubyte, generated.json')
    .option('--count <n>', 'number of images', positiveInt, 3334)
    .option('--seed <n>', 'sampling seed', nonNegativeInt, 0)
    .option('--batch-size <n>', 'images sampled at once', positiveInt, 256)
)
  .option('--no-ema', 'use the trained weights even where a run kept a moving average of them')
  .option('--device <dev>', "'cpu' or 'cuda[:N]'", device)
  .addHelpText('after', '\nExample:\n  ssddpm generate --run runs/baseline-1 --count 3334 --out sets/baseline-1')
  .action((o) => {
    checkOutputFolder(o.out, { fresh: true });
    const sampling = samplingFrom(o);
    const pipeline = loadPipeline({ run: o.run, cascade: o.cascade, upscale: o.upscale, device: o.device, ema: o.ema });
    try {
      const progress = createProgress('generate', o.count);
      const started = performance.now();
      const set = generateSet(pipeline, {
        count: o.count,
        seed: o.seed,
        batchSize: o.batchSize,
        ...sampling,
        onProgress: (done) => progress.update(done),
      });
      progress.stop();
      const source = o.cascade ? { cascade: o.cascade } : { run: o.run, upscale: o.upscale ?? false };
      writeGeneratedSet(o.out, set, { ...source, seed: o.seed, ...sampling });
      const pct = (x: number) => `${(100 * x).toFixed(1)} %`;
      console.log(`wrote ${o.out}: ${set.count} images ${set.height}×${set.width} in ${((performance.now() - started) / 1000).toFixed(1)} s; ` +
        `clamped to [0, 1]: ${pct(set.offRange.pixels)} of pixels (> ½ gray level off), ${pct(set.offRange.samples)} of samples (> 0.1 off)`);
    } finally {
      disposePipeline(pipeline);
    }
  });
