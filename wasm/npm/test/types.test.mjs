// The TypeScript program written for node-redlock (test/types-node-redlock/program.ts, checked
// against node-redlock's declarations) and its copies checked against redlock-wasm/compat
// (test/types/compat-program.ts and .mts) differ only in their import line: what type-checks
// against node-redlock type-checks against compat with one import changed. (`make test-wasm`
// runs tsc on both sides.)

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

const read = (p) => readFileSync(new URL(p, import.meta.url), "utf8");
/** The code without the leading comment block. */
const body = (text) => text.replace(/^(\/\/.*\n)+/, "");

test("the compat TypeScript programs are node-redlock's with only the import changed", () => {
  const original = body(read("./types-node-redlock/program.ts"));
  assert.match(original, /from "redlock";/);
  for (const copy of ["./types/compat-program.ts", "./types/compat-program.mts"]) {
    const lines = body(read(copy)).split("\n");
    const diff = original.split("\n").flatMap((line, i) => (line === lines[i] ? [] : [[line, lines[i]]]));
    assert.equal(lines.length, original.split("\n").length, copy);
    assert.equal(diff.length, 1, `${copy}: ${JSON.stringify(diff)}`);
    const [[from, to]] = diff;
    assert.equal(to, from.replace('from "redlock";', 'from "redlock-wasm/compat";'), copy);
  }
});

test("with the old node10 module resolution too (typesVersions maps redlock-wasm/compat)", { timeout: 120_000 }, async () => {
  const { execFile } = await import("node:child_process");
  const { promisify } = await import("node:util");
  const { mkdtempSync, mkdirSync, rmSync, symlinkSync, copyFileSync, writeFileSync } = await import("node:fs");
  const os = await import("node:os");
  const path = await import("node:path");
  const { fileURLToPath } = await import("node:url");
  const npmDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
  const dir = mkdtempSync(path.join(os.tmpdir(), "redlock-node10-"));
  try {
    mkdirSync(path.join(dir, "node_modules"));
    symlinkSync(npmDir, path.join(dir, "node_modules/redlock-wasm"), "dir");
    symlinkSync(path.join(npmDir, "node_modules/ioredis"), path.join(dir, "node_modules/ioredis"), "dir");
    symlinkSync(path.join(npmDir, "node_modules/@types"), path.join(dir, "node_modules/@types"), "dir");
    copyFileSync(path.join(npmDir, "test/types/compat-program.ts"), path.join(dir, "program.ts"));
    writeFileSync(
      path.join(dir, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          target: "es2022",
          module: "commonjs",
          moduleResolution: "node10",
          esModuleInterop: true,
          strict: true,
          noEmit: true,
          types: ["node"],
          skipLibCheck: true,
        },
        files: ["program.ts"],
      }),
    );
    await promisify(execFile)(path.join(npmDir, "node_modules/.bin/tsc"), ["-p", dir], { timeout: 100_000 });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
