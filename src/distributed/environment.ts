// Where a process stands in a distributed run, read from the environment variables torchrun sets: RANK,
// WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT (and TORCHELASTIC_USE_AGENT_STORE when torchrun's agent
// already serves the store on MASTER_PORT).

/** This process's place in a distributed run. */
export interface DistributedEnvironment {
  rank: number;
  worldSize: number;
  /** The rank among the processes of this machine (which GPU it takes). */
  localRank: number;
  /** Host and port of the rendezvous store, served by rank 0 (or by torchrun's agent). */
  masterAddr: string;
  masterPort: number;
  /** The store is already served (torchrun's agent): rank 0 connects to it instead of listening. */
  agentStore: boolean;
}

/** A distributed setting that cannot work: a bad environment variable, a port in use, an unreachable store. */
export class DistributedError extends Error {
  override name = 'DistributedError';
}

function integer(env: NodeJS.ProcessEnv, name: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const raw = env[name];
  const n = Number(raw);
  if (raw === undefined || raw.trim() === '' || !Number.isInteger(n) || n < min || n > max) {
    throw new DistributedError(`${name} must be an integer in ${min}..${max === Number.MAX_SAFE_INTEGER ? '' : max}, got '${raw ?? ''}'`);
  }
  return n;
}

/**
 * The run this process belongs to, or undefined when WORLD_SIZE is not set (a single process).
 * @throws DistributedError naming the first missing or invalid variable.
 */
export function readDistributedEnvironment(env: NodeJS.ProcessEnv = process.env): DistributedEnvironment | undefined {
  if (env.WORLD_SIZE === undefined) return undefined;
  const worldSize = integer(env, 'WORLD_SIZE', 1);
  const rank = integer(env, 'RANK', 0);
  if (rank >= worldSize) throw new DistributedError(`RANK ${rank} is not below WORLD_SIZE ${worldSize} (ranks are 0..${worldSize - 1})`);
  const localRank = env.LOCAL_RANK === undefined ? rank : integer(env, 'LOCAL_RANK', 0);
  const masterAddr = env.MASTER_ADDR?.trim() ?? '';
  if (worldSize > 1 && masterAddr === '') throw new DistributedError('MASTER_ADDR must name the host of rank 0 (e.g. 127.0.0.1 on one machine)');
  const masterPort = worldSize > 1 ? integer(env, 'MASTER_PORT', 1, 65535) : 0;
  return { rank, worldSize, localRank, masterAddr: masterAddr || '127.0.0.1', masterPort, agentStore: env.TORCHELASTIC_USE_AGENT_STORE === 'True' };
}
