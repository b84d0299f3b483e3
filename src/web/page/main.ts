// The page: the sampler panel (controls, the reverse process animated step by step, the samples) and the report
// tab. Sampling runs in a worker (worker.ts); this side only draws. `window.ssddpmTest` lets tests sample with
// noise they pass in and read the page's state.
import { MANIFEST_FILE, SITE_FORMAT, SITE_FORMAT_VERSION, type SiteManifest } from './manifest.ts';
import type { Backend, BackendChoice, FromWorker, ToWorker } from './protocol.ts';
import type { SampleRequest, SampleResult, StageStart, StepFrame } from './sampler.ts';

/** Every sample is shown this many CSS pixels wide, whatever its resolution. */
const TILE = 112;
/** Grids of more than one row draw smaller tiles. */
const GRID_TILE = 56;
const MAX_ROWS = 20;
const BACKEND_NAMES: Record<Backend, string> = { webgpu: 'WebGPU', wasm: 'WebAssembly' };

const el = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const e = document.getElementById(id);
  if (e === null) throw new Error(`the page lacks #${id}`);
  return e as T;
};

type PageState = 'loading' | 'ready' | 'sampling' | 'done' | 'error';
const setState = (s: PageState) => {
  document.body.dataset.state = s;
};

/** Fatal: the page cannot sample; a message instead of blank canvases. */
function fail(message: string): void {
  const box = el('error');
  box.textContent = message;
  box.hidden = false;
  el('view').hidden = true;
  el<HTMLButtonElement>('sample').disabled = true;
  el('backend').textContent = 'Sampling is not available.';
  setState('error');
}

// ---------------------------------------------------------------------------------------------------
// Tabs

function setupTabs(): void {
  const tabs = [...document.querySelectorAll<HTMLButtonElement>('[role="tab"]')];
  const show = (id: string) => {
    for (const t of tabs) {
      const selected = t.getAttribute('aria-controls') === id;
      t.setAttribute('aria-selected', String(selected));
      el(t.getAttribute('aria-controls')!).hidden = !selected;
    }
  };
  for (const t of tabs) {
    t.addEventListener('click', () => {
      const id = t.getAttribute('aria-controls')!;
      show(id);
      history.replaceState(null, '', id === 'panel-report' ? '#report' : '#');
    });
  }
  if (location.hash === '#report') show('panel-report');
}

// ---------------------------------------------------------------------------------------------------
// Drawing

/** Draws n grey images [n, size, size] (pixel space) as tiles, `cols` per row, each TILE pixels wide. */
function drawTiles(canvas: HTMLCanvasElement, images: Float32Array, n: number, size: number, cols: number): void {
  const rows = Math.ceil(n / cols);
  const tile = rows > 1 ? GRID_TILE : TILE;
  const scale = tile / size;
  canvas.width = cols * tile;
  canvas.height = rows * tile;
  Object.assign(canvas.dataset, { n: String(n), size: String(size), cols: String(cols), scale: String(scale) });
  const native = document.createElement('canvas');
  native.width = cols * size;
  native.height = rows * size;
  const img = new ImageData(native.width, native.height);
  for (let k = 0; k < n; k++) {
    const ox = (k % cols) * size;
    const oy = Math.floor(k / cols) * size;
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const v = images[k * size * size + y * size + x]!;
        const g = Math.round(255 * (v < 0 ? 0 : v > 1 ? 1 : v));
        const o = 4 * ((oy + y) * native.width + ox + x);
        img.data[o] = img.data[o + 1] = img.data[o + 2] = g;
        img.data[o + 3] = 255;
      }
    }
  }
  native.getContext('2d')!.putImageData(img, 0, 0);
  const ctx = canvas.getContext('2d')!;
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(native, 0, 0, canvas.width, canvas.height);
}

// ---------------------------------------------------------------------------------------------------
// The worker

interface Pending {
  resolve: (r: { result: SampleResult; ms: number }) => void;
  reject: (e: Error) => void;
  onStage?: (s: StageStart) => void;
  onStep?: (f: StepFrame) => void;
}

class SamplerClient {
  readonly #worker: Worker;
  readonly #pending = new Map<number, Pending>();
  #next = 1;
  readonly ready: Promise<{ backend: Backend; threads: number; ms: number; models: string[] }>;

  /** Starts the worker at once: it fetches the manifest and starts onnxruntime-web while the page sets up. */
  constructor(backend: BackendChoice, threads: number, pipeline: string | undefined, onFatal: (message: string) => void) {
    this.#worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
    this.ready = new Promise((resolve, reject) => {
      this.#worker.onerror = (e) => {
        const message = `the sampling worker failed${e.message ? `: ${e.message}` : ''}`;
        reject(new Error(message));
        onFatal(message);
      };
      this.#worker.onmessage = (e: MessageEvent<FromWorker>) => {
        const msg = e.data;
        if (msg.type === 'ready') resolve(msg);
        else if (msg.type === 'fatal') {
          reject(new Error(msg.message));
          onFatal(`Cannot load the models: ${msg.message}`);
        }
        else if (msg.type === 'loaded') return;
        else this.#dispatch(msg);
      };
    });
    this.#post({ type: 'init', backend, threads, ...(pipeline === undefined ? {} : { pipeline }) });
  }

  /** Loads more models; a sample asked for later waits for them. */
  load(models: string[]): void {
    this.#post({ type: 'load', models });
  }

  #post(msg: ToWorker): void {
    this.#worker.postMessage(msg);
  }

  #dispatch(msg: Extract<FromWorker, { id: number }>): void {
    const p = this.#pending.get(msg.id);
    if (p === undefined) return;
    if (msg.type === 'stage') p.onStage?.(msg.stage);
    else if (msg.type === 'step') p.onStep?.(msg.frame);
    else {
      this.#pending.delete(msg.id);
      if (msg.type === 'done') p.resolve({ result: msg.result, ms: msg.ms });
      else p.reject(new Error(msg.message));
    }
  }

  sample(request: SampleRequest, on: Pick<Pending, 'onStage' | 'onStep'> = {}): Promise<{ result: SampleResult; ms: number }> {
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject, ...on });
      this.#post({ type: 'sample', id, request });
    });
  }
}

// ---------------------------------------------------------------------------------------------------
// The sampler panel

interface Controls {
  pipeline: HTMLSelectElement;
  label: HTMLSelectElement;
  grid: HTMLInputElement;
  rows: HTMLInputElement;
  seed: HTMLInputElement;
  sampler: HTMLSelectElement;
  steps: HTMLInputElement;
  eta: HTMLInputElement;
  clip: HTMLInputElement;
  guidance: HTMLInputElement;
  guidanceSigma: HTMLInputElement;
  delay: HTMLInputElement;
}

function controls(): Controls {
  return {
    pipeline: el('pipeline'),
    label: el('label'),
    grid: el('grid'),
    rows: el('rows'),
    seed: el('seed'),
    sampler: el('sampler'),
    steps: el('steps'),
    eta: el('eta'),
    clip: el('clip'),
    guidance: el('guidance'),
    guidanceSigma: el('guidance-sigma'),
    delay: el('delay'),
  };
}

function requestFrom(c: Controls, numClasses: number): SampleRequest {
  const seed = Number(c.seed.value);
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new RangeError(`the seed must be an integer in 0..4294967295, got '${c.seed.value}'`);
  const sampler = c.sampler.value === 'ddim' || c.sampler.value === 'dpmpp-2m' ? c.sampler.value : 'ddpm';
  const steps = Number(c.steps.value);
  const eta = Number(c.eta.value);
  if (sampler !== 'ddpm' && (!Number.isInteger(steps) || steps < 1)) throw new RangeError(`the number of steps must be a positive integer, got '${c.steps.value}'`);
  if (sampler === 'ddim' && !(eta >= 0 && eta <= 1)) throw new RangeError(`η must be in [0, 1], got '${c.eta.value}'`);
  const rows = Number(c.rows.value);
  if (c.grid.checked && !(Number.isInteger(rows) && rows >= 1 && rows <= MAX_ROWS)) throw new RangeError(`samples per label must be an integer in 1..${MAX_ROWS}, got '${c.rows.value}'`);
  const guidance = Number(c.guidance.value);
  if (!c.guidance.disabled && !(c.guidance.value.trim() !== '' && Number.isFinite(guidance) && guidance >= 0)) throw new RangeError(`the guidance scale must be a number ≥ 0, got '${c.guidance.value}'`);
  const sigmaMax = c.guidanceSigma.value.trim() === '' ? undefined : Number(c.guidanceSigma.value);
  if (!c.guidanceSigma.disabled && sigmaMax !== undefined && !(sigmaMax > 0)) throw new RangeError(`the noise level to guide up to must be a number > 0 (or empty: every step), got '${c.guidanceSigma.value}'`);
  return {
    pipeline: c.pipeline.value,
    // The grid: one column per label, `rows` samples of each.
    labels: c.grid.checked ? Array.from({ length: rows * numClasses }, (_, i) => i % numClasses) : [Number(c.label.value)],
    seed,
    sampler,
    ...(sampler === 'ddim' ? { steps, eta } : sampler === 'dpmpp-2m' ? { steps } : {}),
    clip: c.clip.checked,
    ...(c.guidance.disabled ? {} : { guidance }),
    ...(c.guidanceSigma.disabled || sigmaMax === undefined ? {} : { guidanceInterval: [0, sigmaMax] as [number, number] }),
  };
}

/** Shows frames one after another, waiting the chosen delay between steps (read live from the slider). */
class Player {
  #chain: Promise<void> = Promise.resolve();
  constructor(readonly delay: () => number) {}
  push(show: () => void): void {
    this.#chain = this.#chain.then(async () => {
      show();
      const ms = this.delay();
      if (ms > 0) await new Promise((r) => setTimeout(r, ms));
    });
  }
  get finished(): Promise<void> {
    return this.#chain;
  }
}

const fmtMs = (ms: number) => (ms >= 100 ? ms.toFixed(0) : ms.toFixed(1));

let firstSampleMs: number | undefined;
let clientReady: (c: SamplerClient) => void = () => {};
const clientPromise = new Promise<SamplerClient>((resolve) => (clientReady = resolve));

/** For tests and benchmarks, there from the start: sampling without drawing, with noise given or seeded. */
const hook = {
  ready: clientPromise.then((c) => c.ready).then((r) => ({ backend: r.backend, threads: r.threads })),
  /** `noise` (every draw, in order) replaces the seeded generator. */
  sample: async (req: Omit<SampleRequest, 'noise'> & { noise?: number[][] }) => {
    const client = await clientPromise;
    await client.ready;
    const { result, ms } = await client.sample({ ...req, noise: req.noise?.map((a) => Float32Array.from(a)) });
    return { images: Array.from(result.images), size: result.size, stages: result.stages.map((s) => ({ ...s, images: Array.from(s.images) })), engineMs: result.engineMs, stepMs: result.stepMs, ms };
  },
  get firstSampleMs() {
    return firstSampleMs;
  },
};
hook.ready.catch(() => {}); // a page that cannot load says so itself
(window as unknown as { ssddpmTest: typeof hook }).ssddpmTest = hook;

async function main(): Promise<void> {
  setupTabs();
  setState('loading');
  const c = controls();
  const sampleButton = el<HTMLButtonElement>('sample');
  sampleButton.disabled = true;
  const syncSampler = () => {
    c.steps.disabled = c.sampler.value === 'ddpm';
    c.eta.disabled = c.sampler.value !== 'ddim';
  };
  c.sampler.addEventListener('change', syncSampler);
  syncSampler();
  const syncDelay = () => {
    el('delay-value').textContent = `${c.delay.value} ms`;
  };
  c.delay.addEventListener('input', syncDelay);
  syncDelay();
  const syncGrid = () => {
    c.label.disabled = c.grid.checked;
    c.rows.disabled = !c.grid.checked;
  };
  c.grid.addEventListener('change', syncGrid);
  syncGrid();

  const params = new URLSearchParams(location.search);
  const choice = (params.get('backend') ?? 'auto') as BackendChoice;
  // WebAssembly threads per operator (?threads=N); by default onnxruntime-web's choice, half the cores up to 4
  // (one on 2 cores, where one was also the fastest for a single small image).
  const asked = Number(params.get('threads') ?? Math.min(4, Math.ceil((navigator.hardwareConcurrency || 1) / 2)));
  const threads = Number.isInteger(asked) && asked >= 1 && asked <= 16 ? asked : 1;
  const client = new SamplerClient(choice, threads, params.get('pipeline') ?? undefined, fail);
  client.ready.catch(() => {}); // reported below
  clientReady(client);

  let manifest: SiteManifest;
  try {
    const response = await fetch(MANIFEST_FILE);
    if (!response.ok) throw new Error(`${MANIFEST_FILE} is missing (HTTP ${response.status})`);
    manifest = (await response.json()) as SiteManifest;
    if (manifest.format !== SITE_FORMAT || manifest.version !== SITE_FORMAT_VERSION) throw new Error(`${MANIFEST_FILE} is not a site manifest this page reads`);
  } catch (err) {
    fail(`Cannot load the models: ${(err as Error).message}. Build the site again with \`ssddpm web\`.`);
    return;
  }
  for (const p of manifest.pipelines) c.pipeline.add(new Option(p.title, p.name));
  const numClasses = Math.min(...Object.values(manifest.models).map((m) => m.config.unet.numClasses));
  for (let l = 0; l < numClasses; l++) c.label.add(new Option(String(l), String(l)));
  if (params.has('pipeline')) c.pipeline.value = params.get('pipeline')!;
  if (params.has('label')) c.label.value = params.get('label')!;
  // Each pipeline starts at its own sampler (DDIM over every step of its models, η = 0, or DDPM) and, where its
  // models were trained with label dropout, its own guidance scale and bound.
  const syncGuidance = () => {
    const p = manifest.pipelines.find((q) => q.name === c.pipeline.value);
    const guided = p !== undefined && p.models.some((m) => manifest.models[m]?.config.labelDropout !== undefined);
    c.guidance.disabled = !guided;
    c.guidanceSigma.disabled = !guided;
    c.guidance.value = guided ? String(p.guidance ?? 0) : '0';
    c.guidanceSigma.value = guided && p.guidanceSigma !== undefined ? String(p.guidanceSigma) : '';
    c.sampler.value = p?.sampler ?? 'ddpm';
    if (p?.sampler === 'ddim') {
      c.steps.value = String(Math.max(...p.models.map((m) => manifest.models[m]!.config.schedule.numTimesteps)));
      c.eta.value = '0';
    }
    syncSampler();
  };
  c.pipeline.addEventListener('change', syncGuidance);
  syncGuidance();
  if (params.has('guidance') && !c.guidance.disabled) c.guidance.value = params.get('guidance')!;
  if (params.has('guidance-sigma') && !c.guidanceSigma.disabled) c.guidanceSigma.value = params.get('guidance-sigma')!;

  // The first pipeline's models first (the worker loads them); the others after the first sample.
  let backend: Backend;
  let first: string[];
  try {
    const r = await client.ready;
    backend = r.backend;
    first = r.models;
    el('backend').textContent = `Sampling on ${BACKEND_NAMES[backend]}${backend === 'wasm' ? ` (${r.threads} thread${r.threads > 1 ? 's' : ''})` : ''} with onnxruntime-web ${manifest.onnxruntimeWeb}; ${first.join(' and ')} loaded in ${fmtMs(r.ms)} ms.`;
    el('backend').dataset.backend = backend;
  } catch (err) {
    fail(`Cannot load the models: ${(err as Error).message}`);
    return;
  }

  const run = async () => {
    const error = el('error');
    let req: SampleRequest;
    try {
      req = requestFrom(c, numClasses);
    } catch (err) {
      error.textContent = (err as Error).message;
      error.hidden = false;
      return;
    }
    error.hidden = true;
    sampleButton.disabled = true;
    setState('sampling');
    const n = req.labels.length;
    const cols = c.grid.checked ? numClasses : 1;
    const player = new Player(() => Number(c.delay.value));
    const pipeline = manifest.pipelines.find((p) => p.name === req.pipeline)!;
    const stages = pipeline.models.length;
    el('status').textContent = 'Sampling…';
    try {
      const { result, ms } = await client.sample(req, {
        onStage: (s) =>
          player.push(() => {
            el('stage-caption').textContent = `Stage ${s.stage + 1} of ${stages}: ${s.model} model, ${s.size}×${s.size}, ${s.steps} steps`;
          }),
        onStep: (f) =>
          player.push(() => {
            drawTiles(el('xt'), f.xt, n, f.size, cols);
            drawTiles(el('x0'), f.x0, n, f.size, cols);
            el('step-info').textContent = `step ${f.step}/${f.steps}, t = ${f.t}: ${fmtMs(f.ms)} ms`;
          }),
      });
      await player.finished;
      el('results').hidden = false;
      const lowres = el('lowres-figure');
      lowres.hidden = result.stages.length < 2 && pipeline.upscaleTo === undefined;
      if (!lowres.hidden) {
        const first = result.stages[0]!;
        drawTiles(el('lowres'), first.images, n, first.size, cols);
        el('lowres-caption').textContent = `${first.model} model, ${first.size}×${first.size}`;
      }
      drawTiles(el('result'), result.images, n, result.size, cols);
      el('result-caption').textContent = `${pipeline.title}: ${n === 1 ? `label ${req.labels[0]}` : `one column per label, ${n / cols} per label`}, ${result.size}×${result.size}${req.guidance === undefined ? '' : `, guidance w = ${req.guidance}${req.guidanceInterval === undefined ? '' : ` at σ ≤ ${req.guidanceInterval[1]}`}`}`;
      const steps = result.stepMs.length;
      if (firstSampleMs === undefined) firstSampleMs = performance.now();
      el('status').textContent =
        `${n} sample${n > 1 ? 's' : ''} in ${fmtMs(ms)} ms: ${steps} network evaluations at ${fmtMs(result.engineMs / steps)} ms per step on ${BACKEND_NAMES[backend]}` +
        ` (first sample shown ${fmtMs(firstSampleMs)} ms after the page started loading).`;
      setState('done');
    } catch (err) {
      error.textContent = `Sampling failed: ${(err as Error).message}`;
      error.hidden = false;
      setState('ready');
    } finally {
      sampleButton.disabled = false;
    }
  };
  el('controls').addEventListener('submit', (e) => {
    e.preventDefault();
    void run();
  });
  sampleButton.disabled = false;
  setState('ready');
  const rest = Object.keys(manifest.models).filter((m) => !first.includes(m));
  if (params.get('autostart') !== '0') void run().finally(() => client.load(rest));
  else client.load(rest);
}

main().catch((err: unknown) => fail(`The page failed to start: ${err instanceof Error ? err.message : String(err)}`));
