import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const torchIndex = fileURLToPath(new URL('../src/torch/index.ts', import.meta.url));

// A step's worth of activations: 40 tensors of 4 MiB made (touching every page), then freed together, 12 times.
// Reports the thresholds applied and the minor page faults per page written after two warm-up rounds.
const probe = `
import * as torch from ${JSON.stringify(torchIndex)};
const pages = (40 * 4 * 2 ** 20) / 4096;
let faults = 0;
for (let round = 0; round < 12; round++) {
  const before = process.resourceUsage().minorPageFault;
  const ts = Array.from({ length: 40 }, () => torch.ones([2 ** 20]));
  torch.dispose(ts);
  if (round >= 2) faults += process.resourceUsage().minorPageFault - before;
}
console.log(JSON.stringify({ thresholds: torch.mallocThresholds ?? null, faultsPerPage: faults / (10 * pages) }));
`;

function run(env: Record<string, string>): { thresholds: unknown; faultsPerPage: number } {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('MALLOC_') && k !== 'GLIBC_TUNABLES'));
  const child = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', probe], { encoding: 'utf8', env: { ...clean, TORCH_NUM_THREADS: '1', ...env } });
  assert.equal(child.status, 0, child.stderr);
  const result = JSON.parse(child.stdout.trim().split('\n').pop()!) as { thresholds: unknown; faultsPerPage: number };
  assert.ok(Number.isFinite(result.faultsPerPage), child.stdout);
  return result;
}

const glibc = (process.report.getReport() as { header: { glibcVersionRuntime?: string } }).header.glibcVersionRuntime !== undefined;

test('freed tensor memory is kept for the next step instead of being faulted in again; MALLOC_* settings of the user win', { skip: glibc ? false : 'not glibc' }, () => {
  const tuned = run({});
  assert.deepEqual(tuned.thresholds, { mmapBytes: 32 * 2 ** 20, trimBytes: 2 ** 30 });
  assert.ok(tuned.faultsPerPage < 0.05, `kept: ${tuned.faultsPerPage} faults per page written`);
  // glibc's own behaviour with a setting of the user's: 4 MiB blocks mapped afresh every time.
  const user = run({ MALLOC_MMAP_THRESHOLD_: String(128 * 1024) });
  assert.equal(user.thresholds, null);
  assert.ok(user.faultsPerPage > 0.5, `the user's setting: ${user.faultsPerPage} faults per page written`);
});
