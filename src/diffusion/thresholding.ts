// Keeping the predicted clean sample x̂0 inside the data's range during sampling. Static clipping clamps
// every value to the range; dynamic thresholding (Saharia et al. 2022, Imagen §2.3) first picks, per sample,
// the p-th percentile s of the values' distance from the range's centre (in half-widths): where s > 1 it
// clamps to ±s and rescales by 1/s, pulling saturated samples back inside instead of flattening them.
import { clamp } from '../torch/ops/pointwise.ts';
import { quantile } from '../torch/ops/reduction.ts';
import { tidy } from '../torch/scope.ts';
import type { Tensor } from '../torch/tensor.ts';

/** How x̂0 is kept in range: not at all, clipped, or dynamically thresholded at percentile `ratio`. */
export type X0Constraint = { kind: 'none' } | { kind: 'clip' } | { kind: 'dynamic'; ratio: number };

export type X0ConstraintKind = X0Constraint['kind'];

/** The constraint that sampling options ask for: `clip`, or `dynamicThreshold` (a percentile), or neither. */
export function x0Constraint(o: { clip?: boolean; dynamicThreshold?: number }): X0Constraint {
  if (o.dynamicThreshold !== undefined) {
    if (o.clip) throw new RangeError('clip and dynamicThreshold exclude each other');
    if (!(o.dynamicThreshold > 0 && o.dynamicThreshold <= 1)) throw new RangeError(`dynamic thresholding ratio must be in (0, 1], got ${o.dynamicThreshold}`);
    return { kind: 'dynamic', ratio: o.dynamicThreshold };
  }
  return o.clip ? { kind: 'clip' } : { kind: 'none' };
}

/**
 * x̂0 [N, ...] constrained to `range` ([min, max] of the data in model space). Returns x0 itself (clipped in
 * place) for 'none' and 'clip', a new tensor for 'dynamic'.
 */
export function constrainX0(x0: Tensor, range: readonly [number, number], c: X0Constraint): Tensor {
  if (c.kind === 'none') return x0;
  if (c.kind === 'clip') return x0.clamp_(range[0], range[1]);
  const centre = (range[0] + range[1]) / 2;
  const half = (range[1] - range[0]) / 2;
  return tidy(() => {
    const n = x0.size(0);
    const y = x0.sub(centre).div_(half);
    const s = clamp(quantile(y.abs().reshape([n, -1]), c.ratio, 1), 1);
    const bound = s.view([n, ...x0.shape.slice(1).map(() => 1)]);
    return clamp(y, bound.neg(), bound).div_(bound).mul_(half).add_(centre);
  });
}
