import { availableParallelism } from 'node:os';
import { native } from './binding.ts';

/** More threads than this many per core only add contention (and libtorch's spin-waiting makes it severe). */
const THREADS_PER_CORE = 4;

/** The most intra-op threads setNumThreads accepts: a few per core. */
export const maxThreads = THREADS_PER_CORE * availableParallelism();

/** Sets libtorch's intra-op thread count (torch.set_num_threads), 1 … maxThreads. */
export function setNumThreads(n: number): void {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`threads: expected a positive integer, got ${n}`);
  if (n > maxThreads) throw new RangeError(`threads: ${n} is more than ${THREADS_PER_CORE} per core (${availableParallelism()} cores: at most ${maxThreads})`);
  native.setNumThreads(n);
}

export function getNumThreads(): number {
  return native.getNumThreads();
}

/**
 * Keeps freed host memory in the process for reuse instead of handing it back to the OS: glibc's malloc serves
 * blocks up to 32 MiB (the ceiling of its own moving threshold) from the heap and keeps up to 1 GiB of free heap. A training step frees
 * and reallocates the same activation buffers every step; handed back, every reallocation faults its pages in
 * again. Process-wide, so the command line and the bench opt in, and a program embedding the library decides for
 * itself. Returns false where the C library is not glibc (nothing changes).
 */
export function retainFreedHostMemory(): boolean {
  return native.setMallocThresholds(32 << 20, 1 << 30);
}

/** The libtorch version the addon was built against, e.g. '1.13.0'. */
export const torchVersion: string = native.torchVersion;

export const cuda = {
  isAvailable: (): boolean => native.cudaAvailable,
  deviceCount: (): number => native.cudaDeviceCount,
  /** Waits for queued GPU work (for timing); a no-op without CUDA. */
  synchronize: (): void => native.cudaSynchronize(),
};

/**
 * What TORCH_NUM_THREADS asked for when it could not be used (not a positive integer, or more than maxThreads),
 * or undefined. Loading this module never throws: every core is used instead, and the command line reports it.
 */
export let threadsEnvironmentProblem: string | undefined;

// Debian's libtorch starts with one intra-op thread; use every core unless TORCH_NUM_THREADS says otherwise.
function defaultThreads(): number {
  const env = process.env.TORCH_NUM_THREADS;
  if (env === undefined || env.trim() === '') return availableParallelism();
  const n = Number(env);
  if (!Number.isInteger(n) || n < 1) threadsEnvironmentProblem = `TORCH_NUM_THREADS must be a positive integer, got '${env}'`;
  else if (n > maxThreads) threadsEnvironmentProblem = `TORCH_NUM_THREADS=${n} is more than ${THREADS_PER_CORE} per core (${availableParallelism()} cores: at most ${maxThreads})`;
  else return n;
  return availableParallelism();
}

native.setNumThreads(defaultThreads());
