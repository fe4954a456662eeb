// A program written for node-redlock v5 (`redlock` 5.0.0-beta.2) with ioredis. To move it to
// redlock-wasm, change its import line and nothing else:
//
//   import Redlock, { ExecutionError, ResourceLockedError } from "redlock";              // before
//   import Redlock, { ExecutionError, ResourceLockedError } from "redlock-wasm/compat";  // after
//
//   npm install redlock-wasm ioredis
//   REDIS_URLS=redis://127.0.0.1:7001,redis://127.0.0.1:7002,redis://127.0.0.1:7003 node node-redlock-app.mjs
import Redlock, { ExecutionError, ResourceLockedError } from "redlock";
import { Redis } from "ioredis";

const urls = (process.env.REDIS_URLS ?? "redis://127.0.0.1:6379").split(",");
const clients = urls.map((url) => new Redis(url));
const redlock = new Redlock(clients, {
  driftFactor: 0.01,
  retryCount: 3,
  retryDelay: 100,
  retryJitter: 50,
  automaticExtensionThreshold: 500,
});

// Every per-client failure is an "error" event; a held resource is the expected one.
const failures = [];
redlock.on("error", (error) => {
  if (!(error instanceof ResourceLockedError)) failures.push(error);
});

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Acquire two resources together, extend, release.
let lock = await redlock.acquire(["app:account:1", "app:account:2"], 2000);
console.log(`locked ${lock.resources.join(" and ")} (value of ${lock.value.length} characters)`);
console.log(`valid for about ${Math.round((lock.expiration - Date.now()) / 1000)} s`);
const old = lock;
lock = await lock.extend(5000);
console.log(`extended: the old handle's expiration is ${old.expiration}, the new one is later: ${lock.expiration > Date.now() + 4000}`);
const released = await lock.release();
const votes = await released.attempts[0];
console.log(`released on a quorum: ${votes.votesFor.size >= votes.quorumSize} (${votes.quorumSize} of ${votes.membershipSize})`);

// Contention: the error carries every attempt's votes.
const held = await redlock.acquire(["app:job"], 5000);
try {
  await redlock.acquire(["app:job"], 1000, { retryCount: 2 });
} catch (error) {
  if (!(error instanceof ExecutionError)) throw error;
  const attempts = await Promise.all(error.attempts);
  const against = [...attempts[0].votesAgainst.values()];
  console.log(`contended: ${error.message}`);
  console.log(`${attempts.length} attempts; the first had ${against.length} votes against (${against[0].name}: ${against[0].message}); quorum ${attempts[0].quorumSize} of ${attempts[0].membershipSize}`);
}
await held.release();

// A routine under an automatically extended lock.
const total = await redlock.using(["app:report"], 1000, async (signal) => {
  await sleep(1500);
  if (signal.aborted) throw signal.error;
  return 42;
});
console.log(`using() returned ${total} after outliving the lock's first duration`);

await redlock.quit();
console.log(`unexpected client failures: ${failures.length}`);
