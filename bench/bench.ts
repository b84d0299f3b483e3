// Our implementation beside a PyTorch-eager peer (bench/peer/bench_peer.py, run with Debian's
// /usr/bin/python3 and python3-torch, or $BENCH_PYTHON) on the same workloads, settings and CPU, in one run:
//   training samples/s (baseline, small, upscaler U-Nets and the CAS classifier, batch 128),
//   batched sampling (network evaluations/s at batch 256),
//   batch-1 latency of one full sample (baseline, small upscaled, cascaded: the paper's §0.3),
//   achieved GFLOP/s against the float32 matrix multiply's measured rate, and the full paper protocol's wall time
//   estimated from the rates.
// Training is also measured in bfloat16 where the device runs it natively (our `train --precision bf16` beside
// PyTorch's bfloat16 autocast). On a GPU, ours replays CUDA graphs as the trainer and samplers do there, "ours eager"
// launches every kernel, and training also runs beside torch.compile(mode="reduce-overhead").
// Sampling uses the shipped trained MNIST runs and is measured on both our engines (ONNX Runtime, the default
// on the CPU, and libtorch), beside three peers with the same weights: PyTorch eager, PyTorch traced + frozen +
// torch.jit.optimize_for_inference, and ONNX Runtime running PyTorch's own torch.onnx.export through our
// sampling loop. Every side of a workload is set up and warmed up first, then the repetitions are taken in turn
// (one of each side per round; the PyTorch peer is one long-lived process answering one repetition per request),
// so all sides see the machine in the same state; medians are reported with min / median / max, and a ratio
// whose sides spread by more than 20 % is marked unreliable. The last line is
//   summary: train=<ratio>x [train_vs_compile=<ratio>x, on a GPU] train_bf16=<ratio>x bf16_vs_fp32_peer=<ratio>x train_of_matmul_peak=<fraction>
//            latency=<ratio>x baseline_sample_ms=<ms> protocol_h=<hours> latency_vs_best=<ratio> unreliable=<fields|none>
// with ratios ours/peer (train: baseline samples/s, higher is better, against PyTorch eager float32; train_bf16:
// both in bfloat16; bf16_vs_fp32_peer: ours in bfloat16 against PyTorch in float32; train_of_matmul_peak: our
// float32 training GFLOP/s over the float32 matrix multiply's; latency: baseline seconds per sample on our
// default engine, lower is better, against PyTorch eager; latency_vs_best against the fastest peer).
//   npm run bench -- [--reps 5] [--only train-baseline,latency-baseline] [--no-peer] [--latency-threads 1]
import { execFileSync, spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as torch from '../src/torch/index.ts';
import { crossEntropy, mseLoss } from '../src/nn/functional.ts';
import { Classifier } from '../src/models/classifier.ts';
import { Adam, AdamW } from '../src/optim/index.ts';
import { DiffusionModel } from '../src/pipelines/diffusion-model.ts';
import { presetModel, type ModelKind } from '../src/pipelines/model-config.ts';
import { OnnxDiffusionModel } from '../src/pipelines/onnx-diffusion-model.ts';
import { defaultEngine, loadModel, loadOnnxModel, samplePipeline, type Pipeline } from '../src/pipelines/pipeline.ts';
import { latestCheckpoint, readRunConfig } from '../src/pipelines/run-dir.ts';
import type { SamplingModel } from '../src/pipelines/sampling-model.ts';
import { PRESETS } from '../src/experiments/protocol.ts';
import type { Precision } from '../src/pipelines/run-dir.ts';
import { NoiseSchedule } from '../src/diffusion/schedule.ts';
import { cpuPeak, classifierForwardFlops, measuredMatmulGflops, unetForwardFlops, TRAINING_FLOPS_PER_FORWARD } from './flops.ts';

const WORKLOADS = [
  'train-baseline',
  'train-small',
  'train-upscaler',
  'train-classifier',
  'sample-batched',
  'latency-baseline',
  'latency-small-upscaled',
  'latency-cascaded',
] as const;
type Workload = (typeof WORKLOADS)[number];

const { values } = parseArgs({
  options: {
    reps: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '2' },
    'train-steps': { type: 'string', default: '3' },
    'classifier-steps': { type: 'string', default: '10' },
    'sample-reps': { type: 'string', default: '3' },
    'latency-samples': { type: 'string', default: '5' },
    'latency-threads': { type: 'string', default: '1' },
    only: { type: 'string' },
    device: { type: 'string', default: 'cpu' },
    'no-peer': { type: 'boolean', default: false },
    profile: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (values.help) {
  console.log(`npm run bench -- [options]
  --reps N               timed repetitions per workload and side, taken in turn (default 5; the median is reported)
  --warmup N             untimed steps or samples first (default 2)
  --train-steps N        training steps per repetition (default 3)
  --classifier-steps N   classifier steps per repetition (default 10)
  --sample-reps N        full batch-256 samplings timed (default 3)
  --latency-samples N    batch-1 samples per repetition (default 5)
  --latency-threads N    threads for batch-1 sampling, both sides (default 1: faster than 2 at batch 1)
  --only a,b             a subset of: ${WORKLOADS.join(', ')}
  --device D             cpu (default) or cuda[:N] (needs an addon built against a CUDA libtorch; see scripts/gpu-bench.sh)
  --no-peer              our numbers alone
  --profile N            also profile one more repetition of our training (each precision): the N operators with the
                         most time of their own (libtorch's profiler), ms per step and share of the step`);
  process.exit(0);
}
const int = (name: string, v: string | undefined, min = 1) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new RangeError(`--${name} must be an integer ≥ ${min}, got '${v}'`);
  return n;
};
const workloads: Workload[] = values.only === undefined ? [...WORKLOADS] : values.only.split(',').map((w) => {
  if (!(WORKLOADS as readonly string[]).includes(w)) throw new RangeError(`unknown workload '${w}'; expected some of ${WORKLOADS.join(', ')}`);
  return w as Workload;
});
const threads = torch.getNumThreads();
const device = values.device!;
if (device !== 'cpu' && !torch.cuda.isAvailable()) throw new Error(`--device ${device}: this addon's libtorch has no CUDA (build it against a CUDA libtorch: scripts/gpu-bench.sh)`);
const NORMALIZATION = { mean: 0.1307, std: 0.3081 };
const models = Object.fromEntries(
  (['baseline', 'small', 'upscaler'] as const).map((kind) => [kind, { ...presetModel(kind), normalization: NORMALIZATION }]),
) as Record<ModelKind, ReturnType<typeof presetModel> & { normalization: typeof NORMALIZATION }>;
const plan = {
  workloads,
  device,
  threads,
  latencyThreads: int('latency-threads', values['latency-threads']),
  reps: int('reps', values.reps),
  warmup: int('warmup', values.warmup, 0),
  trainSteps: int('train-steps', values['train-steps']),
  classifierSteps: int('classifier-steps', values['classifier-steps']),
  sampleReps: int('sample-reps', values['sample-reps']),
  sampleBatch: 256,
  latencySamples: int('latency-samples', values['latency-samples']),
  profileTop: values.profile === undefined ? undefined : int('profile', values.profile),
  latencyWarmup: 3,
  batch: 128,
  // What the peer needs to build the same networks and sample the same chain.
  models: Object.fromEntries(
    Object.entries(models).map(([kind, m]) => {
      const terms = new NoiseSchedule(m.schedule).terms;
      const plain = (a: Float64Array) => Array.from(a);
      return [kind, {
        imageSize: m.imageSize, numTimesteps: m.schedule.numTimesteps, inChannels: m.unet.inChannels, ...m.normalization,
        schedule: {
          sqrtAlphasCumprod: plain(terms.sqrtAlphasCumprod), sqrtOneMinusAlphasCumprod: plain(terms.sqrtOneMinusAlphasCumprod),
          posteriorMeanCoef1: plain(terms.posteriorMeanCoef1), posteriorMeanCoef2: plain(terms.posteriorMeanCoef2),
          posteriorVariance: plain(terms.posteriorVariance),
        },
      }];
    }),
  ),
};

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Where one repetition of our training goes: the `top` operators by time of their own, per step. */
function profileLines(w: Workload, side: string, runner: Runner, top: number): string {
  const { profile: p } = torch.profile(() => runner.rep());
  const steps = w === 'train-classifier' ? plan.classifierSteps : plan.trainSteps;
  const ms = (us: number) => (us / 1000 / steps).toFixed(2).padStart(8);
  const share = (us: number) => `${((100 * us) / p.wallUs).toFixed(1).padStart(5)} %`;
  const rows = p.ops.slice(0, top).map((op) => `  ${ms(op.selfUs)} ${share(op.selfUs)} ${ms(op.totalUs)} ${String(op.calls / steps).padStart(6)}  ${op.name}`);
  return [`\nprofile of ${w}, ${side} (libtorch's profiler, ${steps} steps, ${ms(p.wallUs).trim()} ms per step): own ms/step, share, total ms/step, calls/step, operator`, ...rows].join('\n');
}

/** One side of a workload, set up and warmed up: each call of `rep` times one repetition. */
interface Runner {
  rep: () => number | Promise<number>;
  dispose: () => void;
}

/**
 * A runner timing `inner` calls of `fn` after `warmup` untimed ones: seconds per call, or `perSecond` divided by
 * that (a rate).
 */
function runner(fn: () => void, warmup: number, inner: number, dispose: () => void, perSecond?: number): Runner {
  for (let i = 0; i < warmup; i++) fn();
  return {
    rep: () => {
      torch.cuda.synchronize();
      const start = performance.now();
      for (let i = 0; i < inner; i++) fn();
      torch.cuda.synchronize();
      const seconds = (performance.now() - start) / 1000 / inner;
      return perSecond === undefined ? seconds : perSecond / seconds;
    },
    dispose,
  };
}

/** The network's forward in `precision` (the trainer's autocast), its output float32 for the loss. */
function forwardIn(precision: Precision, forward: () => torch.Tensor): torch.Tensor {
  if (precision === 'float32') return forward();
  const out = torch.autocast({ device }, forward);
  return torch.consume(out, (o) => o.float());
}

// The trainer's step (src/training/train-diffusion.ts) on synthetic data; with `graphs`, as the trainer runs it on
// a GPU: the batch drawn eagerly, the loss and its backward replayed as one CUDA graph.
function trainUNet(kind: ModelKind, precision: Precision, graphs = false): Runner {
  torch.manualSeed(0);
  const model = new DiffusionModel(models[kind], device);
  const scheduler = model.scheduler();
  const optimizer = new Adam(model.unet.parameters(), { lr: 1e-3 });
  const b = plan.batch;
  const size = models[kind].imageSize;
  const x0 = torch.keep(torch.randn([b, 1, size, size], { device }));
  const labels = torch.keep(torch.randint(0, 10, [b], { device }));
  const cond = model.isUpscaler ? torch.keep(torch.randn([b, 1, size, size], { device })) : undefined;
  model.unet.train();
  const lossOf = (xt: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) => mseLoss(forwardIn(precision, () => model.predictNoise(xt, t, labels, cond)), noise);
  const graphed = graphs
    ? new torch.GraphedFunction(([xt, t, noise]) => {
      const loss = lossOf(xt!, t!, noise!);
      loss.backward();
      return loss;
    }, { device, warmup: 1, reset: () => optimizer.zeroGrad(), onFallback: (reason) => note(`training ${kind}: ${reason}`) })
    : undefined;
  const step = () => {
    torch.tidy(() => {
      const t = torch.randint(0, model.numTimesteps, [b], { device });
      const noise = torch.randn(x0.shape, { device });
      const xt = scheduler.addNoise(x0, noise, t);
      let loss: torch.Tensor;
      if (graphed !== undefined) {
        loss = graphed.call([xt, t, noise])[0]!;
      } else {
        loss = lossOf(xt, t, noise);
        optimizer.zeroGrad();
        loss.backward();
      }
      optimizer.step();
      return loss.item();
    });
  };
  return runner(step, Math.max(plan.warmup, graphs ? 2 : 0), plan.trainSteps, () => {
    graphed?.dispose();
    torch.dispose([x0, labels, cond]);
    scheduler.dispose();
    optimizer.dispose();
    model.dispose();
  }, b);
}

// The CAS classifier's step (src/eval/classifier.ts) on synthetic data.
function trainClassifier(precision: Precision): Runner {
  torch.manualSeed(0);
  const model = new Classifier().train();
  if (device !== 'cpu') model.to({ device });
  const optimizer = new AdamW(model.parameters(), { lr: 1e-3 });
  const x = torch.keep(torch.randn([plan.batch, 1, 28, 28], { device }));
  const y = torch.keep(torch.randint(0, 10, [plan.batch], { device }));
  const step = () => {
    torch.tidy(() => {
      const loss = crossEntropy(forwardIn(precision, () => model.forward(x)), y);
      optimizer.zeroGrad();
      loss.backward();
      optimizer.step();
      return loss.item();
    });
  };
  return runner(step, plan.warmup, plan.classifierSteps, () => {
    torch.dispose([x, y]);
    optimizer.dispose();
    model.dispose();
  }, plan.batch);
}

// Sampling runs on the shipped trained runs, so that every side samples with the same weights.
const RUNS = Object.fromEntries(
  (['baseline', 'small', 'upscaler'] as const).map((k) => [k, fileURLToPath(new URL(`../pretrained/mnist/${k}-1`, import.meta.url))]),
) as Record<ModelKind, string>;
const oursEngine = defaultEngine(device);

/**
 * Who samples (each is also its column): our default engine, our libtorch engine, ours without CUDA graphs (on a
 * GPU), or ONNX Runtime on PyTorch's export (in our loop).
 */
type Sampler = 'ours' | 'ours-libtorch' | 'ours-eager' | 'ort-pytorch-export';

let exportDir: string | undefined;
const exported = new Map<ModelKind, Uint8Array>();
/** PyTorch's torch.onnx.export of a run's U-Net (bench/peer/export_onnx.py), made once per run. */
function pytorchExport(kind: ModelKind): Uint8Array {
  const done = exported.get(kind);
  if (done !== undefined) return done;
  exportDir ??= mkdtempSync(join(tmpdir(), 'ssddpm-bench-onnx-'));
  const file = join(exportDir, `${kind}.onnx`);
  const script = fileURLToPath(new URL('./peer/export_onnx.py', import.meta.url));
  const r = spawnSync(python, [script, join(RUNS[kind], 'config.json'), latestCheckpoint(RUNS[kind])!.path, file, 'model'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`torch.onnx.export failed: ${r.stderr.trim().split('\n').pop()}`);
  exported.set(kind, readFileSync(file));
  return exported.get(kind)!;
}

function loadSampler(kind: ModelKind, who: Sampler): SamplingModel {
  if (who === 'ort-pytorch-export') return OnnxDiffusionModel.fromNoisePredictor(pytorchExport(kind), readRunConfig(RUNS[kind]).model, { threads: torch.getNumThreads() });
  return who === 'ours' && oursEngine === 'onnxruntime' ? loadOnnxModel(RUNS[kind], { ema: false }) : loadModel(RUNS[kind], { device, ema: false });
}

/** A sampling workload's runner for `who`. */
function samplingRunner(w: Workload, who: Sampler): Runner {
  torch.manualSeed(0);
  const opts = { cudaGraphs: who !== 'ours-eager' };
  if (w === 'sample-batched') {
    const model = loadSampler('baseline', who);
    const labels = Array.from({ length: plan.sampleBatch }, (_, i) => i % 10);
    return runner(() => model.sample(labels, opts).sample.dispose(), 1, 1, () => model.dispose(), plan.sampleBatch * models.baseline.schedule.numTimesteps);
  }
  const name = w.slice('latency-'.length);
  const kinds: ModelKind[] = name === 'baseline' ? ['baseline'] : name === 'small-upscaled' ? ['small'] : ['small', 'upscaler'];
  const p: Pipeline = { models: kinds.map((k) => loadSampler(k, who)), ...(name === 'small-upscaled' ? { upscaleTo: 28 } : {}) };
  let i = 0;
  return runner(() => samplePipeline(p, [i++ % 10], opts).dispose(), plan.latencyWarmup, plan.latencySamples, () => {
    for (const m of p.models) m.dispose();
  });
}

const isSampling = (w: Workload) => w === 'sample-batched' || w.startsWith('latency');

function trainingRunner(w: Workload, precision: Precision, graphs = false): Runner {
  switch (w) {
    case 'train-baseline': return trainUNet('baseline', precision, graphs);
    case 'train-small': return trainUNet('small', precision, graphs);
    case 'train-upscaler': return trainUNet('upscaler', precision, graphs);
    default: return trainClassifier(precision);
  }
}

// Why the peer cannot run, or undefined when it can.
function peerUnavailable(python: string): string | undefined {
  if (values['no-peer']) return 'PyTorch peer not run (--no-peer)';
  try {
    execFileSync(python, ['-c', 'import torch'], { stdio: 'ignore' });
    return undefined;
  } catch {
    return `PyTorch peer skipped: ${python} is missing or has no torch (apt-get install python3-torch)`;
  }
}

/** How the peer runs a workload: eager, traced for inference (sampling), or bfloat16 autocast (training). */
type PeerMode = 'eager' | 'jit' | 'bf16' | 'compile';
const PEER_COLUMN = { eager: 'pytorch', jit: 'pytorch-jit', bf16: 'pytorch-bf16', compile: 'pytorch-compile' } as const;

/** The PyTorch peer as one long-lived process that times one repetition per request. */
class Peer {
  readonly #child: ChildProcessWithoutNullStreams;
  readonly #lines: AsyncIterator<string>;
  version = '';

  constructor(python: string) {
    const script = fileURLToPath(new URL('./peer/bench_peer.py', import.meta.url));
    const weights = Object.fromEntries(Object.entries(RUNS).map(([k, run]) => [k, latestCheckpoint(run)!.path]));
    this.#child = spawn(python, [script, JSON.stringify({ ...plan, weights })], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.#lines = createInterface({ input: this.#child.stdout })[Symbol.asyncIterator]();
    let stderr = '';
    this.#child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    this.#child.on('exit', () => (this.#stderr = stderr));
  }

  #stderr = '';

  async #ask(request: object): Promise<Record<string, unknown>> {
    this.#child.stdin.write(`${JSON.stringify(request)}\n`);
    const line = await this.#lines.next();
    if (line.done) throw new Error(`the PyTorch peer stopped: ${this.#stderr.trim().split('\n').pop() ?? ''}`);
    return JSON.parse(line.value) as Record<string, unknown>;
  }

  /** A runner for one workload in `mode` (its first request sets it up and warms it up, untimed). */
  async runner(w: Workload, mode: PeerMode): Promise<Runner> {
    const first = await this.#ask({ workload: w, mode });
    this.version = String(first.torch);
    return {
      rep: async () => Number((await this.#ask({ workload: w, mode })).value),
      dispose: () => void this.#ask({ release: w, mode }),
    };
  }

  close(): void {
    this.#child.stdin.end();
  }
}

// --- run ---------------------------------------------------------------------------------------------------
// Each workload runs ours, then the peer, before the next one: shared machines drift over minutes, and
// adjacent measurements keep the ratio honest.
// Ours runs as the command line does (freed memory kept for reuse); the peer with its own allocator settings, which
// GLIBC_TUNABLES (inherited by the peer's process) can make the same.
const retained = torch.retainFreedHostMemory();
// bfloat16 training rows where this device runs bfloat16 natively (on a CPU: AVX-512 BF16 or AMX).
const bf16Problem = device === 'cpu' ? torch.cpuBfloat16Problem() : undefined;
const peak = cpuPeak();
// What this device's own matrix multiply reaches, float32 and bfloat16: the GFLOP/s column's yardstick.
const matmulPeak = { float32: measuredMatmulGflops('float32', device), bfloat16: bf16Problem === undefined ? measuredMatmulGflops('bfloat16', device) : undefined };
const peakGflops = matmulPeak.float32;
console.log(`libtorch ${torch.torchVersion} on ${device}; ${threads} threads (batch-1 latency: ${plan.latencyThreads}); median of ${plan.reps} repetitions after warm-up`);
// Debian's python3-torch shares the addon's libtorch; BENCH_PYTHON names another (a pip CUDA build).
const python = process.env.BENCH_PYTHON ?? '/usr/bin/python3';
let peerProblem = peerUnavailable(python);
let peerVersion = '';
/** Each column's values per workload: ours (default engine), ours on libtorch, and the peers. */
const COLUMNS = ['ours', 'ours-libtorch', 'ours-eager', 'ours-bf16', 'pytorch', 'pytorch-jit', 'pytorch-bf16', 'pytorch-compile', 'ort-pytorch-export'] as const;
type Column = (typeof COLUMNS)[number];
const HEADS: Record<Column, string> = {
  ours: 'ours', 'ours-libtorch': 'ours (libtorch)', 'ours-eager': 'ours eager', 'ours-bf16': 'ours bf16', pytorch: 'PyTorch', 'pytorch-jit': 'PyTorch jit', 'pytorch-bf16': 'PyTorch bf16', 'pytorch-compile': 'PyTorch compiled', 'ort-pytorch-export': 'ORT on PyTorch export',
};
const results = Object.fromEntries(COLUMNS.map((c) => [c, {}])) as Record<Column, Partial<Record<Workload, number[]>>>;
const notes: string[] = [];
const note = (line: string) => {
  if (!notes.includes(line)) notes.push(line);
};
// The Node-side samplers of the sampling rows: ours on each engine, and ONNX Runtime on PyTorch's export where
// PyTorch can make it.
// On a GPU, ours is the captured path (CUDA graphs, our default there) and "ours eager" launches every kernel.
const graphs = device !== 'cpu' && torch.cudaGraphsAvailable();
const nodeSamplers: Sampler[] = ['ours', ...(oursEngine !== 'libtorch' ? ['ours-libtorch' as const] : []), ...(graphs ? ['ours-eager' as const] : [])];
if (device === 'cpu' && peerProblem === undefined) {
  try {
    pytorchExport('baseline');
    nodeSamplers.push('ort-pytorch-export');
  } catch (err) {
    note(`ONNX Runtime on PyTorch's export not run: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`);
  }
}
const peerProcess = peerProblem === undefined ? new Peer(python) : undefined;
const profiles: string[] = [];
for (const w of workloads) {
  torch.setNumThreads(w.startsWith('latency') ? plan.latencyThreads : threads);
  const sides: { column: Column; runner: Runner }[] = isSampling(w)
    ? nodeSamplers.map((who) => ({ column: who, runner: samplingRunner(w, who) }))
    : [
      { column: 'ours', runner: trainingRunner(w, 'float32', graphs) },
      ...(graphs ? [{ column: 'ours-eager' as const, runner: trainingRunner(w, 'float32') }] : []),
      ...(bf16Problem === undefined ? [{ column: 'ours-bf16' as const, runner: trainingRunner(w, 'bf16', graphs) }] : []),
    ];
  // On a GPU, training also beside torch.compile(mode="reduce-overhead") (PyTorch 2: CUDA graphs).
  const peerModes: PeerMode[] = isSampling(w) ? ['eager', 'jit'] : [...(['eager'] as const), ...(bf16Problem === undefined ? (['bf16'] as const) : []), ...(device === 'cpu' ? [] : (['compile'] as const))];
  for (const mode of peerProcess === undefined ? [] : peerModes) {
    try {
      sides.push({ column: PEER_COLUMN[mode], runner: await peerProcess!.runner(w, mode) });
    } catch (err) {
      note(`PyTorch ${mode} peer failed on ${w}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  // One repetition of each side in turn: every side sees the machine as it is at that moment.
  const reps = w === 'sample-batched' ? plan.sampleReps : plan.reps;
  console.error(`${w}: ${sides.map((x) => HEADS[x.column]).join(', ')}, ${reps} rounds…`);
  for (const side of sides) results[side.column][w] = [];
  for (let r = 0; r < reps; r++) {
    for (const side of sides) results[side.column][w]!.push(await side.runner.rep());
  }
  if (plan.profileTop !== undefined && !isSampling(w)) {
    for (const side of sides.filter((x) => x.column.startsWith('ours'))) profiles.push(profileLines(w, HEADS[side.column], side.runner, plan.profileTop));
  }
  for (const side of sides) side.runner.dispose();
  peerVersion = peerProcess?.version ?? '';
}
peerProcess?.close();
if (exportDir !== undefined) rmSync(exportDir, { recursive: true, force: true });

// FLOPs per unit of each workload's rate (per training sample, per network evaluation, per sample).
const fwd = (k: ModelKind) => unetForwardFlops(models[k].unet, models[k].imageSize);
const unitFlops: Record<Workload, number> = {
  'train-baseline': TRAINING_FLOPS_PER_FORWARD * fwd('baseline'),
  'train-small': TRAINING_FLOPS_PER_FORWARD * fwd('small'),
  'train-upscaler': TRAINING_FLOPS_PER_FORWARD * fwd('upscaler'),
  'train-classifier': TRAINING_FLOPS_PER_FORWARD * classifierForwardFlops(),
  'sample-batched': fwd('baseline'),
  'latency-baseline': models.baseline.schedule.numTimesteps * fwd('baseline'),
  'latency-small-upscaled': models.small.schedule.numTimesteps * fwd('small'),
  'latency-cascaded': models.small.schedule.numTimesteps * fwd('small') + models.upscaler.schedule.numTimesteps * fwd('upscaler'),
};
const isLatency = (w: Workload) => w.startsWith('latency');
const unit = (w: Workload) => (isLatency(w) ? 'ms/sample' : w === 'sample-batched' ? 'evals/s' : 'samples/s');
const show = (w: Workload, v: number) => (isLatency(w) ? (v * 1000).toFixed(1) : v.toFixed(0));
const gflops = (w: Workload, v: number) => (isLatency(w) ? unitFlops[w] / v : unitFlops[w] * v) / 1e9;

const PEERS = ['pytorch', 'pytorch-jit', 'pytorch-compile', 'ort-pytorch-export'] as const;
const valueOf = (c: Column, w: Workload) => (results[c][w] === undefined ? undefined : median(results[c][w]!));
/** The fastest peer's value (lowest latency, highest rate). */
function bestPeer(w: Workload): number | undefined {
  const vs = PEERS.map((c) => valueOf(c, w)).filter((v): v is number => v !== undefined);
  if (vs.length === 0) return undefined;
  return isLatency(w) ? Math.min(...vs) : Math.max(...vs);
}
/** (max − min) / median of a column's repetitions. */
function spread(c: Column, w: Workload): number | undefined {
  const xs = results[c][w];
  return xs === undefined ? undefined : (Math.max(...xs) - Math.min(...xs)) / median(xs);
}
// A side whose repetitions differ by more than this was sharing the machine; a ratio with such a side is unreliable.
const NOISY_SPREAD = 0.2;
const noisy = (c: Column | undefined, w: Workload) => c !== undefined && (spread(c, w) ?? 0) > NOISY_SPREAD;
const bestPeerColumn = (w: Workload) => PEERS.find((c) => valueOf(c, w) !== undefined && valueOf(c, w) === bestPeer(w));
const ratio: Partial<Record<Workload, number>> = {};
const vsBest: Partial<Record<Workload, number>> = {};
const bf16Ratio: Partial<Record<Workload, number>> = {};
const unreliable = { ratio: new Set<Workload>(), vsBest: new Set<Workload>(), bf16: new Set<Workload>() };
// Only the columns this run measured (a CPU has no compiled peer, a GPU no ONNX Runtime column).
const shown = COLUMNS.filter((c) => workloads.some((w) => results[c][w] !== undefined));
const rows: string[][] = [['workload', 'unit', ...shown.map((c) => HEADS[c]), 'ours/PyTorch', 'ours/best peer', 'bf16/PyTorch bf16', 'ours GFLOP/s', '% of f32 matmul']];
const spreadRows: string[][] = [['workload', 'min / median / max', ...shown.map((c) => HEADS[c])]];
for (const w of workloads) {
  const o = valueOf('ours', w)!;
  const pm = valueOf('pytorch', w);
  const best = bestPeer(w);
  if (pm !== undefined) ratio[w] = o / pm;
  if (best !== undefined) vsBest[w] = o / best;
  if (noisy('ours', w) || noisy('pytorch', w)) unreliable.ratio.add(w);
  if (noisy('ours', w) || noisy(bestPeerColumn(w), w)) unreliable.vsBest.add(w);
  const [ob, pb] = [valueOf('ours-bf16', w), valueOf('pytorch-bf16', w)];
  if (ob !== undefined && pb !== undefined) bf16Ratio[w] = ob / pb;
  if (noisy('ours-bf16', w) || noisy('pytorch-bf16', w)) unreliable.bf16.add(w);
  const mark = (set: Set<Workload>) => (set.has(w) ? '?' : '');
  rows.push([w, unit(w), ...shown.map((c) => {
    const v = valueOf(c, w);
    return v === undefined ? '–' : show(w, v);
  }), pm === undefined ? '–' : `${(o / pm).toFixed(2)}×${mark(unreliable.ratio)}`, best === undefined ? '–' : `${(o / best).toFixed(2)}×${mark(unreliable.vsBest)}`,
    bf16Ratio[w] === undefined ? '–' : `${bf16Ratio[w]!.toFixed(2)}×${mark(unreliable.bf16)}`,
    gflops(w, o).toFixed(1), `${((100 * gflops(w, o)) / peakGflops).toFixed(1)}%`]);
  spreadRows.push([w, unit(w), ...shown.map((c) => {
    const xs = results[c][w];
    return xs === undefined ? '–' : `${show(w, Math.min(...xs))} / ${show(w, median(xs))} / ${show(w, Math.max(...xs))}${noisy(c, w) ? ' noisy' : ''}`;
  })]);
}
const printTable = (table: string[][]) => {
  const widths = table[0]!.map((_, c) => Math.max(...table.map((r) => r[c]!.length)));
  for (const r of table) console.log(r.map((cell, c) => (c < 2 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  '));
};
printTable(rows);
console.log(`\nrepetitions (taken in turn, one of each side per round; "noisy": max − min above ${100 * NOISY_SPREAD} % of the median, and a ratio with a noisy side is marked ?):`);
printTable(spreadRows);
console.log('');
console.log(`ours: training on libtorch, sampling on ${oursEngine} (our default on ${device})`);
console.log(peerProblem ?? `PyTorch ${peerVersion} from ${python}, same threads and settings: eager, and jit = traced, frozen, torch.jit.optimize_for_inference; sampling with the shipped runs' weights on every side`);
for (const line of notes) console.log(line);
for (const text of profiles) console.log(text);
if (retained) console.log(`ours keeps freed host memory for reuse (glibc malloc: mmap threshold 32 MiB, trim threshold 1 GiB), as the command line does; the peer ${process.env.GLIBC_TUNABLES ? `runs with GLIBC_TUNABLES=${process.env.GLIBC_TUNABLES}` : 'with glibc\'s defaults (GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824 gives it the same)'}`);
console.log(`matrix multiply (2048², libtorch, ${threads} threads on ${device}): float32 ${matmulPeak.float32.toFixed(0)} GFLOP/s, bfloat16 ${matmulPeak.bfloat16 === undefined ? `not run (${bf16Problem})` : `${matmulPeak.bfloat16.toFixed(0)} GFLOP/s`}`);
if (device === 'cpu' && peak.gflops > 0) console.log(`nominal CPU peak: ${peak.gflops.toFixed(0)} GFLOP/s = ${peak.description}`);
console.log('FLOPs: convolutions and linear layers only (2 per multiply-add); a training step counted as 3 forward passes.');

// The paper protocol (PRESETS.full) from our rates: 3 trainings × 10 epochs × 50k images per model;
// 3 pipelines × 2 samplings × 3 runs × 3334 samples at batch 256; 7 CAS datasets × 5 classifiers × 5 epochs
// × 10k images; 3 × 1000 batch-1 samples. Small-model evaluations are costed by FLOPs relative to the baseline's.
function protocolHours(): number | undefined {
  const get = (w: Workload) => valueOf('ours', w);
  const tb = get('train-baseline'), ts = get('train-small'), tu = get('train-upscaler'), tc = get('train-classifier'), sb = get('sample-batched');
  const lb = get('latency-baseline'), ls = get('latency-small-upscaled'), lc = get('latency-cascaded');
  if ([tb, ts, tu, tc, sb, lb, ls, lc].some((v) => v === undefined)) return undefined;
  const f = PRESETS.full;
  const images = f.runs * f.epochs * 10 * f.perClass;
  const training = images / tb! + images / ts! + images / tu!;
  const evalSeconds = (k: ModelKind) => fwd(k) / fwd('baseline') / sb!;
  const perSample = models.baseline.schedule.numTimesteps * evalSeconds('baseline') + models.small.schedule.numTimesteps * evalSeconds('small') +
    models.small.schedule.numTimesteps * evalSeconds('small') + models.upscaler.schedule.numTimesteps * evalSeconds('upscaler');
  const generation = 2 * f.runs * f.samplesPerRun * perSample;
  const cas = 7 * f.classifiers * f.casEpochs * f.casImages / tc!;
  const speed = f.speedSamples * (lb! + ls! + lc!);
  return (training + generation + cas + speed) / 3600;
}
const hours = protocolHours();
if (hours !== undefined) console.log(`paper protocol estimate: ${hours.toFixed(2)} h (trainings, generated sets, CAS classifiers, speed; from the rates above)`);
const fmt = (v: number | undefined, d: number) => (v === undefined ? 'n/a' : v.toFixed(d));
const baselineSeconds = valueOf('ours', 'latency-baseline');
const baselineMs = baselineSeconds === undefined ? undefined : baselineSeconds * 1000;
const unreliableFields = [
  ...(unreliable.ratio.has('train-baseline') ? ['train'] : []),
  ...(unreliable.ratio.has('latency-baseline') ? ['latency'] : []),
  ...(unreliable.vsBest.has('latency-baseline') ? ['latency_vs_best'] : []),
];
const oursBf16 = valueOf('ours-bf16', 'train-baseline');
if (oursBf16 !== undefined) unreliableFields.push(...(unreliable.bf16.has('train-baseline') ? ['train_bf16'] : []));
const trainPeak = valueOf('ours', 'train-baseline') === undefined ? undefined : gflops('train-baseline', valueOf('ours', 'train-baseline')!) / peakGflops;
const compiled = valueOf('pytorch-compile', 'train-baseline');
const vsCompile = compiled === undefined || valueOf('ours', 'train-baseline') === undefined ? '' : ` train_vs_compile=${fmt(valueOf('ours', 'train-baseline')! / compiled, 2)}x`;
console.log(`summary: train=${fmt(ratio['train-baseline'], 2)}x${vsCompile} train_bf16=${fmt(bf16Ratio['train-baseline'], 2)}x bf16_vs_fp32_peer=${fmt(oursBf16 === undefined || valueOf('pytorch', 'train-baseline') === undefined ? undefined : oursBf16 / valueOf('pytorch', 'train-baseline')!, 2)}x train_of_matmul_peak=${fmt(trainPeak, 2)} latency=${fmt(ratio['latency-baseline'], 2)}x baseline_sample_ms=${fmt(baselineMs, 1)} protocol_h=${fmt(hours, 2)} latency_vs_best=${fmt(vsBest['latency-baseline'], 2)} unreliable=${unreliableFields.length === 0 ? 'none' : unreliableFields.join(',')}`);
