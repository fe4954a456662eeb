// Type-checked (tsc --noEmit), never run: the declarations as a CommonJS user sees them, with a
// node-redis v4 client.
import { createClient } from "redis4";
import { Redlock, type ReleaseResult } from "redlock-wasm";

export async function withNodeRedis4(): Promise<ReleaseResult> {
  const client = createClient({ url: "redis://127.0.0.1:7001" });
  const redlock = new Redlock([client]);
  const lock = await redlock.acquire("jobs:7", 30_000);
  return lock.release();
}
