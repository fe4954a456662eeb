// Processes orders under a Redlock lock taken on N independent Redis masters.
//
//   npm install redlock-wasm redis
//   REDIS_URLS=redis://127.0.0.1:7001,redis://127.0.0.1:7002,redis://127.0.0.1:7003 node orders.mjs
import { createClient } from "redis";
import { ContendedError, NoQuorumError, Redlock } from "redlock-wasm";

const urls = (process.env.REDIS_URLS ?? "redis://127.0.0.1:6379").split(",");
const clients = await Promise.all(
  urls.map(async (url) => {
    const client = createClient({ url });
    client.on("error", (e) => console.error(`${url}: ${e.message}`));
    await client.connect();
    return client;
  }),
);
// One client per independent master (not replicas of one another). 5 ± 2 retries 200 ms apart.
const redlock = new Redlock(clients, { retryCount: 5 });

/** Some work that honours an AbortSignal, as fetch() and most Node APIs do. */
function work(ms, signal) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(signal.reason);
    });
  });
}

async function processOrder(id) {
  try {
    // Held for as long as the routine runs: extended in the background, released at the end.
    // `signal` aborts if the lock is lost (a majority unreachable, keys taken) before it expires.
    return await redlock.using(`orders:${id}`, 10_000, async (signal, lock) => {
      await work(50, signal);
      return `processed order ${id} (lock value ${lock.value}, ${lock.remainingMs()} ms left)`;
    });
  } catch (e) {
    if (e instanceof ContendedError) return `order ${id} is being processed elsewhere`;
    if (e instanceof NoQuorumError) return `order ${id} skipped: Redis unavailable (${e.message})`;
    throw e;
  }
}

// Or take, check and release a lock by hand.
async function reserveStock(sku) {
  const lock = await redlock.acquire(`stock:${sku}`, 5_000);
  try {
    await work(10, AbortSignal.timeout(lock.remainingMs()));
    if (!lock.isValid()) throw new Error("lock expired before the reservation was committed");
    return `reserved ${sku}`;
  } finally {
    await lock.release();
  }
}

console.log(await Promise.all([processOrder(42), processOrder(43)]));
console.log(await reserveStock("sku-1"));
await Promise.all(clients.map((c) => c.quit()));
