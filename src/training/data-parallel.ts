// Data-parallel training (DistributedDataParallel's scheme) over a process group: every rank holds the whole
// model and takes its rows of every global batch; the parameters start as rank 0's, the gradients are summed in
// buckets after each backward pass, so every rank takes the same optimizer step. Rank 0 alone reads and writes
// the run folder: it sends the others the run's configuration and the checkpoint to continue from.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DistributedError } from '../distributed/environment.ts';
import { GradientBuckets } from '../distributed/gradient-buckets.ts';
import type { ProcessGroup } from '../distributed/process-group.ts';
import { convertSyncBatchNorm } from '../distributed/sync-batch-norm.ts';
import type { Module } from '../nn/module.ts';
import type { RunConfig } from '../pipelines/run-dir.ts';
import { noGrad } from '../torch/grad-mode.ts';
import type { Tensor } from '../torch/tensor.ts';

/** Rank 0 refused to start the run (its reason is in the message; rank 0 reports it too). */
export class RunRefused extends DistributedError {
  override name = 'RunRefused';
}

/** What rank 0 tells the others before training: the run, or why it does not start. */
type StartMessage = { config: RunConfig; syncBatchNorm: boolean; checkpointBytes: number } | { error: string };

/** The run as the ranks other than 0 receive it; `checkpoint` is a temporary copy, removed by `dispose`. */
export interface ReceivedStart {
  config: RunConfig;
  syncBatchNorm: boolean;
  checkpoint?: string;
  dispose(): void;
}

export class DataParallel {
  #buckets: GradientBuckets | undefined;
  /** Batch norm over the global batch (see convertSyncBatchNorm) rather than each rank's rows: the run's setting, set by rank 0. */
  syncBatchNorm = false;

  constructor(readonly group: ProcessGroup) {}

  get rank(): number {
    return this.group.rank;
  }

  get worldSize(): number {
    return this.group.worldSize;
  }

  /**
   * Refuses a batching the ranks cannot share: a global batch size that is not a multiple of the world size, or a
   * last batch with fewer images than ranks.
   */
  checkBatching(count: number, batchSize: number): void {
    const n = this.worldSize;
    if (batchSize % n !== 0) {
      throw new RangeError(`the batch size ${batchSize} is the global one and must be divisible by the ${n} processes (each takes batch size / ${n}): ` +
        `use a multiple of ${n}, such as ${Math.max(n, batchSize - (batchSize % n))}`);
    }
    const last = count % batchSize;
    if (last > 0 && last < n) throw new RangeError(`the training subset of ${count} images ends with a batch of ${last}, fewer than the ${n} processes: choose another batch size`);
  }

  /** This rank's rows [start, end) of a batch of `n` (shares differ by at most one, for a short last batch). */
  rows(n: number): [number, number] {
    return [Math.floor((this.rank * n) / this.worldSize), Math.floor(((this.rank + 1) * n) / this.worldSize)];
  }

  /** Rank 0: starts the others with the run's configuration and the checkpoint file's bytes, if any. */
  sendStart(config: RunConfig, checkpoint: Uint8Array | undefined): void {
    this.#send({ config, syncBatchNorm: this.syncBatchNorm, checkpointBytes: checkpoint?.length ?? 0 });
    if (checkpoint !== undefined) this.group.broadcastBytes(checkpoint);
  }

  /** Rank 0: tells the others that the run does not start, and why. */
  sendRefusal(reason: string): void {
    try {
      this.#send({ error: reason });
    } catch {
      // They stop anyway, when rank 0 leaves.
    }
  }

  /** Ranks other than 0: the run rank 0 started (a refusal becomes a DistributedError with rank 0's reason). */
  receiveStart(): ReceivedStart {
    const message = JSON.parse(new TextDecoder().decode(this.group.broadcastBytes(undefined))) as StartMessage;
    if ('error' in message) throw new RunRefused(`rank 0 did not start the run: ${message.error}`);
    this.syncBatchNorm = message.syncBatchNorm;
    if (message.checkpointBytes === 0) return { config: message.config, syncBatchNorm: message.syncBatchNorm, dispose: () => {} };
    const bytes = this.group.broadcastBytes(undefined);
    const dir = mkdtempSync(join(tmpdir(), 'ssddpm-rank-'));
    const checkpoint = join(dir, 'checkpoint.safetensors');
    writeFileSync(checkpoint, bytes);
    return { config: message.config, syncBatchNorm: message.syncBatchNorm, checkpoint, dispose: () => rmSync(dir, { recursive: true, force: true }) };
  }

  #send(message: StartMessage): void {
    this.group.broadcastBytes(new TextEncoder().encode(JSON.stringify(message)));
  }

  /**
   * Makes `model` data-parallel: synchronised batch norm if asked, rank 0's parameters and buffers on every
   * rank, and gradient buckets with room for the loss.
   */
  prepare(model: Module): void {
    if (this.syncBatchNorm) convertSyncBatchNorm(model, this.group);
    this.group.broadcast([...model.parameters(), ...model.buffers()], 0);
    this.#buckets = new GradientBuckets(this.group, model.parameters(), 1);
  }

  /** backward() of this rank's share of the loss; with synchronised batch norm a collective too. */
  backward(loss: Tensor): void {
    if (!this.syncBatchNorm) return loss.backward();
    try {
      loss.backward();
    } catch (err) {
      throw this.group.explainFailure('the backward pass (synchronised batch norm)', err);
    }
  }

  /** Sums the gradients over the ranks (each rank's loss is its share of the global mean); returns the global loss. */
  sumGradients(localLoss: number): number {
    if (this.#buckets === undefined) throw new Error('DataParallel.prepare() first');
    return this.#buckets.sum([localLoss])[0]!;
  }

  /**
   * Averages the floating-point buffers (batch-norm running statistics) over the ranks, in place, so that every
   * rank holds what a checkpoint saves. With synchronised batch norm they are equal already.
   */
  averageBuffers(model: Module): void {
    if (this.syncBatchNorm) return;
    const floats = model.buffers().filter((b) => b.dtype === 'float32' || b.dtype === 'float64');
    if (floats.length === 0) return;
    this.group.allReduce(floats);
    noGrad(() => {
      for (const b of floats) b.div_(this.worldSize);
    });
  }

  dispose(): void {
    this.#buckets?.dispose();
  }
}
