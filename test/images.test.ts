import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encode } from 'fast-png';
import { decodeGrayPng, encodeGrayPng, writeGrayPng } from '../src/images/png.ts';
import { GLYPH_ADVANCE, GLYPH_HEIGHT, GrayCanvas, textHeight, textWidth } from '../src/images/canvas.ts';
import { GRID_BACKGROUND, LABEL_PAD, gridGeometry, sampleGrid, setToGrid, strip, tileOrigin, toPixels } from '../src/images/grid.ts';
import type { ImageSet } from '../src/data/image-set.ts';
import { tensor } from '../src/torch/ops/creation.ts';
import { memory, tidy } from '../src/torch/scope.ts';

const PNG_SIGNATURE = [137, 80, 78, 71, 13, 10, 26, 10];

function pattern(width: number, height: number): Uint8Array {
  const p = new Uint8Array(width * height);
  for (let i = 0; i < p.length; i++) p[i] = (i * 37 + 11) & 0xff;
  return p;
}

/** Pixels of a canvas region, row-major. */
function region(c: GrayCanvas, x: number, y: number, w: number, h: number): number[] {
  const out: number[] = [];
  for (let yy = y; yy < y + h; yy++) for (let xx = x; xx < x + w; xx++) out.push(c.get(xx, yy));
  return out;
}

test('PNG: encode → decode round trip keeps pixels and size; writes atomically with the PNG signature', () => {
  const pixels = pattern(7, 5);
  const bytes = encodeGrayPng(pixels, 7, 5);
  assert.deepEqual([...bytes.subarray(0, 8)], PNG_SIGNATURE);
  const back = decodeGrayPng(bytes);
  assert.equal(back.width, 7);
  assert.equal(back.height, 5);
  assert.deepEqual([...back.pixels], [...pixels]);

  const dir = mkdtempSync(join(tmpdir(), 'png-'));
  try {
    const path = join(dir, 'sub', 'a.png');
    writeGrayPng(path, pixels, 7, 5);
    const onDisk = new Uint8Array(readFileSync(path));
    assert.deepEqual([...onDisk.subarray(0, 8)], PNG_SIGNATURE);
    assert.deepEqual([...decodeGrayPng(onDisk).pixels], [...pixels]);
    assert.deepEqual(readdirSync(join(dir, 'sub')), ['a.png'], 'no temporary file left behind');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('PNG: size checks and clear errors for non-grey or non-PNG input', () => {
  assert.throws(() => encodeGrayPng(new Uint8Array(5), 2, 3), /6/);
  assert.throws(() => encodeGrayPng(new Uint8Array(0), 0, 0), /positive integer/);
  const rgb = encode({ width: 1, height: 1, data: new Uint8Array([1, 2, 3]), channels: 3, depth: 8 });
  assert.throws(() => decodeGrayPng(rgb), /8-bit single-channel grey PNG, got 3 channel/);
  const grey16 = encode({ width: 1, height: 1, data: new Uint16Array([1000]), channels: 1, depth: 16 });
  assert.throws(() => decodeGrayPng(grey16), /bit depth 16/);
  assert.throws(() => decodeGrayPng(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9])), /not a PNG/);
});

test('toPixels: linear map from range with clamping and rounding, [N,1,H,W] and [N,H,W]', () => {
  const before = memory().numTensors;
  const vals = [-1, 1, -2, 3, 0, 0.5, -0.5, -0.25];
  tidy(() => {
    const out = toPixels(tensor(vals, { shape: [2, 1, 2, 2] }), [-1, 1]);
    assert.equal(out.height, 2);
    assert.equal(out.width, 2);
    assert.equal(out.pixels.length, 2);
    // -1→0, 1→255, clamped outside; 0→127.5→128 (halves up), 0.5→191.25→191, -0.5→63.75→64, -0.25→95.625→96
    assert.deepEqual([...out.pixels[0]!], [0, 255, 0, 255]);
    assert.deepEqual([...out.pixels[1]!], [128, 191, 64, 96]);
    const levels = toPixels(tensor([2.5, 2.49, 253.5, 254.51], { shape: [1, 2, 2] }), [0, 255]);
    assert.deepEqual([...levels.pixels[0]!], [3, 2, 254, 255]);
    const flat = toPixels(tensor([0, 0.25, 1, 2, Number.NaN, -3], { shape: [1, 2, 3] }));
    assert.deepEqual([...flat.pixels[0]!], [0, 64, 255, 255, 0, 0]);
    assert.throws(() => toPixels(tensor([0, 0], { shape: [1, 2, 1, 1] })), /\[N, 1, H, W\]/);
    assert.throws(() => toPixels(tensor([0], { shape: [1, 1, 1] }), [1, 1]), /min < max/);
  });
  assert.equal(memory().numTensors, before);
});

test('GrayCanvas: paste with nearest-neighbour upscale, clipping at the edges', () => {
  const c = new GrayCanvas(10, 8, 200);
  c.paste(new Uint8Array([1, 2, 3, 4, 5, 6]), 3, 2, 1, 2, 2);
  assert.deepEqual(region(c, 0, 1, 8, 6), [
    200, 200, 200, 200, 200, 200, 200, 200,
    200, 1, 1, 2, 2, 3, 3, 200,
    200, 1, 1, 2, 2, 3, 3, 200,
    200, 4, 4, 5, 5, 6, 6, 200,
    200, 4, 4, 5, 5, 6, 6, 200,
    200, 200, 200, 200, 200, 200, 200, 200,
  ]);
  c.paste(new Uint8Array([7, 8, 9, 10]), 2, 2, -1, 7, 1); // only the top-right pixel lands, at (0, 7)
  assert.equal(c.get(0, 7), 8);
  assert.equal(c.get(1, 7), 200);
  assert.throws(() => c.paste(new Uint8Array(3), 2, 2, 0, 0), /4/);
  assert.throws(() => c.paste(new Uint8Array(4), 2, 2, 0, 0, 1.5), /scale/);
  const back = decodeGrayPng(c.toPng());
  assert.deepEqual([back.width, back.height], [10, 8]);
  assert.deepEqual([...back.pixels], [...c.pixels]);
});

test('GrayCanvas.drawText: ink only inside its box, every glyph of the label set draws something', () => {
  const c = new GrayCanvas(60, 30, 255);
  const text = 't=29 x0';
  const [x, y, scale] = [3, 4, 2];
  const w = c.drawText(text, x, y, { scale });
  assert.equal(w, textWidth(text, scale));
  assert.equal(w, (text.length * GLYPH_ADVANCE - 1) * scale);
  let inside = 0;
  for (let yy = 0; yy < c.height; yy++) {
    for (let xx = 0; xx < c.width; xx++) {
      const v = c.get(xx, yy);
      const inBox = xx >= x && xx < x + w && yy >= y && yy < y + textHeight(scale);
      if (!inBox) assert.equal(v, 255, `pixel (${xx}, ${yy}) outside the text box changed`);
      else if (v !== 255) inside++;
    }
  }
  assert.ok(inside > 0);
  for (const ch of '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz=+-.:()/^_') {
    const g = new GrayCanvas(5, 7, 255);
    g.drawText(ch, 0, 0, { value: 0 });
    assert.ok(g.pixels.includes(0), `glyph ${ch} is blank`);
  }
  assert.throws(() => c.drawText('x̂0', 0, 0), /no glyph/);
});

test('sampleGrid: geometry formula, tile placement, column labels in the top band', () => {
  const before = memory().numTensors;
  const [n, h, w, columns, scale, gap] = [7, 3, 4, 3, 2, 1];
  const vals = Array.from({ length: n * h * w }, (_, i) => (i % 13) / 12);
  const imgs = tensor(vals, { shape: [n, 1, h, w] });
  const rows = Math.ceil(n / columns);
  const plain = sampleGrid(imgs, { columns, scale, gap });
  assert.equal(plain.width, columns * w * scale + (columns + 1) * gap);
  assert.equal(plain.height, rows * h * scale + (rows + 1) * gap);
  const tiles = toPixels(imgs);
  // Image 5 sits in row 1, column 2; its pixel (r, c) covers a scale×scale block.
  const g = gridGeometry(rows, columns, h, w, { scale, gap });
  const o = tileOrigin(g, 1, 2);
  assert.deepEqual(o, { x: gap + 2 * (w * scale + gap), y: gap + (h * scale + gap) });
  for (let r = 0; r < h; r++) {
    for (let c = 0; c < w; c++) {
      const want = tiles.pixels[5]![r * w + c]!;
      assert.deepEqual(region(plain, o.x + c * scale, o.y + r * scale, scale, scale), [want, want, want, want]);
    }
  }
  assert.equal(plain.get(0, 0), GRID_BACKGROUND); // gap
  assert.equal(plain.get(plain.width - 1, plain.height - 1), GRID_BACKGROUND); // empty last cells

  const labelled = sampleGrid(imgs, { columns, scale, gap, labels: ['0', '1', '2'] });
  const band = GLYPH_HEIGHT * scale + 2 * LABEL_PAD * scale;
  assert.equal(labelled.width, plain.width);
  assert.equal(labelled.height, plain.height + band);
  assert.deepEqual(region(labelled, 0, band, labelled.width, labelled.height - band), [...plain.pixels]);
  assert.ok(region(labelled, 0, 0, labelled.width, band).includes(0), 'labels drawn in the band');
  assert.throws(() => sampleGrid(imgs, { columns, labels: ['0', '1'] }), /2 labels for 3 columns/);
  assert.equal(memory().numTensors, before + 1);
  imgs.dispose();
  assert.equal(memory().numTensors, before);
});

test('strip: label margin at the left, rows of different lengths, column labels', () => {
  const before = memory().numTensors;
  const canvas = tidy(() => {
    const a = tensor(Array.from({ length: 3 * 2 * 2 }, (_, i) => i / 11), { shape: [3, 2, 2] });
    const b = tensor([1, 1, 1, 1, 0, 0, 0, 0], { shape: [2, 1, 2, 2] });
    return strip(
      [
        { label: 't=29', images: a },
        { label: 'x0', images: b },
      ],
      { scale: 3, gap: 2, textScale: 1, columnLabels: ['0', '1', '2'] },
    );
  });
  assert.equal(memory().numTensors, before);
  const margin = textWidth('t=29', 1) + 2 * LABEL_PAD;
  const band = GLYPH_HEIGHT + 2 * LABEL_PAD;
  assert.equal(canvas.width, margin + 3 * 2 * 3 + 4 * 2);
  assert.equal(canvas.height, band + 2 * 2 * 3 + 3 * 2);
  // Row 1, column 1 holds b[1] (all zeros → black); column 2 of row 1 is empty (background).
  const g = gridGeometry(2, 3, 2, 2, { scale: 3, gap: 2, textScale: 1, marginLeft: margin, hasColumnLabels: true });
  const t11 = tileOrigin(g, 1, 1);
  assert.deepEqual(region(canvas, t11.x, t11.y, 6, 6), new Array(36).fill(0));
  const t10 = tileOrigin(g, 1, 0);
  assert.deepEqual(region(canvas, t10.x, t10.y, 6, 6), new Array(36).fill(255));
  const t12 = tileOrigin(g, 1, 2);
  assert.deepEqual(region(canvas, t12.x, t12.y, 6, 6), new Array(36).fill(GRID_BACKGROUND));
  // Labels are black ink inside the margin, level with their rows.
  assert.ok(region(canvas, 0, t10.y, margin, 6).includes(0), 'row label x0 drawn');
  assert.ok(region(canvas, 0, tileOrigin(g, 0, 0).y, margin, 6).includes(0), 'row label t=29 drawn');
  tidy(() => assert.throws(() => strip([{ label: 'x̂0', images: tensor([0], { shape: [1, 1, 1] }) }]), /printable ASCII/));
  assert.equal(memory().numTensors, before);
});

test('setToGrid: picks images of an IDX set by index, as stored', () => {
  const images = new Uint8Array(4 * 2 * 3);
  for (let i = 0; i < 4; i++) images.fill(10 * (i + 1), i * 6, (i + 1) * 6);
  const set: ImageSet = { images, labels: new Uint8Array([0, 1, 2, 3]), count: 4, height: 2, width: 3, numClasses: 10 };
  const c = setToGrid(set, [3, 0, 2], 2, { scale: 1, gap: 1 });
  assert.equal(c.width, 2 * 3 + 3);
  assert.equal(c.height, 2 * 2 + 3);
  const g = gridGeometry(2, 2, 2, 3, { scale: 1, gap: 1 });
  const at = (r: number, col: number): number[] => {
    const o = tileOrigin(g, r, col);
    return region(c, o.x, o.y, 3, 2);
  };
  assert.deepEqual(at(0, 0), new Array(6).fill(40));
  assert.deepEqual(at(0, 1), new Array(6).fill(10));
  assert.deepEqual(at(1, 0), new Array(6).fill(30));
  assert.throws(() => setToGrid(set, [4], 2), /out of range/);
});
