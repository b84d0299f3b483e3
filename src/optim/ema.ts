// An exponential moving average of a model's weights (Polyak averaging; diffusers' EMAModel, PyTorch's
// AveragedModel with an EMA update). Sampling from the averaged weights usually gives cleaner samples than
// the last iterate. Parameters are averaged; buffers (batch-norm statistics) follow the model's, which do not fit
// the averaged weights: measure them anew with updateBatchNorm before using the average (the trainer does so
// before every checkpoint).
import type { Module, StateDict } from '../nn/module.ts';
import { noGrad } from '../torch/grad-mode.ts';
import { lerp_ } from '../torch/ops/pointwise.ts';
import { keep, tidy } from '../torch/scope.ts';
import type { Tensor } from '../torch/tensor.ts';

export class ExponentialMovingAverage {
  readonly #shadow: StateDict = new Map();
  readonly #parameters = new Set<string>();

  /** Starts the average at `model`'s current state. `decay` ∈ (0, 1): the weight of the past at each update. */
  constructor(
    model: Module,
    readonly decay: number,
  ) {
    if (!(decay > 0 && decay < 1)) throw new RangeError(`EMA decay must be in (0, 1), got ${decay}`);
    for (const [name] of model.namedParameters()) this.#parameters.add(name);
    noGrad(() => {
      for (const [name, t] of model.stateDict()) this.#shadow.set(name, keep(tidy(() => t.detach().clone())));
    });
  }

  /** shadow ← decay · shadow + (1 − decay) · model for parameters; buffers copied. Call after each optimizer step. */
  update(model: Module): void {
    noGrad(() =>
      tidy(() => {
        for (const [name, t] of model.stateDict()) {
          const s = this.#shadow.get(name);
          if (s === undefined) throw new Error(`EMA: the model has a tensor '${name}' the average does not`);
          if (this.#parameters.has(name)) lerp_(s, t, 1 - this.decay);
          else s.copy_(t);
        }
      }),
    );
  }

  /** The averaged state, under the model's state-dict names (the tensors themselves: do not dispose). */
  stateDict(): StateDict {
    return new Map(this.#shadow);
  }

  /** Overwrites the average (e.g. from a checkpoint); every name must match. */
  loadStateDict(source: ReadonlyMap<string, Tensor>): void {
    for (const name of this.#shadow.keys()) if (!source.has(name)) throw new Error(`EMA state lacks '${name}'`);
    for (const name of source.keys()) if (!this.#shadow.has(name)) throw new Error(`EMA state has an unexpected tensor '${name}'`);
    noGrad(() => {
      for (const [name, s] of this.#shadow) s.copy_(source.get(name)!);
    });
  }

  /** Copies the averaged weights into `model` (for sampling). */
  copyTo(model: Module): void {
    model.loadStateDict(this.#shadow);
  }

  dispose(): void {
    for (const t of this.#shadow.values()) t.dispose();
    this.#shadow.clear();
  }
}
