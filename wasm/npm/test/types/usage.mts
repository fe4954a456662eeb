// Type-checked (tsc --noEmit), never run: the package's declarations as an ES module user sees
// them, with node-redis v5 and ioredis clients.
import { createClient } from "redis";
import { Redis, Cluster } from "ioredis";
import {
  Acquire,
  Config,
  ContendedError,
  LockLostError,
  NoQuorumError,
  Redlock,
  type AcquireOutcome,
  type Lease,
  type Output,
} from "redlock-wasm";

export async function highLevel(): Promise<number> {
  const a = createClient({ url: "redis://127.0.0.1:7001" });
  const b = new Redis("redis://127.0.0.1:7002");
  const c = new Cluster([{ host: "127.0.0.1", port: 7003 }]);
  const redlock = new Redlock([a, b, c], { retryCount: 5, retryDelayMs: 100 });
  const lock = await redlock.acquire(["orders:42", Buffer.from([1, 2])], 10_000);
  const left: number = lock.remainingMs();
  const extended = await lock.extend(5_000);
  const until: number = extended.validUntil;
  const released = await redlock.release(lock);
  const confirmed: boolean = released.confirmed && left > 0 && until > 0;
  try {
    await redlock.acquire("x", 100, { signal: AbortSignal.timeout(50) });
  } catch (e) {
    if (e instanceof ContendedError || e instanceof NoQuorumError) {
      const status: string = e.instances[0]?.status ?? "none";
      console.log(status, e.reason, e.attempts, confirmed);
    }
  }
  return redlock.using("k", 1_000, async (signal, held) => {
    signal.throwIfAborted();
    if (signal.reason instanceof LockLostError) return -1;
    return held.value.length;
  });
}

export function lowLevel(): AcquireOutcome {
  const op = new Acquire(new Config({ instances: 3, ttlMs: 1_000 }), "k", performance.now());
  for (;;) {
    const out: Output<AcquireOutcome> = op.pollOutput();
    switch (out.type) {
      case "send": {
        const args: (string | Uint8Array)[] = out.args;
        console.log(out.command, out.form, args.length);
        op.handleReply(out.instance, out.request, "OK", performance.now());
        break;
      }
      case "wait":
        op.handleTimeout(Math.max(out.until, performance.now()));
        break;
      case "done": {
        const outcome = out.outcome;
        if (outcome.type === "acquired") {
          const lease: Lease = outcome.lease;
          console.log(lease.validUntil, outcome.report.join());
        } else {
          const reason: "contended" | "noQuorum" | "validityExhausted" | "cancelled" | "clockWentBackwards" =
            outcome.reason;
          console.log(reason);
        }
        op.free();
        return outcome;
      }
    }
  }
}

// @ts-expect-error a misspelled option is a type error
new Config({ instances: 3, ttlMs: 1_000, retries: 2 });
// @ts-expect-error a TTL is a number of milliseconds
void new Redlock([new Redis()]).acquire("k", "10s");
