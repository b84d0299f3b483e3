// The one place that loads the native addon; everything else imports its typed interface from here.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

/** An opaque native tensor handle (a Node-API external). */
export type TensorHandle = { readonly __brand: 'TensorHandle' };
/** An opaque native CUDA-graph handle. */
export type CudaGraphHandle = { readonly __brand: 'CudaGraphHandle' };
/** An opaque native random-generator handle. */
export type GeneratorHandle = { readonly __brand: 'GeneratorHandle' };

/** A value an operator argument can take; conversion follows the operator's schema. */
export type NativeArg =
  | TensorHandle
  | GeneratorHandle
  | number
  | boolean
  | string
  | null
  | undefined
  | readonly NativeArg[];

/** A value an operator can return. */
export type NativeResult = TensorHandle | number | boolean | string | null | undefined | NativeResult[];

export type TypedArrayLike =
  | Float32Array
  | Float64Array
  | BigInt64Array
  | Int32Array
  | Int16Array
  | Int8Array
  | Uint8Array;

export interface Binding {
  opId(name: string, overload: string): number;
  opSchema(id: number): string;
  callOp(id: number, args: readonly NativeArg[]): NativeResult;
  fromArray(data: TypedArrayLike, shape: readonly number[], dtype?: string): TensorHandle;
  toArray(t: TensorHandle): TypedArrayLike;
  info(t: TensorHandle): [number[], string, string, boolean];
  free(t: TensorHandle): void;
  isReleased(t: TensorHandle): boolean;
  setRequiresGrad(t: TensorHandle, requires: boolean): void;
  isLeaf(t: TensorHandle): boolean;
  backward(t: TensorHandle, grad?: TensorHandle | null, retainGraph?: boolean): void;
  grad(t: TensorHandle): TensorHandle | null;
  setGrad(t: TensorHandle, grad: TensorHandle | null): void;
  setData(t: TensorHandle, src: TensorHandle): void;
  setGradEnabled(enabled: boolean): boolean;
  enterInferenceMode(): number;
  exitInferenceMode(): void;
  manualSeed(seed: number): void;
  newGenerator(seed: number, device?: string): GeneratorHandle;
  defaultGenerator(device?: string): GeneratorHandle;
  generatorGetState(g: GeneratorHandle): TensorHandle;
  generatorSetState(g: GeneratorHandle, state: TensorHandle): void;
  generatorSeed(g: GeneratorHandle): number;
  /** Sets a device type's autocast state; returns the previous [enabled, dtype]. */
  setAutocast(device: 'cpu' | 'cuda', enabled: boolean, dtype: string): [boolean, string];
  /** Enters (true) or leaves (false) an autocast region; leaving the outermost clears the cast cache. Returns the depth. */
  autocastNesting(enter: boolean): number;
  /** Starts libtorch's CPU profiler on this thread (and the threads its work moves to). */
  startProfiler(): void;
  /** Stops it: one row per recorded range start or end, [name, start?, microseconds, thread, range id]. */
  stopProfiler(): [string, boolean, number, number, number][];
  setNumThreads(n: number): void;
  getNumThreads(): number;
  /** glibc's M_MMAP_THRESHOLD and M_TRIM_THRESHOLD (mallopt); false where the C library is not glibc or a value is refused. */
  setMallocThresholds(mmapThreshold: number, trimThreshold: number): boolean;
  liveTensors(): number;
  cudaSynchronize(): void;
  cudaGraphNew(): CudaGraphHandle;
  cudaGraphCaptureBegin(g: CudaGraphHandle, device: string): void;
  cudaGraphCaptureEnd(g: CudaGraphHandle): void;
  cudaGraphReplay(g: CudaGraphHandle): void;
  cudaGraphReset(g: CudaGraphHandle): void;
  /** Whether the addon was built with CUDA graphs (a CUDA libtorch and CUDA's headers). */
  readonly cudaGraphsAvailable: boolean;
  // c10d (native/distributed.cc): stores and Gloo groups by id; timeouts in milliseconds.
  distStoreCreate(host: string, port: number, isServer: boolean, timeoutMs: number, prefix: string): number;
  distStoreSet(store: number, key: string, value: string): void;
  distStoreGet(store: number, key: string, timeoutMs: number): string;
  distStoreCheck(store: number, keys: readonly string[]): boolean;
  distStoreAdd(store: number, key: string, delta: number): number;
  distStorePort(store: number): number;
  distStoreClose(store: number): void;
  distGroupCreate(store: number, rank: number, size: number, timeoutMs: number, iface: string, hostname: string): number;
  distGroupDestroy(group: number): void;
  distAllReduce(group: number, tensors: readonly TensorHandle[], op: 'sum' | 'max' | 'min', timeoutMs: number): void;
  distBroadcast(group: number, tensors: readonly TensorHandle[], root: number, timeoutMs: number): void;
  distBarrier(group: number, timeoutMs: number): void;
  distAllReduceSumDifferentiable(group: number, t: TensorHandle, timeoutMs: number): TensorHandle;
  /** Whether the addon was built with c10d's Gloo process group. */
  readonly distributedAvailable: boolean;
  readonly torchVersion: string;
  readonly cudaAvailable: boolean;
  readonly cudaDeviceCount: number;
}

function load(): Binding {
  const require = createRequire(import.meta.url);
  const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
  try {
    const nodeGypBuild = require('node-gyp-build') as (dir: string) => Binding;
    return nodeGypBuild(root);
  } catch (err) {
    const reason = err instanceof Error ? err.message.split('\n')[0] : String(err);
    throw new Error(
      `the native libtorch addon could not be loaded (${reason}). Build it with \`npm run build:addon\` ` +
        '(needs libtorch: `apt-get install libtorch-dev libopenblas0-openmp`, or LIBTORCH=/path).',
    );
  }
}

export const native: Binding = load();
