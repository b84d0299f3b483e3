import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CheckpointError, fromRecord, loadCheckpoint, restoreCheckpoint, saveCheckpoint, toRecord } from '../src/io/checkpoint.ts';
import { SafetensorsError, readSafetensors, writeSafetensors, fromTypedArray } from '../src/io/safetensors.ts';
import { BatchNorm2d, Conv2d, Flatten, GELU, Linear, Sequential } from '../src/nn/index.ts';
import { mseLoss } from '../src/nn/functional.ts';
import { Adam, AdamW, type Optimizer } from '../src/optim/index.ts';
import { Generator, dispose, memory, noGrad, randn, tensor, tidy, type DType, type Tensor } from '../src/torch/index.ts';

function withTempDir(fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'checkpoint-test-'));
  try {
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The model scripts/fixtures/checkpoint.py builds, with the same module paths. */
function makeModel(seed: number, outFeatures = 3): Sequential {
  const gen = new Generator(seed);
  return new Sequential(
    new Conv2d(1, 2, 3, { padding: 1, generator: gen }),
    new BatchNorm2d(2),
    new GELU(),
    new Flatten(),
    new Linear(2 * 4 * 4, outFeatures, { generator: gen }),
  );
}

function trainStep(model: Sequential, opt: Optimizer, x: Tensor, y: Tensor): void {
  tidy(() => {
    opt.zeroGrad();
    mseLoss(model.forward(x), y).backward();
    opt.step();
  });
}

const bytesOf = (t: Tensor): Buffer => {
  const d = t.data();
  return Buffer.from(d.buffer, d.byteOffset, d.byteLength);
};

function data(seed: number) {
  const gen = new Generator(seed);
  return { x: randn([4, 1, 4, 4], { generator: gen }), y: randn([4, 3], { generator: gen }) };
}

const MODEL_NAMES = ['0.weight', '0.bias', '1.weight', '1.bias', '1.running_mean', '1.running_var', '1.num_batches_tracked', '4.weight', '4.bias'];

test('checkpoint round trip: names, metadata, values, resumed training', () => {
  withTempDir((dir) => {
    const path = join(dir, 'ckpt.safetensors');
    const { x, y } = data(11);
    const model = makeModel(1);
    const opt = new Adam(model.parameters(), { lr: 1e-2, amsgrad: true });
    trainStep(model, opt, x, y);
    trainStep(model, opt, x, y);
    const meta = { epoch: 2, step: 20, seed: 1, config: { lr: 1e-2, name: 'tiny', sizes: [1, 2, 3] } };
    saveCheckpoint(path, { model, optimizer: opt, metadata: meta });
    assert.deepEqual(readdirSync(dir), ['ckpt.safetensors'], 'no temporary file left');

    // The file as any safetensors reader sees it.
    const raw = readSafetensors(path);
    const optNames = [0, 1, 2, 3, 4, 5].flatMap((i) => ['step', 'exp_avg', 'exp_avg_sq', 'max_exp_avg_sq'].map((k) => `optimizer.state.${i}.${k}`));
    assert.deepEqual(Object.keys(raw.tensors).sort(), [...MODEL_NAMES, ...optNames].sort());
    assert.deepEqual(Object.keys(raw.metadata).sort(), ['format', 'format_version', 'metadata', 'optimizer']);
    assert.equal(raw.metadata.format, 'ssddpm-checkpoint');
    assert.equal(raw.metadata.format_version, '1');
    assert.equal(raw.metadata.metadata, JSON.stringify(meta));
    const optMeta = JSON.parse(raw.metadata.optimizer!);
    assert.equal(optMeta.className, 'Adam');
    assert.deepEqual(optMeta.paramGroups, [{ lr: 1e-2, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0, amsgrad: true, foreach: true, params: [0, 1, 2, 3, 4, 5] }]);
    assert.deepEqual(raw.tensors['optimizer.state.3.step'], { dtype: 'F32', shape: [], data: new Uint8Array(Float32Array.of(2).buffer) });
    assert.equal(raw.tensors['1.num_batches_tracked']!.dtype, 'I64');
    assert.deepEqual(raw.tensors['1.num_batches_tracked']!.shape, []);
    // The header bytes hold the metadata verbatim.
    const file = readFileSync(path);
    const headerLength = Number(file.readBigUInt64LE(0));
    const header = JSON.parse(file.subarray(8, 8 + headerLength).toString('utf8'));
    assert.deepEqual(header.__metadata__, raw.metadata);
    for (const [name, t] of model.stateDict()) assert.ok(Buffer.from(raw.tensors[name]!.data).equals(bytesOf(t)), `${name} bytes`);

    // loadCheckpoint gives tensors with the right dtypes and values.
    const before = memory().numTensors;
    const loaded = loadCheckpoint(path);
    assert.deepEqual(loaded.metadata, meta);
    assert.deepEqual([...loaded.tensors.keys()].sort(), [...MODEL_NAMES].sort());
    assert.equal(loaded.tensors.get('1.num_batches_tracked')!.dtype, 'int64');
    assert.equal(loaded.tensors.get('1.num_batches_tracked')!.item(), 2);
    assert.equal(loaded.optimizerState!.className, 'Adam');
    assert.deepEqual([...loaded.optimizerState!.state.keys()], [0, 1, 2, 3, 4, 5]);
    dispose([loaded.tensors, [...loaded.optimizerState!.state.values()]]);
    assert.equal(memory().numTensors, before);

    // Restore into a fresh model and optimizer: the same state, and the same future.
    const model2 = makeModel(2);
    const opt2 = new Adam(model2.parameters(), { lr: 0.5 });
    const n0 = memory().numTensors;
    assert.deepEqual(restoreCheckpoint(path, { model: model2, optimizer: opt2 }), meta);
    assert.equal(memory().numTensors, n0 + 6 * 4, 'only the new optimizer state stays alive');
    assert.equal(opt2.paramGroups[0]!.lr, 1e-2);
    const sd1 = model.stateDict();
    for (const [name, t] of model2.stateDict()) assert.ok(bytesOf(t).equals(bytesOf(sd1.get(name)!)), `${name} restored`);
    for (let k = 0; k < 2; k++) {
      trainStep(model, opt, x, y);
      trainStep(model2, opt2, x, y);
    }
    const sd2 = model2.stateDict();
    for (const [name, t] of model.stateDict()) assert.ok(bytesOf(t).equals(bytesOf(sd2.get(name)!)), `${name} after resuming`);

    // Without an optimizer: the model part only, and no 'optimizer' metadata.
    const path2 = join(dir, 'model-only.safetensors');
    saveCheckpoint(path2, { model });
    const raw2 = readSafetensors(path2);
    assert.deepEqual(Object.keys(raw2.tensors).sort(), [...MODEL_NAMES].sort());
    assert.deepEqual(raw2.metadata, { format: 'ssddpm-checkpoint', format_version: '1', metadata: '{}' });
    assert.throws(() => restoreCheckpoint(path2, { model: model2, optimizer: opt2 }), /model-only\.safetensors: the checkpoint holds no optimizer state/);

    for (const o of [opt, opt2]) o.dispose();
    for (const m of [model, model2]) m.dispose();
    dispose([x, y]);
  });
});

test('restoring into a different model fails naming the tensor, changing nothing', () => {
  withTempDir((dir) => {
    const path = join(dir, 'ckpt.safetensors');
    const model = makeModel(1);
    const opt = new AdamW(model.parameters());
    const { x, y } = data(3);
    trainStep(model, opt, x, y);
    saveCheckpoint(path, { model, optimizer: opt, metadata: { epoch: 1 } });

    const wider = makeModel(2, 4);
    const snapshot = wider.parameters().map(bytesOf);
    const n0 = memory().numTensors;
    assert.throws(
      () => restoreCheckpoint(path, { model: wider }),
      (err: Error) => {
        assert.equal(err.message, `${path}: loadStateDict: tensor '4.weight' has shape [3, 32] but the model expects [4, 32]`);
        return true;
      },
    );
    assert.equal(memory().numTensors, n0, 'temporaries released on failure');
    wider.parameters().forEach((p, i) => assert.ok(bytesOf(p).equals(snapshot[i]!), 'model unchanged'));

    const renamed = new Sequential(new Conv2d(1, 2, 3, { padding: 1 }), new BatchNorm2d(2), new GELU(), new Flatten(), new Flatten(), new Linear(32, 3));
    assert.throws(() => restoreCheckpoint(path, { model: renamed }), new RegExp(`^Error: ${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: loadStateDict: missing tensor '5\\.weight'`));

    // The optimizer is checked before the model is touched.
    const same = makeModel(4);
    const sameBefore = same.parameters().map(bytesOf);
    assert.throws(() => restoreCheckpoint(path, { model: same, optimizer: new Adam(same.parameters()) }), /the optimizer state is AdamW's, not Adam's/);
    const optOther = new AdamW([same.parameters()[0]!]);
    assert.throws(() => restoreCheckpoint(path, { model: same, optimizer: optOther }), /ckpt\.safetensors: AdamW\.loadStateDict: parameter group 0 has 6 parameters in the state but 1 in the optimizer/);
    same.parameters().forEach((p, i) => assert.ok(bytesOf(p).equals(sameBefore[i]!), 'model unchanged'));

    opt.dispose();
    for (const m of [model, wider, renamed, same]) m.dispose();
    dispose([x, y]);
  });
});

test('truncated files and files that are not checkpoints fail clearly', () => {
  withTempDir((dir) => {
    const path = join(dir, 'ckpt.safetensors');
    const model = makeModel(1);
    saveCheckpoint(path, { model, metadata: { epoch: 0 } });
    const size = readFileSync(path).byteLength;
    truncateSync(path, size - 10);
    assert.throws(
      () => loadCheckpoint(path),
      (err: unknown) => err instanceof SafetensorsError && err.message.startsWith(`${path}: `) && /truncated/.test(err.message),
    );
    truncateSync(path, 20);
    assert.throws(() => loadCheckpoint(path), (err: unknown) => err instanceof SafetensorsError && /larger than the file/.test(err.message));

    const plain = join(dir, 'plain.safetensors');
    writeSafetensors(plain, { w: fromTypedArray(new Float32Array([1, 2]), [2]) });
    assert.throws(() => loadCheckpoint(plain), (err: unknown) => err instanceof CheckpointError && /plain\.safetensors: not a checkpoint: the safetensors metadata has no "format"/.test(err.message));
    writeSafetensors(plain, {}, { format: 'pt' });
    assert.throws(() => loadCheckpoint(plain), /not a checkpoint: format is "pt"/);
    writeSafetensors(plain, {}, { format: 'ssddpm-checkpoint', format_version: '9' });
    assert.throws(() => loadCheckpoint(plain), /unsupported checkpoint format_version "9"/);
    writeSafetensors(plain, {}, { format: 'ssddpm-checkpoint', format_version: '1', metadata: '{oops' });
    assert.throws(() => loadCheckpoint(plain), /metadata 'metadata' is not valid JSON/);
    writeFileSync(plain, 'not safetensors at all');
    assert.throws(() => loadCheckpoint(plain), SafetensorsError);
    model.dispose();
  });
});

test('saving is atomic: no temporary files, and a failed save keeps the old file', () => {
  withTempDir((dir) => {
    const path = join(dir, 'sub', 'ckpt.safetensors');
    const model = makeModel(1);
    saveCheckpoint(path, { model, metadata: { epoch: 1 } });
    const first = readFileSync(path);
    noGrad(() => model.parameters()[0]!.add_(1));
    saveCheckpoint(path, { model, metadata: { epoch: 2 } });
    assert.deepEqual(readdirSync(join(dir, 'sub')), ['ckpt.safetensors']);
    const second = readFileSync(path);
    assert.ok(!second.equals(first));
    assert.throws(() => saveCheckpoint(path, { model, metadata: { n: 1n } }), /metadata is not JSON-serialisable/);
    const half = tensor([1, 2], { dtype: 'float16' });
    model.layers[1]!.registerBuffer('extra', half);
    assert.throws(() => saveCheckpoint(path, { model }), /saveCheckpoint: tensor '1\.extra': toRecord: dtype float16 is not supported/);
    assert.ok(readFileSync(path).equals(second), 'old content intact');
    assert.deepEqual(readdirSync(join(dir, 'sub')), ['ckpt.safetensors']);
    model.dispose();
  });
});

test('toRecord/fromRecord round-trip every supported dtype', () => {
  const cases: [DType, string][] = [
    ['float32', 'F32'],
    ['float64', 'F64'],
    ['int64', 'I64'],
    ['int32', 'I32'],
    ['int16', 'I16'],
    ['int8', 'I8'],
    ['uint8', 'U8'],
    ['bool', 'BOOL'],
  ];
  tidy(() => {
    for (const [dtype, st] of cases) {
      const t = tensor([[1, 0, 3], [4, 5, 0]], { dtype });
      const r = toRecord(t);
      assert.equal(r.dtype, st);
      assert.deepEqual(r.shape, [2, 3]);
      const back = fromRecord(r);
      assert.equal(back.dtype, dtype);
      assert.deepEqual(back.shape, [2, 3]);
      assert.deepEqual(back.toArray(), t.toArray());
    }
    const scalar = fromRecord(toRecord(tensor(7.5)));
    assert.deepEqual([scalar.shape, scalar.item()], [[], 7.5]);
    const empty = fromRecord(toRecord(tensor(new Float32Array(0), { shape: [0, 3] })));
    assert.deepEqual(empty.shape, [0, 3]);
    assert.throws(() => toRecord(tensor([1], { dtype: 'bfloat16' })), /toRecord: dtype bfloat16 is not supported/);
    assert.throws(() => fromRecord({ dtype: 'F16', shape: [1], data: new Uint8Array(2) }), /fromRecord: dtype F16 is not supported/);
  });
});

const PYTHON = '/usr/bin/python3';
const hasTorch = spawnSync(PYTHON, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;

test('PyTorch loads the checkpoint: same eval output, same next optimizer step', { skip: hasTorch ? false : 'PyTorch is not importable' }, () => {
  withTempDir((dir) => {
    const path = join(dir, 'ckpt.safetensors');
    const model = makeModel(21);
    const opt = new Adam(model.parameters(), { lr: 1e-2, weightDecay: 1e-3 });
    const { x, y } = data(5);
    trainStep(model, opt, x, y);
    trainStep(model, opt, x, y);
    saveCheckpoint(path, { model, optimizer: opt, metadata: { epoch: 2, note: 'python' } });

    const probe = randn([3, 1, 4, 4], { generator: new Generator(9) });
    model.eval();
    const expected = tidy(() => noGrad(() => model.forward(probe).toArray()));
    model.train();
    const next = data(6);
    trainStep(model, opt, next.x, next.y);

    const inputPath = join(dir, 'input.json');
    writeFileSync(
      inputPath,
      JSON.stringify({ x: probe.toArray(), x_shape: [...probe.shape], train_x: next.x.toArray(), train_x_shape: [...next.x.shape], train_y: next.y.toArray(), y_shape: [...next.y.shape] }),
    );
    const script = fileURLToPath(new URL('../scripts/fixtures/checkpoint.py', import.meta.url));
    const run = spawnSync(PYTHON, [script, path, inputPath], { encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    const out = JSON.parse(run.stdout) as { metadata: unknown; eval_output: number[]; params_after_step: Record<string, number[]>; step_dtype: string };
    assert.deepEqual(out.metadata, { epoch: 2, note: 'python' });
    assert.equal(out.step_dtype, 'torch.float32');
    assert.equal(out.eval_output.length, expected.length);
    out.eval_output.forEach((v, i) => assert.ok(Math.abs(v - expected[i]!) <= 1e-5, `eval output ${i}: ${v} vs ${expected[i]}`));
    for (const [name, p] of model.namedParameters()) {
      const theirs = out.params_after_step[name]!;
      p.toArray().forEach((v, i) => assert.ok(Math.abs(v - theirs[i]!) <= 1e-5, `${name}[${i}] after a step: ${v} vs ${theirs[i]}`));
    }
    opt.dispose();
    model.dispose();
    dispose([x, y, probe, next]);
  });
});
