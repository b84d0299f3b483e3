import { accessSync, constants, existsSync, statSync } from 'node:fs';
import { dirname } from 'node:path';

// These checks run before any work and create nothing: a command that fails leaves the disk as it was.

/** The folder that will hold a new entry `dir/…`: its nearest existing ancestor must be a writable folder. */
function checkParent(dir: string): void {
  let base = dir;
  while (!existsSync(base) && dirname(base) !== base) base = dirname(base);
  if (!statSync(base).isDirectory()) throw new Error(`${base} is not a folder`);
  try {
    accessSync(base, constants.W_OK);
  } catch {
    throw new Error(`${base} is not writable`);
  }
}

/** Fails early, before any work, when `path` cannot be written as a file. */
export function checkOutputFile(path: string): void {
  if (existsSync(path) && statSync(path).isDirectory()) throw new Error(`${path} is a folder; give a file name`);
  checkParent(dirname(path));
}

/**
 * Fails early, before any work, when `path` cannot be used as an output folder: it exists and is not a
 * folder (or exists at all, with `fresh`), or it cannot be created or written.
 */
export function checkOutputFolder(path: string, opts: { fresh?: boolean } = {}): void {
  if (!existsSync(path)) return checkParent(dirname(path));
  if (!statSync(path).isDirectory()) throw new Error(`${path} exists and is not a folder`);
  if (opts.fresh) throw new Error(`${path} already exists; remove it or choose another --out`);
  checkParent(path);
}
