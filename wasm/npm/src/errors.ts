// Why a lock operation failed, told apart by class and by `reason`.

import type { AcquireFailure, Bytes, ExtendFailure, InstanceStatus } from "./wasm/redlock_wasm.js";

/** One instance's part in an operation. */
export interface InstanceResult {
  /** Its index in the clients given to the `Redlock`. */
  instance: number;
  /** What it contributed. */
  status: InstanceStatus;
  /** The client's error (a Redis error reply or a connection failure), when it failed so. */
  error?: unknown;
}

/** Why an operation failed: the core's reasons, plus `extensionFailed` for `using()`. */
export type FailureReason = AcquireFailure | ExtendFailure | "extensionFailed";

function describe(instances: readonly InstanceResult[]): string {
  return instances
    .map((r) => {
      const detail =
        r.error instanceof Error ? ` (${r.error.message})` : r.error !== undefined ? ` (${String(r.error)})` : "";
      return `${r.instance}: ${r.status}${detail}`;
    })
    .join(", ");
}

function keys(resources: readonly Bytes[]): string {
  return resources.map((r) => (typeof r === "string" ? JSON.stringify(r) : `<${r.length} bytes>`)).join(", ");
}

const MESSAGES: Record<FailureReason, string> = {
  contended: "is held by another holder",
  noQuorum: "could not be taken: not enough redis instances answered for a quorum",
  validityExhausted: "could not be taken: validity ran out before a quorum answered",
  cancelled: "was not taken: the operation was cancelled",
  clockWentBackwards: "failed closed: the clock went backwards",
  expired: "is lost: its validity had already run out",
  lost: "is lost: its keys are no longer held on a quorum of instances",
  extensionFailed: "is lost: extensions kept failing until too little validity was left",
};

/**
 * A lock operation that failed for a protocol reason (not misuse, which throws a plain
 * `Error`/`TypeError`). Subclasses tell contention, outages and loss apart.
 */
export class RedlockError extends Error {
  /** Why. */
  readonly reason: FailureReason;
  /** The keys of the lock. */
  readonly resources: readonly Bytes[];
  /** Attempts made (1 for extend). */
  readonly attempts: number;
  /** Per-instance results of the last attempt. */
  readonly instances: readonly InstanceResult[];

  /** @internal */
  constructor(
    reason: FailureReason,
    resources: readonly Bytes[],
    attempts: number,
    instances: readonly InstanceResult[],
  ) {
    const tail = instances.length > 0 ? ` [${describe(instances)}]` : "";
    const tries = attempts > 1 ? ` after ${attempts} attempts` : "";
    super(`lock on ${keys(resources)} ${MESSAGES[reason] ?? reason}${tries}${tail}`);
    this.name = new.target.name;
    this.reason = reason;
    this.resources = resources;
    this.attempts = attempts;
    this.instances = instances;
  }
}

/** Another holder has the lock (`reason: "contended"`); retrying later may succeed. */
export class ContendedError extends RedlockError {}

/**
 * Not enough instances were reachable and working for a quorum (`reason: "noQuorum"`): an
 * outage, not contention. `instances` says which failed and how.
 */
export class NoQuorumError extends RedlockError {}

/**
 * The lock is no longer held: an extend found its keys gone or taken (`lost`), its validity had
 * run out (`expired`), or `using()` could not extend it in time (`extensionFailed`).
 */
export class LockLostError extends RedlockError {}

/** The error class for a failure reason. @internal */
export function failure(
  reason: FailureReason,
  resources: readonly Bytes[],
  attempts: number,
  instances: readonly InstanceResult[],
): RedlockError {
  switch (reason) {
    case "contended":
      return new ContendedError(reason, resources, attempts, instances);
    case "noQuorum":
      return new NoQuorumError(reason, resources, attempts, instances);
    case "lost":
    case "expired":
    case "extensionFailed":
      return new LockLostError(reason, resources, attempts, instances);
    default:
      return new RedlockError(reason, resources, attempts, instances);
  }
}
