// One writer per output folder (a run, a generated set, a report, a protocol's work folder). The lock is a file
// beside the folder, `.<name>.lock`, created exclusively and holding the writer's process id and host; a lock
// whose process is gone (killed, crashed) is taken over, so a crash never leaves a folder stuck.
import { closeSync, openSync, readFileSync, rmSync, rmdirSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { makeDirectory, processAlive } from './atomic.ts';

export class LockError extends Error {
  override name = 'LockError';
}

interface Holder {
  pid: number;
  host: string;
  since: string;
}

/** The lock file of output folder `dir`. */
export function lockPath(dir: string): string {
  const full = resolve(dir);
  return join(dirname(full), `.${basename(full)}.lock`);
}

function readHolder(path: string): Holder | undefined {
  try {
    const h = JSON.parse(readFileSync(path, 'utf8')) as Holder;
    return typeof h.pid === 'number' ? h : undefined;
  } catch {
    return undefined;
  }
}


// A lock left by a process of this machine that is gone.
const stale = (h: Holder) => h.host === hostname() && !processAlive(h.pid);

// Releases of the locks this process holds, by lock file; run at exit too.
const held = new Map<string, () => void>();
let exitHook = false;

function busy(dir: string, what: string, path: string, holder: Holder | undefined): LockError {
  const who = holder === undefined ? 'another process' : `process ${holder.pid}${holder.host === hostname() ? '' : ` on ${holder.host}`} (since ${holder.since})`;
  return new LockError(`${dir}: this ${what} is being written by ${who}; wait for it to finish or stop it (a lock whose process is gone is taken over: ${path})`);
}

/** Throws the LockError lockFolder would, without taking the lock or writing anything. */
export function checkUnlocked(dir: string, what = 'folder'): void {
  const path = lockPath(dir);
  const holder = readHolder(path);
  if (holder !== undefined && !stale(holder) && !held.has(path)) throw busy(dir, what, path, holder);
}

/**
 * Takes the lock of output folder `dir` for this process, or throws a LockError naming the process that holds
 * it. Returns the release function (also run at exit). Taking a lock this process holds is an error too.
 */
export function lockFolder(dir: string, what = 'folder'): () => void {
  const path = lockPath(dir);
  // Folders made only to hold the lock go again with it when the writer leaves nothing in them.
  const created = makeDirectory(dirname(path));
  const removeCreated = () => {
    for (const d of created.reverse()) {
      try {
        rmdirSync(d);
      } catch {
        break;
      }
    }
  };
  for (let attempt = 0; ; attempt++) {
    let fd = -1;
    try {
      fd = openSync(path, 'wx');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EEXIST') {
        removeCreated();
        const reason = /^[A-Z0-9_]+: ([^,]+)/.exec((err as Error).message)?.[1] ?? (err as Error).message;
        throw Object.assign(new Error(`cannot write ${dir}: ${reason} (${code})`), { code });
      }
      const holder = readHolder(path);
      // A holder on this machine whose process is gone left a stale lock; one torn while being written too.
      if (attempt < 3 && (holder === undefined || stale(holder))) {
        rmSync(path, { force: true });
        continue;
      }
      removeCreated();
      throw busy(dir, what, path, holder);
    }
    try {
      writeSync(fd, JSON.stringify({ pid: process.pid, host: hostname(), since: new Date().toISOString() } satisfies Holder));
    } finally {
      closeSync(fd);
    }
    break;
  }
  const release = () => {
    if (!held.delete(path)) return;
    rmSync(path, { force: true });
    removeCreated();
  };
  held.set(path, release);
  if (!exitHook) {
    exitHook = true;
    process.on('exit', () => {
      for (const r of [...held.values()]) r();
    });
  }
  return release;
}

/** Runs `body` holding the lock of `dir`. */
export function withFolderLock<T>(dir: string, what: string, body: () => T): T {
  const release = lockFolder(dir, what);
  try {
    return body();
  } finally {
    release();
  }
}
