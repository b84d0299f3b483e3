// The processes `--nproc N` starts beside this one (which is rank 0): ranks 1..N-1 of the same training, each
// told its place by torchrun's environment variables, on one intra-op thread unless asked otherwise.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** What a worker needs besides its environment: the rest it receives from rank 0. */
export interface WorkerSpec {
  device?: string;
  timeoutSeconds: number;
  threads: number;
}

export const WORKER_SPEC_VARIABLE = 'SSDDPM_TRAIN_WORKER';

const WORKER = fileURLToPath(new URL('./train-worker.ts', import.meta.url));

export class LocalWorkers {
  readonly #children: ChildProcess[] = [];

  /** Starts ranks 1..worldSize-1, which meet rank 0's store at 127.0.0.1:`port`. */
  constructor(worldSize: number, port: number, spec: WorkerSpec) {
    // tsx runs the TypeScript sources; an absolute URL finds it wherever the command is run from.
    const loader = import.meta.resolve('tsx');
    for (let rank = 1; rank < worldSize; rank++) {
      const env = {
        ...process.env,
        RANK: String(rank),
        LOCAL_RANK: String(rank),
        WORLD_SIZE: String(worldSize),
        LOCAL_WORLD_SIZE: String(worldSize),
        MASTER_ADDR: '127.0.0.1',
        MASTER_PORT: String(port),
        TORCH_NUM_THREADS: String(spec.threads),
        // c10d logs every failed connection through glog; our errors say what happened in one line.
        GLOG_minloglevel: process.env.GLOG_minloglevel ?? '3',
        [WORKER_SPEC_VARIABLE]: JSON.stringify(spec),
      };
      this.#children.push(spawn(process.execPath, ['--import', loader, WORKER], { env, stdio: ['ignore', 'inherit', 'inherit'] }));
    }
  }

  /** Process ids, by rank (rank 1 first). */
  get pids(): number[] {
    return this.#children.map((c) => c.pid ?? -1);
  }

  /** The ranks whose process has ended (an exit before training ends is a failure). */
  ended(): number[] {
    return this.#children.flatMap((c, i) => (c.pid === undefined || !running(c.pid) ? [i + 1] : []));
  }

  /** Stops every worker still running (SIGKILL: one that hangs inside a collective ignores nothing else). */
  kill(): void {
    for (const c of this.#children) if (c.pid !== undefined && running(c.pid)) c.kill('SIGKILL');
  }
}

// Whether a process runs, read synchronously (the trainer blocks the event loop that would report exits): on
// Linux a finished child that is not yet reaped is a zombie ('Z').
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' && process.platform === 'linux') return false;
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  }
}
