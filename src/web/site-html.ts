// The page's HTML: the sampler panel's controls and canvases, and the report panel rendered from a report's
// results.json (Table 1 beside the paper's numbers, the charts and the figures, the forward processes first).
import { CAS_CHART_FILE, DDIM_CAS_CHART_FILE, DDIM_SPEED_CHART_FILE, SPEED_CHART_FILE, TABLE1_COLUMNS, escapeHtml as esc, fmtMeanStd, fmtSig } from '../report/render.ts';
import { PAPER_TABLE1, speedOf, type PaperResults } from '../report/results.ts';
import type { SiteManifest } from './page/manifest.ts';

export const PAGE_TITLE = 'Scale-space DDPMs in the browser';

function table1(r: PaperResults): string {
  const cas = (dataset: string, x0: 'none' | 'clip') => r.cas.find((c) => c.dataset === dataset && (dataset === 'real' ? c.x0 === null : c.x0 === x0));
  const casRows = TABLE1_COLUMNS.map(({ dataset, label }) => {
    const plain = cas(dataset, 'none');
    const clipped = dataset === 'real' ? plain : cas(dataset, 'clip');
    const paper = PAPER_TABLE1.cas[dataset];
    const cells = [fmtMeanStd(plain?.mean, plain?.std), fmtMeanStd(clipped?.mean, clipped?.std), fmtMeanStd(paper?.[0], paper?.[1])];
    return `<tr><th scope="row">${esc(label)}</th>${cells.map((c, i) => `<td${i === 2 ? ' class="paper"' : ''}>${esc(c)}</td>`).join('')}</tr>`;
  });
  const speedRows = TABLE1_COLUMNS.filter((c) => c.dataset !== 'real').map(({ dataset, label }) => {
    const pipeline = dataset as Exclude<typeof dataset, 'real'>;
    const cells = [fmtSig(speedOf(r, pipeline, 'none')?.secondsPerSample), fmtSig(speedOf(r, pipeline, 'clip')?.secondsPerSample), fmtSig(PAPER_TABLE1.secondsPerSample[pipeline])];
    return `<tr><th scope="row">${esc(label)}</th>${cells.map((c, i) => `<td${i === 2 ? ' class="paper"' : ''}>${esc(c)}</td>`).join('')}</tr>`;
  });
  const engine = r.speed.find((s) => s.pipeline === 'baseline')?.engine ?? 'libtorch';
  return `<div class="wide"><table id="table1">
<caption>CAS: mean ± std over the classifiers trained on each dataset, scored on the real test set</caption>
<thead><tr><th scope="col">Data</th><th scope="col">Plain sampling</th><th scope="col">x̂<sub>0</sub> clipped</th><th scope="col" class="paper">Paper</th></tr></thead>
<tbody>
${casRows.join('\n')}
</tbody></table></div>
<div class="wide"><table id="table1-speed">
<caption>Seconds per sample at batch size 1, model loading excluded</caption>
<thead><tr><th scope="col">Pipeline</th><th scope="col">Plain</th><th scope="col">x̂<sub>0</sub> clipped</th><th scope="col" class="paper">Paper (T4 GPU)</th></tr></thead>
<tbody>
${speedRows.join('\n')}
</tbody></table></div>
<p class="note">Ours: the ${esc(r.preset)} protocol on ${esc(r.machine.cpu)} (${r.machine.cores} cores; timings on ${esc(engine)}), ${esc(r.dataset)}.</p>`;
}

const CHARTS: readonly { file: string; caption: string }[] = [
  { file: CAS_CHART_FILE, caption: "CAS of each dataset, plain and x̂0-clipped sampling, beside the paper's (Figure 1)." },
  { file: SPEED_CHART_FILE, caption: "Seconds per sample at batch size 1, ours beside the paper's T4 GPU numbers." },
  { file: DDIM_CAS_CHART_FILE, caption: 'CAS of the baseline sampled with DDIM over fewer steps.' },
  { file: DDIM_SPEED_CHART_FILE, caption: 'Seconds per sample of the baseline with DDIM over fewer steps.' },
];

const figure = (file: string, caption: string) =>
  `<figure><img src="report/${esc(encodeURI(file))}" alt="${esc(caption)}" loading="lazy"><figcaption>${esc(caption)}</figcaption></figure>`;

/** The report panel; `files`: the report folder's files copied into the site. */
export function reportPanel(r: PaperResults, files: ReadonlySet<string>): string {
  const charts = CHARTS.filter((c) => files.has(c.file));
  const figures = r.figures.filter((f) => files.has(f.file));
  const forward = figures.filter((f) => f.file.startsWith('forward-'));
  const others = figures.filter((f) => !f.file.startsWith('forward-'));
  const toy = r.toy1d.flatMap((t) => [
    { file: t.forwardFigure, caption: `The 1-D study, data on {${t.support.join(', ')}}: forward process.` },
    { file: t.reverseFigure, caption: `The 1-D study, data on {${t.support.join(', ')}}: reverse process${t.clipped ? ' (x̂0 clipped)' : ''}.` },
  ]).filter((f) => files.has(f.file));
  return `<h2>Table 1, beside the paper</h2>
${table1(r)}
${charts.length > 0 ? `<h2>Charts</h2>\n<div class="figures">${charts.map((c) => figure(c.file, c.caption)).join('\n')}</div>` : ''}
${forward.length > 0 ? `<h2>The forward process</h2>\n<div class="figures">${forward.map((f) => figure(f.file, f.caption)).join('\n')}</div>` : ''}
${others.length > 0 ? `<h2>Reverse processes and samples</h2>\n<div class="figures">${others.map((f) => figure(f.file, f.caption)).join('\n')}</div>` : ''}
${toy.length > 0 ? `<h2>The 1-D study</h2>\n<div class="figures">${toy.map((f) => figure(f.file, f.caption)).join('\n')}</div>` : ''}
${files.has('report.html') ? '<p><a href="report/report.html">The full report</a> (every table, the experiments beyond the paper, the machine and the stages).</p>' : ''}`;
}

export function pageHtml(manifest: SiteManifest, results: PaperResults | undefined, reportFiles: ReadonlySet<string>): string {
  const models = Object.entries(manifest.models)
    .map(([name, m]) => `${name} ${m.config.imageSize}×${m.config.imageSize}, T = ${m.config.schedule.numTimesteps} (${esc(m.run)})`)
    .join('; ');
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(PAGE_TITLE)}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="style.css">
<link rel="modulepreload" href="app/main.js">
<script type="module" src="app/main.js"></script>
</head>
<body data-state="loading">
<header>
<h1>${esc(PAGE_TITLE)}</h1>
<p class="lead">Class-conditional diffusion models after <em>Scale-space DDPM training and inference</em>, sampled live on this device.</p>
<nav role="tablist">
<button type="button" role="tab" id="tab-sampler" aria-controls="panel-sampler" aria-selected="true">Sampler</button>
<button type="button" role="tab" id="tab-report" aria-controls="panel-report" aria-selected="false"${results === undefined ? ' disabled' : ''}>Report</button>
</nav>
</header>
<main>
<section id="panel-sampler" role="tabpanel" aria-labelledby="tab-sampler">
<form id="controls" novalidate>
<label>Pipeline <select id="pipeline"></select></label>
<label>Label <select id="label"></select></label>
<label class="check"><input type="checkbox" id="grid"> grid: every label</label>
<label>Per label <input id="rows" type="number" min="1" max="20" step="1" value="1"></label>
<label>Seed <input id="seed" type="number" min="0" max="4294967295" step="1" value="0"></label>
<label>Sampler <select id="sampler"><option value="ddpm">DDPM</option><option value="ddim">DDIM</option><option value="dpmpp-2m">DPM-Solver++(2M)</option></select></label>
<label>Steps <input id="steps" type="number" min="1" max="1000" step="1" value="10"></label>
<label>η <input id="eta" type="number" min="0" max="1" step="0.1" value="0"></label>
<label class="check"><input type="checkbox" id="clip" checked> <span>clip x̂<sub>0</sub></span></label>
<label title="classifier-free guidance scale w: 0 samples as trained, higher follows the label more closely at the cost of variety">Guidance <input id="guidance" type="number" min="0" max="10" step="0.5" value="0"></label>
<label title="guide only the steps whose noise level σ = √((1 − ᾱ)/ᾱ) is at most this (guidance at high noise costs variety); empty: every step">at σ ≤ <input id="guidance-sigma" type="number" min="0" step="0.5" placeholder="all"></label>
<label>Step delay <input id="delay" type="range" min="0" max="300" step="10" value="0"> <output id="delay-value">0 ms</output></label>
<button id="sample" type="submit">Sample</button>
</form>
<p id="backend" class="note">Loading the models…</p>
<p id="error" role="alert" hidden></p>
<div id="view">
<p id="stage-caption" class="note"></p>
<div class="process">
<figure><canvas id="xt" width="112" height="112"></canvas><figcaption>x<sub>t</sub></figcaption></figure>
<figure><canvas id="x0" width="112" height="112"></canvas><figcaption>x̂<sub>0</sub> predicted at this step</figcaption></figure>
</div>
<p id="step-info" class="note"></p>
<div class="results" id="results" hidden>
<figure id="lowres-figure" hidden><canvas id="lowres" width="112" height="112"></canvas><figcaption id="lowres-caption"></figcaption></figure>
<figure><canvas id="result" width="112" height="112"></canvas><figcaption id="result-caption">The sample</figcaption></figure>
</div>
<p id="status" aria-live="polite"></p>
</div>
<p class="note">Models: ${models}. Each is one ONNX graph per reverse step (network, scheduler update and x̂<sub>0</sub> clipping); the noise comes from a seeded generator in the page.</p>
</section>
<section id="panel-report" role="tabpanel" aria-labelledby="tab-report" hidden>
${results === undefined ? '<p>This site was built without a report.</p>' : reportPanel(results, reportFiles)}
</section>
</main>
</body>
</html>
`;
}
