// The ES module entry: the CommonJS build re-exported, so `import` and `require` share one
// WebAssembly instance and one set of classes (no dual-package hazard).
import cjs from "./index.js";

export const {
  Redlock,
  Lock,
  RedlockError,
  ContendedError,
  NoQuorumError,
  LockLostError,
  Acquire,
  Extend,
  Release,
  Config,
  scripts,
  version,
} = cjs;
