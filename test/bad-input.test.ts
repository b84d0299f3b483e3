// Every bad input is refused the way a trusted tool refuses it: exit status ≠ 0, one line on stderr that says
// what is wrong, no stack trace, and nothing written (the folders read the same before and after). Also a
// full disk (a 64 KiB tmpfs when root; a file-size limit everywhere) and a diverging training (NaN loss), and
// the library-level checks the command line cannot reach.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { accessSync, chmodSync, constants, copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { loadMnist } from '../src/data/datasets.ts';
import { DataError, parseIdx } from '../src/data/idx.ts';
import { writeImageSet, type ImageSet } from '../src/data/image-set.ts';
import { readOffRange, writeGeneratedSet } from '../src/data/generated-set.ts';
import { writeFileAtomic } from '../src/io/atomic.ts';
import { GrayCanvas } from '../src/images/canvas.ts';
import { NoiseSchedule } from '../src/diffusion/schedule.ts';
import { loadModel } from '../src/pipelines/pipeline.ts';
import { trainDiffusion } from '../src/training/train-diffusion.ts';
import { loadCheckpoint } from '../src/io/checkpoint.ts';
import { SafetensorsError, parseSafetensors, readSafetensors, writeSafetensors, type TensorRecord } from '../src/io/safetensors.ts';
import { PAPER_UNET, UNet } from '../src/models/unet.ts';
import { dispose } from '../src/torch/scope.ts';
import './helpers.ts';

const repo = fileURLToPath(new URL('..', import.meta.url));
const root = mkdtempSync(join(tmpdir(), 'ssddpm-bad-input-'));
after(() => {
  rmSync(root, { recursive: true, force: true });
});

interface Result {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI (optionally under `ulimit -f <kb>`), one libtorch thread unless `env` says otherwise. */
function ssddpm(args: readonly string[], opts: { fileLimitKb?: number; env?: Record<string, string> } = {}): Promise<Result> {
  const [file, argv] =
    opts.fileLimitKb === undefined
      ? [process.execPath, ['bin/ssddpm.js', ...args]]
      : ['bash', ['-c', `ulimit -f ${opts.fileLimitKb}; exec "$0" bin/ssddpm.js "$@"`, process.execPath, ...args]];
  return new Promise((resolve, reject) => {
    execFile(file, argv, { cwd: repo, encoding: 'utf8', timeout: 120_000, env: { ...process.env, TORCH_NUM_THREADS: '1', SSDDPM_DEBUG: '', ...opts.env } }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') reject(err);
      else resolve({ status: err ? (err.code as number) : 0, stdout, stderr });
    });
  });
}

/** Runs invocations a few at a time (each spends most of its ~2 s starting up; the machine is small). */
async function ssddpmAll(invocations: readonly (readonly string[])[], parallel = 4): Promise<Result[]> {
  const results: Result[] = new Array(invocations.length);
  let next = 0;
  const worker = async () => {
    while (next < invocations.length) {
      const i = next++;
      results[i] = await ssddpm(invocations[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, invocations.length) }, worker));
  return results;
}

/** stderr without progress-bar lines, blank lines and commander's usage hint. */
function messageLines(stderr: string): string[] {
  return stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && l !== '(add --help for usage)' && !/\[[█░]+\] \d+\/\d+/.test(l));
}

/** Exit status ≠ 0, exactly one message line matching `message`, no stack trace, nothing on stdout. */
function assertRefused(r: Result, message: RegExp, what: string): void {
  assert.notEqual(r.status, 0, `${what}: exit status`);
  assert.ok(!r.stderr.includes('    at '), `${what}: no stack trace in\n${r.stderr}`);
  const lines = messageLines(r.stderr);
  assert.equal(lines.length, 1, `${what}: one line of error, got\n${r.stderr}`);
  assert.match(lines[0]!, /^(ssddpm|error): /, what);
  assert.match(lines[0]!, message, what);
  assert.equal(r.stdout, '', `${what}: nothing on stdout`);
}

/** Every file and folder under `dir` with its size and modification time. */
function listing(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      const s = statSync(p);
      out.push(`${p} ${s.isDirectory() ? 'dir' : s.size} ${s.mtimeMs}`);
      if (s.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return out;
}

/** Runs refusals (in parallel), checks each, and checks that none wrote anything under `root`. */
async function assertAllRefused(cases: readonly [readonly string[], RegExp][]): Promise<void> {
  const before = listing(root);
  const results = await ssddpmAll(cases.map(([args]) => args));
  cases.forEach(([args, message], i) => assertRefused(results[i]!, message, args.join(' ')));
  assert.deepEqual(listing(root), before, 'nothing written');
}

// ---------------------------------------------------------------------------------------------------------
// Fixtures: one tiny run of each model (library calls: no process start-up), and a valid IDX set.

const mnist: ImageSet = (() => {
  const all = loadMnist('train');
  const n = 400;
  return { ...all, images: all.images.slice(0, n * 784), labels: all.labels.slice(0, n), count: n };
})();
const runs = join(root, 'runs');
const run = (kind: 'baseline' | 'small' | 'upscaler') => {
  const out = join(runs, kind);
  trainDiffusion({ out, model: kind, images: mnist, training: { perClass: 2, batchSize: 20, epochs: 1, seed: 5 } });
  return out;
};
const baseline = run('baseline');
const small = run('small');
const upscaler = run('upscaler');
const CKPT = join('checkpoints', 'epoch-0001.safetensors');

/** A run folder with `baseline`'s config.json and `checkpoint` (a file's bytes) as its only checkpoint. */
function doctoredRun(name: string, checkpoint: Uint8Array): string {
  const dir = join(runs, name);
  mkdirSync(join(dir, 'checkpoints'), { recursive: true });
  copyFileSync(join(baseline, 'config.json'), join(dir, 'config.json'));
  writeFileSync(join(dir, CKPT), checkpoint);
  return dir;
}

/** A safetensors file whose header is rewritten by `edit` (the data buffer is kept as is). */
function withHeader(bytes: Buffer, edit: (header: Record<string, { data_offsets: [number, number] }>) => void): Buffer {
  const n = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')) as Record<string, { data_offsets: [number, number] }>;
  edit(header);
  const json = Buffer.from(JSON.stringify(header));
  const padded = Buffer.alloc(Math.ceil(json.length / 8) * 8, 0x20);
  json.copy(padded);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(padded.length));
  return Buffer.concat([prefix, padded, bytes.subarray(8 + n)]);
}

const sets = join(root, 'sets');
const goodSet: ImageSet = {
  images: Uint8Array.from({ length: 20 * 28 * 28 }, (_, i) => (i * 37) % 256),
  labels: Uint8Array.from({ length: 20 }, (_, i) => i % 10),
  count: 20,
  height: 28,
  width: 28,
  numClasses: 10,
};
/** A copy of the valid set in `sets/<name>`, then `damage` applied to its two file paths. */
function badSet(name: string, damage: (images: string, labels: string) => void): string {
  const dir = join(sets, name);
  const { imagesPath, labelsPath } = writeImageSet(dir, goodSet, 'train');
  damage(imagesPath, labelsPath);
  return dir;
}

// ---------------------------------------------------------------------------------------------------------

test('cas --set refuses a missing, truncated, corrupt, inconsistent or out-of-range IDX set', async () => {
  const json = join(root, 'cas.json');
  const cas = (set: string) => ['cas', '--set', set, '--classifiers', '1', '--epochs', '1', '--json', json];
  const cut = (path: string, bytes: number) => writeFileSync(path, readFileSync(path).subarray(0, bytes));
  await assertAllRefused([
    [cas(badSet('no-labels', (_, labels) => rmSync(labels))), /train-images-idx3-ubyte has no matching train-labels-idx1-ubyte/],
    [cas(badSet('truncated', (images) => cut(images, 1000))), /train-images-idx3-ubyte: truncated data \(shape 20x28x28 of uint8 needs 15680 bytes, file has 984\)/],
    [cas(badSet('bad-magic', (images) => {
      const b = readFileSync(images);
      b[0] = 0x50;
      b[1] = 0x4b;
      writeFileSync(images, b);
    })), /train-images-idx3-ubyte: bad magic, not an IDX file .*got 0x50 0x4b/],
    [cas(badSet('count', (_, labels) => {
      const b = readFileSync(labels);
      b.writeUInt32BE(19, 4);
      writeFileSync(labels, b.subarray(0, 8 + 19));
    })), /count mismatch: .*has 20 images but .*has 19 labels/],
    [cas(badSet('label-range', (_, labels) => {
      const b = readFileSync(labels);
      b[8 + 7] = 12;
      writeFileSync(labels, b);
    })), /train-labels-idx1-ubyte: label 12 at index 7 is out of range \(must be < 10 classes\)/],
  ]);
  assert.equal(existsSync(json), false);
});

test('sample --run refuses a truncated checkpoint, a header that lies about offsets, another model\'s checkpoint', async () => {
  const bytes = readFileSync(join(baseline, CKPT));
  const png = join(root, 'png', 'x.png');
  const sample = (dir: string) => ['sample', '--run', dir, '--per-label', '1', '--out', png];
  // The first tensor's offsets moved 4 bytes on: it overlaps the next one and leaves a hole at the start.
  const shifted = withHeader(bytes, (h) => {
    const first = Object.entries(h).find(([name, e]) => name !== '__metadata__' && e.data_offsets[0] === 0)!;
    first[1].data_offsets = [4, first[1].data_offsets[1] + 4];
  });
  // One tensor's span shrunk: its bytes no longer match its shape.
  const short = withHeader(bytes, (h) => {
    const e = Object.entries(h).find(([name, v]) => name !== '__metadata__' && v.data_offsets[1] - v.data_offsets[0] > 8)![1];
    e.data_offsets = [e.data_offsets[0], e.data_offsets[1] - 4];
  });
  await assertAllRefused([
    [sample(doctoredRun('truncated', bytes.subarray(0, bytes.length - 1000))), /truncated\/checkpoints\/epoch-0001\.safetensors: .*beyond the \d+-byte data buffer \(truncated file\?\)/],
    [sample(doctoredRun('truncated-header', bytes.subarray(0, 200))), /truncated-header: no checkpoint to load: its checkpoint \(epoch-0001\.safetensors\) cannot be read: truncated/],
    [sample(doctoredRun('shifted', shifted)), /shifted\/checkpoints\/epoch-0001\.safetensors: (tensors .* overlap|gap: data bytes \[0, 4\))/],
    [sample(doctoredRun('short', short)), /short\/checkpoints\/epoch-0001\.safetensors: tensor .* span \d+ bytes but F32 \[.*\] needs \d+/],
    [sample(doctoredRun('upscaler-ckpt', readFileSync(join(upscaler, CKPT)))), /holds an upscaler model \(mnist 28×28, T=10, 2 input channels\), not this run's baseline model/],
    [sample(doctoredRun('small-ckpt', readFileSync(join(small, CKPT)))), /holds a small model \(mnist 14×14, T=20, 1 input channel\), not this run's baseline model \(mnist 28×28, T=30/],
  ]);
  assert.equal(existsSync(join(root, 'png')), false, 'the output folder was not created');
});

// (cli.test.ts covers --resume on an empty folder, an unknown model and a negative or non-numeric --epochs.)
test('train refuses --resume with nothing to resume and bad settings', async () => {
  const configOnly = join(runs, 'config-only');
  mkdirSync(configOnly);
  copyFileSync(join(small, 'config.json'), join(configOnly, 'config.json'));
  const out = join(root, 'new-run');
  await assertAllRefused([
    [['train', '--resume', '--out', configOnly], /nothing to resume in .*config-only: it holds no checkpoint yet; it stopped inside its first epoch: run the same command without --resume to start it over/],
    [['train', '--batch-size', '0', '--out', out], /--batch-size.*'0'.*positive integer/],
    [['train', '--seed', '10000000000', '--out', out], /seed must be an integer in 0\.\.4294967295, got 10000000000/],
    [['train', '--seed', 'seven', '--out', out], /--seed.*'seven'.*non-negative integer/],
    [['train', '--lr', '-1', '--out', out], /--lr.*'-1'.*positive number/],
  ]);
});

test('an output path that is a file, a folder, or under a file is refused before any work', async () => {
  const file = join(root, 'a-file');
  writeFileSync(file, 'keep me\n');
  const folder = join(root, 'a-folder');
  mkdirSync(folder);
  await assertAllRefused([
    [['train', '--model', 'small', '--per-class', '2', '--out', file], /a-file exists and is not a folder/],
    [['train', '--model', 'small', '--per-class', '2', '--out', join(file, 'run')], /a-file is not a folder/],
    [['generate', '--run', small, '--count', '2', '--out', file], /a-file exists and is not a folder/],
    [['generate', '--run', small, '--count', '2', '--out', folder], /a-folder already exists; remove it or choose another --out/],
    [['sample', '--run', small, '--per-label', '1', '--out', folder], /a-folder is a folder; give a file name/],
  ]);
  assert.equal(readFileSync(file, 'utf8'), 'keep me\n');
});

test('an output folder that is not writable is refused before any work', async (t) => {
  const locked = join(root, 'locked');
  mkdirSync(locked);
  chmodSync(locked, 0o500);
  try {
    let writable = false;
    try {
      accessSync(locked, constants.W_OK);
      writable = true;
    } catch {}
    if (writable) return t.skip('mode 500 does not stop this user (root)');
    await assertAllRefused([
      [['train', '--model', 'small', '--per-class', '2', '--out', join(locked, 'run')], /locked is not writable/],
      [['generate', '--run', small, '--count', '2', '--out', join(locked, 'gen')], /locked is not writable/],
      [['sample', '--run', small, '--per-label', '1', '--out', join(locked, 'x.png')], /locked is not writable/],
    ]);
  } finally {
    chmodSync(locked, 0o700);
  }
});

/** After a failed write: no temporary left anywhere under `dir`, and every file there is complete. */
function assertCompleteOrAbsent(dir: string): void {
  for (const line of listing(dir)) {
    const path = line.split(' ')[0]!;
    const name = path.split('/').at(-1)!;
    assert.ok(!name.startsWith('.tmp-') && !name.startsWith('.'), `temporary left: ${path}`);
    if (name.endsWith('.json')) JSON.parse(readFileSync(path, 'utf8'));
    if (name.endsWith('.jsonl')) for (const l of readFileSync(path, 'utf8').split('\n').filter(Boolean)) JSON.parse(l);
    if (name.endsWith('.safetensors')) dispose([...loadCheckpoint(path).tensors.values()]);
  }
}

/**
 * train, generate and (unless `withSample` is false) sample into `dir` when it cannot take their outputs;
 * `fileLimitKb` runs them under a ulimit.
 */
async function fullDisk(dir: string, reason: RegExp, opts: { fileLimitKb?: number; withSample?: boolean } = {}): Promise<void> {
  const { fileLimitKb, withSample = true } = opts;
  const trainRun = join(dir, 'run');
  const gen = join(dir, 'gen');
  const png = join(dir, 'grid.png');
  const exp = join(dir, 'exp');
  const [tr, ge, sa, ex] = await Promise.all([
    ssddpm(['train', '--model', 'small', '--per-class', '2', '--batch-size', '20', '--epochs', '1', '--out', trainRun], { fileLimitKb }),
    // 100 images of 28×28: 78 KB of pixels.
    ssddpm(['generate', '--run', small, '--upscale', '--count', '100', '--batch-size', '100', '--out', gen], { fileLimitKb }),
    withSample ? ssddpm(['sample', '--run', small, '--upscale', '--per-label', '10', '--scale', '4', '--out', png], { fileLimitKb }) : undefined,
    ssddpm(['export', '--run', small, '--out', exp], { fileLimitKb }),
  ]);
  const escaped = (path: string) => path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  assertRefused(tr, new RegExp(`cannot write .*run/checkpoints/epoch-0001\\.safetensors: ${reason.source}; make room, then run the same command again$`), 'train');
  // The user's folder is named, not the temporary one it is written in first.
  assertRefused(ge, new RegExp(`cannot write ${escaped(gen)}/train-images-idx3-ubyte: ${reason.source}`), 'generate');
  assertRefused(ex!, new RegExp(`cannot write ${escaped(exp)}/checkpoints/epoch-0001\\.safetensors: ${reason.source}`), 'export');
  assert.equal(existsSync(exp), false, 'no partial export');
  if (sa !== undefined) assertRefused(sa, new RegExp(`cannot write .*grid\\.png: ${reason.source}`), 'sample');
  assert.equal(existsSync(gen), false, 'no partial generated set');
  assert.equal(existsSync(png), false, 'no partial PNG');
  assert.deepEqual(readdirSync(join(trainRun, 'checkpoints')), [], 'no partial checkpoint');
  assertCompleteOrAbsent(dir);
}

test('a full disk (64 KiB tmpfs): train, generate and sample fail naming the file, leaving no partial output', async (t) => {
  const mnt = join(root, 'tmpfs');
  mkdirSync(mnt);
  const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', mnt], { encoding: 'utf8' });
  if (mounted.status !== 0) return t.skip(`cannot mount a tmpfs (${(mounted.stderr || mounted.error?.message || '').trim()}); needs root`);
  try {
    await fullDisk(mnt, /no space left on device \(ENOSPC\)/);
  } finally {
    spawnSync('umount', [mnt]);
  }
});

// Works without root: Node ignores SIGXFSZ, so writes past the limit fail with EFBIG instead of killing it.
test('a file-size limit (ulimit -f 64): train and generate fail the same way, with EFBIG', async () => {
  const dir = join(root, 'limited');
  mkdirSync(dir);
  await fullDisk(dir, /file too large \(EFBIG\)/, { fileLimitKb: 64, withSample: false });
});

test('a diverging training (lr 1e30) stops at the NaN with the step and the last good checkpoint, which loads', async () => {
  const out = join(root, 'diverge');
  const r = await ssddpm(['train', '--model', 'small', '--per-class', '4', '--batch-size', '8', '--epochs', '3', '--lr', '1e30', '--checkpoint-every', '1', '--seed', '5', '--out', out]);
  assertRefused(r, /the loss became (NaN|-?Infinity) at step (\d+) \(epoch 1\); stopped without saving: the last good checkpoint is .*diverge\/checkpoints\/latest-step\.safetensors; train a new run with a lower --lr \(another --out\)$/, 'train --lr 1e30');
  const step = Number(/at step (\d+)/.exec(r.stderr)![1]);
  const ckpt = loadCheckpoint(join(out, 'checkpoints', 'latest-step.safetensors'));
  assert.equal(ckpt.metadata.step, step - 1, 'the checkpoint is the step before the NaN');
  dispose([...ckpt.tensors.values(), ...[...(ckpt.optimizerState?.state.values() ?? [])].flatMap((s) => Object.values(s))]);
  loadModel(out).dispose();
  const steps = readFileSync(join(out, 'train.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { loss: number });
  assert.equal(steps.length, step - 1, 'the log ends at the last finite loss');
  assert.ok(steps.every((s) => Number.isFinite(s.loss)));
});

test('library-level refusals: T = 0, a U-Net with 0 channels, a safetensors header that lies, IDX with a wrong magic', () => {
  assert.throws(() => new NoiseSchedule({ kind: 'cosine', numTimesteps: 0 }), { name: 'RangeError', message: 'schedule: numTimesteps (T) must be a positive integer, got 0' });
  assert.throws(() => new UNet({ ...PAPER_UNET, baseChannels: 0 }), { name: 'RangeError', message: 'UNet: baseChannels must be a positive integer, got 0' });
  assert.throws(() => new UNet({ ...PAPER_UNET, inChannels: 0 }), { name: 'RangeError', message: 'UNet: inChannels must be a positive integer, got 0' });

  const header = Buffer.from(JSON.stringify({ w: { dtype: 'F32', shape: [4], data_offsets: [0, 64] } }));
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(header.length));
  assert.throws(() => parseSafetensors(Buffer.concat([prefix, header, Buffer.alloc(16)]), 'w.safetensors'), (e: unknown) =>
    e instanceof SafetensorsError && e.message === 'w.safetensors: tensor "w": data_offsets end 64 is beyond the 16-byte data buffer (truncated file?)');

  const idx = Buffer.from([0x08, 0x03, 0x00, 0x01, 0, 0, 0, 0]);
  assert.throws(() => parseIdx(idx, 'x-idx1-ubyte'), (e: unknown) =>
    e instanceof DataError && e.message === 'x-idx1-ubyte: bad magic, not an IDX file (first two bytes must be 0x00 0x00, got 0x08 0x03)');
});

/** A copy of `baseline` whose checkpoint's weights are changed by `edit` (a record per tensor name). */
function editedRun(name: string, edit: (tensors: Record<string, TensorRecord>) => void): string {
  const { tensors, metadata } = readSafetensors(join(baseline, CKPT));
  edit(tensors);
  const dir = join(runs, name);
  mkdirSync(join(dir, 'checkpoints'), { recursive: true });
  copyFileSync(join(baseline, 'config.json'), join(dir, 'config.json'));
  writeSafetensors(join(dir, CKPT), tensors, metadata);
  return dir;
}

const float32Record = (shape: number[], value: (i: number) => number): TensorRecord => {
  const n = shape.reduce((a, b) => a * b, 1);
  return { dtype: 'F32', shape, data: new Uint8Array(Float32Array.from({ length: n }, (_, i) => value(i)).buffer) };
};

test('weights that are not numbers, or that make the network overflow, stop sampling with the tensor or the step', async () => {
  const nan = editedRun('nan-weights', (t) => {
    t['dec1.conv.bn1.weight'] = float32Record(t['dec1.conv.bn1.weight']!.shape, (i) => (i === 3 ? Number.NaN : 1));
  });
  const infinite = editedRun('inf-buffer', (t) => {
    t['enc2.conv.bn2.running_var'] = float32Record(t['enc2.conv.bn2.running_var']!.shape, (i) => (i === 0 ? Number.POSITIVE_INFINITY : 1));
  });
  // Finite weights whose output overflows float32: ε̂ is ±∞ at the first step.
  const overflow = editedRun('overflow', (t) => {
    t['out.weight'] = float32Record(t['out.weight']!.shape, () => 3e38);
  });
  const adam = editedRun('nan-adam-state', (t) => {
    t['optimizer.state.0.exp_avg'] = float32Record(t['optimizer.state.0.exp_avg']!.shape, () => Number.NaN);
  });
  const out = join(root, 'never');
  await assertAllRefused([
    [['generate', '--run', nan, '--count', '4', '--out', join(out, 'a')], /tensor 'dec1\.conv\.bn1\.weight' holds non-finite values/],
    [['sample', '--run', infinite, '--per-label', '1', '--out', join(out, 'b.png')], /tensor 'enc2\.conv\.bn2\.running_var' holds non-finite values/],
    [['generate', '--run', overflow, '--count', '4', '--out', join(out, 'c')], /the network returned non-finite values at timestep 29 \(step 1 of 30\)/],
  ]);
  // Resuming reads the checkpoint under the run's lock: the lock comes and goes, the run stays as it was.
  const before = listing(adam);
  assertRefused(await ssddpm(['train', '--out', adam, '--resume', '--epochs', '2']), /tensor 'optimizer\.state\.0\.exp_avg' holds non-finite values/, 'NaN optimizer state');
  assert.deepEqual(listing(adam), before);
});

test('a checkpoint tensor whose dtype differs from the parameter it loads into is refused, naming it', async () => {
  const ints = editedRun('int-bias', (t) => {
    const { shape } = t['enc0.conv.conv1.bias']!;
    t['enc0.conv.conv1.bias'] = { dtype: 'I64', shape, data: new Uint8Array(new BigInt64Array(shape[0]!).fill(1n).buffer) };
  });
  await assertAllRefused([[['sample', '--run', ints, '--per-label', '1', '--out', join(root, 'never', 'i.png')], /tensor 'enc0\.conv\.conv1\.bias' is int64 but the model expects float32/]]);
});

test('cas refuses a set that lacks a class (an empty set lacks all), giving every class\'s count', async () => {
  const empty = join(sets, 'empty');
  writeImageSet(empty, { ...goodSet, images: new Uint8Array(0), labels: new Uint8Array(0), count: 0 }, 'train');
  const noThrees = join(sets, 'no-threes');
  const keep = Array.from(goodSet.labels.keys()).filter((i) => goodSet.labels[i] !== 3);
  writeImageSet(noThrees, { ...goodSet, count: keep.length, labels: Uint8Array.from(keep.map((i) => goodSet.labels[i]!)), images: Uint8Array.from(keep.flatMap((i) => Array.from(goodSet.images.subarray(i * 784, (i + 1) * 784)))) }, 'train');
  await assertAllRefused([
    [['cas', '--set', empty, '--classifiers', '1', '--epochs', '1'], /at least 1 training image of every class; this set has 0: 0, 1: 0, 2: 0,/],
    [['cas', '--set', noThrees, '--classifiers', '1', '--epochs', '1'], /this set has 0: 2, 1: 2, 2: 2, 3: 0, 4: 2/],
  ]);
});

test('train --resume refuses settings that differ from the run\'s and an --epochs below what it has done; more epochs are applied and recorded', async () => {
  const dir = join(runs, 'resume-me');
  cpSync(small, dir, { recursive: true });
  const config = readFileSync(join(dir, 'config.json'), 'utf8');
  await assertAllRefused([
    [['train', '--out', dir, '--resume', '--lr', '0.01'], /was trained with lr 0\.001 \(asked: 0\.01\): a resumed run keeps its settings/],
    [['train', '--out', dir, '--resume', '--model', 'baseline', '--seed', '9'], /model "small" \(asked: "baseline"\), seed 5 \(asked: 9\)/],
    [['train', '--out', dir, '--resume', '--batch-size', '7', '--ema', '0.9'], /batchSize 20 \(asked: 7\), ema unset \(asked: 0\.9\)/],
  ]);
  assert.equal(readFileSync(join(dir, 'config.json'), 'utf8'), config);
  const more = join(runs, 'resume-more');
  cpSync(small, more, { recursive: true });
  const longer = await ssddpm(['train', '--out', more, '--resume', '--epochs', '2', '--per-class', '2']);
  assert.equal(longer.status, 0, longer.stderr);
  assert.equal((JSON.parse(readFileSync(join(more, 'config.json'), 'utf8')) as { training: { epochs: number } }).training.epochs, 2, 'recorded');
  assert.ok(existsSync(join(more, 'checkpoints', 'epoch-0002.safetensors')));
  const shorter = await ssddpm(['train', '--out', more, '--resume', '--epochs', '1']);
  assertRefused(shorter, /has already trained 2 epochs: --epochs 1 would leave/, 'fewer epochs');
  const again = await ssddpm(['train', '--out', more, '--resume']);
  assert.equal(again.status, 0, again.stderr);
  assert.match(again.stdout, /final loss \d\.\d{4}/, 'nothing left to train: the last loss, not NaN');
});

test('a thread count that is not a positive integer, or far above the cores, is refused in one line', async () => {
  const env = (v: string) => ({ env: { TORCH_NUM_THREADS: v } });
  const args = ['forward', '--run', small, '--out', join(root, 'never', 'f.png')];
  for (const [r, message] of [
    [await ssddpm(args, env('abc')), /TORCH_NUM_THREADS must be a positive integer, got 'abc'/],
    [await ssddpm(args, env('0')), /TORCH_NUM_THREADS must be a positive integer, got '0'/],
    [await ssddpm(args, env('10000')), /TORCH_NUM_THREADS=10000 is more than 4 per core/],
    [await ssddpm(['--threads', '10000', ...args]), /--threads: 10000 is more than 4 per core/],
  ] as const) {
    assertRefused(r, message, message.source);
  }
  assert.ok(!existsSync(join(root, 'never')));
});

test('one writer per folder: a second train into the same run folder is refused while the first runs; a stale lock is taken over', async () => {
  const dir = join(root, 'two-writers', 'run');
  const lock = join(root, 'two-writers', '.run.lock');
  const args = (seed: string) => ['train', '--model', 'small', '--per-class', '50', '--epochs', '12', '--seed', seed, '--out', dir];
  const first = ssddpm(args('1'));
  // The second starts once the first holds the lock (it trains for a few seconds after that).
  while (!existsSync(lock)) await new Promise((r) => setTimeout(r, 20));
  const second = await ssddpm(args('2'));
  const won = await first;
  assert.equal(won.status, 0, won.stderr);
  assertRefused(second, /run: this run folder is being written by process \d+ \(since .*\); wait for it to finish or stop it/, 'second writer');
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as { training: { seed: number } };
  const steps = readFileSync(join(dir, 'train.jsonl'), 'utf8').split('\n').filter((l) => l.includes('"step"'));
  assert.equal(steps.length, 12 * Math.ceil(500 / 128), 'one run\'s steps only');
  assert.equal(config.training.seed, 1, 'the config is the first writer\'s');
  assert.ok(!existsSync(join(root, 'two-writers', '.run.lock')), 'the lock goes with its writer');
  // A lock left by a process that is gone (a SIGKILL) does not block the next writer.
  writeFileSync(join(root, 'two-writers', '.run.lock'), JSON.stringify({ pid: 2 ** 22 + 17, host: hostname(), since: 'earlier' }));
  const resumed = await ssddpm(['train', '--out', dir, '--resume', '--epochs', '13']);
  assert.equal(resumed.status, 0, resumed.stderr);
});

test('an output under a pseudo filesystem is refused at once, not retried forever', async () => {
  if (!existsSync('/proc/self')) return;
  await assertAllRefused([
    [['train', '--model', 'small', '--per-class', '2', '--epochs', '1', '--out', '/proc/ssddpm-run'], /cannot (write|create) \/proc\/ssddpm-run/],
    [['export', '--run', small, '--out', '/proc/ssddpm-export/x'], /cannot (write|create) \/proc\/ssddpm-export/],
  ]);
});

test('a run stopped before its first checkpoint starts over with the same command; a later one says to resume', async () => {
  const dir = join(runs, 'stopped-early');
  mkdirSync(join(dir, 'checkpoints'), { recursive: true });
  copyFileSync(join(small, 'config.json'), join(dir, 'config.json'));
  writeFileSync(join(dir, 'train.jsonl'), '{"step":1,"epoch":1,"loss":0.9}\n{"step":2,"ep');
  const again = await ssddpm(['train', '--model', 'small', '--per-class', '2', '--epochs', '1', '--seed', '3', '--out', dir]);
  assert.equal(again.status, 0, again.stderr);
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as { training: { seed: number } };
  assert.equal(config.training.seed, 3, 'the new run\'s configuration');
  assert.ok(!readFileSync(join(dir, 'train.jsonl'), 'utf8').includes('"loss":0.9'), 'the stopped run\'s log is gone');
  assertRefused(await ssddpm(['train', '--model', 'small', '--out', dir]), /already holds a run: resume it with --resume/, 'a run with a checkpoint');
});

test('inputs that are not regular files, or that are bigger than they say, are refused before they are read', async () => {
  const odd = join(root, 'odd-inputs');
  mkdirSync(odd);
  // A gzipped IDX file whose header declares 2^31 images of 28×28: refused from the header, nothing inflated.
  const bomb = join(odd, 'bomb');
  mkdirSync(bomb);
  const header = Buffer.from([0, 0, 0x08, 3, 0x80, 0, 0, 0, 0, 0, 0, 28, 0, 0, 0, 28]);
  writeFileSync(join(bomb, 'train-images-idx3-ubyte.gz'), gzipSync(Buffer.concat([header, Buffer.alloc(1 << 20)])));
  writeFileSync(join(bomb, 'train-labels-idx1-ubyte.gz'), gzipSync(Buffer.from([0, 0, 0x08, 1, 0, 0, 0, 0])));
  // A gzipped file holding more than its header declares (10 images declared, 4 MiB of data).
  const liar = join(odd, 'liar');
  mkdirSync(liar);
  writeFileSync(join(liar, 'train-images-idx3-ubyte.gz'), gzipSync(Buffer.concat([Buffer.from([0, 0, 0x08, 3, 0, 0, 0, 10, 0, 0, 0, 28, 0, 0, 0, 28]), Buffer.alloc(4 << 20)])));
  writeFileSync(join(liar, 'train-labels-idx1-ubyte.gz'), gzipSync(Buffer.from([0, 0, 0x08, 1, 0, 0, 0, 10, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9])));
  // A FIFO as an image file and as a run's config.json: nothing would ever be read from them.
  const fifoSet = join(odd, 'fifo-set');
  mkdirSync(fifoSet);
  const fifoRun = join(odd, 'fifo-run');
  mkdirSync(fifoRun);
  const made = spawnSync('mkfifo', [join(fifoSet, 'train-images-idx3-ubyte'), join(fifoRun, 'config.json')]);
  writeFileSync(join(fifoSet, 'train-labels-idx1-ubyte'), Buffer.from([0, 0, 0x08, 1, 0, 0, 0, 0]));
  const cases: [readonly string[], RegExp][] = [
    [['cas', '--set', bomb], /train-images-idx3-ubyte\.gz: its header declares \d+ bytes of data, more than the 1073741824 an input may have/],
    [['cas', '--set', liar], /train-images-idx3-ubyte\.gz: decompresses to more than the 7856 bytes its header declares/],
  ];
  if (made.status === 0) {
    cases.push(
      [['cas', '--set', fifoSet], /train-images-idx3-ubyte: not a regular file \(a FIFO\)/],
      [['sample', '--run', fifoRun, '--out', join(root, 'never', 'x.png')], /config\.json: not a regular file \(a FIFO\)/],
    );
  }
  await assertAllRefused(cases);
});

test('a run configuration without its U-Net, or a torn generated.json, is named with what is wrong', async () => {
  const noUnet = join(runs, 'no-unet');
  cpSync(small, noUnet, { recursive: true });
  const cfg = JSON.parse(readFileSync(join(noUnet, 'config.json'), 'utf8')) as { model: Record<string, unknown> };
  delete cfg.model.unet;
  writeFileSync(join(noUnet, 'config.json'), JSON.stringify(cfg));
  await assertAllRefused([[['sample', '--run', noUnet, '--out', join(root, 'never', 'u.png')], /no-unet\/config\.json: malformed run configuration: model\.unet is missing/]]);
  const set = join(sets, 'torn-info');
  writeImageSet(set, goodSet, 'train');
  writeFileSync(join(set, 'generated.json'), '{"offRange": {"pix');
  assert.throws(() => readOffRange([set]), (e: unknown) => e instanceof DataError && /torn-info\/generated\.json: not valid JSON/.test(e.message));
});

test('temporaries left by a killed writer are removed by the next write of the same output; a live writer\'s are kept', () => {
  const parent = join(root, 'temporaries');
  mkdirSync(parent);
  const gone = 2 ** 22 + 23;
  mkdirSync(join(parent, `.tmp-set-${gone}`));
  writeFileSync(join(parent, `.tmp-grid.png-${gone}-abc`), 'partial');
  writeFileSync(join(parent, `.tmp-grid.png-${process.pid}-def`), 'a live writer\'s');
  writeGeneratedSet(join(parent, 'set'), goodSet, {});
  writeFileAtomic(join(parent, 'grid.png'), 'png');
  assert.deepEqual(readdirSync(parent).sort(), [`.tmp-grid.png-${process.pid}-def`, 'grid.png', 'set']);
});

test('outputs that cannot fit are refused before any sampling', async () => {
  await assertAllRefused([
    [['generate', '--run', baseline, '--count', '1000000000', '--out', join(root, 'never', 'huge')], /1000000000 images of 28×28 would be 784000000000 bytes, more than the 1073741824 a set may have \(at most 1369568 images\)/],
    [['sample', '--run', baseline, '--per-label', '100000', '--out', join(root, 'never', 'huge.png')], /a grid of 1000000 samples is more than 10000; write a set with `ssddpm generate` for more/],
    [['sample', '--run', baseline, '--scale', '1000', '--out', join(root, 'never', 'big.png')], /--scale.*expected at most 16, got '1000'/],
    [['generate', '--run', baseline, '--batch-size', '1000000', '--out', join(root, 'never', 'b')], /--batch-size.*expected at most 4096, got '1000000'/],
    [['forward', '--run', baseline, '--count', '5000', '--out', join(root, 'never', 'f.png')], /a figure of 5000 rows is more than 1000/],
  ]);
  // Whatever asks for it, a canvas above 256 megapixels is refused before its memory is taken.
  assert.throws(() => new GrayCanvas(1 << 15, 1 << 14), /a picture of 32768×16384 pixels is more than the 268435456 a canvas may have/);
});

test('through the command line: a second generate into the same set folder is refused while the first runs, and a killed writer\'s temporaries go', async () => {
  const parent = join(root, 'sets-cli');
  mkdirSync(parent);
  const gone = 2 ** 22 + 29;
  mkdirSync(join(parent, `.tmp-set-${gone}`));
  writeFileSync(join(parent, `.tmp-grid.png-${gone}-x1`), 'partial');
  const out = join(parent, 'set');
  const first = ssddpm(['generate', '--run', small, '--count', '1500', '--batch-size', '50', '--out', out]);
  while (!existsSync(join(parent, '.set.lock'))) await new Promise((r) => setTimeout(r, 20));
  const second = await ssddpm(['generate', '--run', small, '--count', '10', '--out', out]);
  assertRefused(second, /set: this set folder is being written by process \d+/, 'second generate');
  const done = await first;
  assert.equal(done.status, 0, done.stderr);
  const grid = await ssddpm(['sample', '--run', small, '--per-label', '1', '--out', join(parent, 'grid.png')]);
  assert.equal(grid.status, 0, grid.stderr);
  assert.deepEqual(readdirSync(parent).sort(), ['grid.png', 'set'], 'no lock, no temporaries left');
});
