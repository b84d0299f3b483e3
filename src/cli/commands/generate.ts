import { Command } from '@commander-js/extra-typings';
import { writeGeneratedSet } from '../../data/generated-set.ts';
import { lockFolder } from '../../io/lock.ts';
import { generateSet } from '../../pipelines/generate.ts';
import { disposePipeline } from '../../pipelines/pipeline.ts';
import { createProgress } from '../progress.ts';
import { samplingFrom, withSamplingOptions } from '../sampling-options.ts';
import { nonNegativeInt, positiveInt, positiveIntUpTo } from '../parse.ts';
import { checkOutputFolder } from '../output.ts';
import { loadPipelineFrom, withPipelineOptions } from '../pipeline-options.ts';

export const generateCommand = withSamplingOptions(withPipelineOptions(
  new Command('generate')
    .description('generate a labelled image set, balanced over labels, as MNIST-format IDX files (readable by numpy/torchvision)'))
    .requiredOption('--out <dir>', 'folder to create: train-images-idx3-ubyte, train-labels-idx1-ubyte, generated.json')
    .option('--count <n>', 'number of images', positiveInt, 3334)
    .option('--seed <n>', 'sampling seed', nonNegativeInt, 0)
    .option('--batch-size <n>', 'images sampled at once (at most 4096)', positiveIntUpTo(4096), 256)
)
  .addHelpText('after', '\nExample:\n  ssddpm generate --run runs/baseline-1 --count 3334 --out sets/baseline-1')
  .action((o) => {
    checkOutputFolder(o.out, { fresh: true });
    const sampling = samplingFrom(o);
    const pipeline = loadPipelineFrom(o);
    let release = () => {};
    try {
      release = lockFolder(o.out, 'set folder');
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
      const source = { ...(o.cascade ? { cascade: o.cascade } : { run: o.run, upscale: o.upscale ?? false }), ...(o.guideModel ? { guideModel: o.guideModel.map((g) => g ?? null) } : {}) };
      writeGeneratedSet(o.out, set, { ...source, dataset: pipeline.models[0]!.config.dataset, seed: o.seed, engine: pipeline.models[0]!.engine, ...sampling });
      const pct = (x: number) => `${(100 * x).toFixed(1)} %`;
      console.log(`wrote ${o.out}: ${set.count} images ${set.height}×${set.width} in ${((performance.now() - started) / 1000).toFixed(1)} s on ${pipeline.models[0]!.engine}; ` +
        `clamped to [0, 1]: ${pct(set.offRange.pixels)} of pixels (> ½ gray level off), ${pct(set.offRange.samples)} of samples (> 0.1 off)`);
    } finally {
      disposePipeline(pipeline);
      release();
    }
  });
