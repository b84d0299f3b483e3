// Sample pictures for the paper's figures: tensors → 8-bit tiles → labelled grids and strips.
// Tiles keep the MNIST convention (white ink on black, pixel = intensity × 255); the canvas around them is
// white, so gaps separate tiles and labels are black text on white margins.
import type { ImageSet } from '../data/image-set.ts';
import { tidy } from '../torch/scope.ts';
import type { Tensor } from '../torch/tensor.ts';
import { GrayCanvas, textHeight, textWidth, isDrawable } from './canvas.ts';

/** Grey value of the canvas between and around tiles (white). */
export const GRID_BACKGROUND = 255;
/** Grey value of label text (black). */
export const LABEL_INK = 0;
/** Space around a label, in font pixels (multiplied by the text scale). */
export const LABEL_PAD = 2;

/** 8-bit images of one size, one row-major Uint8Array of height×width bytes per image. */
export interface PixelImages {
  pixels: Uint8Array[];
  height: number;
  width: number;
}

/**
 * Maps a float tensor of images, [N, 1, H, W] or [N, H, W], linearly from `range` to 0..255 (range[0] → 0,
 * range[1] → 255), clamping values outside the range and rounding to the nearest level (halves up; NaN → 0).
 * Works on any device and dtype; creates no lasting tensors.
 */
export function toPixels(images: Tensor, range: readonly [number, number] = [0, 1]): PixelImages {
  const [lo, hi] = range;
  if (!Number.isFinite(lo) || !Number.isFinite(hi) || !(hi > lo)) {
    throw new RangeError(`toPixels: range must be finite with min < max, got [${lo}, ${hi}]`);
  }
  const shape = images.shape;
  if (!(shape.length === 3 || (shape.length === 4 && shape[1] === 1))) {
    throw new RangeError(`toPixels: expected images of shape [N, 1, H, W] or [N, H, W], got [${shape.join(', ')}]`);
  }
  const n = shape[0]!;
  const height = shape[shape.length - 2]!;
  const width = shape[shape.length - 1]!;
  // One host copy in float32; the mapping itself is done in JS so rounding is exactly Math.round.
  const data = tidy(() => images.detach().to({ dtype: 'float32', device: 'cpu' }).contiguous().data()) as Float32Array;
  const k = 255 / (hi - lo);
  const size = height * width;
  const pixels: Uint8Array[] = [];
  for (let i = 0; i < n; i++) {
    const img = new Uint8Array(size);
    const off = i * size;
    for (let j = 0; j < size; j++) {
      const v = Math.round((data[off + j]! - lo) * k);
      img[j] = v > 255 ? 255 : v > 0 ? v : 0; // NaN fails both tests → 0
    }
    pixels.push(img);
  }
  return { pixels, height, width };
}

/** Layout options shared by grids and strips. */
export interface LayoutOptions {
  /** Integer upscale of each tile, nearest neighbour (default 2). */
  scale?: number;
  /** White space between tiles and around the block of tiles, in canvas pixels (default 2). */
  gap?: number;
  /** Integer scale of the 5×7 label font (default: the tile scale). */
  textScale?: number;
}

export interface GridOptions extends LayoutOptions {
  /** Tiles per row; images fill rows left to right, top to bottom. */
  columns: number;
  /** Column headers, one per column (the paper's Figs. 8-10: column j holds class j). */
  labels?: readonly string[];
  /** Value range mapped to black..white (default [0, 1]). */
  range?: readonly [number, number];
}

/** Where everything goes on a grid canvas; all values in canvas pixels. */
export interface GridGeometry {
  width: number;
  height: number;
  columns: number;
  rows: number;
  tileWidth: number;
  tileHeight: number;
  gap: number;
  /** Width of the row-label margin at the left (0 without row labels). */
  marginLeft: number;
  /** Height of the column-label band at the top (0 without column labels). */
  marginTop: number;
  textScale: number;
}

/**
 * The geometry of `rows`×`columns` tiles of imageHeight×imageWidth at `scale`, with a row-label margin of
 * `marginLeft` and a header band when `hasColumnLabels`:
 * width = marginLeft + columns·W·scale + (columns+1)·gap, height = marginTop + rows·H·scale + (rows+1)·gap,
 * where marginTop = textHeight(textScale) + 2·LABEL_PAD·textScale with column labels, else 0.
 */
export function gridGeometry(
  rows: number,
  columns: number,
  imageHeight: number,
  imageWidth: number,
  opts: LayoutOptions & { hasColumnLabels?: boolean; marginLeft?: number } = {},
): GridGeometry {
  const scale = opts.scale ?? 2;
  const gap = opts.gap ?? 2;
  const textScale = opts.textScale ?? scale;
  const marginLeft = opts.marginLeft ?? 0;
  for (const [k, v, min] of [['scale', scale, 1], ['textScale', textScale, 1], ['gap', gap, 0], ['columns', columns, 1], ['rows', rows, 0], ['marginLeft', marginLeft, 0]] as const) {
    if (!Number.isInteger(v) || v < min) throw new RangeError(`grid: ${k} must be an integer >= ${min}, got ${v}`);
  }
  const marginTop = opts.hasColumnLabels === true ? labelBand(textScale) : 0;
  const tileWidth = imageWidth * scale;
  const tileHeight = imageHeight * scale;
  return {
    width: marginLeft + columns * tileWidth + (columns + 1) * gap,
    height: marginTop + rows * tileHeight + (rows + 1) * gap,
    columns,
    rows,
    tileWidth,
    tileHeight,
    gap,
    marginLeft,
    marginTop,
    textScale,
  };
}

/** Top-left canvas position of the tile in row `row`, column `col`. */
export function tileOrigin(g: GridGeometry, row: number, col: number): { x: number; y: number } {
  return { x: g.marginLeft + g.gap + col * (g.tileWidth + g.gap), y: g.marginTop + g.gap + row * (g.tileHeight + g.gap) };
}

/** Height of a band holding one line of labels (text plus padding above and below). */
function labelBand(textScale: number): number {
  return textHeight(textScale) + 2 * LABEL_PAD * textScale;
}

function checkLabels(labels: readonly string[], expected: number, what: string): void {
  if (labels.length !== expected) throw new RangeError(`${what}: got ${labels.length} labels for ${expected} columns`);
  for (const l of labels) {
    if (!isDrawable(l)) throw new RangeError(`${what}: label ${JSON.stringify(l)} has characters outside printable ASCII (write x0 for x̂0)`);
  }
}

/** Draws column headers centred over their columns, in the band above the tiles. */
function drawColumnLabels(canvas: GrayCanvas, g: GridGeometry, labels: readonly string[]): void {
  const y = LABEL_PAD * g.textScale;
  labels.forEach((label, col) => {
    const { x } = tileOrigin(g, 0, col);
    const cx = x + Math.floor((g.tileWidth - textWidth(label, g.textScale)) / 2);
    canvas.drawText(label, Math.max(0, cx), y, { scale: g.textScale, value: LABEL_INK });
  });
}

/**
 * Lays out 8-bit tiles in row-major order, `columns` per row, on a white canvas, with optional column
 * headers. The building block of `sampleGrid` and `setToGrid`.
 */
export function pixelGrid(
  tiles: PixelImages,
  opts: LayoutOptions & { columns: number; labels?: readonly string[] },
): GrayCanvas {
  const { columns, labels } = opts;
  if (!Number.isInteger(columns) || columns < 1) throw new RangeError(`grid: columns must be a positive integer, got ${columns}`);
  if (tiles.pixels.length === 0) throw new RangeError('grid: no images to lay out');
  if (labels !== undefined) checkLabels(labels, columns, 'grid');
  const rows = Math.ceil(tiles.pixels.length / columns);
  const g = gridGeometry(rows, columns, tiles.height, tiles.width, { ...opts, hasColumnLabels: labels !== undefined });
  const scale = opts.scale ?? 2;
  const canvas = new GrayCanvas(g.width, g.height, GRID_BACKGROUND);
  tiles.pixels.forEach((img, i) => {
    const { x, y } = tileOrigin(g, Math.floor(i / columns), i % columns);
    canvas.paste(img, tiles.width, tiles.height, x, y, scale);
  });
  if (labels !== undefined) drawColumnLabels(canvas, g, labels);
  return canvas;
}

/**
 * A grid of sample images [N, 1, H, W] (or [N, H, W]) in row-major order, `columns` per row, with optional
 * column headers (callers order samples so that column j holds label j). Geometry: see `gridGeometry`.
 */
export function sampleGrid(images: Tensor, opts: GridOptions): GrayCanvas {
  return pixelGrid(toPixels(images, opts.range), opts);
}

/** One row of a strip: its label (drawn at the left) and its images [N, 1, H, W] or [N, H, W], left to right. */
export interface StripRow {
  label: string;
  images: Tensor;
}

export interface StripOptions extends LayoutOptions {
  /** Column headers, one per column (e.g. `t=0`..`t=29`; use '' to leave a column unlabelled). */
  columnLabels?: readonly string[];
  /** Value range mapped to black..white (default [0, 1]). */
  range?: readonly [number, number];
}

/**
 * Rows of images left to right, each with its label at the left: forward-process strips (rows = samples,
 * columns = t = 0..T−1) and reverse-process strips (a row of x_t and a row of x0 estimates per sample).
 * All images share one size; rows may be of different lengths (columns = the longest row). The label margin
 * is as wide as the widest label plus LABEL_PAD·textScale on each side (0 when every label is empty).
 */
export function strip(rows: readonly StripRow[], opts: StripOptions = {}): GrayCanvas {
  if (rows.length === 0) throw new RangeError('strip: no rows');
  const tiles = rows.map((r) => toPixels(r.images, opts.range));
  const { height, width } = tiles[0]!;
  tiles.forEach((t, i) => {
    if (t.height !== height || t.width !== width) {
      throw new RangeError(`strip: row ${i} has ${t.height}x${t.width} images, row 0 has ${height}x${width}`);
    }
  });
  const columns = Math.max(1, ...tiles.map((t) => t.pixels.length));
  const scale = opts.scale ?? 2;
  const textScale = opts.textScale ?? scale;
  for (const r of rows) checkLabels([r.label], 1, 'strip row');
  if (opts.columnLabels !== undefined) checkLabels(opts.columnLabels, columns, 'strip');
  const widest = Math.max(...rows.map((r) => textWidth(r.label, textScale)));
  const marginLeft = widest > 0 ? widest + 2 * LABEL_PAD * textScale : 0;
  const g = gridGeometry(rows.length, columns, height, width, {
    ...opts,
    textScale,
    marginLeft,
    hasColumnLabels: opts.columnLabels !== undefined,
  });
  const canvas = new GrayCanvas(g.width, g.height, GRID_BACKGROUND);
  tiles.forEach((t, row) => {
    t.pixels.forEach((img, col) => {
      const { x, y } = tileOrigin(g, row, col);
      canvas.paste(img, width, height, x, y, scale);
    });
    // Label left-aligned in the margin, centred vertically on its row of tiles.
    const { y } = tileOrigin(g, row, 0);
    const ty = y + Math.floor((g.tileHeight - textHeight(textScale)) / 2);
    canvas.drawText(rows[row]!.label, LABEL_PAD * textScale, Math.max(0, ty), { scale: textScale, value: LABEL_INK });
  });
  if (opts.columnLabels !== undefined) drawColumnLabels(canvas, g, opts.columnLabels);
  return canvas;
}

/**
 * A grid of images picked from an IDX image set by index (bytes used as stored: white digits on black),
 * `columns` per row. Options as for `sampleGrid`, without `range`.
 */
export function setToGrid(
  set: ImageSet,
  indices: readonly number[],
  columns: number,
  opts: LayoutOptions & { labels?: readonly string[] } = {},
): GrayCanvas {
  const size = set.height * set.width;
  if (set.images.length < set.count * size) {
    throw new RangeError(`setToGrid: set holds ${set.images.length} bytes, expected ${set.count}x${set.height}x${set.width}`);
  }
  const pixels = indices.map((idx) => {
    if (!Number.isInteger(idx) || idx < 0 || idx >= set.count) {
      throw new RangeError(`setToGrid: index ${idx} is out of range for a set of ${set.count} images`);
    }
    return set.images.subarray(idx * size, (idx + 1) * size);
  });
  return pixelGrid({ pixels, height: set.height, width: set.width }, { ...opts, columns });
}
