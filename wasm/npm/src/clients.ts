// The host's Redis clients, seen alike: send one command, get its reply or learn whether the
// failure was a Redis error reply (the instance answered) or a transport failure (it did not).

import type { Bytes } from "./wasm/redlock_wasm.js";

/** A command argument as the clients take it. */
export type RedisArgument = string | Buffer;

/**
 * A node-redis client (v4 or v5, `createClient()`), or anything with the same
 * `sendCommand(args)`; wrap a node-redis cluster as
 * `{ sendCommand: (args) => cluster.sendCommand(args[3], false, args) }`.
 */
export interface SendCommandClient {
  sendCommand(args: RedisArgument[]): Promise<unknown>;
}

/** An ioredis `Redis` or `Cluster` client, or anything with the same `call(command, ...args)`. */
export interface CallClient {
  call(command: string, ...args: RedisArgument[]): Promise<unknown>;
}

/** A Redis client the `Redlock` accepts: node-redis v4/v5 or ioredis. */
export type RedisClient = SendCommandClient | CallClient;

/** How one command ended: a reply, a Redis error reply, or a transport failure. */
export type Answer =
  | { kind: "reply"; reply: unknown }
  | { kind: "replyError"; error: Error }
  | { kind: "transportError"; error: unknown };

/** One client behind one function. @internal */
export type Send = (args: Bytes[]) => Promise<Answer>;

function toArgument(a: Bytes): RedisArgument {
  return typeof a === "string" ? a : Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

/**
 * Whether a client's error is a Redis error reply: node-redis `ErrorReply` (and its v5
 * subclasses) or ioredis `ReplyError`. Anything else is a transport failure.
 * @internal
 */
export function isReplyError(error: unknown): error is Error {
  if (!(error instanceof Error)) return false;
  for (
    let proto = Object.getPrototypeOf(error);
    proto && proto !== Error.prototype;
    proto = Object.getPrototypeOf(proto)
  ) {
    const name = proto.constructor?.name;
    if (name === "ErrorReply" || name === "ReplyError") return true;
  }
  return false;
}

function settle(p: () => Promise<unknown>): Promise<Answer> {
  let promise: Promise<unknown>;
  try {
    promise = p();
  } catch (error) {
    promise = Promise.reject(error);
  }
  return Promise.resolve(promise).then(
    (reply): Answer => ({ kind: "reply", reply }),
    (error): Answer =>
      isReplyError(error) ? { kind: "replyError", error } : { kind: "transportError", error },
  );
}

/**
 * The send function for a client. Throws a `TypeError` for something that is not a supported
 * client.
 * @internal
 */
export function sender(client: RedisClient, index: number): Send {
  const c = client as Partial<SendCommandClient & CallClient> | null;
  if (c && typeof c.call === "function") {
    const call = c.call.bind(c);
    return (args) => settle(() => call(args[0] as string, ...args.slice(1).map(toArgument)));
  }
  if (c && typeof c.sendCommand === "function") {
    const sendCommand = c.sendCommand.bind(c);
    return (args) => settle(() => sendCommand(args.map(toArgument)));
  }
  throw new TypeError(
    `client ${index} is not a Redis client: expected a node-redis client (sendCommand) or an ioredis client (call)`,
  );
}
