// SVG charts of a paper reproduction, drawn with vega-lite and rendered headless (no DOM, no canvas):
// the paper's Figure 1 (class-wise CAS), the sampling speeds beside the paper's, and a generic line chart.

import * as vega from 'vega';
import * as vl from 'vega-lite';
import { PAPER_PIPELINES } from '../pipelines/paper-pipelines.ts';
import { speedOf, type BeyondResult, type CasDatasetName, type CasResult, type PaperResults, type Table1X0 } from './results.ts';
import { PAPER_TABLE1 } from './results.ts';

/** Font named in the SVG text; DejaVu Sans is the usual fallback font on Linux. */
export const CHART_FONT = 'DejaVu Sans';

/** Datasets in the order of the paper's Table 1, with their legend names and bar colours. */
export const CAS_DATASETS: readonly { dataset: CasDatasetName; label: string; color: string }[] = [
  { dataset: 'real', label: 'real', color: '#4c78a8' },
  { dataset: 'baseline', label: 'baseline', color: '#f58518' },
  { dataset: 'small-upscaled', label: 'small-upscaled', color: '#54a24b' },
  { dataset: 'cascaded', label: 'cascaded', color: '#e45756' },
];

/** How the report names Table 1's two ways of sampling. */
export const X0_NAMES: Readonly<Record<Table1X0, string>> = { none: 'plain', clip: 'clipped' };

const CLASSES = Array.from({ length: 10 }, (_, i) => String(i));

const BASE_CONFIG = {
  font: CHART_FONT,
  background: 'white',
  view: { stroke: null },
  axis: { labelFontSize: 11, titleFontSize: 12 },
  legend: { labelFontSize: 11, titleFontSize: 12, labelLimit: 300 },
  title: { fontSize: 14, subtitleFontSize: 11, anchor: 'start' },
} as const;

/** Compiles a vega-lite spec and renders it to an SVG string without a browser. */
async function toSvg(spec: vl.TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(vl.compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

/** A small SVG that says why a chart is empty, so callers can embed it like any other chart. */
function placeholderSvg(title: string, message: string): string {
  const t = escapeXml(title);
  const m = escapeXml(message);
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="480" height="80" viewBox="0 0 480 80">` +
    `<rect width="480" height="80" fill="white"/>` +
    `<text x="10" y="28" font-family="${CHART_FONT}" font-size="14" font-weight="bold">${t}</text>` +
    `<text x="10" y="56" font-family="${CHART_FONT}" font-size="12" fill="#666">${m}</text></svg>`
  );
}

const clamp01 = (x: number): number => Math.min(1, Math.max(0, x));

/**
 * The CAS entry that stands for a dataset in Figure 1: real data as is; for generated data the
 * x̂0-clipped sampling when it was evaluated, else plain sampling.
 */
export function figureCasEntry(cas: readonly CasResult[], dataset: CasDatasetName): CasResult | undefined {
  const of = cas.filter((c) => c.dataset === dataset);
  if (dataset === 'real') return of[0];
  return of.find((c) => c.x0 === 'clip') ?? of.find((c) => c.x0 === 'none') ?? of[0];
}

/** Legend name of a CAS entry: the dataset, plus its sampling mode for generated data. */
export function casLabel(c: CasResult): string {
  const base = CAS_DATASETS.find((d) => d.dataset === c.dataset)?.label ?? c.dataset;
  return c.x0 ? `${base} (${X0_NAMES[c.x0]})` : base;
}

/**
 * The paper's Figure 1: class-wise CAS as grouped bars (x = class 0–9, one colour per dataset), with
 * error bars of ± one standard deviation over the classifiers, y from 0 to 1.
 */
export async function casChart(results: PaperResults): Promise<string> {
  const title = 'Figure 1: class-wise CAS';
  const entries = CAS_DATASETS.flatMap((d) => {
    const c = figureCasEntry(results.cas, d.dataset);
    return c ? [{ c, color: d.color }] : [];
  });
  if (entries.length === 0) return placeholderSvg(title, 'CAS not run: no classifier results.');

  const values = entries.flatMap(({ c }) =>
    CLASSES.map((cls, k) => {
      const mean = c.perClassMean[k] ?? NaN;
      const std = c.perClassStd[k] ?? 0;
      return { class: cls, dataset: casLabel(c), mean, lo: clamp01(mean - std), hi: clamp01(mean + std) };
    }).filter((v) => Number.isFinite(v.mean)),
  );
  const domain = entries.map(({ c }) => casLabel(c));
  const range = entries.map(({ color }) => color);
  const x = { field: 'class', type: 'nominal', title: 'class', sort: CLASSES, scale: { domain: CLASSES, paddingInner: 0.2 }, axis: { labelAngle: 0 } } as const;
  const xOffset = { field: 'dataset', type: 'nominal', sort: domain, scale: { domain } } as const;

  return toSvg({
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: title, subtitle: 'mean accuracy on the real test set ± std over classifiers; generated data: x̂0-clipped sampling where run' },
    width: 640,
    height: 300,
    config: BASE_CONFIG,
    data: { values },
    layer: [
      {
        mark: { type: 'bar' },
        encoding: {
          x,
          xOffset,
          y: { field: 'mean', type: 'quantitative', title: 'accuracy', scale: { domain: [0, 1] } },
          color: { field: 'dataset', type: 'nominal', title: 'training data', sort: domain, scale: { domain, range } },
        },
      },
      {
        mark: { type: 'rule', color: 'black', strokeWidth: 1 },
        encoding: { x, xOffset, y: { field: 'lo', type: 'quantitative' }, y2: { field: 'hi' } },
      },
    ],
  });
}

/** Seconds per sample: ours next to the paper's T4 numbers, per pipeline (log scale, values labelled). */
export async function speedChart(results: PaperResults): Promise<string> {
  const title = 'Sampling speed: seconds per sample (batch size 1)';
  if (results.speed.length === 0) return placeholderSvg(title, 'Speed not run: no timings.');

  const ours = 'ours';
  const paper = 'paper (T4 GPU)';
  const values = PAPER_PIPELINES.flatMap((p) => {
    const s = speedOf(results, p);
    const rows: { pipeline: string; source: string; seconds: number; label: string }[] = [];
    if (s && Number.isFinite(s.secondsPerSample) && s.secondsPerSample > 0) {
      rows.push({ pipeline: p, source: ours, seconds: s.secondsPerSample, label: formatSecondsShort(s.secondsPerSample) });
    }
    const ps = PAPER_TABLE1.secondsPerSample[p];
    rows.push({ pipeline: p, source: paper, seconds: ps, label: formatSecondsShort(ps) });
    return rows;
  });
  // Log scale: a CPU run can be two orders of magnitude slower than the paper's GPU. Bars need an explicit
  // base on a log axis (there is no zero), so the domain is widened to whole decades around the data.
  const secs = values.map((v) => v.seconds);
  const lo = 10 ** Math.floor(Math.log10(Math.min(...secs)));
  const hi = 10 ** Math.ceil(Math.log10(Math.max(...secs) * 1.5));
  const domain = [ours, paper];
  const x = { field: 'pipeline', type: 'nominal', title: 'pipeline', sort: [...PAPER_PIPELINES], axis: { labelAngle: 0 } } as const;
  const xOffset = { field: 'source', type: 'nominal', sort: domain, scale: { domain } } as const;
  const y = { field: 'seconds', type: 'quantitative' as const, title: 'seconds per sample (log)', scale: { type: 'log' as const, domain: [lo, hi] } };
  // Batch-1 timings may use fewer threads than the rest of the run (the paper presets time them on one).
  const threads = typeof results.settings?.speedThreads === 'number' ? results.settings.speedThreads : results.machine?.threads;
  const machine = results.machine?.cpu ? `ours: ${results.machine.cpu}, ${threads} thread${threads === 1 ? '' : 's'}` : 'ours: this machine';

  return toSvg({
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: title, subtitle: `${machine}; paper: T4 GPU` },
    width: 480,
    height: 280,
    config: BASE_CONFIG,
    data: { values },
    layer: [
      {
        mark: { type: 'bar' },
        encoding: {
          x,
          xOffset,
          y,
          y2: { datum: lo },
          color: { field: 'source', type: 'nominal', title: null, sort: domain, scale: { domain, range: ['#4c78a8', '#bab0ac'] } },
        },
      },
      {
        mark: { type: 'text', dy: -6, fontSize: 10 },
        encoding: { x, xOffset, y, text: { field: 'label', type: 'nominal' } },
      },
    ],
  });
}

/** DDIM against the number of steps (beyond the paper): CAS, and milliseconds per sample, with DDPM's 30-step points. */
export async function ddimCharts(results: PaperResults): Promise<{ cas: string; speed: string } | undefined> {
  const ddim = (results.beyond ?? []).filter((b) => b.group === 'ddim' && b.steps !== undefined).sort((a, b) => a.steps! - b.steps!);
  if (ddim.length === 0) return undefined;
  const ddpmSpeed = speedOf(results, 'baseline');
  const name = (eta: number, clip: boolean) => `DDIM (η = ${eta}${clip ? ', x̂0 clipped' : ''})`;
  const clipped = (b: { x0: string }) => b.x0 === 'clip';
  const keys = [...new Map(ddim.map((b) => [name(b.eta ?? 0, clipped(b)), [b.eta ?? 0, clipped(b)] as const])).entries()];
  // One line per (η, clipping), points without a value left out; then DDPM's point(s) from Table 1.
  const series = (y: (b: (typeof ddim)[number]) => number | undefined, ddpm: { name: string; point: [number, number] }[]): LineSeries[] =>
    [
      ...keys.map(([key, [eta, clip]]) => ({
        name: key,
        points: ddim.filter((b) => (b.eta ?? 0) === eta && clipped(b) === clip && y(b) !== undefined).map((b): [number, number] => [b.steps!, y(b)!]),
      })),
      ...ddpm.map((d) => ({ name: d.name, points: [d.point] })),
    ].filter((s) => s.points.length > 0);
  const ddpmCas = (['none', 'clip'] as const).flatMap((x0) => {
    const c = results.cas.find((e) => e.dataset === 'baseline' && e.x0 === x0);
    return c && ddpmSpeed ? [{ name: `DDPM (Table 1, ${X0_NAMES[x0]})`, point: [ddpmSpeed.steps, c.mean] as [number, number] }] : [];
  });
  const ddpmMs = ddpmSpeed ? [{ name: 'DDPM (Table 1)', point: [ddpmSpeed.steps, ddpmSpeed.secondsPerSample * 1000] as [number, number] }] : [];
  const [cas, speed] = await Promise.all([
    lineChart(series((b) => b.cas.mean, ddpmCas), { title: 'Baseline CAS against sampling steps', xTitle: 'network evaluations per sample', yTitle: 'CAS' }),
    lineChart(series((b) => (b.secondsPerSample === undefined ? undefined : b.secondsPerSample * 1000), ddpmMs), { title: 'Baseline time per sample against sampling steps (batch size 1)', xTitle: 'network evaluations per sample', yTitle: 'ms per sample' }),
  ]);
  return { cas, speed };
}

/** The guidance sweep (beyond the paper): CAS and Fréchet distance against the guidance scale w, one line per guided model (guided at every step). */
export async function guidanceCharts(results: PaperResults): Promise<SweepCharts | undefined> {
  // `cascaded-cfg-w2-clip` is drawn on the line "cascaded", `cascaded-vcfg-w2-clip` on "cascaded, v-prediction".
  const lineOf = (name: string) => name.replace(/-w[^-]+-clip$/, '').replace(/-vcfg-ema$/, ', v-prediction, EMA').replace(/-vcfg$/, ', v-prediction').replace(/-cfg$/, '');
  const guided = (results.beyond ?? []).flatMap((b) => (b.group === 'guidance' && typeof b.guidance === 'number' && b.guidanceInterval === undefined ? [{ line: lineOf(b.name), w: b.guidance, entry: b }] : []));
  return sweepCharts(guided, 'guidance scale');
}

/**
 * The autoguidance sweep: its points, one line per model and guide sampled at more than one scale w (of the first
 * model, for a cascade), from w = 0 (the same sampling unguided) where that was run; empty when nothing was swept.
 */
export function autoguidanceSweep(results: PaperResults): SweepPoint[] {
  const beyond = results.beyond ?? [];
  const guided = beyond.flatMap((b) => {
    const w = Array.isArray(b.guidance) ? b.guidance[0] : b.guidance;
    // `cascaded-wider-…-ddim-autoguided-narrow-w2-clip` is drawn on the line "cascaded-wider, narrower guide" (recipe parts left out: legends are short), from `cascaded-wider-…-ddim-clip` at w = 0.
    const m = /^(.*)-autoguided(.*)-w[^-]+-clip$/.exec(b.name);
    return b.group === 'autoguidance' && m !== null && w !== undefined ? [{ line: `${m[1].replace(/-(vcfg|aug|ema|ddim)(?=-|$)/g, '')}${m[2] === '-narrow' ? ', narrower guide' : ''}`, unguided: `${m[1]}-clip`, w, entry: b }] : [];
  });
  const swept = guided.filter((g) => guided.filter((o) => o.line === g.line).length > 1);
  const unguided = [...new Map(swept.map((g) => [g.line, g.unguided]))].flatMap(([line, name]) => {
    const entry = beyond.find((b) => b.name === name);
    return entry === undefined ? [] : [{ line, w: 0, entry }];
  });
  return [...unguided, ...swept.map(({ line, w, entry }) => ({ line, w, entry }))];
}

/** CAS and Fréchet distance against the autoguidance scale. */
export async function autoguidanceCharts(results: PaperResults): Promise<SweepCharts | undefined> {
  return sweepCharts(autoguidanceSweep(results), 'autoguidance scale');
}

export interface SweepPoint {
  line: string;
  w: number;
  entry: BeyondResult;
}

export interface SweepCharts {
  cas: string;
  frechet: string;
}

/** CAS and Fréchet distance of sets against a scale, one line each (undefined when there is nothing to draw). */
async function sweepCharts(points: SweepPoint[], scale: string): Promise<SweepCharts | undefined> {
  if (points.length === 0) return undefined;
  const sorted = [...points].sort((a, b) => a.w - b.w);
  const lines = [...new Set(sorted.map((p) => p.line))];
  const series = (y: (b: BeyondResult) => number | undefined): LineSeries[] =>
    lines.map((line) => ({ name: line, points: sorted.filter((p) => p.line === line && y(p.entry) !== undefined).map((p): [number, number] => [p.w, y(p.entry)!]) }));
  const [cas, frechet] = await Promise.all([
    lineChart(series((b) => b.cas.mean), { title: `CAS against the ${scale} (x̂0 clipped)`, xTitle: `${scale} w`, yTitle: 'CAS' }),
    lineChart(series((b) => b.fidelity?.frechetDistance), { title: `Fréchet distance against the ${scale} (x̂0 clipped)`, xTitle: `${scale} w`, yTitle: 'Fréchet distance (judge features)' }),
  ]);
  return { cas, frechet };
}

/** Short duration text for chart labels: milliseconds below one second. */
function formatSecondsShort(s: number): string {
  return s < 1 ? `${Number((s * 1000).toPrecision(3))} ms` : `${Number(s.toPrecision(3))} s`;
}

export interface LineSeries {
  name: string;
  /** [x, y] points; drawn in the given order. */
  points: [number, number][];
}

export interface LineChartOptions {
  title: string;
  xTitle: string;
  yTitle: string;
  /** Logarithmic x axis (e.g. numbers of sampling steps). */
  logX?: boolean;
}

/** A generic line chart with points, one colour per series (e.g. CAS against the number of DDIM steps). */
export async function lineChart(series: LineSeries[], opts: LineChartOptions): Promise<string> {
  const values = series.flatMap((s) =>
    s.points.map(([x, y], order) => ({ series: s.name, x, y, order })).filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y) && (!opts.logX || p.x > 0)),
  );
  if (values.length === 0) return placeholderSvg(opts.title, 'No data.');
  const domain = series.map((s) => s.name);
  return toSvg({
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: opts.title,
    width: 480,
    height: 280,
    config: BASE_CONFIG,
    data: { values },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'x', type: 'quantitative', title: opts.xTitle, scale: opts.logX ? { type: 'log' } : { zero: false } },
      y: { field: 'y', type: 'quantitative', title: opts.yTitle, scale: { zero: false } },
      color: { field: 'series', type: 'nominal', title: null, sort: domain, scale: { domain } },
      order: { field: 'order', type: 'quantitative' },
    },
  });
}
