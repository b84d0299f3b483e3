// Cached stages of a protocol. A stage's key is everything its output depends on: what the stage is, the version
// of the code that makes it, its configuration and the content hashes of its inputs. The record of a finished
// stage (<dir>/<id>.json) holds the key, the result and the content hashes of the files it wrote; it is reused
// only while all three still agree, and otherwise the stage runs again with the reason given.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../io/atomic.ts';
import { canonicalJson, contentHash, sha256 } from '../io/content-hash.ts';

/**
 * Bump a stage's version when a change to its code changes what it produces: records made by an older
 * version are then out of date.
 */
export const STAGE_VERSIONS = {
  generate: 1,
  cas: 1,
  speed: 1,
  toy1d: 1,
  fidelity: 1,
} as const;

export type StageKind = keyof typeof STAGE_VERSIONS;

export interface StageKey {
  stage: StageKind;
  version: number;
  /** The stage's settings (JSON values). */
  config: unknown;
  /** Content hashes of what it reads, by name. */
  inputs: Record<string, string>;
}

interface StageRecord<T> {
  key: StageKey;
  hash: string;
  result: T;
  /** How long the stage took when it ran. */
  seconds?: number;
  /** Content hashes of the files and folders the stage wrote, by path. */
  outputs: Record<string, string>;
}

function describeChange(old: StageKey, key: StageKey): string {
  if (old.stage !== key.stage) return `it was a ${old.stage} stage`;
  if (old.version !== key.version) return `its code changed (version ${old.version} → ${key.version})`;
  const a = old.config as Record<string, unknown>;
  const b = key.config as Record<string, unknown>;
  const fields = [...new Set([...Object.keys(a ?? {}), ...Object.keys(b ?? {})])].filter((k) => canonicalJson(a?.[k]) !== canonicalJson(b?.[k]));
  if (fields.length > 0) return `its settings changed (${fields.map((f) => `${f}: ${canonicalJson(a?.[f])} → ${canonicalJson(b?.[f])}`).join(', ')})`;
  const inputs = [...new Set([...Object.keys(old.inputs), ...Object.keys(key.inputs)])].filter((k) => old.inputs[k] !== key.inputs[k]);
  return `its inputs changed (${inputs.join(', ')})`;
}

export type StageStatus = { cached: true } | { cached: false; reason: string };

export class StageCache {
  constructor(readonly dir: string) {}

  #path(id: string): string {
    return join(this.dir, `${id}.json`);
  }

  /** The cached result of stage `id` when its record matches `key` and its outputs are unchanged; else why not. */
  lookup<T>(id: string, key: StageKey): { result: T; seconds?: number } | { reason: string } {
    const path = this.#path(id);
    if (!existsSync(path)) return { reason: 'not run before' };
    let record: StageRecord<T>;
    try {
      record = JSON.parse(readFileSync(path, 'utf8')) as StageRecord<T>;
    } catch {
      return { reason: 'its record is unreadable' };
    }
    if (record.key === undefined || record.hash === undefined) return { reason: 'its record has no key (made by an older version)' };
    if (record.hash !== sha256(canonicalJson(key))) return { reason: describeChange(record.key, key) };
    for (const [out, hash] of Object.entries(record.outputs ?? {})) {
      if (!existsSync(out)) return { reason: `its output ${out} is missing` };
      if (contentHash(out) !== hash) return { reason: `its output ${out} was changed` };
    }
    return record.seconds === undefined ? { result: record.result } : { result: record.result, seconds: record.seconds };
  }

  /** The content hash recorded for output `path` of stage `id` (after it ran or was found cached). */
  outputHash(id: string, path: string): string {
    const record = JSON.parse(readFileSync(this.#path(id), 'utf8')) as StageRecord<unknown>;
    const hash = record.outputs?.[path];
    if (hash === undefined) throw new Error(`stage ${id} recorded no output ${path}`);
    return hash;
  }

  /** Records a finished stage: its key, result, the content hashes of `outputs` and how long it took. */
  store<T>(id: string, key: StageKey, result: T, outputs: readonly string[] = [], seconds?: number): void {
    const record: StageRecord<T> = {
      key,
      hash: sha256(canonicalJson(key)),
      result,
      ...(seconds === undefined ? {} : { seconds }),
      outputs: Object.fromEntries(outputs.map((o) => [o, contentHash(o)])),
    };
    writeFileAtomic(this.#path(id), `${JSON.stringify(record, null, 2)}\n`);
  }
}
