// The stage cache reuses a result only under the same key (stage, code version, settings, input hashes) and with
// its outputs unchanged, and says why it does not.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StageCache, type StageKey } from '../src/experiments/stage-cache.ts';
import { canonicalJson, contentHash } from '../src/io/content-hash.ts';

test('canonicalJson ignores key order; contentHash covers names and bytes of a folder', () => {
  assert.equal(canonicalJson({ b: 1, a: { d: [1, { y: 2, x: 1 }], c: null } }), '{"a":{"c":null,"d":[1,{"x":1,"y":2}]},"b":1}');
  const root = mkdtempSync(join(tmpdir(), 'ssddpm-hash-'));
  try {
    mkdirSync(join(root, 'set'));
    writeFileSync(join(root, 'set', 'a'), 'one');
    writeFileSync(join(root, 'set', 'b'), 'two');
    const h = contentHash(join(root, 'set'));
    writeFileSync(join(root, 'set', 'b'), 'twO');
    assert.notEqual(contentHash(join(root, 'set')), h, 'a changed byte');
    writeFileSync(join(root, 'set', 'b'), 'two');
    assert.equal(contentHash(join(root, 'set')), h);
    writeFileSync(join(root, 'set', '.tmp-b-123'), 'partial');
    assert.equal(contentHash(join(root, 'set')), h, 'temporaries of atomic writes are not content');
    writeFileSync(join(root, 'set', 'c'), '');
    assert.notEqual(contentHash(join(root, 'set')), h, 'a new empty file');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('lookup: the same key and outputs give the result; each change gives its reason', () => {
  const root = mkdtempSync(join(tmpdir(), 'ssddpm-cache-'));
  try {
    const cache = new StageCache(join(root, 'stages'));
    const out = join(root, 'out.txt');
    const key: StageKey = { stage: 'cas', version: 1, config: { epochs: 5, classifiers: 5 }, inputs: { set: 'aaa', test: 'bbb' } };
    assert.deepEqual(cache.lookup('cas-x', key), { reason: 'not run before' });
    writeFileSync(out, 'result file');
    cache.store('cas-x', key, { mean: 0.9 }, [out], 12.5);
    assert.deepEqual(cache.lookup('cas-x', key), { result: { mean: 0.9 }, seconds: 12.5 }, 'with the time it took');
    cache.store('cas-x', key, { mean: 0.9 }, [out]);
    assert.deepEqual(cache.lookup('cas-x', key), { result: { mean: 0.9 } });
    assert.deepEqual(cache.lookup('cas-x', { ...key, config: { classifiers: 5, epochs: 5 } }), { result: { mean: 0.9 } }, 'key order does not matter');
    assert.deepEqual(cache.lookup('cas-x', { ...key, version: 2 }), { reason: 'its code changed (version 1 → 2)' });
    assert.deepEqual(cache.lookup('cas-x', { ...key, config: { epochs: 6, classifiers: 5 } }), { reason: 'its settings changed (epochs: 5 → 6)' });
    assert.deepEqual(cache.lookup('cas-x', { ...key, inputs: { set: 'aaa', test: 'ccc' } }), { reason: 'its inputs changed (test)' });
    assert.deepEqual(cache.lookup('cas-x', { ...key, stage: 'speed' }), { reason: 'it was a cas stage' });
    writeFileSync(out, 'edited');
    assert.deepEqual(cache.lookup('cas-x', key), { reason: `its output ${out} was changed` });
    rmSync(out);
    assert.deepEqual(cache.lookup('cas-x', key), { reason: `its output ${out} is missing` });
    writeFileSync(join(root, 'stages', 'old.json'), JSON.stringify({ mean: 0.5 }));
    assert.deepEqual(cache.lookup('old', key), { reason: 'its record has no key (made by an older version)' });
    writeFileSync(join(root, 'stages', 'torn.json'), '{"key": ');
    assert.deepEqual(cache.lookup('torn', key), { reason: 'its record is unreadable' });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
