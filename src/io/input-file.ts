// Reading an input file whole, safely: it must be a regular file (not a FIFO, a device such as /dev/zero, or a
// folder, any of which could be read forever) no larger than a stated limit, checked before anything is read.
import { readFileSync, statSync, type Stats } from 'node:fs';

/** The largest input file read whole: far above MNIST's 47 MB, far below what would exhaust memory. */
export const MAX_INPUT_BYTES = 1 << 30;

function kindOf(s: Stats): string {
  return s.isDirectory() ? 'folder' : s.isFIFO() ? 'FIFO' : s.isCharacterDevice() || s.isBlockDevice() ? 'device' : s.isSocket() ? 'socket' : 'special file';
}

/**
 * The bytes of `path`. Errors (made by `fail`, which receives a sentence without the path) say what is wrong:
 * missing, not a regular file, too large, unreadable.
 */
export function readInputFile(path: string, fail: (message: string) => Error, maxBytes = MAX_INPUT_BYTES): Buffer {
  let stats: Stats;
  try {
    stats = statSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw fail(code === 'ENOENT' ? 'file not found' : `cannot read file (${code ?? (err as Error).message})`);
  }
  if (!stats.isFile()) throw fail(`not a regular file (a ${kindOf(stats)})`);
  if (stats.size > maxBytes) throw fail(`${stats.size} bytes, more than the ${maxBytes} an input may have`);
  try {
    return readFileSync(path);
  } catch (err) {
    throw fail(`cannot read file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}
