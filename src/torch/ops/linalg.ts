import { tensorOp } from '../dispatch.ts';

/** Matrix product with broadcasting (torch.matmul). */
export const matmul = tensorOp('matmul');
/** Batched matrix product of [b, n, m] and [b, m, p]. */
export const bmm = tensorOp('bmm');
/** Outer product of two vectors. */
export const outer = tensorOp('outer');
