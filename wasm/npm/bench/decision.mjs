// The cost of one lock decision through the WebAssembly machines, measured from JavaScript:
// for N = 5, `new Acquire` + poll the 5 sends + the wait + 3 "OK" replies + poll the outcome
// (+ free), and the same for Extend and Release. Also the module's size, raw and gzipped.
//
//   node bench/decision.mjs [iterations=10000]

import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { gzipSync } from "node:zlib";

import { Acquire, Config, Extend, Release } from "redlock-wasm";

const iterations = Number(process.argv[2] ?? 10_000);
const N = 5;
const config = new Config({ instances: N, ttlMs: 10_000 });

function decide(op, reply) {
  const sends = [];
  let out;
  while ((out = op.pollOutput()).type === "send") sends.push(out);
  if (out.type !== "wait") throw new Error(`expected wait, got ${out.type}`);
  for (let i = 0; i < 3; i++) op.handleReply(sends[i].instance, sends[i].request, reply, 1_001);
  out = op.pollOutput();
  if (out.type !== "done") throw new Error(`expected done, got ${out.type}`);
  op.free();
  return out.outcome;
}

const lease = decide(new Acquire(config, "orders:42", 1_000), "OK").lease;
const cases = {
  acquire: () => decide(new Acquire(config, "orders:42", 1_000), "OK"),
  extend: () => decide(new Extend(config, lease, 1_000), 1),
  release: () => {
    const op = new Release(config, lease, 1_000);
    const sends = [];
    let out;
    while ((out = op.pollOutput()).type === "send") sends.push(out);
    for (const s of sends) op.handleReply(s.instance, s.request, 1, 1_001);
    out = op.pollOutput();
    op.free();
    return out;
  },
};

const results = {};
for (const [name, run] of Object.entries(cases)) {
  for (let i = 0; i < Math.min(iterations, 2_000); i++) run(); // warm up
  const start = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) run();
  const ns = Number(process.hrtime.bigint() - start) / iterations;
  results[`${name}_ns_per_decision`] = Math.round(ns);
}
const require = createRequire(import.meta.url);
const wasm = readFileSync(path.join(path.dirname(require.resolve("redlock-wasm")), "wasm/redlock_wasm_bg.wasm"));
console.log(
  JSON.stringify({
    instances: N,
    iterations,
    ...results,
    wasm_bytes: wasm.length,
    wasm_gzip_bytes: gzipSync(wasm, { level: 9 }).length,
  }),
);
