// Hashes of what a result depends on: JSON values independent of key order, and files or folders by content.
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** JSON with object keys sorted, so equal values always serialise alike. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : v,
  );
}

export function sha256(...parts: (string | Uint8Array)[]): string {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest('hex');
}

/** The content hash of a file, or of a folder's files (names and bytes, recursively, in name order). */
export function contentHash(path: string): string {
  const h = createHash('sha256');
  const add = (p: string, rel: string) => {
    if (statSync(p).isDirectory()) {
      for (const name of readdirSync(p).sort()) if (!name.startsWith('.tmp-')) add(join(p, name), `${rel}/${name}`);
    } else {
      h.update(`${rel}\0`);
      h.update(readFileSync(p));
      h.update('\0');
    }
  };
  add(path, '');
  return h.digest('hex');
}
