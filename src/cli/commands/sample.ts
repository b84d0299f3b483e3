import { Command } from '@commander-js/extra-typings';
import { writeFileAtomic } from '../../io/atomic.ts';
import { sampleGridFigure } from '../../pipelines/figures.ts';
import { disposePipeline, pipelineSteps } from '../../pipelines/pipeline.ts';
import { createProgress, type Progress } from '../progress.ts';
import { labelList, nonNegativeInt, positiveInt, positiveIntUpTo } from '../parse.ts';
import { checkOutputFile } from '../output.ts';
import { loadPipelineFrom, withPipelineOptions } from '../pipeline-options.ts';
import { samplingFrom, withSamplingOptions } from '../sampling-options.ts';

export const sampleCommand = withSamplingOptions(withPipelineOptions(
  new Command('sample')
    .description('sample a grid of images, one label per column (the paper\'s Figs. 8-10), as a PNG'))
    .option('--labels <list>', "labels, e.g. '0-9' or '1,3,5'", (v) => labelList(v), labelList('0-9'))
    .option('--per-label <n>', 'samples per label (rows of the grid)', positiveInt, 10)
    .requiredOption('--out <file.png>', 'the PNG to write')
    .option('--seed <n>', 'sampling seed', nonNegativeInt, 0)
)
  .option('--scale <n>', 'pixel magnification in the PNG (1-16)', positiveIntUpTo(16), 2)
  .addHelpText('after', '\nExamples:\n  ssddpm sample --run runs/baseline-1 --labels 0-9 --per-label 10 --out grid.png\n  ssddpm sample --cascade runs/small-1,runs/upscaler-1 --out cascade.png --clip\n  ssddpm sample --run runs/baseline-1 --sampler ddim --steps 10 --out ddim.png')
  .action((o) => {
    checkOutputFile(o.out);
    const sampling = samplingFrom(o);
    const pipeline = loadPipelineFrom(o);
    try {
      const steps = pipelineSteps(pipeline, sampling);
      let progress: Progress | undefined;
      const canvas = sampleGridFigure(pipeline, o.labels, o.perLabel, {
        ...sampling,
        seed: o.seed,
        scale: o.scale,
        onStep: (done, total) => {
          progress ??= createProgress('sample', total);
          progress.update(done);
        },
      });
      progress?.stop();
      writeFileAtomic(o.out, canvas.toPng());
      console.log(`wrote ${o.out} (${o.labels.length * o.perLabel} samples, ${steps} denoising steps each, on ${pipeline.models[0]!.engine})`);
    } finally {
      disposePipeline(pipeline);
    }
  });
