// A Gloo process group (torch.distributed's ProcessGroupGloo): collectives over every rank, each bounded by
// the group's timeout. When one fails (a rank died, hung, or gave up) the error names the rank responsible,
// found through the store: a rank that fails on its own leaves its reason there (reportFailure), and the
// survivors of a collective check in, so that a rank that neither reported nor checked in is the one gone.
import { native } from '../torch/binding.ts';
import { tensor, zeros } from '../torch/ops/creation.ts';
import { noGrad } from '../torch/grad-mode.ts';
import { cat } from '../torch/ops/shape.ts';
import { tidy } from '../torch/scope.ts';
import { Tensor } from '../torch/tensor.ts';
import { DistributedError } from './environment.ts';
import type { Store } from './store.ts';

export type ReduceOp = 'sum' | 'max' | 'min';

/** How long survivors of a failed collective wait for each other to check in. */
const CHECK_IN_MS = 2000;

const FAILED = (rank: number) => `ssddpm/failed/${rank}`;

function sleep(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function messageOf(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0]!.trim();
}

function isContiguous(t: Tensor): boolean {
  let expected = 1;
  for (let d = t.ndim - 1; d >= 0; d--) {
    if (t.size(d) !== 1 && t.stride(d) !== expected) return false;
    expected *= t.size(d);
  }
  return true;
}

// One collective per dtype over the tensors flattened into one buffer, copied back (a lone contiguous tensor
// is used as it is): Gloo's list form means one tensor per device, all of one size.
function coalesced(tensors: readonly Tensor[], collective: (flat: Tensor) => void): void {
  if (tensors.length === 1 && isContiguous(tensors[0]!)) return collective(tensors[0]!);
  const byDtype = new Map<string, Tensor[]>();
  for (const t of tensors) byDtype.set(t.dtype, [...(byDtype.get(t.dtype) ?? []), t]);
  noGrad(() => {
    for (const group of byDtype.values()) {
      tidy(() => {
        const flat = cat(group.map((t) => t.reshape([-1])));
        collective(flat);
        let offset = 0;
        for (const t of group) {
          t.copy_(flat.narrow(0, offset, t.numel).view(t.shape));
          offset += t.numel;
        }
      });
    }
  });
}

export class ProcessGroup {
  #id: number | undefined;
  #failures = 0;

  /** Joins the Gloo group of `worldSize` ranks on `store` (every rank must call this); see rendezvous.ts. */
  constructor(
    readonly store: Store,
    readonly rank: number,
    readonly worldSize: number,
    readonly timeoutMs: number,
    transport: { iface?: string; hostname?: string } = {},
  ) {
    this.#id = native.distGroupCreate(store.id, rank, worldSize, timeoutMs, transport.iface ?? '', transport.hostname ?? '');
  }

  get #group(): number {
    if (this.#id === undefined) throw new DistributedError('the process group has been destroyed');
    return this.#id;
  }

  /** Reduces `tensors` (same shapes and dtypes on every rank) in place: every rank gets the result. */
  allReduce(tensors: readonly Tensor[], op: ReduceOp = 'sum'): void {
    coalesced(tensors, (flat) => this.#collective('an all-reduce', () => native.distAllReduce(this.#group, [flat.handle], op, this.timeoutMs)));
  }

  /** Copies `root`'s `tensors` into every rank's, in place. */
  broadcast(tensors: readonly Tensor[], root = 0): void {
    coalesced(tensors, (flat) => this.#collective('a broadcast', () => native.distBroadcast(this.#group, [flat.handle], root, this.timeoutMs)));
  }

  /** `root`'s bytes on every rank (others pass nothing): a length, then the bytes, as two broadcasts. */
  broadcastBytes(bytes: Uint8Array | undefined, root = 0): Uint8Array {
    if ((this.rank === root) !== (bytes !== undefined)) throw new RangeError(`broadcastBytes: the root rank ${root}, and only it, gives the bytes`);
    return tidy(() => {
      const length = tensor(new Float64Array([bytes?.length ?? 0]));
      this.broadcast([length], root);
      const n = length.item();
      const data = bytes === undefined ? zeros([n], { dtype: 'uint8' }) : tensor(bytes);
      if (n > 0) this.broadcast([data], root);
      return bytes ?? (data.data() as Uint8Array);
    });
  }

  /** Returns once every rank has called it. */
  barrier(): void {
    this.#collective('a barrier', () => native.distBarrier(this.#group, this.timeoutMs));
  }

  /**
   * The sum of `x` over ranks as a new tensor that autograd differentiates: the gradient reaching each rank's
   * `x` is the sum of every rank's output gradient (torch.distributed.nn.functional.all_reduce). The backward
   * pass is then a collective too: every rank must run it.
   */
  allReduceSumWithGrad(x: Tensor): Tensor {
    return this.#collective('an all-reduce', () => new Tensor(native.distAllReduceSumDifferentiable(this.#group, x.handle, this.timeoutMs)));
  }

  /** Leaves word that this rank stops because of `reason`, for the others' error messages. */
  reportFailure(reason: string): void {
    try {
      this.store.set(FAILED(this.rank), reason);
    } catch {
      // The store is gone with rank 0: the others learn of it from their own failed collectives.
    }
  }

  /**
   * A collective that failed, explained: which rank failed (its own reason when it left one), or which did not
   * answer. Also used for a collective run inside backward() by {@link allReduceSumWithGrad}'s gradient.
   */
  explainFailure(what: string, err: unknown): DistributedError {
    const cause = messageOf(err);
    const round = ++this.#failures;
    const others = [...Array(this.worldSize).keys()].filter((r) => r !== this.rank);
    const checkIn = (r: number) => `ssddpm/alive/${round}/${r}`;
    let culprit: string;
    try {
      this.store.set(checkIn(this.rank), '1');
      const deadline = Date.now() + CHECK_IN_MS;
      let silent = others;
      while (silent.length > 0 && Date.now() < deadline) {
        silent = silent.filter((r) => !this.store.has(checkIn(r)) && !this.store.has(FAILED(r)));
        if (silent.length > 0) sleep(100);
      }
      const failed = others.filter((r) => this.store.has(FAILED(r)));
      if (failed.length > 0) culprit = failed.map((r) => `rank ${r} failed: ${this.store.get(FAILED(r))}`).join('; ');
      else if (silent.length > 0) culprit = `${silent.length === 1 ? 'rank' : 'ranks'} ${silent.join(', ')} stopped responding (killed, hung or unreachable)`;
      else culprit = 'every rank is still there';
    } catch {
      culprit = this.rank === 0 ? 'the store failed' : 'rank 0 is gone (it serves the store, and is unreachable)';
    }
    return new DistributedError(`${culprit}; ${what} on rank ${this.rank} failed (timeout ${this.timeoutMs / 1000} s): ${cause}`);
  }

  #collective<T>(what: string, body: () => T): T {
    try {
      return body();
    } catch (err) {
      throw this.explainFailure(what, err);
    }
  }

  /** Leaves the group (every rank should, after a last barrier); the store is left open. */
  destroy(): void {
    if (this.#id !== undefined) native.distGroupDestroy(this.#id);
    this.#id = undefined;
  }
}
