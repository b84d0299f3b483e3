// Pictures of the diffusion processes: forward-process strips (the paper's Figs. 5-7) and reverse-process
// strips with each step's x̂0 (Fig. 2).
import { Command } from '@commander-js/extra-typings';
import { loadDataset } from '../../data/datasets.ts';
import { downscale } from '../../data/tensor-dataset.ts';
import { writeFileAtomic } from '../../io/atomic.ts';
import { strip, type StripRow } from '../../images/grid.ts';
import { loadModel } from '../../experiments/pipelines.ts';
import { Generator } from '../../torch/generator.ts';
import { tensor } from '../../torch/ops/creation.ts';
import { tidy } from '../../torch/scope.ts';
import { cat } from '../../torch/ops/shape.ts';
import type { Tensor } from '../../torch/tensor.ts';
import { device, labelList, nonNegativeInt, positiveInt } from '../parse.ts';
import { checkOutputFile } from '../output.ts';

export const forwardCommand = new Command('forward')
  .description('draw the forward process q(x_t | x_{t-1}) step by step on test images: one row per image, one column per t')
  .requiredOption('--run <dir>', 'a run folder (its T, image size and normalisation are used)')
  .requiredOption('--out <file.png>', 'the PNG to write')
  .option('--count <n>', 'images (rows)', positiveInt, 4)
  .option('--seed <n>', 'noise seed', nonNegativeInt, 0)
  .option('--scale <n>', 'pixel magnification', positiveInt, 2)
  .action((o) => {
    checkOutputFile(o.out);
    const model = loadModel(o.run);
    const scheduler = model.scheduler();
    try {
      const { imageSize: size, dataset, numStates } = model.config;
      const test = loadDataset(dataset, 'test');
      const count = Math.min(o.count, test.count);
      const generator = new Generator(o.seed);
      const rows: StripRow[] = tidy(() => {
        const raw = tensor(test.images.subarray(0, count * test.height * test.width), { shape: [count, 1, test.height, test.width] });
        let pixels = raw.float().div_(255);
        if (size !== test.height) pixels = downscale(pixels, size);
        let x = model.toModelSpace(pixels);
        const states = [model.toPixelSpace(x)];
        for (let t = 0; t < numStates; t++) {
          x = scheduler.forwardStep(x, t, generator);
          states.push(model.toPixelSpace(x));
        }
        return Array.from({ length: count }, (_, i) => ({ label: `#${i}`, images: tidy(() => stackRow(states, i)) }));
      });
      const canvas = strip(rows, { columnLabels: ['x0', ...Array.from({ length: numStates }, (_, t) => `${t}`)], scale: o.scale });
      writeFileAtomic(o.out, canvas.toPng());
      console.log(`wrote ${o.out}: ${count} forward trajectories over T=${numStates}`);
    } finally {
      scheduler.dispose();
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
  .option('--scale <n>', 'pixel magnification', positiveInt, 2)
  .action((o) => {
    checkOutputFile(o.out);
    const model = loadModel(o.run);
    try {
      if (model.isUpscaler) throw new Error(`${o.run} is an upscaler; draw the reverse process of a baseline or small model`);
      const rows: StripRow[] = tidy(() => {
        const { trajectory } = model.sample(o.labels, { generator: new Generator(o.seed), clip: o.clip ?? false, keepTrajectory: true });
        return o.labels.flatMap((label, i) => [
          { label: `${label} xt`, images: tidy(() => stackRow(trajectory!.xt, i)) },
          { label: `${label} x0`, images: tidy(() => stackRow(trajectory!.predX0, i)) },
        ]);
      });
      const steps = model.config.numStates;
      const canvas = strip(rows, { columnLabels: Array.from({ length: steps }, (_, k) => `${steps - 1 - k}`), scale: o.scale });
      writeFileAtomic(o.out, canvas.toPng());
      console.log(`wrote ${o.out}: ${o.labels.length} reverse trajectories over T=${steps}`);
    } finally {
      model.dispose();
    }
  });

// Image i of every state, as one [steps, 1, H, W] tensor.
function stackRow(states: readonly Tensor[], i: number): Tensor {
  return tidy(() => cat(states.map((s) => s.narrow(0, i, 1)), 0));
}
