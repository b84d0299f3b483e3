// Data-parallel gradient reduction, as DistributedDataParallel does it: the gradients are flattened into a few
// buckets of contiguous memory, each all-reduced in one collective and copied back. Here the buckets are reduced
// after backward() returns, not overlapped with it (the binding has no per-gradient autograd hooks).
import { noGrad } from '../torch/grad-mode.ts';
import { tensor, zeros } from '../torch/ops/creation.ts';
import { keep, tidy } from '../torch/scope.ts';
import type { Tensor } from '../torch/tensor.ts';
import type { ProcessGroup } from './process-group.ts';

/** DistributedDataParallel's default bucket size: 25 MB of float32. */
export const DEFAULT_BUCKET_ELEMENTS = (25 * 1024 * 1024) / 4;

interface Bucket {
  params: Tensor[];
  flat: Tensor;
}

export class GradientBuckets {
  readonly #buckets: Bucket[] = [];

  /**
   * Buckets for `params` (same order and shapes on every rank), in reverse order as DDP fills them; `extra`
   * scalars (a loss, a sample count) ride along in the last bucket.
   */
  constructor(
    readonly group: ProcessGroup,
    params: readonly Tensor[],
    readonly extra = 0,
    bucketElements = DEFAULT_BUCKET_ELEMENTS,
  ) {
    let current: Tensor[] = [];
    let size = 0;
    const close = (extraHere: number) => {
      if (current.length === 0 && extraHere === 0) return;
      const device = (current[0] ?? params[0])?.device;
      this.#buckets.push({ params: current, flat: keep(zeros([size + extraHere], { device })) });
      current = [];
      size = 0;
    };
    for (const p of [...params].reverse()) {
      if (size > 0 && size + p.numel > bucketElements) close(0);
      current.push(p);
      size += p.numel;
    }
    close(extra);
  }

  get bucketCount(): number {
    return this.#buckets.length;
  }

  /**
   * Sums every parameter's gradient over the ranks, in place (a parameter without one counts as zero and gets
   * the sum), and `extra` with them; returns the summed extras.
   */
  sum(extra: readonly number[] = []): number[] {
    if (extra.length !== this.extra) throw new RangeError(`GradientBuckets.sum: expected ${this.extra} extra values, got ${extra.length}`);
    let sums: number[] = [];
    noGrad(() => {
      this.#buckets.forEach((bucket, i) => {
        const last = i === this.#buckets.length - 1;
        tidy(() => {
          let offset = 0;
          for (const p of bucket.params) {
            const slot = bucket.flat.narrow(0, offset, p.numel);
            const g = p.grad;
            if (g === null) slot.zero_();
            else slot.copy_(g.reshape([-1]));
            offset += p.numel;
          }
          if (last && this.extra > 0) bucket.flat.narrow(0, offset, this.extra).copy_(tensor(Float32Array.from(extra), { device: bucket.flat.device }));
          this.group.allReduce([bucket.flat]);
          offset = 0;
          for (const p of bucket.params) {
            const summed = bucket.flat.narrow(0, offset, p.numel).view(p.shape);
            const g = p.grad;
            if (g === null) p.grad = summed.clone();
            else g.copy_(summed);
            offset += p.numel;
          }
          if (last && this.extra > 0) sums = bucket.flat.narrow(0, offset, this.extra).toArray();
        });
      });
    });
    return sums;
  }

  dispose(): void {
    for (const b of this.#buckets) b.flat.dispose();
    this.#buckets.length = 0;
  }
}
