// Option parsers for commander: each rejects a bad value with a message naming the option and the value.
import { InvalidArgumentError } from 'commander';

export function positiveInt(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`expected a positive integer, got '${value}'`);
  return n;
}

/** A parser for an integer in [1, max]. */
export function positiveIntUpTo(max: number): (value: string) => number {
  return (value: string) => {
    const n = positiveInt(value);
    if (n > max) throw new InvalidArgumentError(`expected at most ${max}, got '${value}'`);
    return n;
  };
}

export function nonNegativeInt(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError(`expected a non-negative integer, got '${value}'`);
  return n;
}

export function positiveNumber(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`expected a positive number, got '${value}'`);
  return n;
}

/** A number in (0, 1). */
function openUnit(what: string): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (value.trim() === '' || !(n > 0 && n < 1)) throw new InvalidArgumentError(`expected ${what} between 0 and 1 (exclusive), got '${value}'`);
    return n;
  };
}

/** A moving-average decay in (0, 1). */
export const emaDecay = openUnit('a decay');

/** A probability in (0, 1). */
export const probability = openUnit('a probability');

const isGuidanceScale = (w: number) => Number.isFinite(w) && w >= 0;

/** One guidance scale ≥ 0. */
export function guidanceScale(value: string): number {
  const w = Number(value);
  if (value.trim() === '' || !isGuidanceScale(w)) throw new InvalidArgumentError(`expected a guidance scale ≥ 0, got '${value}'`);
  return w;
}

/** Guidance scales ≥ 0: one, or one per model of a cascade ('2' or '3,1'). */
export function guidanceScales(value: string): number[] {
  const scales = value.split(',').map((v) => Number(v));
  if (value.trim() === '' || !scales.every(isGuidanceScale)) throw new InvalidArgumentError(`expected guidance scales ≥ 0 ('2', or '3,1' for the models of a cascade), got '${value}'`);
  return scales;
}

/** A guidance interval 'lo,hi' of noise levels σ, 0 ≤ lo < hi ('inf' for no upper end). */
export function noiseInterval(value: string): [number, number] {
  const [lo, hi, ...rest] = value.split(',').map((v) => (v.trim() === 'inf' ? Infinity : v.trim() === '' ? NaN : Number(v)));
  if (rest.length > 0 || !(lo! >= 0 && hi! > lo!)) throw new InvalidArgumentError(`expected noise levels 'lo,hi' with 0 ≤ lo < hi (e.g. '0.5,5' or '1,inf'), got '${value}'`);
  return [lo!, hi!];
}

/** The n-step loss: 'n,weight' (e.g. '3,0.5'): n a positive integer, the weight positive. */
export function nStepLoss(value: string): { steps: number; weight: number } {
  const [n, w, ...rest] = value.split(',');
  const steps = Number(n);
  const weight = Number(w);
  if (rest.length > 0 || !Number.isInteger(steps) || steps < 1 || !(weight > 0 && Number.isFinite(weight))) {
    throw new InvalidArgumentError(`expected 'steps,weight' with a positive integer and a positive weight (e.g. '3,0.5'), got '${value}'`);
  }
  return { steps, weight };
}

/** '0-9', '3', '1,3,5', '0-4,7' → label list; each label in 0..numClasses−1. */
export function labelList(value: string, numClasses = 10): number[] {
  const out: number[] = [];
  for (const part of value.split(',')) {
    const m = /^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$/.exec(part);
    if (m === null) throw new InvalidArgumentError(`expected labels like '0-9' or '1,3,5', got '${value}'`);
    const a = Number(m[1]);
    const b = m[2] === undefined ? a : Number(m[2]);
    if (b < a) throw new InvalidArgumentError(`label range '${part.trim()}' runs backwards`);
    for (let l = a; l <= b; l++) {
      if (l >= numClasses) throw new InvalidArgumentError(`label ${l} is outside 0..${numClasses - 1}`);
      out.push(l);
    }
  }
  return out;
}

/** 'a,b,c' → the names, each non-empty, none twice. */
export function nameList(value: string): string[] {
  const names = value.split(',').map((s) => s.trim());
  if (names.some((n) => n === '')) throw new InvalidArgumentError(`expected comma-separated names, got '${value}'`);
  const twice = names.find((n, i) => names.indexOf(n) !== i);
  if (twice !== undefined) throw new InvalidArgumentError(`'${twice}' is named twice`);
  return names;
}

/** 'small-run,upscaler-run' → the two folders. */
export function runPair(value: string): [string, string] {
  const parts = value.split(',').map((s) => s.trim());
  if (parts.length !== 2 || parts.some((p) => p === '')) throw new InvalidArgumentError(`expected SMALL_RUN,UPSCALER_RUN, got '${value}'`);
  return [parts[0]!, parts[1]!];
}

/** Guide runs, one per model of the pipeline: 'RUN', or 'SMALL_GUIDE,UPSCALER_GUIDE' with an empty entry for none. */
export function guideRuns(value: string): (string | undefined)[] {
  const parts = value.split(',').map((s) => s.trim());
  if (parts.length > 2 || parts.every((p) => p === '')) throw new InvalidArgumentError(`expected RUN, or SMALL_GUIDE,UPSCALER_GUIDE for a cascade (one may be empty), got '${value}'`);
  return parts.map((p) => (p === '' ? undefined : p));
}

export function device(value: string): string {
  if (!/^(cpu|cuda(:\d+)?)$/.test(value)) throw new InvalidArgumentError(`expected 'cpu', 'cuda' or 'cuda:N', got '${value}'`);
  return value;
}
