// Elementwise arithmetic with broadcasting. A number operand uses the Scalar overload (no temporary tensor).
import { inplaceOp, tensorOp } from '../dispatch.ts';
import type { Tensor } from '../tensor.ts';

type Operand = Tensor | number;

const addT = tensorOp('add', 'Tensor');
const addS = tensorOp('add', 'Scalar');
const subT = tensorOp('sub', 'Tensor');
const subS = tensorOp('sub', 'Scalar');
const rsubS = tensorOp('rsub', 'Scalar');
const mulT = tensorOp('mul', 'Tensor');
const mulS = tensorOp('mul', 'Scalar');
const divT = tensorOp('div', 'Tensor');
const divS = tensorOp('div', 'Scalar');
const powS = tensorOp('pow', 'Tensor_Scalar');
const powT = tensorOp('pow', 'Tensor_Tensor');
const maximumT = tensorOp('maximum');
const minimumT = tensorOp('minimum');
const clampS = tensorOp('clamp');
const clampT = tensorOp('clamp', 'Tensor');
const whereT = tensorOp('where', 'self');
const lerpS = tensorOp('lerp', 'Scalar');
const eqT = tensorOp('eq', 'Tensor');
const eqS = tensorOp('eq', 'Scalar');
const gtT = tensorOp('gt', 'Tensor');
const gtS = tensorOp('gt', 'Scalar');
const ltT = tensorOp('lt', 'Tensor');
const ltS = tensorOp('lt', 'Scalar');
const geS = tensorOp('ge', 'Scalar');
const leS = tensorOp('le', 'Scalar');
const addcmulOp = tensorOp('addcmul');

export const add = (a: Tensor, b: Operand, alpha = 1): Tensor => (typeof b !== 'number' ? addT(a, b, alpha) : addS(a, b, alpha));
export const sub = (a: Tensor, b: Operand, alpha = 1): Tensor => (typeof b !== 'number' ? subT(a, b, alpha) : subS(a, b, alpha));
/** `b - a` for a number b. */
export const rsub = (a: Tensor, b: number): Tensor => rsubS(a, b);
export const mul = (a: Tensor, b: Operand): Tensor => (typeof b !== 'number' ? mulT(a, b) : mulS(a, b));
export const div = (a: Tensor, b: Operand): Tensor => (typeof b !== 'number' ? divT(a, b) : divS(a, b));
export const pow = (a: Tensor, b: Operand): Tensor => (typeof b !== 'number' ? powT(a, b) : powS(a, b));
export const maximum = (a: Tensor, b: Tensor): Tensor => maximumT(a, b);
export const minimum = (a: Tensor, b: Tensor): Tensor => minimumT(a, b);
/** Limits values to [min, max]; either bound may be omitted (null). */
export const clamp = (a: Tensor, min: Operand | null, max: Operand | null = null): Tensor =>
  (min !== null && typeof min !== 'number') || (max !== null && typeof max !== 'number') ? clampT(a, min, max) : clampS(a, min, max);
/** `cond ? a : b` elementwise. */
export const where = (cond: Tensor, a: Tensor, b: Tensor): Tensor => whereT(cond, a, b);
/** a + w·(b − a). */
/** a + value · t1 · t2 in one pass (broadcasting). */
export const addcmul = (a: Tensor, t1: Tensor, t2: Tensor, value = 1): Tensor => addcmulOp(a, t1, t2, value);
export const lerp = (a: Tensor, b: Tensor, w: number): Tensor => lerpS(a, b, w);
export const eq = (a: Tensor, b: Operand): Tensor => (typeof b !== 'number' ? eqT(a, b) : eqS(a, b));
export const gt = (a: Tensor, b: Operand): Tensor => (typeof b !== 'number' ? gtT(a, b) : gtS(a, b));
export const lt = (a: Tensor, b: Operand): Tensor => (typeof b !== 'number' ? ltT(a, b) : ltS(a, b));
export const ge = (a: Tensor, b: number): Tensor => geS(a, b);
export const le = (a: Tensor, b: number): Tensor => leS(a, b);

export const neg = tensorOp('neg');
export const abs = tensorOp('abs');
export const sign = tensorOp('sign');
export const exp = tensorOp('exp');
export const log = tensorOp('log');
export const sqrt = tensorOp('sqrt');
export const rsqrt = tensorOp('rsqrt');
export const square = tensorOp('square');
export const sin = tensorOp('sin');
export const cos = tensorOp('cos');
export const tanh = tensorOp('tanh');
export const sigmoid = tensorOp('sigmoid');
export const reciprocal = tensorOp('reciprocal');
export const floor = tensorOp('floor');
export const round = tensorOp('round');
export const isfinite = tensorOp('isfinite');
export const logicalNot = tensorOp('logical_not');

// In place: the result lands in `a`, which is returned.
const addT_ = inplaceOp('add_', 'Tensor');
const addS_ = inplaceOp('add_', 'Scalar');
const subT_ = inplaceOp('sub_', 'Tensor');
const subS_ = inplaceOp('sub_', 'Scalar');
const mulT_ = inplaceOp('mul_', 'Tensor');
const mulS_ = inplaceOp('mul_', 'Scalar');
const divT_ = inplaceOp('div_', 'Tensor');
const divS_ = inplaceOp('div_', 'Scalar');
const clampS_ = inplaceOp('clamp_');
const addcmulOp_ = inplaceOp('addcmul_');
const addcdivOp_ = inplaceOp('addcdiv_');
const lerpS_ = inplaceOp('lerp_', 'Scalar');
const copyOp_ = inplaceOp('copy_');
const fillS_ = inplaceOp('fill_', 'Scalar');
const zeroOp_ = inplaceOp('zero_');
const sqrtOp_ = inplaceOp('sqrt_');

export const add_ = (a: Tensor, b: Operand, alpha = 1): Tensor => (typeof b !== 'number' ? addT_(a, b, alpha) : addS_(a, b, alpha));
export const sub_ = (a: Tensor, b: Operand, alpha = 1): Tensor => (typeof b !== 'number' ? subT_(a, b, alpha) : subS_(a, b, alpha));
export const mul_ = (a: Tensor, b: Operand): Tensor => (typeof b !== 'number' ? mulT_(a, b) : mulS_(a, b));
export const div_ = (a: Tensor, b: Operand): Tensor => (typeof b !== 'number' ? divT_(a, b) : divS_(a, b));
export const clamp_ = (a: Tensor, min: number | null, max: number | null = null): Tensor => clampS_(a, min, max);
/** a += value · t1 · t2 */
export const addcmul_ = (a: Tensor, t1: Tensor, t2: Tensor, value = 1): Tensor => addcmulOp_(a, t1, t2, value);
/** a += value · t1 / t2 */
export const addcdiv_ = (a: Tensor, t1: Tensor, t2: Tensor, value = 1): Tensor => addcdivOp_(a, t1, t2, value);
export const lerp_ = (a: Tensor, b: Tensor, w: number): Tensor => lerpS_(a, b, w);
export const copy_ = (a: Tensor, src: Tensor): Tensor => copyOp_(a, src);
export const fill_ = (a: Tensor, value: number): Tensor => fillS_(a, value);
export const zero_ = (a: Tensor): Tensor => zeroOp_(a);
export const sqrt_ = (a: Tensor): Tensor => sqrtOp_(a);
