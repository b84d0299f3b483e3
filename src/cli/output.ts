import { accessSync, constants, existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname } from 'node:path';

/** Fails early, before any work, when `path` cannot be written as a file. */
export function checkOutputFile(path: string): void {
  if (existsSync(path) && statSync(path).isDirectory()) throw new Error(`${path} is a folder; give a file name`);
  const dir = dirname(path);
  if (existsSync(dir) && !statSync(dir).isDirectory()) throw new Error(`${dir} is not a folder`);
  mkdirSync(dir, { recursive: true });
  try {
    accessSync(dir, constants.W_OK);
  } catch {
    throw new Error(`${dir} is not writable`);
  }
}
