// Batch-norm statistics for weights that were never trained as they are (torch.optim.swa_utils.update_bn).
// A moving average of the weights inherits running statistics measured on other weights, the last
// iterate's; for this U-Net that mismatch alone took the noise-prediction loss from 0.065 to 1.4.
import type { Module } from '../nn/module.ts';
import { BatchNorm2d } from '../nn/layers.ts';
import { noGrad } from '../torch/grad-mode.ts';

/**
 * Recomputes the running statistics of every BatchNorm2d in `model` as the plain average over the batches
 * that `forwardBatches` passes through it (in training mode, without gradients). Momenta and the training
 * mode are restored afterwards. A model without batch norm is left as it is.
 */
export function updateBatchNorm(model: Module, forwardBatches: () => void): void {
  const norms = model.namedModules().map(([, m]) => m).filter((m): m is BatchNorm2d => m instanceof BatchNorm2d && m.runningMean !== null);
  if (norms.length === 0) return;
  const momenta = norms.map((bn) => bn.momentum);
  const modes = model.namedModules().map(([, m]) => [m, m.training] as const);
  try {
    for (const bn of norms) {
      bn.resetRunningStats();
      bn.momentum = null;
    }
    model.train();
    noGrad(forwardBatches);
  } finally {
    norms.forEach((bn, i) => (bn.momentum = momenta[i]!));
    for (const [m, training] of modes) m.training = training;
  }
}
