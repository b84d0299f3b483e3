import { native } from './binding.ts';

/** Runs `fn` with gradient recording off (torch.no_grad). */
export function noGrad<T>(fn: () => T): T {
  const previous = native.setGradEnabled(false);
  try {
    return fn();
  } finally {
    native.setGradEnabled(previous);
  }
}

/** Runs `fn` with gradient recording on, e.g. inside a `noGrad` block. */
export function enableGrad<T>(fn: () => T): T {
  const previous = native.setGradEnabled(true);
  try {
    return fn();
  } finally {
    native.setGradEnabled(previous);
  }
}

/**
 * Runs `fn` in inference mode (torch.inference_mode): faster than `noGrad`, but tensors it creates can
 * never enter autograd later.
 */
export function inferenceMode<T>(fn: () => T): T {
  native.enterInferenceMode();
  try {
    return fn();
  } finally {
    native.exitInferenceMode();
  }
}

/** Whether gradient recording is on. */
export function isGradEnabled(): boolean {
  const previous = native.setGradEnabled(true);
  native.setGradEnabled(previous);
  return previous;
}
