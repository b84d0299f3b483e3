// Data-parallel training throughput: the paper's baseline trained by the real trainer (MNIST, global batch 128,
// Adam) in one process with 1 and 2 intra-op threads, and on 2 processes with 1 thread each (c10d Gloo, gradients
// all-reduced every step; per-process and synchronised batch norm). Steps after a warm-up are timed on rank 0;
// configurations are interleaved over repetitions and the median is printed. Last line:
//   summary: one_x2=<samples/s> two_x1=<samples/s> ratio=<2×1 / 1×2> scaling_efficiency=<2×1 / (2 · 1×1)>
//   npm run bench:distributed -- [--reps 2] [--steps 15] [--warmup 4]
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { getNumThreads, setNumThreads, torchVersion } from '../src/torch/runtime.ts';
import { trainDiffusion } from '../src/training/train-diffusion.ts';

const { values } = parseArgs({
  options: {
    reps: { type: 'string', default: '2' },
    steps: { type: 'string', default: '15' },
    warmup: { type: 'string', default: '4' },
    help: { type: 'boolean', default: false },
  },
});
if (values.help) {
  console.log('npm run bench:distributed -- [--reps 2] [--steps 15] [--warmup 4]\n  reps    repetitions of every configuration (interleaved)\n  steps   timed training steps per repetition\n  warmup  steps before timing');
  process.exit(0);
}
const reps = Number(values.reps);
const steps = Number(values.steps);
const warmup = Number(values.warmup);
const BATCH = 128;

interface Config {
  name: string;
  nproc: number;
  threads: number;
  syncBatchNorm?: boolean;
}

const CONFIGS: Config[] = [
  { name: '1 process × 2 threads', nproc: 1, threads: 2 },
  { name: '2 processes × 1 thread', nproc: 2, threads: 1 },
  { name: '2 processes × 1 thread, --sync-bn', nproc: 2, threads: 1, syncBatchNorm: true },
  { name: '1 process × 1 thread', nproc: 1, threads: 1 },
];

// One epoch long enough for the warm-up and the timed steps; samples/s over the timed steps, seen by rank 0.
function measure(c: Config): number {
  const out = mkdtempSync(join(tmpdir(), 'ssddpm-bench-distributed-'));
  const previous = getNumThreads();
  if (c.nproc === 1) setNumThreads(c.threads);
  const perClass = Math.ceil(((warmup + steps + 1) * BATCH) / 10);
  let start = 0;
  let end = 0;
  try {
    trainDiffusion({
      out,
      model: 'baseline',
      training: { epochs: 1, batchSize: BATCH, perClass, seed: 1 },
      nproc: c.nproc,
      threadsPerProcess: c.threads,
      syncBatchNorm: c.syncBatchNorm,
      onProgress: (p) => {
        if (p.step === warmup) start = performance.now();
        if (p.step === warmup + steps) end = performance.now();
      },
    });
  } finally {
    setNumThreads(previous);
    rmSync(out, { recursive: true, force: true });
  }
  return (steps * BATCH) / ((end - start) / 1000);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

console.log(`libtorch ${torchVersion}; ${availableParallelism()} cores (${cpus()[0]?.model ?? 'unknown CPU'}); baseline U-Net, global batch ${BATCH}; ${steps} steps timed after ${warmup}, ${reps} repetitions`);
// Other jobs on these cores slow libtorch far more than their share: the load average says whether there were any.
const load = () => loadavg().map((x) => x.toFixed(2)).join(' ');
console.log(`load average before: ${load()}`);
const results = new Map<string, number[]>(CONFIGS.map((c) => [c.name, []]));
for (let r = 0; r < reps; r++) {
  for (const c of CONFIGS) {
    const v = measure(c);
    results.get(c.name)!.push(v);
    console.log(`  rep ${r + 1}: ${c.name.padEnd(36)} ${v.toFixed(1)} samples/s`);
  }
}
console.log(`load average after: ${load()}`);
const m = new Map([...results].map(([k, v]) => [k, median(v)]));
console.log('\ntraining samples/s (median)');
for (const c of CONFIGS) console.log(`  ${c.name.padEnd(36)} ${m.get(c.name)!.toFixed(1)}  (${results.get(c.name)!.map((v) => v.toFixed(1)).join(', ')})`);
const one2 = m.get(CONFIGS[0]!.name)!;
const two1 = m.get(CONFIGS[1]!.name)!;
const one1 = m.get(CONFIGS[3]!.name)!;
console.log(`2 × 1 thread vs 1 × 2 threads: ${(two1 / one2).toFixed(2)}×; scaling efficiency of 2 processes (vs 2 × one process on 1 thread): ${((100 * two1) / (2 * one1)).toFixed(0)} %`);
console.log(`summary: one_x2=${one2.toFixed(1)} two_x1=${two1.toFixed(1)} ratio=${(two1 / one2).toFixed(2)} scaling_efficiency=${(two1 / (2 * one1)).toFixed(2)}`);
