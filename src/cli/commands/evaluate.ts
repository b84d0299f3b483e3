import { Command, Option } from '@commander-js/extra-typings';
import { DATASET_NAMES, loadDataset } from '../../data/datasets.ts';
import { readImageSetDir } from '../../data/image-set.ts';
import { generatedSetDataset } from '../../data/generated-set.ts';
import { classificationAccuracyScore } from '../../eval/cas.ts';
import { classifierFeatures, fidelity } from '../../eval/fidelity.ts';
import { referenceClassifier, referenceClassifierPath } from '../../eval/reference-classifier.ts';
import { balancedSubset } from '../../data/sampling.ts';
import { measureSamplingSpeed } from '../../eval/speed.ts';
import { writeFileAtomic } from '../../io/atomic.ts';
import { EXPORT_FORMATS, exportRun } from '../../pipelines/export-run.ts';
import { disposePipeline } from '../../pipelines/pipeline.ts';
import { createProgress, type Progress } from '../progress.ts';
import { device, nonNegativeInt, positiveInt } from '../parse.ts';
import { checkOutputFile } from '../output.ts';
import { loadPipelineFrom, withPipelineOptions } from '../pipeline-options.ts';
import { samplingFrom, withSamplerOptions } from '../sampling-options.ts';

export const casCommand = new Command('cas')
  .description('Classification Accuracy Score of a labelled image set: train classifiers on it, score them on the real test set')
  .requiredOption('--set <dir>', 'folder with *-images-idx3-ubyte and *-labels-idx1-ubyte (as written by `generate`, or MNIST itself)')
  .addOption(new Option('--test <dataset>', 'the real test set (default: the dataset of the models that generated the set, as its generated.json records; else mnist)').choices(DATASET_NAMES))
  .option('--classifiers <m>', 'classifiers to train (the paper: 5)', positiveInt, 5)
  .option('--epochs <n>', 'epochs per classifier (the paper: 5)', positiveInt, 5)
  .option('--seed <n>', 'seed of classifier k is seed + k', nonNegativeInt, 0)
  .option('--json <file>', 'also write the result as JSON')
  .option('--device <dev>', "'cpu' or 'cuda[:N]'", device)
  .addHelpText('after', '\nExample:\n  ssddpm cas --set sets/baseline-1 --classifiers 5')
  .action((o) => {
    if (o.json !== undefined) checkOutputFile(o.json);
    const train = readImageSetDir(o.set);
    const test = loadDataset(o.test ?? generatedSetDataset(o.set) ?? 'mnist', 'test');
    let progress: Progress | undefined;
    const score = classificationAccuracyScore(train, test, {
      classifiers: o.classifiers,
      epochs: o.epochs,
      seed: o.seed,
      device: o.device,
      onStep: (k, step, total, loss) => {
        if (step === 1) progress = createProgress(`classifier ${k + 1}/${o.classifiers}`, total, ['loss']);
        progress!.update(step, { loss: loss.toFixed(4) });
        if (step === total) progress!.stop();
      },
    });
    console.log(`CAS of ${o.set} (${train.count} images, ${o.classifiers} classifiers): ${score.mean.toFixed(4)} ± ${score.std.toFixed(4)}`);
    console.log(`per class: ${score.perClassMean.map((a, c) => `${c}:${a.toFixed(3)}`).join(' ')}`);
    if (o.json !== undefined) writeFileAtomic(o.json, `${JSON.stringify({ set: o.set, ...score }, null, 2)}\n`);
  });

export const fidelityCommand = new Command('fidelity')
  .description('conditional accuracy, Fréchet distance and precision/recall of a labelled image set, judged by a classifier trained on the real training set (trained once, then cached)')
  .requiredOption('--set <dir>', 'folder with *-images-idx3-ubyte and *-labels-idx1-ubyte (as written by `generate`)')
  .addOption(new Option('--dataset <dataset>', 'the real data: its training set trains the judge, its test set is the reference (default: the dataset of the models that generated the set, as its generated.json records; else mnist)').choices(DATASET_NAMES))
  .option('--cache <dir>', 'where the trained judge is kept (default: $XDG_CACHE_HOME/ssddpm or ~/.cache/ssddpm)')
  .option('--json <file>', 'also write the result as JSON')
  .option('--device <dev>', "'cpu' or 'cuda[:N]'", device)
  .addHelpText('after', `
Conditional accuracy: the share of images the judge labels as their own label. Fréchet distance: between
Gaussians fitted to the judge's penultimate features (its 128 GELU outputs) of the set and of the real test
set; the real training set's distance is printed beside it as the floor. Precision and recall (Kynkäänniemi
et al. 2019, k = 3): the share of the set inside the real data's manifold, and of the real data inside the set's.

Example:
  ssddpm generate --run runs/baseline-1 --clip --count 10000 --out sets/baseline-1
  ssddpm fidelity --set sets/baseline-1`)
  .action((o) => {
    if (o.json !== undefined) checkOutputFile(o.json);
    const set = readImageSetDir(o.set);
    const dataset = o.dataset ?? generatedSetDataset(o.set) ?? 'mnist';
    let progress: Progress | undefined;
    const judge = referenceClassifier({
      dataset,
      cacheDir: o.cache,
      device: o.device,
      onStep: (step, total, loss) => {
        progress ??= createProgress('training the judge (once)', total, ['loss']);
        progress.update(step, { loss: loss.toFixed(4) });
        if (step === total) progress.stop();
      },
    });
    const reference = classifierFeatures(judge, loadDataset(dataset, 'test'));
    try {
      const score = fidelity(judge, set, reference);
      const floor = fidelity(judge, balancedSubset(loadDataset(dataset, 'train'), Math.floor(Math.min(set.count, 10000) / set.numClasses), 1), reference);
      const line = (name: string, s: typeof score) =>
        `${name}: conditional accuracy ${s.conditionalAccuracy.toFixed(4)}, Fréchet distance ${s.frechetDistance.toFixed(3)}, precision ${s.precision.toFixed(3)}, recall ${s.recall.toFixed(3)}`;
      console.log(line(`${o.set} (${set.count} images)`, score));
      console.log(line('real training images (the floor)', floor));
      if (o.json !== undefined) writeFileAtomic(o.json, `${JSON.stringify({ set: o.set, ...score, realTrain: floor, judge: referenceClassifierPath({ dataset, cacheDir: o.cache }) }, null, 2)}\n`);
    } finally {
      reference.features.dispose();
      judge.model.dispose();
    }
  });

export const speedCommand = withSamplerOptions(withPipelineOptions(
  new Command('speed')
    .description('seconds per sample at batch size 1, averaged over many samples, model loading excluded (the paper\'s §0.3)'))
    .option('--samples <n>', 'samples timed', positiveInt, 1000)
)
  .action((o) => {
    const sampling = samplingFrom({ ...o, variance: undefined, authorX0: undefined });
    const pipeline = loadPipelineFrom(o);
    try {
      const progress = createProgress('speed', o.samples);
      const m = measureSamplingSpeed(pipeline, { ...sampling, samples: o.samples, onSample: (d) => progress.update(d) });
      progress.stop();
      console.log(`${(m.secondsPerSample * 1000).toFixed(2)} ms per sample (${m.steps} network evaluations${pipeline.guides === undefined ? '' : ', and a guide model\'s at each guided one'}, batch size 1, ${m.samples} samples, on ${pipeline.models[0]!.engine})`);
    } finally {
      disposePipeline(pipeline);
    }
  });

export const exportCommand = new Command('export')
  .description('copy a trained run for sharing: config, training log and the newest weights, as safetensors (without optimizer state) or as ONNX')
  .requiredOption('--run <dir>', 'the run folder')
  .requiredOption('--out <dir>', 'folder to create')
  .addOption(new Option('--format <format>', 'safetensors: the checkpoint; onnx: model.onnx, one reverse step per call').choices(EXPORT_FORMATS).default('safetensors' as const))
  .option('--no-ema', 'onnx: the trained weights even where the run kept a moving average of them')
  .addHelpText('after', `
The safetensors copy samples, generates and joins \`ssddpm paper --runs\` like the original, but cannot be resumed.
The ONNX copy samples with --engine onnxruntime (the default on the CPU), and on ONNX Runtime anywhere: its
graph takes x_t, the timestep, the label (and the upscaler's conditioning) and the scheduler's coefficients,
and returns x_{t-1}, x̂0 and ε̂; its metadata holds the model configuration and the schedule's terms.

Examples:
  ssddpm export --run runs/baseline --out shared/baseline
  ssddpm export --run runs/baseline --format onnx --out onnx/baseline`)
  .action((o) => {
    const { file } = exportRun(o.run, o.out, { format: o.format, ema: o.ema });
    console.log(`wrote ${o.out} (${file})`);
  });
