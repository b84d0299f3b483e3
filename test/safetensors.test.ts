import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DTYPE_SIZES,
  SafetensorsError,
  fromTypedArray,
  parseSafetensors,
  readSafetensors,
  serializeSafetensors,
  typedView,
  writeSafetensors,
} from '../src/io/safetensors.ts';
import type { SafetensorsDType, TensorRecord } from '../src/io/safetensors.ts';

const concat = (chunks: readonly Uint8Array[]): Uint8Array => new Uint8Array(Buffer.concat(chunks));

function withTempDir(fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'safetensors-test-'));
  try {
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A file with an arbitrary (possibly invalid) header, unpadded, followed by `dataLength` zero bytes. */
function rawFile(header: unknown, dataLength: number): Uint8Array {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + dataLength);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  return out;
}

function assertParseError(bytes: Uint8Array, pattern: RegExp): void {
  assert.throws(
    () => parseSafetensors(bytes, 'bad.safetensors'),
    (err: unknown) => {
      assert.ok(err instanceof SafetensorsError, `expected SafetensorsError, got ${String(err)}`);
      assert.match(err.message, /^bad\.safetensors: /);
      assert.match(err.message, pattern);
      assert.ok(!err.message.includes('\n'), 'message is one line');
      return true;
    },
  );
}

test('golden byte layout', () => {
  const chunks = serializeSafetensors(
    { a: fromTypedArray(new Float32Array([1, 2]), [2]), b: fromTypedArray(new BigInt64Array([3n]), [1]) },
    { k: 'v' },
  );
  const json =
    '{"__metadata__":{"k":"v"},' +
    '"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},' +
    '"b":{"dtype":"I64","shape":[1],"data_offsets":[8,16]}}';
  assert.equal(json.length, 133);
  const expected = new Uint8Array([
    // header length 136 = 133 bytes of JSON + 3 spaces, so the data starts at file offset 144
    0x88, 0, 0, 0, 0, 0, 0, 0,
    ...Buffer.from(json),
    0x20, 0x20, 0x20,
    // a: F32 1.0, 2.0
    0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0x40,
    // b: I64 3
    0x03, 0, 0, 0, 0, 0, 0, 0,
  ]);
  assert.equal(chunks.length, 3);
  assert.deepEqual(concat(chunks), expected);
});

const SAMPLES: Record<string, TensorRecord> = {
  f64: fromTypedArray(new Float64Array([1.5, -2.25, Math.PI, 1e300, -0]), [5]),
  f32: fromTypedArray(new Float32Array([1, 2, 3, 4, 5, 6]), [2, 3]),
  f16: fromTypedArray(new Uint16Array([0x3c00, 0xc000, 0x3800, 0x7bff]), [2, 2], 'F16'),
  bf16: fromTypedArray(new Uint16Array([0x3f80, 0xc000, 0x3f00, 0x4049]), [4], 'BF16'),
  i64: fromTypedArray(new BigInt64Array([-(2n ** 63n), 2n ** 63n - 1n, 0n, 42n]), [2, 1, 2]),
  i32: fromTypedArray(new Int32Array([-(2 ** 31), 2 ** 31 - 1, 7]), [3]),
  i16: fromTypedArray(new Int16Array([-32768, 32767]), [2]),
  i8: fromTypedArray(new Int8Array([-128, 127, 0]), [3]),
  u8: fromTypedArray(new Uint8Array([0, 1, 255]), [3]),
  bool: fromTypedArray(new Uint8Array([1, 0, 1, 1]), [2, 2], 'BOOL'),
  empty: fromTypedArray(new Float32Array(0), [3, 0, 2]),
  scalar: fromTypedArray(new Float64Array([2.5]), []),
};

test('round trip of every dtype, including zero-element and scalar tensors', () => {
  const dtypes = new Set(Object.values(SAMPLES).map((r) => r.dtype));
  assert.deepEqual([...dtypes].sort(), Object.keys(DTYPE_SIZES).sort());
  const bytes = concat(serializeSafetensors(SAMPLES, { format: 'pt', note: 'ünïcode ✓' }));
  assert.equal((8 + Number(new DataView(bytes.buffer).getBigUint64(0, true))) % 8, 0, 'data is 8-byte aligned');
  const { tensors, metadata } = parseSafetensors(bytes);
  assert.deepEqual(metadata, { format: 'pt', note: 'ünïcode ✓' });
  assert.deepEqual(Object.keys(tensors).sort(), Object.keys(SAMPLES).sort());
  for (const [name, record] of Object.entries(SAMPLES)) {
    const got = tensors[name]!;
    assert.equal(got.dtype, record.dtype, name);
    assert.deepEqual(got.shape, record.shape, name);
    assert.deepEqual(got.data, record.data, name);
    assert.equal(got.data.byteOffset, 0, `${name} has its own buffer`);
    assert.equal(got.data.buffer.byteLength, got.data.byteLength, `${name} has its own buffer`);
    assert.deepEqual(typedView(got), typedView(record), name);
  }
  assert.deepEqual([...typedView(tensors.f32 as TensorRecord & { dtype: 'F32' })], [1, 2, 3, 4, 5, 6]);
  assert.deepEqual([...typedView(tensors.i64 as TensorRecord & { dtype: 'I64' })], [-(2n ** 63n), 2n ** 63n - 1n, 0n, 42n]);
  assert.ok(typedView(tensors.i64!) instanceof BigInt64Array);
  assert.ok(typedView(tensors.bf16!) instanceof Uint16Array);
  assert.equal(typedView(tensors.empty!).length, 0);
  assert.deepEqual([...typedView(tensors.scalar!)], [2.5]);
});

test('parsed data is a copy, also from an unaligned Node Buffer', () => {
  const file = concat(serializeSafetensors({ x: fromTypedArray(new Float64Array([1, 2]), [2]) }));
  const big = Buffer.alloc(file.length + 3);
  big.set(file, 3);
  const source = big.subarray(3);
  const { tensors } = parseSafetensors(source);
  source.fill(0);
  assert.deepEqual([...new Float64Array(tensors.x!.data.buffer, tensors.x!.data.byteOffset, 2)], [1, 2]);
});

test('output does not depend on key insertion order', () => {
  const reversed = Object.fromEntries(Object.entries(SAMPLES).reverse());
  const a = concat(serializeSafetensors(SAMPLES, { x: '1', y: '2' }));
  const b = concat(serializeSafetensors(reversed, { y: '2', x: '1' }));
  assert.deepEqual(a, b);
});

test('odd names: unicode and "__proto__" stay own properties', () => {
  const tensors: Record<string, TensorRecord> = {};
  Object.defineProperty(tensors, '__proto__', { value: SAMPLES.u8, enumerable: true });
  tensors['ä.weight'] = SAMPLES.i8!;
  const parsed = parseSafetensors(concat(serializeSafetensors(tensors))).tensors;
  assert.deepEqual(Object.keys(parsed).sort(), ['__proto__', 'ä.weight']);
  assert.equal(Object.getPrototypeOf(parsed), Object.prototype);
  assert.deepEqual(parsed['ä.weight']!.data, SAMPLES.i8!.data);
});

test('empty file: no tensors, no metadata', () => {
  const bytes = concat(serializeSafetensors({}));
  assert.equal(bytes.length, 16);
  assert.deepEqual(parseSafetensors(bytes), { tensors: {}, metadata: {} });
});

test('serialize rejects invalid input', () => {
  const f32 = (n: number) => new Uint8Array(4 * n);
  const cases: [Record<string, TensorRecord>, Record<string, string> | undefined, RegExp][] = [
    [{ a: { dtype: 'F32', shape: [3], data: f32(2) } }, undefined, /8 bytes but F32 \[3\] needs 12/],
    [{ '': { dtype: 'F32', shape: [1], data: f32(1) } }, undefined, /name must not be empty/],
    [{ __metadata__: { dtype: 'F32', shape: [1], data: f32(1) } }, undefined, /reserved/],
    [{ a: { dtype: 'F8' as SafetensorsDType, shape: [1], data: f32(1) } }, undefined, /unknown dtype "F8"/],
    [{ a: { dtype: 'F32', shape: [-1], data: f32(1) } }, undefined, /shape/],
    [{ a: { dtype: 'F32', shape: [1.5], data: f32(1) } }, undefined, /shape/],
    [{ a: { dtype: 'F32', shape: [1], data: new Float32Array(1) as unknown as Uint8Array } }, undefined, /Uint8Array/],
    [{}, { k: 1 as unknown as string }, /metadata value for "k" is number/],
  ];
  for (const [tensors, metadata, pattern] of cases) {
    assert.throws(() => serializeSafetensors(tensors, metadata), (err: unknown) => {
      assert.ok(err instanceof SafetensorsError);
      assert.match(err.message, pattern);
      return true;
    });
  }
});

test('fromTypedArray and typedView validate', () => {
  assert.throws(() => fromTypedArray(new Uint16Array(2), [2]), /explicit dtype/);
  assert.throws(() => fromTypedArray(new Float32Array(2), [2], 'F64'), /does not match a Float32Array/);
  assert.throws(() => fromTypedArray(new Float32Array(3), [2]), /3 elements do not fill shape \[2\]/);
  const source = new Float32Array([1, 2]);
  const record = fromTypedArray(source, [2]);
  source[0] = 9;
  assert.deepEqual([...typedView(record)], [1, 2], 'fromTypedArray copies');
  // Misaligned data is copied rather than failing.
  const misaligned = new Uint8Array(9).subarray(1);
  misaligned.set(new Uint8Array(new Float32Array([3, 4]).buffer));
  assert.deepEqual([...typedView({ dtype: 'F32', shape: [2], data: misaligned })], [3, 4]);
  assert.throws(() => typedView({ dtype: 'F32', shape: [3], data: misaligned }), SafetensorsError);
});

test('parse errors name the file and the problem', () => {
  const t = (dtype: string, shape: unknown, data_offsets: unknown) => ({ dtype, shape, data_offsets });
  assertParseError(new Uint8Array(5), /shorter than the 8-byte header length/);
  const huge = new Uint8Array(16);
  new DataView(huge.buffer).setBigUint64(0, 2n ** 62n, true);
  assertParseError(huge, /header length \d+ is absurd/);
  const tooLong = new Uint8Array(16);
  new DataView(tooLong.buffer).setBigUint64(0, 100n, true);
  assertParseError(tooLong, /header length 100 is larger than the file \(16 bytes\)/);
  assertParseError(rawFile('{"a": ', 0), /not valid JSON/);
  assertParseError(rawFile('[1, 2]', 0), /not a JSON object/);
  assertParseError(rawFile('null', 0), /not a JSON object/);
  const badUtf8 = rawFile('{"a":1}', 0);
  badUtf8[10] = 0xff;
  assertParseError(badUtf8, /not valid UTF-8/);
  assertParseError(rawFile({ a: t('F7', [1], [0, 4]) }, 4), /tensor "a": unknown dtype "F7"/);
  assertParseError(rawFile({ a: 3 }, 0), /tensor "a": header entry is not an object/);
  assertParseError(rawFile({ a: t('F32', [-1], [0, 4]) }, 4), /tensor "a": shape \[-1\] is not an array of non-negative integers/);
  assertParseError(rawFile({ a: t('F32', [1.5], [0, 4]) }, 4), /shape/);
  assertParseError(rawFile({ a: t('F32', '1', [0, 4]) }, 4), /shape/);
  assertParseError(rawFile({ a: { dtype: 'F32', shape: [1] } }, 4), /data_offsets undefined is not two non-negative integers/);
  assertParseError(rawFile({ a: t('F32', [1], [0, 4, 8]) }, 8), /data_offsets \[0,4,8\] is not two/);
  assertParseError(rawFile({ a: t('F32', [1], [0, 4.5]) }, 8), /data_offsets/);
  assertParseError(rawFile({ a: t('F32', [0], [4, 0]) }, 4), /begin after end/);
  // truncated: the header promises 8 bytes, the file holds 6
  assertParseError(rawFile({ a: t('F32', [2], [0, 8]) }, 6), /tensor "a": data_offsets end 8 is beyond the 6-byte data buffer \(truncated file\?\)/);
  // a header that lies: 3 floats need 12 bytes, the offsets cover 8
  assertParseError(rawFile({ a: t('F32', [3], [0, 8]) }, 8), /tensor "a": data_offsets \[0, 8\] span 8 bytes but F32 \[3\] needs 12/);
  assertParseError(rawFile({ a: t('F32', [2], [0, 8]), b: t('F32', [1], [4, 8]) }, 8), /tensors "a" and "b" overlap at bytes \[4, 8\)/);
  assertParseError(rawFile({ a: t('F32', [1], [0, 4]), b: t('F32', [1], [8, 12]) }, 12), /gap: data bytes \[4, 8\) are not covered/);
  assertParseError(rawFile({ a: t('F32', [1], [4, 8]) }, 8), /gap: data bytes \[0, 4\)/);
  assertParseError(rawFile({ a: t('F32', [1], [0, 4]) }, 6), /gap: data bytes \[4, 6\) at the end/);
  assertParseError(rawFile({ __metadata__: { k: 1 } }, 0), /"__metadata__" value for "k" is not a string/);
  assertParseError(rawFile({ __metadata__: ['x'] }, 0), /"__metadata__" is not a string-to-string map/);
});

test('parse accepts what the spec allows beyond our own layout', () => {
  // Unpadded header, tensors not in name order, zero-size tensors sharing an offset.
  const t = (dtype: string, shape: number[], data_offsets: number[]) => ({ dtype, shape, data_offsets });
  const bytes = rawFile({ z: t('U8', [2], [0, 2]), a: t('U8', [1], [2, 3]), e: t('F32', [0], [2, 2]), f: t('I8', [0, 4], [2, 2]) }, 3);
  bytes.set([7, 8, 9], bytes.length - 3);
  const { tensors, metadata } = parseSafetensors(bytes);
  assert.deepEqual(metadata, {});
  assert.deepEqual([...tensors.z!.data], [7, 8]);
  assert.deepEqual([...tensors.a!.data], [9]);
  assert.equal(tensors.e!.data.byteLength, 0);
  assert.deepEqual(tensors.f!.shape, [0, 4]);
});

test('writeSafetensors / readSafetensors: atomic, no temporary left behind', () => {
  withTempDir((dir) => {
    const path = join(dir, 'model.safetensors');
    writeSafetensors(path, SAMPLES, { k: 'v' });
    assert.deepEqual(readdirSync(dir), ['model.safetensors']);
    assert.deepEqual(new Uint8Array(readFileSync(path)), concat(serializeSafetensors(SAMPLES, { k: 'v' })));
    const { tensors, metadata } = readSafetensors(path);
    assert.deepEqual(metadata, { k: 'v' });
    for (const [name, record] of Object.entries(SAMPLES)) {
      assert.deepEqual(tensors[name], record, name);
      assert.equal(tensors[name]!.data.byteOffset, 0);
    }

    // Overwrite keeps a single file.
    writeSafetensors(path, { only: SAMPLES.u8! });
    assert.deepEqual(readdirSync(dir), ['model.safetensors']);
    assert.deepEqual(Object.keys(readSafetensors(path).tensors), ['only']);

    // The target's directory is a regular file: the write must fail and leave nothing.
    const blocker = join(dir, 'blocker');
    writeFileSync(blocker, 'not a directory');
    assert.throws(() => writeSafetensors(join(blocker, 'x.safetensors'), SAMPLES));
    assert.deepEqual(readdirSync(dir).sort(), ['blocker', 'model.safetensors']);

    // Invalid tensors fail before anything is written.
    assert.throws(() => writeSafetensors(join(dir, 'bad.safetensors'), { a: { dtype: 'F32', shape: [2], data: new Uint8Array(4) } }), SafetensorsError);
    assert.deepEqual(readdirSync(dir).sort(), ['blocker', 'model.safetensors']);
  });
});

test('readSafetensors names the path for a truncated file', () => {
  withTempDir((dir) => {
    const path = join(dir, 'cut.safetensors');
    const full = concat(serializeSafetensors(SAMPLES));
    writeFileSync(path, full.subarray(0, full.length - 5));
    assert.throws(() => readSafetensors(path), (err: unknown) => {
      assert.ok(err instanceof SafetensorsError);
      assert.ok(err.message.startsWith(`${path}: `), err.message);
      assert.match(err.message, /truncated/);
      return true;
    });
  });
});

// Independent reader: plain struct + json + torch.frombuffer, so a bug shared by our writer and reader shows.
const PYTHON_READER = `
import json, struct, sys
try:
    import torch
except Exception:
    sys.exit(77)
raw = open(sys.argv[1], 'rb').read()
(n,) = struct.unpack('<Q', raw[:8])
assert (8 + n) % 8 == 0, 'data not aligned'
header = json.loads(raw[8:8 + n].decode('utf-8'))
data = bytearray(raw[8 + n:])
types = {'F64': torch.float64, 'F32': torch.float32, 'F16': torch.float16, 'BF16': torch.bfloat16,
         'I64': torch.int64, 'I32': torch.int32, 'I16': torch.int16, 'I8': torch.int8, 'U8': torch.uint8,
         'BOOL': torch.bool}
out = {'metadata': header.pop('__metadata__', {}), 'tensors': {}}
end = 0
for name, info in sorted(header.items(), key=lambda kv: kv[1]['data_offsets']):
    begin, stop = info['data_offsets']
    assert begin == end, 'not contiguous'
    end = stop
    dtype = types[info['dtype']]
    if begin == stop:
        t = torch.empty(info['shape'], dtype=dtype)
    else:
        t = torch.frombuffer(data[begin:stop], dtype=dtype).reshape(info['shape'])
    flat = t.reshape(-1)
    if dtype in (torch.float16, torch.bfloat16):
        values = flat.float().tolist()
    elif dtype == torch.int64:
        values = [str(v) for v in flat.tolist()]
    elif dtype == torch.bool:
        values = [bool(v) for v in flat.tolist()]
    else:
        values = flat.tolist()
    out['tensors'][name] = {'shape': list(t.shape), 'values': values}
assert end == len(data), 'trailing bytes'
print(json.dumps(out))
`;

test('an independent Python/torch reader agrees with our writer', (t) => {
  withTempDir((dir) => {
    const path = join(dir, 'py.safetensors');
    writeSafetensors(path, SAMPLES, { source: 'ts' });
    const run = spawnSync('/usr/bin/python3', ['-c', PYTHON_READER, path], { encoding: 'utf8', timeout: 60_000 });
    if (run.error || run.status === 77) {
      t.skip('python3 with torch is not available');
      return;
    }
    assert.equal(run.status, 0, run.stderr);
    const got = JSON.parse(run.stdout) as { metadata: Record<string, string>; tensors: Record<string, { shape: number[]; values: unknown[] }> };
    assert.deepEqual(got.metadata, { source: 'ts' });
    const expected: Record<string, { shape: number[]; values: unknown[] }> = {
      f64: { shape: [5], values: [1.5, -2.25, Math.PI, 1e300, -0] },
      f32: { shape: [2, 3], values: [1, 2, 3, 4, 5, 6] },
      f16: { shape: [2, 2], values: [1, -2, 0.5, 65504] },
      bf16: { shape: [4], values: [1, -2, 0.5, 3.140625] },
      i64: { shape: [2, 1, 2], values: [String(-(2n ** 63n)), String(2n ** 63n - 1n), '0', '42'] },
      i32: { shape: [3], values: [-(2 ** 31), 2 ** 31 - 1, 7] },
      i16: { shape: [2], values: [-32768, 32767] },
      i8: { shape: [3], values: [-128, 127, 0] },
      u8: { shape: [3], values: [0, 1, 255] },
      bool: { shape: [2, 2], values: [true, false, true, true] },
      empty: { shape: [3, 0, 2], values: [] },
      scalar: { shape: [], values: [2.5] },
    };
    assert.deepEqual(got.tensors, expected);
  });
});
