// Deterministic release of native memory, after TensorFlow.js: `tidy(fn)` frees every tensor created
// inside `fn` except those it returns or that are `keep`-ed (parameters, buffers, optimizer state).
// Native finalizers remain as a safety net only: V8 does not see libtorch's allocations as pressure.
import { native } from './binding.ts';
import type { Tensor } from './tensor.ts';

const scopes: Set<Tensor>[] = [];

/** Registers a new tensor with the innermost open scope, if any. */
export function track(t: Tensor): void {
  const top = scopes[scopes.length - 1];
  if (top !== undefined) top.add(t);
}

function collect(value: unknown, into: Set<Tensor>, seen: Set<unknown>): void {
  if (value === null || typeof value !== 'object' || seen.has(value)) return;
  seen.add(value);
  if (isTensor(value)) {
    into.add(value);
  } else if (Array.isArray(value)) {
    for (const v of value) collect(v, into, seen);
  } else if (value instanceof Map) {
    for (const v of value.values()) collect(v, into, seen);
  } else {
    const proto = Object.getPrototypeOf(value);
    if (proto === Object.prototype || proto === null) {
      for (const v of Object.values(value)) collect(v, into, seen);
    }
  }
}

function isTensor(value: object): value is Tensor {
  return (value as { isTensor?: unknown }).isTensor === true;
}

/**
 * Runs `fn` and releases every tensor it created, except the tensors in its result (a tensor, or arrays,
 * maps and plain objects holding tensors), which move to the enclosing scope. Synchronous functions only.
 */
export function tidy<T>(fn: () => T): T {
  const scope = new Set<Tensor>();
  scopes.push(scope);
  let result: T | undefined;
  let ok = false;
  try {
    result = fn();
    if (result instanceof Promise) throw new Error('tidy: fn must be synchronous (it returned a Promise)');
    ok = true;
    return result;
  } finally {
    scopes.pop();
    const survivors = new Set<Tensor>();
    if (ok) collect(result, survivors, new Set());
    for (const t of scope) {
      if (survivors.has(t)) track(t);
      else if (!t.kept) t.dispose();
    }
  }
}

/** Marks a tensor as long-lived: no `tidy` scope will release it. Returns it. */
export function keep<T extends Tensor>(t: T): T {
  t.kept = true;
  return t;
}

/**
 * f(x), then x's handle released unless it is one of `spare`: a chain of layers frees each activation as soon
 * as the next exists instead of at the end of the enclosing tidy (autograd holds what backward needs itself).
 */
export function consume(x: Tensor, f: (t: Tensor) => Tensor, spare: readonly Tensor[] = []): Tensor {
  const y = f(x);
  if (!spare.includes(x)) x.dispose();
  return y;
}

/** Releases every tensor in `container` (a tensor, or arrays/maps/plain objects holding tensors). */
export function dispose(container: unknown): void {
  const found = new Set<Tensor>();
  collect(container, found, new Set());
  for (const t of found) t.dispose();
}

export interface MemoryInfo {
  /** Native tensors alive in the addon (including those not yet collected by a finalizer). */
  numTensors: number;
  /** Bytes of native memory reported to V8 (`process.memoryUsage().external` includes it). */
  externalBytes: number;
  /** Open `tidy` scopes. */
  scopeDepth: number;
}

export function memory(): MemoryInfo {
  return { numTensors: native.liveTensors(), externalBytes: process.memoryUsage().external, scopeDepth: scopes.length };
}
