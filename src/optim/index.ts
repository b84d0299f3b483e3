// Optimizers: `import { Adam, AdamW } from './optim/index.ts'`.
export {
  Optimizer,
  type Hyperparameters,
  type ParamGroup,
  type ParamGroupInput,
  type ParamState,
  type OptimizerStateDict,
} from './optimizer.ts';
export { Adam, type AdamHyperparameters, type AdamOptions } from './adam.ts';
export { AdamW } from './adamw.ts';
export { ExponentialMovingAverage } from './ema.ts';
export { updateBatchNorm } from './update-batch-norm.ts';
