// AdamW (Loshchilov & Hutter, 2019) as torch.optim.AdamW (PyTorch 1.13): Adam whose weight decay shrinks
// the parameters directly (p *= 1 − lr·weightDecay) instead of entering the moment estimates.
import type { Tensor } from '../torch/tensor.ts';
import { adamDefaults, adamStep, validateAdamGroup, type AdamHyperparameters, type AdamOptions } from './adam.ts';
import { Optimizer, type ParamGroup, type ParamGroupInput } from './optimizer.ts';

/**
 * Adam with decoupled weight decay. Same state as {@link Adam}.
 *
 * Defaults: lr 1e-3, betas [0.9, 0.999], eps 1e-8, weightDecay 1e-2, amsgrad false, foreach true.
 */
export class AdamW extends Optimizer<AdamHyperparameters> {
  constructor(params: readonly Tensor[] | readonly ParamGroupInput<AdamHyperparameters>[], opts: AdamOptions = {}) {
    super(params, adamDefaults(opts, 1e-2));
  }

  protected override validateGroup(group: ParamGroup<AdamHyperparameters>): void {
    validateAdamGroup(this.constructor.name, group);
  }

  /** Updates every parameter that has a gradient. */
  step(): void {
    adamStep(this, true);
  }
}
