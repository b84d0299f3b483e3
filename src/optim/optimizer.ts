// The Optimizer base, after torch.optim.Optimizer: parameter groups with their own hyperparameters,
// per-parameter state created lazily by `step()`, and state dicts in PyTorch's layout (parameters named by
// their index in group order) so that checkpoints can resume training exactly.
import { noGrad } from '../torch/grad-mode.ts';
import { keep } from '../torch/scope.ts';
import type { Tensor } from '../torch/tensor.ts';

/** Hyperparameters of one parameter group (learning rate, betas ...); values must be JSON-serialisable. */
export type Hyperparameters = object;

/** A parameter group: its tensors and its hyperparameters. */
export type ParamGroup<H extends Hyperparameters = Hyperparameters> = H & { params: Tensor[] };

/** A parameter group as given to a constructor: hyperparameters it leaves out come from the defaults. */
export type ParamGroupInput<H extends Hyperparameters = Hyperparameters> = Partial<H> & { params: readonly Tensor[] };

/** One parameter's state: named tensors (`step`, `exp_avg` ...). */
export type ParamState = Record<string, Tensor>;

/**
 * An optimizer's state as PyTorch lays it out: `state` maps a parameter's index (counted across groups,
 * in group order) to its state tensors; each group lists its parameters by index.
 */
export interface OptimizerStateDict<H extends Hyperparameters = Hyperparameters> {
  state: Map<number, ParamState>;
  paramGroups: (H & { params: number[] })[];
}

function isTensor(value: unknown): value is Tensor {
  return typeof value === 'object' && value !== null && (value as { isTensor?: unknown }).isTensor === true;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

const fmtShape = (s: readonly number[]): string => `[${s.join(', ')}]`;

/**
 * Base class of optimizers. Subclasses implement `step()` and may override `validateGroup` to reject bad
 * hyperparameters; the state of a parameter is created lazily on its first step.
 */
export abstract class Optimizer<H extends Hyperparameters = Hyperparameters> {
  /** Hyperparameters for groups that do not set their own. */
  readonly defaults: Readonly<H>;
  /** The parameter groups, each with every hyperparameter filled in. */
  readonly paramGroups: ParamGroup<H>[] = [];
  /** Per-parameter state, created by the first `step()` that updates the parameter. */
  readonly state = new Map<Tensor, ParamState>();

  /**
   * @param params the tensors to optimise, or parameter groups with their own hyperparameters.
   * @param defaults hyperparameters for whatever the groups leave out.
   */
  constructor(params: readonly Tensor[] | readonly ParamGroupInput<H>[], defaults: H) {
    this.defaults = Object.freeze({ ...defaults });
    const list = [...params] as unknown[];
    if (list.length === 0) throw new RangeError(`${this.constructor.name}: got an empty parameter list`);
    if (list.every(isTensor)) this.addParamGroup({ params: list } as unknown as ParamGroupInput<H>);
    else for (const g of list as ParamGroupInput<H>[]) this.addParamGroup(g);
  }

  /** Checks a group's hyperparameters; subclasses throw an Error naming the bad value. */
  protected validateGroup(_group: ParamGroup<H>): void {}

  /** Adds a group (as `torch.optim.Optimizer.add_param_group`); a tensor may belong to one group only. */
  addParamGroup(input: ParamGroupInput<H>): void {
    const name = this.constructor.name;
    if (typeof input !== 'object' || input === null || !Array.isArray(input.params)) {
      throw new TypeError(`${name}: a parameter group must be an object with a 'params' array`);
    }
    const params = [...input.params];
    if (params.length === 0) throw new RangeError(`${name}: parameter group ${this.paramGroups.length} is empty`);
    const seen = new Set<Tensor>();
    for (const g of this.paramGroups) for (const p of g.params) seen.add(p);
    params.forEach((p, i) => {
      if (!isTensor(p)) throw new TypeError(`${name}: parameter ${i} of group ${this.paramGroups.length} is not a Tensor`);
      if (seen.has(p)) throw new RangeError(`${name}: parameter ${i} of group ${this.paramGroups.length} appears more than once`);
      seen.add(p);
    });
    // An explicit `undefined` means "use the default", as an absent key does.
    const given = Object.fromEntries(Object.entries(input).filter(([k, v]) => k !== 'params' && v !== undefined));
    const group = { ...this.defaults, ...given, params } as ParamGroup<H>;
    this.validateGroup(group);
    this.paramGroups.push(group);
  }

  /** Every parameter, in group order (the order state-dict indices count). */
  parameters(): Tensor[] {
    return this.paramGroups.flatMap((g) => g.params);
  }

  /** Drops (default, as PyTorch 2) or zeroes every parameter's gradient. */
  zeroGrad(setToNone = true): void {
    for (const p of this.parameters()) {
      if (setToNone) {
        p.grad = null;
        continue;
      }
      const g = p.grad;
      if (g !== null) {
        noGrad(() => g.zero_());
        g.dispose();
      }
    }
  }

  /** Updates the parameters from their gradients; those whose `grad` is null are left alone. */
  abstract step(): void;

  /**
   * The state in PyTorch's layout. The tensors are the live state tensors, not copies: serialise them
   * before the next `step()` if a snapshot is wanted.
   */
  stateDict(): OptimizerStateDict<H> {
    const state = new Map<number, ParamState>();
    const paramGroups: (H & { params: number[] })[] = [];
    let index = 0;
    for (const group of this.paramGroups) {
      const { params, ...hyper } = group;
      const indices: number[] = [];
      for (const p of params) {
        const s = this.state.get(p);
        if (s !== undefined) state.set(index, { ...s });
        indices.push(index++);
      }
      paramGroups.push({ ...structuredClone(hyper), params: indices } as unknown as H & { params: number[] });
    }
    return { state, paramGroups };
  }

  /**
   * Checks that `sd` fits this optimizer (group count and sizes, state indices, tensor shapes) without
   * changing anything; throws an Error saying what does not fit.
   */
  checkStateDict(sd: OptimizerStateDict<H>): void {
    const name = `${this.constructor.name}.loadStateDict`;
    if (typeof sd !== 'object' || sd === null || !(sd.state instanceof Map) || !Array.isArray(sd.paramGroups)) {
      throw new TypeError(`${name}: expected { state: Map, paramGroups: [] }`);
    }
    if (sd.paramGroups.length !== this.paramGroups.length) {
      throw new RangeError(`${name}: the state has ${sd.paramGroups.length} parameter groups but the optimizer has ${this.paramGroups.length}`);
    }
    const byIndex = new Map<number, Tensor>();
    sd.paramGroups.forEach((saved, gi) => {
      const own = this.paramGroups[gi]!.params;
      if (!Array.isArray(saved.params) || saved.params.length !== own.length) {
        const n = Array.isArray(saved.params) ? saved.params.length : 'no';
        throw new RangeError(`${name}: parameter group ${gi} has ${n} parameters in the state but ${own.length} in the optimizer`);
      }
      saved.params.forEach((idx, pi) => {
        if (!Number.isSafeInteger(idx) || idx < 0) throw new RangeError(`${name}: group ${gi} lists an invalid parameter index ${String(idx)}`);
        if (byIndex.has(idx)) throw new RangeError(`${name}: parameter index ${idx} appears more than once`);
        byIndex.set(idx, own[pi]!);
      });
      const { params: _indices, ...hyper } = saved;
      this.validateGroup({ ...this.paramGroups[gi]!, ...hyper });
    });
    for (const [idx, s] of sd.state) {
      const p = byIndex.get(idx);
      if (p === undefined) throw new RangeError(`${name}: state for parameter ${idx}, which no group lists`);
      for (const [key, v] of Object.entries(s)) {
        if (!isTensor(v)) throw new TypeError(`${name}: state '${key}' of parameter ${idx} is not a Tensor`);
        if (v.isDisposed) throw new Error(`${name}: state '${key}' of parameter ${idx} has been disposed`);
        // `step` is a scalar; everything else is shaped like its parameter.
        const expected = key === 'step' ? null : p.shape;
        if (expected !== null && !sameShape(v.shape, expected)) {
          throw new RangeError(`${name}: state '${key}' of parameter ${idx} has shape ${fmtShape(v.shape)} but the parameter has shape ${fmtShape(expected)}`);
        }
        if (key === 'step' && v.numel !== 1) throw new RangeError(`${name}: state 'step' of parameter ${idx} has ${v.numel} elements, expected 1`);
      }
    }
  }

  /**
   * Replaces the state and hyperparameters with those of `sd` (from `stateDict()`, possibly of another
   * optimizer or a checkpoint). Values are copied: existing state tensors keep their identity, new ones are
   * created on the parameter's device and dtype (`step` stays a CPU float32 scalar, as in PyTorch).
   * Nothing changes unless every check passes (see `checkStateDict`).
   */
  loadStateDict(sd: OptimizerStateDict<H>): void {
    this.checkStateDict(sd);
    const byIndex = new Map<number, Tensor>();
    sd.paramGroups.forEach((saved, gi) => saved.params.forEach((idx, pi) => byIndex.set(idx, this.paramGroups[gi]!.params[pi]!)));
    noGrad(() => {
      const loaded = new Set<Tensor>();
      for (const [idx, saved] of sd.state) {
        const p = byIndex.get(idx)!;
        loaded.add(p);
        const old = this.state.get(p) ?? {};
        const next: ParamState = {};
        for (const [key, v] of Object.entries(saved)) {
          const dst = old[key];
          const target = key === 'step' ? { dtype: 'float32' as const, device: 'cpu' } : { dtype: p.dtype, device: p.device };
          if (dst === v) {
            next[key] = dst;
          } else if (dst !== undefined && sameShape(dst.shape, v.shape) && dst.dtype === target.dtype && dst.device === target.device) {
            dst.copy_(v);
            next[key] = dst;
          } else {
            next[key] = keep(v.to({ ...target, copy: true }));
          }
        }
        for (const [key, t] of Object.entries(old)) if (next[key] !== t) t.dispose();
        this.state.set(p, next);
      }
      for (const [p, s] of [...this.state]) {
        if (loaded.has(p)) continue;
        for (const t of Object.values(s)) t.dispose();
        this.state.delete(p);
      }
    });
    sd.paramGroups.forEach((saved, gi) => {
      const { params: _indices, ...hyper } = saved;
      Object.assign(this.paramGroups[gi]!, structuredClone(hyper));
    });
  }

  /** Releases every state tensor; the optimizer starts afresh on its next step. */
  dispose(): void {
    for (const s of this.state.values()) for (const t of Object.values(s)) t.dispose();
    this.state.clear();
  }
}
