import { native, type TensorHandle, type TypedArrayLike } from './binding.ts';
import type { DType } from './dtype.ts';
import { track } from './scope.ts';
import * as P from './ops/pointwise.ts';
import * as R from './ops/reduction.ts';
import * as S from './ops/shape.ts';
import { matmul } from './ops/linalg.ts';
import { registerTensorClass } from './dispatch.ts';

type Operand = Tensor | number;

/**
 * An n-dimensional array in libtorch memory (NCHW for images, as in PyTorch).
 *
 * Every tensor owns a native handle. Release it with `dispose()` or let a `tidy` scope do it; kept tensors
 * (parameters, buffers, optimizer state) are never released by a scope. Shape, dtype and device are read
 * once and cached: operators never change them in place.
 */
export class Tensor {
  #handle: TensorHandle | null;
  #info: [number[], string, string, boolean] | undefined;
  /** Kept tensors survive `tidy` scopes (see `keep`). */
  kept = false;
  readonly isTensor = true;

  constructor(handle: TensorHandle) {
    this.#handle = handle;
    track(this);
  }

  /** The native handle; throws once the tensor has been disposed. */
  get handle(): TensorHandle {
    if (this.#handle === null) throw new Error('tensor has been disposed');
    return this.#handle;
  }

  get isDisposed(): boolean {
    return this.#handle === null;
  }

  /** Releases the native memory now (idempotent). Views of this tensor stay valid. */
  dispose(): void {
    if (this.#handle !== null) {
      native.free(this.#handle);
      this.#handle = null;
    }
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  #meta(): [number[], string, string, boolean] {
    if (this.#info === undefined) this.#info = native.info(this.handle);
    return this.#info;
  }

  get shape(): readonly number[] {
    return this.#meta()[0];
  }

  get dtype(): DType {
    return this.#meta()[1] as DType;
  }

  get device(): string {
    return this.#meta()[2];
  }

  get ndim(): number {
    return this.shape.length;
  }

  get numel(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }

  /** Size of dimension `dim` (negative counts from the end). */
  size(dim: number): number {
    const n = this.ndim;
    const d = dim < 0 ? dim + n : dim;
    if (d < 0 || d >= n) throw new RangeError(`size: dimension ${dim} out of range for a ${n}-D tensor`);
    return this.shape[d]!;
  }

  // ----- data -----

  /** A typed-array copy of the elements, row-major (int64 → BigInt64Array, bool → Uint8Array). */
  data(): TypedArrayLike {
    return native.toArray(this.handle);
  }

  /** Elements as plain numbers, row-major. */
  toArray(): number[] {
    const d = this.data();
    return d instanceof BigInt64Array ? Array.from(d, Number) : Array.from(d);
  }

  /** The value of a one-element tensor. */
  item(): number {
    if (this.numel !== 1) throw new RangeError(`item: tensor has ${this.numel} elements, expected 1`);
    return this.toArray()[0]!;
  }

  toString(): string {
    if (this.isDisposed) return 'Tensor(disposed)';
    const head = this.numel <= 8 ? ` ${JSON.stringify(this.toArray())}` : '';
    return `Tensor(shape=[${this.shape.join(', ')}], dtype=${this.dtype}, device=${this.device})${head}`;
  }

  // ----- autograd -----

  get requiresGrad(): boolean {
    return native.info(this.handle)[3];
  }

  /** Turns gradient tracking on or off for a leaf tensor. */
  requiresGrad_(requires = true): this {
    native.setRequiresGrad(this.handle, requires);
    return this;
  }

  get isLeaf(): boolean {
    return native.isLeaf(this.handle);
  }

  /** The accumulated gradient (a new handle each read), or null. */
  get grad(): Tensor | null {
    const g = native.grad(this.handle);
    return g === null ? null : new Tensor(g);
  }

  set grad(g: Tensor | null) {
    native.setGrad(this.handle, g === null ? null : g.handle);
  }

  /** Back-propagates from this tensor (a scalar unless `grad` is given). */
  backward(grad?: Tensor, opts: { retainGraph?: boolean } = {}): void {
    native.backward(this.handle, grad?.handle ?? null, opts.retainGraph ?? false);
  }

  detach(): Tensor {
    return S.detach(this);
  }

  /** Makes this tensor refer to `src`'s data (shape, dtype and device included), keeping its identity. */
  setData(src: Tensor): void {
    native.setData(this.handle, src.handle);
    this.#info = undefined;
  }

  // ----- conversion and shape -----

  to(opts: { dtype?: DType; device?: string; copy?: boolean }): Tensor {
    return S.to(this, opts);
  }
  float(): Tensor {
    return S.to(this, { dtype: 'float32' });
  }
  long(): Tensor {
    return S.to(this, { dtype: 'int64' });
  }
  clone(): Tensor {
    return S.clone(this);
  }
  contiguous(format?: S.MemoryFormat): Tensor {
    return S.contiguous(this, format);
  }
  /** The step in memory between neighbours along `dim`, in elements. */
  stride(dim: number): number {
    return S.stride(this, dim);
  }
  reshape(shape: readonly number[]): Tensor {
    return S.reshape(this, shape);
  }
  view(shape: readonly number[]): Tensor {
    return S.view(this, shape);
  }
  permute(dims: readonly number[]): Tensor {
    return S.permute(this, dims);
  }
  transpose(dim0: number, dim1: number): Tensor {
    return S.transpose(this, dim0, dim1);
  }
  flatten(startDim = 0, endDim = -1): Tensor {
    return S.flatten(this, startDim, endDim);
  }
  squeeze(dim?: number): Tensor {
    return S.squeeze(this, dim);
  }
  unsqueeze(dim: number): Tensor {
    return S.unsqueeze(this, dim);
  }
  expand(shape: readonly number[]): Tensor {
    return S.expand(this, shape);
  }
  slice(dim: number, start?: number | null, end?: number | null, step = 1): Tensor {
    return S.slice(this, dim, start, end, step);
  }
  narrow(dim: number, start: number, length: number): Tensor {
    return S.narrow(this, dim, start, length);
  }
  select(dim: number, index: number): Tensor {
    return S.select(this, dim, index);
  }
  indexSelect(dim: number, index: Tensor): Tensor {
    return S.indexSelect(this, dim, index);
  }
  split(size: number | readonly number[], dim = 0): Tensor[] {
    return S.split(this, size, dim);
  }

  // ----- arithmetic -----

  add(other: Operand, alpha = 1): Tensor {
    return P.add(this, other, alpha);
  }
  sub(other: Operand, alpha = 1): Tensor {
    return P.sub(this, other, alpha);
  }
  mul(other: Operand): Tensor {
    return P.mul(this, other);
  }
  div(other: Operand): Tensor {
    return P.div(this, other);
  }
  pow(exponent: Operand): Tensor {
    return P.pow(this, exponent);
  }
  neg(): Tensor {
    return P.neg(this);
  }
  abs(): Tensor {
    return P.abs(this);
  }
  exp(): Tensor {
    return P.exp(this);
  }
  log(): Tensor {
    return P.log(this);
  }
  sqrt(): Tensor {
    return P.sqrt(this);
  }
  square(): Tensor {
    return P.square(this);
  }
  round(): Tensor {
    return P.round(this);
  }
  clamp(min: Operand | null, max: Operand | null = null): Tensor {
    return P.clamp(this, min, max);
  }
  matmul(other: Tensor): Tensor {
    return matmul(this, other);
  }
  eq(other: Operand): Tensor {
    return P.eq(this, other);
  }

  // ----- reductions -----

  sum(dim?: R.Dims, keepdim = false): Tensor {
    return R.sum(this, dim, keepdim);
  }
  mean(dim?: R.Dims, keepdim = false): Tensor {
    return R.mean(this, dim, keepdim);
  }
  max(): Tensor {
    return R.max(this);
  }
  min(): Tensor {
    return R.min(this);
  }
  argmax(dim?: number, keepdim = false): Tensor {
    return R.argmax(this, dim, keepdim);
  }

  // ----- in place -----

  add_(other: Operand, alpha = 1): this {
    P.add_(this, other, alpha);
    return this;
  }
  sub_(other: Operand, alpha = 1): this {
    P.sub_(this, other, alpha);
    return this;
  }
  mul_(other: Operand): this {
    P.mul_(this, other);
    return this;
  }
  div_(other: Operand): this {
    P.div_(this, other);
    return this;
  }
  clamp_(min: number | null, max: number | null = null): this {
    P.clamp_(this, min, max);
    return this;
  }
  copy_(src: Tensor): this {
    P.copy_(this, src);
    return this;
  }
  fill_(value: number): this {
    P.fill_(this, value);
    return this;
  }
  zero_(): this {
    P.zero_(this);
    return this;
  }
}

registerTensorClass(Tensor);
