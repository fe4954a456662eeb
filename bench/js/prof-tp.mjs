// Throughput of one JS client for profiling: node --cpu-prof bench/js/prof-tp.mjs URLS wasm|node-redlock
import { performance } from "node:perf_hooks";
import Redis from "ioredis";
import Redlock from "redlock";
const [urlsArg, which = "wasm", secondsArg = "5"] = process.argv.slice(2);
const urls = urlsArg.split(",");
const clients = urls.map((u) => new Redis(u, { enableAutoPipelining: false }));
await Promise.all(clients.map((c) => c.ping()));
let cycle;
if (which === "wasm") {
  const mod = await import(new URL("../../wasm/npm/dist/index.mjs", import.meta.url).href);
  const r = new mod.Redlock(clients, {});
  cycle = async (k) => { const l = await r.acquire(k, 10000); await r.release(l); };
} else {
  const r = new Redlock(clients, {});
  cycle = async (k) => { const l = await r.acquire([k], 10000); await l.release(); };
}
let done = 0;
const cpu0 = process.cpuUsage();
const end = performance.now() + Number(secondsArg) * 1000;
await Promise.all(Array.from({ length: 64 }, async (_, h) => {
  while (performance.now() < end) { await cycle(`prof:${which}:${h}`); done++; }
}));
const cpu = process.cpuUsage(cpu0);
console.log(which, Math.round(done / Number(secondsArg)), "acq/s", ((cpu.user + cpu.system) / done).toFixed(1), "cpu us/acq");
for (const c of clients) c.disconnect();
