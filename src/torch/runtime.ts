import { availableParallelism } from 'node:os';
import { native } from './binding.ts';

/** Sets libtorch's intra-op thread count (torch.set_num_threads). */
export function setNumThreads(n: number): void {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`setNumThreads: expected a positive integer, got ${n}`);
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

// Debian's libtorch starts with one intra-op thread; use every core unless TORCH_NUM_THREADS says otherwise.
function defaultThreads(): number {
  const env = process.env.TORCH_NUM_THREADS;
  if (env !== undefined && env !== '') {
    const n = Number(env);
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`TORCH_NUM_THREADS must be a positive integer, got '${env}'`);
    return n;
  }
  return availableParallelism();
}

native.setNumThreads(defaultThreads());
