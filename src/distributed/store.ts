// c10d's TCPStore: the key-value server (on rank 0, or torchrun's agent) where processes meet, and where a
// failing rank leaves word of what happened.
import { native } from '../torch/binding.ts';

export class Store {
  #id: number | undefined;

  /**
   * Connects to (or, as `isServer`, serves) a store at host:port; port 0 serves on a free port. Keys are kept
   * under `prefix` (c10d's PrefixStore), so that a restarted attempt on a store that lives on (torchrun's agent's)
   * starts afresh.
   */
  constructor(
    readonly host: string,
    port: number,
    readonly isServer: boolean,
    readonly timeoutMs: number,
    readonly prefix = '',
  ) {
    this.#id = native.distStoreCreate(host, port, isServer, timeoutMs, prefix);
  }

  /** The native store, for the process group built on it. */
  get id(): number {
    if (this.#id === undefined) throw new Error('the store has been closed');
    return this.#id;
  }

  /** The port served or connected to (the one picked when asked for port 0). */
  get port(): number {
    return native.distStorePort(this.id);
  }

  set(key: string, value: string): void {
    native.distStoreSet(this.id, key, value);
  }

  /** The key's value, waiting for it up to `timeoutMs` (the store's timeout by default). */
  get(key: string, timeoutMs = this.timeoutMs): string {
    return native.distStoreGet(this.id, key, timeoutMs);
  }

  /** Whether every key is set, without waiting. */
  has(...keys: string[]): boolean {
    return native.distStoreCheck(this.id, keys);
  }

  /** Adds `delta` to the counter `key` (created at 0) and returns its new value. */
  add(key: string, delta: number): number {
    return native.distStoreAdd(this.id, key, delta);
  }

  close(): void {
    if (this.#id !== undefined) native.distStoreClose(this.#id);
    this.#id = undefined;
  }
}
