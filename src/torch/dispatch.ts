// Typed access to ATen operators by name: each wrapper resolves its operator once, converts Tensor and
// Generator arguments to native handles and wraps returned handles as Tensors.
//
// tensor.ts and the op modules import each other, and op modules build their wrappers at load time. So the
// wrappers touch nothing at creation (each resolves its operator on first call) and tensor.ts registers its
// class here when it loads; whichever module is imported first, everything is in place before any call.
import { native, type NativeArg, type NativeResult, type TensorHandle } from './binding.ts';
import type { Tensor } from './tensor.ts';
import type { Generator } from './generator.ts';
import './tensor.ts';

export type OpArg = Tensor | Generator | number | boolean | string | null | undefined | readonly OpArg[];
export type OpResult = Tensor | number | boolean | string | null | undefined | OpResult[];

// `var`, not `let`: tensor.ts may register before this module's body has run (see above).
// eslint-disable-next-line no-var
var TensorClass: (new (h: TensorHandle) => Tensor) | undefined;

/** Called once by tensor.ts. */
export function registerTensorClass(cls: new (h: TensorHandle) => Tensor): void {
  TensorClass = cls;
}

function wrap(h: TensorHandle): Tensor {
  return new TensorClass!(h);
}

function toNative(a: OpArg): NativeArg {
  if (a !== null && typeof a === 'object') {
    if (Array.isArray(a)) return a.map(toNative);
    // Tensors and Generators both expose their native handle. Anything else goes through as it is, so the
    // native side rejects it by argument name instead of it turning into `undefined` (a default).
    if ('handle' in a) return (a as Tensor | Generator).handle;
  }
  return a as NativeArg;
}

function fromNative(r: NativeResult): OpResult {
  if (r === null || typeof r !== 'object') return r;
  if (Array.isArray(r)) return r.map(fromNative);
  return wrap(r as TensorHandle);
}

/** A callable ATen operator, e.g. `new Op('conv2d')` or `new Op('add', 'Tensor')`. */
export class Op {
  #id = -1;
  constructor(
    readonly name: string,
    readonly overload = '',
  ) {}

  get id(): number {
    if (this.#id < 0) this.#id = native.opId(this.name, this.overload);
    return this.#id;
  }

  /** The operator's schema, e.g. `aten::conv2d(Tensor input, Tensor weight, ...) -> Tensor`. */
  get schema(): string {
    return native.opSchema(this.id);
  }

  callRaw(args: readonly OpArg[]): NativeResult {
    return native.callOp(this.id, args.map(toNative));
  }

  call(...args: OpArg[]): OpResult {
    return fromNative(this.callRaw(args));
  }
}

/** An operator returning one tensor. */
export function tensorOp(name: string, overload = ''): (...args: OpArg[]) => Tensor {
  let op: Op | undefined;
  return (...args) => wrap((op ??= new Op(name, overload)).callRaw(args) as TensorHandle);
}

/** An operator returning a list or tuple of tensors. */
export function tensorsOp(name: string, overload = ''): (...args: OpArg[]) => Tensor[] {
  let op: Op | undefined;
  return (...args) => ((op ??= new Op(name, overload)).callRaw(args) as TensorHandle[]).map(wrap);
}

/**
 * An in-place operator (`add_`, `mul_` ...): it returns an alias of its first argument, which is dropped
 * at once so the caller keeps working with its own Tensor object.
 */
export function inplaceOp(name: string, overload = ''): (self: Tensor, ...args: OpArg[]) => Tensor {
  let op: Op | undefined;
  return (self, ...args) => {
    const alias = (op ??= new Op(name, overload)).callRaw([self, ...args]);
    if (alias !== null && typeof alias === 'object' && !Array.isArray(alias)) native.free(alias as TensorHandle);
    return self;
  };
}

/** An operator returning nothing (the `_foreach_*_` family). */
export function voidOp(name: string, overload = ''): (...args: OpArg[]) => void {
  let op: Op | undefined;
  return (...args) => {
    (op ??= new Op(name, overload)).callRaw(args);
  };
}

/** Calls any ATen operator by name, e.g. `callOp('aten::lerp', 'Scalar', a, b, 0.5)`. */
export function callOp(name: string, overload: string, ...args: OpArg[]): OpResult {
  return new Op(name, overload).call(...args);
}
