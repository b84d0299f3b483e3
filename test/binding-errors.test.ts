import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync } from 'node:fs';
import * as torch from '../src/torch/index.ts';
import { native, type GeneratorHandle, type NativeArg, type NativeResult, type TensorHandle } from '../src/torch/binding.ts';
import type { Tensor } from '../src/torch/tensor.ts';
import type { DType } from '../src/torch/dtype.ts';
import * as F from '../src/nn/functional.ts';
import { Rng, withNoLeaks } from './helpers.ts';

/** Asserts that `fn` throws a JS Error whose message matches every pattern. */
function throwsError(fn: () => unknown, ...patterns: RegExp[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof Error, `expected an Error, got ${String(e)}`);
    for (const p of patterns) assert.match(e.message, p);
    return true;
  });
}

/** A native tensor handle whose tensor has been released (what a disposed Tensor held). */
function releasedHandle(): TensorHandle {
  const h = native.fromArray(Float32Array.from([1, 2]), [2]);
  native.free(h);
  return h;
}

test('wrong shapes: conv2d on a rank-2 [3, 4] input, matmul [2, 3]@[2, 3], view of [2, 3] as [4]', () => {
  withNoLeaks(() => {
    const x = torch.ones([3, 4]);
    const w = torch.ones([2, 1, 3, 3]);
    throwsError(() => F.conv2d(x, w), /conv2d/, /rank 4/, /\[3, 4\]/);
    // Past the TypeScript check, libtorch's own message comes through.
    throwsError(() => torch.callOp('conv2d', '', x, w), /Expected 3D .*or 4D .*input to conv2d/);
    throwsError(() => torch.callOp('conv2d', '', torch.ones([1, 2, 5, 5]), w), /channels/);
    const a = torch.ones([2, 3]);
    throwsError(() => torch.matmul(a, a), /mat1 and mat2 shapes cannot be multiplied \(2x3 and 2x3\)/);
    throwsError(() => a.view([4]), /shape '\[4\]' is invalid for input of size 6/);
    throwsError(() => a.reshape([-1, -1]), /only one dimension can be inferred/);
    throwsError(() => torch.cat([a, torch.ones([2, 2])], 0), /Sizes of tensors must match/);
  });
});

test('wrong argument types: string for a tensor, fraction for an int, array for a bool, tensor for a number', () => {
  withNoLeaks(() => {
    const t = torch.ones([2, 3]);
    throwsError(() => torch.callOp('add', 'Tensor', 'abc', t), /aten::add/, /'self'/, /expected a tensor handle/);
    throwsError(() => torch.callOp('add', 'Tensor', t, 'abc'), /'other'/, /tensor/);
    throwsError(() => torch.callOp('sum', 'dim_IntList', t, [0.5]), /aten::sum/, /'dim'/, /integer \(got a fraction\)/);
    throwsError(() => t.select(0, 1.5), /'index'/, /fraction/);
    throwsError(() => t.reshape([2.5, 2]), /'shape'/, /fraction/);
    throwsError(() => torch.callOp('sum', 'dim_IntList', t, [0], [true]), /'keepdim'/, /expected a boolean, got array/);
    throwsError(() => torch.callOp('sum', 'dim_IntList', t, [0], 'yes'), /'keepdim'/, /boolean, got string/);
    throwsError(() => torch.callOp('add', 'Scalar', t, t), /'other'/, /expected a number, got tensor/);
    throwsError(() => torch.callOp('sum', 'dim_IntList', t, 'abc'), /'dim'/, /expected an array, got string/);
    throwsError(() => torch.callOp('gelu', '', t, 5), /'approximate'/, /string/);
    throwsError(() => torch.callOp('gelu', '', t, 'sideways'), /approximate/);
    throwsError(() => torch.callOp('cat', '', [t, 'x'], 0), /list element/, /tensor/);
    throwsError(() => torch.callOp('neg', '', {} as unknown as Tensor), /expected a tensor handle/);
    throwsError(() => torch.callOp('neg', '', new torch.Generator(1) as unknown as Tensor), /expected a tensor handle/);
    throwsError(() => torch.callOp('randn', 'generator', [2], t), /'generator'/, /generator handle/);
    throwsError(() => torch.callOp('zeros', '', [2], null, null, 5), /'device'/, /device string/);
    throwsError(() => torch.callOp('zeros', '', [2], null, null, 'nowhere'), /device/i);
  });
});

test('unknown operator and overload, too many arguments, a missing argument, a bad operator id', () => {
  withNoLeaks(() => {
    const t = torch.ones([2]);
    throwsError(() => torch.callOp('does_not_exist', ''), /unknown operator aten::does_not_exist/);
    throwsError(() => torch.callOp('add', 'Nope', t, t), /unknown operator aten::add\.Nope/);
    throwsError(() => new torch.Op('custom::thing').schema, /unknown operator custom::thing/);
    throwsError(() => torch.callOp('neg', '', t, 1), /aten::neg/, /at most 1 arguments, got 2/);
    throwsError(() => torch.callOp('add', 'Tensor', t, t, 1, 2, 3), /at most 3 arguments, got 5/);
    throwsError(() => torch.callOp('add', 'Tensor', t), /missing argument 'other'/);
    throwsError(() => torch.callOp('neg', ''), /missing argument 'self'/);
    throwsError(() => native.callOp(-1, []), /invalid operator id/);
    throwsError(() => native.callOp(1e9, []), /invalid operator id/);
    throwsError(() => native.callOp('neg' as unknown as number, []), /operator id/);
    throwsError(() => native.callOp(native.opId('neg', ''), t.handle as unknown as NativeArg[]), /expects an array/);
    throwsError(() => native.opId(1 as unknown as string, ''), /two strings/);
    // The schema is reachable for a correct operator.
    assert.match(new torch.Op('add', 'Tensor').schema, /^aten::add\.Tensor\(Tensor self, Tensor other, \*, Scalar alpha=1\) -> Tensor$/);
  });
});

test('a released tensor [2] is rejected by every entry point with a JS Error', () => {
  withNoLeaks(() => {
    const h = releasedHandle();
    assert.equal(native.isReleased(h), true);
    const neg = native.opId('neg', '');
    throwsError(() => native.callOp(neg, [h]), /released/);
    throwsError(() => native.callOp(native.opId('cat', ''), [[h]]), /released/);
    throwsError(() => native.toArray(h), /released/);
    throwsError(() => native.info(h), /released/);
    throwsError(() => native.backward(h), /released/);
    throwsError(() => native.grad(h), /released/);
    throwsError(() => native.setRequiresGrad(h, true), /released/);
    throwsError(() => native.setData(h, h), /released/);
    native.free(h); // freeing twice is harmless
    // Through the TypeScript layer, a disposed Tensor fails before reaching native code.
    const t = torch.ones([2]);
    t.dispose();
    throwsError(() => t.neg(), /disposed/);
    throwsError(() => torch.cat([torch.ones([2]), t]), /disposed/);
    throwsError(() => native.free({} as TensorHandle), /expected a tensor handle/);
  });
});

test('fromArray with a mismatched or malformed shape, and bad dtype names', () => {
  withNoLeaks(() => {
    const data = new Float32Array(6);
    throwsError(() => native.fromArray(data, [2, 2]), /shape holds 4 elements but the array has 6/);
    throwsError(() => torch.tensor(data, { shape: [7] }), /holds 7 elements/);
    throwsError(() => native.fromArray(data, [-2, -3]), /non-negative integers/);
    throwsError(() => native.fromArray(data, [1.5, 4]), /non-negative integers/);
    throwsError(() => native.fromArray(data, 'abc' as unknown as number[]), /shape must be an array/);
    throwsError(() => native.fromArray([1, 2] as unknown as Float32Array, [2]), /typed array/);
    throwsError(() => native.fromArray(new Uint16Array(2) as unknown as Uint8Array, [2]), /unsupported typed array/);
    // dtype names
    throwsError(() => native.fromArray(data, [6], 'float8'), /unknown dtype 'float8'/);
    throwsError(() => native.fromArray(data, [6], 'int64'), /float32 array cannot hold int64/);
    throwsError(() => torch.zeros([2], { dtype: 'complex64' as DType }), /unknown dtype 'complex64'/);
    throwsError(() => torch.tensor([1, 2], { dtype: 'float128' as DType }), /float128/);
    throwsError(() => torch.ones([2]).to({ dtype: 'int4' as DType }), /unknown dtype 'int4'/);
    // Data of a dtype without a typed array must be converted first.
    throwsError(() => torch.ones([2], { dtype: 'float16' }).data(), /unsupported dtype float16; convert it first/);
    assert.deepEqual(torch.ones([2], { dtype: 'float16' }).float().toArray(), [1, 1]);
    throwsError(() => torch.ones([-1]), /negative dimension/);
  });
});

test('autograd and generator entry points reject misuse with JS Errors', () => {
  withNoLeaks(() => {
    const i = torch.tensor([1, 2], { dtype: 'int64' });
    throwsError(() => i.requiresGrad_(), /floating point|complex/);
    throwsError(() => torch.ones([2]).sum().backward(), /does not require grad/);
    const g = new torch.Generator(1);
    throwsError(() => g.setState(torch.ones([4])), /./);
    throwsError(() => native.generatorGetState(torch.ones([1]).handle as unknown as GeneratorHandle), /generator handle/);
    throwsError(() => native.exitInferenceMode(), /without a matching/);
    throwsError(() => native.setNumThreads(0), /at least 1/);
    throwsError(() => torch.setNumThreads(1.5), /positive integer/);
  });
});

test('retaining freed host memory: a freed 24 MiB block stays in the process for the next allocation', () => {
  const glibc = (process.report.getReport() as { header: { glibcVersionRuntime?: string } }).header.glibcVersionRuntime !== undefined;
  assert.equal(torch.retainFreedHostMemory(), glibc);
  if (!glibc) return;
  // By default glibc maps a block this large on its own and unmaps it when freed (the resident size drops back).
  const mib = () => process.memoryUsage().rss / 2 ** 20;
  const t = torch.ones([6 << 20]);
  const held = mib();
  const total = t.sum();
  assert.equal(total.item(), 6 << 20);
  total.dispose();
  t.dispose();
  assert.ok(mib() > held - 4, `resident ${mib().toFixed(1)} MiB after freeing, ${held.toFixed(1)} MiB before`);
});

// ---------------------------------------------------------------------------------------------------------
// Robustness loop: random malformed calls must return or throw an Error, never crash or leak.

const REAL_OPS: [string, string][] = [
  ['add', 'Tensor'], ['add', 'Scalar'], ['sub', 'Tensor'], ['mul', 'Tensor'], ['div', 'Tensor'], ['neg', ''],
  ['exp', ''], ['sum', ''], ['sum', 'dim_IntList'], ['mean', 'dim'], ['var', 'correction'], ['max', 'dim'],
  ['argmax', ''], ['reshape', ''], ['view', ''], ['permute', ''], ['transpose', 'int'], ['squeeze', 'dim'],
  ['unsqueeze', ''], ['expand', ''], ['cat', ''], ['stack', ''], ['split', 'Tensor'], ['select', 'int'],
  ['slice', 'Tensor'], ['narrow', ''], ['index_select', ''], ['index', 'Tensor'], ['matmul', ''],
  ['linear', ''], ['conv2d', ''], ['max_pool2d', ''], ['batch_norm', ''], ['gelu', ''], ['softmax', 'int'],
  ['cross_entropy_loss', ''], ['mse_loss', ''], ['one_hot', ''], ['upsample_bilinear2d', ''],
  ['_upsample_bilinear2d_aa', ''], ['clamp', ''], ['where', 'self'], ['to', 'dtype'], ['zeros', ''],
  ['ones', ''], ['full', ''], ['randn', 'generator'], ['randint', 'low_generator'], ['add_', 'Tensor'],
  ['mul_', 'Scalar'], ['fill_', 'Scalar'], ['copy_', ''],
];
const FAKE_OPS: [string, string][] = [['not_an_op', ''], ['add', 'Bogus'], ['aten::conv9d', ''], ['', ''], ['custom::add', '']];

const FUZZ_DTYPES: DType[] = ['float32', 'float64', 'int64', 'int32', 'uint8', 'bool'];
const INTS = [-2, -1, 0, 1, 2, 3, 7];
const FRACTIONS = [0.5, -1.5, 1e-3, NaN, Infinity, -Infinity, 1e20];
const STRINGS = ['', 'abc', 'mean', 'tanh', 'none', 'cpu', 'float32'];

/** A random argument, described once and converted for either calling route. */
type FuzzArg =
  | { kind: 'tensor'; t: Tensor }
  | { kind: 'released' }
  | { kind: 'generator' }
  | { kind: 'value'; v: unknown }
  | { kind: 'list'; items: FuzzArg[] };

function randomTensor(rng: Rng, floating = false): Tensor {
  const rank = rng.int(0, 5);
  const shape = Array.from({ length: rank }, () => rng.int(0, 5));
  const dtype = floating ? rng.pick(['float32', 'float64'] as const) : rng.pick(FUZZ_DTYPES);
  const n = shape.reduce((a, b) => a * b, 1);
  const values = Array.from({ length: n }, () => (dtype === 'bool' ? rng.int(0, 2) : dtype === 'uint8' ? rng.int(0, 6) : rng.int(-3, 8) + (dtype.startsWith('float') ? rng.next() : 0)));
  const t = torch.tensor(values, { dtype, shape });
  if (dtype.startsWith('float') && rng.next() < 0.2) t.requiresGrad_();
  return t;
}

function randomArg(rng: Rng, depth: number): FuzzArg {
  const r = rng.int(0, 14);
  switch (r) {
    case 0:
    case 1:
    case 2:
      return { kind: 'tensor', t: randomTensor(rng) };
    case 3:
      return { kind: 'released' };
    case 4:
      return { kind: 'value', v: rng.pick(INTS) };
    case 5:
      return { kind: 'value', v: rng.pick(FRACTIONS) };
    case 6:
      return { kind: 'value', v: rng.pick(STRINGS) };
    case 7:
      return { kind: 'value', v: rng.next() < 0.5 };
    case 8:
    case 9: {
      if (depth > 1) return { kind: 'value', v: rng.pick(INTS) };
      const len = rng.int(0, 5);
      return { kind: 'list', items: Array.from({ length: len }, () => (rng.next() < 0.6 ? { kind: 'value', v: rng.pick(INTS) } : randomArg(rng, depth + 1))) };
    }
    case 10:
      return { kind: 'value', v: null };
    case 11:
      return { kind: 'value', v: undefined };
    case 12:
      return { kind: 'generator' };
    default:
      return { kind: 'value', v: rng.pick([{}, { a: 1 }, new Map(), () => 1, Symbol.iterator, 10n]) };
  }
}

function describeArg(a: FuzzArg): string {
  switch (a.kind) {
    case 'tensor':
      return `${a.t.dtype}[${a.t.shape.join(',')}]`;
    case 'list':
      return `[${a.items.map(describeArg).join(', ')}]`;
    case 'value':
      return typeof a.v === 'function' ? 'fn' : typeof a.v === 'symbol' || typeof a.v === 'bigint' ? String(a.v) : JSON.stringify(a.v) ?? 'undefined';
    default:
      return a.kind;
  }
}

/** Frees every tensor handle in a raw native result. */
function freeResult(r: NativeResult): number {
  if (Array.isArray(r)) return r.reduce((n: number, x) => n + freeResult(x), 0);
  if (r !== null && typeof r === 'object') {
    native.free(r);
    return 1;
  }
  return 0;
}

function isTensorLike(r: unknown): boolean {
  return r !== null && typeof r === 'object' && 'isTensor' in r;
}

test('robustness: 2500 random malformed callOp calls return or throw an Error, and leak no native tensors', () => {
  const seed = Number(process.env.FUZZ_SEED ?? 20240601);
  const iterations = Number(process.env.FUZZ_ITERS ?? 2500);
  const log = process.env.FUZZ_LOG; // a file that names each call before it runs, to find a crashing one
  const rng = new Rng(seed);
  const before = torch.memory().numTensors;
  const generator = new torch.Generator(seed);
  const ops = [...REAL_OPS, ...FAKE_OPS];
  let returned = 0;
  let threw = 0;
  const messages = new Set<string>();
  for (let i = 0; i < iterations; i++) {
    torch.tidy(() => {
      const [name, overload] = ops[rng.int(0, ops.length)]!;
      // Mostly wild calls; some start with a float tensor so that plausible calls succeed now and then.
      const plausible = rng.next() < 0.3;
      const args = Array.from({ length: plausible ? rng.int(1, 4) : rng.int(0, 9) }, (_, k) =>
        plausible && k === 0 ? { kind: 'tensor' as const, t: randomTensor(rng, true) } : randomArg(rng, 0),
      );
      const raw = rng.next() < 0.5;
      if (log !== undefined) appendFileSync(log, `${i} ${raw ? 'native' : 'ts'} ${name}.${overload}(${args.map(describeArg).join(', ')})\n`);
      const toRaw = (a: FuzzArg): unknown =>
        a.kind === 'tensor' ? a.t.handle : a.kind === 'released' ? releasedHandle() : a.kind === 'generator' ? generator.handle : a.kind === 'list' ? a.items.map(toRaw) : a.v;
      const toTs = (a: FuzzArg): unknown => {
        if (a.kind === 'tensor') return a.t;
        if (a.kind === 'released') {
          const t = torch.ones([1]);
          t.dispose();
          return t;
        }
        if (a.kind === 'generator') return generator;
        if (a.kind === 'list') return a.items.map(toTs);
        return a.v;
      };
      try {
        if (raw) {
          const r = native.callOp(native.opId(name, overload), args.map(toRaw) as NativeArg[]);
          freeResult(r);
        } else {
          const r = torch.callOp(name, overload, ...(args.map(toTs) as torch.OpArg[]));
          // Results are Tensors registered with this tidy scope.
          if (Array.isArray(r)) assert.ok(r.every((x) => !(typeof x === 'object' && x !== null) || isTensorLike(x) || Array.isArray(x)));
        }
        returned++;
      } catch (e) {
        if (!(e instanceof Error)) assert.fail(`call ${i} (${name}.${overload}) threw a non-Error: ${String(e)}`);
        assert.ok(e.message.length > 0, `call ${i} (${name}.${overload}) threw an Error without a message`);
        messages.add(e.message.split('\n')[0]!.slice(0, 60));
        threw++;
      }
    });
  }
  if (process.env.FUZZ_STATS) console.log({ returned, threw, messages: messages.size });
  assert.equal(returned + threw, iterations);
  // The loop must exercise both outcomes broadly, or it tests nothing.
  assert.ok(returned >= 50, `only ${returned} calls succeeded`);
  assert.ok(threw >= iterations / 2, `only ${threw} calls failed`);
  assert.ok(messages.size >= 30, `only ${messages.size} distinct error messages`);
  assert.equal(torch.memory().numTensors, before, 'native tensors leaked by the robustness loop');
  assert.equal(torch.memory().scopeDepth, 0);
  assert.equal(torch.isGradEnabled(), true);
  // The engine still works afterwards.
  withNoLeaks(() => {
    assert.deepEqual(torch.ones([2]).add(1).toArray(), [2, 2]);
  });
});
