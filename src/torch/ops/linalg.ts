import { tensorOp, tensorsOp } from '../dispatch.ts';
import type { Tensor } from '../tensor.ts';

/** Matrix product with broadcasting (torch.matmul). */
export const matmul = tensorOp('matmul');
/** Batched matrix product of [b, n, m] and [b, m, p]. */
export const bmm = tensorOp('bmm');
/** Outer product of two vectors. */
export const outer = tensorOp('outer');
/** Pairwise p-norm distances between the rows of [n, d] and [m, d] (torch.cdist): [n, m]. */
export const cdist = tensorOp('cdist');
const eighOp = tensorsOp('linalg_eigh');
/** Eigenvalues (ascending) and eigenvectors of a symmetric matrix (torch.linalg.eigh). */
export const eigh = (t: Tensor): [Tensor, Tensor] => eighOp(t, 'L') as [Tensor, Tensor];
