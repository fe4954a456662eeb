// The low-level machines from JavaScript, driven by hand: output shapes, outcomes as data, and
// misuse as thrown Errors. No Redis needed.

import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { Acquire, Config, Extend, Release, scripts, version } from "redlock-wasm";

const T0 = 1_000;

/** Drains sends until wait or done; returns [sends, last output]. */
function drain(machine) {
  const sends = [];
  let out;
  while ((out = machine.pollOutput()).type === "send") sends.push(out);
  return [sends, out];
}

describe("Acquire", () => {
  test("sends SET NX PX to every instance and grants a lease valid until t1 + ttl - drift", () => {
    const config = new Config({ instances: 3, ttlMs: 10_000 });
    const op = new Acquire(config, "orders:42", T0);
    const [sends, wait] = drain(op);
    assert.equal(sends.length, 3);
    assert.deepEqual(
      sends.map((s) => s.instance),
      [0, 1, 2],
    );
    for (const s of sends) {
      assert.equal(s.type, "send");
      assert.equal(s.command, "acquire");
      assert.equal(s.form, "set");
      assert.deepEqual(s.args, ["SET", "orders:42", op.value, "NX", "PX", "10000"]);
      assert.ok(Number.isInteger(s.request));
    }
    assert.match(op.value, /^[0-9a-f]{32}$/);
    assert.deepEqual(wait, { type: "wait", until: T0 + config.instanceTimeoutMs });
    op.handleReply(sends[0].instance, sends[0].request, "OK", T0 + 3);
    assert.equal(op.pollOutput().type, "wait", "one yes of three is not a quorum");
    op.handleReply(sends[2].instance, sends[2].request, "OK", T0 + 4);
    const done = op.pollOutput();
    assert.equal(done.type, "done");
    assert.equal(done.outcome.type, "acquired");
    assert.deepEqual(done.outcome.lease, {
      resources: ["orders:42"],
      value: op.value,
      ttlMs: 10_000,
      validUntil: T0 + 10_000 - config.driftMs,
    });
    assert.equal(done.outcome.decidedAt, T0 + 4);
    assert.equal(done.outcome.attempts, 1);
    assert.deepEqual(done.outcome.report, ["yes", "pending", "yes"]);
    assert.deepEqual(op.pollOutput(), done, "done is terminal and repeats");
  });

  test("contention is an outcome, and every instance reached is released", () => {
    const config = new Config({ instances: 3, ttlMs: 10_000, retryCount: 0 });
    const op = new Acquire(config, "k", T0);
    const [sends] = drain(op);
    op.handleReply(0, sends[0].request, null, T0 + 1);
    op.handleReply(1, sends[1].request, "OK", T0 + 2);
    op.handleReply(2, sends[2].request, null, T0 + 3);
    const [releases, done] = drain(op);
    assert.deepEqual(
      releases.map((r) => [r.instance, r.command, r.args[0] === r.form.toUpperCase()]),
      [0, 1, 2].map((i) => [i, "release", true]),
    );
    for (const r of releases) assert.equal(r.args[4], sends[1].args[2], "releases carry the attempt's value");
    assert.equal(done.type, "done");
    assert.equal(done.outcome.type, "failed");
    assert.equal(done.outcome.reason, "contended");
    assert.deepEqual(done.outcome.report, ["held", "yes", "held"]);
  });

  test("a majority of transport failures is noQuorum, not contention", () => {
    const config = new Config({ instances: 3, ttlMs: 10_000, retryCount: 0 });
    const op = new Acquire(config, "k", T0);
    const [sends] = drain(op);
    op.handleTransportError(0, sends[0].request, T0 + 1);
    op.handleReply(1, sends[1].request, { error: "OOM command not allowed" }, T0 + 1);
    const [, wait] = drain(op);
    assert.equal(wait.type, "wait", "decided, but it waits for instance 2 before releasing it");
    op.handleTimeout(wait.until);
    const [releases, done] = drain(op);
    assert.ok(releases.some((r) => r.instance === 2));
    assert.equal(done.outcome.reason, "noQuorum");
    assert.deepEqual(done.outcome.report, ["transportError", "serverError:oom", "timedOut"]);
  });

  test("instances that do not answer by the wait deadline time out", () => {
    const config = new Config({ instances: 3, ttlMs: 1_000, retryCount: 0, instanceTimeoutMs: 50 });
    const op = new Acquire(config, "k", T0);
    const [sends, wait] = drain(op);
    op.handleReply(0, sends[0].request, "OK", T0 + 1);
    assert.equal(wait.until, T0 + 50);
    op.handleTimeout(wait.until - 1);
    assert.equal(op.pollOutput().type, "wait");
    op.handleTimeout(wait.until);
    const [releases, done] = drain(op);
    assert.deepEqual(
      releases.map((r) => r.instance).sort(),
      [0, 1, 2],
      "every instance reached is released, the timed-out ones included",
    );
    assert.equal(done.outcome.reason, "noQuorum");
    assert.deepEqual(done.outcome.report, ["yes", "timedOut", "timedOut"]);
  });

  test("retries write a fresh value after the jittered delay", () => {
    const config = new Config({ instances: 1, ttlMs: 1_000, retryCount: 1, retryDelayMs: 100, retryJitterMs: 0 });
    const op = new Acquire(config, "k", T0);
    const [[first]] = drain(op);
    op.handleReply(0, first.request, null, T0 + 1);
    const [cleanup, wait] = drain(op);
    assert.deepEqual(
      cleanup.map((r) => r.command),
      ["release"],
    );
    assert.deepEqual(wait, { type: "wait", until: T0 + 101 });
    op.handleTimeout(T0 + 101);
    const [[second]] = drain(op);
    assert.equal(op.attempt, 2);
    assert.notEqual(second.args[2], first.args[2]);
  });

  test("several keys go through EVALSHA, and NOSCRIPT brings the full EVAL", () => {
    const config = new Config({ instances: 1, ttlMs: 1_000 });
    const op = new Acquire(config, ["a", "b"], T0);
    const [[send]] = drain(op);
    const acquireScript = scripts().find((s) => s.name === "acquire");
    assert.deepEqual(send.args.slice(0, 5), ["EVALSHA", acquireScript.sha1, "2", "a", "b"]);
    op.handleReply(0, send.request, { error: "NOSCRIPT No matching script. Please use EVAL." }, T0 + 1);
    const [[again]] = drain(op);
    assert.equal(again.form, "eval");
    assert.deepEqual(again.args.slice(0, 5), ["EVAL", acquireScript.source, "2", "a", "b"]);
    op.handleReply(0, again.request, 1n, T0 + 2);
    assert.equal(op.pollOutput().outcome.type, "acquired", "a bigint 1 counts as the integer 1");
  });

  test("binary keys come back as Uint8Array, text keys as strings", () => {
    const key = new Uint8Array([0xff, 0x00, 0x80]);
    const op = new Acquire(new Config({ instances: 1, ttlMs: 1_000 }), [key, "text"], T0);
    const [[send]] = drain(op);
    assert.ok(send.args[3] instanceof Uint8Array);
    assert.deepEqual([...send.args[3]], [0xff, 0x00, 0x80]);
    assert.equal(send.args[4], "text");
  });

  test("cancel releases what was sent and ends as cancelled", () => {
    const op = new Acquire(new Config({ instances: 3, ttlMs: 1_000 }), "k", T0);
    const [sends] = drain(op);
    op.handleReply(0, sends[0].request, "OK", T0 + 1);
    op.cancel(T0 + 2);
    for (const s of sends.slice(1)) op.handleReply(s.instance, s.request, "OK", T0 + 3);
    const [releases, done] = drain(op);
    assert.deepEqual(releases.map((r) => r.instance).sort(), [0, 1, 2]);
    assert.equal(done.outcome.reason, "cancelled");
  });

  test("unexpected reply shapes never count as a yes", () => {
    for (const reply of ["QUEUED", "ok", 1.5, undefined, {}, [1], { error: 42 }, true]) {
      const op = new Acquire(new Config({ instances: 1, ttlMs: 1_000, retryCount: 0 }), "k", T0);
      const [[send]] = drain(op);
      op.handleReply(0, send.request, reply, T0 + 1);
      const [, done] = drain(op);
      assert.equal(done.outcome.type, "failed", `reply ${String(reply)}`);
      assert.equal(done.outcome.reason, "noQuorum");
      assert.deepEqual(done.outcome.report, ["unexpectedReply"]);
    }
  });
});

describe("fast handoff hooks", () => {
  test("isWaitingToRetry after a failed attempt; wake moves the retry up, within the spread", () => {
    const config = new Config({ instances: 1, ttlMs: 10_000, retryCount: 2, retryDelayMs: 5_000, retryJitterMs: 0 });
    const op = new Acquire(config, "k", T0);
    assert.equal(op.isWaitingToRetry, false, "running its first attempt");
    assert.equal(op.wake(T0, 0), false, "nothing to move while an attempt runs");
    const [[send]] = drain(op);
    op.handleReply(0, send.request, null, T0 + 1);
    const [, wait] = drain(op);
    assert.equal(wait.until, T0 + 1 + 5_000);
    assert.equal(op.isWaitingToRetry, true);
    assert.equal(op.wake(T0 + 10, 0), true);
    const [retry] = drain(op);
    assert.equal(retry.length, 1, "the next attempt started at once");
    assert.equal(op.attempt, 2);
    assert.equal(op.isWaitingToRetry, false);
    op.handleReply(0, retry[0].request, null, T0 + 11);
    drain(op);
    assert.equal(op.wake(T0 + 20, 2), true);
    // The retry moved to T0 + 20 + [0, 2]: it starts now (at + 0) or is waited for.
    const [third, early] = drain(op);
    if (third.length === 0) {
      assert.ok(early.until > T0 + 20 && early.until <= T0 + 22, `retry at ${early.until}`);
      op.handleTimeout(early.until);
      assert.equal(drain(op)[0].length, 1);
    }
    assert.equal(op.attempt, 3);
    // Misuse: time going backwards fails closed, like every other input.
    assert.throws(() => op.wake(T0, 0), /backwards/);
    assert.equal(op.isWaitingToRetry, false);
  });

  test("releaseNotification: cleanups and releases run the announcing script", () => {
    const notify = scripts().find((x) => x.name === "release-notify");
    const plain = scripts().find((x) => x.name === "release");
    assert.equal(new Config({ instances: 1, ttlMs: 1_000 }).releaseNotification, false);
    assert.throws(() => new Config({ instances: 1, ttlMs: 1_000, releaseNotification: "yes" }), /releaseNotification must be a boolean/);
    for (const [on, script] of [
      [true, notify],
      [false, plain],
    ]) {
      const config = new Config({ instances: 1, ttlMs: 1_000, retryCount: 0, releaseNotification: on });
      assert.equal(config.releaseNotification, on);
      const op = new Acquire(config, "k", T0);
      const [[send]] = drain(op);
      op.handleReply(0, send.request, null, T0 + 1);
      // A NOSCRIPT-proof cleanup carries the full script.
      const [[cleanup]] = drain(op);
      assert.equal(cleanup.command, "release");
      assert.deepEqual(cleanup.args.slice(0, 2), ["EVAL", script.source]);
      const release = new Release(config, { resources: ["k"], value: op.value, ttlMs: 1_000, validUntil: T0 + 900 }, T0 + 2);
      const [[r]] = drain(release);
      assert.deepEqual(r.args.slice(0, 2), ["EVALSHA", script.sha1]);
    }
  });
});

describe("Extend and Release", () => {
  function acquired(ttlMs = 10_000) {
    const config = new Config({ instances: 3, ttlMs });
    const op = new Acquire(config, "k", T0);
    const [sends] = drain(op);
    for (const s of sends) op.handleReply(s.instance, s.request, "OK", T0 + 1);
    return { config, lease: op.pollOutput().outcome.lease };
  }

  test("extend resets the TTL on a quorum and measures validity from its own start", () => {
    const { config, lease } = acquired();
    const op = new Extend(config.withTtl(20_000), lease, T0 + 5_000);
    const [sends] = drain(op);
    assert.deepEqual(
      sends.map((s) => [s.command, s.args.slice(-2)]),
      Array(3).fill(["extend", [lease.value, "20000"]]),
    );
    for (const s of sends.slice(0, 2)) op.handleReply(s.instance, s.request, 1, T0 + 5_002);
    const { outcome } = op.pollOutput();
    assert.equal(outcome.type, "extended");
    assert.equal(outcome.lease.validUntil, T0 + 5_000 + 20_000 - config.withTtl(20_000).driftMs);
  });

  test("extend refuses an expired lease without sending anything", () => {
    const { config, lease } = acquired();
    const op = new Extend(config, lease, lease.validUntil);
    const out = op.pollOutput();
    assert.equal(out.type, "done");
    assert.equal(out.outcome.reason, "expired");
  });

  test("extend reports a lost lock when a quorum holds another value", () => {
    const { config, lease } = acquired();
    const op = new Extend(config, lease, T0 + 10);
    const [sends] = drain(op);
    for (const s of sends) op.handleReply(s.instance, s.request, 0, T0 + 11);
    assert.equal(op.pollOutput().outcome.reason, "lost");
  });

  test("a lease survives a JSON round trip (stored and reloaded)", () => {
    const { config, lease } = acquired();
    const op = new Release(config, JSON.parse(JSON.stringify(lease)), T0 + 10);
    const [sends] = drain(op);
    assert.deepEqual(sends[0].args.slice(2), ["1", "k", lease.value]);
    op.handleReply(0, sends[0].request, 1, T0 + 11);
    op.handleReply(1, sends[1].request, 0, T0 + 11);
    assert.equal(op.pollOutput().type, "wait", "release waits for every instance");
    op.handleTransportError(2, sends[2].request, T0 + 12);
    assert.deepEqual(op.pollOutput().outcome, {
      type: "released",
      confirmed: true,
      deleted: 1,
      report: ["yes", "held", "transportError"],
    });
  });
});

describe("misuse throws an Error with a clear message", () => {
  const config = new Config({ instances: 3, ttlMs: 10_000 });
  const cases = [
    ["NaN time", () => new Acquire(config, "k", NaN), /nowMs must be a finite number \(got NaN\)/],
    ["negative time", () => new Acquire(config, "k", -1), /nowMs must not be negative/],
    ["time past 2^53", () => new Acquire(config, "k", 2 ** 53 + 2), /nowMs must be at most 9007199254740991/],
    ["infinite ttl", () => new Config({ instances: 3, ttlMs: Infinity }), /ttlMs must be a finite number/],
    ["ttl as a string", () => new Config({ instances: 3, ttlMs: "10s" }), /ttlMs must be a number/],
    ["ttl below the drift", () => new Config({ instances: 3, ttlMs: 2 }), /ttl of 2 ms is too short/],
    ["no instances", () => new Config({ instances: 0, ttlMs: 1000 }), /at least one redis instance/],
    ["17 instances", () => new Config({ instances: 17, ttlMs: 1000 }), /at most 16/],
    ["fractional instances", () => new Config({ instances: 2.5, ttlMs: 1000 }), /instances must be an integer/],
    ["unknown option", () => new Config({ instances: 3, ttlMs: 1000, retries: 2 }), /unknown Config option "retries"/],
    ["options not an object", () => new Config(3), /Config options must be an object/],
    ["jitter above delay", () => new Config({ instances: 3, ttlMs: 1000, retryDelayMs: 10, retryJitterMs: 20 }), /jitter/],
    ["empty key", () => new Acquire(config, "", 0), /resource key is empty/],
    ["huge string key", () => new Acquire(config, "x".repeat(50_000_000), 0), /exceeds the maximum of 512/],
    ["huge binary key", () => new Acquire(config, new Uint8Array(1 << 20), 0), /exceeds the maximum of 512/],
    ["too many keys", () => new Acquire(config, Array.from({ length: 9 }, (_, i) => `k${i}`), 0), /too many resources/],
    ["duplicate keys", () => new Acquire(config, ["a", "a"], 0), /given twice/],
    ["no keys", () => new Acquire(config, [], 0), /at least one resource/],
    ["a number as key", () => new Acquire(config, 42, 0), /must be a string or a Uint8Array/],
    ["not a Config", () => new Acquire({ instances: 3 }, "k", 0), /Config/],
    ["bad lease", () => new Extend(config, { resources: ["k"], value: "nope", ttlMs: 1, validUntil: 1 }, 0), /lease.value/],
    ["lease without validity", () => new Release(config, { resources: ["k"], value: "0".repeat(32), ttlMs: 1 }, 0), /lease.validUntil/],
    ["lease with a negative TTL", () => new Release(config, { resources: ["k"], value: "0".repeat(32), ttlMs: -1, validUntil: 1 }, 0), /^lease\.ttlMs must not be negative \(got -1\)$/],
    ["lease without resources", () => new Release(config, { value: "0".repeat(32), ttlMs: 1, validUntil: 1 }, 0), /must be a string or a Uint8Array/],
  ];
  for (const [name, run, message] of cases) {
    test(name, () => {
      assert.throws(run, (e) => e instanceof Error && message.test(e.message), name);
    });
  }

  test("replies naming a wrong instance, request or time", () => {
    const op = new Acquire(config, "k", T0);
    const [[send]] = drain(op);
    const bad = [
      [() => op.handleReply(3, send.request, "OK", T0), /instance 3 does not exist: 3 instances/],
      [() => op.handleReply(-1, send.request, "OK", T0), /instance must not be negative/],
      [() => op.handleReply(0.5, send.request, "OK", T0), /instance must be an integer/],
      [() => op.handleReply(0, 2 ** 32, "OK", T0), /request must be at most 4294967295/],
      [() => op.handleReply(0, send.request, "OK", NaN), /atMs must be a finite number/],
      [() => op.handleTransportError(99, send.request, T0), /instance 99 does not exist/],
    ];
    for (const [run, message] of bad) assert.throws(run, message);
    assert.equal(op.pollOutput().type, "wait", "refused inputs change nothing");
    assert.throws(() => op.handleTimeout(T0 - 1), /clock went backwards from 1000ms to 999ms/);
    const [releases, done] = drain(op);
    assert.equal(releases.length, 3, "time going backwards fails closed: everything sent is released");
    assert.equal(done.outcome.reason, "clockWentBackwards");
  });

  test("a stale request id is ignored, not counted", () => {
    const op = new Acquire(new Config({ instances: 1, ttlMs: 1_000 }), "k", T0);
    const [[send]] = drain(op);
    op.handleReply(0, (send.request + 1) % 2 ** 32, "OK", T0 + 1);
    assert.equal(op.pollOutput().type, "wait");
  });
});

test("version() is the crate version", () => {
  assert.match(version(), /^\d+\.\d+\.\d+/);
});
