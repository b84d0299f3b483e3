// Where the time goes (torch.autograd.profiler on the CPU): libtorch records when every operator, autograd
// function and user range starts and ends, on every thread the work runs on (the backward pass's included);
// here the records are paired into ranges and summed by name, each with its own time (outside the ranges it
// called) beside its total.
import { performance } from 'node:perf_hooks';
import { native } from './binding.ts';

/** One operator (or autograd function) over a profiled call, summed over its calls. */
export interface OpProfile {
  name: string;
  calls: number;
  /** Microseconds inside it but outside what it called. */
  selfUs: number;
  /** Microseconds inside it, what it called included. */
  totalUs: number;
}

export interface Profile {
  /** By own time, largest first. */
  ops: OpProfile[];
  /** Microseconds of the profiled call as a whole, as the caller saw it. */
  wallUs: number;
}

let profiling = false;

/** Runs `fn` (synchronous) under libtorch's profiler and returns its result with where its time went. */
export function profile<T>(fn: () => T): { result: T; profile: Profile } {
  if (profiling) throw new Error('profile: already profiling (profiles do not nest)');
  native.startProfiler();
  profiling = true;
  let rows: ReturnType<typeof native.stopProfiler>;
  let result: T;
  let wallUs: number;
  const start = performance.now();
  try {
    result = fn();
    wallUs = (performance.now() - start) * 1000;
  } finally {
    rows = native.stopProfiler();
    profiling = false;
  }
  return { result, profile: { ops: summarize(rows), wallUs } };
}

interface OpenRange {
  name: string;
  id: number;
  start: number;
  childUs: number;
}

/** Pairs each thread's range starts and ends (innermost first) and sums them by name. */
function summarize(rows: readonly [string, boolean, number, number, number][]): OpProfile[] {
  const byName = new Map<string, OpProfile>();
  const stacks = new Map<number, OpenRange[]>();
  for (const [name, isStart, us, thread, id] of rows) {
    let stack = stacks.get(thread);
    if (stack === undefined) stacks.set(thread, (stack = []));
    if (isStart) {
      stack.push({ name, id, start: us, childUs: 0 });
      continue;
    }
    // An end closes the innermost open range of its id; ranges left open inside it end with it.
    const at = stack.findLastIndex((r) => r.id === id);
    if (at < 0) continue;
    const range = stack[at]!;
    stack.length = at;
    const totalUs = us - range.start;
    const parent = stack.at(-1);
    if (parent !== undefined) parent.childUs += totalUs;
    const op = byName.get(range.name) ?? { name: range.name, calls: 0, selfUs: 0, totalUs: 0 };
    op.calls += 1;
    op.selfUs += totalUs - range.childUs;
    op.totalUs += totalUs;
    byName.set(range.name, op);
  }
  return [...byName.values()].sort((a, b) => b.selfUs - a.selfUs);
}
