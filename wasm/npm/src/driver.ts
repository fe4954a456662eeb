// The drive loop: polls a machine, sends every command at once, feeds back replies, failures
// and deadlines with the time they happened. No protocol decision is made here.

import type { Bytes, CommandForm, CommandKind, Output, Reply } from "./wasm/redlock_wasm.js";
import type { Answer, Send } from "./clients.js";
import type { Handoff, Subscription } from "./handoff.js";

/** What the three machines have in common. @internal */
export interface Machine<O> {
  pollOutput(): Output<O>;
  handleReply(instance: number, request: number, reply: Reply, atMs: number): void;
  handleTransportError(instance: number, request: number, atMs: number): void;
  handleTimeout(nowMs: number): void;
  free(): void;
  /** The current attempt (acquire only). */
  readonly attempt?: number;
  /** Acquire only: waiting to retry after a failed attempt. */
  readonly isWaitingToRetry?: boolean;
  /** Acquire only: a release was announced; retry within `spreadMs` of `nowMs`. */
  wake?(nowMs: number, spreadMs: number): boolean;
}

/** One command as it was sent and how it ended, for `onExchange` observers. */
export interface Exchange {
  instance: number;
  request: number;
  command: CommandKind;
  form: CommandForm;
  args: Bytes[];
  answer: Answer;
  /** The acquire attempt (1-based) that was running when the command was sent; 1 otherwise. */
  attempt: number;
  /** The machine had already finished when the answer came. */
  late: boolean;
}

/** @internal */
export interface DriveOptions {
  /** Monotonic milliseconds. */
  clock: () => number;
  /** Aborting it calls `cancel` (acquire only), then the loop runs to the machine's outcome. */
  signal?: AbortSignal;
  cancel?: (nowMs: number) => void;
  /** Called for every answered command, late ones included. */
  observe?: (exchange: Exchange) => void;
  /** Called for every command as it is sent, with the attempt it belongs to. */
  sent?: (send: { instance: number; request: number; command: CommandKind; form: CommandForm }, attempt: number) => void;
  /**
   * Fast handoff (acquire only): once the machine waits to retry, subscribe to the release
   * announcements of `resources`; a counted release moves the retry up.
   */
  handoff?: { registry: Handoff; resources: readonly Bytes[] };
}

/**
 * How far apart the retries of waiters woken by one release are spread after their first wake-up
 * (the first retries at once): waiters of different processes that keep colliding stop retrying
 * at the same instant (docs/fast-handoff.md).
 */
const HANDOFF_SPREAD_MS = 2;

/** @internal */
export interface Driven<O> {
  outcome: O;
  /** The last client error seen per instance. */
  errors: unknown[];
  /** The signal was aborted during the run. */
  cancelled: boolean;
}

/** Node's timers overflow above 2^31 - 1 ms; longer waits are cut into pieces. @internal */
export const MAX_TIMER_MS = 2 ** 31 - 1;

interface Arrival {
  instance: number;
  request: number;
  answer: Answer;
  at: number;
}

/**
 * Runs `machine` to its outcome over `sends` (one per instance), then frees it.
 * @internal
 */
export async function drive<O>(
  machine: Machine<O>,
  sends: readonly Send[],
  options: DriveOptions,
): Promise<Driven<O>> {
  const { clock, signal, cancel, observe, sent, handoff } = options;
  const arrivals: Arrival[] = [];
  const errors: unknown[] = new Array(sends.length).fill(undefined);
  let wake: (() => void) | undefined;
  // The pending timer and the deadline it was set for.
  let timer: ReturnType<typeof setTimeout> | undefined;
  let timerUntil = Number.NaN;
  const onTimer = () => {
    timer = undefined;
    timerUntil = Number.NaN;
    wake?.();
  };
  let finished = false;
  let cancelRequested = false;
  let cancelled = false;
  // Fast handoff: the subscription (from the first wait to retry until the end), whether a
  // counted release is owed to the machine, and whether it was woken before.
  let subscription: Subscription | undefined;
  let wakeOwed = false;
  let wokenBefore = false;
  const waiter = {
    notify() {
      wakeOwed = true;
      wake?.();
    },
  };
  const onAbort = () => {
    cancelRequested = true;
    wake?.();
  };
  if (cancel && signal) {
    if (signal.aborted) cancelRequested = true;
    else signal.addEventListener("abort", onAbort, { once: true });
  }

  // A misuse error from a machine can only be the clock going backwards: the machine has then
  // failed closed and its outcome says so, so the loop goes on to deliver it.
  const feed = (input: () => void) => {
    try {
      input();
    } catch {
      /* see above */
    }
  };

  const dispatch = (out: { instance: number; request: number; command: CommandKind; form: CommandForm; args: Bytes[] }) => {
    const send = sends[out.instance];
    const attempt = machine.attempt ?? 1;
    sent?.(out, attempt);
    const answered = (answer: Answer) => {
      if (answer.kind !== "reply") errors[out.instance] = answer.error;
      observe?.({ ...out, answer, attempt, late: finished });
      if (finished) return;
      arrivals.push({ instance: out.instance, request: out.request, answer, at: clock() });
      wake?.();
    };
    if (send === undefined) {
      // Unreachable: the machines only name configured instances.
      answered({ kind: "transportError", error: new Error(`no client for instance ${out.instance}`) });
      return;
    }
    send(out.args).then(answered);
  };

  try {
    for (;;) {
      let out = machine.pollOutput();
      while (out.type === "send") {
        dispatch(out);
        out = machine.pollOutput();
      }
      if (out.type === "done") {
        finished = true;
        return { outcome: out.outcome, errors, cancelled };
      }
      if (handoff && machine.isWaitingToRetry) {
        subscription ??= handoff.registry.subscribe(handoff.resources, waiter);
        // A wake owed while an attempt ran takes effect now that the machine waits again.
        if (wakeOwed) {
          wakeOwed = false;
          const spread = wokenBefore ? HANDOFF_SPREAD_MS : 0;
          wokenBefore = true;
          feed(() => machine.wake?.(clock(), spread));
          continue;
        }
      }
      if (arrivals.length === 0 && !(cancelRequested && !cancelled)) {
        // One timer per deadline, not per wait: the replies of a round arrive one by one and
        // the deadline only moves between rounds.
        if (timer === undefined || timerUntil !== out.until) {
          if (timer !== undefined) clearTimeout(timer);
          timerUntil = out.until;
          const delay = Math.min(MAX_TIMER_MS, Math.max(0, Math.ceil(out.until - clock())));
          timer = setTimeout(onTimer, delay);
        }
        await new Promise<void>((resolve) => {
          wake = () => {
            wake = undefined;
            resolve();
          };
        });
      }
      if (arrivals.length > 0) {
        for (const { instance, request, answer, at } of arrivals.splice(0)) {
          if (answer.kind === "transportError") {
            feed(() => machine.handleTransportError(instance, request, at));
          } else {
            const reply: Reply =
              answer.kind === "reply" ? (answer.reply as Reply) : { error: answer.error.message };
            feed(() => machine.handleReply(instance, request, reply, at));
          }
        }
      } else if (!(cancelRequested && !cancelled)) {
        feed(() => machine.handleTimeout(clock()));
      }
      if (cancelRequested && !cancelled) {
        cancelled = true;
        feed(() => cancel?.(clock()));
      }
    }
  } finally {
    finished = true;
    if (timer !== undefined) clearTimeout(timer);
    subscription?.end();
    signal?.removeEventListener("abort", onAbort);
    machine.free();
  }
}
