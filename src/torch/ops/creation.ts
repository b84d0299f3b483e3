import { native, type TypedArrayLike } from '../binding.ts';
import { type DType, scalarType } from '../dtype.ts';
import { tensorOp } from '../dispatch.ts';
import { Tensor } from '../tensor.ts';

export interface TensorOptions {
  /** Element type; defaults to float32 for data given as numbers. */
  dtype?: DType;
  /** 'cpu' (default), 'cuda', 'cuda:1' ... */
  device?: string;
}

function flatten(data: unknown, shape: number[], depth: number, out: number[]): void {
  if (Array.isArray(data)) {
    if (shape.length === depth) shape.push(data.length);
    else if (shape[depth] !== data.length) throw new RangeError('tensor: ragged nested array');
    for (const d of data) flatten(d, shape, depth + 1, out);
  } else if (typeof data === 'number' || typeof data === 'boolean') {
    if (depth !== shape.length) throw new RangeError('tensor: ragged nested array');
    out.push(Number(data));
  } else {
    throw new TypeError(`tensor: unsupported element ${String(data)}`);
  }
}

function typedArrayFor(dtype: DType, values: number[]): TypedArrayLike {
  switch (dtype) {
    case 'float32':
      return Float32Array.from(values);
    case 'float64':
      return Float64Array.from(values);
    case 'int64':
      return BigInt64Array.from(values, (v) => BigInt(Math.trunc(v)));
    case 'int32':
      return Int32Array.from(values);
    case 'int16':
      return Int16Array.from(values);
    case 'int8':
      return Int8Array.from(values);
    case 'uint8':
    case 'bool':
      return Uint8Array.from(values, (v) => (dtype === 'bool' ? (v ? 1 : 0) : v));
    default:
      throw new TypeError(`tensor: cannot build ${dtype} from numbers; build float32 and convert`);
  }
}

/**
 * Creates a tensor from nested number arrays or a typed array (copied).
 * A typed array keeps its own element type (Float32Array → float32, BigInt64Array → int64 ...) and takes
 * its shape from `shape` (default: 1-D).
 */
export function tensor(data: number | boolean | readonly unknown[] | TypedArrayLike, opts: TensorOptions & { shape?: readonly number[] } = {}): Tensor {
  let t: Tensor;
  if (ArrayBuffer.isView(data)) {
    const arr = data as TypedArrayLike;
    t = new Tensor(native.fromArray(arr, opts.shape ?? [arr.length], opts.dtype === 'bool' ? 'bool' : undefined));
    if (opts.dtype !== undefined && opts.dtype !== 'bool' && t.dtype !== opts.dtype) {
      const converted = t.to({ dtype: opts.dtype });
      t.dispose();
      t = converted;
    }
  } else {
    const shape: number[] = [];
    const values: number[] = [];
    flatten(data, shape, 0, values);
    const dtype = opts.dtype ?? (typeof data === 'boolean' ? 'bool' : 'float32');
    const finalShape = opts.shape ?? shape;
    if (dtype === 'float16' || dtype === 'bfloat16') {
      const f = new Tensor(native.fromArray(Float32Array.from(values), finalShape));
      t = f.to({ dtype });
      f.dispose();
    } else {
      t = new Tensor(native.fromArray(typedArrayFor(dtype, values), finalShape, dtype === 'bool' ? 'bool' : undefined));
    }
  }
  if (opts.device !== undefined && opts.device !== 'cpu') {
    const moved = t.to({ device: opts.device });
    t.dispose();
    return moved;
  }
  return t;
}

/** An int64 tensor of integers (indices, labels), 1-D. */
export function int64(values: ArrayLike<number>, opts: { device?: string } = {}): Tensor {
  return tensor(BigInt64Array.from(values as ArrayLike<number>, (v) => BigInt(v)), { device: opts.device });
}

const zerosOp = tensorOp('zeros');
const onesOp = tensorOp('ones');
const fullOp = tensorOp('full');
const emptyOp = tensorOp('empty', 'memory_format');
const arangeOp = tensorOp('arange', 'start_step');
const linspaceOp = tensorOp('linspace');
const zerosLikeOp = tensorOp('zeros_like');
const onesLikeOp = tensorOp('ones_like');
const fullLikeOp = tensorOp('full_like');
const eyeOp = tensorOp('eye');

export function zeros(shape: readonly number[], opts: TensorOptions = {}): Tensor {
  return zerosOp(shape, scalarType(opts.dtype), null, opts.device);
}

export function ones(shape: readonly number[], opts: TensorOptions = {}): Tensor {
  return onesOp(shape, scalarType(opts.dtype), null, opts.device);
}

export function full(shape: readonly number[], value: number, opts: TensorOptions = {}): Tensor {
  return fullOp(shape, value, scalarType(opts.dtype ?? 'float32'), null, opts.device);
}

/** Uninitialised memory: every element must be written before it is read. */
export function empty(shape: readonly number[], opts: TensorOptions = {}): Tensor {
  return emptyOp(shape, scalarType(opts.dtype), null, opts.device);
}

/** Values from `start` to `end` (exclusive) by `step`; int64 when all are integers, as in PyTorch. */
export function arange(start: number, end?: number, step = 1, opts: TensorOptions = {}): Tensor {
  if (end === undefined) [start, end] = [0, start];
  return arangeOp(start, end, step, scalarType(opts.dtype), null, opts.device);
}

export function linspace(start: number, end: number, steps: number, opts: TensorOptions = {}): Tensor {
  return linspaceOp(start, end, steps, scalarType(opts.dtype), null, opts.device);
}

export function eye(n: number, opts: TensorOptions = {}): Tensor {
  return eyeOp(n, scalarType(opts.dtype), null, opts.device);
}

export function zerosLike(t: Tensor, opts: TensorOptions = {}): Tensor {
  return zerosLikeOp(t, scalarType(opts.dtype), null, opts.device);
}

export function onesLike(t: Tensor, opts: TensorOptions = {}): Tensor {
  return onesLikeOp(t, scalarType(opts.dtype), null, opts.device);
}

export function fullLike(t: Tensor, value: number, opts: TensorOptions = {}): Tensor {
  return fullLikeOp(t, value, scalarType(opts.dtype), null, opts.device);
}
