// 8-bit greyscale PNG encoding and decoding (fast-png, pure TypeScript): the format of the paper's figures.
import { decode, encode, hasPngSignature } from 'fast-png';
import { writeFileAtomic } from '../io/atomic.ts';

/** An 8-bit grey image, row-major: `pixels[y * width + x]`. */
export interface GrayImage {
  pixels: Uint8Array;
  width: number;
  height: number;
}

/** Throws a RangeError unless width and height are positive integers and `pixels` holds width×height bytes. */
export function checkGrayImage(pixels: Uint8Array, width: number, height: number): void {
  for (const [k, v] of [['width', width], ['height', height]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`image ${k} must be a positive integer, got ${v}`);
  }
  if (pixels.length !== width * height) {
    throw new RangeError(`image has ${pixels.length} pixels, expected ${width}x${height} = ${width * height}`);
  }
}

/** Encodes a row-major 8-bit grey image as a PNG (one channel, bit depth 8). */
export function encodeGrayPng(pixels: Uint8Array, width: number, height: number): Uint8Array {
  checkGrayImage(pixels, width, height);
  return encode({ width, height, data: pixels, channels: 1, depth: 8 });
}

/** Encodes a grey image as a PNG and writes it to `path` atomically (parent folders are created). */
export function writeGrayPng(path: string, pixels: Uint8Array, width: number, height: number): void {
  writeFileAtomic(path, encodeGrayPng(pixels, width, height));
}

/**
 * Decodes a PNG holding an 8-bit single-channel grey image (what `encodeGrayPng` writes).
 * @throws Error when the bytes are not a PNG, or the PNG is not 8-bit grey without palette or alpha.
 */
export function decodeGrayPng(bytes: Uint8Array): GrayImage {
  if (!hasPngSignature(bytes)) throw new Error('decodeGrayPng: not a PNG file (bad signature)');
  const png = decode(bytes);
  // An indexed-colour PNG also decodes to one channel; its values are palette indices, not grey levels.
  if (png.palette !== undefined) throw new Error('decodeGrayPng: expected an 8-bit grey PNG, got an indexed-colour (palette) PNG');
  if (png.channels !== 1 || png.depth !== 8) {
    throw new Error(
      `decodeGrayPng: expected an 8-bit single-channel grey PNG, got ${png.channels} channel(s) at bit depth ${png.depth}`,
    );
  }
  const data = png.data;
  // fast-png returns a Uint8Array at depth 8; convert should a future version hand back a clamped array.
  const pixels = data instanceof Uint8Array ? data : Uint8Array.from(data);
  return { pixels, width: png.width, height: png.height };
}
