/// <reference lib="dom" />
// The browser page (`ssddpm web`, `ssddpm serve`) in headless Chromium: it loads without console errors, every
// control works, each pipeline draws every label recognisably (a classifier trained on real MNIST reads the
// canvases back), it samples what Node's ONNX Runtime engine samples from the same noise, and a missing or
// corrupt model, or a run that does not exist, gives a clear message.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import './helpers.ts';
import { loadDataset } from '../src/data/datasets.ts';
import { normalize, upscale } from '../src/data/tensor-dataset.ts';
import { linearStep } from '../src/diffusion/step-coefficients.ts';
import { trainClassifier, type TrainedClassifier } from '../src/eval/classifier.ts';
import { sha256 } from '../src/io/content-hash.ts';
import { softmax } from '../src/nn/functional.ts';
import { IO } from '../src/onnx/step-graph.ts';
import { disposePipeline, loadPipeline, samplePipeline } from '../src/pipelines/pipeline.ts';
import { Generator } from '../src/torch/generator.ts';
import { inferenceMode } from '../src/torch/grad-mode.ts';
import { tensor } from '../src/torch/ops/creation.ts';
import { randn } from '../src/torch/ops/random.ts';
import { tidy } from '../src/torch/scope.ts';
import { MANIFEST_FILE, type SiteManifest } from '../src/web/page/manifest.ts';
import { GRAPH_IO } from '../src/web/page/protocol.ts';
import { NoiseRng } from '../src/web/page/rng.ts';
import { modelSchedule, toModelSpace, toPixelSpace, upscaleBilinear } from '../src/web/page/sampler.ts';
import { DEFAULT_GUIDED_RUNS, DEFAULT_RUNS, buildSite, type SiteBuild } from '../src/web/site.ts';
import { serveSite, type SiteServer } from '../src/web/serve.ts';

const repo = fileURLToPath(new URL('..', import.meta.url));
/** Debian's chromium (scripts/setup-debian.sh installs it); CHROMIUM overrides. */
export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const root = mkdtempSync(join(tmpdir(), 'ssddpm-web-test-'));
const siteDir = join(root, 'site');
let site: SiteBuild;
let server: SiteServer;
let browser: Browser;
const servers: SiteServer[] = [];

before(async () => {
  assert.ok(existsSync(CHROMIUM), `no browser at ${CHROMIUM}: install Debian's chromium (scripts/setup-debian.sh) or set CHROMIUM`);
  site = await buildSite(siteDir);
  server = await serveSite(siteDir, { port: 0 });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
});

after(async () => {
  await browser?.close();
  for (const s of [server, ...servers]) await s?.close();
  rmSync(root, { recursive: true, force: true });
});

interface Watched {
  page: Page;
  errors: string[];
}

/** A fresh page that records console errors and uncaught exceptions. */
async function openPage(url: string): Promise<Watched> {
  const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
  const errors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(url);
  return { page, errors };
}

/** Clicks Sample and waits for the samples (or an error). */
async function sampleInPage(page: Page, timeout = 60_000): Promise<void> {
  await page.waitForFunction(() => document.body.dataset.state !== 'sampling' && document.body.dataset.state !== 'loading');
  await page.click('#sample');
  await page.waitForFunction(() => document.body.dataset.state === 'done' || !document.getElementById('error')!.hidden, null, { timeout });
  assert.equal(await page.locator('#error').isHidden(), true, await page.locator('#error').textContent() ?? '');
}

/** The samples drawn on a canvas, read back: [n, size, size] grey bytes (the centre of each drawn pixel). */
async function readCanvas(page: Page, id: string): Promise<{ n: number; size: number; cols: number; images: Uint8Array }> {
  const r = await page.evaluate((id) => {
    const c = document.getElementById(id) as HTMLCanvasElement;
    const { n, size, cols, scale } = c.dataset;
    const [N, S, C, k] = [Number(n), Number(size), Number(cols), Number(scale)];
    const data = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
    const out: number[] = [];
    for (let i = 0; i < N; i++) {
      const ox = (i % C) * S * k;
      const oy = Math.floor(i / C) * S * k;
      for (let y = 0; y < S; y++) for (let x = 0; x < S; x++) out.push(data[4 * ((oy + y * k + (k >> 1)) * c.width + ox + x * k + (k >> 1))]!);
    }
    return { n: N, size: S, cols: C, images: out };
  }, id);
  return { ...r, images: Uint8Array.from(r.images) };
}

test('the bundle holds the page, onnxruntime-web and the pure diffusion modules only (no libtorch)', () => {
  const sources = site.bundleInputs.filter((p) => p.startsWith('src/'));
  const allowed = (p: string) => p.startsWith('src/web/page/') || p === 'src/diffusion/schedule.ts' || p === 'src/diffusion/step-coefficients.ts';
  assert.deepEqual(sources.filter((p) => !allowed(p)), []);
  assert.ok(sources.includes('src/diffusion/step-coefficients.ts'), 'the page steps with the toolkit\'s coefficients');
  assert.deepEqual(site.bundleInputs.filter((p) => !p.startsWith('src/') && !p.startsWith('node_modules/onnxruntime-web/')), []);
  for (const f of readdirSync(join(siteDir, 'app')).filter((f) => f.endsWith('.js'))) {
    const js = readFileSync(join(siteDir, 'app', f), 'utf8');
    assert.doesNotMatch(js, /torch_binding|node-gyp-build|node:fs/, f);
  }
  // The page's graph names are the exporter's.
  for (const [k, v] of Object.entries(GRAPH_IO)) assert.equal(v, IO[k as keyof typeof IO], k);
});

test("the page's arithmetic is Node's: bilinear upscale, pixel and model space, step coefficients", () => {
  const rng = new NoiseRng(1);
  const low = Float32Array.from({ length: 2 * 14 * 14 }, () => rng.uniform());
  const expected = tidy(() => upscale(tensor(low, { shape: [2, 1, 14, 14] }), 28).data() as Float32Array);
  const got = upscaleBilinear(low, 2, 14, 28);
  assert.ok(got.every((v, i) => Math.abs(v - expected[i]!) <= 1e-6), 'align_corners = false, as libtorch');
  const norm = { mean: 0.1315, std: 0.3089 };
  assert.ok(toPixelSpace(toModelSpace(low, norm), norm).every((v, i) => Math.abs(v - low[i]!) <= 1e-6));
  const manifest = site.manifest;
  const p = loadPipeline({ runs: [DEFAULT_RUNS.small, DEFAULT_RUNS.upscaler], engine: 'onnxruntime' });
  try {
    for (const [k, m] of p.models.entries()) {
      const siteModel = manifest.models[k === 0 ? 'small' : 'upscaler']!;
      for (const opts of [{ sampler: 'ddpm' as const, clip: true }, { sampler: 'ddpm' as const, clip: false }, { sampler: 'ddim' as const, steps: 7, eta: 0.3, clip: true }, { sampler: 'dpmpp-2m' as const, steps: 7, clip: true }]) {
        const scheduler = m.samplingScheduler(opts);
        const page = modelSchedule(siteModel, opts);
        assert.deepEqual(page.map((s) => s.t), Array.from(scheduler.timesteps));
        for (const { t, scalars } of page) {
          assert.deepEqual({ ...scalars, clipMin: undefined, clipMax: undefined }, { ...linearStep(scheduler.stepCoefficients(t), opts.clip), clipMin: undefined, clipMax: undefined });
          assert.deepEqual([scalars.clipMin, scalars.clipMax], opts.clip ? m.dataRange : [-Infinity, Infinity]);
        }
        scheduler.dispose();
      }
    }
  } finally {
    disposePipeline(p);
  }
});

test("the page's seeded noise: the same seed gives the same draws, and they are standard normal", () => {
  const a = new NoiseRng(7).randn(100_000);
  assert.deepEqual(new NoiseRng(7).randn(1000), a.subarray(0, 1000));
  assert.notDeepEqual(new NoiseRng(8).randn(1000), a.subarray(0, 1000));
  const mean = a.reduce((s, v) => s + v, 0) / a.length;
  const std = Math.sqrt(a.reduce((s, v) => s + (v - mean) ** 2, 0) / a.length);
  assert.ok(Math.abs(mean) < 0.01 && Math.abs(std - 1) < 0.01, `mean ${mean}, std ${std}`);
  assert.ok(a.every(Number.isFinite));
  assert.throws(() => new NoiseRng(-1), /seed must be an integer in 0\.\.4294967295/);
  assert.throws(() => new NoiseRng(2 ** 32), /seed/);
});

test('the site: manifest, models, runtime files and report, served with COOP/COEP and the right MIME types', async () => {
  const manifest = JSON.parse(readFileSync(join(siteDir, MANIFEST_FILE), 'utf8')) as SiteManifest;
  // The guided pipelines first (the page opens on them), each at its low-noise recipe: DDIM, a scale at σ_t ≤ a bound.
  assert.deepEqual(
    manifest.pipelines.map((p) => [p.name, p.sampler, p.guidance, p.guidanceSigma]),
    [
      ['baseline-guided', 'ddim', 3, 3], ['small-upscaled-guided', 'ddim', 2, 2], ['cascaded-guided', 'ddim', 2, 1],
      ['baseline', undefined, undefined, undefined], ['small-upscaled', undefined, undefined, undefined], ['cascaded', undefined, undefined, undefined],
    ],
  );
  assert.deepEqual(Object.keys(manifest.models).sort(), ['baseline', 'baseline-guided', 'small', 'small-guided', 'upscaler', 'upscaler-guided']);
  for (const [name, m] of Object.entries(manifest.models)) {
    assert.equal(sha256(readFileSync(join(siteDir, m.file))), m.sha256, name);
    assert.equal(m.betas.length, m.config.schedule.numTimesteps);
    const guided = name.endsWith('-guided');
    const kind = name.replace('-guided', '') as keyof typeof DEFAULT_RUNS;
    assert.equal(m.run, (guided ? DEFAULT_GUIDED_RUNS : DEFAULT_RUNS)[kind]);
    assert.equal(m.config.labelDropout !== undefined, guided, name);
  }
  const expect: [string, string][] = [
    ['', 'text/html'],
    ['app/main.js', 'text/javascript'],
    ['app/worker.js', 'text/javascript'],
    ['style.css', 'text/css'],
    ['manifest.json', 'application/json'],
    ['ort/ort-wasm-simd-threaded.wasm', 'application/wasm'],
    ['ort/ort-wasm-simd-threaded.mjs', 'text/javascript'],
    ['models/baseline.onnx', 'application/octet-stream'],
    ['report/figure1-cas.svg', 'image/svg+xml'],
    ['report/forward-baseline.png', 'image/png'],
  ];
  for (const [path, type] of expect) {
    const r = await fetch(server.url + path);
    assert.equal(r.status, 200, path);
    assert.ok(r.headers.get('content-type')!.startsWith(type), `${path}: ${r.headers.get('content-type')}`);
    assert.equal(r.headers.get('cross-origin-opener-policy'), 'same-origin');
    assert.equal(r.headers.get('cross-origin-embedder-policy'), 'require-corp');
    await r.arrayBuffer();
  }
  const again = await fetch(server.url + 'models/baseline.onnx', { headers: { 'If-None-Match': (await fetch(server.url + 'models/baseline.onnx', { method: 'HEAD' })).headers.get('etag')! } });
  assert.equal(again.status, 304);
  assert.equal((await fetch(server.url + 'nothing-here.js')).status, 404);
  assert.notEqual((await fetch(server.url + '..%2Fpackage.json')).status, 200);
  // Nothing comes from elsewhere: no absolute URLs in the page.
  assert.doesNotMatch(readFileSync(join(siteDir, 'index.html'), 'utf8'), /(src|href)="(https?:)?\/\//);
});

test('the page loads without console errors, samples on load and says it runs on WebAssembly', async () => {
  const { page, errors } = await openPage(server.url);
  await page.waitForFunction(() => document.body.dataset.state === 'done', null, { timeout: 30_000 });
  const first = await page.evaluate(() => (window as unknown as { ssddpmTest: { firstSampleMs: number } }).ssddpmTest.firstSampleMs);
  console.log(`first sample visible ${first.toFixed(0)} ms after the page started loading (nothing cached)`);
  assert.match((await page.textContent('#backend'))!, /WebAssembly/);
  assert.equal(await page.getAttribute('#backend', 'data-backend'), 'wasm');
  assert.equal(await page.evaluate(() => self.crossOriginIsolated), true, 'served cross-origin isolated');
  assert.match((await page.textContent('#status'))!, /30 network evaluations/);
  const result = await readCanvas(page, 'result');
  assert.equal(result.n, 1);
  assert.ok(result.images.some((v) => v > 128), 'the sample is drawn');
  assert.deepEqual(errors, []);
  await page.close();
});

test('each control works: label, seed, sampler, steps, η, clipping, delay, pipeline, guidance, grid, tabs', async () => {
  const { page, errors } = await openPage(`${server.url}?autostart=0`);
  await page.waitForFunction(() => document.body.dataset.state === 'ready');
  // The page opens on a guided pipeline at its recipe (DDIM over every step, its scale and bound); the paper's
  // models take no guidance and start with DDPM.
  assert.equal(await page.inputValue('#pipeline'), 'baseline-guided');
  assert.deepEqual(await Promise.all(['#sampler', '#steps', '#eta', '#guidance', '#guidance-sigma'].map((id) => page.inputValue(id))), ['ddim', '30', '0', '3', '3']);
  await page.selectOption('#pipeline', 'baseline');
  assert.equal(await page.isDisabled('#guidance'), true);
  assert.equal(await page.inputValue('#sampler'), 'ddpm');
  // The URL may choose the pipeline and its scale.
  const linked = await openPage(`${server.url}?autostart=0&pipeline=cascaded-guided&guidance=2.5`);
  await linked.page.waitForFunction(() => document.body.dataset.state === 'ready');
  assert.deepEqual([await linked.page.inputValue('#pipeline'), await linked.page.inputValue('#guidance')], ['cascaded-guided', '2.5']);
  assert.deepEqual(linked.errors, []);
  await linked.page.close();
  // DDPM takes every step: steps and η are DDIM's.
  assert.equal(await page.isDisabled('#steps'), true);
  assert.equal(await page.isDisabled('#eta'), true);
  await page.selectOption('#label', '7');
  await page.fill('#seed', '3');
  await sampleInPage(page);
  assert.match((await page.textContent('#result-caption'))!, /label 7/);
  assert.match((await page.textContent('#step-info'))!, /step 30\/30, t = 0/);
  const a = await readCanvas(page, 'result');
  await sampleInPage(page);
  assert.deepEqual(await readCanvas(page, 'result'), a, 'the same seed gives the same sample');
  await page.fill('#seed', '4');
  await sampleInPage(page);
  assert.notDeepEqual((await readCanvas(page, 'result')).images, a.images, 'another seed, another sample');
  await page.selectOption('#label', '1');
  await page.fill('#seed', '3');
  await sampleInPage(page);
  assert.notDeepEqual((await readCanvas(page, 'result')).images, a.images, 'another label, another sample');
  // x̂0 clipping changes the sample.
  await page.selectOption('#label', '7');
  await page.uncheck('#clip');
  await sampleInPage(page);
  assert.notDeepEqual((await readCanvas(page, 'result')).images, a.images, 'without clipping');
  await page.check('#clip');
  // DDIM, 5 steps, η = 0.5, shown at 100 ms per step.
  await page.selectOption('#sampler', 'ddim');
  assert.equal(await page.isDisabled('#steps'), false);
  await page.fill('#steps', '5');
  await page.fill('#eta', '0.5');
  await page.fill('#delay', '100');
  assert.equal(await page.textContent('#delay-value'), '100 ms');
  const t0 = Date.now();
  await sampleInPage(page);
  assert.ok(Date.now() - t0 >= 500, 'the animation waits the step delay');
  assert.match((await page.textContent('#step-info'))!, /step 5\/5, t = 0/);
  assert.match((await page.textContent('#status'))!, /5 network evaluations/);
  await page.fill('#delay', '0');
  // A bad value is reported, not sampled.
  await page.fill('#eta', '2');
  await page.click('#sample');
  await page.waitForFunction(() => !document.getElementById('error')!.hidden);
  assert.match((await page.textContent('#error'))!, /η must be in \[0, 1\]/);
  await page.fill('#eta', '0');
  // DPM-Solver++(2M): its steps, no η.
  await page.selectOption('#sampler', 'dpmpp-2m');
  assert.deepEqual([await page.isDisabled('#steps'), await page.isDisabled('#eta')], [false, true]);
  await sampleInPage(page);
  assert.match((await page.textContent('#status'))!, /5 network evaluations/);
  await page.selectOption('#sampler', 'ddpm');
  // Guidance: the scale changes the sample, and a bad one is reported.
  await page.selectOption('#pipeline', 'baseline-guided');
  assert.equal(await page.isDisabled('#guidance'), false);
  await sampleInPage(page);
  assert.match((await page.textContent('#result-caption'))!, /guided .*label 7, 28×28, guidance w = 3 at σ ≤ 3$/);
  assert.match((await page.textContent('#status'))!, /30 network evaluations/);
  const guided = await readCanvas(page, 'result');
  await page.fill('#guidance', '0');
  await sampleInPage(page);
  assert.notDeepEqual((await readCanvas(page, 'result')).images, guided.images, 'another guidance scale, another sample');
  // Guided at low noise only: neither the unguided nor the fully guided sample; a bad bound is reported.
  await page.fill('#guidance', '1');
  await page.fill('#guidance-sigma', '1');
  await sampleInPage(page);
  assert.match((await page.textContent('#result-caption'))!, /guidance w = 1 at σ ≤ 1$/);
  assert.notDeepEqual((await readCanvas(page, 'result')).images, guided.images, 'guidance at low noise only, another sample');
  await page.fill('#guidance-sigma', '-1');
  await page.click('#sample');
  await page.waitForFunction(() => !document.getElementById('error')!.hidden);
  assert.match((await page.textContent('#error'))!, /noise level to guide up to must be a number > 0 \(or empty: every step\), got '-1'/);
  await page.fill('#guidance-sigma', '');
  await page.fill('#guidance', '-1');
  await page.click('#sample');
  await page.waitForFunction(() => !document.getElementById('error')!.hidden);
  assert.match((await page.textContent('#error'))!, /guidance scale must be a number ≥ 0, got '-1'/);
  await page.fill('#guidance', '3');
  await page.selectOption('#pipeline', 'cascaded-guided');
  assert.deepEqual(await Promise.all(['#sampler', '#steps', '#guidance', '#guidance-sigma'].map((id) => page.inputValue(id))), ['ddim', '20', '2', '1'], 'each pipeline starts at its own recipe');
  // The cascade: the 14×14 stage, then the upscaler.
  await page.selectOption('#pipeline', 'cascaded');
  await sampleInPage(page);
  assert.match((await page.textContent('#stage-caption'))!, /Stage 2 of 2: upscaler model, 28×28, 10 steps/);
  assert.equal((await readCanvas(page, 'lowres')).size, 14);
  assert.equal((await readCanvas(page, 'result')).size, 28);
  await page.selectOption('#pipeline', 'small-upscaled');
  await sampleInPage(page);
  assert.equal((await readCanvas(page, 'lowres')).size, 14);
  assert.equal((await readCanvas(page, 'result')).size, 28);
  // The grid: one sample per label.
  await page.check('#grid');
  assert.equal(await page.isDisabled('#label'), true);
  await sampleInPage(page);
  const grid = await readCanvas(page, 'result');
  assert.deepEqual([grid.n, grid.cols], [10, 10]);
  assert.deepEqual([(await readCanvas(page, 'x0')).n, (await readCanvas(page, 'xt')).n], [10, 10]);
  // The tabs.
  await page.click('#tab-report');
  assert.equal(await page.isVisible('#panel-report'), true);
  assert.equal(await page.isVisible('#panel-sampler'), false);
  assert.equal(await page.locator('#table1 tbody tr').count(), 4);
  assert.match((await page.textContent('#table1'))!, /0\.730 ± 0\.040/, "the paper's baseline CAS");
  await page.click('#tab-sampler');
  assert.equal(await page.isVisible('#panel-sampler'), true);
  assert.deepEqual(errors, []);
  await page.close();
});

test('the report tab: Table 1, charts and figures load, and it reads at phone width', async () => {
  const page = await browser.newPage({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 1 });
  await page.goto(`${server.url}?autostart=0#report`);
  assert.equal(await page.isVisible('#panel-report'), true);
  const images = page.locator('#panel-report img');
  assert.ok((await images.count()) >= 10);
  for (const img of await images.all()) {
    await img.scrollIntoViewIfNeeded();
    await page.waitForFunction((e) => (e as HTMLImageElement).complete, await img.elementHandle());
    assert.ok(await img.evaluate((e) => (e as HTMLImageElement).naturalWidth > 0), `${await img.getAttribute('src')} loads`);
  }
  assert.ok((await page.locator('#panel-report img[src="report/forward-baseline.png"]').count()) === 1, 'the forward process');
  // Nothing but the table's own scroller is wider than the phone.
  assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1), 'no horizontal scrolling');
  await page.close();
});

let classifier: TrainedClassifier;

/** Mean class probabilities per label of images [n, 28, 28] (bytes) whose labels are `labels`. */
function meanProbabilities(images: Uint8Array, labels: readonly number[]): { perLabel: number[][]; accuracy: number } {
  const probs = tidy(() =>
    inferenceMode(() => {
      const x = tensor(Float32Array.from(images, (v) => v / 255), { shape: [labels.length, 1, 28, 28] });
      return softmax(classifier.model.forward(normalize(x, classifier.normalization)), 1).data() as Float32Array;
    }),
  );
  const perLabel = Array.from({ length: 10 }, () => new Array<number>(10).fill(0));
  let hits = 0;
  labels.forEach((l, i) => {
    const p = Array.from(probs.subarray(10 * i, 10 * i + 10));
    if (p.indexOf(Math.max(...p)) === l) hits++;
    p.forEach((v, c) => (perLabel[l]![c]! += v));
  });
  return { perLabel, accuracy: hits / labels.length };
}

test('every pipeline draws every label recognisably (a classifier trained on real MNIST reads the canvas)', async () => {
  const { page, errors } = await openPage(`${server.url}?autostart=0`);
  await page.waitForFunction(() => document.body.dataset.state === 'ready');
  // Twenty samples per label: a label is recognised when the classifier's mean probability over them is highest
  // for it (the weak baseline draws some labels badly, as the paper found). Ten for the guided pipelines, which
  // draw each label clearly.
  const rowsOf = (pipeline: string) => (pipeline.endsWith('-guided') ? 10 : 20);
  await page.check('#grid');
  await page.fill('#rows', String(rowsOf('baseline')));
  await page.check('#clip');
  const pipelines = ['baseline', 'small-upscaled', 'cascaded', 'baseline-guided', 'cascaded-guided'];
  const accuracies = new Map<string, number>();
  await page.selectOption('#pipeline', pipelines[0]!);
  await page.click('#sample');
  // The paper's CAS classifier on 20,000 real training images, one epoch (about 10 s on one thread), trained
  // while the page draws the first grid.
  const train = loadDataset('mnist', 'train');
  const n = 20_000;
  classifier = trainClassifier({ ...train, count: n, images: train.images.subarray(0, n * 784), labels: train.labels.subarray(0, n) }, { epochs: 1, seed: 0 });
  classifier.model.eval();
  for (const [i, pipeline] of pipelines.entries()) {
    const t0 = Date.now();
    const rows = rowsOf(pipeline);
    if (i > 0) {
      await page.selectOption('#pipeline', pipeline);
      await page.fill('#rows', String(rows));
      await sampleInPage(page, 120_000);
    } else {
      await page.waitForFunction(() => document.body.dataset.state === 'done', null, { timeout: 120_000 });
    }
    const seconds = (Date.now() - t0) / 1000;
    const drawn = await readCanvas(page, 'result');
    assert.deepEqual([drawn.n, drawn.size, drawn.cols], [10 * rows, 28, 10]);
    const labels = Array.from({ length: drawn.n }, (_, i) => i % 10);
    const { perLabel, accuracy } = meanProbabilities(drawn.images, labels);
    const recognised = perLabel.filter((p, l) => p.indexOf(Math.max(...p)) === l).length;
    // How clearly each label wins or loses: its mean probability minus the best other class's.
    const margins = perLabel.map((p, l) => (p[l]! - Math.max(...p.filter((_, c) => c !== l))) / rows);
    console.log(
      `${pipeline}: ${recognised}/10 labels recognised (margins ${margins.map((m) => m.toFixed(2)).join(' ')}); ` +
        `${(100 * accuracy).toFixed(0)} % of single samples classified as their label${i > 0 ? ` (${seconds.toFixed(1)} s in the page)` : ''}`,
    );
    assert.ok(recognised >= 9, `${pipeline}: only ${recognised} of 10 labels recognised`);
    accuracies.set(pipeline, accuracy);
  }
  // Guidance is what makes single samples readable: each guided pipeline beats the paper's model of its kind.
  for (const p of ['baseline', 'cascaded']) {
    assert.ok(accuracies.get(`${p}-guided`)! > accuracies.get(p)!, `${p}: guided ${accuracies.get(`${p}-guided`)} vs ${accuracies.get(p)}`);
  }
  assert.deepEqual(errors, []);
  await page.close();
});

/** The draws Node's engine makes from `seed`, in its order: per model, x_T, then one per step whose σ > 0. */
function nodeNoise(runs: string[], labels: number[], seed: number, opts: { sampler?: 'ddpm' | 'ddim' | 'dpmpp-2m'; steps?: number; eta?: number; clip: boolean }): number[][] {
  const p = loadPipeline({ runs, engine: 'onnxruntime' });
  const g = new Generator(seed);
  const draws: number[][] = [];
  try {
    for (const m of p.models) {
      const s = m.samplingScheduler(opts);
      const count = 1 + Array.from(s.timesteps).filter((t) => s.stepCoefficients(t).sigma > 0).length;
      for (let i = 0; i < count; i++) draws.push(Array.from(tidy(() => randn([labels.length, 1, m.config.imageSize, m.config.imageSize], { generator: g }).data() as Float32Array)));
      s.dispose();
    }
  } finally {
    disposePipeline(p);
  }
  return draws;
}

test('given the same noise, the page samples what Node samples on ONNX Runtime (max |Δ| ≤ 1e-4 in pixels)', async () => {
  const { page, errors } = await openPage(`${server.url}?autostart=0`);
  await page.evaluate(() => (window as unknown as { ssddpmTest: { ready: Promise<unknown> } }).ssddpmTest.ready);
  const cases = [
    { pipeline: 'baseline', runs: [DEFAULT_RUNS.baseline], labels: [3], opts: { clip: true } },
    { pipeline: 'cascaded', runs: [DEFAULT_RUNS.small, DEFAULT_RUNS.upscaler], labels: [2, 7], opts: { clip: true } },
    { pipeline: 'small-upscaled', runs: [DEFAULT_RUNS.small], upscale: true, labels: [5], opts: { clip: false, sampler: 'ddim' as const, steps: 8, eta: 0.5 } },
    { pipeline: 'baseline-guided', runs: [DEFAULT_GUIDED_RUNS.baseline], labels: [4, 9], opts: { clip: true, guidance: 1.5 } },
    { pipeline: 'cascaded-guided', runs: [DEFAULT_GUIDED_RUNS.small, DEFAULT_GUIDED_RUNS.upscaler], labels: [6], opts: { clip: false, sampler: 'ddim' as const, steps: 6, eta: 1, guidance: 3 } },
    { pipeline: 'cascaded-guided', runs: [DEFAULT_GUIDED_RUNS.small, DEFAULT_GUIDED_RUNS.upscaler], labels: [1, 8], opts: { clip: true, guidance: 2, guidanceInterval: [0, 1] as [number, number] } },
    { pipeline: 'cascaded-guided', runs: [DEFAULT_GUIDED_RUNS.small, DEFAULT_GUIDED_RUNS.upscaler], labels: [0, 3], opts: { clip: true, sampler: 'dpmpp-2m' as const, steps: 7, guidance: 2 } },
  ];
  for (const [k, c] of cases.entries()) {
    const seed = 11 + k;
    const p = loadPipeline({ runs: c.runs, upscale: c.upscale, engine: 'onnxruntime' });
    const expected = tidy(() => samplePipeline(p, c.labels, { ...c.opts, generator: new Generator(seed) }).data() as Float32Array);
    disposePipeline(p);
    const noise = nodeNoise(c.runs, c.labels, seed, c.opts);
    const got = await page.evaluate(
      (req) => (window as unknown as { ssddpmTest: { sample(r: unknown): Promise<{ images: number[] }> } }).ssddpmTest.sample(req),
      { pipeline: c.pipeline, labels: c.labels, seed: 0, sampler: c.opts.sampler ?? 'ddpm', steps: c.opts.steps, eta: c.opts.eta, clip: c.opts.clip, guidance: c.opts.guidance, guidanceInterval: c.opts.guidanceInterval, noise },
    );
    assert.equal(got.images.length, expected.length);
    const maxDiff = got.images.reduce((m, v, i) => Math.max(m, Math.abs(v - expected[i]!)), 0);
    console.log(`${c.pipeline}: max |page − node| = ${maxDiff.toExponential(2)} (${noise.length} noise draws)`);
    assert.ok(maxDiff <= 1e-4, `${c.pipeline}: the page's sample differs from Node's by ${maxDiff}`);
  }
  assert.deepEqual(errors, []);
  await page.close();
});

test('a missing or corrupt model file: the page says which and why instead of drawing nothing', async () => {
  const manifest = JSON.parse(readFileSync(join(siteDir, MANIFEST_FILE), 'utf8')) as SiteManifest;
  const variants: { name: string; change: (dir: string) => void; message: RegExp }[] = [
    { name: 'missing', change: (d) => rmSync(join(d, 'models/upscaler.onnx')), message: /model upscaler: models\/upscaler\.onnx is missing \(HTTP 404/ },
    { name: 'truncated', change: (d) => writeFileSync(join(d, 'models/small.onnx'), readFileSync(join(d, 'models/small.onnx')).subarray(0, 1000)), message: /model small: models\/small\.onnx is corrupt \(1000 bytes/ },
    {
      name: 'garbage listed in the manifest',
      change: (d) => {
        const junk = Buffer.alloc(manifest.models.baseline!.bytes, 7);
        writeFileSync(join(d, 'models/baseline.onnx'), junk);
        const m = structuredClone(manifest);
        m.models.baseline!.sha256 = sha256(junk);
        writeFileSync(join(d, MANIFEST_FILE), JSON.stringify(m));
      },
      message: /model baseline: models\/baseline\.onnx is not a model onnxruntime-web can load/,
    },
    { name: 'no manifest', change: (d) => rmSync(join(d, MANIFEST_FILE)), message: /manifest\.json is missing/ },
  ];
  for (const v of variants) {
    const dir = join(root, `broken-${v.name.replace(/\W+/g, '-')}`);
    cpSync(siteDir, dir, { recursive: true });
    v.change(dir);
    const s = await serveSite(dir, { port: 0 });
    servers.push(s);
    const page = await browser.newPage();
    await page.goto(s.url);
    await page.waitForFunction(() => document.body.dataset.state === 'error', null, { timeout: 30_000 });
    assert.match((await page.textContent('#error'))!, v.message, v.name);
    assert.equal(await page.isVisible('#error'), true);
    assert.equal(await page.isVisible('#result'), false, `${v.name}: no blank canvas`);
    assert.equal(await page.isDisabled('#sample'), true);
    await page.close();
  }
});

function ssddpm(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['bin/ssddpm.js', ...args], { cwd: repo, encoding: 'utf8', timeout: 120_000, env: { ...process.env, TORCH_NUM_THREADS: '1', SSDDPM_DEBUG: '' } });
  if (r.error) throw r.error;
  return r;
}

test('ssddpm web refuses a run that does not exist, or of the wrong kind, and writes nothing', async () => {
  const out = join(root, 'refused');
  const r = ssddpm('web', '--out', out, '--baseline', join(root, 'no-such-run'));
  assert.equal(r.status, 1);
  assert.equal(r.stderr.trim(), `ssddpm: ${join(root, 'no-such-run')}: no such run folder`);
  assert.equal(existsSync(out), false);
  await assert.rejects(buildSite(out, { runs: { baseline: DEFAULT_RUNS.small } }), /holds a small model, not the baseline model/);
  await assert.rejects(buildSite(out, { guided: { baseline: DEFAULT_RUNS.baseline } }), /was trained without --label-dropout, so it cannot be sampled with guidance/);
  const g = ssddpm('web', '--out', out, '--guidance', '-2');
  assert.equal(g.status, 1);
  assert.match(g.stderr, /expected a guidance scale ≥ 0, got '-2'/);
  const gs = ssddpm('web', '--out', out, '--guidance-sigma', '-1');
  assert.equal(gs.status, 1);
  assert.match(gs.stderr, /--guidance-sigma.*expected a positive number, got '-1'/);
  await assert.rejects(buildSite(out, { guidanceSigma: 0 }), /the noise level to guide up to must be a number > 0, got 0/);
  await assert.rejects(buildSite(out, { runs: { baseline: DEFAULT_RUNS.baseline }, report: join(root, 'no-report') }), /no such report folder/);
  // A checkpoint that fails while the site is being written: the temporary folder goes, nothing is left.
  const bad = join(root, 'bad-run');
  mkdirSync(join(bad, 'checkpoints'), { recursive: true });
  cpSync(join(repo, DEFAULT_RUNS.baseline, 'config.json'), join(bad, 'config.json'));
  writeFileSync(join(bad, 'checkpoints', 'epoch-0010.safetensors'), 'not a checkpoint');
  await assert.rejects(buildSite(out, { runs: { baseline: bad }, report: null }));
  assert.equal(existsSync(out), false);
  assert.deepEqual(readdirSync(root).filter((f) => f.startsWith('.tmp-') || f.includes('refused')), []);
  // A folder that is not a site is never replaced; a site is.
  mkdirSync(join(root, 'other'));
  writeFileSync(join(root, 'other', 'keep.txt'), 'mine');
  await assert.rejects(buildSite(join(root, 'other'), { runs: { baseline: DEFAULT_RUNS.baseline }, report: null }), /is not a site built by `ssddpm web`/);
  assert.equal(readFileSync(join(root, 'other', 'keep.txt'), 'utf8'), 'mine');
  const again = join(root, 'again');
  await buildSite(again, { runs: { baseline: DEFAULT_RUNS.baseline }, guided: null, report: null });
  const rebuilt = await buildSite(again, { runs: { small: DEFAULT_RUNS.small }, guided: null, report: null });
  assert.deepEqual(rebuilt.manifest.pipelines.map((p) => p.name), ['small-upscaled']);
  // The guided pipelines carry the page's first σ bound; the others have none.
  const bounded = await buildSite(join(root, 'bounded'), { runs: { small: DEFAULT_RUNS.small }, guided: { baseline: DEFAULT_GUIDED_RUNS.baseline }, guidanceSigma: 3, report: null });
  assert.deepEqual(bounded.manifest.pipelines.map((p) => [p.name, p.guidance, p.guidanceSigma]), [['baseline-guided', 3, 3], ['small-upscaled', undefined, undefined]]);
  // A scale given replaces the recipe's scale and bound: guided at every step.
  const scaled = await buildSite(join(root, 'scaled'), { runs: {}, guided: { baseline: DEFAULT_GUIDED_RUNS.baseline }, guidance: 1, report: null });
  assert.deepEqual(scaled.manifest.pipelines.map((p) => [p.name, p.sampler, p.guidance, p.guidanceSigma]), [['baseline-guided', 'ddim', 1, undefined]]);
  assert.equal(existsSync(join(again, 'models', 'baseline.onnx')), false, 'replaced whole');
});

test('ssddpm web and serve: --help, and serve prints its URL and serves the site', async () => {
  const web = ssddpm('web', '--help');
  assert.equal(web.status, 0);
  for (const o of ['--out', '--baseline', '--small', '--upscaler', '--guided-baseline', '--no-guided', '--guidance', '--guidance-sigma', '--report', '--no-report', 'Cross-Origin-Embedder-Policy']) assert.ok(web.stdout.includes(o), o);
  const serveHelp = ssddpm('serve', '--help');
  assert.equal(serveHelp.status, 0);
  for (const o of ['--site', '--port', 'Cross-Origin-Opener-Policy: same-origin']) assert.ok(serveHelp.stdout.includes(o), o);
  assert.match(ssddpm('serve', '--site', join(root, 'nothing')).stderr, /no such folder; build the site first/);
  const child = spawn(process.execPath, ['bin/ssddpm.js', 'serve', '--site', siteDir, '--port', '0'], { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    const url = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /at (http:\/\/\S+) /.exec(out);
        if (m) resolve(m[1]!);
      });
      child.on('exit', (code) => reject(new Error(`serve exited with ${code}`)));
    });
    const r = await fetch(url);
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('cross-origin-embedder-policy'), 'require-corp');
  } finally {
    child.kill('SIGINT');
  }
});
