// The async Redlock against real redis-server instances, with each client library: node-redis
// v5, node-redis v4 and ioredis. Instances are killed on purpose; every test starts its own.

import assert from "node:assert/strict";
import { after, describe, test } from "node:test";

import { ContendedError, LockLostError, NoQuorumError, Redlock, RedlockError } from "redlock-wasm";

import { connectAll, eventually, keysLeft, libraries, sleep, startCluster } from "./harness.mjs";

const WIDE = { timeout: 60_000 };
const cleanups = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** A fresh cluster of `n` and one client per instance with `library`. */
async function setup(n, library) {
  const cluster = await startCluster(n);
  const clients = await connectAll(library, cluster.urls);
  const cleanup = async () => {
    clients.close();
    await cluster.close();
  };
  cleanups.push(cleanup);
  return { cluster, clients, cleanup };
}

let unique = 0;
const key = (name) => `test:${process.pid}:${name}:${++unique}`;

for (const library of Object.keys(libraries)) {
  describe(library, () => {
    test("acquire, extend and release on three instances leave no key behind", WIDE, async () => {
      const { cluster, clients, cleanup } = await setup(3, library);
      // Wide per-instance timeouts throughout: a loaded machine must not make these flaky.
      const redlock = new Redlock(clients, { instanceTimeoutMs: 1_000 });
      const k = key("basic");
      const lock = await redlock.acquire(k, 5_000);
      assert.match(lock.value, /^[0-9a-f]{32}$/);
      assert.ok(lock.isValid());
      assert.ok(lock.remainingMs() > 4_000 && lock.remainingMs() <= 5_000);
      // The third SET may still be on its way: the lock was decided by the first two.
      await eventually(async () => (await keysLeft(cluster, k)).length === 3);
      const before = lock.validUntil;
      await sleep(20);
      assert.equal(await lock.extend(10_000), lock);
      assert.ok(lock.validUntil > before + 4_000, "extend moved the validity");
      assert.equal(lock.ttlMs, 10_000);
      const released = await lock.release();
      assert.deepEqual(released, {
        confirmed: true,
        deleted: 3,
        instances: [0, 1, 2].map((instance) => ({ instance, status: "yes" })),
      });
      await eventually(async () => (await keysLeft(cluster, k)).length === 0);
      await assert.rejects(lock.release(), /already released/);
      await assert.rejects(lock.extend(), /already released/);
      await cleanup();
    });

    test("several keys lock all-or-nothing through the scripts (NOSCRIPT, then EVAL)", WIDE, async () => {
      const { cluster, clients, cleanup } = await setup(3, library);
      const redlock = new Redlock(clients, { retryCount: 0, instanceTimeoutMs: 1_000 });
      const [a, b, c] = [key("a"), key("b"), key("c")];
      const binary = Buffer.from([0xff, 0x00, 0x01]);
      const lock = await redlock.acquire([a, b, binary], 5_000);
      // A quorum holds both keys (the third instance's EVAL may have been dropped once the
      // decision was made).
      const held = await keysLeft(cluster, `test:${process.pid}:*`);
      assert.ok(held.filter((x) => x === a).length >= 2, `${held}`);
      assert.equal(held.filter((x) => x === a).length, held.filter((x) => x === b).length);
      // b is taken, so a lock on [c, b] must not take c either.
      await assert.rejects(redlock.acquire([c, b], 5_000), ContendedError);
      // Wherever the script did take both, the failed attempt's release removes them.
      await eventually(async () => (await keysLeft(cluster, c)).length === 0);
      await lock.extend(6_000);
      await lock.release();
      await eventually(async () => (await keysLeft(cluster, `test:${process.pid}:*`)).length === 0);
      await cleanup();
    });

    test("contention is a ContendedError naming the instances holding another value", WIDE, async () => {
      const { clients, cleanup } = await setup(3, library);
      const redlock = new Redlock(clients, {
        retryCount: 2,
        retryDelayMs: 20,
        retryJitterMs: 10,
        instanceTimeoutMs: 1_000,
      });
      const k = key("contended");
      const holder = await redlock.acquire(k, 10_000);
      const error = await redlock.acquire(k, 10_000).then(
        () => assert.fail("acquired a held lock"),
        (e) => e,
      );
      assert.ok(error instanceof ContendedError);
      assert.ok(!(error instanceof NoQuorumError));
      assert.equal(error.reason, "contended");
      assert.equal(error.attempts, 3);
      assert.deepEqual(
        error.instances.map((r) => r.status),
        ["held", "held", "held"],
      );
      assert.match(error.message, /is held by another holder after 3 attempts/);
      await holder.release();
      await cleanup();
    });

    test("with a minority of instances down, locks are still taken and released", WIDE, async () => {
      const { cluster, clients, cleanup } = await setup(3, library);
      const redlock = new Redlock(clients, { retryCount: 0, instanceTimeoutMs: 500 });
      await cluster.command("kill 2");
      const k = key("minority");
      const lock = await redlock.acquire(k, 2_000);
      assert.ok(lock.isValid());
      assert.deepEqual((await keysLeft(cluster, k)).length, 2);
      const released = await lock.release();
      assert.equal(released.confirmed, true);
      assert.equal(released.deleted, 2);
      assert.ok(["transportError", "timedOut"].includes(released.instances[2].status));
      await eventually(async () => (await keysLeft(cluster, k)).length === 0);
      await cleanup();
    });

    test("with a majority down, acquire fails with NoQuorumError, not contention", WIDE, async () => {
      const { cluster, clients, cleanup } = await setup(3, library);
      const redlock = new Redlock(clients, { retryCount: 1, retryDelayMs: 20, retryJitterMs: 0 });
      await cluster.command("kill 0");
      await cluster.command("kill 1");
      const k = key("majority");
      const error = await redlock.acquire(k, 1_000).then(
        () => assert.fail("acquired without a quorum"),
        (e) => e,
      );
      assert.ok(error instanceof NoQuorumError, `${error}`);
      assert.ok(!(error instanceof ContendedError));
      assert.equal(error.reason, "noQuorum");
      assert.equal(error.attempts, 2);
      for (const r of error.instances.slice(0, 2)) {
        assert.ok(["transportError", "timedOut"].includes(r.status), r.status);
      }
      assert.match(error.message, /not enough redis instances answered/);
      // The attempt that reached instance 2 released it.
      await eventually(async () => (await keysLeft(cluster, k)).length === 0);
      await cleanup();
    });

    test("using() loses the lock when a majority dies: the signal aborts before validity ends", WIDE, async () => {
      const { cluster, clients, cleanup } = await setup(3, library);
      const redlock = new Redlock(clients, { retryCount: 0 });
      const k = key("loss");
      const ttl = 1_500;
      let abortedAt;
      let validUntilAtAbort;
      const error = await redlock
        .using(k, ttl, async (signal, lock) => {
          await cluster.command("kill 0");
          await cluster.command("kill 1");
          await new Promise((resolve) =>
            signal.addEventListener("abort", () => {
              abortedAt = redlock.clock();
              validUntilAtAbort = lock.validUntil;
              resolve();
            }),
          );
          return "finished";
        })
        .then(
          () => assert.fail("using() resolved after the lock was lost"),
          (e) => e,
        );
      assert.ok(error instanceof LockLostError, `${error}`);
      assert.ok(["extensionFailed", "lost", "expired"].includes(error.reason), error.reason);
      assert.ok(abortedAt < validUntilAtAbort, `aborted at ${abortedAt}, valid until ${validUntilAtAbort}`);
      await cleanup();
    });
  });
}

describe("shared behaviour", () => {
  test("mutual exclusion: concurrent holders on a shared counter never overlap", WIDE, async () => {
    const cluster = await startCluster(3);
    cleanups.push(() => cluster.close());
    // Four independent holders, each with its own connections, across all three libraries.
    const names = Object.keys(libraries);
    const workers = await Promise.all(
      [0, 1, 2, 3].map(async (i) => {
        const clients = await connectAll(names[i % names.length], cluster.urls);
        cleanups.push(() => clients.close());
        return new Redlock(clients, { retryCount: 1_000, retryDelayMs: 10, retryJitterMs: 5 });
      }),
    );
    const k = key("counter");
    const rounds = 15;
    let counter = 0;
    let inside = 0;
    let maxInside = 0;
    await Promise.all(
      workers.map(async (redlock) => {
        for (let r = 0; r < rounds; r++) {
          const lock = await redlock.acquire(k, 2_000);
          inside++;
          maxInside = Math.max(maxInside, inside);
          const read = counter;
          await sleep(Math.random() * 3);
          assert.ok(lock.isValid());
          counter = read + 1;
          inside--;
          await lock.release();
        }
      }),
    );
    assert.equal(maxInside, 1, "two holders were inside at once");
    assert.equal(counter, workers.length * rounds, "an increment was lost");
    await eventually(async () => (await keysLeft(cluster, k)).length === 0);
  });

  test("using() extends the lock past its TTL while the routine runs, then releases it", WIDE, async () => {
    const cluster = await startCluster(3);
    const clients = await connectAll("ioredis", cluster.urls);
    cleanups.push(async () => {
      clients.close();
      await cluster.close();
    });
    // Wide per-instance timeouts: a loaded machine must not turn a slow reply into a loss.
    const redlock = new Redlock(clients, { instanceTimeoutMs: 250 });
    const k = key("using");
    const result = await redlock.using(k, 1_000, async (signal, lock) => {
      const firstValidity = lock.validUntil;
      await sleep(2_500);
      assert.equal(signal.aborted, false);
      assert.ok(lock.isValid());
      assert.ok(lock.validUntil > firstValidity + 1_000, "the lock was extended");
      assert.ok((await keysLeft(cluster, k)).length >= 2, "a quorum holds the key");
      return 42;
    });
    assert.equal(result, 42);
    await eventually(async () => (await keysLeft(cluster, k)).length === 0);
  });

  test("using() releases the lock and rethrows when the routine throws", WIDE, async () => {
    const cluster = await startCluster(3);
    const clients = await connectAll("node-redis v5", cluster.urls);
    cleanups.push(async () => {
      clients.close();
      await cluster.close();
    });
    const redlock = new Redlock(clients);
    const k = key("throws");
    await assert.rejects(
      redlock.using(k, 5_000, async () => {
        throw new Error("boom");
      }),
      /boom/,
    );
    await eventually(async () => (await keysLeft(cluster, k)).length === 0);
  });

  test("an AbortSignal cancels a pending acquire and leaves no key of it", WIDE, async () => {
    const cluster = await startCluster(3);
    const clients = await connectAll("node-redis v5", cluster.urls);
    cleanups.push(async () => {
      clients.close();
      await cluster.close();
    });
    const redlock = new Redlock(clients, { retryCount: 1_000, retryDelayMs: 20, retryJitterMs: 0 });
    const k = key("cancel");
    const holder = await redlock.acquire(k, 10_000);
    const controller = new AbortController();
    const pending = redlock.acquire(k, 10_000, { signal: controller.signal });
    await sleep(150);
    controller.abort(new Error("gave up"));
    await assert.rejects(pending, /gave up/);
    await holder.release();
    await eventually(async () => (await keysLeft(cluster, k)).length === 0);
    await assert.rejects(redlock.acquire(k, 1_000, { signal: controller.signal }), /gave up/);
  });

  test("misuse throws plain errors; protocol failures are RedlockErrors", WIDE, async () => {
    assert.throws(() => new Redlock([]), TypeError);
    assert.throws(() => new Redlock([{}]), /client 0 is not a Redis client/);
    assert.throws(() => new Redlock([{ call: async () => "OK" }], { retryCount: -1 }), /retryCount must not be negative/);
    const redlock = new Redlock([{ call: async () => null }], { retryCount: 0 });
    await assert.rejects(redlock.acquire("", 1_000), (e) => !(e instanceof RedlockError) && /empty/.test(e.message));
    await assert.rejects(redlock.acquire("k", NaN), /ttlMs must be a finite number/);
    await assert.rejects(redlock.acquire("k", 1_000), ContendedError);
    const other = new Redlock([{ call: async () => "OK" }]);
    const lock = await other.acquire("k", 1_000);
    await assert.rejects(redlock.release(lock), /not taken by this Redlock/);
  });
});
