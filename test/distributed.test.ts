// Data-parallel training on c10d, as processes: 2 ranks with half the batch each train what one process trains
// with the whole batch (synchronised batch norm), a rank that is killed or hangs stops the run within the
// timeout with one line naming it, the run continues with --resume exactly where an uninterrupted one goes, and
// bad settings (process count, a port in use, different world sizes, an unreachable store) are refused clearly.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readSafetensors, typedView } from '../src/io/safetensors.ts';

const repo = fileURLToPath(new URL('..', import.meta.url));
const root = mkdtempSync(join(tmpdir(), 'ssddpm-distributed-test-'));
after(() => rmSync(root, { recursive: true, force: true }));

const ENV: NodeJS.ProcessEnv = { ...process.env, TORCH_NUM_THREADS: '1', SSDDPM_DEBUG: '', GLOG_minloglevel: '3' };
for (const v of ['WORLD_SIZE', 'RANK', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT']) delete ENV[v];
// 100 images, global batch 20: 5 steps per epoch (10 images per rank with 2 processes), with a moving average.
const BASE = ['train', '--model', 'small', '--per-class', '10', '--batch-size', '20', '--seed', '3', '--checkpoint-every', '2', '--ema', '0.9'];
const EPOCHS = 6;
/** After 5 steps (one epoch) the weights (and their average) of 2 ranks × 10 and of 1 process × 20 agree within this (Adam, lr 1e-3). */
const WEIGHT_TOLERANCE = 1e-4;

interface Result {
  status: number | null;
  stdout: string;
  stderr: string;
  seconds: number;
}

function ssddpm(args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<Result> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['bin/ssddpm.js', ...args], { cwd: repo, encoding: 'utf8', timeout: 120_000, env: { ...ENV, ...env } }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') reject(err);
      else resolve({ status: err ? (err.code as number) : 0, stdout, stderr, seconds: (performance.now() - started) / 1000 });
    });
  });
}

/** The lines a command printed on stderr, without progress bars. */
const errorLines = (r: Result) => r.stderr.split(/[\r\n]/).filter((l) => l.startsWith('ssddpm:'));

function modelTensors(path: string): Map<string, Float32Array> {
  const { tensors } = readSafetensors(path);
  return new Map(Object.entries(tensors).filter(([k, r]) => !k.startsWith('optimizer.') && r.dtype === 'F32').map(([k, r]) => [k, typedView(r) as Float32Array]));
}

/** The largest absolute difference between the model tensors (and moving averages) of two checkpoints. */
function maxDifference(a: string, b: string): number {
  const x = modelTensors(a);
  const y = modelTensors(b);
  assert.deepEqual([...x.keys()].sort(), [...y.keys()].sort());
  let worst = 0;
  for (const [k, u] of x) u.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - y.get(k)![i]!))));
  return worst;
}

function stepLosses(dir: string): number[] {
  return readFileSync(join(dir, 'train.jsonl'), 'utf8').split('\n').filter((l) => l.includes('"step"')).map((l) => (JSON.parse(l) as { loss: number }).loss);
}

function childrenOf(pid: number): number[] {
  return readdirSync('/proc').filter((d) => /^\d+$/.test(d)).filter((d) => {
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid;
    } catch {
      return false;
    }
  }).map(Number);
}

function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat[stat.lastIndexOf(')') + 2] !== 'Z';
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Starts a 2-process training and, once it has logged `atStep` steps, sends `signal` to the worker (rank 1);
 * resolves with the launcher's result and the worker's pid.
 */
async function interrupted(dir: string, signal: NodeJS.Signals, atStep: number, extra: string[]): Promise<Result & { worker: number }> {
  const child = spawn(process.execPath, ['bin/ssddpm.js', ...BASE, '--epochs', String(EPOCHS), '--out', dir, '--nproc', '2', ...extra], { cwd: repo, env: ENV });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d));
  child.stderr.on('data', (d: Buffer) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  for (;;) {
    const log = join(dir, 'train.jsonl');
    if (existsSync(log) && stepLosses(dir).length >= atStep) break;
    if (child.exitCode !== null) assert.fail(`the training ended before step ${atStep}: ${stderr}`);
    await sleep(10);
  }
  const worker = childrenOf(child.pid!)[0]!;
  assert.ok(worker > 0, 'the launcher has a worker process');
  process.kill(worker, signal);
  const signalled = performance.now();
  const status = await exited;
  return { status, stdout, stderr, seconds: (performance.now() - signalled) / 1000, worker };
}

const single = join(root, 'single');
const parallel = join(root, 'parallel');
before(async () => {
  // The references: one process with the whole batch (one epoch), and 2 ranks uninterrupted.
  const [a, b] = [await ssddpm([...BASE, '--epochs', '1', '--out', single]), await ssddpm([...BASE, '--epochs', String(EPOCHS), '--out', parallel, '--nproc', '2', '--sync-bn'])];
  assert.equal(a.status, 0, a.stderr);
  assert.equal(b.status, 0, b.stderr);
});

test('2 ranks × 10 images with synchronised batch norm train what 1 process × 20 trains; per-rank batch norm does not', async (t) => {
  const epoch1 = (dir: string) => join(dir, 'checkpoints', 'epoch-0001.safetensors');
  const synced = maxDifference(epoch1(single), epoch1(parallel));
  assert.ok(synced <= WEIGHT_TOLERANCE, `weights after 5 steps differ by ${synced} > ${WEIGHT_TOLERANCE}`);
  stepLosses(single).forEach((l, i) => assert.ok(Math.abs(l - stepLosses(parallel)[i]!) <= 1e-5 * l, `step ${i + 1}: loss ${stepLosses(parallel)[i]} vs ${l}`));

  const perRank = join(root, 'per-rank-bn');
  const r = await ssddpm([...BASE, '--epochs', '1', '--out', perRank, '--nproc', '2']);
  assert.equal(r.status, 0, r.stderr);
  const apart = maxDifference(epoch1(single), epoch1(perRank));
  assert.ok(apart > 10 * WEIGHT_TOLERANCE, `per-rank batch statistics should change the weights (differ by ${apart})`);
  t.diagnostic(`largest weight difference to 1 process after 5 steps: ${synced.toExponential(2)} synchronised, ${apart.toExponential(2)} per-rank batch norm`);
  // Rank 0 alone writes: one log line per step, checkpoints, nothing from rank 1.
  assert.equal(stepLosses(perRank).length, 5);
  assert.match(r.stdout, /5 steps/);
  // Any number of processes continues a run.
  const alone = await ssddpm(['train', '--out', perRank, '--resume', '--epochs', '2']);
  assert.equal(alone.status, 0, alone.stderr);
  assert.equal(stepLosses(perRank).length, 10);
});

test('a killed rank stops the run within the timeout, naming it; --resume ends where an uninterrupted run ends', async () => {
  const dir = join(root, 'killed');
  const r = await interrupted(dir, 'SIGKILL', 8, ['--sync-bn', '--timeout', '10']);
  assert.notEqual(r.status, 0);
  assert.ok(r.seconds < 10 + 20, `the launcher took ${r.seconds} s to stop`);
  const lines = errorLines(r);
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0]!, /rank 1 stopped responding.*--resume --nproc 2/);
  assert.equal(alive(r.worker), false);
  const steps = stepLosses(dir).length;
  assert.ok(steps >= 8 && steps < EPOCHS * 5, `killed after ${steps} steps`);

  // The run keeps its synchronised batch norm.
  const resumed = await ssddpm(['train', '--out', dir, '--resume', '--nproc', '2']);
  assert.equal(resumed.status, 0, resumed.stderr);
  const last = `epoch-${String(EPOCHS).padStart(4, '0')}.safetensors`;
  assert.equal(maxDifference(join(dir, 'checkpoints', last), join(parallel, 'checkpoints', last)), 0);
  assert.deepEqual(stepLosses(dir), stepLosses(parallel));
  assert.deepEqual(readdirSync(dir).filter((f) => f.startsWith('.tmp')), []);
});

test('a hung rank stops the run after the timeout, naming it, and is killed', async () => {
  const r = await interrupted(join(root, 'hung'), 'SIGSTOP', 3, ['--timeout', '5']);
  assert.notEqual(r.status, 0);
  assert.ok(r.seconds >= 4 && r.seconds < 5 + 20, `the launcher stopped after ${r.seconds} s`);
  assert.match(errorLines(r).join('\n'), /rank 1 stopped responding.*failed \(timeout 5 s\): .*timed out/i);
  for (let i = 0; i < 50 && alive(r.worker); i++) await sleep(100);
  assert.equal(alive(r.worker), false, 'the hung worker was killed');
});

function listening(): Promise<Server> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => resolve(s));
  });
}
const portOf = (s: Server) => (s.address() as { port: number }).port;

test('bad settings are refused with one clear line', async () => {
  const out = join(root, 'bad');
  const server = await listening();
  const taken = portOf(server);
  // A port nobody listens on: rank 1 gives up after its timeout.
  const free = await listening();
  const port = String(portOf(free));
  await new Promise((r) => free.close(r));
  const [zero, odd, busy, lonely] = await Promise.all([
    ssddpm([...BASE, '--out', out, '--nproc', '0']),
    ssddpm([...BASE, '--batch-size', '15', '--out', out, '--nproc', '2']),
    ssddpm([...BASE, '--out', out, '--nproc', '2'], { MASTER_PORT: String(taken) }),
    ssddpm([...BASE, '--out', out, '--timeout', '1'], { RANK: '1', WORLD_SIZE: '2', MASTER_ADDR: '127.0.0.1', MASTER_PORT: port }),
  ]);
  server.close();
  assert.equal(zero.status, 1);
  assert.match(zero.stderr, /--nproc.*expected a positive integer, got '0'/);
  assert.equal(odd.status, 1);
  assert.match(errorLines(odd).join('\n'), /batch size 15 is the global one and must be divisible by the 2 processes/);
  assert.equal(busy.status, 1);
  assert.deepEqual(errorLines(busy), [`ssddpm: MASTER_PORT ${taken} is in use on this machine (another run or program listens on it): choose another port`]);
  assert.equal(lonely.status, 1);
  assert.match(errorLines(lonely).join('\n'), new RegExp(`rank 1 cannot reach the store at 127\\.0\\.0\\.1:${port} .* within 1 s`));

  // Ranks started with different world sizes: each says so.
  const env = (rank: number, world: number) => ({ RANK: String(rank), WORLD_SIZE: String(world), MASTER_ADDR: '127.0.0.1', MASTER_PORT: port });
  const [r0, r1] = await Promise.all([ssddpm([...BASE, '--out', out, '--timeout', '20'], env(0, 2)), ssddpm([...BASE, '--out', out, '--timeout', '20'], env(1, 3))]);
  assert.equal(r0.status, 1);
  assert.equal(r1.status, 1);
  assert.match(errorLines(r0).join('\n'), /rank 1 was started with WORLD_SIZE=3 but rank 0 with 2/);
  assert.match(errorLines(r1).join('\n'), /WORLD_SIZE is 3 on rank 1 but 2 on rank 0/);
  assert.equal(existsSync(out), false, 'nothing was written');
});
