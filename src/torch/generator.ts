import { native, type GeneratorHandle } from './binding.ts';
import { Tensor } from './tensor.ts';

/**
 * A seeded random-number generator (torch.Generator). Pass it to random ops for streams that are
 * independent of the global one; its state can be saved and restored for exact resumption.
 */
export class Generator {
  readonly handle: GeneratorHandle;
  readonly device: string;

  constructor(seed: number, device = 'cpu') {
    if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`Generator: seed must be a non-negative integer, got ${seed}`);
    this.handle = native.newGenerator(seed, device);
    this.device = device;
  }

  /** The seed it was created (or last re-seeded) with. */
  get initialSeed(): number {
    return native.generatorSeed(this.handle);
  }

  /** A uint8 tensor holding the full generator state. */
  getState(): Tensor {
    return new Tensor(native.generatorGetState(this.handle));
  }

  setState(state: Tensor): void {
    native.generatorSetState(this.handle, state.handle);
  }
}

/** Seeds the global generators (torch.manual_seed). */
export function manualSeed(seed: number): void {
  if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`manualSeed: seed must be a non-negative integer, got ${seed}`);
  native.manualSeed(seed);
}
