// Adam (Kingma & Ba, 2015) exactly as PyTorch 1.13 computes it (torch.optim.adam._single_tensor_adam):
// same operation order, same scalars, so results match PyTorch's float32 arithmetic. The group-wide
// `_foreach_*` path performs the very same per-element kernels, one launch per op for all parameters.
import { inplaceOp, tensorsOp, voidOp } from '../torch/dispatch.ts';
import { noGrad } from '../torch/grad-mode.ts';
import { tensor, zerosLike } from '../torch/ops/creation.ts';
import { addcdiv_, addcmul_, sqrt } from '../torch/ops/pointwise.ts';
import { keep, tidy } from '../torch/scope.ts';
import type { Tensor } from '../torch/tensor.ts';
import { Optimizer, type ParamGroup, type ParamGroupInput, type ParamState } from './optimizer.ts';

/** Hyperparameters of Adam and AdamW, per parameter group. */
export interface AdamHyperparameters {
  /** Learning rate. */
  lr: number;
  /** Decay rates of the first and second moment averages. */
  betas: [number, number];
  /** Added to the denominator for numerical stability. */
  eps: number;
  /** Adam: L2 penalty added to the gradient; AdamW: decoupled decay `p *= 1 − lr·weightDecay`. */
  weightDecay: number;
  /** Normalise by the running maximum of the second moment (Reddi et al., 2018). */
  amsgrad: boolean;
  /**
   * Update all parameters of a group with the `_foreach_*` operators (when they share a step count).
   * Results are bit-identical to the per-tensor path; only speed differs.
   */
  foreach: boolean;
}

/** Constructor options: any subset of the hyperparameters. */
export type AdamOptions = Partial<Omit<AdamHyperparameters, 'betas'>> & { betas?: readonly [number, number] };

const foreachAddScalar_ = voidOp('_foreach_add_', 'Scalar');
const foreachAddList_ = voidOp('_foreach_add_', 'List');
const foreachAddList = tensorsOp('_foreach_add', 'List');
const foreachMulScalar_ = voidOp('_foreach_mul_', 'Scalar');
const foreachDivScalar_ = voidOp('_foreach_div_', 'Scalar');
const foreachAddcmulScalar_ = voidOp('_foreach_addcmul_', 'Scalar');
const foreachAddcdivScalar_ = voidOp('_foreach_addcdiv_', 'Scalar');
const foreachMaximumList_ = voidOp('_foreach_maximum_', 'List');
const foreachSqrt = tensorsOp('_foreach_sqrt');
const maximumOut = inplaceOp('maximum', 'out');

/** Throws an Error naming the first invalid hyperparameter, in PyTorch's words (shared with AdamW). */
export function validateAdamGroup(name: string, h: AdamHyperparameters): void {
  const { lr, betas, eps, weightDecay, amsgrad, foreach } = h;
  if (typeof lr !== 'number' || !(lr >= 0) || !Number.isFinite(lr)) throw new RangeError(`${name}: invalid learning rate: ${lr}`);
  if (typeof eps !== 'number' || !(eps >= 0) || !Number.isFinite(eps)) throw new RangeError(`${name}: invalid epsilon value: ${eps}`);
  if (!Array.isArray(betas) || betas.length !== 2) throw new RangeError(`${name}: betas must be a pair of numbers, got ${JSON.stringify(betas)}`);
  betas.forEach((b, i) => {
    if (typeof b !== 'number' || !(b >= 0 && b < 1)) throw new RangeError(`${name}: invalid beta parameter at index ${i}: ${b}`);
  });
  if (typeof weightDecay !== 'number' || !(weightDecay >= 0) || !Number.isFinite(weightDecay)) {
    throw new RangeError(`${name}: invalid weight decay value: ${weightDecay}`);
  }
  if (typeof amsgrad !== 'boolean') throw new TypeError(`${name}: amsgrad must be a boolean, got ${String(amsgrad)}`);
  if (typeof foreach !== 'boolean') throw new TypeError(`${name}: foreach must be a boolean, got ${String(foreach)}`);
}

/** Fills in Adam's defaults, with the class's own default `weightDecay` (shared with AdamW). */
export function adamDefaults(opts: AdamOptions, weightDecay: number): AdamHyperparameters {
  const betas = opts.betas ?? [0.9, 0.999];
  return {
    lr: opts.lr ?? 1e-3,
    betas: (Array.isArray(betas) ? [...betas] : betas) as [number, number],
    eps: opts.eps ?? 1e-8,
    weightDecay: opts.weightDecay ?? weightDecay,
    amsgrad: opts.amsgrad ?? false,
    foreach: opts.foreach ?? true,
  };
}

/** The parameter's state, created on its first step as PyTorch does (step: a CPU float32 scalar). */
function stateOf(opt: Optimizer<AdamHyperparameters>, p: Tensor, amsgrad: boolean): ParamState {
  let s = opt.state.get(p);
  if (s === undefined) {
    s = { step: keep(tensor(0)), exp_avg: keep(zerosLike(p)), exp_avg_sq: keep(zerosLike(p)) };
    opt.state.set(p, s);
  }
  for (const key of ['step', 'exp_avg', 'exp_avg_sq']) {
    if (s[key] === undefined) throw new Error(`${opt.constructor.name}: a parameter's state lacks '${key}' (loaded from an incompatible state dict?)`);
  }
  // amsgrad may be switched on after some steps: the maximum then starts from zero.
  if (amsgrad && s.max_exp_avg_sq === undefined) s.max_exp_avg_sq = keep(zerosLike(p));
  return s;
}

/**
 * One Adam/AdamW step over every group of `opt`; `decoupled` selects AdamW's weight decay. Runs without
 * gradient recording, and releases every temporary.
 */
export function adamStep(opt: Optimizer<AdamHyperparameters>, decoupled: boolean): void {
  noGrad(() =>
    tidy(() => {
      for (const group of opt.paramGroups) stepGroup(opt, group, decoupled);
    }),
  );
}

function stepGroup(opt: Optimizer<AdamHyperparameters>, group: ParamGroup<AdamHyperparameters>, decoupled: boolean): void {
  const params: Tensor[] = [];
  const grads: Tensor[] = [];
  const states: ParamState[] = [];
  for (const p of group.params) {
    const g = p.grad;
    if (g === null) continue;
    params.push(p);
    grads.push(g);
    states.push(stateOf(opt, p, group.amsgrad));
  }
  if (params.length === 0) return;
  // The bias corrections depend on the step count, so one foreach launch needs a common count.
  const counts = states.map((s) => s.step!.item());
  if (group.foreach && counts.every((c) => c === counts[0])) foreachUpdate(group, params, grads, states, decoupled);
  else for (let i = 0; i < params.length; i++) singleUpdate(group, params[i]!, grads[i]!, states[i]!, decoupled);
}

function singleUpdate(h: AdamHyperparameters, p: Tensor, grad: Tensor, s: ParamState, decoupled: boolean): void {
  const { lr, betas, eps, weightDecay, amsgrad } = h;
  const [beta1, beta2] = betas;
  const step = s.step!.add_(1).item();
  let g = grad;
  if (weightDecay !== 0) {
    if (decoupled) p.mul_(1 - lr * weightDecay);
    else g = grad.add(p, weightDecay);
  }
  s.exp_avg!.mul_(beta1).add_(g, 1 - beta1);
  addcmul_(s.exp_avg_sq!.mul_(beta2), g, g, 1 - beta2);

  const stepSize = lr / (1 - beta1 ** step);
  const bc2Sqrt = Math.sqrt(1 - beta2 ** step);
  let second = s.exp_avg_sq!;
  if (amsgrad) {
    second = s.max_exp_avg_sq!;
    maximumOut(second, s.exp_avg_sq!, second);
  }
  const denom = sqrt(second).div_(bc2Sqrt).add_(eps);
  addcdiv_(p, s.exp_avg!, denom, -stepSize);
  // Free per-parameter temporaries now rather than at the end of the step: they are parameter-sized.
  denom.dispose();
  if (g !== grad) g.dispose();
}

function foreachUpdate(h: AdamHyperparameters, params: Tensor[], grads: Tensor[], states: ParamState[], decoupled: boolean): void {
  const { lr, betas, eps, weightDecay, amsgrad } = h;
  const [beta1, beta2] = betas;
  const steps = states.map((s) => s.step!);
  foreachAddScalar_(steps, 1);
  const step = steps[0]!.item();
  let g = grads;
  if (weightDecay !== 0) {
    if (decoupled) foreachMulScalar_(params, 1 - lr * weightDecay);
    else g = foreachAddList(grads, params, weightDecay);
  }
  const expAvgs = states.map((s) => s.exp_avg!);
  const expAvgSqs = states.map((s) => s.exp_avg_sq!);
  foreachMulScalar_(expAvgs, beta1);
  foreachAddList_(expAvgs, g, 1 - beta1);
  foreachMulScalar_(expAvgSqs, beta2);
  foreachAddcmulScalar_(expAvgSqs, g, g, 1 - beta2);

  const stepSize = lr / (1 - beta1 ** step);
  const bc2Sqrt = Math.sqrt(1 - beta2 ** step);
  let second = expAvgSqs;
  if (amsgrad) {
    second = states.map((s) => s.max_exp_avg_sq!);
    foreachMaximumList_(second, expAvgSqs);
  }
  const denom = foreachSqrt(second);
  foreachDivScalar_(denom, bc2Sqrt);
  foreachAddScalar_(denom, eps);
  foreachAddcdivScalar_(params, expAvgs, denom, -stepSize);
}

/**
 * Adam with bias correction, as torch.optim.Adam (PyTorch 1.13). `weightDecay` adds an L2 penalty to the
 * gradient; see {@link AdamW} for decoupled decay. State per parameter: `step` (float32 scalar),
 * `exp_avg`, `exp_avg_sq` and, with amsgrad, `max_exp_avg_sq`.
 *
 * Defaults: lr 1e-3, betas [0.9, 0.999], eps 1e-8, weightDecay 0, amsgrad false, foreach true.
 */
export class Adam extends Optimizer<AdamHyperparameters> {
  constructor(params: readonly Tensor[] | readonly ParamGroupInput<AdamHyperparameters>[], opts: AdamOptions = {}) {
    super(params, adamDefaults(opts, 0));
  }

  protected override validateGroup(group: ParamGroup<AdamHyperparameters>): void {
    validateAdamGroup(this.constructor.name, group);
  }

  /** Updates every parameter that has a gradient. */
  step(): void {
    adamStep(this, false);
  }
}
