import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { DataError, encodeIdx, parseIdx, readIdx, writeIdx } from '../src/data/idx.ts';
import type { IdxData } from '../src/data/idx.ts';
import { classCounts, readImageSet, writeImageSet } from '../src/data/image-set.ts';
import type { ImageSet } from '../src/data/image-set.ts';

const dir = mkdtempSync(join(tmpdir(), 'idx-test-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

const samples: IdxData[] = [
  { dtype: 'uint8', shape: [2, 3], data: Uint8Array.from([0, 1, 127, 128, 254, 255]) },
  { dtype: 'int8', shape: [5], data: Int8Array.from([-128, -1, 0, 1, 127]) },
  { dtype: 'int16', shape: [1, 2, 3], data: Int16Array.from([-32768, -2, 0, 1, 256, 32767]) },
  { dtype: 'int32', shape: [4], data: Int32Array.from([-(2 ** 31), -1, 65536, 2 ** 31 - 1]) },
  { dtype: 'float32', shape: [2, 2], data: Float32Array.from([-0, 1.5, -Infinity, 3.4e38]) },
  { dtype: 'float64', shape: [5, 1], data: Float64Array.from([Math.PI, -0, Infinity, NaN, 1e-300]) },
  { dtype: 'uint8', shape: [0, 28, 28], data: new Uint8Array(0) },
];

/** Writes raw bytes to a fresh file in the temp dir and returns its path. */
function rawFile(name: string, bytes: Uint8Array | number[]): string {
  const p = join(dir, name);
  writeFileSync(p, Uint8Array.from(bytes));
  return p;
}

/** Asserts that reading `path` fails with a one-line DataError naming the file and matching `re`. */
function assertReadFails(path: string, re: RegExp): void {
  assert.throws(
    () => readIdx(path),
    (err: unknown) => {
      assert.ok(err instanceof DataError, `expected DataError, got ${String(err)}`);
      assert.match(err.message, re);
      assert.ok(err.message.includes(path), `message should name the file: ${err.message}`);
      assert.ok(!err.message.includes('\n'), 'message should be one line');
      return true;
    },
  );
}

test('IDX round trip for every dtype, plain and gzipped', () => {
  for (const [k, s] of samples.entries()) {
    for (const ext of ['', '.gz']) {
      const p = join(dir, `rt-${k}-${s.dtype}${ext}`);
      writeIdx(p, s);
      const raw = readFileSync(p);
      if (ext) assert.deepEqual([raw[0], raw[1]], [0x1f, 0x8b], 'gz file starts with gzip magic');
      else assert.deepEqual([raw[0], raw[1]], [0, 0], 'plain file starts with IDX magic');
      const back = readIdx(p);
      assert.equal(back.dtype, s.dtype);
      assert.deepEqual(back.shape, s.shape);
      assert.equal(back.data.constructor, s.data.constructor);
      assert.deepEqual(Array.from(back.data as ArrayLike<number>), Array.from(s.data as ArrayLike<number>));
      // deepEqual treats 0 and -0 alike; check the sign bit survives.
      for (let i = 0; i < s.data.length; i++) assert.ok(Object.is(back.data[i], s.data[i]), `${s.dtype}[${i}]`);
    }
  }
});

test('IDX byte layout of hand-built files', () => {
  const int16 = [0x00, 0x00, 0x0b, 0x01, 0x00, 0x00, 0x00, 0x02, 0x00, 0x01, 0xff, 0xfe];
  assert.deepEqual(Array.from(encodeIdx({ dtype: 'int16', shape: [2], data: Int16Array.from([1, -2]) })), int16);
  const parsed = parseIdx(Uint8Array.from(int16), 'int16');
  assert.equal(parsed.dtype, 'int16');
  assert.deepEqual(parsed.shape, [2]);
  assert.deepEqual(Array.from(parsed.data), [1, -2]);

  const f32 = [0, 0, 0x0d, 2, 0, 0, 0, 1, 0, 0, 0, 2, 0x3f, 0x80, 0, 0, 0xc0, 0x00, 0, 0];
  const p = join(dir, 'layout-f32');
  writeIdx(p, { dtype: 'float32', shape: [1, 2], data: Float32Array.from([1, -2]) });
  assert.deepEqual(Array.from(readFileSync(p)), f32);

  const u8 = [0, 0, 0x08, 3, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 1, 7, 200];
  const img = parseIdx(Uint8Array.from(u8), 'u8');
  assert.equal(img.dtype, 'uint8');
  assert.deepEqual(img.shape, [1, 2, 1]);
  assert.deepEqual(Array.from(img.data), [7, 200]);

  // Dimension sizes are big-endian: 01 02 03 04 is 16909060, not 67305985.
  const dims = [0, 0, 0x0c, 1, 0x01, 0x02, 0x03, 0x04];
  assert.throws(() => parseIdx(Uint8Array.from(dims), 'dims'), /shape 16909060 of int32/);

  // Parsed data must not alias the input buffer.
  const bytes = Uint8Array.from([0, 0, 8, 1, 0, 0, 0, 2, 5, 6]);
  const out = parseIdx(bytes, 'alias');
  bytes[8] = 99;
  assert.deepEqual(Array.from(out.data), [5, 6]);
});

test('IDX errors: bad magic, unknown type, zero dims', () => {
  assertReadFails(rawFile('bad-magic', [0x50, 0x4b, 0x03, 0x04, 1, 2, 3]), /bad magic.*0x50 0x4b/);
  assertReadFails(rawFile('bad-magic2', [0, 1, 8, 1, 0, 0, 0, 0]), /bad magic/);
  assertReadFails(rawFile('bad-type', [0, 0, 0x0a, 1, 0, 0, 0, 0]), /unknown IDX type byte 0x0a/);
  assertReadFails(rawFile('zero-dims', [0, 0, 0x08, 0]), /zero dimensions/);
});

test('IDX errors: truncated header, truncated data, trailing bytes', () => {
  assertReadFails(rawFile('short-magic', [0, 0, 8]), /truncated header/);
  assertReadFails(rawFile('short-dims', [0, 0, 8, 3, 0, 0, 0, 1, 0, 0]), /truncated header.*3 dimensions need 16/);
  const good = encodeIdx({ dtype: 'int32', shape: [2, 3], data: new Int32Array(6) });
  assertReadFails(rawFile('short-data', good.subarray(0, good.length - 1)), /truncated data.*needs 24 bytes.*has 23/);
  const long = new Uint8Array(good.length + 3);
  long.set(good);
  assertReadFails(rawFile('long-data', long), /trailing garbage \(3 bytes/);
});

test('IDX errors: empty file, missing file, corrupt gzip', () => {
  assertReadFails(rawFile('empty', []), /empty file/);
  assertReadFails(rawFile('empty.gz', gzipSync(new Uint8Array(0))), /empty file/);
  assertReadFails(join(dir, 'does-not-exist'), /file not found/);
  const gz = gzipSync(encodeIdx({ dtype: 'uint8', shape: [1000], data: new Uint8Array(1000).map((_, i) => i * 7) }));
  assertReadFails(rawFile('cut.gz', gz.subarray(0, gz.length >> 1)), /corrupt gzip/);
  const mangled = Uint8Array.from(gz);
  for (let i = 10; i < mangled.length - 8; i++) mangled[i] ^= 0x5a;
  assertReadFails(rawFile('mangled.gz', mangled), /corrupt gzip/);
  // Errors inside a well-formed gzip stream are still reported against the file.
  assertReadFails(rawFile('inner.gz', gzipSync(Uint8Array.from([0, 0, 8, 1, 0, 0, 0, 4, 1]))), /truncated data/);
});

test('writeIdx rejects inconsistent input', () => {
  const p = join(dir, 'never');
  assert.throws(() => writeIdx(p, { dtype: 'uint8', shape: [3], data: new Uint8Array(4) }), /holds 3 elements but data has 4/);
  assert.throws(() => writeIdx(p, { dtype: 'int16', shape: [2], data: new Int32Array(2) } as unknown as IdxData), /Int16Array/);
  assert.throws(() => writeIdx(p, { dtype: 'uint8', shape: [], data: new Uint8Array(1) }), /1 to 255 dimensions/);
  assert.throws(() => readFileSync(p), /ENOENT/);
});

function tinySet(count: number, numClasses = 10): ImageSet {
  const images = new Uint8Array(count * 2 * 3).map((_, i) => i % 251);
  const labels = new Uint8Array(count).map((_, i) => i % numClasses);
  return { images, labels, count, height: 2, width: 3, numClasses };
}

test('writeImageSet / readImageSet round trip with MNIST naming', () => {
  const set = tinySet(13);
  const { imagesPath, labelsPath } = writeImageSet(join(dir, 'set'), set, 't10k');
  assert.equal(imagesPath, join(dir, 'set', 't10k-images-idx3-ubyte'));
  assert.equal(labelsPath, join(dir, 'set', 't10k-labels-idx1-ubyte'));
  const back = readImageSet(imagesPath, labelsPath);
  assert.deepEqual(back, set);
  assert.deepEqual(classCounts(back), [2, 2, 2, 1, 1, 1, 1, 1, 1, 1]);
});

test('readImageSet: count mismatch, label out of range, wrong dims', () => {
  const imagesPath = join(dir, 'm-images');
  const labelsPath = join(dir, 'm-labels');
  writeIdx(imagesPath, { dtype: 'uint8', shape: [5, 2, 2], data: new Uint8Array(20) });
  writeIdx(labelsPath, { dtype: 'uint8', shape: [4], data: Uint8Array.from([0, 1, 2, 3]) });
  assert.throws(() => readImageSet(imagesPath, labelsPath), (err: unknown) => {
    assert.ok(err instanceof DataError);
    assert.match(err.message, /count mismatch.*5 images.*4 labels/);
    return true;
  });

  writeIdx(labelsPath, { dtype: 'uint8', shape: [5], data: Uint8Array.from([0, 1, 9, 10, 200]) });
  assert.throws(() => readImageSet(imagesPath, labelsPath), (err: unknown) => {
    assert.ok(err instanceof DataError);
    assert.match(err.message, /label 10 at index 3 .*< 10/);
    return true;
  });
  assert.throws(() => readImageSet(imagesPath, labelsPath, 3), /label 9 at index 2 .*< 3/);
  assert.equal(readImageSet(imagesPath, labelsPath, 201).count, 5);

  writeIdx(labelsPath, { dtype: 'int32', shape: [5], data: new Int32Array(5) });
  assert.throws(() => readImageSet(imagesPath, labelsPath), /1-D uint8 label file, got 1-D int32/);
  assert.throws(() => readImageSet(labelsPath, labelsPath), /3-D uint8 image file/);
});
