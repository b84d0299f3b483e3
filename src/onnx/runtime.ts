// ONNX Runtime in Node (the optional `onnxruntime-node` package), behind a small synchronous session: its
// native session runs on the calling thread, and calling it directly (not through the Promise API, which
// defers every run to the next turn of the event loop) keeps a 30-step sample free of 30 event-loop hops and
// lets sampling stay the same synchronous call on both engines.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

export class OnnxRuntimeMissingError extends Error {
  constructor(cause: unknown) {
    super(`ONNX Runtime (the npm package onnxruntime-node) is not installed or cannot load here (${cause instanceof Error ? cause.message.split('\n')[0] : String(cause)}); install it with \`npm install onnxruntime-node\`, or sample with --engine libtorch`);
    this.name = 'OnnxRuntimeMissingError';
  }
}

export type OrtElementType = 'float32' | 'int64';

export interface OrtValue {
  readonly type: OrtElementType;
  readonly data: Float32Array | BigInt64Array;
  readonly dims: readonly number[];
}

interface NativeSession {
  loadModel(buffer: ArrayBuffer, byteOffset: number, byteLength: number, options: object): void;
  readonly inputMetadata: { name: string; shape: number[]; symbolicDimensions: string[]; type: number }[];
  readonly outputMetadata: { name: string }[];
  run(feeds: Record<string, unknown>, fetches: Record<string, null>, options: object): Record<string, OrtValue>;
  dispose(): void;
}

interface Runtime {
  Session: new () => NativeSession;
  Tensor: new (type: string, data: Float32Array | BigInt64Array, dims: readonly number[]) => OrtValue;
  version: string;
}

let runtime: Runtime | undefined;

function load(): Runtime {
  if (runtime !== undefined) return runtime;
  try {
    const main = require.resolve('onnxruntime-node');
    const local = createRequire(main);
    const { binding, initOrt } = local('./binding.js') as { binding: { InferenceSession: Runtime['Session'] }; initOrt: () => void };
    const common = local('onnxruntime-common') as { Tensor: Runtime['Tensor']; env: { versions: { common: string } } };
    initOrt();
    runtime = { Session: binding.InferenceSession, Tensor: common.Tensor, version: common.env.versions.common };
    return runtime;
  } catch (err) {
    throw new OnnxRuntimeMissingError(err);
  }
}

/** Whether onnxruntime-node is installed and loads. */
export function onnxRuntimeAvailable(): boolean {
  try {
    load();
    return true;
  } catch {
    return false;
  }
}

export function onnxRuntimeVersion(): string {
  return load().version;
}

export interface OrtSessionOptions {
  /** Threads for one operator (default 1). */
  threads?: number;
}

export class OrtSession {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  /** Each input's dimensions (a name for those chosen at run time). */
  readonly inputDims: ReadonlyMap<string, readonly (number | string)[]>;
  #native: NativeSession | undefined;
  readonly #fetches: Map<string, Record<string, null>> = new Map();

  /** Loads a model from its bytes; throws the runtime's message for a model it cannot load. */
  constructor(bytes: Uint8Array, opts: OrtSessionOptions = {}) {
    const { Session } = load();
    const native = new Session();
    native.loadModel(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength, {
      intraOpNumThreads: opts.threads ?? 1,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
    });
    this.#native = native;
    this.inputNames = native.inputMetadata.map((m) => m.name);
    this.outputNames = native.outputMetadata.map((m) => m.name);
    this.inputDims = new Map(native.inputMetadata.map((m) => [m.name, m.shape.map((d, i) => (d >= 0 ? d : m.symbolicDimensions[i] ?? '?'))]));
  }

  /** `v` as the runtime's own tensor, for feeds used many times (run then passes it as it is). */
  static prepare(v: OrtValue): OrtValue {
    const { Tensor } = load();
    return (v as object) instanceof Tensor ? v : new Tensor(v.type, v.data, v.dims);
  }

  /** Runs the model on `feeds`, returning the outputs named in `fetch`. */
  run(feeds: Record<string, OrtValue>, fetch: readonly string[]): Record<string, OrtValue> {
    if (this.#native === undefined) throw new Error('this ONNX Runtime session was disposed');
    const key = fetch.join('\n');
    let fetches = this.#fetches.get(key);
    if (fetches === undefined) {
      fetches = Object.fromEntries(fetch.map((n) => [n, null]));
      this.#fetches.set(key, fetches);
    }
    const native: Record<string, unknown> = {};
    for (const [name, v] of Object.entries(feeds)) native[name] = OrtSession.prepare(v);
    return this.#native.run(native, fetches, {});
  }

  dispose(): void {
    this.#native?.dispose();
    this.#native = undefined;
  }
}
