import { scalarType, type DType } from '../dtype.ts';
import { Op, tensorOp, tensorsOp } from '../dispatch.ts';
import type { Tensor } from '../tensor.ts';

const reshapeOp = tensorOp('reshape');
const viewOp = tensorOp('view');
const permuteOp = tensorOp('permute');
const transposeOp = tensorOp('transpose', 'int');
const flattenOp = tensorOp('flatten', 'using_ints');
const squeezeDim = tensorOp('squeeze', 'dim');
const squeezeAll = tensorOp('squeeze');
const unsqueezeOp = tensorOp('unsqueeze');
const expandOp = tensorOp('expand');
const repeatOp = tensorOp('repeat');
const catOp = tensorOp('cat');
const stackOp = tensorOp('stack');
const splitOp = tensorsOp('split', 'Tensor');
const splitSizesOp = tensorsOp('split_with_sizes');
const chunkOp = tensorsOp('chunk');
const sliceOp = tensorOp('slice', 'Tensor');
const narrowOp = tensorOp('narrow');
const selectOp = tensorOp('select', 'int');
const indexSelectOp = tensorOp('index_select');
const gatherOp = tensorOp('gather');
const contiguousOp = tensorOp('contiguous');
let strideOp: Op | undefined; // created on first use: dispatch.ts and this module import each other
const cloneOp = tensorOp('clone');
const detachOp = tensorOp('detach');
const toDtypeLayout = tensorOp('to', 'dtype_layout');
const flipOp = tensorOp('flip');
const maskedFillS = tensorOp('masked_fill', 'Scalar');
const indexOp = tensorOp('index', 'Tensor');

export const reshape = (t: Tensor, shape: readonly number[]): Tensor => reshapeOp(t, shape);
/** Like reshape, but never copies: fails on incompatible strides. */
export const view = (t: Tensor, shape: readonly number[]): Tensor => viewOp(t, shape);
export const permute = (t: Tensor, dims: readonly number[]): Tensor => permuteOp(t, dims);
export const transpose = (t: Tensor, dim0: number, dim1: number): Tensor => transposeOp(t, dim0, dim1);
export const flatten = (t: Tensor, startDim = 0, endDim = -1): Tensor => flattenOp(t, startDim, endDim);
export const squeeze = (t: Tensor, dim?: number): Tensor => (dim === undefined ? squeezeAll(t) : squeezeDim(t, dim));
export const unsqueeze = (t: Tensor, dim: number): Tensor => unsqueezeOp(t, dim);
/** Broadcast view to `shape` (-1 keeps a dimension). */
export const expand = (t: Tensor, shape: readonly number[]): Tensor => expandOp(t, shape);
export const repeat = (t: Tensor, repeats: readonly number[]): Tensor => repeatOp(t, repeats);
export const cat = (tensors: readonly Tensor[], dim = 0): Tensor => catOp(tensors, dim);
export const stack = (tensors: readonly Tensor[], dim = 0): Tensor => stackOp(tensors, dim);
/** Splits into pieces of `size` (the last may be smaller), or of the given sizes. */
export const split = (t: Tensor, size: number | readonly number[], dim = 0): Tensor[] =>
  typeof size === 'number' ? splitOp(t, size, dim) : splitSizesOp(t, size, dim);
export const chunk = (t: Tensor, chunks: number, dim = 0): Tensor[] => chunkOp(t, chunks, dim);
/** Elements start..end (exclusive) by step along `dim`, as Python's `t[start:end:step]`; negative indices count from the end. */
export const slice = (t: Tensor, dim: number, start?: number | null, end?: number | null, step = 1): Tensor =>
  sliceOp(t, dim, start ?? null, end ?? null, step);
export const narrow = (t: Tensor, dim: number, start: number, length: number): Tensor => narrowOp(t, dim, start, length);
/** Drops `dim`, taking element `index` along it (`t[index]` for dim 0). */
export const select = (t: Tensor, dim: number, index: number): Tensor => selectOp(t, dim, index);
export const indexSelect = (t: Tensor, dim: number, index: Tensor): Tensor => indexSelectOp(t, dim, index);
export const gather = (t: Tensor, dim: number, index: Tensor): Tensor => gatherOp(t, dim, index, false);
/** Advanced indexing `t[i0, i1, ...]` with index tensors (null keeps a dimension whole). */
export const index = (t: Tensor, indices: readonly (Tensor | null)[]): Tensor => indexOp(t, indices);
export type MemoryFormat = 'contiguous' | 'channels-last';
const MEMORY_FORMATS: Record<MemoryFormat, number> = { contiguous: 0, 'channels-last': 2 }; // c10::MemoryFormat
/** The same values laid out densely in `format` ('channels-last': NHWC order in memory for a 4-D NCHW tensor). */
export const contiguous = (t: Tensor, format: MemoryFormat = 'contiguous'): Tensor => contiguousOp(t, MEMORY_FORMATS[format]);
/** The step in memory between neighbours along `dim` (elements). */
export const stride = (t: Tensor, dim: number): number => (strideOp ??= new Op('stride', 'int')).call(t, dim) as number;
export const clone = (t: Tensor): Tensor => cloneOp(t);
/** The same data, cut from the autograd graph. */
export const detach = (t: Tensor): Tensor => detachOp(t);
export const flip = (t: Tensor, dims: readonly number[]): Tensor => flipOp(t, dims);
export const maskedFill = (t: Tensor, mask: Tensor, value: number): Tensor => maskedFillS(t, mask, value);

/** Converts dtype and/or device; returns a new tensor (an alias of `t` when nothing changes, as in PyTorch). */
export function to(t: Tensor, opts: { dtype?: DType; device?: string; copy?: boolean }): Tensor {
  return toDtypeLayout(t, scalarType(opts.dtype), null, opts.device, null, false, opts.copy ?? false);
}
