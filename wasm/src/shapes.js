// Builds the plain objects the machines hand to JavaScript. Rust passes numbers, codes and views
// of its memory; building the objects here costs one call instead of one per property.

const COMMANDS = ["acquire", "extend", "release"];
const FORMS = ["set", "evalsha", "eval"];
const STATUSES = [
  "notSent",
  "pending",
  "yes",
  "held",
  "transportError",
  "timedOut",
  "unexpectedReply",
  "unknown",
  "serverError:noscript",
  "serverError:readonly",
  "serverError:oom",
  "serverError:busy",
  "serverError:loading",
  "serverError:misconf",
  "serverError:wrongtype",
  "serverError:auth",
  "serverError:noperm",
  "serverError:cluster",
  "serverError:error",
];

const decoder = new TextDecoder();

// `bytes` is valid UTF-8 (Rust checked it); short ASCII is the common case and the fastest path.
function text(bytes) {
  if (bytes.length <= 64) {
    let ascii = true;
    for (let i = 0; i < bytes.length; i++) {
      if (bytes[i] > 0x7f) {
        ascii = false;
        break;
      }
    }
    if (ascii) return String.fromCharCode.apply(null, bytes);
  }
  return decoder.decode(bytes);
}

// `packed` and `ends` are views of wasm memory: copy out before returning.
export function byteList(packed, ends, binary) {
  const list = new Array(ends.length);
  let start = 0;
  for (let i = 0; i < ends.length; i++) {
    const end = ends[i];
    const bytes = packed.subarray(start, end);
    list[i] = (binary >>> i) & 1 ? bytes.slice() : text(bytes);
    start = end;
  }
  return list;
}

export function statusList(codes) {
  const list = new Array(codes.length);
  for (let i = 0; i < codes.length; i++) list[i] = STATUSES[codes[i]] ?? "unknown";
  return list;
}

export function sendOutput(instance, request, command, form, args) {
  // The argument list may be shared between the sends of one round: each output gets a copy.
  return { type: "send", instance, request, command: COMMANDS[command], form: FORMS[form], args: args.slice() };
}

export function waitOutput(until) {
  return { type: "wait", until };
}

export function doneOutput(outcome) {
  return { type: "done", outcome };
}

export function leaseObject(resources, value, ttlMs, validUntil) {
  return { resources, value, ttlMs, validUntil };
}

export function acquiredOutcome(lease, decidedAt, attempts, report) {
  return { type: "acquired", lease, decidedAt, attempts, report };
}

export function acquireFailedOutcome(reason, attempts, report) {
  return { type: "failed", reason, attempts, report };
}

export function extendedOutcome(lease, report) {
  return { type: "extended", lease, report };
}

export function extendFailedOutcome(reason, lease, report) {
  return { type: "failed", reason, lease, report };
}

export function releasedOutcome(confirmed, deleted, report) {
  return { type: "released", confirmed, deleted, report };
}
