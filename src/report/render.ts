// Markdown and self-contained HTML renderings of a paper reproduction's results. Both are built from
// the same section model, so they carry the same numbers; nothing here touches tensors.

import { PAPER_PIPELINES, type PaperPipeline } from '../pipelines/paper-pipelines.ts';
import type { BeyondGroup, CasDatasetName, CasResult, FidelityResult, OffRange, PaperResults, Table1X0, Toy1dResult } from './results.ts';
import { PAPER_TABLE1, speedOf } from './results.ts';
import { CAS_DATASETS, X0_NAMES, autoguidanceSweep, casLabel } from './charts.ts';

/** File names of the charts that writeReport puts beside the report. */
export const CAS_CHART_FILE = 'figure1-cas.svg';
export const SPEED_CHART_FILE = 'speed.svg';
export const DDIM_CAS_CHART_FILE = 'ddim-cas.svg';
export const DDIM_SPEED_CHART_FILE = 'ddim-speed.svg';
export const GUIDANCE_CAS_CHART_FILE = 'guidance-cas.svg';
export const GUIDANCE_FD_CHART_FILE = 'guidance-frechet.svg';
export const AUTOGUIDANCE_CAS_CHART_FILE = 'autoguidance-cas.svg';
export const AUTOGUIDANCE_FD_CHART_FILE = 'autoguidance-frechet.svg';

export const REPORT_TITLE = 'Scale-space DDPM training and inference: reproduction';

/** Table 1 column headers, in the paper's order. */
export const TABLE1_COLUMNS: readonly { dataset: CasDatasetName; label: string }[] = [
  { dataset: 'real', label: 'D ~ MNIST (real)' },
  { dataset: 'baseline', label: 'Baseline' },
  { dataset: 'small-upscaled', label: 'Small upscaled' },
  { dataset: 'cascaded', label: 'Cascaded' },
];

/** Table 1 row headers. */
export const TABLE1_ROWS = {
  none: 'CAS (plain sampling)',
  clip: 'CAS (x̂0-clipped sampling)',
  speed: 'Single-sample (s)',
} as const;

// ---------------------------------------------------------------------------------------------------
// Formatting

const isNum = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);

/** Accuracy-like numbers: three decimals. */
export function fmt3(x: number | null | undefined): string {
  return isNum(x) ? x.toFixed(3) : '—';
}

export function fmtMeanStd(mean: number | null | undefined, std: number | null | undefined): string {
  return `${fmt3(mean)} ± ${fmt3(std)}`;
}

/** Three significant digits without exponent notation for the usual ranges (0.0607, 1.23, 412). */
export function fmtSig(x: number | null | undefined): string {
  return isNum(x) ? String(Number(x.toPrecision(3))) : '—';
}

/** Durations: ms below a second, seconds below a minute, then min/h. */
export function fmtDuration(s: number | null | undefined): string {
  if (!isNum(s)) return '—';
  if (s < 1) return `${fmtSig(s * 1000)} ms`;
  if (s < 10) return `${fmtSig(s)} s`;
  if (s < 60) return `${s.toFixed(1)} s`;
  const total = Math.round(s);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const sec = total % 60;
  return h > 0 ? `${h} h ${String(m).padStart(2, '0')} min` : `${m} min ${String(sec).padStart(2, '0')} s`;
}

function fmtPercent(x: number | null | undefined): string {
  return isNum(x) ? `${(x * 100).toFixed(1)} %` : '—';
}

function fmtLoss(x: number | null | undefined): string {
  return isNum(x) ? String(Number(x.toPrecision(4))) : '—';
}

/** Escapes text for HTML element content and quoted attribute values. */
export function escapeHtml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

/** Escapes text for a Markdown table cell or paragraph: HTML-significant characters and pipes. */
function escapeMd(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
}

/** A relative file path as a link target: spaces and other unsafe characters percent-encoded. */
function fileUrl(file: string): string {
  return encodeURI(file.replace(/\\/g, '/'));
}

// ---------------------------------------------------------------------------------------------------
// Section model: a tiny document tree rendered twice, so Markdown and HTML cannot drift apart.

/** Inline text: plain strings are escaped; `code` renders as code. */
type Inline = string | { code: string };
type Block =
  | { kind: 'h'; level: 2 | 3; text: string; id?: string }
  | { kind: 'p'; parts: Inline[] }
  | { kind: 'note'; text: string }
  | { kind: 'table'; head: string[]; rows: string[][]; align?: ('l' | 'r')[] }
  | { kind: 'figure'; file: string; caption: string }
  | { kind: 'chart'; chart: 'cas' | 'speed'; caption: string }
  | { kind: 'code'; lines: string[] };

const NOT_RUN = (what: string): Block => ({ kind: 'note', text: `${what}: not run.` });

function casEntry(results: PaperResults, dataset: CasDatasetName, x0: Table1X0): CasResult | undefined {
  const of = results.cas.filter((c) => c.dataset === dataset);
  // Real data is not sampled: the same entry answers both CAS rows.
  if (dataset === 'real') return of[0];
  return of.find((c) => c.x0 === x0);
}

// The paper measured MNIST only: its numbers stand beside ours for MNIST alone.
const onPaperData = (r: PaperResults) => r.dataset.toLowerCase() === 'mnist';

function casCell(results: PaperResults, dataset: CasDatasetName, x0: Table1X0): string {
  const c = casEntry(results, dataset, x0);
  const [pm, ps] = PAPER_TABLE1.cas[dataset];
  const ours = c ? fmtMeanStd(c.mean, c.std) : 'N/A';
  return onPaperData(results) ? `${ours} (paper ${fmtMeanStd(pm, ps)})` : ours;
}

function speedCell(results: PaperResults, dataset: CasDatasetName): string {
  if (dataset === 'real') return 'N/A';
  const p = dataset as PaperPipeline;
  const s = speedOf(results, p);
  const ours = s ? fmtSig(s.secondsPerSample) : 'N/A';
  return onPaperData(results) ? `${ours} (paper ${PAPER_TABLE1.secondsPerSample[p]})` : ours;
}

function summaryBlocks(r: PaperResults): Block[] {
  const cpu = r.machine?.cpu ? ` on ${r.machine.cpu}${onDevice(r)}` : '';
  return [
    { kind: 'h', level: 2, text: 'Summary', id: 'summary' },
    {
      kind: 'p',
      parts: [
        'A reproduction of the paper “Scale-space DDPM training and inference” (Würtzen, 2023): a baseline DDPM, a small DDPM at half resolution ' +
          'whose samples are upscaled bilinearly, and a cascade of the small DDPM and an upscaler DDPM, compared by classification accuracy score (CAS) ' +
          'and sampling speed. Preset ',
        { code: r.preset },
        `, dataset ${r.dataset}, created ${r.createdAt}; total wall time ${fmtDuration(r.totalSeconds)}${cpu}.`,
      ],
    },
  ];
}

function table1Blocks(r: PaperResults): Block[] {
  const head = ['', ...TABLE1_COLUMNS.map((c) => (c.dataset === 'real' && !onPaperData(r) ? `D ~ ${r.dataset} (real)` : c.label))];
  const rows = [
    [TABLE1_ROWS.none, ...TABLE1_COLUMNS.map((c) => casCell(r, c.dataset, 'none'))],
    [TABLE1_ROWS.clip, ...TABLE1_COLUMNS.map((c) => casCell(r, c.dataset, 'clip'))],
    [TABLE1_ROWS.speed, ...TABLE1_COLUMNS.map((c) => speedCell(r, c.dataset))],
  ];
  return [
    { kind: 'h', level: 2, text: 'Table 1', id: 'table1' },
    { kind: 'table', head, rows },
    {
      kind: 'p',
      parts: [
        (onPaperData(r)
          ? 'Each cell: ours (mean ± std over classifiers), the paper’s value in parentheses. The paper reports a single CAS row without saying how it sampled, ' +
            'so its value stands beside both of ours; '
          : `Each cell: mean ± std over classifiers (the paper has no ${r.dataset} numbers); `) +
          'real data is not sampled, so its CAS appears in both rows. ' +
          `Single-sample times are seconds per sample at batch size 1 on this machine${onDevice(r)}; the paper’s were measured on a T4 GPU.`,
      ],
    },
  ];
}

function fmtOffRange(o: OffRange | undefined): string {
  return o === undefined ? '—' : `${fmtShare(o.pixels)} / ${fmtShare(o.samples)}`;
}

/** A share that is often exactly zero or tiny: says so rather than rounding to '0.0 %'. */
function fmtShare(x: number): string {
  return x === 0 ? '0' : x < 0.001 ? '< 0.1 %' : fmtPercent(x);
}

/** Where the generated sets left the data range before clamping, when their generation measured it. */
function offRangeBlocks(r: PaperResults): Block[] {
  const measured = r.cas.filter((c) => c.offRange !== undefined);
  if (measured.length === 0) return [];
  return [
    { kind: 'h', level: 3, text: 'Samples outside the data range', id: 'off-range' },
    {
      kind: 'table',
      head: ['generated data', 'pixels off by > ½ gray level', 'samples with a pixel off by > 0.1'],
      rows: measured.map((c) => [`${c.dataset}, ${X0_NAMES[c.x0 ?? 'none']} sampling`, fmtShare(c.offRange!.pixels), fmtShare(c.offRange!.samples)]),
    },
    {
      kind: 'p',
      parts: [
        'Measured on the last model’s output before the sets are clamped to [0, 1] and stored as 8-bit images (for “small upscaled”, on the 14×14 samples). ' +
          'x̂0 clipping and dynamic thresholding end inside the range by construction: their last step returns the constrained x̂0.',
      ],
    },
  ];
}

/** Fidelity cells: conditional accuracy, Fréchet distance, precision / recall. */
function fidelityCells(f: FidelityResult | undefined): string[] {
  return f === undefined ? ['—', '—', '—'] : [fmt3(f.conditionalAccuracy), f.frechetDistance.toFixed(1), `${fmt3(f.precision)} / ${fmt3(f.recall)}`];
}

const FIDELITY_HEAD = ['cond. accuracy', 'Fréchet distance', 'precision / recall'];

/** What CAS forgives, for Table 1's sets and the real floor. */
function fidelityBlocks(r: PaperResults): Block[] {
  const measured = r.cas.filter((c) => c.fidelity !== undefined);
  if (measured.length === 0) return [];
  const k = measured[0]!.fidelity!.k;
  return [
    { kind: 'h', level: 3, text: 'Fidelity: what CAS forgives', id: 'fidelity' },
    {
      kind: 'table',
      head: ['data', 'CAS', ...FIDELITY_HEAD],
      rows: measured.map((c) => [c.dataset === 'real' ? 'real training images (the floor)' : `${c.dataset}, ${X0_NAMES[c.x0 ?? 'none']} sampling`, fmtMeanStd(c.mean, c.std), ...fidelityCells(c.fidelity)]),
    },
    {
      kind: 'p',
      parts: [
        'Judged by the CAS network trained on the real training set (trained once per protocol): conditional accuracy is the share of a set’s images it labels as ' +
          'their conditioning label; the Fréchet distance compares Gaussians fitted to its 128 penultimate features (GELU outputs) of the set and of the real test ' +
          `set; precision and recall (Kynkäänniemi et al. 2019, k = ${k}) say how much of the set lies on the real data’s manifold in that space and how much of the ` +
          'real data the set covers. Each set is the pooled set CAS trained on; real data: the real anchor’s training images, whose distance to the test set is the floor.',
      ],
    },
  ];
}

function perClassBlocks(r: PaperResults): Block[] {
  const blocks: Block[] = [{ kind: 'h', level: 2, text: 'Class-wise CAS', id: 'per-class' }];
  if (r.cas.length === 0) return [...blocks, NOT_RUN('CAS')];
  const order = (c: CasResult): number => CAS_DATASETS.findIndex((d) => d.dataset === c.dataset) * 3 + (c.x0 === 'clip' ? 2 : c.x0 === 'none' ? 1 : 0);
  const sorted = [...r.cas].sort((a, b) => order(a) - order(b));
  const rows = sorted.map((c) => [
    casLabel(c),
    ...Array.from({ length: 10 }, (_, k) => fmtMeanStd(c.perClassMean?.[k], c.perClassStd?.[k])),
    fmtMeanStd(c.mean, c.std),
    String(c.accuracies?.length ?? 0),
    String(c.trainImages),
  ]);
  return [
    ...blocks,
    {
      kind: 'table',
      head: ['training data', ...Array.from({ length: 10 }, (_, k) => String(k)), 'all', 'classifiers', 'train images'],
      rows,
    },
    { kind: 'p', parts: ['Per-class accuracy on the real test set, mean ± std over the classifiers trained on each dataset.'] },
  ];
}

/** The engines the speed stage sampled on, in words. */
function speedEngines(r: PaperResults): string {
  const names = { libtorch: 'libtorch', onnxruntime: 'ONNX Runtime' } as const;
  return [...new Set(r.speed.map((s) => names[s.engine ?? 'libtorch']))].join(' and ');
}

function chartBlocks(r: PaperResults): Block[] {
  // Results that timed x̂0-clipped sampling too get a column for it.
  const clippedTimed = r.speed.some((s) => s.x0 === 'clip');
  const speedRows = PAPER_PIPELINES.map((p) => {
    const s = speedOf(r, p);
    const clipped = speedOf(r, p, 'clip');
    const paper = PAPER_TABLE1.secondsPerSample[p];
    return [
      p,
      s ? fmtDuration(s.secondsPerSample) : 'N/A',
      ...(clippedTimed ? [clipped ? fmtDuration(clipped.secondsPerSample) : 'N/A'] : []),
      s ? String(s.steps) : '—',
      s ? String(s.samples) : '—',
      fmtDuration(paper),
      s && isNum(s.secondsPerSample) ? `${fmtSig(s.secondsPerSample / paper)}×` : '—',
    ];
  });
  return [
    { kind: 'h', level: 2, text: 'Figure 1: class-wise CAS', id: 'figure1' },
    r.cas.length === 0
      ? NOT_RUN('CAS')
      : {
          kind: 'chart',
          chart: 'cas',
          caption:
            `Figure 1: class-wise CAS — accuracy per class of classifiers trained on each dataset and tested on real ${onPaperData(r) ? 'MNIST' : r.dataset}, ± std over classifiers ` +
            '(generated data: x̂0-clipped sampling where it was run, else plain).',
        },
    { kind: 'h', level: 2, text: 'Sampling speed', id: 'speed' },
    ...(r.speed.length === 0
      ? [NOT_RUN('Speed measurement')]
      : [
          { kind: 'chart', chart: 'speed', caption: `Seconds per sample at batch size 1 (model loading excluded; sampled on ${speedEngines(r)}), ours beside the paper’s T4 GPU numbers; log scale.` } as Block,
          { kind: 'table', head: ['pipeline', 'ours (s / sample)', ...(clippedTimed ? ['ours, x̂0 clipped'] : []), 'network evaluations', 'samples timed', 'paper (T4)', 'ours / paper'], rows: speedRows } as Block,
        ]),
  ];
}

function trainingBlocks(r: PaperResults): Block[] {
  const blocks: Block[] = [{ kind: 'h', level: 2, text: 'Trainings', id: 'training' }];
  if (r.training.length === 0) return [...blocks, NOT_RUN('Training')];
  const rows = r.training.map((t) => [t.model, String(t.seed), String(t.epochs), fmtLoss(t.finalLoss), fmtDuration(t.seconds), t.run]);
  return [...blocks, { kind: 'table', head: ['model', 'seed', 'epochs', 'final loss', 'time', 'run'], rows }];
}

function toyBlocks(r: PaperResults): Block[] {
  const blocks: Block[] = [{ kind: 'h', level: 2, text: '1-D study: sampling artifacts', id: 'toy1d' }];
  if (r.toy1d.length === 0) return [...blocks, NOT_RUN('1-D study')];
  const sup = (t: Toy1dResult): string => `{${t.support[0]}, ${t.support[1]}}`;
  const row = (t: Toy1dResult, sampling: string, e: { offSupport: number; shareNear: [number, number] }) => [
    sup(t),
    sampling,
    String(t.samples),
    `${e.offSupport} (${fmtPercent(t.samples > 0 ? e.offSupport / t.samples : NaN)}, tolerance ${t.tolerance})`,
    `${t.support[0]}: ${fmtPercent(e.shareNear[0])}, ${t.support[1]}: ${fmtPercent(e.shareNear[1])}`,
    fmtLoss(t.finalLoss),
  ];
  const rows = r.toy1d.flatMap((t) => [row(t, 'plain', t), ...(t.clipped ? [row(t, 'x̂0 clipped (= dynamic thresholding in 1-D)', t.clipped)] : [])]);
  const figures: Block[] = r.toy1d.flatMap((t) => [
    { kind: 'figure', file: t.forwardFigure, caption: `Forward-process trajectories, data on ${sup(t)}.` } as Block,
    { kind: 'figure', file: t.reverseFigure, caption: `Reverse-process trajectories of the trained model, data on ${sup(t)}.` } as Block,
  ]);
  return [
    ...blocks,
    {
      kind: 'p',
      parts: [
        'A DDPM trained on a two-point distribution: endpoints of the reverse process should land on one of the two support points, with equal shares. ' +
          'Off-support endpoints are farther than the tolerance from both points. The clipped rows sample the same model from the same noise with x̂0 clipped to the ' +
          'support’s interval at every step; with one value per sample, dynamic thresholding rescales x̂0 by max(1, |x̂0|), which is the same map.',
      ],
    },
    { kind: 'table', head: ['support', 'sampling', 'samples', 'off-support', 'share nearest each point', 'final loss'], rows },
    ...figures,
  ];
}

const BEYOND_GROUPS: readonly { group: BeyondGroup; title: string; intro: string; reference: [CasDatasetName, Table1X0][] }[] = [
  {
    group: 'conditioning',
    title: 'Conditioning augmentation for the upscaler',
    intro: 'The paper blames the cascade on the shift between the clean 14×14 images the upscaler is trained on and the small model’s samples it gets at inference. These upscalers were trained with Gaussian noise of a random level on their conditioning, the level given as an extra FiLM input (Ho et al. 2021), and sampled at the level shown.',
    reference: [['cascaded', 'none'], ['cascaded', 'clip']],
  },
  {
    group: 'thresholding',
    title: 'Domain constraint: dynamic thresholding',
    intro: 'Instead of clipping x̂0 to the pixel range at every step, dynamic thresholding (Saharia et al. 2022) rescales it by a per-sample percentile of its values when that exceeds the range.',
    reference: [['baseline', 'none'], ['baseline', 'clip'], ['small-upscaled', 'clip'], ['cascaded', 'clip']],
  },
  {
    group: 'ddim',
    title: 'Fewer steps: DDIM',
    intro: 'DDIM (Song et al. 2021) samples the baseline over a subsequence of its 30 training timesteps, deterministically (η = 0) or with DDPM-like noise (η = 1; over all 30 steps it is the DDPM sampler), with x̂0 as the network gives it or clipped to the pixel range at every step as in Table 1’s second row; seconds per sample at batch size 1 as in the speed table.',
    reference: [['baseline', 'none'], ['baseline', 'clip']],
  },
  {
    group: 'ema',
    title: 'EMA of the weights',
    intro: 'Baselines trained exactly as the others (predicting ε as the paper does, and v), keeping an exponential moving average of their weights, sampled from the average. The average’s batch-norm statistics are measured on its own weights (40 training batches before every checkpoint): those of the last iterate do not fit it. Keeping the average leaves the training bit for bit as it was, so the plain v-prediction rows (first step, budget, guidance) sample these same trainings with their trained weights.',
    reference: [['baseline', 'none'], ['baseline', 'clip']],
  },
  {
    group: 'first-step',
    title: 'The first reverse step',
    intro: 'With β at the last timestep capped at 0.999, the first reverse step of a noise-predicting model divides its error by √ᾱ_{T−1} ≈ 0.0035. Remedies from the literature: predicting v = √ᾱ ε − √(1 − ᾱ) x0 instead (Salimans & Ho 2022), whose x̂0 = √ᾱ x_t − √(1 − ᾱ) v̂ does not amplify the error; v-prediction with the schedule rescaled to zero terminal SNR (Lin et al. 2024); a lower cap on β_t; and DDIM with trailing timesteps, which starts at T−1 and never visits t = 0.',
    reference: [['baseline', 'none'], ['baseline', 'clip']],
  },
  {
    group: 'objective',
    title: 'The paper’s proposed training terms',
    intro: 'The paper’s §1.3 proposes a loss that nudges x̂0 into the image domain and training on the n-step error of the sampler instead of the 1-step error. The x̂0-domain loss adds ᾱ_t times the squared distance of x̂0 to the pixel range; the n-step loss rolls the model out n deterministic DDIM steps and adds the distance to where the true noise leads, on the noise scale.',
    reference: [['baseline', 'none'], ['baseline', 'clip']],
  },
  {
    group: 'budget',
    title: 'Beyond the paper’s budget',
    intro: 'The protocol keeps the paper’s 10 epochs and 122k-parameter U-Net; these baselines show what that budget costs: a U-Net with twice the channels, and a training three times as long (with v-prediction, also sampled from an average of the weights); and a cascade whose small model has twice the channels.',
    reference: [['baseline', 'none'], ['baseline', 'clip'], ['cascaded', 'clip']],
  },
  {
    group: 'guidance',
    title: 'Classifier-free guidance',
    intro: 'Models trained with the label replaced by a null label 10 % of the time, sampled with ε̃ = (1 + w) ε̂(label) − w ε̂(∅) (Ho & Salimans 2022) at every model of the pipeline, x̂0 clipped. w = 0 is the conditional model alone; larger w trades diversity (recall) for fidelity. The v-prediction rows guide models that predict v, which also removes the first step’s error amplification; the EMA rows sample such models from a moving average of their weights. A row guided at low noise levels only (σ_t = √((1 − ᾱ_t)/ᾱ_t) in the stated interval; Kynkäänniemi et al. 2024) keeps the diversity that guidance at high noise removes.',
    reference: [['baseline', 'clip'], ['small-upscaled', 'clip'], ['cascaded', 'clip']],
  },
  {
    group: 'autoguidance',
    title: 'Autoguidance',
    intro: 'A model guided by a weaker model of the same task instead of by its own prediction without the label (Karras et al. 2024): ε̃ = (1 + w) ε̂(label) − w ε̂_weak(label). The wide models are guided by the paper-width models of the same recipe and seed (for the cascade, its small model; its upscaler is unguided), the paper-width v-prediction baseline by a U-Net of its recipe half as wide. Where classifier-free guidance buys fidelity with diversity, this pushes the samples away from the weaker model’s errors and keeps both.',
    reference: [['baseline', 'clip'], ['small-upscaled', 'clip'], ['cascaded', 'clip']],
  },
];

function beyondBlocks(r: PaperResults): Block[] {
  if (r.beyond === undefined) return [];
  const blocks: Block[] = [{ kind: 'h', level: 2, text: 'Beyond the paper', id: 'beyond' }];
  for (const g of BEYOND_GROUPS) {
    const own = r.beyond.filter((b) => b.group === g.group);
    if (own.length === 0) continue;
    const timed = own.some((b) => b.secondsPerSample !== undefined);
    const ranged = own.some((b) => b.offRange !== undefined);
    const judged = own.some((b) => b.fidelity !== undefined);
    const refs = g.reference.map(([dataset, x0]) => {
      const c = casEntry(r, dataset, x0);
      const speed = dataset === 'real' ? undefined : speedOf(r, dataset, x0);
      const row = [`${dataset}, ${X0_NAMES[x0]} sampling (Table 1)`, c ? fmtMeanStd(c.mean, c.std) : 'N/A'];
      if (timed) row.push(speed ? `${fmtSig(speed.secondsPerSample)} (${speed.steps} steps)` : '—');
      if (ranged) row.push(fmtOffRange(c?.offRange));
      if (judged) row.push(...fidelityCells(c?.fidelity));
      return row;
    });
    const rows = own.map((b) => {
      const row = [b.label, fmtMeanStd(b.cas.mean, b.cas.std)];
      if (timed) row.push(b.secondsPerSample === undefined ? '—' : `${fmtSig(b.secondsPerSample)} (${b.steps} steps)`);
      if (ranged) row.push(fmtOffRange(b.offRange));
      if (judged) row.push(...fidelityCells(b.fidelity));
      return row;
    });
    const head = ['dataset', 'CAS', ...(timed ? ['s / sample'] : []), ...(ranged ? ['off range: pixels / samples'] : []), ...(judged ? FIDELITY_HEAD : [])];
    blocks.push(
      { kind: 'h', level: 3, text: g.title },
      { kind: 'p', parts: [g.intro] },
      { kind: 'table', head, rows: [...refs, ...rows] },
    );
    if (g.group === 'ddim') {
      blocks.push(
        { kind: 'figure', file: DDIM_CAS_CHART_FILE, caption: 'Baseline CAS against the number of network evaluations: DDIM at each η, plain and x̂0-clipped, and the 30-step DDPM of Table 1.' },
        { kind: 'figure', file: DDIM_SPEED_CHART_FILE, caption: 'Milliseconds per baseline sample at batch size 1 against the number of network evaluations.' },
      );
    }
    if (g.group === 'guidance') {
      blocks.push(
        { kind: 'figure', file: GUIDANCE_CAS_CHART_FILE, caption: 'CAS against the guidance scale w, per pipeline, with ε- and with v-prediction, the latter also sampled from an EMA of its weights (x̂0 clipped).' },
        { kind: 'figure', file: GUIDANCE_FD_CHART_FILE, caption: 'Fréchet distance in the judge’s features against the guidance scale w, per pipeline, with ε- and with v-prediction, the latter also sampled from an EMA of its weights (x̂0 clipped).' },
      );
    }
    if (g.group === 'autoguidance' && autoguidanceSweep(r).length > 0) {
      blocks.push(
        { kind: 'figure', file: AUTOGUIDANCE_CAS_CHART_FILE, caption: 'CAS against the autoguidance scale w (of the small model, for a cascade), per model and guide sampled at several scales; w = 0 is the same sampling unguided (x̂0 clipped).' },
        { kind: 'figure', file: AUTOGUIDANCE_FD_CHART_FILE, caption: 'Fréchet distance in the judge’s features against the autoguidance scale w, per model and guide sampled at several scales; w = 0 is the same sampling unguided (x̂0 clipped).' },
      );
    }
  }
  return blocks;
}

function figureBlocks(r: PaperResults): Block[] {
  const blocks: Block[] = [{ kind: 'h', level: 2, text: 'Figures', id: 'figures' }];
  if (r.figures.length === 0) return [...blocks, NOT_RUN('Figures')];
  return [...blocks, ...r.figures.map((f): Block => ({ kind: 'figure', file: f.file, caption: f.caption }))];
}

/** ' (on cuda)' when the protocol ran on an accelerator, else nothing. */
function onDevice(r: PaperResults): string {
  const d = r.machine?.device;
  return d === undefined || d === 'cpu' ? '' : ` (on ${d})`;
}

function machineBlocks(r: PaperResults): Block[] {
  const m = r.machine;
  const blocks: Block[] = [{ kind: 'h', level: 2, text: 'Machine', id: 'machine' }];
  blocks.push(
    m
      ? {
          kind: 'table',
          head: ['', ''],
          rows: [
            ['device', m.device ?? 'cpu'],
            ['CPU', m.cpu],
            ['cores', String(m.cores)],
            ['threads', String(m.threads)],
            ['libtorch', m.libtorch],
            ...(m.onnxruntime === undefined ? [] : [['ONNX Runtime', m.onnxruntime]]),
            ['node', m.node],
            ['OS', m.os],
          ],
        }
      : NOT_RUN('Machine description'),
  );
  const settings = Object.entries(r.settings ?? {});
  if (settings.length > 0) {
    blocks.push({ kind: 'h', level: 3, text: 'Settings' }, { kind: 'table', head: ['setting', 'value'], rows: settings.map(([k, v]) => [k, String(v)]) });
  }
  return blocks;
}

function stageBlocks(r: PaperResults): Block[] {
  const blocks: Block[] = [{ kind: 'h', level: 2, text: 'Stages', id: 'stages' }];
  if (r.stages.length === 0) return [...blocks, NOT_RUN('Stages')];
  const rows = r.stages.map((s) => [s.name, fmtDuration(s.seconds), `${s.status}${s.reason === undefined ? (s.status === 'cached' ? ' (same key)' : '') : `: ${s.reason}`}${s.ranSeconds === undefined ? '' : `; ran in ${fmtDuration(s.ranSeconds)}`}`]);
  const cached = r.stages.filter((s) => s.status === 'cached').length;
  return [
    ...blocks,
    { kind: 'table', head: ['stage', 'wall time', 'status'], rows: [...rows, ['total', fmtDuration(r.totalSeconds), `${r.stages.length - cached} ran, ${cached} cached`]] },
  ];
}

function reproduceBlocks(): Block[] {
  return [
    { kind: 'h', level: 2, text: 'How to reproduce', id: 'reproduce' },
    {
      kind: 'p',
      parts: [
        'Run the whole pipeline (trainings, sampling, CAS, speed, 1-D study, this report). Each stage is cached under a key of its settings, its inputs’ content hashes and its code version: ' +
          'an interrupted run resumes, and a changed setting or input reruns what it affects. ',
        'The quick preset trains briefly and evaluates fewer samples, for a check in minutes rather than hours.',
      ],
    },
    { kind: 'code', lines: ['ssddpm paper          # full reproduction', 'ssddpm paper --quick  # quick preset'] },
  ];
}

function documentBlocks(r: PaperResults): Block[] {
  return [
    ...summaryBlocks(r),
    ...table1Blocks(r),
    ...offRangeBlocks(r),
    ...fidelityBlocks(r),
    ...perClassBlocks(r),
    ...chartBlocks(r),
    ...beyondBlocks(r),
    ...trainingBlocks(r),
    ...toyBlocks(r),
    ...figureBlocks(r),
    ...machineBlocks(r),
    ...stageBlocks(r),
    ...reproduceBlocks(),
  ];
}

// ---------------------------------------------------------------------------------------------------
// Markdown

function mdInline(parts: Inline[]): string {
  return parts.map((p) => (typeof p === 'string' ? escapeMd(p) : `\`${p.code.replace(/`/g, "'")}\``)).join('');
}

function mdBlock(b: Block): string {
  switch (b.kind) {
    case 'h':
      return `${'#'.repeat(b.level)} ${escapeMd(b.text)}`;
    case 'p':
      return mdInline(b.parts);
    case 'note':
      return `_${escapeMd(b.text)}_`;
    case 'table': {
      const row = (cells: string[]): string => `| ${cells.map(escapeMd).join(' | ')} |`;
      return [row(b.head), `|${b.head.map(() => ' --- ').join('|')}|`, ...b.rows.map(row)].join('\n');
    }
    case 'figure':
      return `![${escapeMd(b.caption).replace(/[[\]]/g, '\\$&')}](<${fileUrl(b.file)}>)\n\n_${escapeMd(b.caption)}_`;
    case 'chart': {
      const file = b.chart === 'cas' ? CAS_CHART_FILE : SPEED_CHART_FILE;
      return `![${escapeMd(b.caption).replace(/[[\]]/g, '\\$&')}](${file})\n\n_${escapeMd(b.caption)}_`;
    }
    case 'code':
      return ['```sh', ...b.lines, '```'].join('\n');
  }
}

/** The report as Markdown; the charts are linked as the SVG files that writeReport writes beside it. */
export function renderMarkdown(results: PaperResults): string {
  return `# ${escapeMd(REPORT_TITLE)}\n\n${documentBlocks(results).map(mdBlock).join('\n\n')}\n`;
}

// ---------------------------------------------------------------------------------------------------
// HTML

const CSS = `
body { font-family: 'DejaVu Sans', system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ddd; padding-bottom: .2em; }
table { border-collapse: collapse; margin: 1em 0; font-size: .9em; }
th, td { border: 1px solid #ccc; padding: .3em .6em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } tbody tr:nth-child(even) { background: #fafafa; }
.wide { overflow-x: auto; }
figure { margin: 1.5em 0; } figure img, figure svg { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: .9em; color: #555; margin-top: .4em; }
.note { color: #777; font-style: italic; }
code, pre { font-family: 'DejaVu Sans Mono', monospace; background: #f4f4f4; } pre { padding: .6em; }
`.trim();

function htmlInline(parts: Inline[]): string {
  return parts.map((p) => (typeof p === 'string' ? escapeHtml(p) : `<code>${escapeHtml(p.code)}</code>`)).join('');
}

function htmlBlock(b: Block, charts: { cas: string; speed: string }): string {
  switch (b.kind) {
    case 'h':
      return `<h${b.level}${b.id ? ` id="${escapeHtml(b.id)}"` : ''}>${escapeHtml(b.text)}</h${b.level}>`;
    case 'p':
      return `<p>${htmlInline(b.parts)}</p>`;
    case 'note':
      return `<p class="note">${escapeHtml(b.text)}</p>`;
    case 'table': {
      const head = b.head.every((h) => h === '') ? '' : `<thead><tr>${b.head.map((h) => `<th>${escapeHtml(h)}</th>`).join('')}</tr></thead>`;
      const body = b.rows.map((r) => `<tr>${r.map((c, i) => (i === 0 ? `<th>${escapeHtml(c)}</th>` : `<td>${escapeHtml(c)}</td>`)).join('')}</tr>`).join('\n');
      return `<div class="wide"><table>${head}<tbody>\n${body}\n</tbody></table></div>`;
    }
    case 'figure':
      return `<figure><img src="${escapeHtml(fileUrl(b.file))}" alt="${escapeHtml(b.caption)}" loading="lazy"><figcaption>${escapeHtml(b.caption)}</figcaption></figure>`;
    case 'chart': {
      // Chart SVG comes from our own renderer (vega escapes its text), so it is inlined as markup.
      const svg = charts[b.chart];
      const body = svg.trimStart().startsWith('<svg') ? svg : `<p class="note">${escapeHtml('Chart not available.')}</p>`;
      return `<figure>${body}<figcaption>${escapeHtml(b.caption)}</figcaption></figure>`;
    }
    case 'code':
      return `<pre><code>${escapeHtml(b.lines.join('\n'))}</code></pre>`;
  }
}

/** The report as one self-contained HTML page: inline CSS and charts; figures referenced by relative path. */
export function renderHtml(results: PaperResults, charts: { cas: string; speed: string }): string {
  const body = documentBlocks(results)
    .map((b) => htmlBlock(b, charts))
    .join('\n');
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(REPORT_TITLE)}</title>
<style>
${CSS}
</style>
</head>
<body>
<h1>${escapeHtml(REPORT_TITLE)}</h1>
${body}
</body>
</html>
`;
}
