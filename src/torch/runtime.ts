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

// glibc hands memory at the top of its heap back to the system once more than M_TRIM_THRESHOLD of it is free, and
// maps blocks over M_MMAP_THRESHOLD afresh each time. A training step frees hundreds of MB of activations at once,
// so by default every step faults them in again page by page (7-11k minor faults per baseline step); keeping up to
// 1 GiB of freed memory, and mapping only blocks over glibc's largest dynamic threshold, removes nearly all of them.
const MALLOC_THRESHOLDS = { mmapBytes: 32 * 2 ** 20, trimBytes: 2 ** 30 } as const;

/** The malloc thresholds applied when this module loaded; undefined when the user's own glibc settings won or the C library is not glibc. */
export const mallocThresholds: { mmapBytes: number; trimBytes: number } | undefined = (() => {
  const env = process.env;
  const userSettings = env.MALLOC_TRIM_THRESHOLD_ !== undefined || env.MALLOC_MMAP_THRESHOLD_ !== undefined || (env.GLIBC_TUNABLES ?? '').includes('glibc.malloc');
  if (userSettings) return undefined;
  return native.setMallocThresholds(MALLOC_THRESHOLDS.mmapBytes, MALLOC_THRESHOLDS.trimBytes) ? { ...MALLOC_THRESHOLDS } : undefined;
})();
