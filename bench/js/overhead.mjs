// The JS libraries' own CPU per acquire+release, without Redis: 64 concurrent holders over five
// in-memory clients that answer every command at once (a yes for each). What is left is the
// library: its decisions, its promise plumbing and, for the WASM package, the boundary crossings.
//
//   node bench/js/overhead.mjs wasm|node-redlock [ITERATIONS]
import Redlock from "redlock";

const [which = "wasm", iterationsArg = "40000"] = process.argv.slice(2);
const iterations = Number(iterationsArg);
let cycle;
if (which === "node-redlock") {
  // node-redlock sends EVALSHA (EVAL after NOSCRIPT) and counts a reply equal to the key count.
  const client = () => ({ evalsha: (_hash, n) => Promise.resolve(n), eval: (_script, n) => Promise.resolve(n) });
  const redlock = new Redlock(Array.from({ length: 5 }, client), {});
  cycle = async (key) => {
    const lock = await redlock.acquire([key], 10_000);
    await lock.release();
  };
} else if (which === "wasm") {
  const { Redlock: WasmRedlock } = await import(new URL("../../wasm/npm/dist/index.mjs", import.meta.url).href);
  // An ioredis-shaped client: OK for SET NX, 1 for the release script.
  const client = () => ({ call: (command) => Promise.resolve(command === "SET" ? "OK" : 1) });
  const redlock = new WasmRedlock(Array.from({ length: 5 }, client), {});
  cycle = async (key) => {
    const lock = await redlock.acquire(key, 10_000);
    await redlock.release(lock);
  };
} else {
  console.error("usage: node bench/js/overhead.mjs wasm|node-redlock [ITERATIONS]");
  process.exit(2);
}

async function run(n) {
  let started = 0;
  await Promise.all(
    Array.from({ length: 64 }, async (_, holder) => {
      while (started < n) {
        started++;
        await cycle(`overhead:${holder}`);
      }
    }),
  );
}

await run(5_000); // warm-up: JIT and wasm tiers
const before = process.cpuUsage();
await run(iterations);
const cpu = process.cpuUsage(before);
console.log(`${which}: ${((cpu.user + cpu.system) / iterations).toFixed(1)} µs CPU per acquire+release (${iterations} pairs)`);
