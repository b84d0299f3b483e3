import { Command, Option } from '@commander-js/extra-typings';
import { disposePipeline, generateSet, loadPipeline, writeGeneratedSet } from '../../experiments/pipelines.ts';
import { createProgress } from '../progress.ts';
import { device, nonNegativeInt, positiveInt, runPair } from '../parse.ts';
import { checkOutputFolder } from '../output.ts';

export const generateCommand = new Command('generate')
  .description('generate a labelled image set, balanced over labels, as MNIST-format IDX files (readable by numpy/torchvision)')
  .option('--run <dir>', 'a baseline or small run folder')
  .option('--cascade <small,upscaler>', 'generate with small → ×2 → upscaler', runPair)
  .option('--upscale', 'with a small run: upscale its samples ×2 bilinearly ("small upscaled")')
  .requiredOption('--out <dir>', 'folder to create: train-images-idx3-ubyte, train-labels-idx1-ubyte, generated.json')
  .option('--count <n>', 'number of images', positiveInt, 3334)
  .option('--seed <n>', 'sampling seed', nonNegativeInt, 0)
  .option('--batch-size <n>', 'images sampled at once', positiveInt, 256)
  .option('--clip', 'clip x̂0 to the data range at every step')
  .addOption(new Option('--variance <kind>', 'reverse-step variance').choices(['posterior', 'beta'] as const).default('posterior' as const))
  .option('--author-x0', 'estimate x̂0 with √α_t where √ᾱ_t belongs, as the paper\'s public code did (for comparison)')
  .option('--device <dev>', "'cpu' or 'cuda[:N]'", device)
  .addHelpText('after', '\nExample:\n  ssddpm generate --run runs/baseline-1 --count 3334 --out sets/baseline-1')
  .action((o) => {
    checkOutputFolder(o.out, { fresh: true });
    const pipeline = loadPipeline({ run: o.run, cascade: o.cascade, upscale: o.upscale, device: o.device });
    try {
      const progress = createProgress('generate', o.count);
      const started = performance.now();
      const set = generateSet(pipeline, {
        count: o.count,
        seed: o.seed,
        batchSize: o.batchSize,
        clip: o.clip ?? false,
        variance: o.variance,
        authorX0: o.authorX0 ?? false,
        onProgress: (done) => progress.update(done),
      });
      progress.stop();
      const source = o.cascade ? { cascade: o.cascade } : { run: o.run, upscale: o.upscale ?? false };
      writeGeneratedSet(o.out, set, { ...source, seed: o.seed, clip: o.clip ?? false, variance: o.variance, authorX0: o.authorX0 ?? false });
      console.log(`wrote ${o.out}: ${set.count} images ${set.height}×${set.width} in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    } finally {
      disposePipeline(pipeline);
    }
  });
