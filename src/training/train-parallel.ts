// How a data-parallel training starts and stops: `nproc` processes on this machine (this one is rank 0 and
// supervises the others), or one rank of a run started by torchrun's environment variables. Either way a rank
// that fails stops the run: the others' next collective fails within the timeout, naming it, and rank 0 of an
// `nproc` run kills its remaining workers.
import { DistributedError, type DistributedEnvironment } from '../distributed/environment.ts';
import { initProcessGroup, joinGroup, openStore } from '../distributed/rendezvous.ts';
import type { ProcessGroup } from '../distributed/process-group.ts';
import { getNumThreads, setNumThreads } from '../torch/runtime.ts';
import { DataParallel } from './data-parallel.ts';
import { LocalWorkers } from './local-workers.ts';

/** How long a rank waits for the others by default (rendezvous, each collective, rank 0's checkpoint writes). */
export const DEFAULT_TIMEOUT_SECONDS = 300;

export interface ParallelSettings {
  device?: string;
  /** Batch norm over the global batch (see convertSyncBatchNorm); a resumed run keeps its own unless given. */
  syncBatchNorm?: boolean;
  timeoutSeconds?: number;
  /** Intra-op threads of each process on the CPU (default 1). */
  threadsPerProcess?: number;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function timeoutMs(s: ParallelSettings): number {
  const seconds = s.timeoutSeconds ?? DEFAULT_TIMEOUT_SECONDS;
  if (!(seconds > 0) || !Number.isFinite(seconds)) throw new RangeError(`the distributed timeout must be a positive number of seconds, got ${seconds}`);
  return seconds * 1000;
}

/** `device` for a local rank: each rank takes its own GPU. */
export function rankDevice(device: string | undefined, localRank: number): string | undefined {
  return device?.startsWith('cuda') ? `cuda:${localRank}` : device;
}

// One thread per process on the CPU by default: N processes share the machine's cores.
function withThreads<T>(s: ParallelSettings, body: () => T): T {
  const previous = getNumThreads();
  if (!s.device?.startsWith('cuda')) setNumThreads(s.threadsPerProcess ?? 1);
  try {
    return body();
  } finally {
    setNumThreads(previous);
  }
}

// MASTER_PORT when set (checked), else 0: the store takes a free port.
function storePort(): number {
  const raw = process.env.MASTER_PORT;
  if (raw === undefined || raw.trim() === '') return 0;
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new DistributedError(`MASTER_PORT must be an integer in 1..65535, got '${raw}'`);
  return port;
}

/**
 * Runs `rank0` as rank 0 of `nproc` processes of this machine, starting ranks 1..nproc-1 (train-worker.ts).
 * The store listens on MASTER_PORT when it is set, else on a free port. When anything fails, the workers still
 * running are killed and the error is rethrown.
 */
export function trainOnLocalProcesses<T>(nproc: number, s: ParallelSettings, rank0: (parallel: DataParallel) => T): T {
  const ms = timeoutMs(s);
  const env: DistributedEnvironment = { rank: 0, worldSize: nproc, localRank: 0, masterAddr: '127.0.0.1', masterPort: storePort(), agentStore: false };
  const store = openStore(env, ms);
  let workers: LocalWorkers | undefined;
  let group: ProcessGroup | undefined;
  try {
    workers = new LocalWorkers(nproc, store.port, { device: s.device, timeoutSeconds: ms / 1000, threads: s.threadsPerProcess ?? 1 });
    const ended = () => {
      const gone = workers!.ended();
      return gone.length === 0 ? undefined : `${gone.length === 1 ? 'rank' : 'ranks'} ${gone.join(', ')} ended before joining the run (see above)`;
    };
    group = joinGroup(store, { ...env, masterPort: store.port }, ms, ended);
    const parallel = new DataParallel(group);
    try {
      return withThreads(s, () => rank0(parallel));
    } finally {
      parallel.dispose();
    }
  } catch (err) {
    workers?.kill();
    if (err instanceof DistributedError) err.message += `; stopped the other ${nproc - 1 === 1 ? 'process' : 'processes'}`;
    throw err;
  } finally {
    group?.destroy();
    store.close();
  }
}

// torchrun gives each worker OMP_NUM_THREADS (1 when it starts several per machine); TORCH_NUM_THREADS wins.
function launcherThreads(): number | undefined {
  const omp = Number(process.env.OMP_NUM_THREADS);
  return process.env.TORCH_NUM_THREADS === undefined && Number.isInteger(omp) && omp >= 1 ? Math.min(omp, getNumThreads()) : undefined;
}

/**
 * Runs `body` as the rank `env` names, in the run the environment describes (torchrun's variables). A rank that
 * fails leaves its reason in the store for the others' messages.
 */
export function trainAsRank<T>(env: DistributedEnvironment, s: ParallelSettings, body: (parallel: DataParallel) => T): T {
  const group = initProcessGroup(env, timeoutMs(s));
  const parallel = new DataParallel(group);
  try {
    return withThreads({ ...s, threadsPerProcess: s.threadsPerProcess ?? launcherThreads() ?? getNumThreads() }, () => body(parallel));
  } catch (err) {
    if (!(err instanceof DistributedError)) group.reportFailure(messageOf(err).split('\n')[0]!);
    throw err;
  } finally {
    parallel.dispose();
    group.destroy();
    group.store.close();
  }
}
