import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { casChart, lineChart, speedChart } from '../src/report/charts.ts';
import { TABLE1_COLUMNS, TABLE1_ROWS, escapeHtml, fmtDuration, renderHtml, renderMarkdown } from '../src/report/render.ts';
import { writeReport } from '../src/report/write.ts';
import { migrateResults, type CasDatasetName, type CasResult, type PaperResults, type Table1X0 } from '../src/report/results.ts';

/** Deterministic pseudo-random numbers, so the fake results are the same on every run. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function fakeCas(dataset: CasDatasetName, x0: Table1X0 | null, level: number, seed: number): CasResult {
  const r = rng(seed);
  const accuracies = Array.from({ length: 5 }, () => level + (r() - 0.5) * 0.04);
  const mean = accuracies.reduce((a, b) => a + b, 0) / accuracies.length;
  const std = Math.sqrt(accuracies.reduce((a, b) => a + (b - mean) ** 2, 0) / (accuracies.length - 1));
  return {
    dataset,
    x0,
    mean,
    std,
    accuracies,
    perClassMean: Array.from({ length: 10 }, () => Math.min(1, level + (r() - 0.5) * 0.2)),
    perClassStd: Array.from({ length: 10 }, () => r() * 0.05),
    trainImages: 60000,
  };
}

function fakeResults(): PaperResults {
  const cas: CasResult[] = [fakeCas('real', null, 0.981, 1)];
  let seed = 2;
  for (const [dataset, level] of [['baseline', 0.82], ['small-upscaled', 0.88], ['cascaded', 0.61]] as const) {
    cas.push(fakeCas(dataset, 'none', level, seed++), fakeCas(dataset, 'clip', level + 0.03, seed++));
  }
  const models = ['baseline', 'small', 'upscaler'] as const;
  return {
    format: 'ssddpm-paper-results',
    version: 2,
    preset: 'full',
    dataset: 'MNIST',
    createdAt: '2024-05-01T12:00:00.000Z',
    machine: { cpu: 'Intel(R) Xeon(R) CPU @ 2.20GHz', cores: 2, threads: 2, libtorch: '2.3.1', node: 'v20.12.2', os: 'Linux 6.1 x64' },
    settings: { epochs: 40, casClassifiers: 5, clip: true, sampler: 'ddpm' },
    training: models.flatMap((model, i) =>
      [0, 1, 2].map((seed) => ({ model, seed, epochs: 40, finalLoss: 0.03 + i * 0.01 + seed * 0.001, seconds: 3600 + i * 900 + seed * 17, run: `runs/${model}-s${seed}` })),
    ),
    cas,
    speed: [
      { pipeline: 'baseline', x0: 'none', secondsPerSample: 1.234, samples: 20, steps: 30 },
      { pipeline: 'small-upscaled', x0: 'none', secondsPerSample: 0.412, samples: 20, steps: 20 },
      { pipeline: 'cascaded', x0: 'none', secondsPerSample: 1.05, samples: 20, steps: 30 },
    ],
    toy1d: [
      { support: [-1, 1], samples: 1000, offSupport: 7, tolerance: 0.1, shareNear: [0.497, 0.503], finalLoss: 0.412, forwardFigure: 'toy1d/forward-m1-1.png', reverseFigure: 'toy1d/reverse-m1-1.png' },
      { support: [0, 2], samples: 1000, offSupport: 12, tolerance: 0.1, shareNear: [0.61, 0.39], finalLoss: 0.455, forwardFigure: 'toy1d/forward-0-2.png', reverseFigure: 'toy1d/reverse-0-2.png' },
    ],
    figures: [
      { file: 'samples/baseline.png', caption: 'Samples of the baseline model, one row per class.' },
      { file: 'samples/cascaded.png', caption: 'Cascaded samples <script>alert("x")</script> & more' },
      { file: 'trajectories/reverse baseline.png', caption: 'A reverse-process trajectory of the baseline model.' },
    ],
    stages: [
      { name: 'train', seconds: 41000, status: 'cached', ranSeconds: 61 },
      { name: 'sample', seconds: 5400, status: 'ran', reason: 'not run before' },
      { name: 'cas', seconds: 7300, status: 'ran', reason: 'its settings changed (epochs: 1 → 2)' },
      { name: 'speed', seconds: 95.2, status: 'ran', reason: 'not run before' },
      { name: 'toy1d', seconds: 0.35, status: 'ran' },
    ],
    totalSeconds: 54195.55,
  };
}

function emptyResults(): PaperResults {
  return { ...fakeResults(), cas: [], speed: [], toy1d: [], figures: [], training: [], stages: [], preset: 'ci' };
}

test('Table 1: every row and column label in Markdown and HTML, with the paper’s numbers beside ours', async () => {
  const r = fakeResults();
  const md = renderMarkdown(r);
  const html = renderHtml(r, { cas: await casChart(r), speed: await speedChart(r) });
  for (const label of [...Object.values(TABLE1_ROWS), ...TABLE1_COLUMNS.map((c) => c.label)]) {
    assert.ok(md.includes(label), `markdown lacks ${label}`);
    assert.ok(html.includes(escapeHtml(label)), `html lacks ${label}`);
  }
  const real = r.cas[0];
  const baseClipped = r.cas.find((c) => c.dataset === 'baseline' && c.x0 === 'clip')!;
  const cells = [
    `${real.mean.toFixed(3)} ± ${real.std.toFixed(3)} (paper 0.976 ± 0.004)`,
    `${baseClipped.mean.toFixed(3)} ± ${baseClipped.std.toFixed(3)} (paper 0.730 ± 0.040)`,
    '(paper 0.819 ± 0.032)',
    '(paper 0.600 ± 0.048)',
    '1.23 (paper 0.0607)',
    '0.412 (paper 0.0412)',
    '1.05 (paper 0.0671)',
  ];
  for (const cell of cells) {
    assert.ok(md.includes(cell), `markdown lacks ${cell}`);
    assert.ok(html.includes(cell), `html lacks ${cell}`);
  }
  // Order of the sections follows the brief: summary, Table 1, class-wise, Figure 1, speed, … reproduce.
  const order = ['Summary', 'Table 1', 'Class-wise CAS', 'Figure 1', 'Sampling speed', 'Trainings', '1-D study', 'Figures', 'Machine', 'Stages', 'How to reproduce'];
  const at = order.map((h) => md.indexOf(`## ${h}`));
  assert.ok(at.every((i, k) => i >= 0 && (k === 0 || i > at[k - 1]!)), `section order: ${at.join(',')}`);
  // Other sections carry their numbers.
  for (const s of ['runs/upscaler-s2', '1 h 00 min', 'Intel(R) Xeon(R) CPU @ 2.20GHz', 'cached (same key); ran in 1 min 01 s', 'ran: its settings changed (epochs: 1 → 2)', 'ssddpm paper --quick', '{0, 2}', '61.0 %', 'toy1d/reverse-0-2.png']) {
    assert.ok(md.includes(s), `markdown lacks ${s}`);
    assert.ok(html.includes(escapeHtml(s)), `html lacks ${s}`);
  }
  assert.equal(fmtDuration(0.35), '350 ms');
  assert.equal(fmtDuration(95.2), '1 min 35 s');
});

test('HTML escapes captions; figures become <img> with relative paths; charts are inlined', async () => {
  const r = fakeResults();
  const html = renderHtml(r, { cas: await casChart(r), speed: await speedChart(r) });
  assert.ok(!html.includes('<script>'), 'raw <script> in HTML');
  assert.ok(html.includes('Cascaded samples &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; more'));
  assert.ok(html.includes('<img src="samples/baseline.png"'));
  assert.ok(html.includes('<img src="trajectories/reverse%20baseline.png"'));
  assert.ok(html.includes('<img src="toy1d/forward-m1-1.png"'));
  assert.equal((html.match(/<svg/g) ?? []).length >= 2, true);
  assert.ok(html.startsWith('<!DOCTYPE html>') && html.includes('<style>'));
  const md = renderMarkdown(r);
  assert.ok(!md.includes('<script>'), 'raw <script> in Markdown');
  assert.ok(md.includes('](figure1-cas.svg)') && md.includes('](speed.svg)'));
});

test('SVG charts are well-formed: class labels 0–9 and dataset legend names', async () => {
  const r = fakeResults();
  const cas = await casChart(r);
  assert.ok(cas.startsWith('<svg'));
  assert.ok(cas.trimEnd().endsWith('</svg>'));
  for (let k = 0; k < 10; k++) assert.ok(cas.includes(`>${k}</text>`), `class ${k} missing`);
  for (const name of ['real', 'baseline (clipped)', 'small-upscaled (clipped)', 'cascaded (clipped)']) assert.ok(cas.includes(`>${name}</text>`), `legend ${name} missing`);
  assert.ok(!cas.includes('(plain)'), 'clipped entries should stand for generated data when present');

  // Without clipped entries the plain ones stand in; a missing dataset is simply left out.
  const plainOnly = await casChart({ ...r, cas: r.cas.filter((c) => c.x0 !== 'clip' && c.dataset !== 'cascaded') });
  assert.ok(plainOnly.includes('>baseline (plain)</text>') && !plainOnly.includes('cascaded'));

  const speed = await speedChart(r);
  assert.ok(speed.startsWith('<svg') && speed.trimEnd().endsWith('</svg>'));
  for (const name of ['baseline', 'small-upscaled', 'cascaded', 'paper (T4 GPU)', '60.7 ms']) assert.ok(speed.includes(`>${name}</text>`), `speed ${name} missing`);

  const line = await lineChart(
    [
      { name: 'baseline', points: [[10, 0.6], [20, 0.7], [50, 0.75]] },
      { name: 'cascaded', points: [[10, 0.4], [20, 0.5], [50, 0.55]] },
    ],
    { title: 'CAS vs DDIM steps', xTitle: 'steps', yTitle: 'CAS', logX: true },
  );
  assert.ok(line.startsWith('<svg') && line.includes('CAS vs DDIM steps') && line.includes('>cascaded</text>'));
});

test('writeReport writes the five files atomically and leaves no temp files', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'report-'));
  try {
    const r = fakeResults();
    const out = join(dir, 'report');
    const paths = await writeReport(out, r);
    assert.deepEqual(readdirSync(out).sort(), ['figure1-cas.svg', 'report.html', 'report.md', 'results.json', 'speed.svg']);
    assert.deepEqual(JSON.parse(readFileSync(paths.json, 'utf8')), r);
    assert.ok(readFileSync(paths.html, 'utf8').includes(TABLE1_ROWS.speed));
    assert.ok(readFileSync(paths.markdown, 'utf8').startsWith('# '));
    assert.ok(readFileSync(join(out, 'figure1-cas.svg'), 'utf8').startsWith('<svg'));
    // A second write replaces the files in place.
    await writeReport(out, emptyResults());
    assert.equal(readdirSync(out).length, 5);
    assert.ok(readFileSync(paths.markdown, 'utf8').includes('CAS: not run.'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('empty CAS, speed, 1-D study and figures render "not run" notes without throwing', async () => {
  const r = emptyResults();
  const cas = await casChart(r);
  const speed = await speedChart(r);
  assert.ok(cas.startsWith('<svg') && speed.startsWith('<svg'));
  const md = renderMarkdown(r);
  const html = renderHtml(r, { cas, speed });
  for (const note of ['CAS: not run.', 'Speed measurement: not run.', '1-D study: not run.', 'Training: not run.', 'Figures: not run.', 'Stages: not run.']) {
    assert.ok(md.includes(note), `markdown lacks ${note}`);
    assert.ok(html.includes(note), `html lacks ${note}`);
  }
  // Table 1 still shows the paper's values, with N/A for ours.
  assert.ok(md.includes('N/A (paper 0.976 ± 0.004)'));
  assert.ok(html.includes('N/A (paper 0.0607)'));
});

test('results.json of version 1 read as version 2: same numbers, the current names', () => {
  const v2 = fakeResults();
  const v1 = {
    ...v2,
    version: 1,
    cas: v2.cas.map(({ x0, ...c }) => ({ ...c, sampling: x0 === null ? null : x0 === 'clip' ? 'clipped' : 'plain' })),
    stages: v2.stages.map(({ status, reason: _, ...s }) => ({ ...s, skipped: status === 'cached' })),
    speed: v2.speed.map(({ x0: _, ...s }) => s),
    beyond: [
      { group: 'ddim', name: 'baseline-ddim5-eta0-clipped', label: 'DDIM', cas: { mean: 0.9, std: 0.01, accuracies: [0.9] }, clip: true, eta: 0, steps: 5 },
      { group: 'thresholding', name: 'baseline-dynamic', label: 'dyn', cas: { mean: 0.8, std: 0.01, accuracies: [0.8] } },
      { group: 'ema', name: 'baseline-ema', label: 'ema', cas: { mean: 0.7, std: 0.01, accuracies: [0.7] } },
    ],
  };
  const migrated = migrateResults(JSON.parse(JSON.stringify(v1)));
  assert.equal(migrated.version, 2);
  assert.deepEqual(migrated.cas, v2.cas);
  assert.deepEqual(migrated.speed, v2.speed, 'version 1 timed plain sampling');
  assert.deepEqual(migrated.stages.map((s) => s.status), v2.stages.map((s) => s.status));
  assert.deepEqual(migrated.beyond!.map((b) => [b.name, b.x0]), [['baseline-ddim5-eta0-clip', 'clip'], ['baseline-dynamic', 'dynamic'], ['baseline-ema', 'none']]);
  assert.equal(migrateResults(v2), v2, 'the current version is returned as it is');
  assert.throws(() => migrateResults({ ...v2, version: 3 }), /version 3 is newer/);
  assert.throws(() => migrateResults({ cas: [] }), /not an ssddpm results file/);
});
