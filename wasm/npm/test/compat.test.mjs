// redlock-wasm/compat against real redis-server instances: node-redlock v5's documented behaviour
// (single instance, a foreign holder on a minority and on a majority, multi-resource locks,
// using() with auto-extension and with loss, a Redis Cluster as one instance, "error" events),
// and the node-redlock bugs it does not have, each with a control run of node-redlock 5.0.0-beta.2
// itself showing the bug (so each of these tests can fail).

import assert from "node:assert/strict";
import { after, describe, test } from "node:test";

import { Cluster, Redis } from "ioredis";
import NodeRedlock, { ExecutionError as NodeExecutionError } from "redlock";
import Redlock, { ExecutionError, Lock, ResourceLockedError } from "redlock-wasm/compat";

import { admin, connectAll, eventually, keysLeft, sleep, startCluster, startRedisCluster } from "./harness.mjs";

const WIDE = { timeout: 90_000 };
const QUORUM = "The operation was unable to achieve a quorum during its retry window.";
const LOCKED1 = "The operation was applied to: 0 of the 1 requested resources.";

const cleanups = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function setup(n, library = "ioredis") {
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
const key = (name) => `compat:${process.pid}:${name}:${++unique}`;

/** An ioredis client that records every command it is asked to send (for the value checks). */
function recording(client, instance, log) {
  return {
    call(...args) {
      log.push({ instance, args: args.map((a) => String(a)) });
      return client.call(...args);
    },
    quit: () => client.quit(),
  };
}

/** The values written by acquire commands (`SET k v NX PX` or the acquire script), in order. */
function acquireValues(log, instance) {
  return log
    .filter((c) => c.instance === instance && (c.args[0] === "SET" || c.args[0] === "set"))
    .map((c) => c.args[2]);
}

for (const library of ["ioredis", "node-redis v5", "node-redis v4"]) {
  describe(`compat with ${library}`, () => {
    test("a single instance: acquire, extend, release; stats; no key left", WIDE, async () => {
      const { cluster, clients, cleanup } = await setup(1, library);
      const redlock = new Redlock(clients, { instanceTimeout: 1_000 });
      assert.deepEqual(redlock.settings, {
        driftFactor: 0.01,
        retryCount: 10,
        retryDelay: 200,
        retryJitter: 100,
        automaticExtensionThreshold: 500,
      });
      const k = key("single");
      const before = Date.now();
      const lock = await redlock.acquire([k], 5_000);
      const after = Date.now();
      assert.ok(lock instanceof Lock);
      assert.equal(lock.redlock, redlock);
      assert.deepEqual(lock.resources, [k]);
      assert.match(lock.value, /^[0-9a-f]{32}$/);
      // The TTL less the drift (52 ms), from the attempt's start: between `before` and `after`,
      // read from the whole-millisecond `Date.now()` (and the lease's start is a whole millisecond
      // too: up to two milliseconds lower).
      assert.ok(lock.expiration > Date.now(), "expired already");
      const span = `${lock.expiration - before} ms after the call, ${lock.expiration - after} ms after its return`;
      assert.ok(lock.expiration <= after + 5_000 - 52 && lock.expiration >= before + 5_000 - 52 - 2, span);
      assert.equal(lock.attempts.length, 1);
      const stats = await lock.attempts[0];
      assert.equal(stats.membershipSize, 1);
      assert.equal(stats.quorumSize, 1);
      assert.deepEqual([...stats.votesFor], [clients[0]]);
      assert.equal(stats.votesAgainst.size, 0);
      assert.deepEqual(await keysLeft(cluster, k), [k]);

      const extended = await lock.extend(10_000);
      assert.notEqual(extended, lock);
      assert.equal(lock.expiration, 0, "the old handle is invalidated");
      assert.equal(extended.value, lock.value);
      assert.ok(extended.expiration > Date.now() + 9_000);
      await assert.rejects(lock.extend(1_000), (e) => e instanceof ExecutionError && e.message === "Cannot extend an already-expired lock.");

      const result = await extended.release();
      assert.equal(result.attempts.length, 1);
      assert.deepEqual([...(await result.attempts[0]).votesFor], [clients[0]]);
      assert.equal(extended.expiration, 0);
      assert.deepEqual(await keysLeft(cluster, k), []);
      await cleanup();
    });

    test("three instances, a foreign value on one (a minority): acquired, the foreign key kept", WIDE, async () => {
      const { cluster, clients, cleanup } = await setup(3, library);
      const k = key("minority");
      await cluster.command(`set 0 ${k} foreign`);
      const redlock = new Redlock(clients, { instanceTimeout: 1_000 });
      const errors = [];
      redlock.on("error", (e) => errors.push(e));
      const lock = await redlock.acquire([k], 5_000);
      assert.equal(lock.attempts.length, 1);
      const stats = await lock.attempts[0];
      assert.equal(stats.membershipSize, 3);
      assert.equal(stats.quorumSize, 2);
      assert.deepEqual(new Set(stats.votesFor), new Set([clients[1], clients[2]]));
      assert.deepEqual([...stats.votesAgainst.keys()], [clients[0]]);
      const against = stats.votesAgainst.get(clients[0]);
      assert.ok(against instanceof ResourceLockedError);
      assert.equal(against.name, "ResourceLockedError");
      assert.equal(against.message, LOCKED1);
      assert.ok(errors.includes(against), "the vote against was emitted as an error event");
      await lock.release();
      const admin0 = admin(cluster.urls[0]);
      assert.equal(await admin0.get(k), "foreign");
      admin0.disconnect();
      assert.deepEqual(await keysLeft(cluster, k), [k], "only the foreign key is left");
      await cleanup();
    });
  });
}

describe("compat, node-redlock's behaviour", () => {
  test("a foreign value on a majority: ExecutionError with retryCount + 1 attempts of ResourceLockedErrors", WIDE, async () => {
    const { cluster, clients, cleanup } = await setup(3);
    const k = key("majority");
    await cluster.command(`set 0 ${k} foreign`);
    await cluster.command(`set 1 ${k} foreign`);
    const log = [];
    const recorded = clients.map((c, i) => recording(c, i, log));
    const retryCount = 4;
    const redlock = new Redlock(recorded, { retryCount, retryDelay: 60, retryJitter: 20, instanceTimeout: 1_000 });
    const errors = [];
    redlock.on("error", (e) => errors.push(e));
    const error = await redlock.acquire([k], 5_000).then(
      () => assert.fail("acquired a lock held on a majority"),
      (e) => e,
    );
    assert.ok(error instanceof ExecutionError, String(error));
    assert.equal(error.name, "ExecutionError");
    assert.equal(error.message, QUORUM);
    assert.equal(error.reason, "contended");
    assert.equal(error.attempts.length, retryCount + 1);
    for (const [n, attempt] of error.attempts.entries()) {
      const stats = await attempt;
      assert.equal(stats.membershipSize, 3);
      assert.equal(stats.quorumSize, 2);
      for (const i of [0, 1]) {
        const e = stats.votesAgainst.get(recorded[i]);
        assert.ok(e instanceof ResourceLockedError, `attempt ${n + 1}, instance ${i}: ${e}`);
        assert.equal(e.message, LOCKED1);
      }
      // Instance 2 was released between attempts, so its own key never blocked a retry.
      assert.ok(stats.votesFor.has(recorded[2]), `attempt ${n + 1}: instance 2 voted against (self-blocking)`);
    }
    assert.equal(errors.filter((e) => e instanceof ResourceLockedError).length, 2 * (retryCount + 1));
    // A fresh value per attempt, each released on instance 2 before the next attempt reached it.
    const values = acquireValues(log, 2);
    assert.equal(values.length, retryCount + 1);
    assert.equal(new Set(values).size, retryCount + 1, "a value was reused");
    const on2 = log.filter((c) => c.instance === 2);
    for (const [n, value] of values.entries()) {
      const set = on2.findIndex((c) => c.args[0] === "SET" && c.args[2] === value);
      const release = on2.findIndex((c, j) => j > set && /^EVAL/i.test(c.args[0]) && c.args.includes(value));
      assert.ok(release > set, `attempt ${n + 1} was not released on instance 2`);
      const next = values[n + 1];
      if (next !== undefined) {
        const nextSet = on2.findIndex((c) => c.args[2] === next);
        assert.ok(release < nextSet, `attempt ${n + 2} started on instance 2 before attempt ${n + 1} was released`);
      }
    }
    await eventually(async () => (await keysLeft(cluster, k)).length === 2);
    await cleanup();
  });

  test("several resources are locked all-or-nothing", WIDE, async () => {
    const { cluster, clients, cleanup } = await setup(3);
    const redlock = new Redlock(clients, { retryCount: 1, retryDelay: 20, retryJitter: 0, instanceTimeout: 1_000 });
    const [a, b, c] = [key("a"), key("b"), key("c")];
    const lock = await redlock.acquire([a, b], 5_000);
    assert.deepEqual(lock.resources, [a, b]);
    // Both keys on a quorum (an instance whose NOSCRIPT came after the decision is not sent the
    // script again, so it may hold neither).
    const held = await keysLeft(cluster, `compat:${process.pid}:*`);
    assert.ok(held.filter((x) => x === a).length >= 2, `${held}`);
    assert.equal(held.filter((x) => x === a).length, held.filter((x) => x === b).length);
    const error = await redlock.acquire([c, b], 5_000).then(
      () => assert.fail("acquired [c, b] while b is held"),
      (e) => e,
    );
    assert.ok(error instanceof ExecutionError);
    assert.equal(error.attempts.length, 2);
    // The instances holding b (a quorum) refuse with node-redlock's error; an instance that held
    // neither (see above) may still be fetching the script when the attempt is decided, and its
    // vote is then that, not a ResourceLockedError.
    const against = [...(await error.attempts[0]).votesAgainst.values()];
    const locked = against.filter((e) => e instanceof ResourceLockedError);
    assert.ok(locked.length >= 2, `votes against: ${against}`);
    for (const e of locked) {
      assert.equal(e.message, "The operation was applied to: 0 of the 2 requested resources.");
    }
    // An instance that held neither a nor b (its NOSCRIPT came after the first decision) may
    // have taken [c, b]; the failed attempt's cleanup removes them, in the background.
    await eventually(async () => (await keysLeft(cluster, c)).length === 0);
    const extended = await lock.extend(6_000);
    assert.equal((await extended.attempts[0]).votesFor.size >= 2, true);
    await extended.release();
    await eventually(async () => (await keysLeft(cluster, `compat:${process.pid}:*`)).length === 0);
    await cleanup();
  });

  test("an instance down: the lock is taken, the failure is an error event and a vote against", WIDE, async () => {
    const { cluster, clients, cleanup } = await setup(3);
    await cluster.command("kill 2");
    const redlock = new Redlock(clients, { instanceTimeout: 500 });
    const errors = [];
    redlock.on("error", (e) => errors.push(e));
    const k = key("down");
    const lock = await redlock.acquire([k], 5_000);
    const stats = await lock.attempts[0];
    assert.equal(stats.votesFor.size, 2);
    const e = stats.votesAgainst.get(clients[2]);
    assert.ok(e instanceof Error && !(e instanceof ResourceLockedError), String(e));
    assert.ok(errors.length >= 1);
    await lock.release();
    assert.deepEqual(await keysLeft(cluster, k), []);
    await cleanup();
  });

  test("using() extends the lock while the routine runs, then releases it", WIDE, async () => {
    const { cluster, clients, cleanup } = await setup(3);
    const redlock = new Redlock(clients, { instanceTimeout: 250, automaticExtensionThreshold: 1_000 });
    const k = key("using");
    const admin0 = admin(cluster.urls[0]);
    cleanups.push(() => admin0.disconnect());
    const result = await redlock.using([k], 1_500, async (signal) => {
      const value = await admin0.get(k);
      await sleep(3_500);
      assert.equal(signal.aborted, false);
      assert.equal(signal.error, undefined);
      assert.equal(await admin0.get(k), value, "still ours after more than two TTLs");
      assert.ok((await admin0.pttl(k)) > 0);
      return 42;
    });
    assert.equal(result, 42);
    await eventually(async () => (await keysLeft(cluster, k)).length === 0);
    await cleanup();
  });

  test("using() with settings, and validation of the extension threshold", WIDE, async () => {
    const { cluster, clients, cleanup } = await setup(1);
    const redlock = new Redlock(clients);
    const k = key("using-settings");
    await assert.rejects(
      redlock.using([k], 500, async () => 1),
      /A lock `duration` must be at least 100ms greater than the `automaticExtensionThreshold` setting\./,
    );
    await assert.rejects(redlock.using([k], 1_000, {}), /INVARIANT: routine is not a function\./);
    const v = await redlock.using([k], 400, { automaticExtensionThreshold: 200 }, async (signal) => {
      await sleep(700);
      return signal.aborted;
    });
    assert.equal(v, false);
    assert.deepEqual(await keysLeft(cluster, k), []);
    await cleanup();
  });

  /** The first lock a `using()` of `redlock` takes (its expiration is the one to beat). */
  function firstLock(redlock) {
    const acquire = redlock.acquire.bind(redlock);
    const seen = {};
    redlock.acquire = async (...args) => {
      const lock = await acquire(...args);
      // Read now: the release at the end of using() sets it to 0.
      seen.expiration ??= lock.expiration;
      return lock;
    };
    return seen;
  }

  test("using() when the lock is taken over: the signal aborts with the error, before the validity ends", WIDE, async () => {
    const { cluster, clients, cleanup } = await setup(3);
    const redlock = new Redlock(clients, { instanceTimeout: 200 });
    const seen = firstLock(redlock);
    const k = key("using-lost");
    let abortedAt;
    const result = await redlock.using([k], 1_500, async (signal) => {
      // Someone else's value replaces ours on a majority.
      await cluster.command(`set 0 ${k} foreign`);
      await cluster.command(`set 1 ${k} foreign`);
      await new Promise((resolve) => signal.addEventListener("abort", resolve));
      abortedAt = Date.now();
      return signal.error;
    });
    assert.ok(result instanceof ExecutionError, String(result));
    assert.equal(result.reason, "lost");
    assert.equal(result.message, QUORUM);
    assert.ok(abortedAt < seen.expiration, `aborted ${abortedAt - seen.expiration} ms after the expiration`);
    // The foreign keys are not touched by the release at the end.
    const admin0 = admin(cluster.urls[0]);
    assert.equal(await admin0.get(k), "foreign");
    admin0.disconnect();
    await eventually(async () => (await keysLeft(cluster, k)).length === 2);
    await cleanup();
  });

  test("using() when a majority dies: the signal aborts before the lock's expiration", WIDE, async () => {
    const { cluster, clients, cleanup } = await setup(3);
    const redlock = new Redlock(clients, { instanceTimeout: 100 });
    const seen = firstLock(redlock);
    const k = key("using-down");
    let abortedAt;
    const error = await redlock.using([k], 1_500, async (signal) => {
      await cluster.command("kill 0");
      await cluster.command("kill 1");
      await new Promise((resolve) => signal.addEventListener("abort", resolve));
      abortedAt = Date.now();
      return signal.error;
    });
    assert.ok(error instanceof ExecutionError, String(error));
    assert.ok(["noQuorum", "validityExhausted", "expired"].includes(error.reason), error.reason);
    assert.ok(abortedAt < seen.expiration, `aborted ${abortedAt - seen.expiration} ms after the expiration`);
    await cleanup();
  });

  test("an AbortSignal cancels a pending acquire and releases what it took", WIDE, async () => {
    const { cluster, clients, cleanup } = await setup(3);
    const k = key("cancel");
    await cluster.command(`set 0 ${k} foreign`);
    await cluster.command(`set 1 ${k} foreign`);
    const redlock = new Redlock(clients, { retryCount: -1, retryDelay: 30, retryJitter: 10, instanceTimeout: 1_000 });
    const controller = new AbortController();
    const pending = redlock.acquire([k], 10_000, { signal: controller.signal });
    await sleep(200);
    controller.abort(new Error("gave up"));
    await assert.rejects(pending, /gave up/);
    await eventually(async () => (await keysLeft(cluster, k)).length === 2, 10_000);
    await assert.rejects(redlock.acquire([k], 1_000, { signal: controller.signal }), /gave up/);
    await cleanup();
  });

  test("a black-holed instance: release resolves at the quorum, its vote is a timeout", WIDE, async () => {
    const { cluster, clients, cleanup } = await setup(2);
    const hole = { call: () => new Promise(() => {}) };
    const redlock = new Redlock([clients[0], clients[1], hole], { instanceTimeout: 3_000 });
    const events = [];
    redlock.on("error", (e) => events.push(e));
    const k = key("blackhole");
    const lock = await redlock.acquire([k], 60_000);
    const start = performance.now();
    const result = await lock.release();
    assert.ok(performance.now() - start < 1_500, `release took ${performance.now() - start} ms`);
    assert.deepEqual(await keysLeft(cluster, k), []);
    const stats = await result.attempts[0];
    assert.ok(performance.now() - start >= 2_900, "the stats did not wait for the instance timeout");
    assert.equal(stats.votesFor.size, 2);
    assert.equal(stats.votesAgainst.get(hole).message, "The redis instance did not answer within 3000 ms.");
    assert.ok(events.includes(stats.votesAgainst.get(hole)));
    await cleanup();
  });

  test("a NOSCRIPT answered after the decision is that instance's vote, not an error event", WIDE, async () => {
    class ReplyError extends Error {}
    const fast = { call: async (cmd) => (cmd === "EVALSHA" ? Promise.reject(new ReplyError("NOSCRIPT No matching script")) : 1) };
    const slow = {
      call: (cmd) =>
        new Promise((resolve, reject) =>
          setTimeout(() => (cmd === "EVALSHA" ? reject(new ReplyError("NOSCRIPT No matching script")) : resolve(1)), 100),
        ),
    };
    const redlock = new Redlock([fast, { call: fast.call }, slow], { instanceTimeout: 5_000 });
    const events = [];
    redlock.on("error", (e) => events.push(e));
    const start = performance.now();
    const lock = await redlock.acquire(["a", "b"], 10_000);
    const stats = await lock.attempts[0];
    assert.ok(performance.now() - start < 2_000, "the stats waited for the instance timeout");
    assert.equal(stats.votesFor.size, 2);
    assert.match(stats.votesAgainst.get(slow).message, /^NOSCRIPT/);
    assert.deepEqual(events, []);
  });

  test("quit() closes every client", WIDE, async () => {
    const cluster = await startCluster(2);
    cleanups.push(() => cluster.close());
    const clients = cluster.urls.map((u) => new Redis(u));
    const redlock = new Redlock(clients);
    await redlock.acquire([key("quit")], 1_000);
    await redlock.quit();
    await eventually(() => clients.every((c) => c.status === "end"));
  });
});

describe("compat, where node-redlock is wrong (each with node-redlock 5.0.0-beta.2 as a control)", () => {
  // node-redlock keeps one value for all attempts and leaves each attempt's keys in place, so
  // its own key from an early attempt blocks its later attempts until that key expires.
  async function selfBlocking(RedlockClass, clients, cluster) {
    const k = key("self-blocking");
    await cluster.command(`set 0 ${k} foreign`); // held for good
    const a1 = admin(cluster.urls[1]);
    await a1.set(k, "foreign", "PX", 400); // held briefly
    a1.disconnect();
    const redlock = new RedlockClass(clients, { retryCount: 10, retryDelay: 100, retryJitter: 0 });
    return redlock.acquire([k], 5_000).then(
      (lock) => ({ lock }),
      (error) => ({ error }),
    );
  }

  test("retries do not block themselves (node-redlock's do)", WIDE, async () => {
    const { cluster, clients, cleanup } = await setup(3);
    const ours = await selfBlocking(Redlock, clients, cluster);
    assert.ok(ours.lock, `redlock-wasm/compat failed: ${ours.error}`);
    assert.ok(ours.lock.attempts.length > 1);
    await ours.lock.release();

    const theirs = await selfBlocking(NodeRedlock, clients, cluster);
    assert.ok(theirs.error instanceof NodeExecutionError, "control: node-redlock no longer blocks itself?");
    // Once instance 1 was free, its attempts failed on instance 2 because of its own key.
    const stats = await Promise.all(theirs.error.attempts);
    assert.ok(
      stats.some((s) => s.votesFor.has(clients[1]) && s.votesAgainst.get(clients[2]) instanceof Error),
      "control: no attempt blocked by node-redlock's own key",
    );
    await cleanup();
  });

  async function lateAcquire(RedlockClass, clients, cluster) {
    const k = key("late");
    const admins = cluster.urls.map((u) => admin(u));
    // Another holder until 900 ms from now.
    await Promise.all(admins.map((a) => a.set(k, "foreign", "PX", 900)));
    admins.forEach((a) => a.disconnect());
    const redlock = new RedlockClass(clients, { retryCount: 40, retryDelay: 50, retryJitter: 0 });
    const lock = await redlock.acquire([k], 500);
    return { lock, now: Date.now() };
  }

  test("never returns an expired lock (node-redlock measures from the first attempt)", WIDE, async () => {
    const { cluster, clients, cleanup } = await setup(3);
    const ours = await lateAcquire(Redlock, clients, cluster);
    assert.ok(ours.lock.attempts.length > 1);
    assert.ok(ours.lock.expiration > ours.now, `expired ${ours.now - ours.lock.expiration} ms before it was returned`);
    await ours.lock.release();

    const theirs = await lateAcquire(NodeRedlock, clients, cluster);
    assert.ok(theirs.lock.expiration < theirs.now, "control: node-redlock no longer returns expired locks?");
    await theirs.lock.release().catch(() => undefined);
    await cleanup();
  });
});

describe("compat, a Redis Cluster as one instance", () => {
  test("hash-tagged keys lock together; untagged ones fail with the CROSSSLOT error; fast handoff", WIDE, async () => {
    const rc = await startRedisCluster(3);
    cleanups.push(() => rc.close());
    const connect = async () => {
      const c = new Cluster(rc.nodes, { redisOptions: { maxRetriesPerRequest: 2 } });
      c.on("error", () => {});
      await new Promise((resolve, reject) => {
        c.once("ready", resolve);
        c.once("end", () => reject(new Error("cluster client ended")));
      });
      cleanups.push(() => c.disconnect());
      return c;
    };
    const cluster = await connect();
    const redlock = new Redlock([cluster], { retryCount: 0, instanceTimeout: 1_000 });
    const errors = [];
    redlock.on("error", (e) => errors.push(e));
    const tag = `{order:${process.pid}}`;
    const [a, b, c] = [`${tag}:a`, `${tag}:b`, `${tag}:c`];
    const lock = await redlock.acquire([a, b], 5_000);
    const stats = await lock.attempts[0];
    assert.equal(stats.membershipSize, 1);
    assert.deepEqual([...stats.votesFor], [cluster]);
    assert.equal(await cluster.get(a), lock.value);
    assert.equal(await cluster.get(b), lock.value);

    const error = await redlock.acquire([c, b], 5_000).then(
      () => assert.fail("acquired a held key"),
      (e) => e,
    );
    assert.ok(error instanceof ExecutionError);
    assert.ok((await error.attempts[0]).votesAgainst.get(cluster) instanceof ResourceLockedError);
    assert.equal(await cluster.exists(c), 0);

    // Keys in different slots cannot be locked together on one Cluster.
    const cross = await redlock.acquire([`x:${process.pid}:1`, `y:${process.pid}:2`], 5_000).then(
      () => assert.fail("locked keys of different slots"),
      (e) => e,
    );
    assert.ok(cross instanceof ExecutionError);
    assert.match((await cross.attempts[0]).votesAgainst.get(cluster).message, /CROSSSLOT/);
    assert.ok(errors.some((e) => /CROSSSLOT/.test(e.message)));

    const extended = await lock.extend(8_000);
    assert.ok((await cluster.pttl(a)) > 6_000);
    await extended.release();
    assert.equal(await cluster.exists(a, b), 0);

    // Fast handoff through the Cluster's pub/sub.
    const other = await connect();
    const holder = new Redlock([cluster], { fastHandoff: true, instanceTimeout: 1_000 });
    const waiter = new Redlock([other], { fastHandoff: true, retryCount: 3, retryDelay: 5_000, retryJitter: 0, instanceTimeout: 1_000 });
    const held = await holder.acquire([a], 10_000);
    const start = Date.now();
    const pending = waiter.acquire([a], 10_000);
    await sleep(400);
    await held.release();
    const next = await pending;
    const took = Date.now() - start;
    assert.ok(took < 3_000, `took ${took} ms: the release did not wake the waiter`);
    await next.release();
    assert.equal(await cluster.exists(a), 0);
  });
});
