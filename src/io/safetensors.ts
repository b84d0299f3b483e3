/**
 * The safetensors file format (https://github.com/huggingface/safetensors), on raw bytes only:
 *
 *   u64 little-endian N | N bytes of UTF-8 JSON header | byte buffer
 *
 * The header maps each tensor name to `{ dtype, shape, data_offsets: [begin, end] }` (offsets relative to
 * the byte buffer) plus an optional `"__metadata__"` string→string map. Tensor data is little-endian and
 * row-major. This writer lays tensors out contiguously in sorted-name order and pads the header with spaces
 * so that the byte buffer starts at an 8-byte aligned file offset; the reader accepts any layout the spec
 * allows and rejects everything else with a {@link SafetensorsError}.
 *
 * Typed-array helpers assume a little-endian host (every platform Node supports in practice).
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { writeFileAtomic } from './atomic.ts';

/** The element types this implementation reads and writes. */
export type SafetensorsDType = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

/** Size in bytes of one element of each dtype. */
export const DTYPE_SIZES: Readonly<Record<SafetensorsDType, number>> = Object.freeze({
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
});

/** One tensor: its dtype, its shape (`[]` for a scalar) and its raw little-endian row-major bytes. */
export interface TensorRecord {
  dtype: SafetensorsDType;
  shape: number[];
  data: Uint8Array;
}

/** The typed array {@link typedView} returns for each dtype (F16/BF16 as raw 16-bit patterns). */
export interface SafetensorsTypedArrays {
  F64: Float64Array;
  F32: Float32Array;
  F16: Uint16Array;
  BF16: Uint16Array;
  I64: BigInt64Array;
  I32: Int32Array;
  I16: Int16Array;
  I8: Int8Array;
  U8: Uint8Array;
  BOOL: Uint8Array;
}

/** Any typed array {@link fromTypedArray} accepts. */
export type SafetensorsTypedArray = SafetensorsTypedArrays[SafetensorsDType] | Uint8ClampedArray;

/** Raised for every malformed file or invalid input; the message is one line and names the file. */
export class SafetensorsError extends Error {
  override name = 'SafetensorsError';
}

/** Largest header accepted on read, as in the reference implementation: anything above is corruption. */
export const MAX_HEADER_BYTES = 100_000_000;

const METADATA_KEY = '__metadata__';

function isDType(value: unknown): value is SafetensorsDType {
  return typeof value === 'string' && Object.hasOwn(DTYPE_SIZES, value);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isShape(value: unknown): value is number[] {
  return Array.isArray(value) && value.every((d) => Number.isSafeInteger(d) && d >= 0);
}

/** Exact byte size of a tensor; bigint so that huge shapes cannot round to a matching length. */
function byteSize(dtype: SafetensorsDType, shape: readonly number[]): bigint {
  let n = BigInt(DTYPE_SIZES[dtype]);
  for (const d of shape) n *= BigInt(d);
  return n;
}

/** Own-property assignment: a tensor called "__proto__" must not replace the result's prototype. */
function define<T>(target: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

// Code-unit order, not locale order: the file layout must not depend on the machine's locale.
function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Encodes tensors as a safetensors file, returned as chunks (the header, then each tensor's bytes in
 * sorted-name order) so that large tensors are written without an extra copy. The chunks alias the
 * callers' `data`: do not modify it until the chunks are written. Output is deterministic: the same tensors
 * and metadata give the same bytes whatever the insertion order.
 *
 * @throws SafetensorsError for an empty or reserved name, an unknown dtype, an invalid shape, data whose
 *   length does not match the shape, or a metadata value that is not a string.
 */
export function serializeSafetensors(
  tensors: Readonly<Record<string, TensorRecord>>,
  metadata?: Readonly<Record<string, string>>,
): Uint8Array[] {
  const header: Record<string, unknown> = {};
  if (metadata !== undefined) {
    if (!isPlainObject(metadata)) throw new SafetensorsError('safetensors: metadata must be an object of strings');
    const meta: Record<string, string> = {};
    for (const key of Object.keys(metadata).sort(compareNames)) {
      const value: unknown = metadata[key];
      if (typeof value !== 'string') {
        throw new SafetensorsError(`safetensors: metadata value for ${JSON.stringify(key)} is ${typeof value}, not a string`);
      }
      define(meta, key, value);
    }
    header[METADATA_KEY] = meta;
  }

  const names = Object.keys(tensors).sort(compareNames);
  const datas: Uint8Array[] = [];
  let offset = 0;
  for (const name of names) {
    const where = `safetensors: tensor ${JSON.stringify(name)}`;
    if (name === '') throw new SafetensorsError('safetensors: tensor name must not be empty');
    if (name === METADATA_KEY) throw new SafetensorsError(`safetensors: tensor name "${METADATA_KEY}" is reserved`);
    const record = tensors[name];
    if (!isPlainObject(record)) throw new SafetensorsError(`${where}: not a tensor record`);
    const { dtype, shape, data } = record as Partial<TensorRecord>;
    if (!isDType(dtype)) throw new SafetensorsError(`${where}: unknown dtype ${JSON.stringify(dtype)}`);
    if (!isShape(shape)) throw new SafetensorsError(`${where}: shape must be an array of non-negative integers`);
    if (!(data instanceof Uint8Array)) {
      throw new SafetensorsError(`${where}: data must be a Uint8Array of raw bytes (see fromTypedArray)`);
    }
    const expected = byteSize(dtype, shape);
    if (BigInt(data.byteLength) !== expected) {
      throw new SafetensorsError(
        `${where}: data has ${data.byteLength} bytes but ${dtype} [${shape.join(', ')}] needs ${expected}`,
      );
    }
    define(header, name, { dtype, shape: [...shape], data_offsets: [offset, offset + data.byteLength] });
    offset += data.byteLength;
    datas.push(data);
  }

  const json = new TextEncoder().encode(JSON.stringify(header));
  // Spaces after the JSON keep it valid and put the byte buffer at an 8-byte aligned file offset.
  const headerLength = Math.ceil(json.byteLength / 8) * 8;
  const head = new Uint8Array(8 + headerLength).fill(0x20);
  new DataView(head.buffer).setBigUint64(0, BigInt(headerLength), true);
  head.set(json, 8);
  return [head, ...datas];
}

/**
 * Writes tensors (and optional string metadata) to `path` as a safetensors file, atomically: on failure
 * the previous content of `path`, if any, is untouched and no temporary file is left.
 *
 * @throws SafetensorsError for invalid tensors (see {@link serializeSafetensors}); filesystem errors as is.
 */
export function writeSafetensors(
  path: string,
  tensors: Readonly<Record<string, TensorRecord>>,
  metadata?: Readonly<Record<string, string>>,
): void {
  writeFileAtomic(path, serializeSafetensors(tensors, metadata));
}

interface HeaderEntry {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  begin: number;
  end: number;
}

interface ParsedHeader {
  /** File offset of the byte buffer. */
  dataStart: number;
  entries: HeaderEntry[];
  metadata: Record<string, string>;
}

/**
 * Reads and validates everything but the tensor bytes. `readAt` returns `length` bytes from file offset
 * `position` (fewer only at end of file); `fileSize` is the total size.
 */
function parseHeader(readAt: (position: number, length: number) => Uint8Array, fileSize: number, file: string): ParsedHeader {
  const fail = (message: string): never => {
    throw new SafetensorsError(`${file}: ${message}`);
  };
  if (fileSize < 8) fail(`not a safetensors file: ${fileSize} bytes, shorter than the 8-byte header length`);
  const prefix = readAt(0, 8);
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) fail(`header length ${n} is absurd (limit ${MAX_HEADER_BYTES}); corrupt or not safetensors`);
  const headerLength = Number(n);
  if (8 + headerLength > fileSize) fail(`header length ${headerLength} is larger than the file (${fileSize} bytes)`);

  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(readAt(8, headerLength));
  } catch {
    return fail('header is not valid UTF-8');
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (err) {
    return fail(`header is not valid JSON (${(err as Error).message.split('\n')[0]})`);
  }
  if (!isPlainObject(header)) fail(`header is not a JSON object`);
  const fields = header as Record<string, unknown>;

  const metadata: Record<string, string> = {};
  if (Object.hasOwn(fields, METADATA_KEY)) {
    const meta = fields[METADATA_KEY];
    if (!isPlainObject(meta)) fail(`"${METADATA_KEY}" is not a string-to-string map`);
    for (const [key, value] of Object.entries(meta as Record<string, unknown>)) {
      if (typeof value !== 'string') fail(`"${METADATA_KEY}" value for ${JSON.stringify(key)} is not a string`);
      define(metadata, key, value as string);
    }
  }

  const dataStart = 8 + headerLength;
  const bufferLength = fileSize - dataStart;
  const entries: HeaderEntry[] = [];
  for (const [name, info] of Object.entries(fields)) {
    if (name === METADATA_KEY) continue;
    const where = `tensor ${JSON.stringify(name)}`;
    if (!isPlainObject(info)) fail(`${where}: header entry is not an object`);
    const { dtype, shape, data_offsets: offsets } = info as Record<string, unknown>;
    if (!isDType(dtype)) fail(`${where}: unknown dtype ${JSON.stringify(dtype) ?? 'undefined'}`);
    if (!isShape(shape)) fail(`${where}: shape ${JSON.stringify(shape) ?? 'undefined'} is not an array of non-negative integers`);
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) {
      return fail(`${where}: data_offsets ${JSON.stringify(offsets) ?? 'undefined'} is not two non-negative integers`);
    }
    const [begin, end] = offsets as [number, number];
    if (begin > end) fail(`${where}: data_offsets [${begin}, ${end}] has begin after end`);
    if (end > bufferLength) {
      fail(`${where}: data_offsets end ${end} is beyond the ${bufferLength}-byte data buffer (truncated file?)`);
    }
    const d = dtype as SafetensorsDType;
    const s = shape as number[];
    const expected = byteSize(d, s);
    if (BigInt(end - begin) !== expected) {
      fail(`${where}: data_offsets [${begin}, ${end}] span ${end - begin} bytes but ${d} [${s.join(', ')}] needs ${expected}`);
    }
    entries.push({ name, dtype: d, shape: s, begin, end });
  }

  // The spec requires the tensors to tile the byte buffer exactly: no overlaps, no holes, no trailing bytes.
  const byOffset = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let covered = 0;
  let previous: HeaderEntry | undefined;
  for (const e of byOffset) {
    if (e.begin < covered) {
      fail(`tensors ${JSON.stringify(previous!.name)} and ${JSON.stringify(e.name)} overlap at bytes [${e.begin}, ${Math.min(covered, e.end)})`);
    }
    if (e.begin > covered) fail(`gap: data bytes [${covered}, ${e.begin}) are not covered by any tensor`);
    covered = e.end;
    previous = e;
  }
  if (covered !== bufferLength) fail(`gap: data bytes [${covered}, ${bufferLength}) at the end are not covered by any tensor`);

  return { dataStart, entries, metadata };
}

/**
 * Decodes a safetensors file held in memory. Each returned tensor's `data` is a copy in its own fresh
 * buffer (offset 0), so it can be viewed as its dtype's typed array (see {@link typedView}) and outlives
 * `bytes`.
 *
 * @param name how error messages refer to the file.
 * @throws SafetensorsError naming `name` and the problem when the file is malformed.
 */
export function parseSafetensors(
  bytes: Uint8Array,
  name = '<buffer>',
): { tensors: Record<string, TensorRecord>; metadata: Record<string, string> } {
  const readAt = (position: number, length: number) => bytes.subarray(position, position + length);
  const { dataStart, entries, metadata } = parseHeader(readAt, bytes.byteLength, name);
  const tensors: Record<string, TensorRecord> = {};
  for (const e of entries) {
    const data = new Uint8Array(e.end - e.begin);
    data.set(bytes.subarray(dataStart + e.begin, dataStart + e.end));
    define(tensors, e.name, { dtype: e.dtype, shape: e.shape, data });
  }
  return { tensors, metadata };
}

/**
 * Reads a safetensors file. The header is validated before any tensor is read, and each tensor is read
 * straight into its own fresh buffer, so the whole file is never held twice (nor subject to Node's
 * single-Buffer size limit).
 *
 * @throws SafetensorsError naming `path` when the file is malformed; filesystem errors as is.
 */
export function readSafetensors(path: string): { tensors: Record<string, TensorRecord>; metadata: Record<string, string> } {
  const fd = openSync(path, 'r');
  try {
    const fileSize = fstatSync(fd).size;
    const fill = (target: Uint8Array, position: number): number => {
      let done = 0;
      while (done < target.byteLength) {
        const got = readSync(fd, target, done, target.byteLength - done, position + done);
        if (got === 0) break;
        done += got;
      }
      return done;
    };
    const readAt = (position: number, length: number): Uint8Array => {
      const out = new Uint8Array(length);
      return out.subarray(0, fill(out, position));
    };
    const { dataStart, entries, metadata } = parseHeader(readAt, fileSize, path);
    const tensors: Record<string, TensorRecord> = {};
    for (const e of entries) {
      const data = new Uint8Array(e.end - e.begin);
      if (fill(data, dataStart + e.begin) !== data.byteLength) {
        throw new SafetensorsError(`${path}: tensor ${JSON.stringify(e.name)}: file ended early (truncated while reading?)`);
      }
      define(tensors, e.name, { dtype: e.dtype, shape: e.shape, data });
    }
    return { tensors, metadata };
  } finally {
    closeSync(fd);
  }
}

type TypedArrayConstructor = new (buffer: ArrayBufferLike, byteOffset: number, length: number) => SafetensorsTypedArray;

const VIEW_TYPES: Readonly<Record<SafetensorsDType, TypedArrayConstructor>> = {
  F64: Float64Array,
  F32: Float32Array,
  F16: Uint16Array,
  BF16: Uint16Array,
  I64: BigInt64Array,
  I32: Int32Array,
  I16: Int16Array,
  I8: Int8Array,
  U8: Uint8Array,
  BOOL: Uint8Array,
};

/**
 * Views a record's bytes as the typed array of its dtype (F16/BF16 as raw Uint16 bit patterns, BOOL as
 * Uint8). The view shares memory with `record.data`, which records from {@link parseSafetensors} and
 * {@link fromTypedArray} allow; data at a misaligned offset is copied instead.
 *
 * @throws SafetensorsError when the byte length does not match the dtype and shape.
 */
export function typedView<D extends SafetensorsDType>(record: TensorRecord & { dtype: D }): SafetensorsTypedArrays[D] {
  const { dtype, shape } = record;
  if (!isDType(dtype)) throw new SafetensorsError(`safetensors: unknown dtype ${JSON.stringify(dtype)}`);
  let data = record.data;
  if (BigInt(data.byteLength) !== byteSize(dtype, shape)) {
    throw new SafetensorsError(
      `safetensors: data has ${data.byteLength} bytes but ${dtype} [${shape.join(', ')}] needs ${byteSize(dtype, shape)}`,
    );
  }
  const size = DTYPE_SIZES[dtype];
  // new Uint8Array(view) copies into a fresh buffer; Buffer#slice would only make another view.
  if (data.byteOffset % size !== 0) data = new Uint8Array(data);
  return new VIEW_TYPES[dtype](data.buffer, data.byteOffset, data.byteLength / size) as SafetensorsTypedArrays[D];
}

function defaultDType(array: SafetensorsTypedArray): SafetensorsDType | undefined {
  if (array instanceof Float64Array) return 'F64';
  if (array instanceof Float32Array) return 'F32';
  if (array instanceof BigInt64Array) return 'I64';
  if (array instanceof Int32Array) return 'I32';
  if (array instanceof Int16Array) return 'I16';
  if (array instanceof Int8Array) return 'I8';
  if (array instanceof Uint8Array || array instanceof Uint8ClampedArray) return 'U8';
  return undefined; // Uint16Array: F16 and BF16 are equally plausible
}

/**
 * Builds a record from a typed array by copying its bytes (no numeric conversion). `dtype` defaults to the
 * array's natural type; a Uint16Array needs an explicit 'F16' or 'BF16', and a Uint8Array may be 'BOOL'.
 *
 * @throws SafetensorsError when the dtype does not fit the array type or `array.length` is not the
 *   product of `shape`.
 */
export function fromTypedArray(array: SafetensorsTypedArray, shape: readonly number[], dtype?: SafetensorsDType): TensorRecord {
  const natural = defaultDType(array);
  const chosen = dtype ?? natural;
  if (chosen === undefined) throw new SafetensorsError('safetensors: a Uint16Array needs an explicit dtype, F16 or BF16');
  if (!isDType(chosen)) throw new SafetensorsError(`safetensors: unknown dtype ${JSON.stringify(chosen)}`);
  const compatible =
    chosen === natural ||
    (chosen === 'BOOL' && natural === 'U8') ||
    ((chosen === 'F16' || chosen === 'BF16') && array instanceof Uint16Array);
  if (!compatible) throw new SafetensorsError(`safetensors: dtype ${chosen} does not match a ${array.constructor.name}`);
  if (!isShape(shape)) throw new SafetensorsError('safetensors: shape must be an array of non-negative integers');
  const count = byteSize(chosen, shape) / BigInt(DTYPE_SIZES[chosen]);
  if (BigInt(array.length) !== count) {
    throw new SafetensorsError(`safetensors: ${array.length} elements do not fill shape [${shape.join(', ')}] (${count})`);
  }
  // A plain Uint8Array view (not a Buffer, whose slice is a view) so that slice() gives a fresh buffer.
  const data = new Uint8Array(array.buffer, array.byteOffset, array.byteLength).slice();
  return { dtype: chosen, shape: [...shape], data };
}
