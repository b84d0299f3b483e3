// Writes a reproduction's report folder: the results as JSON, the report as Markdown and HTML, and the
// two charts as SVG files. Every file is written atomically, so a crash never leaves a half-written one.

import { join } from 'node:path';
import { writeFileAtomic } from '../io/atomic.ts';
import { autoguidanceCharts, casChart, ddimCharts, guidanceCharts, speedChart } from './charts.ts';
import { AUTOGUIDANCE_CAS_CHART_FILE, AUTOGUIDANCE_FD_CHART_FILE, CAS_CHART_FILE, DDIM_CAS_CHART_FILE, DDIM_SPEED_CHART_FILE, GUIDANCE_CAS_CHART_FILE, GUIDANCE_FD_CHART_FILE, SPEED_CHART_FILE, renderHtml, renderMarkdown } from './render.ts';
import type { PaperResults } from './results.ts';

export interface ReportPaths {
  html: string;
  markdown: string;
  json: string;
  casChart: string;
  speedChart: string;
}

/**
 * Renders `results` into `dir` as `results.json`, `report.md`, `report.html`, `figure1-cas.svg` and
 * `speed.svg` (and the DDIM charts with `--beyond` results; creating `dir` if needed) and returns the paths. Figures named in `results` are only
 * referenced, never copied: their paths are relative to `dir`.
 */
export async function writeReport(dir: string, results: PaperResults): Promise<ReportPaths> {
  // Render everything first so a failing chart leaves the previous report untouched.
  const [cas, speed, ddim, guidance, autoguidance] = await Promise.all([casChart(results), speedChart(results), ddimCharts(results), guidanceCharts(results), autoguidanceCharts(results)]);
  const markdown = renderMarkdown(results);
  const html = renderHtml(results, { cas, speed });
  const json = `${JSON.stringify(results, null, 2)}\n`;

  const paths: ReportPaths = {
    json: join(dir, 'results.json'),
    markdown: join(dir, 'report.md'),
    html: join(dir, 'report.html'),
    casChart: join(dir, CAS_CHART_FILE),
    speedChart: join(dir, SPEED_CHART_FILE),
  };
  writeFileAtomic(paths.json, json);
  writeFileAtomic(paths.casChart, cas);
  writeFileAtomic(paths.speedChart, speed);
  if (ddim !== undefined) {
    writeFileAtomic(join(dir, DDIM_CAS_CHART_FILE), ddim.cas);
    writeFileAtomic(join(dir, DDIM_SPEED_CHART_FILE), ddim.speed);
  }
  for (const [sweep, casFile, frechetFile] of [[guidance, GUIDANCE_CAS_CHART_FILE, GUIDANCE_FD_CHART_FILE], [autoguidance, AUTOGUIDANCE_CAS_CHART_FILE, AUTOGUIDANCE_FD_CHART_FILE]] as const) {
    if (sweep === undefined) continue;
    writeFileAtomic(join(dir, casFile), sweep.cas);
    writeFileAtomic(join(dir, frechetFile), sweep.frechet);
  }
  writeFileAtomic(paths.markdown, markdown);
  // The HTML last: its presence means the report folder is complete.
  writeFileAtomic(paths.html, html);
  return paths;
}
