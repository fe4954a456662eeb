// A TypeScript program written against node-redlock v5's declarations (redlock 5.0.0-beta.2).
// test/types/compat-program.ts and .mts are this file with only the import line changed, and
// type-check against redlock-wasm/compat (test/types.test.mjs keeps them in step). Checked
// with tsconfig.node-redlock.json: node-redlock's declarations only resolve with the old
// "node10" module resolution (they are missing under node16, one of its known bugs).
import Redlock, { ExecutionError, Lock, ResourceLockedError, type ExecutionResult, type ExecutionStats, type RedlockAbortSignal, type Settings } from "redlock";
import { Cluster, Redis } from "ioredis";

export async function program(): Promise<number> {
  const clients = [new Redis(7001), new Redis(7002)];
  const cluster = new Cluster([{ host: "127.0.0.1", port: 7000 }]);
  const settings: Partial<Settings> = { retryCount: 5, retryDelay: 100 };
  const redlock = new Redlock([...clients, cluster], settings, {});
  redlock.on("error", (error: Error) => {
    if (error instanceof ResourceLockedError) return;
    console.error(error.message);
  });
  const s: Settings = redlock.settings;
  const size: number = redlock.clients.size;
  const hash: string = redlock.scripts.acquireScript.hash;
  let lock: Lock = await redlock.acquire(["a", "b"], 1000, { retryCount: 2 });
  const stats: ExecutionStats = await lock.attempts[0];
  const voted: boolean = stats.votesFor.has(clients[0]) || stats.votesAgainst.get(cluster) instanceof Error;
  const quorum: number = stats.quorumSize + stats.membershipSize;
  lock = await lock.extend(2000);
  lock = await redlock.extend(lock, 2000, { retryCount: 1 });
  const expires: number = lock.expiration;
  const resources: string[] = lock.resources;
  const value: string = lock.value;
  const same: boolean = lock.redlock === redlock;
  const result: ExecutionResult = await lock.release();
  await redlock.release(lock, { retryCount: 0 });
  const n = await redlock.using(["c"], 2000, async (signal: RedlockAbortSignal) => {
    if (signal.aborted) throw signal.error;
    return 1;
  });
  const m: number = await redlock.using(["c"], 2000, { automaticExtensionThreshold: 200 }, async (signal) =>
    signal.error ? 0 : 2,
  );
  try {
    await redlock.acquire(["x"], 10);
  } catch (e) {
    if (e instanceof ExecutionError) {
      const all: ExecutionStats[] = await Promise.all(e.attempts);
      return all.length + e.message.length;
    }
  }
  await redlock.quit();
  return n + m + size + expires + result.attempts.length + (voted && same ? 1 : 0) + s.retryCount + hash.length + quorum + resources.length + value.length;
}
