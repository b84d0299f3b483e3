// The entry point of ranks 1..N-1 started by `ssddpm train --nproc N` (local-workers.ts): joins the run of the
// environment's rank 0, trains with it, and exits non-zero with one line when it cannot.
import { readDistributedEnvironment } from '../distributed/environment.ts';
import { retainFreedHostMemory } from '../torch/runtime.ts';
import { RunRefused } from './data-parallel.ts';
import { WORKER_SPEC_VARIABLE, type WorkerSpec } from './local-workers.ts';
import { trainDiffusion } from './train-diffusion.ts';

// A training process of ours, as the command line's rank 0 is: keep freed memory for the next step.
retainFreedHostMemory();
const spec = JSON.parse(process.env[WORKER_SPEC_VARIABLE] ?? '{}') as WorkerSpec;
const env = readDistributedEnvironment();
try {
  if (env === undefined) throw new Error(`${WORKER_SPEC_VARIABLE} is set but WORLD_SIZE is not: this file is started by \`ssddpm train --nproc\``);
  // The run's folder and settings are rank 0's: it sends them.
  trainDiffusion({ out: '', distributed: env, device: spec.device, timeoutSeconds: spec.timeoutSeconds });
} catch (err) {
  // Rank 0, the launcher, says why it refused.
  if (!(err instanceof RunRefused)) process.stderr.write(`ssddpm: [rank ${env?.rank ?? '?'}] ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
}
