import { constants as zlibConstants, gunzipSync, gzipSync } from 'node:zlib';
import { MAX_INPUT_BYTES, readInputFile } from '../io/input-file.ts';
import { writeFileAtomic } from '../io/atomic.ts';

/**
 * An error in user-supplied data (a missing, truncated or malformed file, inconsistent labels, ...).
 * The message is one line that names the file, so a CLI can print it without a stack trace.
 */
export class DataError extends Error {
  override name = 'DataError';
}

/** Element types an IDX file can hold. */
export type IdxDtype = 'uint8' | 'int8' | 'int16' | 'int32' | 'float32' | 'float64';

/** Typed array used for each IDX element type. */
export interface IdxArrayTypes {
  uint8: Uint8Array;
  int8: Int8Array;
  int16: Int16Array;
  int32: Int32Array;
  float32: Float32Array;
  float64: Float64Array;
}

/** Decoded IDX content; narrowing on `dtype` gives the matching typed array for `data`. */
export type IdxData<D extends IdxDtype = IdxDtype> = {
  [K in D]: { dtype: K; shape: number[]; data: IdxArrayTypes[K] };
}[D];

interface DtypeInfo {
  code: number;
  size: number;
  make: (n: number) => IdxArrayTypes[IdxDtype];
  get: (view: DataView, offset: number) => number;
  set: (view: DataView, offset: number, value: number) => void;
}

// IDX stores every multi-byte element big-endian, hence the explicit `false` below.
const DTYPES: Record<IdxDtype, DtypeInfo> = {
  uint8: { code: 0x08, size: 1, make: (n) => new Uint8Array(n), get: (v, o) => v.getUint8(o), set: (v, o, x) => v.setUint8(o, x) },
  int8: { code: 0x09, size: 1, make: (n) => new Int8Array(n), get: (v, o) => v.getInt8(o), set: (v, o, x) => v.setInt8(o, x) },
  int16: { code: 0x0b, size: 2, make: (n) => new Int16Array(n), get: (v, o) => v.getInt16(o, false), set: (v, o, x) => v.setInt16(o, x, false) },
  int32: { code: 0x0c, size: 4, make: (n) => new Int32Array(n), get: (v, o) => v.getInt32(o, false), set: (v, o, x) => v.setInt32(o, x, false) },
  float32: { code: 0x0d, size: 4, make: (n) => new Float32Array(n), get: (v, o) => v.getFloat32(o, false), set: (v, o, x) => v.setFloat32(o, x, false) },
  float64: { code: 0x0e, size: 8, make: (n) => new Float64Array(n), get: (v, o) => v.getFloat64(o, false), set: (v, o, x) => v.setFloat64(o, x, false) },
};

const DTYPE_BY_CODE = new Map<number, IdxDtype>(
  (Object.keys(DTYPES) as IdxDtype[]).map((d) => [DTYPES[d].code, d]),
);

const ARRAY_CTORS: Record<IdxDtype, abstract new (n: number) => IdxArrayTypes[IdxDtype]> = {
  uint8: Uint8Array,
  int8: Int8Array,
  int16: Int16Array,
  int32: Int32Array,
  float32: Float32Array,
  float64: Float64Array,
};

const hex = (b: number): string => `0x${b.toString(16).padStart(2, '0')}`;

function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/**
 * Reads an IDX file (plain, or gzip-compressed as detected from its magic bytes).
 * @throws DataError when the file is missing, unreadable, empty, corrupt or not valid IDX.
 */
export function readIdx(path: string): IdxData {
  return parseIdx(readInputFile(path, (m) => new DataError(`${path}: ${m}`)), path);
}

// The size a gzipped IDX file says it decompresses to, from the header at the start of its stream (the rest is
// not inflated), so that a file claiming more than the limit, or holding more than it claims, fails before the
// memory is spent.
function declaredGunzipSize(bytes: Uint8Array, name: string): number {
  let head: Buffer;
  try {
    head = gunzipSync(bytes.subarray(0, 1 << 16), { finishFlush: zlibConstants.Z_SYNC_FLUSH });
  } catch (err) {
    throw new DataError(`${name}: corrupt gzip data (${(err as Error).message})`);
  }
  if (head.length < 4 || head[0] !== 0 || head[1] !== 0) return MAX_INPUT_BYTES; // parseIdx will say what is wrong
  const ndim = head[3]!;
  const size = DTYPE_BY_CODE.has(head[2]!) ? DTYPES[DTYPE_BY_CODE.get(head[2]!)!].size : 1;
  if (head.length < 4 + 4 * ndim) return MAX_INPUT_BYTES;
  let total = size;
  for (let i = 0; i < ndim; i++) total *= head.readUInt32BE(4 + 4 * i);
  return 4 + 4 * ndim + total;
}

/**
 * Decodes IDX bytes (plain or gzipped). `name` is used in error messages, normally the file path.
 * The returned data never aliases `bytes`.
 * @throws DataError when the bytes are empty, corrupt or not valid IDX.
 */
export function parseIdx(bytes: Uint8Array, name = '<IDX data>'): IdxData {
  if (bytes.length === 0) throw new DataError(`${name}: empty file`);
  if (isGzip(bytes)) {
    const declared = declaredGunzipSize(bytes, name);
    if (declared > MAX_INPUT_BYTES) throw new DataError(`${name}: its header declares ${declared} bytes of data, more than the ${MAX_INPUT_BYTES} an input may have`);
    try {
      bytes = gunzipSync(bytes, { maxOutputLength: Math.max(declared, 1) });
    } catch (err) {
      const tooLong = (err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE' || /larger than/.test((err as Error).message);
      throw new DataError(tooLong ? `${name}: decompresses to more than the ${declared} bytes its header declares` : `${name}: corrupt gzip data (${(err as Error).message})`);
    }
    if (bytes.length === 0) throw new DataError(`${name}: empty file (after gunzip)`);
  }
  if (bytes[0] !== 0 || (bytes.length > 1 && bytes[1] !== 0)) {
    const got = Array.from(bytes.subarray(0, 2), hex).join(' ');
    throw new DataError(`${name}: bad magic, not an IDX file (first two bytes must be 0x00 0x00, got ${got})`);
  }
  if (bytes.length < 4) {
    throw new DataError(`${name}: truncated header (${bytes.length} bytes, the magic number alone needs 4)`);
  }
  const dtype = DTYPE_BY_CODE.get(bytes[2]!);
  if (dtype === undefined) {
    throw new DataError(`${name}: bad magic, unknown IDX type byte ${hex(bytes[2]!)}`);
  }
  const ndim = bytes[3]!;
  if (ndim === 0) throw new DataError(`${name}: bad magic, IDX header declares zero dimensions`);
  const headerLen = 4 + 4 * ndim;
  if (bytes.length < headerLen) {
    throw new DataError(`${name}: truncated header (${bytes.length} bytes, ${ndim} dimensions need ${headerLen})`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const shape: number[] = [];
  for (let i = 0; i < ndim; i++) shape.push(view.getUint32(4 + 4 * i, false));
  const { size, make, get } = DTYPES[dtype];
  // Exceeds 2^53 only for absurd shapes, which then cannot match the length below anyway.
  const count = shape.reduce((a, b) => a * b, 1);
  const expected = count * size;
  const actual = bytes.length - headerLen;
  const what = `shape ${shape.join('x')} of ${dtype}`;
  if (actual < expected) {
    throw new DataError(`${name}: truncated data (${what} needs ${expected} bytes, file has ${actual})`);
  }
  if (actual > expected) {
    throw new DataError(`${name}: trailing garbage (${actual - expected} bytes after the ${expected} data bytes of ${what})`);
  }
  const data = make(count);
  if (size === 1) {
    // Modular conversion in `set` turns bytes into int8 values as well.
    data.set(bytes.subarray(headerLen));
  } else {
    for (let i = 0, o = headerLen; i < count; i++, o += size) data[i] = get(view, o);
  }
  return { dtype, shape, data } as IdxData;
}

/**
 * Encodes IDX content to plain (uncompressed) IDX bytes.
 * @throws RangeError when `shape` or `data` do not agree with each other or with `dtype`.
 */
export function encodeIdx(idx: IdxData): Uint8Array {
  const { dtype, shape, data } = idx;
  const info = DTYPES[dtype];
  if (info === undefined) throw new RangeError(`encodeIdx: unknown dtype ${JSON.stringify(dtype)}`);
  if (!(data instanceof ARRAY_CTORS[dtype])) {
    throw new RangeError(`encodeIdx: dtype ${dtype} needs a ${ARRAY_CTORS[dtype].name}, got ${data?.constructor?.name}`);
  }
  if (shape.length < 1 || shape.length > 255) {
    throw new RangeError(`encodeIdx: IDX needs 1 to 255 dimensions, got ${shape.length}`);
  }
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0 || d > 0xffffffff) {
      throw new RangeError(`encodeIdx: dimension sizes must be integers in [0, 2^32), got [${shape.join(', ')}]`);
    }
  }
  const count = shape.reduce((a, b) => a * b, 1);
  if (count !== data.length) {
    throw new RangeError(`encodeIdx: shape [${shape.join(', ')}] holds ${count} elements but data has ${data.length}`);
  }
  const headerLen = 4 + 4 * shape.length;
  const out = new Uint8Array(headerLen + count * info.size);
  const view = new DataView(out.buffer);
  out[2] = info.code;
  out[3] = shape.length;
  shape.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  if (info.size === 1) {
    // Typed-array `set` converts modulo 2^8, so int8 values land as their two's-complement bytes.
    out.set(data, headerLen);
  } else {
    for (let i = 0, o = headerLen; i < count; i++, o += info.size) info.set(view, o, data[i]!);
  }
  return out;
}

/**
 * Writes IDX content to `path` atomically: plain IDX, or gzip-compressed when `path` ends in `.gz`.
 * @throws RangeError when `shape` or `data` do not agree with each other or with `dtype`.
 */
export function writeIdx(path: string, idx: IdxData): void {
  const bytes = encodeIdx(idx);
  writeFileAtomic(path, path.endsWith('.gz') ? gzipSync(bytes) : bytes);
}
