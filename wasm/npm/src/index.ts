// redlock-wasm: Redlock for Node.js. The async `Redlock` most users need, and the state machines
// underneath for hosts that move the bytes themselves.

export {
  Redlock,
  Lock,
  type RedlockOptions,
  type RedlockSettings,
  type AcquireOptions,
  type UsingOptions,
  type ReleaseResult,
} from "./redlock.js";
export {
  RedlockError,
  ContendedError,
  NoQuorumError,
  LockLostError,
  type FailureReason,
  type InstanceResult,
} from "./errors.js";
export type { RedisClient, SendCommandClient, CallClient, RedisArgument } from "./clients.js";
export type { Exchange } from "./driver.js";
export {
  Acquire,
  Extend,
  Release,
  Config,
  scripts,
  version,
  type AcquireFailure,
  type AcquireOutcome,
  type Bytes,
  type CommandForm,
  type CommandKind,
  type ConfigOptions,
  type DoneOutput,
  type ExtendFailure,
  type ExtendOutcome,
  type InstanceStatus,
  type Lease,
  type Output,
  type ReleaseOutcome,
  type Reply,
  type Resource,
  type Script,
  type SendOutput,
  type ServerErrorKind,
  type WaitOutput,
} from "./wasm/redlock_wasm.js";
