// The paper pipeline end to end on the CI-sized preset: every stage runs, the report holds every Table 1
// row and figure, and a second run skips every stage whose outputs exist.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PAPER_PRESETS, runPaper } from '../src/experiments/paper.ts';
import { BEYOND_DEFAULTS } from '../src/experiments/beyond.ts';
import { readRunConfig } from '../src/experiments/run-dir.ts';
import { TABLE1_ROWS, TABLE1_COLUMNS } from '../src/report/render.ts';
import type { PaperResults } from '../src/report/results.ts';

test('paper --preset ci writes a complete report, and a rerun skips every finished stage', async () => {
  const root = mkdtempSync(join(tmpdir(), 'ssddpm-paper-'));
  try {
    const out = join(root, 'report');
    const opts = { preset: PAPER_PRESETS.ci, dataset: 'mnist' as const, work: join(root, 'work'), out };
    const results = await runPaper(opts);

    for (const file of ['report.html', 'report.md', 'results.json', 'figure1-cas.svg', 'speed.svg']) assert.ok(existsSync(join(out, file)), file);
    const saved = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as PaperResults;
    assert.equal(saved.cas.length, 7, 'real + 3 pipelines × {plain, clipped}');
    assert.deepEqual(saved.speed.map((s) => s.pipeline), ['baseline', 'small-upscaled', 'cascaded']);
    assert.equal(saved.training.length, 3);
    assert.equal(saved.toy1d.length, 2);
    assert.equal(saved.machine.device, 'cpu', 'the device the protocol ran on is recorded');
    for (const c of saved.cas) {
      if (c.sampling === null) assert.equal(c.offRange, undefined, 'real data is not measured');
      else assert.ok(c.offRange !== undefined && c.offRange.pixels >= 0 && c.offRange.pixels <= 1, `${c.dataset} ${c.sampling} off-range share`);
      if (c.sampling === 'clipped') assert.deepEqual(c.offRange, { pixels: 0, samples: 0 }, `${c.dataset}: clipping ends inside the range`);
      assert.ok(c.mean >= 0 && c.mean <= 1, `${c.dataset} CAS in [0, 1]`);
      assert.equal(c.perClassMean.length, 10);
    }
    const md = readFileSync(join(out, 'report.md'), 'utf8');
    const html = readFileSync(join(out, 'report.html'), 'utf8');
    for (const label of [...Object.values(TABLE1_ROWS), ...TABLE1_COLUMNS.map((c) => c.label)]) {
      assert.ok(md.includes(label), `report.md has '${label}'`);
      assert.ok(html.includes(label), `report.html has '${label}'`);
    }
    const expectedFigures = ['forward-baseline.png', 'forward-small.png', 'forward-upscaler.png', 'reverse-baseline.png', 'reverse-small.png',
      ...['baseline', 'small-upscaled', 'cascaded'].flatMap((p) => [`samples-${p}-plain.png`, `samples-${p}-clipped.png`])];
    for (const f of expectedFigures) {
      assert.ok(existsSync(join(out, f)), f);
      assert.ok(results.figures.some((g) => g.file === f), `${f} listed in results`);
      assert.ok(md.includes(f) && html.includes(f), `${f} shown in the report`);
    }
    for (const t of saved.toy1d) {
      assert.ok(existsSync(join(out, t.forwardFigure)) && existsSync(join(out, t.reverseFigure)));
    }

    const again = await runPaper(opts);
    const rerun = again.stages.filter((s) => s.name !== 'figures');
    assert.ok(rerun.every((s) => s.skipped), `skipped on rerun: ${rerun.filter((s) => !s.skipped).map((s) => s.name).join(', ')}`);
    assert.deepEqual(again.cas.map((c) => c.mean), results.cas.map((c) => c.mean));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('paper --beyond (ci preset): every experiment beyond the paper gets its trainings, CAS and report rows', async () => {
  const root = mkdtempSync(join(tmpdir(), 'ssddpm-beyond-'));
  try {
    const out = join(root, 'report');
    const work = join(root, 'work');
    const results = await runPaper({ preset: PAPER_PRESETS.ci, dataset: 'mnist', work, out, beyond: { ...BEYOND_DEFAULTS, ddimSteps: [5, 10], ddimEta: [0] } });
    const beyond = results.beyond!;
    assert.deepEqual([...new Set(beyond.map((b) => b.group))].sort(), ['conditioning', 'ddim', 'ema', 'thresholding']);
    assert.equal(beyond.length, 3 + 4 + 2 + 4, 'dynamic ×3 pipelines, DDIM ×2 steps ×2 (plain, clipped), EMA plain/clipped, augmented cascade ×2 levels ×2');
    for (const b of beyond) assert.ok(b.cas.mean >= 0 && b.cas.mean <= 1 && b.cas.accuracies.length === 1, b.name);
    const ddim = beyond.filter((b) => b.group === 'ddim');
    assert.deepEqual(ddim.map((b) => [b.steps, b.clip ?? false]), [[5, false], [10, false], [5, true], [10, true]]);
    assert.ok(ddim.every((b) => (b.secondsPerSample! > 0) === !b.clip), 'plain DDIM is timed, clipped DDIM is not');
    assert.ok(ddim.filter((b) => b.clip).every((b) => b.offRange!.pixels === 0), 'clipped DDIM ends inside the range');
    assert.equal(readRunConfig(join(work, 'runs', 'upscaler-aug-1')).model.conditioningNoise, BEYOND_DEFAULTS.conditioningNoise);
    assert.equal(readRunConfig(join(work, 'runs', 'baseline-ema-1')).training.ema, BEYOND_DEFAULTS.emaDecay);
    const md = readFileSync(join(out, 'report.md'), 'utf8');
    assert.ok(md.includes('Beyond the paper'));
    assert.ok(beyond.every((b) => b.offRange !== undefined), 'every variant measured its range');
    assert.ok(beyond.filter((b) => b.group === 'thresholding').every((b) => b.offRange!.pixels === 0), 'dynamic thresholding ends inside the range');
    for (const f of ['ddim-cas.svg', 'ddim-speed.svg']) assert.ok(existsSync(join(out, f)) && md.includes(f), f);
    for (const b of beyond) assert.ok(md.includes(b.label.replace(/\|/g, '\\|')), `report.md lists '${b.label}'`);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
