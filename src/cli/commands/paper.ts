import { Command, Option } from '@commander-js/extra-typings';
import { join } from 'node:path';
import { DATASET_NAMES } from '../../data/datasets.ts';
import { pretrainedRuns, runPaper } from '../../experiments/paper.ts';
import { BEYOND_DEFAULTS, PRESETS, variants } from '../../experiments/protocol.ts';
import { ENGINES } from '../../pipelines/sampling-model.ts';
import { device, nameList, positiveInt } from '../parse.ts';
import { createProgress, type Progress } from '../progress.ts';

export const paperCommand = new Command('paper')
  .description('reproduce the paper end to end: 3 trainings × (baseline, small, upscaler), generated sets, CAS, sampling speed, the 1-D study, figures, and a report (HTML + Markdown + results.json)')
  .option('--quick', 'the same pipeline on reduced settings: one run per model (the shipped pretrained MNIST models when present), 1000 samples per set, 2 classifiers; a few minutes')
  .addOption(new Option('--preset <name>', 'full (the paper\'s protocol), quick, or ci (seconds; for tests)').choices(['full', 'quick', 'ci'] as const))
  .addOption(new Option('--dataset <name>', 'dataset').choices(DATASET_NAMES).default('mnist' as const))
  .option('--out <dir>', 'report folder', 'report')
  .option('--work <dir>', 'folder for runs/, sets/ and stages/ (default: paper-work/<dataset>-<preset>)')
  .option('--beyond', 'also run the experiments beyond the paper on the same protocol: DDIM steps, dynamic thresholding, EMA baselines (ε and v-prediction), an upscaler with conditioning augmentation, the first-step remedies (v-prediction, zero terminal SNR, a β cap, trailing steps), the paper\'s two proposed losses, a wider and a longer baseline, a cascade with a wider small model (with the plain upscaler and with one trained under conditioning augmentation, and one wider still), and classifier-free guidance for every pipeline, each with ε- and with v-prediction (and v-prediction with an EMA of the weights), autoguidance of the wide models by their paper-width twins, of the wider small model by the wide one and by the paper-width one (the latter at four scales, charted, and with classifier-free guidance at low noise) and of the v-prediction baseline by a narrower one, and fidelity metrics for every set (21 more trainings per run, 63 in all: the v-prediction models with and without the average are one training each)')
  .option('--device <dev>', "'cpu' or 'cuda[:N]': trainings, sampling, CAS and the speed stage (the 1-D study stays on the CPU)", device, 'cpu')
  .addOption(new Option('--engine <engine>', 'the engine that samples the generated sets, figures and the speed stage (default: sets and figures on libtorch, as the committed results; speed on onnxruntime where installed, the fastest on the CPU)').choices(ENGINES))
  .option('--nproc <n>', 'train on N processes of this machine (data-parallel, synchronised batch norm: the same trainings as one process\'s)', positiveInt, 1)
  .option('--variants <names>', 'only these variants, comma-separated (Table 1\'s, e.g. cascaded-clip, or beyond the paper\'s, e.g. cascaded-wide-vcfg-aug-ema-ddim-clip: naming one implies --beyond), with the trainings they sample and a sample grid of each one beyond the paper; the real-data anchor always runs. A wrong name lists them all', nameList)
  .option('--runs <dir>', 'folder of finished training runs to reuse (default: <work>/runs; with --quick, pretrained/<dataset> when shipped); missing ones train into <work>/runs')
  .addHelpText('after', `
Every stage is cached under a key of its settings, its inputs' content hashes and its code version: an
interrupted run continues where it stopped, and a changed setting, input or version reruns the stages it
affects, saying why. A run folder that does not match the protocol's settings is refused, never overwritten.
Examples:
  ssddpm paper --quick              # a few minutes; report in report/
  ssddpm paper                      # the paper's protocol: ~2.5 h of training on 2 CPU cores
  ssddpm paper --dataset fashion-mnist --runs pretrained/fashion-mnist --variants cascaded-clip,cascaded-wide-vcfg-aug-ema-ddim-clip`)
  .action(async (o) => {
    const name = o.preset ?? (o.quick ? 'quick' : 'full');
    const preset = PRESETS[name];
    const work = o.work ?? join('paper-work', `${o.dataset}-${name}`);
    const table1 = new Set(variants().map((v) => v.name));
    let bar: Progress | undefined;
    let current = '';
    const results = await runPaper({
      preset,
      dataset: o.dataset,
      device: o.device,
      engine: o.engine,
      work,
      runs: o.runs ?? (name === 'quick' ? pretrainedRuns(o.dataset) : undefined),
      out: o.out,
      nproc: o.nproc,
      beyond: o.beyond || (o.variants ?? []).some((v) => !table1.has(v)) ? BEYOND_DEFAULTS : undefined,
      variants: o.variants,
      log: (line) => {
        bar?.stop();
        bar = undefined;
        current = '';
        process.stderr.write(`${line}\n`);
      },
      progress: (label, done, total, fields) => {
        if (label !== current) {
          bar?.stop();
          bar = createProgress(label, total, Object.keys(fields ?? {}));
          current = label;
        }
        bar!.update(done, fields);
      },
    });
    bar?.stop();
    const fmt = (d: string, x0: string | null) => {
      const c = results.cas.find((r) => r.dataset === d && r.x0 === x0);
      return c ? `${c.mean.toFixed(3)} ± ${c.std.toFixed(3)}` : 'n/a';
    };
    console.log(`CAS real ${fmt('real', null)}; plain: baseline ${fmt('baseline', 'none')}, small upscaled ${fmt('small-upscaled', 'none')}, cascaded ${fmt('cascaded', 'none')}`);
    console.log(`CAS clipped: baseline ${fmt('baseline', 'clip')}, small upscaled ${fmt('small-upscaled', 'clip')}, cascaded ${fmt('cascaded', 'clip')}`);
    for (const b of results.beyond ?? []) {
      const f = b.fidelity;
      console.log(`${b.name}: CAS ${b.cas.mean.toFixed(3)} ± ${b.cas.std.toFixed(3)}${f ? `, conditional accuracy ${f.conditionalAccuracy.toFixed(3)}, Fréchet distance ${f.frechetDistance.toFixed(1)}, precision ${f.precision.toFixed(3)}, recall ${f.recall.toFixed(3)}` : ''}`);
    }
    if (results.speed.length > 0) console.log(`one sample at batch size 1: ${results.speed.map((s) => `${s.pipeline}${s.x0 === 'none' ? '' : ` (${s.x0})`} ${(s.secondsPerSample * 1000).toFixed(1)} ms`).join(', ')}`);
    console.log(`report: ${join(o.out, 'report.html')} (also report.md, results.json); ${(results.totalSeconds / 60).toFixed(1)} min`);
  });
