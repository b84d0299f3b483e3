// The paper protocol end to end on the CI-sized preset: every stage runs, the report holds every Table 1 row and
// figure, its CAS numbers are what the CAS core computes from the sets on disk, and the stage cache reruns
// exactly what a changed setting or a changed output affects, saying why.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadDataset } from '../src/data/datasets.ts';
import { readImageSetDir } from '../src/data/image-set.ts';
import { balancedSubset } from '../src/data/sampling.ts';
import { classificationAccuracyScore, combineBalanced } from '../src/eval/cas.ts';
import { runPaper } from '../src/experiments/paper.ts';
import { BEYOND_DEFAULTS, PRESETS, SEEDS } from '../src/experiments/protocol.ts';
import { readRunConfig } from '../src/pipelines/run-dir.ts';
import { autoguidanceSweep } from '../src/report/charts.ts';
import { TABLE1_ROWS, TABLE1_COLUMNS } from '../src/report/render.ts';
import type { PaperResults, StageTiming } from '../src/report/results.ts';

const ran = (stages: StageTiming[]) => stages.filter((s) => s.status === 'ran' && s.name !== 'figures').map((s) => s.name);

test('paper --preset ci: a complete report whose CAS is the CAS of the sets on disk; reruns follow the keys', async () => {
  const root = mkdtempSync(join(tmpdir(), 'ssddpm-paper-'));
  try {
    const out = join(root, 'report');
    const work = join(root, 'work');
    const opts = { preset: PRESETS.ci, dataset: 'mnist' as const, work, out };
    const results = await runPaper(opts);

    for (const file of ['report.html', 'report.md', 'results.json', 'figure1-cas.svg', 'speed.svg']) assert.ok(existsSync(join(out, file)), file);
    const saved = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as PaperResults;
    assert.deepEqual(saved.cas.map((c) => [c.dataset, c.x0]), [['real', null], ['baseline', 'none'], ['baseline', 'clip'], ['small-upscaled', 'none'], ['small-upscaled', 'clip'], ['cascaded', 'none'], ['cascaded', 'clip']]);
    assert.deepEqual(saved.speed.map((s) => [s.pipeline, s.x0, s.steps]), [['baseline', 'none', 30], ['baseline', 'clip', 30], ['small-upscaled', 'none', 20], ['small-upscaled', 'clip', 20], ['cascaded', 'none', 30], ['cascaded', 'clip', 30]]);
    assert.equal(saved.training.length, 3);
    assert.equal(saved.toy1d.length, 2);
    assert.equal(saved.machine.device, 'cpu', 'the device the protocol ran on is recorded');
    assert.ok(saved.stages.every((s) => s.status === 'ran'), 'a first run runs every stage');

    // Each CAS is what the CAS core gives for the sets on disk, pooled and scored with the protocol's seeds.
    const test = balancedSubset(loadDataset('mnist', 'test'), PRESETS.ci.testImages! / 10, SEEDS.realTest);
    const score = (train: Parameters<typeof classificationAccuracyScore>[0]) =>
      classificationAccuracyScore(train, test, { classifiers: PRESETS.ci.classifiers, epochs: PRESETS.ci.casEpochs, seed: SEEDS.cas }).accuracies;
    const real = balancedSubset(loadDataset('mnist', 'train'), PRESETS.ci.casImages / 10, SEEDS.realTrain);
    assert.deepEqual(saved.cas[0]!.accuracies, score(real), 'real anchor');
    for (const name of ['baseline-clip', 'cascaded']) {
      const c = saved.cas.find((x) => `${x.dataset}${x.x0 === 'clip' ? '-clip' : ''}` === name)!;
      assert.deepEqual(c.accuracies, score(combineBalanced([readImageSetDir(join(work, 'sets', `${name}-1`))], PRESETS.ci.casImages, SEEDS.casPool)), name);
    }
    for (const c of saved.cas) {
      if (c.x0 === null) assert.equal(c.offRange, undefined, 'real data is not measured');
      else assert.ok(c.offRange !== undefined && c.offRange.pixels >= 0 && c.offRange.pixels <= 1, `${c.dataset} ${c.x0} off-range share`);
      if (c.x0 === 'clip') assert.deepEqual(c.offRange, { pixels: 0, samples: 0 }, `${c.dataset}: clipping ends inside the range`);
      assert.equal(c.perClassMean.length, 10);
      const f = c.fidelity!;
      assert.ok(f.conditionalAccuracy >= 0 && f.conditionalAccuracy <= 1 && f.frechetDistance >= 0 && f.precision >= 0 && f.precision <= 1 && f.recall >= 0 && f.recall <= 1 && f.k === 3, `${c.dataset} ${c.x0} fidelity`);
    }
    // The judge labels real images far better than the plain baseline's (which CAS forgives).
    assert.ok(saved.cas[0]!.fidelity!.conditionalAccuracy > saved.cas[1]!.fidelity!.conditionalAccuracy);
    const md = readFileSync(join(out, 'report.md'), 'utf8');
    const html = readFileSync(join(out, 'report.html'), 'utf8');
    for (const label of [...Object.values(TABLE1_ROWS), ...TABLE1_COLUMNS.map((c) => c.label)]) {
      assert.ok(md.includes(label), `report.md has '${label}'`);
      assert.ok(html.includes(label), `report.html has '${label}'`);
    }
    assert.ok(!md.includes('| —'), 'every cell of the report is filled');
    assert.ok(md.includes('Fidelity: what CAS forgives') && html.includes('real training images (the floor)'));
    const expectedFigures = ['forward-baseline.png', 'forward-small.png', 'forward-upscaler.png', 'reverse-baseline.png', 'reverse-small.png',
      ...['baseline', 'small-upscaled', 'cascaded'].flatMap((p) => [`samples-${p}.png`, `samples-${p}-clip.png`])];
    for (const f of expectedFigures) {
      assert.ok(existsSync(join(out, f)), f);
      assert.ok(results.figures.some((g) => g.file === f), `${f} listed in results`);
      assert.ok(md.includes(f) && html.includes(f), `${f} shown in the report`);
    }

    // Same settings: every stage is cached. A second protocol on the same work folder meanwhile is refused.
    const running = runPaper(opts);
    await assert.rejects(runPaper({ ...opts, out: join(root, 'other-report') }), /work: this work folder is being written by process \d+/);
    const again = await running;
    assert.deepEqual(ran(again.stages), []);
    for (const s of again.stages.filter((x) => x.name.startsWith('cas') || x.name.startsWith('generate'))) {
      assert.equal(s.ranSeconds, results.stages.find((r) => r.name === s.name)!.seconds, `${s.name}: the time it took when it ran`);
    }
    assert.deepEqual(again.cas, results.cas);

    // Another CAS setting reruns every CAS stage, and nothing else, naming the setting.
    const moreEpochs = await runPaper({ ...opts, preset: { ...PRESETS.ci, casEpochs: 2 } });
    const casStages = ran(moreEpochs.stages);
    assert.deepEqual(casStages, ['cas real', ...['baseline', 'baseline-clip', 'small-upscaled', 'small-upscaled-clip', 'cascaded', 'cascaded-clip'].map((n) => `cas ${n}`)]);
    assert.ok(moreEpochs.stages.filter((s) => s.status === 'ran' && s.name.startsWith('cas')).every((s) => /epochs: 1 → 2/.test(s.reason!)), 'the reason names the setting');

    // A generated set changed on disk: its generation reruns (restoring it), then the CAS that reads it.
    const images = join(work, 'sets', 'baseline-clip-1', 'train-images-idx3-ubyte');
    const original = readFileSync(images);
    const tampered = Buffer.from(original);
    tampered[tampered.length - 1] ^= 0xff;
    writeFileSync(images, tampered);
    const repaired = await runPaper({ ...opts, preset: { ...PRESETS.ci, casEpochs: 2 } });
    assert.deepEqual(ran(repaired.stages), ['generate baseline-clip 1']);
    assert.match(repaired.stages.find((s) => s.name === 'generate baseline-clip 1')!.reason!, /was changed/);
    assert.deepEqual(readFileSync(images), original, 'the same key makes the same set again');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('paper --beyond (ci preset): every experiment beyond the paper gets its trainings, CAS and report rows', async () => {
  const root = mkdtempSync(join(tmpdir(), 'ssddpm-beyond-'));
  try {
    const out = join(root, 'report');
    const work = join(root, 'work');
    const results = await runPaper({ preset: PRESETS.ci, dataset: 'mnist', work, out, beyond: { ...BEYOND_DEFAULTS, ddimSteps: [5, 10], ddimEta: [0], guidanceScales: [0, 2], autoguidanceSweep: [1] } });
    const beyond = results.beyond!;
    assert.deepEqual([...new Set(beyond.map((b) => b.group))].sort(), ['autoguidance', 'budget', 'conditioning', 'ddim', 'ema', 'first-step', 'guidance', 'objective', 'thresholding']);
    assert.equal(beyond.length, 3 + 4 + 5 + 4 + 8 + 4 + 17 + 6 + 6 + 6 + 3 + 8 + 5 + 5,
      'dynamic ×3 pipelines, DDIM ×2 steps ×2 (plain, clipped), EMA (ε, v-prediction) ×2 + v-prediction with DDIM, augmented cascade ×2 levels ×2, first step (v, v + zero SNR, β cap, trailing DDIM) ×2, ' +
        'objectives ×2 ×2, budget ×6 ×2 + the cascades with a wide small model (plain and augmented upscaler, the latter also with DDIM) + the wide baseline with DDIM + the cascade with a wider small model with DDIM, guidance ×3 pipelines ×(ε, v-prediction, v-prediction with EMA) ×2 scales, guidance at low noise only ×3 pipelines, autoguidance (the paper-width and the wide baseline, the wide small model upscaled and in the cascade, the wider small model in the cascade by two guides, by the paper-width one at a second scale and with low-noise label guidance too), DPM-Solver++(2M) for the wide cascade autoguided, the wider one unguided, autoguided and also label-guided, and the wide baseline autoguided, and the wide cascade with its small model trained longer, autoguided by its shorter-trained twin, also label-guided at two scales, the wide baseline autoguided by the narrower guide, and the wide baseline trained longer, autoguided by its shorter-trained twin');
    for (const b of beyond) assert.ok(b.cas.mean >= 0 && b.cas.mean <= 1 && b.cas.accuracies.length === 1 && b.fidelity !== undefined, b.name);
    const lowNoise = beyond.filter((b) => b.guidanceInterval !== undefined);
    assert.deepEqual(lowNoise.map((b) => [b.name, b.guidance, b.guidanceInterval]), [
      ['cascaded-wide-vcfg-aug-ema-ddim-w2-sigma0-1-clip', 2, [0, 1]],
      ['baseline-vcfg-ema-ddim-w3-sigma0-3-clip', 3, [0, 3]],
      ['small-upscaled-wide-vcfg-ema-ddim-w2-sigma0-2-clip', 2, [0, 2]],
    ]);
    assert.deepEqual(beyond.filter((b) => b.group === 'guidance' && b.guidanceInterval === undefined).map((b) => [b.name, b.guidance]), ['cfg', 'vcfg', 'vcfg-ema'].flatMap((k) => ['baseline', 'small-upscaled', 'cascaded'].map((p) => `${p}-${k}`)).flatMap((p) => [[`${p}-w0-clip`, 0], [`${p}-w2-clip`, 2]]));
    const config = (name: string) => readRunConfig(join(work, 'runs', `${name}-1`));
    assert.equal(config('baseline-vz').model.schedule.zeroTerminalSnr, true);
    assert.equal(config('baseline-beta').model.schedule.maxBeta, BEYOND_DEFAULTS.maxBeta);
    assert.equal(config('baseline-x0loss').training.x0DomainLoss, BEYOND_DEFAULTS.x0DomainLoss);
    assert.deepEqual(config('baseline-nstep').training.nStepLoss, BEYOND_DEFAULTS.nStepLoss);
    assert.equal(config('baseline-wide').model.unet.baseChannels, BEYOND_DEFAULTS.baseChannels);
    assert.equal(config('small-wider-vcfg-ema').model.unet.baseChannels, BEYOND_DEFAULTS.widerChannels);
    assert.equal(config('baseline-long').training.epochs, PRESETS.ci.epochs * BEYOND_DEFAULTS.epochsFactor);
    for (const t of ['baseline-v-long-ema', 'baseline-v-wide-ema']) {
      assert.equal(config(t).model.prediction, 'v');
      assert.equal(config(t).training.ema, BEYOND_DEFAULTS.emaDecay);
    }
    assert.equal(config('baseline-v-long-ema').training.epochs, PRESETS.ci.epochs * BEYOND_DEFAULTS.epochsFactor);
    assert.equal(config('baseline-v-wide-ema').model.unet.baseChannels, BEYOND_DEFAULTS.baseChannels);
    assert.equal(config('small-wide-vcfg-ema').model.unet.baseChannels, BEYOND_DEFAULTS.baseChannels);
    assert.equal(config('small-wide-vcfg-ema').training.ema, BEYOND_DEFAULTS.emaDecay);
    assert.equal(config('upscaler-vcfg-aug-ema').model.conditioningNoise, BEYOND_DEFAULTS.conditioningNoise);
    assert.equal(config('upscaler-vcfg-aug-ema').model.prediction, 'v');
    assert.equal(config('upscaler-vcfg-aug-ema').training.ema, BEYOND_DEFAULTS.emaDecay);
    assert.equal(beyond.find((b) => b.name === 'cascaded-wide-vcfg-aug-ema-clip')?.group, 'budget');
    for (const m of ['baseline', 'small', 'upscaler']) {
      for (const t of [`${m}-cfg`, `${m}-vcfg-ema`]) assert.equal(config(t).model.labelDropout, BEYOND_DEFAULTS.labelDropout, t);
      assert.equal(config(`${m}-vcfg-ema`).model.prediction, 'v');
      assert.equal(config(`${m}-vcfg-ema`).training.ema, BEYOND_DEFAULTS.emaDecay);
    }
    const ddim = beyond.filter((b) => b.group === 'ddim');
    assert.deepEqual(ddim.map((b) => [b.steps, b.x0]), [[5, 'none'], [10, 'none'], [5, 'clip'], [10, 'clip']]);
    assert.ok(ddim.every((b) => b.secondsPerSample! > 0), 'every DDIM variant is timed');
    assert.ok(ddim.filter((b) => b.x0 === 'clip').every((b) => b.offRange!.pixels === 0), 'clipped DDIM ends inside the range');
    assert.ok(beyond.filter((b) => b.group === 'thresholding').every((b) => b.x0 === 'dynamic' && b.offRange!.pixels === 0), 'dynamic thresholding ends inside the range');
    assert.equal(readRunConfig(join(work, 'runs', 'upscaler-aug-1')).model.conditioningNoise, BEYOND_DEFAULTS.conditioningNoise);
    assert.equal(config('baseline-ema').training.ema, BEYOND_DEFAULTS.emaDecay);
    assert.equal(config('baseline-v-ema').training.ema, BEYOND_DEFAULTS.emaDecay);
    assert.equal(config('baseline-v-ema').model.prediction, 'v');
    // The v-prediction models without the average are the averaged runs' trained weights, not trainings of their own.
    for (const t of ['baseline-v', 'baseline-v-wide', 'baseline-v-long', 'baseline-vcfg', 'small-vcfg', 'upscaler-vcfg']) assert.ok(!existsSync(join(work, 'runs', `${t}-1`)), `no run ${t}`);
    const setImages = (name: string) => readFileSync(join(work, 'sets', `${name}-1`, 'train-images-idx3-ubyte'));
    for (const [without, withAverage] of [['baseline-v-clip', 'baseline-v-ema-clip'], ['baseline-v-wide', 'baseline-v-wide-ema'], ['cascaded-vcfg-w0-clip', 'cascaded-vcfg-ema-w0-clip']]) {
      assert.ok(!setImages(without).equals(setImages(withAverage)), `${without} samples the trained weights, ${withAverage} their average`);
    }
    assert.ok(!setImages('cascaded-wide-vcfg-aug-ema-ddim-clip').equals(setImages('cascaded-wide-vcfg-aug-ema-ddim-w2-sigma0-1-clip')), 'guidance at low noise changes the samples');
    const w = BEYOND_DEFAULTS.autoguidance;
    assert.deepEqual(beyond.filter((b) => b.group === 'autoguidance').map((b) => [b.name, b.guidance]), [
      [`baseline-v-ema-ddim-autoguided-w${w}-clip`, w],
      [`small-upscaled-wide-vcfg-ema-ddim-autoguided-w${w}-clip`, w],
      [`baseline-v-wide-ema-ddim-autoguided-w${w}-clip`, w],
      [`cascaded-wide-vcfg-aug-ema-ddim-autoguided-w${w}-clip`, [w, 0]],
      [`cascaded-wider-vcfg-aug-ema-ddim-autoguided-w${w}-clip`, [w, 0]],
      [`cascaded-wider-vcfg-aug-ema-ddim-autoguided-narrow-w${w}-clip`, [w, 0]],
      ['cascaded-wider-vcfg-aug-ema-ddim-autoguided-narrow-w1-clip', [1, 0]],
      [`cascaded-wider-vcfg-aug-ema-ddim-autoguided-narrow-w${w}-label0.5-sigma0-1-clip`, [w, 0]],
      [`cascaded-wide-vcfg-aug-ema-dpmpp-autoguided-w${w}-clip`, [w, 0]],
      [`cascaded-wider-vcfg-aug-ema-dpmpp-autoguided-narrow-w${w}-clip`, [w, 0]],
      [`cascaded-wider-vcfg-aug-ema-dpmpp-autoguided-narrow-w${w}-label0.5-sigma0-1-clip`, [w, 0]],
      [`baseline-v-wide-ema-dpmpp-autoguided-w${w}-clip`, w],
      [`cascaded-wide-long-vcfg-aug-ema-dpmpp-autoguided-short-w${w}-clip`, [w, 0]],
      [`cascaded-wide-long-vcfg-aug-ema-dpmpp-autoguided-short-w${w}-label0.5-sigma0-1-clip`, [w, 0]],
      [`cascaded-wide-long-vcfg-aug-ema-dpmpp-autoguided-short-w${w}-label0.25-sigma0-1-clip`, [w, 0]],
      [`baseline-v-wide-ema-dpmpp-autoguided-narrow-w${w}-clip`, w],
      [`baseline-v-wide-long-ema-dpmpp-autoguided-short-w${w}-clip`, w],
    ]);
    assert.ok(!setImages(`baseline-v-wide-ema-dpmpp-autoguided-narrow-w${w}-clip`).equals(setImages(`baseline-v-wide-ema-dpmpp-autoguided-w${w}-clip`)), 'the narrower guide guides the wide baseline differently');
    assert.equal(config('small-wide-vcfg-ema-long').training.epochs, PRESETS.ci.epochs * BEYOND_DEFAULTS.epochsFactor);
    assert.equal(config('small-wide-vcfg-ema-long').model.unet.baseChannels, BEYOND_DEFAULTS.baseChannels);
    assert.equal(config('baseline-v-wide-ema-long').training.epochs, PRESETS.ci.epochs * BEYOND_DEFAULTS.epochsFactor);
    assert.deepEqual([config('baseline-v-wide-ema-long').model.unet.baseChannels, config('baseline-v-wide-ema-long').model.prediction], [BEYOND_DEFAULTS.baseChannels, 'v']);
    assert.ok(!setImages(`baseline-v-wide-long-ema-dpmpp-autoguided-short-w${w}-clip`).equals(setImages(`baseline-v-wide-ema-dpmpp-autoguided-w${w}-clip`)), 'the longer-trained wide baseline samples differently');
    for (const dpm of [`cascaded-wide-vcfg-aug-ema-dpmpp-autoguided-w${w}-clip`, 'cascaded-wider-vcfg-aug-ema-dpmpp-clip', `cascaded-wider-vcfg-aug-ema-dpmpp-autoguided-narrow-w${w}-clip`, `cascaded-wider-vcfg-aug-ema-dpmpp-autoguided-narrow-w${w}-label0.5-sigma0-1-clip`, `baseline-v-wide-ema-dpmpp-autoguided-w${w}-clip`]) {
      assert.ok(!setImages(dpm).equals(setImages(dpm.replace('-dpmpp', '-ddim'))), `${dpm} samples as its DDIM twin does not`);
      const entry = beyond.find((b) => b.name === dpm)!;
      assert.ok(entry.label.includes('DPM-Solver++(2M)') && entry.sampler === 'dpmpp-2m' && entry.eta === undefined, dpm);
    }
    const labelGuided = beyond.find((b) => b.name.includes('-label'))!;
    assert.deepEqual([labelGuided.labelGuidance, labelGuided.labelGuidanceInterval], [[BEYOND_DEFAULTS.labelGuidance.scale, 0], BEYOND_DEFAULTS.labelGuidance.sigma]);
    assert.ok(!setImages(labelGuided.name).equals(setImages(`cascaded-wider-vcfg-aug-ema-ddim-autoguided-narrow-w${w}-clip`)), 'label guidance changes the autoguided samples');
    const longer = `cascaded-wide-long-vcfg-aug-ema-dpmpp-autoguided-short-w${w}-clip`;
    const longerLabelGuided = [0.5, 0.25].map((scale) => beyond.find((b) => b.name === longer.replace(/-clip$/, `-label${scale}-sigma0-1-clip`))!);
    assert.deepEqual(longerLabelGuided.map((b) => [b.labelGuidance, b.labelGuidanceInterval, b.sampler]), [0.5, 0.25].map((scale) => [[scale, 0], BEYOND_DEFAULTS.labelGuidance.sigma, 'dpmpp-2m']));
    for (const b of longerLabelGuided) assert.ok(!setImages(b.name).equals(setImages(longer)), `label guidance changes the longer-trained cascade's samples (${b.name})`);
    assert.ok(!setImages(longerLabelGuided[0]!.name).equals(setImages(longerLabelGuided[1]!.name)), 'the two label guidance scales differ');
    assert.equal(config('baseline-v-narrow-ema').model.unet.baseChannels, BEYOND_DEFAULTS.guideChannels);
    assert.ok(!setImages(`cascaded-wider-vcfg-aug-ema-ddim-autoguided-w${w}-clip`).equals(setImages(`cascaded-wider-vcfg-aug-ema-ddim-autoguided-narrow-w${w}-clip`)), 'the two guides guide differently');
    for (const ddim of ['baseline-v-ema-ddim-clip', 'baseline-v-wide-ema-ddim-clip', 'cascaded-wide-vcfg-aug-ema-ddim-clip', 'cascaded-wider-vcfg-aug-ema-ddim-clip']) {
      assert.ok(!setImages(ddim).equals(setImages(ddim.replace(/-clip$/, `-autoguided-w${w}-clip`))), `autoguidance changes the samples of ${ddim}`);
    }
    for (const ddpm of ['baseline-v-ema-clip', 'baseline-v-wide-ema-clip', 'cascaded-wide-vcfg-aug-ema-clip']) {
      const ddim = ddpm.replace(/-clip$/, '-ddim-clip');
      assert.ok(!setImages(ddpm).equals(setImages(ddim)), `${ddim} samples the same models as ${ddpm} with DDIM`);
      assert.deepEqual(beyond.find((b) => b.name === ddim)?.offRange, { pixels: 0, samples: 0 }, `${ddim} is clipped`);
    }
    // The Table 1 variants are the same stages with or without --beyond: a Table 1 rerun finds them all cached.
    const table1 = await runPaper({ preset: PRESETS.ci, dataset: 'mnist', work, out: join(root, 'report-table1') });
    assert.deepEqual(ran(table1.stages), []);
    const md = readFileSync(join(out, 'report.md'), 'utf8');
    assert.ok(md.includes('Beyond the paper'));
    for (const f of ['ddim-cas.svg', 'ddim-speed.svg', 'guidance-cas.svg', 'guidance-frechet.svg']) assert.ok(existsSync(join(out, f)) && md.includes(f), f);
    const guidanceChart = readFileSync(join(out, 'guidance-cas.svg'), 'utf8');
    for (const line of ['baseline', 'small-upscaled', 'cascaded', 'baseline, v-prediction', 'cascaded, v-prediction', 'cascaded, v-prediction, EMA']) assert.ok(guidanceChart.includes(`>${line}<`), `guidance chart line '${line}'`);
    assert.ok(!guidanceChart.includes('sigma'), 'the sweep chart leaves out the variants guided in an interval');
    const autoguidanceChart = readFileSync(join(out, 'autoguidance-cas.svg'), 'utf8');
    assert.ok(md.includes('autoguidance-cas.svg') && md.includes('autoguidance-frechet.svg'), 'the report shows the autoguidance sweep');
    assert.deepEqual([...autoguidanceChart.matchAll(/>(cascaded[^<]*)</g)].map((m) => m[1]), ['cascaded-wider, narrower guide'], 'one line: the only model and guide sampled at two scales');
    assert.deepEqual(autoguidanceSweep(results).map((p) => [p.w, p.entry.name]), [
      [0, 'cascaded-wider-vcfg-aug-ema-ddim-clip'],
      [w, `cascaded-wider-vcfg-aug-ema-ddim-autoguided-narrow-w${w}-clip`],
      [1, 'cascaded-wider-vcfg-aug-ema-ddim-autoguided-narrow-w1-clip'],
    ], 'the sweep starts from the same sampling unguided');
    for (const b of beyond) assert.ok(md.includes(b.label.replace(/\|/g, '\\|')), `report.md lists '${b.label}'`);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('paper --variants: only the named variants and the trainings they sample; a wrong name is refused before anything is written', async () => {
  const root = mkdtempSync(join(tmpdir(), 'ssddpm-variants-'));
  try {
    const out = join(root, 'report');
    const work = join(root, 'work');
    const opts = { preset: PRESETS.ci, dataset: 'mnist' as const, work, out, beyond: BEYOND_DEFAULTS };
    await assert.rejects(runPaper({ ...opts, variants: ['small-upscaled-clip', 'cascaded-wide-ddim-clip'] }), /unknown variant "cascaded-wide-ddim-clip"; this protocol's variants are: .*cascaded-wide-vcfg-aug-ema-ddim-clip/);
    assert.ok(!existsSync(work) && !existsSync(out), 'nothing written');
    await assert.rejects(runPaper({ ...opts, beyond: undefined, variants: ['baseline-v-ema-ddim-clip'] }), /unknown variant/, 'a variant beyond the paper needs the beyond settings');

    const results = await runPaper({ ...opts, variants: ['small-upscaled-clip', 'baseline-v-ema-ddim-clip'] });
    assert.deepEqual(readdirSync(join(work, 'runs')).sort(), ['baseline-v-ema-1', 'small-1'], 'only the trainings the named variants sample');
    assert.deepEqual(results.cas.map((c) => [c.dataset, c.x0]), [['real', null], ['small-upscaled', 'clip']]);
    assert.deepEqual(results.beyond!.map((b) => b.name), ['baseline-v-ema-ddim-clip']);
    assert.deepEqual(results.speed.map((s) => [s.pipeline, s.x0]), [['small-upscaled', 'clip']]);
    assert.equal(results.settings.variants, 'small-upscaled-clip, baseline-v-ema-ddim-clip', 'the report says which variants ran');
    const md = readFileSync(join(out, 'report.md'), 'utf8');
    assert.ok(md.includes(results.beyond![0]!.label) && md.includes('samples-small-upscaled-clip.png') && !md.includes('samples-baseline.png'), 'the report shows what ran, figures of the models trained');
    assert.ok(md.includes('samples-baseline-v-ema-ddim-clip.png') && existsSync(join(out, 'samples-baseline-v-ema-ddim-clip.png')), 'a sample grid of the named variant beyond the paper');

    // The same sets and scores as a run that asked for more: a wider selection reruns only what it adds.
    const wider = await runPaper({ ...opts, out: join(root, 'report-2'), variants: ['small-upscaled-clip', 'small-upscaled', 'baseline-v-ema-ddim-clip'] });
    assert.deepEqual(ran(wider.stages), ['generate small-upscaled 1', 'cas small-upscaled', 'fidelity small-upscaled', 'speed small-upscaled']);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('a run folder that is not the protocol\'s run is refused, not reused or overwritten', async () => {
  const root = mkdtempSync(join(tmpdir(), 'ssddpm-paper-runs-'));
  try {
    const work = join(root, 'work');
    const runs = join(root, 'runs');
    const { trainDiffusion } = await import('../src/training/train-diffusion.ts');
    trainDiffusion({ out: join(runs, 'baseline-1'), model: 'baseline', training: { epochs: 1, perClass: 20, seed: 1, lr: 2e-3 } });
    const before = readFileSync(join(runs, 'baseline-1', 'config.json'), 'utf8');
    await assert.rejects(runPaper({ preset: PRESETS.ci, dataset: 'mnist', work, runs, out: join(root, 'report') }), /baseline-1 is not the protocol's baseline-1: lr 0\.002 \(the protocol: 0\.001\)/);
    assert.equal(readFileSync(join(runs, 'baseline-1', 'config.json'), 'utf8'), before);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
