// CUDA graphs, after torch.cuda.CUDAGraph and torch.cuda.make_graphed_callables: the kernels a function of
// fixed-shape tensors launches are recorded once and then replayed with one launch, so that work bound by
// launching small kernels (a small U-Net, batch-1 sampling) costs the GPU's time alone.
import { native, type CudaGraphHandle } from './binding.ts';
import { keep, tidy } from './scope.ts';
import type { Tensor } from './tensor.ts';

/** Whether this addon can capture CUDA graphs (built against a CUDA libtorch with CUDA's headers). */
export function cudaGraphsAvailable(): boolean {
  return native.cudaGraphsAvailable;
}

/** A capture that failed: the function did something a graph cannot record (a read back to the host, say). */
export class CUDAGraphCaptureError extends Error {
  override name = 'CUDAGraphCaptureError';
}

/** One recorded graph (torch.cuda.CUDAGraph). */
export class CUDAGraph {
  #handle: CudaGraphHandle | undefined = native.cudaGraphNew();
  #captured = false;

  get captured(): boolean {
    return this.#captured;
  }

  /**
   * Records the kernels `fn` launches on `device` (they do not run: call replay()). `fn` must not read tensors
   * back to the host nor copy from it. Returns what `fn` returns: tensors in it are kept, and each replay
   * rewrites them.
   */
  capture<T>(device: string, fn: () => T): T {
    const handle = this.#live();
    if (this.#captured) throw new Error('CUDAGraph: already captured');
    native.cudaGraphCaptureBegin(handle, device);
    let result: T | undefined;
    let failure: unknown;
    try {
      result = tidy(fn);
    } catch (err) {
      failure = err;
    }
    try {
      native.cudaGraphCaptureEnd(handle);
    } catch (err) {
      failure ??= err;
    }
    if (failure !== undefined) {
      const reason = failure instanceof Error ? failure.message.split('\n')[0] : String(failure);
      throw new CUDAGraphCaptureError(`the step could not be captured as a CUDA graph: ${reason}`);
    }
    this.#captured = true;
    keepAll(result);
    return result as T;
  }

  /** Runs the recorded kernels again, on the current stream (ordered with eager work). */
  replay(): void {
    native.cudaGraphReplay(this.#live());
  }

  /** Frees the graph and its memory pool. */
  dispose(): void {
    if (this.#handle === undefined) return;
    if (this.#captured) native.cudaGraphReset(this.#handle);
    this.#handle = undefined;
    this.#captured = false;
  }

  #live(): CudaGraphHandle {
    if (this.#handle === undefined) throw new Error('CUDAGraph: used after dispose()');
    return this.#handle;
  }
}

function keepAll(value: unknown): void {
  if (Array.isArray(value)) for (const v of value) keepAll(v);
  else if (typeof value === 'object' && value !== null && (value as { isTensor?: unknown }).isTensor === true) keep(value as Tensor);
}

export interface GraphedFunctionOptions {
  /** The CUDA device the function runs on. */
  device: string;
  /** Eager calls before the capture (lazy initialisation happens outside the graph). Default 2. */
  warmup?: number;
  /**
   * Clears what the function accumulates into before every eager or capturing call: a training step's
   * gradients (`optimizer.zeroGrad()`), so that the captured backward writes them rather than adds to them.
   */
  reset?: () => void;
  /** Called once if the capture fails; the function then runs eagerly. */
  onFallback?: (reason: string) => void;
}

/**
 * `fn` over tensors of fixed shapes as one CUDA graph: the first calls run eagerly, the next is captured with
 * copies of its inputs as the static inputs, and every later call copies its inputs into those and replays.
 * Returns views of the static outputs, without autograd history: the next call overwrites them, so use them
 * before calling again.
 * Where capture fails, every call runs `fn` eagerly.
 */
export class GraphedFunction {
  readonly #fn: (inputs: readonly Tensor[]) => Tensor[];
  readonly #opts: GraphedFunctionOptions;
  #calls = 0;
  #graph: CUDAGraph | undefined;
  #inputs: Tensor[] = [];
  #outputs: Tensor[] = [];
  #fallback: string | undefined;

  constructor(fn: (inputs: readonly Tensor[]) => Tensor | Tensor[], opts: GraphedFunctionOptions) {
    this.#fn = (inputs) => {
      const out = fn(inputs);
      return Array.isArray(out) ? out : [out];
    };
    this.#opts = opts;
  }

  /** Why capture failed, if it did. */
  get fallbackReason(): string | undefined {
    return this.#fallback;
  }

  /** Whether calls now replay a graph. */
  get replaying(): boolean {
    return this.#graph?.captured === true;
  }

  /** fn(inputs): eagerly while warming up (or after a failed capture), else by replaying the graph. */
  call(inputs: readonly Tensor[]): Tensor[] {
    if (this.#graph?.captured) {
      if (inputs.length !== this.#inputs.length) throw new RangeError(`GraphedFunction: captured with ${this.#inputs.length} inputs, called with ${inputs.length}`);
      inputs.forEach((x, i) => {
        const s = this.#inputs[i]!;
        if (x.shape.length !== s.shape.length || x.shape.some((d, k) => d !== s.shape[k])) {
          throw new RangeError(`GraphedFunction: input ${i} has shape [${x.shape.join(', ')}], captured with [${s.shape.join(', ')}]`);
        }
        s.copy_(x);
      });
      this.#graph.replay();
      return this.#outputs.map((o) => o.view(o.shape));
    }
    if (this.#fallback !== undefined || this.#calls++ < (this.#opts.warmup ?? 2)) return this.#eager(inputs);
    this.#opts.reset?.();
    const graph = new CUDAGraph();
    const statics = inputs.map((x) => keep(x.clone()));
    try {
      // Detached: a kept output's autograd history would keep the captured backward's nodes (on the capture
      // stream) alive for later eager steps.
      this.#outputs = graph.capture(this.#opts.device, () => this.#fn(statics).map((o) => o.detach()));
    } catch (err) {
      graph.dispose();
      for (const s of statics) s.dispose();
      if (!(err instanceof CUDAGraphCaptureError)) throw err;
      this.#fallback = err.message;
      this.#opts.onFallback?.(err.message);
      return this.#eager(inputs);
    }
    this.#graph = graph;
    this.#inputs = statics;
    graph.replay();
    return this.#outputs.map((o) => o.view(o.shape));
  }

  #eager(inputs: readonly Tensor[]): Tensor[] {
    this.#opts.reset?.();
    return this.#fn(inputs);
  }

  dispose(): void {
    for (const t of [...this.#inputs, ...this.#outputs]) t.dispose();
    this.#inputs = [];
    this.#outputs = [];
    this.#graph?.dispose();
    this.#graph = undefined;
  }
}
