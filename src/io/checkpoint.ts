/**
 * Training checkpoints as single safetensors files, readable by Python's `safetensors` and PyTorch:
 *
 * - model tensors under their state-dict names (`0.weight`, `1.running_mean` ...), so that
 *   `model.load_state_dict({k: v for k, v in load_file(p).items() if not k.startswith('optimizer.')})`
 *   works in Python;
 * - optimizer state tensors as `optimizer.state.<paramIndex>.<key>` (indices in group order, as in
 *   PyTorch's optimizer state dicts);
 * - with an exponential moving average of the weights, its tensors as `ema.<state-dict name>`;
 * - `__metadata__` (strings only): `format` = 'ssddpm-checkpoint', `format_version` = '1', `metadata`
 *   (JSON of the caller's object: config, epoch, step, seed ...) and, with an optimizer, `optimizer`
 *   (JSON `{ className, paramGroups }`, each group's hyperparameters with its parameter indices).
 */
import type { Module } from '../nn/module.ts';
import type { ExponentialMovingAverage } from '../optim/ema.ts';
import type { Optimizer, OptimizerStateDict, ParamState } from '../optim/optimizer.ts';
import { tensor } from '../torch/ops/creation.ts';
import { allFinite } from '../torch/ops/reduction.ts';
import { dispose } from '../torch/scope.ts';
import type { TypedArrayLike } from '../torch/binding.ts';
import type { DType } from '../torch/dtype.ts';
import type { Tensor } from '../torch/tensor.ts';
import { readSafetensors, typedView, writeSafetensors, type SafetensorsDType, type TensorRecord } from './safetensors.ts';

/** The `format` metadata value that marks a file as one of these checkpoints. */
export const CHECKPOINT_FORMAT = 'ssddpm-checkpoint';
/** The layout version this code writes and reads. */
export const CHECKPOINT_FORMAT_VERSION = '1';

const OPTIMIZER_PREFIX = 'optimizer.';
const EMA_PREFIX = 'ema.';
const OPTIMIZER_STATE = /^optimizer\.state\.(0|[1-9][0-9]*)\.(.+)$/;

/** A file that is a valid safetensors file but not a usable checkpoint. */
export class CheckpointError extends Error {
  override name = 'CheckpointError';
}

/** Optimizer state as stored in a checkpoint: a state dict plus the optimizer's class name. */
export interface SavedOptimizerState extends OptimizerStateDict {
  className: string;
}

/** What {@link loadCheckpoint} returns; the caller owns (and must dispose) every tensor in it. */
export interface LoadedCheckpoint {
  /** Model tensors by state-dict name. */
  tensors: Map<string, Tensor>;
  /** The caller's metadata object given to {@link saveCheckpoint}. */
  metadata: Record<string, unknown>;
  /** Present when the checkpoint was saved with an optimizer. */
  optimizerState?: SavedOptimizerState;
  /** The averaged weights by state-dict name, when saved with an EMA. */
  ema?: Map<string, Tensor>;
}

const TO_SAFETENSORS: Partial<Record<DType, SafetensorsDType>> = {
  float32: 'F32',
  float64: 'F64',
  int64: 'I64',
  int32: 'I32',
  int16: 'I16',
  int8: 'I8',
  uint8: 'U8',
  bool: 'BOOL',
};
const SUPPORTED = Object.values(TO_SAFETENSORS).join(', ');

/**
 * A tensor's dtype, shape and bytes as a safetensors record (a CPU copy; the tensor is unchanged).
 * @throws TypeError for dtypes other than F32/F64/I64/I32/I16/I8/U8/BOOL (float16, bfloat16).
 */
export function toRecord(t: Tensor): TensorRecord {
  const dtype = TO_SAFETENSORS[t.dtype];
  if (dtype === undefined) throw new TypeError(`toRecord: dtype ${t.dtype} is not supported (supported: ${SUPPORTED}); convert the tensor first`);
  const data = t.data();
  return { dtype, shape: [...t.shape], data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
}

/**
 * A new tensor holding a record's values (copied), on `device` (CPU by default).
 * @throws TypeError for dtypes other than F32/F64/I64/I32/I16/I8/U8/BOOL (F16, BF16).
 */
export function fromRecord(r: TensorRecord, opts: { device?: string } = {}): Tensor {
  if (!Object.values(TO_SAFETENSORS).includes(r.dtype)) {
    throw new TypeError(`fromRecord: dtype ${r.dtype} is not supported (supported: ${SUPPORTED})`);
  }
  // typedView gives BigInt64Array for I64 and Uint8Array for BOOL, which `tensor` maps to int64 / bool.
  return tensor(typedView(r) as TypedArrayLike, { shape: r.shape, dtype: r.dtype === 'BOOL' ? 'bool' : undefined, device: opts.device });
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Writes `model`'s state dict, `optimizer`'s state and `metadata` to ONE safetensors file at `path`,
 * atomically (a crash leaves the previous file or the new one, never a partial one, and no temporary).
 *
 * @throws TypeError when `metadata` is not a JSON-serialisable object or a tensor has an unsupported dtype;
 *   Error when a model tensor name starts with 'optimizer.'.
 */
export function saveCheckpoint(
  path: string,
  opts: { model: Module; optimizer?: Optimizer; ema?: ReadonlyMap<string, Tensor>; metadata?: Record<string, unknown> },
): void {
  const { model, optimizer } = opts;
  const userMeta = opts.metadata ?? {};
  if (typeof userMeta !== 'object' || userMeta === null || Array.isArray(userMeta)) {
    throw new TypeError('saveCheckpoint: metadata must be a plain object');
  }
  let metadataJson: string;
  try {
    metadataJson = JSON.stringify(userMeta);
  } catch (err) {
    throw new TypeError(`saveCheckpoint: metadata is not JSON-serialisable (${describe(err)})`);
  }
  // A null prototype keeps names such as "__proto__" ordinary keys.
  const records = Object.create(null) as Record<string, TensorRecord>;
  const add = (name: string, t: Tensor): void => {
    try {
      records[name] = toRecord(t);
    } catch (err) {
      throw new TypeError(`saveCheckpoint: tensor '${name}': ${describe(err)}`);
    }
  };
  for (const [name, t] of model.stateDict()) {
    if (name.startsWith(OPTIMIZER_PREFIX) || name.startsWith(EMA_PREFIX)) throw new Error(`saveCheckpoint: model tensor '${name}' clashes with a reserved prefix ('optimizer.', 'ema.')`);
    add(name, t);
  }
  for (const [name, t] of opts.ema ?? []) add(`${EMA_PREFIX}${name}`, t);
  const meta: Record<string, string> = {
    format: CHECKPOINT_FORMAT,
    format_version: CHECKPOINT_FORMAT_VERSION,
    metadata: metadataJson,
  };
  if (optimizer !== undefined) {
    const sd = optimizer.stateDict();
    for (const [index, state] of sd.state) for (const [key, t] of Object.entries(state)) add(`${OPTIMIZER_PREFIX}state.${index}.${key}`, t);
    meta.optimizer = JSON.stringify({ className: optimizer.constructor.name, paramGroups: sd.paramGroups });
  }
  writeSafetensors(path, records, meta);
}

function parseJson(path: string, key: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new CheckpointError(`${path}: metadata '${key}' is not valid JSON (${describe(err)})`);
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Reads a checkpoint written by {@link saveCheckpoint}. Tensors are created on the CPU.
 *
 * @throws SafetensorsError (naming `path`) for a malformed or truncated file; CheckpointError when the file
 *   is not a checkpoint (no `format` metadata), has another format version, or has inconsistent optimizer
 *   entries.
 */
export function loadCheckpoint(path: string): LoadedCheckpoint {
  const { tensors: records, metadata: raw } = readSafetensors(path);
  if (!Object.hasOwn(raw, 'format')) {
    throw new CheckpointError(`${path}: not a checkpoint: the safetensors metadata has no "format" (expected "${CHECKPOINT_FORMAT}")`);
  }
  if (raw.format !== CHECKPOINT_FORMAT) {
    throw new CheckpointError(`${path}: not a checkpoint: format is ${JSON.stringify(raw.format)}, expected "${CHECKPOINT_FORMAT}"`);
  }
  if (raw.format_version !== CHECKPOINT_FORMAT_VERSION) {
    throw new CheckpointError(
      `${path}: unsupported checkpoint format_version ${JSON.stringify(raw.format_version ?? null)} (this code reads "${CHECKPOINT_FORMAT_VERSION}")`,
    );
  }
  const metadata = Object.hasOwn(raw, 'metadata') ? parseJson(path, 'metadata', raw.metadata!) : {};
  if (!isRecord(metadata)) throw new CheckpointError(`${path}: metadata 'metadata' is not a JSON object`);

  let optimizerInfo: { className: string; paramGroups: OptimizerStateDict['paramGroups'] } | undefined;
  if (Object.hasOwn(raw, 'optimizer')) {
    const info = parseJson(path, 'optimizer', raw.optimizer!);
    if (!isRecord(info) || typeof info.className !== 'string' || !Array.isArray(info.paramGroups) || !info.paramGroups.every(isRecord)) {
      throw new CheckpointError(`${path}: metadata 'optimizer' is not { className, paramGroups: [...] }`);
    }
    optimizerInfo = info as typeof optimizerInfo;
  }

  // Sort names out before creating any tensor, so that a bad name leaks nothing.
  const modelNames: string[] = [];
  const emaNames: string[] = [];
  const stateNames: [string, number, string][] = [];
  for (const name of Object.keys(records)) {
    if (name.startsWith(EMA_PREFIX)) {
      emaNames.push(name);
      continue;
    }
    if (!name.startsWith(OPTIMIZER_PREFIX)) {
      modelNames.push(name);
      continue;
    }
    const m = OPTIMIZER_STATE.exec(name);
    if (m === null) throw new CheckpointError(`${path}: tensor '${name}' is not of the form optimizer.state.<index>.<key>`);
    if (optimizerInfo === undefined) throw new CheckpointError(`${path}: tensor '${name}' but no 'optimizer' metadata`);
    stateNames.push([name, Number(m[1]), m[2]!]);
  }

  const tensors = new Map<string, Tensor>();
  const ema = new Map<string, Tensor>();
  const state = new Map<number, ParamState>();
  try {
    for (const name of modelNames) tensors.set(name, fromRecord(records[name]!));
    for (const name of emaNames) ema.set(name.slice(EMA_PREFIX.length), fromRecord(records[name]!));
    for (const [name, index, key] of stateNames) {
      let s = state.get(index);
      if (s === undefined) state.set(index, (s = {}));
      s[key] = fromRecord(records[name]!);
    }
  } catch (err) {
    dispose([tensors, ema, [...state.values()]]);
    throw err instanceof TypeError ? new CheckpointError(`${path}: ${err.message}`) : err;
  }
  const out: LoadedCheckpoint = { tensors, metadata };
  if (ema.size > 0) out.ema = ema;
  if (optimizerInfo !== undefined) {
    out.optimizerState = { className: optimizerInfo.className, paramGroups: optimizerInfo.paramGroups, state };
  }
  return out;
}

function prefixed<T>(path: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw new Error(`${path}: ${describe(err)}`, { cause: err });
  }
}

/**
 * Loads a checkpoint into `model` (strictly: every name and shape must match) and, if given, `optimizer`
 * (its class must be the one saved), then releases the loaded tensors. Nothing is copied unless both fit.
 * `device` first moves the model there (optimizer state follows its parameters).
 * `ema` restores a moving average saved with the checkpoint; `weights: 'ema'` loads the averaged weights
 * into `model` instead of the trained ones (for sampling).
 *
 * @returns the caller's metadata saved with the checkpoint.
 * @throws Error prefixed with `path` naming the first missing, unexpected or mis-shaped tensor, plus the
 *   errors of {@link loadCheckpoint}.
 */
export function restoreCheckpoint(
  path: string,
  opts: { model: Module; optimizer?: Optimizer; ema?: ExponentialMovingAverage; weights?: 'model' | 'ema'; device?: string },
): Record<string, unknown> {
  const { model, optimizer, device } = opts;
  const ckpt = loadCheckpoint(path);
  try {
    if ((opts.ema !== undefined || opts.weights === 'ema') && ckpt.ema === undefined) throw new CheckpointError(`${path}: the checkpoint holds no EMA weights`);
    const saved = ckpt.optimizerState;
    if (optimizer !== undefined) {
      if (saved === undefined) throw new CheckpointError(`${path}: the checkpoint holds no optimizer state`);
      const name = optimizer.constructor.name;
      if (saved.className !== name) throw new CheckpointError(`${path}: the optimizer state is ${saved.className}'s, not ${name}'s`);
      prefixed(path, () => optimizer.checkStateDict(saved));
    }
    const weights = opts.weights === 'ema' ? ckpt.ema! : ckpt.tensors;
    const optimizerState: [string, Tensor][] = optimizer === undefined || saved === undefined ? [] :
      [...saved.state].flatMap(([i, state]) => Object.entries(state).flatMap(([key, t]) => (t === undefined ? [] : [[`optimizer.state.${i}.${key}`, t] as [string, Tensor]])));
    for (const [name, t] of [...weights, ...(opts.ema === undefined ? [] : ckpt.ema!), ...optimizerState]) {
      if ((t.dtype === 'float32' || t.dtype === 'float64') && !allFinite(t)) {
        throw new CheckpointError(`${path}: tensor '${name}' holds non-finite values (NaN or ±∞): the file is damaged or its training diverged`);
      }
    }
    if (device !== undefined) model.to({ device });
    prefixed(path, () => model.loadStateDict(weights));
    if (opts.ema !== undefined) prefixed(path, () => opts.ema!.loadStateDict(ckpt.ema!));
    if (optimizer !== undefined) optimizer.loadStateDict(saved!);
    return ckpt.metadata;
  } finally {
    dispose([ckpt.tensors, ckpt.ema, [...(ckpt.optimizerState?.state.values() ?? [])]]);
  }
}
