export { Redlock as default, Redlock, Lock, ExecutionError, ResourceLockedError } from "./compat.js";
export type {
  AcquireSettings,
  Client,
  ClientExecutionResult,
  ExecutionFailure,
  ExecutionResult,
  ExecutionStats,
  ExtraOptions,
  ExtraSettings,
  RedlockAbortSignal,
  Resource,
  Settings,
} from "./compat.js";
