// Mixed precision by dispatch (torch.autocast): inside the region, convolutions and matrix products run in a
// lower-precision type while weights, the loss and the optimizer stay float32 (PyTorch's op lists decide which
// operators cast). Gradients flow back through the casts to the float32 weights.
import { readFileSync } from 'node:fs';
import { native } from './binding.ts';
import type { DType } from './dtype.ts';

export interface AutocastOptions {
  /** The device type whose operators autocast: 'cpu' or 'cuda' (a 'cuda:N' device counts as 'cuda'). */
  device: string;
  /** The lower-precision type (default bfloat16). */
  dtype?: Extract<DType, 'bfloat16' | 'float16'>;
}

/** Runs `fn` with autocast on for `device`'s type; nests, and restores the previous state on the way out. */
export function autocast<T>(opts: AutocastOptions, fn: () => T): T {
  const type = opts.device.startsWith('cuda') ? 'cuda' : opts.device === 'cpu' ? 'cpu' : undefined;
  if (type === undefined) throw new TypeError(`autocast: device must be 'cpu' or 'cuda[:N]', got '${opts.device}'`);
  const [wasEnabled, previousDtype] = native.setAutocast(type, true, opts.dtype ?? 'bfloat16');
  native.autocastNesting(true);
  try {
    return fn();
  } finally {
    native.autocastNesting(false);
    native.setAutocast(type, wasEnabled, previousDtype);
  }
}

/**
 * Why this CPU cannot run bfloat16 fast, or undefined when it can: without AVX-512 BF16 or AMX instructions
 * oneDNN emulates bfloat16 and is slower than float32. Read from /proc/cpuinfo, so only Linux is recognised.
 */
export function cpuBfloat16Problem(cpuinfo?: string): string | undefined {
  let flags = cpuinfo;
  if (flags === undefined) {
    try {
      flags = readFileSync('/proc/cpuinfo', 'utf8');
    } catch {
      return 'cannot read /proc/cpuinfo to check for bfloat16 instructions (Linux only)';
    }
  }
  const line = /^flags\s*:(.*)$/m.exec(flags)?.[1] ?? '';
  const has = (flag: string) => new RegExp(`\\b${flag}\\b`).test(line);
  if (has('amx_bf16') || has('avx512_bf16')) return undefined;
  return 'this CPU has neither AVX-512 BF16 nor AMX-BF16 instructions: bfloat16 would be emulated, slower than float32';
}
