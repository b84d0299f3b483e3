// The `ssddpm` command line, run as users run it (`node bin/ssddpm.js ...`): help texts, argument errors
// (one line, no stack trace, nothing written), and a tiny train → sample → generate round trip.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeGrayPng } from '../src/images/png.ts';
import { gridGeometry } from '../src/images/grid.ts';
import { readImageSet } from '../src/data/image-set.ts';
import { readRunConfig } from '../src/pipelines/run-dir.ts';

const repo = fileURLToPath(new URL('..', import.meta.url));
const root = mkdtempSync(join(tmpdir(), 'ssddpm-cli-test-'));
after(() => rmSync(root, { recursive: true, force: true }));

interface Result {
  status: number | null;
  stdout: string;
  stderr: string;
}

function ssddpm(...args: string[]): Result {
  const r = spawnSync(process.execPath, ['bin/ssddpm.js', ...args], {
    cwd: repo,
    encoding: 'utf8',
    timeout: 120_000,
    // One libtorch thread: the test machine is small and busy.
    env: { ...process.env, TORCH_NUM_THREADS: '1', SSDDPM_DEBUG: '' },
  });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Runs several invocations at once (each spends most of its ~2 s in start-up). */
function ssddpmAll(invocations: readonly string[][]): Promise<Result[]> {
  return Promise.all(
    invocations.map(
      (args) =>
        new Promise<Result>((resolve, reject) => {
          execFile(process.execPath, ['bin/ssddpm.js', ...args], { cwd: repo, encoding: 'utf8', timeout: 120_000, env: { ...process.env, TORCH_NUM_THREADS: '1', SSDDPM_DEBUG: '' } }, (err, stdout, stderr) => {
            if (err && typeof err.code !== 'number') reject(err);
            else resolve({ status: err ? (err.code as number) : 0, stdout, stderr });
          });
        }),
    ),
  );
}

const HELP: Record<string, string[]> = {
  train: ['--model', '--out', '--epochs', '--seed', '--dataset', '--batch-size', '--lr', '--per-class', '--checkpoint-every', '--resume', '--device'],
  sample: ['--run', '--cascade', '--upscale', '--labels', '--per-label', '--out', '--seed', '--clip', '--dynamic-threshold', '--sampler', '--steps', '--eta', '--variance', '--scale', '--device', '--engine'],
  generate: ['--run', '--cascade', '--upscale', '--guide-model', '--out', '--count', '--seed', '--batch-size', '--clip', '--dynamic-threshold', '--sampler', '--steps', '--eta', '--variance', '--device', '--engine'],
  forward: ['--run', '--out', '--count', '--seed', '--scale'],
  reverse: ['--run', '--out', '--labels', '--seed', '--clip', '--scale'],
  speed: ['--run', '--cascade', '--upscale', '--guide-model', '--no-ema', '--samples', '--device', '--engine'],
  report: ['--results', '--out'],
  export: ['--run', '--out', '--format', '--no-ema'],
  fidelity: ['--set', '--dataset', '--cache', '--json', '--device'],
};

test('--help of each command exits 0 and lists its options', async () => {
  const commands = Object.entries(HELP);
  const [top, ...results] = await ssddpmAll([['--help'], ...commands.map(([cmd]) => [cmd, '--help'])]);
  assert.equal(top!.status, 0, top!.stderr);
  for (const cmd of [...Object.keys(HELP), '--threads']) assert.ok(top!.stdout.includes(cmd), `top-level help mentions ${cmd}`);
  commands.forEach(([cmd, options], i) => {
    const r = results[i]!;
    assert.equal(r.status, 0, `${cmd} --help: ${r.stderr}`);
    assert.ok(r.stdout.startsWith(`Usage: ssddpm ${cmd} [options]`), r.stdout);
    for (const o of options) assert.ok(r.stdout.includes(o), `${cmd} --help mentions ${o}`);
    assert.equal(r.stderr, '');
  });
});

test('output into a pipe whose reader has gone (| true) ends quietly, not with an EPIPE stack', () => {
  const r = spawnSync('sh', ['-c', `"${process.execPath}" bin/ssddpm.js train --help | true`], { cwd: repo, encoding: 'utf8' });
  assert.equal(r.status, 0);
  assert.doesNotMatch(r.stderr, /EPIPE|    at /, r.stderr);
});

/** Fails with exit code ≠ 0, says what is wrong in one line on stderr (plus commander's usage hint), no stack trace. */
function assertCleanFailure(r: Result, message: RegExp, what: string): void {
  assert.notEqual(r.status, 0, `${what}: exit status`);
  assert.ok(!r.stderr.includes('    at '), `${what}: no stack trace in\n${r.stderr}`);
  const lines = r.stderr.trim().split('\n').filter((l) => l !== '(add --help for usage)');
  assert.equal(lines.length, 1, `${what}: one line of error, got\n${r.stderr}`);
  assert.match(lines[0]!, message, what);
  assert.equal(r.stdout, '', `${what}: nothing on stdout`);
}

test('bad arguments exit non-zero with a one-line message, no stack trace, and write nothing', async () => {
  const dir = join(root, 'bad');
  mkdirSync(dir);
  const run = join(dir, 'run');
  const png = join(dir, 'x.png');
  const cases: [string[], RegExp][] = [
    [['train', '--epochs', '-3', '--out', run], /--epochs.*'-3'/],
    [['train', '--epochs', 'abc', '--out', run], /--epochs.*'abc'/],
    [['train', '--model', 'huge', '--out', run], /--model.*'huge'.*baseline, small, upscaler/],
    [['train', '--frobnicate', '--out', run], /unknown option '--frobnicate'/],
    [['sample', '--run', run, '--seed', 'x1', '--out', png], /--seed.*'x1'/],
    [['sample', '--run', run, '--labels', '0-12', '--out', png], /--labels.*label 10 is outside 0\.\.9/],
    [['--threads', '0', 'train', '--out', run], /--threads.*'0'/],
    [['sample', '--run', run, '--steps', '5', '--out', png], /--steps, --eta and --spacing need --sampler ddim/],
    [['sample', '--run', run, '--sampler', 'ddim', '--eta', '2', '--out', png], /--eta.*'2'/],
    [['generate', '--run', run, '--clip', '--dynamic-threshold', '0.99', '--out', join(dir, 'set')], /--clip and --dynamic-threshold exclude each other/],
    [['generate', '--run', run, '--guidance', '1', '--guidance-interval', '5,2', '--out', join(dir, 'set')], /--guidance-interval.*0 ≤ lo < hi.*'5,2'/],
    [['generate', '--run', run, '--guide-model', run, '--guidance', '1', '--label-guidance', '1', '--label-guidance-interval', '2,1', '--out', join(dir, 'set')], /--label-guidance-interval.*0 ≤ lo < hi.*'2,1'/],
    [['generate', '--run', run, '--guide-model', 'a,b,c', '--guidance', '1', '--out', join(dir, 'set')], /--guide-model.*expected RUN, or SMALL_GUIDE,UPSCALER_GUIDE.*'a,b,c'/],
    [['paper', '--preset', 'ci', '--device', 'gpu', '--work', join(dir, 'work'), '--out', join(dir, 'report')], /--device.*'gpu'/],
  ];
  const results = await ssddpmAll(cases.map(([args]) => args));
  cases.forEach(([args, message], i) => assertCleanFailure(results[i]!, message, args.join(' ')));
  assert.deepEqual(readdirSync(dir), [], 'nothing written');
});

test('train --resume on an empty folder fails with "nothing to resume"', () => {
  const empty = join(root, 'empty');
  mkdirSync(empty);
  const r = ssddpm('train', '--resume', '--out', empty);
  assertCleanFailure(r, /^ssddpm: nothing to resume in .*empty/, 'train --resume');
  assert.deepEqual(readdirSync(empty), []);
});

test('end to end: train small (4 per class, 1 epoch), sample --upscale to a PNG, generate 20 images as IDX', () => {
  const run = join(root, 'small-run');
  const t = ssddpm('train', '--model', 'small', '--per-class', '4', '--epochs', '1', '--batch-size', '16', '--seed', '2', '--out', run);
  assert.equal(t.status, 0, t.stderr);
  assert.match(t.stdout, /3 steps, final loss \d+\.\d{4}/);
  const config = readRunConfig(run);
  assert.equal(config.model.kind, 'small');
  assert.deepEqual(
    { epochs: config.training.epochs, perClass: config.training.perClass, batchSize: config.training.batchSize, seed: config.training.seed },
    { epochs: 1, perClass: 4, batchSize: 16, seed: 2 },
  );
  assert.ok(existsSync(join(run, 'checkpoints', 'epoch-0001.safetensors')));

  // A second train into the same folder refuses without --resume.
  assertCleanFailure(ssddpm('train', '--model', 'small', '--out', run), /already holds a run/, 'train over a run');

  const png = join(root, 'out', 'x.png');
  const s = ssddpm('sample', '--run', run, '--upscale', '--per-label', '1', '--scale', '1', '--out', png);
  assert.equal(s.status, 0, s.stderr);
  const image = decodeGrayPng(readFileSync(png));
  const g = gridGeometry(1, 10, 28, 28, { scale: 1, hasColumnLabels: true });
  assert.deepEqual([image.width, image.height], [g.width, g.height], 'one row of ten 28×28 tiles with a header');
  assert.ok(image.width >= 10 * 28 && image.height >= 28);

  const sets = join(root, 'sets');
  const gen = join(sets, 'gen');
  const r = ssddpm('generate', '--run', run, '--upscale', '--count', '20', '--batch-size', '8', '--out', gen);
  assert.equal(r.status, 0, r.stderr);
  const set = readImageSet(join(gen, 'train-images-idx3-ubyte'), join(gen, 'train-labels-idx1-ubyte'));
  assert.equal(set.count, 20);
  assert.deepEqual([set.height, set.width], [28, 28]);
  assert.deepEqual(Array.from(set.labels), Array.from({ length: 20 }, (_, i) => i % 10));
  const info = JSON.parse(readFileSync(join(gen, 'generated.json'), 'utf8')) as Record<string, unknown>;
  assert.equal(info.count, 20);
  assert.equal(info.upscale, true);
  assert.equal(info.dataset, 'mnist', 'the models\' dataset: cas and fidelity score against it by default');
  const off = info.offRange as { pixels: number; samples: number };
  assert.match(r.stdout, new RegExp(`clamped to \\[0, 1\\]: ${(100 * off.pixels).toFixed(1)} % of pixels`), 'the summary line reports the recorded share');

  // Guided by itself (autoguidance with no weaker model): the same images, the guide recorded.
  const selfGuided = join(sets, 'self-guided');
  const a = ssddpm('generate', '--run', run, '--upscale', '--guide-model', run, '--guidance', '2', '--count', '20', '--batch-size', '8', '--out', selfGuided);
  assert.equal(a.status, 0, a.stderr);
  assert.deepEqual((JSON.parse(readFileSync(join(selfGuided, 'generated.json'), 'utf8')) as Record<string, unknown>).guideModel, [run]);
  const guidedSet = readImageSet(join(selfGuided, 'train-images-idx3-ubyte'), join(selfGuided, 'train-labels-idx1-ubyte'));
  assert.ok(guidedSet.images.every((v, i) => Math.abs(v - set.images[i]!) <= 1), 'ε + w (ε − ε) = ε, to a grey level');
  assert.deepEqual(readdirSync(sets).sort(), ['gen', 'self-guided'], 'no temporary folder left');
});

test('report renders a report folder again from its results.json, and refuses one whose figures are missing', () => {
  const dir = join(root, 'rerendered');
  cpSync(join(repo, 'docs', 'fashion-mnist-report'), dir, { recursive: true });
  rmSync(join(dir, 'report.md'));
  const r = ssddpm('report', '--results', join(dir, 'results.json'));
  assert.equal(r.status, 0, r.stderr);
  const md = readFileSync(join(dir, 'report.md'), 'utf8');
  const results = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')) as { cas: { mean: number; std: number }[] };
  assert.ok(md.includes('## Table 1') && md.includes(`${results.cas[0]!.mean.toFixed(3)} ± ${results.cas[0]!.std.toFixed(3)}`), 'the numbers of results.json');
  rmSync(join(dir, 'reverse-small.png'));
  assertCleanFailure(ssddpm('report', '--results', join(dir, 'results.json')), /lacks figures the results name: reverse-small\.png/, 'missing figure');
});
