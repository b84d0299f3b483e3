// A tiny 8-bit grey canvas with a 5×7 bitmap font: enough to lay out sample grids and label them,
// without a graphics library.
import { encodeGrayPng, writeGrayPng, checkGrayImage } from './png.ts';

/** Glyph cell of the bitmap font, in font pixels (before `scale`). */
export const GLYPH_WIDTH = 5;
export const GLYPH_HEIGHT = 7;
/** Horizontal advance per character, in font pixels: the glyph plus one column of spacing. */
export const GLYPH_ADVANCE = GLYPH_WIDTH + 1;

// The classic 5×7 LCD font for printable ASCII 0x20..0x7E: five column bytes per glyph, bit 0 = top row.
// prettier-ignore
const FONT = [
  0x00, 0x00, 0x00, 0x00, 0x00, /* ' ' */ 0x00, 0x00, 0x5f, 0x00, 0x00, /* ! */ 0x00, 0x07, 0x00, 0x07, 0x00, /* " */
  0x14, 0x7f, 0x14, 0x7f, 0x14, /* # */ 0x24, 0x2a, 0x7f, 0x2a, 0x12, /* $ */ 0x23, 0x13, 0x08, 0x64, 0x62, /* % */
  0x36, 0x49, 0x55, 0x22, 0x50, /* & */ 0x00, 0x05, 0x03, 0x00, 0x00, /* ' */ 0x00, 0x1c, 0x22, 0x41, 0x00, /* ( */
  0x00, 0x41, 0x22, 0x1c, 0x00, /* ) */ 0x08, 0x2a, 0x1c, 0x2a, 0x08, /* * */ 0x08, 0x08, 0x3e, 0x08, 0x08, /* + */
  0x00, 0x50, 0x30, 0x00, 0x00, /* , */ 0x08, 0x08, 0x08, 0x08, 0x08, /* - */ 0x00, 0x60, 0x60, 0x00, 0x00, /* . */
  0x20, 0x10, 0x08, 0x04, 0x02, /* / */ 0x3e, 0x51, 0x49, 0x45, 0x3e, /* 0 */ 0x00, 0x42, 0x7f, 0x40, 0x00, /* 1 */
  0x42, 0x61, 0x51, 0x49, 0x46, /* 2 */ 0x21, 0x41, 0x45, 0x4b, 0x31, /* 3 */ 0x18, 0x14, 0x12, 0x7f, 0x10, /* 4 */
  0x27, 0x45, 0x45, 0x45, 0x39, /* 5 */ 0x3c, 0x4a, 0x49, 0x49, 0x30, /* 6 */ 0x01, 0x71, 0x09, 0x05, 0x03, /* 7 */
  0x36, 0x49, 0x49, 0x49, 0x36, /* 8 */ 0x06, 0x49, 0x49, 0x29, 0x1e, /* 9 */ 0x00, 0x36, 0x36, 0x00, 0x00, /* : */
  0x00, 0x56, 0x36, 0x00, 0x00, /* ; */ 0x08, 0x14, 0x22, 0x41, 0x00, /* < */ 0x14, 0x14, 0x14, 0x14, 0x14, /* = */
  0x00, 0x41, 0x22, 0x14, 0x08, /* > */ 0x02, 0x01, 0x51, 0x09, 0x06, /* ? */ 0x32, 0x49, 0x79, 0x41, 0x3e, /* @ */
  0x7e, 0x11, 0x11, 0x11, 0x7e, /* A */ 0x7f, 0x49, 0x49, 0x49, 0x36, /* B */ 0x3e, 0x41, 0x41, 0x41, 0x22, /* C */
  0x7f, 0x41, 0x41, 0x22, 0x1c, /* D */ 0x7f, 0x49, 0x49, 0x49, 0x41, /* E */ 0x7f, 0x09, 0x09, 0x09, 0x01, /* F */
  0x3e, 0x41, 0x49, 0x49, 0x7a, /* G */ 0x7f, 0x08, 0x08, 0x08, 0x7f, /* H */ 0x00, 0x41, 0x7f, 0x41, 0x00, /* I */
  0x20, 0x40, 0x41, 0x3f, 0x01, /* J */ 0x7f, 0x08, 0x14, 0x22, 0x41, /* K */ 0x7f, 0x40, 0x40, 0x40, 0x40, /* L */
  0x7f, 0x02, 0x0c, 0x02, 0x7f, /* M */ 0x7f, 0x04, 0x08, 0x10, 0x7f, /* N */ 0x3e, 0x41, 0x41, 0x41, 0x3e, /* O */
  0x7f, 0x09, 0x09, 0x09, 0x06, /* P */ 0x3e, 0x41, 0x51, 0x21, 0x5e, /* Q */ 0x7f, 0x09, 0x19, 0x29, 0x46, /* R */
  0x46, 0x49, 0x49, 0x49, 0x31, /* S */ 0x01, 0x01, 0x7f, 0x01, 0x01, /* T */ 0x3f, 0x40, 0x40, 0x40, 0x3f, /* U */
  0x1f, 0x20, 0x40, 0x20, 0x1f, /* V */ 0x3f, 0x40, 0x38, 0x40, 0x3f, /* W */ 0x63, 0x14, 0x08, 0x14, 0x63, /* X */
  0x07, 0x08, 0x70, 0x08, 0x07, /* Y */ 0x61, 0x51, 0x49, 0x45, 0x43, /* Z */ 0x00, 0x7f, 0x41, 0x41, 0x00, /* [ */
  0x02, 0x04, 0x08, 0x10, 0x20, /* \ */ 0x00, 0x41, 0x41, 0x7f, 0x00, /* ] */ 0x04, 0x02, 0x01, 0x02, 0x04, /* ^ */
  0x40, 0x40, 0x40, 0x40, 0x40, /* _ */ 0x00, 0x01, 0x02, 0x04, 0x00, /* ` */ 0x20, 0x54, 0x54, 0x54, 0x78, /* a */
  0x7f, 0x48, 0x44, 0x44, 0x38, /* b */ 0x38, 0x44, 0x44, 0x44, 0x20, /* c */ 0x38, 0x44, 0x44, 0x48, 0x7f, /* d */
  0x38, 0x54, 0x54, 0x54, 0x18, /* e */ 0x08, 0x7e, 0x09, 0x01, 0x02, /* f */ 0x0c, 0x52, 0x52, 0x52, 0x3e, /* g */
  0x7f, 0x08, 0x04, 0x04, 0x78, /* h */ 0x00, 0x44, 0x7d, 0x40, 0x00, /* i */ 0x20, 0x40, 0x44, 0x3d, 0x00, /* j */
  0x7f, 0x10, 0x28, 0x44, 0x00, /* k */ 0x00, 0x41, 0x7f, 0x40, 0x00, /* l */ 0x7c, 0x04, 0x18, 0x04, 0x78, /* m */
  0x7c, 0x08, 0x04, 0x04, 0x78, /* n */ 0x38, 0x44, 0x44, 0x44, 0x38, /* o */ 0x7c, 0x14, 0x14, 0x14, 0x08, /* p */
  0x08, 0x14, 0x14, 0x18, 0x7c, /* q */ 0x7c, 0x08, 0x04, 0x04, 0x08, /* r */ 0x48, 0x54, 0x54, 0x54, 0x20, /* s */
  0x04, 0x3f, 0x44, 0x40, 0x20, /* t */ 0x3c, 0x40, 0x40, 0x20, 0x7c, /* u */ 0x1c, 0x20, 0x40, 0x20, 0x1c, /* v */
  0x3c, 0x40, 0x30, 0x40, 0x3c, /* w */ 0x44, 0x28, 0x10, 0x28, 0x44, /* x */ 0x0c, 0x50, 0x50, 0x50, 0x3c, /* y */
  0x44, 0x64, 0x54, 0x4c, 0x44, /* z */ 0x00, 0x08, 0x36, 0x41, 0x00, /* { */ 0x00, 0x00, 0x7f, 0x00, 0x00, /* | */
  0x00, 0x41, 0x36, 0x08, 0x00, /* } */ 0x08, 0x04, 0x08, 0x10, 0x08, /* ~ */
];

const FIRST_CHAR = 0x20;
const LAST_CHAR = 0x7e;

/** True when every character of `text` has a glyph (printable ASCII, space included). */
export function isDrawable(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < FIRST_CHAR || c > LAST_CHAR) return false;
  }
  return true;
}

/** Width in pixels of `text` drawn at `scale` (no trailing spacing column; 0 for the empty string). */
export function textWidth(text: string, scale = 1): number {
  return text.length === 0 ? 0 : (text.length * GLYPH_ADVANCE - 1) * scale;
}

/** Height in pixels of a line of text drawn at `scale`. */
export function textHeight(scale = 1): number {
  return GLYPH_HEIGHT * scale;
}

function checkScale(scale: number, what: string): void {
  if (!Number.isInteger(scale) || scale < 1) throw new RangeError(`${what}: scale must be a positive integer, got ${scale}`);
}

function checkValue(value: number, what: string): void {
  if (!Number.isInteger(value) || value < 0 || value > 255) {
    throw new RangeError(`${what}: grey value must be an integer in [0, 255], got ${value}`);
  }
}

export interface TextOptions {
  /** Integer magnification of the 5×7 glyphs (default 1). */
  scale?: number;
  /** Grey value of the ink (default 0, black). */
  value?: number;
}

/** The largest canvas: 256 megapixels (a 16k × 16k picture). */
export const MAX_CANVAS_PIXELS = 1 << 28;

/**
 * An 8-bit grey raster, row-major (`pixels[y * width + x]`). Drawing outside the canvas is clipped, so labels
 * and tiles may overhang an edge without error.
 */
export class GrayCanvas {
  readonly width: number;
  readonly height: number;
  readonly pixels: Uint8Array;

  constructor(width: number, height: number, background = 255) {
    for (const [k, v] of [['width', width], ['height', height]] as const) {
      if (!Number.isInteger(v) || v < 1) throw new RangeError(`GrayCanvas: ${k} must be a positive integer, got ${v}`);
    }
    if (width * height > MAX_CANVAS_PIXELS) throw new RangeError(`a picture of ${width}×${height} pixels is more than the ${MAX_CANVAS_PIXELS} a canvas may have; draw fewer or smaller images`);
    checkValue(background, 'GrayCanvas');
    this.width = width;
    this.height = height;
    this.pixels = new Uint8Array(width * height).fill(background);
  }

  /** Grey value at (x, y); throws outside the canvas. */
  get(x: number, y: number): number {
    if (!Number.isInteger(x) || !Number.isInteger(y) || x < 0 || y < 0 || x >= this.width || y >= this.height) {
      throw new RangeError(`GrayCanvas.get: (${x}, ${y}) is outside the ${this.width}x${this.height} canvas`);
    }
    return this.pixels[y * this.width + x]!;
  }

  /** Fills the rectangle with top-left corner (x, y) and size w×h with `value` (clipped to the canvas). */
  fillRect(x: number, y: number, w: number, h: number, value: number): void {
    checkValue(value, 'GrayCanvas.fillRect');
    const x0 = Math.max(0, Math.floor(x));
    const y0 = Math.max(0, Math.floor(y));
    const x1 = Math.min(this.width, Math.floor(x + w));
    const y1 = Math.min(this.height, Math.floor(y + h));
    for (let yy = y0; yy < y1; yy++) this.pixels.fill(value, yy * this.width + x0, yy * this.width + Math.max(x0, x1));
  }

  /**
   * Copies a w×h grey image (row-major) with its top-left corner at (x, y), each source pixel becoming a
   * scale×scale block (nearest-neighbour upscaling, so small images such as 28×28 digits stay crisp).
   */
  paste(image: Uint8Array, w: number, h: number, x: number, y: number, scale = 1): void {
    checkGrayImage(image, w, h);
    checkScale(scale, 'GrayCanvas.paste');
    if (!Number.isInteger(x) || !Number.isInteger(y)) throw new RangeError(`GrayCanvas.paste: position (${x}, ${y}) must be integers`);
    const W = this.width;
    // Clip to the canvas in destination pixels; sx/sy map each destination pixel back to its source pixel.
    const dx0 = Math.max(0, x);
    const dy0 = Math.max(0, y);
    const dx1 = Math.min(W, x + w * scale);
    const dy1 = Math.min(this.height, y + h * scale);
    for (let dy = dy0; dy < dy1; dy++) {
      const srcRow = Math.floor((dy - y) / scale) * w;
      const dstRow = dy * W;
      if (scale === 1) {
        this.pixels.set(image.subarray(srcRow + (dx0 - x), srcRow + (dx1 - x)), dstRow + dx0);
      } else {
        for (let dx = dx0; dx < dx1; dx++) this.pixels[dstRow + dx] = image[srcRow + Math.floor((dx - x) / scale)]!;
      }
    }
  }

  /**
   * Draws one line of printable-ASCII text with its top-left corner at (x, y). Only ink pixels are written (the
   * background shows through), all within the box textWidth(text, scale) × textHeight(scale). Returns the width.
   * @throws RangeError for a character without a glyph (non-ASCII such as `x̂`: write `x0`, `xhat0`).
   */
  drawText(text: string, x: number, y: number, opts: TextOptions = {}): number {
    const scale = opts.scale ?? 1;
    const value = opts.value ?? 0;
    checkScale(scale, 'GrayCanvas.drawText');
    checkValue(value, 'GrayCanvas.drawText');
    if (!Number.isInteger(x) || !Number.isInteger(y)) throw new RangeError(`GrayCanvas.drawText: position (${x}, ${y}) must be integers`);
    for (let i = 0; i < text.length; i++) {
      const code = text.charCodeAt(i);
      if (code < FIRST_CHAR || code > LAST_CHAR) {
        throw new RangeError(`GrayCanvas.drawText: no glyph for ${JSON.stringify(text[i])} in ${JSON.stringify(text)} (printable ASCII only)`);
      }
      const base = (code - FIRST_CHAR) * GLYPH_WIDTH;
      const gx = x + i * GLYPH_ADVANCE * scale;
      for (let col = 0; col < GLYPH_WIDTH; col++) {
        const bits = FONT[base + col]!;
        for (let row = 0; row < GLYPH_HEIGHT; row++) {
          if ((bits >> row) & 1) this.fillRect(gx + col * scale, y + row * scale, scale, scale, value);
        }
      }
    }
    return textWidth(text, scale);
  }

  /** The canvas as an 8-bit grey PNG. */
  toPng(): Uint8Array {
    return encodeGrayPng(this.pixels, this.width, this.height);
  }

  /** Writes the canvas to `path` as an 8-bit grey PNG, atomically. */
  writePng(path: string): void {
    writeGrayPng(path, this.pixels, this.width, this.height);
  }
}
