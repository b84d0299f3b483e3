// Pictures of the diffusion processes: forward-process strips (the paper's Figs. 5-7) and reverse-process
// strips with each step's x̂0 (Fig. 2).
import { Command } from '@commander-js/extra-typings';
import { writeFileAtomic } from '../../io/atomic.ts';
import { forwardProcessFigure, reverseProcessFigure } from '../../pipelines/figures.ts';
import { loadModel } from '../../pipelines/pipeline.ts';
import { labelList, nonNegativeInt, positiveInt, positiveIntUpTo } from '../parse.ts';
import { checkOutputFile } from '../output.ts';

export const forwardCommand = new Command('forward')
  .description('draw the forward process q(x_t | x_{t-1}) step by step on test images: one row per image, one column per t')
  .requiredOption('--run <dir>', 'a run folder (its T, image size and normalisation are used)')
  .requiredOption('--out <file.png>', 'the PNG to write')
  .option('--count <n>', 'images (rows)', positiveInt, 4)
  .option('--seed <n>', 'noise seed', nonNegativeInt, 0)
  .option('--scale <n>', 'pixel magnification (1-16)', positiveIntUpTo(16), 2)
  .action((o) => {
    checkOutputFile(o.out);
    const model = loadModel(o.run);
    try {
      writeFileAtomic(o.out, forwardProcessFigure(model, o.count, { seed: o.seed, scale: o.scale }).toPng());
      console.log(`wrote ${o.out}: ${o.count} forward trajectories over T=${model.numTimesteps}`);
    } finally {
      model.dispose();
    }
  });

export const reverseCommand = new Command('reverse')
  .description('draw reverse-process trajectories: for each label a row of x_t and a row of the x̂0 predicted at each step')
  .requiredOption('--run <dir>', 'a baseline or small run folder')
  .requiredOption('--out <file.png>', 'the PNG to write')
  .option('--labels <list>', "labels, one trajectory each, e.g. '0-9'", (v) => labelList(v), labelList('0-3'))
  .option('--seed <n>', 'sampling seed', nonNegativeInt, 0)
  .option('--clip', 'clip x̂0 to the data range at every step')
  .option('--scale <n>', 'pixel magnification (1-16)', positiveIntUpTo(16), 2)
  .action((o) => {
    checkOutputFile(o.out);
    const model = loadModel(o.run);
    try {
      writeFileAtomic(o.out, reverseProcessFigure(model, o.labels, { seed: o.seed, clip: o.clip, scale: o.scale }).toPng());
      console.log(`wrote ${o.out}: ${o.labels.length} reverse trajectories over T=${model.numTimesteps}`);
    } finally {
      model.dispose();
    }
  });
