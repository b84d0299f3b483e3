// Starting a distributed run, as torch.distributed.init_process_group('gloo', 'env://') does: rank 0 serves
// the TCP store on MASTER_PORT (unless torchrun's agent already does), every rank connects, the ranks check that
// they agree on the world size and that no rank is taken twice, then they join one Gloo group.
import { native } from '../torch/binding.ts';
import { DistributedError, type DistributedEnvironment } from './environment.ts';
import { ProcessGroup } from './process-group.ts';
import { Store } from './store.ts';

const LOOPBACK = /^(localhost|127\.\d+\.\d+\.\d+|::1)$/;

function sleep(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function messageOf(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0]!.trim();
}

function checkAvailable(): void {
  if (!native.distributedAvailable) {
    throw new DistributedError('this build of the addon has no c10d Gloo support: install Gloo\'s headers (Debian: `apt-get install libgloo-dev`) and run `npm run build:addon`');
  }
}

/**
 * The store of the run: served by rank 0 on MASTER_PORT (port 0: a free one, see Store.port), connected to by
 * the others, who retry until the timeout.
 * @throws DistributedError for a port in use or a store that cannot be reached in time.
 */
export function openStore(env: Pick<DistributedEnvironment, 'rank' | 'masterAddr' | 'masterPort' | 'agentStore'>, timeoutMs: number): Store {
  checkAvailable();
  const serve = env.rank === 0 && !env.agentStore;
  try {
    // torchrun counts the restarts of a run's processes; each attempt meets under its own keys.
    return new Store(env.masterAddr, env.masterPort, serve, timeoutMs, `ssddpm/attempt-${process.env.TORCHELASTIC_RESTART_COUNT ?? 0}`);
  } catch (err) {
    const cause = messageOf(err);
    if (serve && /in use|failed to listen|failed to bind/i.test(cause)) {
      throw new DistributedError(`MASTER_PORT ${env.masterPort} is in use on this machine (another run or program listens on it): choose another port`);
    }
    throw new DistributedError(`rank ${env.rank} cannot reach the store at ${env.masterAddr}:${env.masterPort} (MASTER_ADDR:MASTER_PORT) within ` +
      `${timeoutMs / 1000} s: is rank 0 running, and reachable from here? (${cause})`);
  }
}

const WORLD = 'ssddpm/world-size';
const JOINED = (rank: number) => `ssddpm/joined/${rank}`;
const TAKEN = (rank: number) => `ssddpm/rank-taken/${rank}`;

// Every rank agrees on the world size, and each rank is taken once; rank 0 learns of every disagreement too.
function checkWorld(store: Store, env: DistributedEnvironment, timeoutMs: number, abandoned?: () => string | undefined): void {
  const { rank, worldSize } = env;
  if (store.add(TAKEN(rank), 1) > 1) throw new DistributedError(`two processes were started as rank ${rank} (RANK must differ between processes)`);
  if (rank !== 0) {
    store.set(JOINED(rank), String(worldSize));
    let theirs: string;
    try {
      theirs = store.get(WORLD, timeoutMs);
    } catch (err) {
      throw new DistributedError(`rank 0 did not join the store at ${env.masterAddr}:${env.masterPort} within ${timeoutMs / 1000} s (${messageOf(err)})`);
    }
    if (Number(theirs) !== worldSize) throw new DistributedError(`WORLD_SIZE is ${worldSize} on rank ${rank} but ${theirs} on rank 0: start every process with the same WORLD_SIZE`);
    return;
  }
  store.set(WORLD, String(worldSize));
  const deadline = Date.now() + timeoutMs;
  let waiting = [...Array(worldSize).keys()].slice(1);
  while (waiting.length > 0) {
    waiting = waiting.filter((r) => !store.has(JOINED(r)));
    const gone = abandoned?.();
    if (gone !== undefined) throw new DistributedError(gone);
    if (waiting.length === 0) break;
    if (Date.now() > deadline) {
      throw new DistributedError(`${waiting.length === 1 ? 'rank' : 'ranks'} ${waiting.join(', ')} of ${worldSize} did not join within ${timeoutMs / 1000} s ` +
        `(are they started, with MASTER_ADDR=${env.masterAddr} MASTER_PORT=${env.masterPort}?)`);
    }
    sleep(50);
  }
  for (let r = 1; r < worldSize; r++) {
    const theirs = store.get(JOINED(r));
    if (Number(theirs) !== worldSize) throw new DistributedError(`rank ${r} was started with WORLD_SIZE=${theirs} but rank 0 with ${worldSize}: start every process with the same WORLD_SIZE`);
  }
}

/**
 * Joins this rank's Gloo group on an open store, after checking the world (see the file's comment). Rank 0 stops
 * waiting for the others as soon as `abandoned` gives a reason (a launcher whose worker process has ended).
 */
export function joinGroup(store: Store, env: DistributedEnvironment, timeoutMs: number, abandoned?: () => string | undefined): ProcessGroup {
  checkWorld(store, env, timeoutMs, abandoned);
  const iface = process.env.GLOO_SOCKET_IFNAME;
  // On one machine the ranks talk over loopback; across machines over the address the host name resolves to.
  const transport = iface ? { iface } : LOOPBACK.test(env.masterAddr) ? { hostname: '127.0.0.1' } : {};
  try {
    return new ProcessGroup(store, env.rank, env.worldSize, timeoutMs, transport);
  } catch (err) {
    throw new DistributedError(`rank ${env.rank} could not connect to the other ranks within ${timeoutMs / 1000} s (${messageOf(err)})` +
      (iface ? '' : '; across machines, set GLOO_SOCKET_IFNAME to the network interface to use'));
  }
}

/** torch.distributed.init_process_group('gloo', init_method='env://') for `env` (see readDistributedEnvironment). */
export function initProcessGroup(env: DistributedEnvironment, timeoutMs: number): ProcessGroup {
  const store = openStore(env, timeoutMs);
  try {
    return joinGroup(store, env, timeoutMs);
  } catch (err) {
    store.close();
    throw err;
  }
}
