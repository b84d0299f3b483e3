import { type DType, scalarType } from '../dtype.ts';
import { tensorOp, tensorsOp } from '../dispatch.ts';
import type { Tensor } from '../tensor.ts';

export type Dims = number | readonly number[];

const sumAll = tensorOp('sum');
const sumDim = tensorOp('sum', 'dim_IntList');
const meanAll = tensorOp('mean');
const meanDim = tensorOp('mean', 'dim');
const varDim = tensorOp('var', 'correction');
const stdDim = tensorOp('std', 'correction');
const maxAll = tensorOp('max');
const minAll = tensorOp('min');
const maxDimOp = tensorsOp('max', 'dim');
const minDimOp = tensorsOp('min', 'dim');
const amaxOp = tensorOp('amax');
const aminOp = tensorOp('amin');
const argmaxOp = tensorOp('argmax');
const argminOp = tensorOp('argmin');
const logsumexpOp = tensorOp('logsumexp');
const normOp = tensorOp('norm', 'ScalarOpt_dim');
const quantileOp = tensorOp('quantile', 'scalar');
const allOp = tensorOp('all');
const isfiniteOp = tensorOp('isfinite');

const dimList = (d: Dims): readonly number[] => (typeof d === 'number' ? [d] : d);

/** Sum of all elements, or over `dim`. */
export function sum(t: Tensor, dim?: Dims, keepdim = false, dtype?: DType): Tensor {
  return dim === undefined ? sumAll(t, scalarType(dtype)) : sumDim(t, dimList(dim), keepdim, scalarType(dtype));
}

export function mean(t: Tensor, dim?: Dims, keepdim = false): Tensor {
  return dim === undefined ? meanAll(t) : meanDim(t, dimList(dim), keepdim);
}

/** Variance; `correction` 1 (default) is the unbiased estimate, 0 the population variance. */
export function variance(t: Tensor, dim?: Dims, keepdim = false, correction = 1): Tensor {
  return varDim(t, dim === undefined ? null : dimList(dim), correction, keepdim);
}

export function std(t: Tensor, dim?: Dims, keepdim = false, correction = 1): Tensor {
  return stdDim(t, dim === undefined ? null : dimList(dim), correction, keepdim);
}

export const max = (t: Tensor): Tensor => maxAll(t);
export const min = (t: Tensor): Tensor => minAll(t);
/** Values and int64 indices of the maximum along `dim`. */
export const maxDim = (t: Tensor, dim: number, keepdim = false): [Tensor, Tensor] => maxDimOp(t, dim, keepdim) as [Tensor, Tensor];
export const minDim = (t: Tensor, dim: number, keepdim = false): [Tensor, Tensor] => minDimOp(t, dim, keepdim) as [Tensor, Tensor];
export const amax = (t: Tensor, dim: Dims, keepdim = false): Tensor => amaxOp(t, dimList(dim), keepdim);
export const amin = (t: Tensor, dim: Dims, keepdim = false): Tensor => aminOp(t, dimList(dim), keepdim);
export const argmax = (t: Tensor, dim?: number, keepdim = false): Tensor => argmaxOp(t, dim ?? null, keepdim);
export const argmin = (t: Tensor, dim?: number, keepdim = false): Tensor => argminOp(t, dim ?? null, keepdim);
export const logsumexp = (t: Tensor, dim: Dims, keepdim = false): Tensor => logsumexpOp(t, dimList(dim), keepdim);
/** p-norm over `dim` (all elements when absent). */
/** The q-quantile (0 ≤ q ≤ 1, linear interpolation) of all elements or along `dim`. */
export const quantile = (t: Tensor, q: number, dim?: number, keepdim = false): Tensor => quantileOp(t, q, dim ?? null, keepdim);
export const norm = (t: Tensor, p = 2, dim?: Dims, keepdim = false): Tensor => normOp(t, p, dim === undefined ? [] : dimList(dim), keepdim);

/** Whether every element is true (non-zero), as a 0-d bool tensor. */
export function all(t: Tensor): Tensor {
  return allOp(t);
}

/** Whether every element of `t` is finite (no NaN, no ±∞). */
export function allFinite(t: Tensor): boolean {
  const finite = isfiniteOp(t);
  const every = allOp(finite);
  const answer = every.toArray()[0];
  finite.dispose();
  every.dispose();
  return Boolean(answer);
}
const kthvalueOp = tensorsOp('kthvalue');
/** The k-th smallest values (1-based k) along `dim` and their indices (torch.kthvalue). */
export const kthvalue = (t: Tensor, k: number, dim = -1, keepdim = false): [Tensor, Tensor] => kthvalueOp(t, k, dim, keepdim) as [Tensor, Tensor];
