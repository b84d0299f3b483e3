import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';

/**
 * Creates folder `path` and its missing ancestors, one level at a time (Node's recursive mkdir never returns on
 * some pseudo filesystems, such as /proc). Errors name `path`: "cannot create /proc/run: no such file or
 * directory (ENOENT)".
 */
export function makeDirectory(path: string): string[] {
  const missing: string[] = [];
  for (let p = resolve(path); !existsSync(p); p = dirname(p)) {
    missing.push(p);
    if (dirname(p) === p) break;
  }
  const created: string[] = [];
  try {
    for (const p of missing.reverse()) {
      mkdirSync(p);
      created.push(p);
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return [...created, ...makeDirectory(path)];
    throw explain(err, path, 'create');
  }
  return created;
}

/**
 * Writes `data` to `path` so that `path` either keeps its old content or holds the complete new content:
 * the bytes go to a temporary file beside it (same filesystem), are flushed, then renamed over `path`.
 * On any failure the temporary file is removed and the error is rethrown (a filesystem error with its message
 * rewritten to name `path`: "cannot write <path>: no space left on device (ENOSPC)").
 */
export function writeFileAtomic(path: string, data: Uint8Array | string | readonly Uint8Array[]): void {
  const dir = dirname(path);
  makeDirectory(dir);
  removeStaleTemporaries(path);
  const tmp = join(dir, `.tmp-${basename(path)}-${process.pid}-${Date.now().toString(36)}`);
  const chunks = typeof data === 'string' ? [Buffer.from(data)] : data instanceof Uint8Array ? [data] : data;
  let fd = -1;
  try {
    fd = openSync(tmp, 'w');
    for (const chunk of chunks) {
      let off = 0;
      while (off < chunk.byteLength) off += writeSync(fd, chunk, off, chunk.byteLength - off);
    }
    fsyncSync(fd);
    closeSync(fd);
    fd = -1;
    renameSync(tmp, path);
  } catch (err) {
    if (fd >= 0) closeSync(fd);
    rmSync(tmp, { force: true });
    throw explain(err, path);
  }
}

/**
 * Removes what killed writers of `path` left beside it: `.tmp-<name>-<pid>…` files or folders whose process is
 * gone (a live writer's are kept).
 */
export function removeStaleTemporaries(path: string): void {
  const dir = dirname(path);
  const prefix = `.tmp-${basename(path)}-`;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const pid = Number(/^(\d+)/.exec(name.slice(prefix.length))?.[1]);
    if (Number.isInteger(pid) && pid !== process.pid && !processAlive(pid)) rmSync(join(dir, name), { recursive: true, force: true });
  }
}

/** Whether process `pid` exists (on this machine). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** An error of writing into temporary `tmp` (a folder renamed to `path` at the end), told in terms of `path`. */
export function nameTheTarget(err: unknown, tmp: string, path: string): unknown {
  if (err instanceof Error) err.message = err.message.split(tmp).join(path);
  return err;
}

// Node's fs messages name the temporary file ("ENOSPC: no space left on device, write"); say which file could
// not be written and why, in one line, keeping the error's class and code.
function explain(err: unknown, path: string, verb = 'write'): unknown {
  const e = err as NodeJS.ErrnoException;
  if (!(err instanceof Error) || typeof e.code !== 'string') return err;
  const reason = /^[A-Z0-9_]+: ([^,]+)/.exec(e.message)?.[1] ?? e.message;
  e.message = `cannot ${verb} ${path}: ${reason} (${e.code})`;
  return e;
}
