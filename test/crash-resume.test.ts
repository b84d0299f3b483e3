// Crash safety and reproducibility of `ssddpm train` as a process: a training SIGKILLed at a random moment
// (after its first checkpoint, before its end) and resumed ends bit for bit where an uninterrupted run ends,
// with one log line per step and no temporary file left; two runs with the same seed, and two generated
// sets with the same seed, are byte-identical.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readSafetensors } from '../src/io/safetensors.ts';

const repo = fileURLToPath(new URL('..', import.meta.url));
const root = mkdtempSync(join(tmpdir(), 'ssddpm-crash-test-'));
after(() => rmSync(root, { recursive: true, force: true }));

const ENV = { ...process.env, TORCH_NUM_THREADS: '1', SSDDPM_DEBUG: '' };
// 40 images, batch 8: 5 steps per epoch, 15 in all; a rolling checkpoint every 2 steps plus one per epoch.
const TRAIN = ['train', '--model', 'small', '--per-class', '4', '--batch-size', '8', '--epochs', '3', '--checkpoint-every', '2', '--seed', '5'];
const TOTAL_STEPS = 15;

interface Result {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function ssddpm(args: readonly string[]): Promise<Result> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['bin/ssddpm.js', ...args], { cwd: repo, encoding: 'utf8', timeout: 120_000, env: ENV }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number' && err.signal == null) reject(err);
      else resolve({ status: err ? (typeof err.code === 'number' ? err.code : null) : 0, signal: err?.signal ?? null, stdout, stderr });
    });
  });
}

/** mulberry32: the kill points are random but reproducible (SSDDPM_CRASH_SEED picks another draw). */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface LogLine {
  step?: number;
  epoch: number;
  loss?: number;
  meanLoss?: number | null;
}

function readLog(dir: string): LogLine[] {
  const text = existsSync(join(dir, 'train.jsonl')) ? readFileSync(join(dir, 'train.jsonl'), 'utf8') : '';
  return text.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as LogLine);
}

/** Step lines in a log being written (a torn last line is not counted). */
function stepLinesSoFar(dir: string): number {
  let n = 0;
  const path = join(dir, 'train.jsonl');
  if (!existsSync(path)) return 0;
  for (const line of readFileSync(path, 'utf8').split('\n')) if (line.startsWith('{"step":') && line.endsWith('}')) n++;
  return n;
}

/**
 * Starts a training, waits until its log holds ≥ `k` step lines (so at least one checkpoint is on disk when
 * k ≥ 3: step 3 starts after step 2's checkpoint is written), waits `extraMs` more, and SIGKILLs it.
 */
function trainAndKill(out: string, k: number, extraMs: number): Promise<{ signal: NodeJS.Signals | null; status: number | null; linesAtKill: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['bin/ssddpm.js', ...TRAIN, '--out', out], { cwd: repo, env: ENV, stdio: 'ignore' });
    let linesAtKill = -1;
    const poll = setInterval(() => {
      if (linesAtKill >= 0) return;
      const n = stepLinesSoFar(out);
      if (n >= k) {
        linesAtKill = n;
        clearInterval(poll);
        setTimeout(() => child.kill('SIGKILL'), extraMs);
      }
    }, 1);
    child.on('error', (err) => {
      clearInterval(poll);
      reject(err);
    });
    child.on('exit', (status, signal) => {
      clearInterval(poll);
      resolve({ status, signal, linesAtKill });
    });
  });
}

function assertNoTemporaries(dir: string): void {
  for (const folder of [dir, join(dir, 'checkpoints')]) {
    const odd = readdirSync(folder).filter((name) => name.startsWith('.') || /tmp|temp|partial/i.test(name));
    assert.deepEqual(odd, [], `temporary files left in ${folder}`);
  }
}

/** Every tensor (model and optimizer state) and the metadata of two checkpoints are byte-identical. */
function assertSameCheckpoint(a: string, b: string): void {
  const ca = readSafetensors(a);
  const cb = readSafetensors(b);
  assert.deepEqual(Object.keys(ca.tensors).sort(), Object.keys(cb.tensors).sort(), 'the same tensor names');
  assert.ok(Object.keys(ca.tensors).some((n) => n.startsWith('optimizer.state.')), 'the checkpoint holds the optimizer state');
  for (const [name, ra] of Object.entries(ca.tensors)) {
    const rb = cb.tensors[name]!;
    assert.equal(ra.dtype, rb.dtype, `${name}: dtype`);
    assert.deepEqual(ra.shape, rb.shape, `${name}: shape`);
    assert.ok(Buffer.from(ra.data).equals(Buffer.from(rb.data)), `tensor ${name} differs`);
  }
  assert.deepEqual(ca.metadata, cb.metadata, 'the same metadata (config, step, epoch, generator state)');
}

function stepLosses(log: readonly LogLine[]): [number, number][] {
  return log.filter((l) => l.step !== undefined).map((l) => [l.step!, l.loss!]);
}

// Two uninterrupted runs with the same seed, started together: the reference, and the reproducibility check.
const reference = join(root, 'whole-a');
const twin = join(root, 'whole-b');
const references = Promise.all([ssddpm([...TRAIN, '--out', reference]), ssddpm([...TRAIN, '--out', twin])]);

test('two trainings with the same seed: identical step losses and bit-identical final checkpoints', async () => {
  const [a, b] = await references;
  assert.equal(a.status, 0, a.stderr);
  assert.equal(b.status, 0, b.stderr);
  const la = readLog(reference);
  assert.deepEqual(la.filter((l) => l.step !== undefined).map((l) => l.step), Array.from({ length: TOTAL_STEPS }, (_, i) => i + 1));
  // Bit-identical losses: JSON numbers round-trip doubles exactly.
  assert.deepEqual(stepLosses(readLog(twin)), stepLosses(la));
  assertSameCheckpoint(join(reference, 'checkpoints', 'epoch-0003.safetensors'), join(twin, 'checkpoints', 'epoch-0003.safetensors'));
});

test('generate --count 20 --seed 3 twice: byte-identical IDX files', async () => {
  const [a] = await references;
  assert.equal(a.status, 0, a.stderr);
  const sets = [join(root, 'gen-a'), join(root, 'gen-b')];
  const results = await Promise.all(sets.map((out) => ssddpm(['generate', '--run', reference, '--count', '20', '--seed', '3', '--batch-size', '8', '--out', out])));
  for (const r of results) assert.equal(r.status, 0, r.stderr);
  for (const [file, size] of [['train-images-idx3-ubyte', 16 + 20 * 14 * 14], ['train-labels-idx1-ubyte', 8 + 20]] as const) {
    const [x, y] = sets.map((d) => readFileSync(join(d, file)));
    assert.equal(x!.length, size, `${file}: 20 images of 14×14`);
    assert.ok(x!.equals(y!), `${file} differs between two runs with the same seed`);
  }
});

const seed = Number(process.env.SSDDPM_CRASH_SEED ?? 20240607);
const random = rng(seed);
// Two kill points: after k ∈ [3, 12] step lines (≥ 1 checkpoint written, ≥ 3 steps still to go), plus 0-20 ms,
// so that the kill may land anywhere in a step, a checkpoint write or a log append.
const killPoints = [0, 1].map(() => ({ k: 3 + Math.floor(random() * 10), extraMs: Math.floor(random() * 21) }));

for (const [i, { k, extraMs }] of killPoints.entries()) {
  test(`SIGKILL after ${k} steps + ${extraMs} ms (seed ${seed}), then --resume: bit-identical to the uninterrupted run`, async () => {
    const out = join(root, `killed-${i}`);
    const killed = await trainAndKill(out, k, extraMs);
    assert.equal(killed.signal, 'SIGKILL', `the training was killed before its end (exit status ${killed.status})`);
    const done = stepLinesSoFar(out);
    assert.ok(done >= 3 && done < TOTAL_STEPS, `killed mid-run (${done} step lines)`);
    assert.ok(existsSync(join(out, 'checkpoints')), 'a checkpoint was written before the kill');

    const resumed = await ssddpm(['train', '--out', out, '--resume']);
    assert.equal(resumed.status, 0, resumed.stderr);
    assert.match(resumed.stdout, new RegExp(`${TOTAL_STEPS} steps, final loss`));

    await references;
    assertSameCheckpoint(join(reference, 'checkpoints', 'epoch-0003.safetensors'), join(out, 'checkpoints', 'epoch-0003.safetensors'));
    assertNoTemporaries(out);
    assert.deepEqual(readdirSync(join(out, 'checkpoints')).sort(), readdirSync(join(reference, 'checkpoints')).sort(), 'the same checkpoint files');

    const log = readLog(out);
    const ref = readLog(reference);
    assert.deepEqual(log.filter((l) => l.step !== undefined).map((l) => l.step), Array.from({ length: TOTAL_STEPS }, (_, s) => s + 1), 'one line per step, in order, none twice');
    assert.deepEqual(stepLosses(log), stepLosses(ref), 'the same loss at every step');
    const summaries = (l: readonly LogLine[]) => l.filter((e) => e.step === undefined).map((e) => [e.epoch, e.meanLoss]);
    assert.deepEqual(summaries(log), summaries(ref), 'one summary per epoch, with the mean loss of the whole epoch');
  });
}
