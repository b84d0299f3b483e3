// The page's sampling worker: loads onnxruntime-web (WebGPU where the browser has an adapter, else WebAssembly),
// one session per exported model, and runs the reverse process (sampler.ts), posting every step to the page so
// that it stays responsive while the networks run.
import type * as OrtModule from 'onnxruntime-web/wasm';
import { MANIFEST_FILE, type SiteManifest, type SiteModel } from './manifest.ts';
import { GRAPH_IO as IO, type Backend, type BackendChoice, type FromWorker, type ToWorker } from './protocol.ts';
import { NoiseRng } from './rng.ts';
import { noiseSource, samplePipeline, type StepCall } from './sampler.ts';

type Ort = typeof OrtModule;
type Session = OrtModule.InferenceSession;

interface WorkerScope {
  postMessage(msg: FromWorker, transfer?: Transferable[]): void;
  onmessage: ((e: MessageEvent<ToWorker>) => void) | null;
}
const scope = self as unknown as WorkerScope;
const post = (msg: FromWorker, transfer: Transferable[] = []) => scope.postMessage(msg, transfer);

let ort: Ort | undefined;
let manifest: SiteManifest | undefined;
let chosen: Backend | undefined;
const sessions = new Map<string, Session>();
// Samples run one at a time, in the order asked.
let queue: Promise<void> = Promise.resolve();

async function chooseBackend(choice: BackendChoice): Promise<Backend> {
  if (choice === 'wasm') return 'wasm';
  const gpu = (navigator as unknown as { gpu?: { requestAdapter(): Promise<unknown> } }).gpu;
  const adapter = gpu === undefined ? null : await gpu.requestAdapter().catch(() => null);
  if (adapter) return 'webgpu';
  if (choice === 'webgpu') throw new Error('WebGPU was asked for, but this browser offers no WebGPU adapter');
  return 'wasm';
}

function hex(buf: ArrayBuffer): string {
  return Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, '0')).join('');
}

async function loadModel(name: string, model: SiteModel, backend: Backend): Promise<Session> {
  const url = new URL(`../${model.file}`, import.meta.url);
  let response: Response;
  try {
    response = await fetch(url);
  } catch (err) {
    throw new Error(`model ${name}: cannot fetch ${model.file} (${(err as Error).message})`);
  }
  if (!response.ok) throw new Error(`model ${name}: ${model.file} is missing (HTTP ${response.status} ${response.statusText})`.trim());
  const bytes = new Uint8Array(await response.arrayBuffer());
  if (bytes.length !== model.bytes) throw new Error(`model ${name}: ${model.file} is corrupt (${bytes.length} bytes, the manifest says ${model.bytes}); build the site again`);
  if (globalThis.crypto?.subtle !== undefined) {
    const digest = hex(await crypto.subtle.digest('SHA-256', bytes));
    if (digest !== model.sha256) throw new Error(`model ${name}: ${model.file} is corrupt (its SHA-256 differs from the manifest's); build the site again`);
  }
  try {
    // WebGPU runs what it can; WebAssembly takes the rest (and everything where WebGPU fails to start).
    return await ort!.InferenceSession.create(bytes, { executionProviders: backend === 'webgpu' ? ['webgpu', 'wasm'] : ['wasm'], graphOptimizationLevel: 'all' });
  } catch (err) {
    throw new Error(`model ${name}: ${model.file} is not a model onnxruntime-web can load (${(err as Error).message ?? String(err)})`);
  }
}

async function fetchManifest(): Promise<SiteManifest> {
  const response = await fetch(new URL(`../${MANIFEST_FILE}`, import.meta.url));
  if (!response.ok) throw new Error(`${MANIFEST_FILE} is missing (HTTP ${response.status})`);
  return (await response.json()) as SiteManifest;
}

async function startRuntime(choice: BackendChoice): Promise<Backend> {
  const backend = await chooseBackend(choice);
  ort = backend === 'webgpu' ? ((await import('onnxruntime-web/webgpu')) as unknown as Ort) : await import('onnxruntime-web/wasm');
  return backend;
}

async function init(msg: Extract<ToWorker, { type: 'init' }>): Promise<void> {
  const start = performance.now();
  const [m, backend] = await Promise.all([fetchManifest(), startRuntime(msg.backend)]);
  manifest = m;
  const pipeline = msg.pipeline === undefined ? m.pipelines[0] : m.pipelines.find((p) => p.name === msg.pipeline);
  if (pipeline === undefined) throw new Error(`no pipeline ${msg.pipeline} in this site (${m.pipelines.map((p) => p.name).join(', ')})`);
  ort!.env.wasm.wasmPaths = new URL('../ort/', import.meta.url).href;
  // Threads need a cross-origin-isolated page (COOP/COEP, which `ssddpm serve` sends).
  const threads = self.crossOriginIsolated ? msg.threads : 1;
  ort!.env.wasm.numThreads = threads;
  ort!.env.logLevel = 'error';
  chosen = backend;
  await loadModels(pipeline.models);
  post({ type: 'ready', backend, threads, ms: performance.now() - start, models: pipeline.models });
}

async function loadModels(names: readonly string[]): Promise<void> {
  await Promise.all(
    names
      .filter((name) => !sessions.has(name))
      .map(async (name) => {
        const model = manifest!.models[name];
        if (model === undefined) throw new Error(`the manifest lacks model ${name}`);
        const t0 = performance.now();
        sessions.set(name, await loadModel(name, model, chosen!));
        post({ type: 'loaded', model: name, ms: performance.now() - t0 });
      }),
  );
}

async function runStep(call: StepCall): Promise<{ prev: Float32Array; x0: Float32Array }> {
  const o = ort!;
  const session = sessions.get(call.model);
  if (session === undefined) throw new Error(`model ${call.model} is not loaded yet`);
  const n = call.labels.length;
  const side = Math.round(Math.sqrt(call.sample.length / n));
  const image = [n, 1, side, side];
  const scalar = (v: number) => new o.Tensor('float32', Float32Array.of(v), []);
  const s = call.scalars;
  const feeds: Record<string, OrtModule.Tensor> = {
    [IO.sample]: new o.Tensor('float32', call.sample, image),
    [IO.timestep]: new o.Tensor('int64', new BigInt64Array(n).fill(BigInt(call.timestep)), [n]),
    [IO.label]: new o.Tensor('int64', BigInt64Array.from(call.labels, (l) => BigInt(l)), [n]),
    [IO.noise]: new o.Tensor('float32', call.noise, image),
    [IO.xtScale]: scalar(s.xtScale),
    [IO.epsScale]: scalar(s.epsScale),
    [IO.x0Divisor]: scalar(s.x0Divisor),
    [IO.x0Coef]: scalar(s.x0Coef),
    [IO.xtCoef]: scalar(s.xtCoef),
    [IO.epsCoef]: scalar(s.epsCoef),
    [IO.sigma]: scalar(s.sigma),
    [IO.clipMin]: scalar(s.clipMin),
    [IO.clipMax]: scalar(s.clipMax),
  };
  if (call.conditioning !== undefined) feeds[IO.conditioning] = new o.Tensor('float32', call.conditioning, image);
  if (call.guidance !== undefined) feeds[IO.guidance] = scalar(call.guidance);
  if (call.conditioningLevel !== undefined) feeds[IO.conditioningLevel] = new o.Tensor('float32', new Float32Array(n).fill(call.conditioningLevel), [n]);
  const out = await session.run(feeds, [IO.prevSample, IO.predX0]);
  return { prev: out[IO.prevSample]!.data as Float32Array, x0: out[IO.predX0]!.data as Float32Array };
}

async function sample(msg: Extract<ToWorker, { type: 'sample' }>): Promise<void> {
  const { id, request } = msg;
  try {
    if (manifest === undefined || ort === undefined) throw new Error('the models are not loaded');
    const start = performance.now();
    const draw = noiseSource(request, new NoiseRng(request.seed));
    const result = await samplePipeline(manifest, request, runStep, draw, {
      stage: (stage) => post({ type: 'stage', id, stage }),
      step: (frame) => post({ type: 'step', id, frame }, [frame.xt.buffer, frame.x0.buffer]),
    });
    post({ type: 'done', id, result, ms: performance.now() - start });
  } catch (err) {
    post({ type: 'error', id, message: err instanceof Error ? err.message : String(err) });
  }
}

const fatal = (err: unknown) => post({ type: 'fatal', message: err instanceof Error ? err.message : String(err) });

// Messages are handled one at a time, in order: a sample asked for after a 'load' finds its models.
scope.onmessage = (e) => {
  const msg = e.data;
  if (msg.type === 'init') queue = queue.then(() => init(msg)).catch(fatal);
  else if (msg.type === 'load') queue = queue.then(() => loadModels(msg.models)).catch(fatal);
  else queue = queue.then(() => sample(msg));
};
