//! `redlock_op`: one acquire, extend or release, driven by the caller's I/O and clock.

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use redlock_core::{
    Acquire, AcquireFailure, AcquireOutcome, Command, CommandKind, Extend, ExtendFailure,
    ExtendOutcome, Input, InstanceStatus, Instant, Output, Release, Report, RequestId, Resources,
    ServerError, MAX_KEY_LEN, MAX_RESOURCES,
};

use crate::boundary::{
    check_out, ffi_result, ffi_value, free_handle, into_handle, try_mut, try_ref, try_slice,
    write_out,
};
use crate::config::redlock_config;
use crate::lease::redlock_lease;
use crate::reply::redlock_reply;
use crate::result::redlock_result;

// The capacities are literals so cbindgen can write them into the header; the assertions keep
// them equal to the core's.
/// The longest resource key, in bytes.
pub const REDLOCK_MAX_KEY_LEN: usize = 512;
/// The most resource keys one lock may cover.
pub const REDLOCK_MAX_RESOURCES: usize = 8;
/// The most key bytes one lock may hold across all its keys.
pub const REDLOCK_MAX_RESOURCES_LEN: usize = 1024;
/// The length of the seed `redlock_acquire_seeded_new` takes.
pub const REDLOCK_SEED_LEN: usize = 32;
const _: () = assert!(REDLOCK_MAX_KEY_LEN == MAX_KEY_LEN);
const _: () = assert!(REDLOCK_MAX_RESOURCES == MAX_RESOURCES);
const _: () = assert!(REDLOCK_MAX_RESOURCES_LEN == redlock_core::MAX_RESOURCES_LEN);

/// What `redlock_op_poll` asks for.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum redlock_output_kind {
    /// Send the command in the output to instance `instance`, remember `request` with it, then
    /// poll again: more may follow.
    Send = 1,
    /// Nothing to send: wait until a reply arrives or `until_ms` is reached, then feed it
    /// (`redlock_op_handle_reply`, `_handle_transport_error`, `_handle_timeout`) and poll again.
    Wait = 2,
    /// Finished with `outcome`. Terminal: polling again says DONE again. Replies that still
    /// arrive may be fed (they are ignored) or dropped.
    Done = 3,
}

/// What a command does on its instance.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum redlock_command_kind {
    /// Not a SEND output.
    None = 0,
    /// Sets the lock keys if absent (`SET key value NX PX ttl`, or a script for several keys).
    Acquire = 1,
    /// Resets the TTL of keys still holding our value (a script).
    Extend = 2,
    /// Deletes keys still holding our value (a script). An acquire sends these too, to clean
    /// up after a failed attempt.
    Release = 3,
}

/// How an operation ended.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum redlock_outcome {
    /// Not finished yet.
    None = 0,
    /// Acquire: a quorum holds our value; `redlock_op_lease` gives the lease.
    Acquired = 1,
    /// Extend: a quorum reset the TTL; `redlock_op_lease` gives the extended lease.
    Extended = 2,
    /// Release: a quorum confirmed our keys are gone.
    Released = 3,
    /// Release: too few instances confirmed; some keys may stay until their TTL.
    ReleaseUnconfirmed = 4,
    /// Acquire: another holder has the lock (after all retries).
    Contended = 5,
    /// Acquire or extend: too many instances unreachable or failing for a quorum.
    NoQuorum = 6,
    /// Acquire or extend: a quorum answered too late to leave the minimum validity.
    ValidityExhausted = 7,
    /// Acquire: `redlock_op_cancel` was called.
    Cancelled = 8,
    /// Acquire or extend: the caller's clock went backwards; failed closed.
    ClockWentBackwards = 9,
    /// Extend: the keys no longer hold our value on enough instances; the lock is lost.
    Lost = 10,
    /// Extend: the lease had expired before the extend began; nothing was sent.
    Expired = 11,
    /// Failed for a reason this version of the binding does not name.
    Failed = 12,
}

/// What one instance contributed to a finished operation.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum redlock_instance_status {
    /// No command was sent to it (the decision came first).
    NotSent = 0,
    /// Sent; no answer had arrived when the operation decided.
    Pending = 1,
    /// Counted for the quorum: locked / extended / deleted.
    Yes = 2,
    /// Answered, but the key holds another value (or, for extend and release, not ours).
    Held = 3,
    /// A Redis error reply; see `server_error`.
    ServerError = 4,
    /// The caller reported a transport failure.
    TransportError = 5,
    /// No answer within the instance timeout.
    TimedOut = 6,
    /// An answer of a type the command cannot return.
    UnexpectedReply = 7,
    /// A status this version of the binding does not name.
    Unknown = 8,
}

/// The class of a Redis error reply, by its first word.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum redlock_server_error {
    /// Not a server error.
    None = 0,
    /// `NOSCRIPT` (handled by the library: it resends the full script).
    NoScript = 1,
    /// `READONLY`: the instance is a replica.
    ReadOnly = 2,
    /// `OOM`: maxmemory reached.
    OutOfMemory = 3,
    /// `BUSY`: a script runs too long.
    Busy = 4,
    /// `LOADING`: the instance is loading its data.
    Loading = 5,
    /// `MISCONF`: persistence is failing.
    MisConf = 6,
    /// `WRONGTYPE`: the key holds a non-string value.
    WrongType = 7,
    /// `NOAUTH` / `WRONGPASS`.
    Auth = 8,
    /// `NOPERM`: the ACL user may not run the command.
    NoPerm = 9,
    /// Cluster routing errors (`MOVED`, `ASK`, `CLUSTERDOWN`...).
    Cluster = 10,
    /// Any other error.
    Other = 11,
}

/// One instance's part in a finished operation (`redlock_op_report`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct redlock_instance_report {
    /// What it contributed.
    pub status: redlock_instance_status,
    /// For `REDLOCK_INSTANCE_STATUS_SERVER_ERROR`, the error's class; otherwise NONE.
    pub server_error: redlock_server_error,
}

/// One output of `redlock_op_poll`, written into caller memory.
///
/// Fields by `kind`:
/// - SEND: `instance` (0..N-1), `request` (give it back with the reply), `command`, and the
///   command twice over: as an argument vector (`argc` arguments, `argv[i]` pointing to
///   `argv_len[i]` bytes, not NUL-terminated; for hiredis `redisAppendCommandArgv`) and as RESP
///   bytes (`resp`, `resp_len`; for a plain socket). Send one of the two.
/// - WAIT: `until_ms`.
/// - DONE: `outcome`.
///
/// Other fields are 0 or NULL. The pointers point into the operation and stay valid until the
/// next call that takes the operation as non-const (`redlock_op_poll`, `_handle_*`, `_cancel`,
/// `_free`): copy or send the command before that.
///
/// Request ids are unique within one operation only: never feed a reply to an operation other
/// than the one whose SEND it answers.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct redlock_output {
    /// SEND, WAIT or DONE.
    pub kind: redlock_output_kind,
    /// SEND: the instance to send to.
    pub instance: u32,
    /// SEND: the id to hand back with the reply.
    pub request: u32,
    /// SEND: what the command does.
    pub command: redlock_command_kind,
    /// SEND: the number of arguments, the command name included.
    pub argc: usize,
    /// SEND: `argc` pointers to the arguments.
    pub argv: *const *const u8,
    /// SEND: `argc` argument lengths.
    pub argv_len: *const usize,
    /// SEND: the command encoded as a RESP array of bulk strings.
    pub resp: *const u8,
    /// SEND: the length of `resp`.
    pub resp_len: usize,
    /// WAIT: the deadline, in milliseconds on the caller's clock.
    pub until_ms: u64,
    /// DONE: how it ended.
    pub outcome: redlock_outcome,
}

impl redlock_output {
    fn empty(kind: redlock_output_kind) -> Self {
        Self {
            kind,
            instance: 0,
            request: 0,
            command: redlock_command_kind::None,
            argc: 0,
            argv: std::ptr::null(),
            argv_len: std::ptr::null(),
            resp: std::ptr::null(),
            resp_len: 0,
            until_ms: 0,
            outcome: redlock_outcome::None,
        }
    }
}

// The machines are fixed-size by design (no allocation in the core); the operation itself is
// boxed, so the size difference costs nothing worth an extra allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Machine {
    Acquire(Acquire<ChaCha20Rng>),
    Extend(Extend),
    Release(Release),
}

/// The last command handed out, owned by the operation so its pointers stay put.
#[derive(Debug, Default)]
struct SendBuffer {
    bytes: Vec<u8>,
    argv: Vec<*const u8>,
    argv_len: Vec<usize>,
    resp: Vec<u8>,
}

impl SendBuffer {
    fn fill(&mut self, command: &Command<'_>) {
        self.bytes.clear();
        self.argv_len.clear();
        self.argv.clear();
        for arg in command.args() {
            self.bytes.extend_from_slice(arg);
            self.argv_len.push(arg.len());
        }
        // Pointers only once `bytes` stops growing.
        let mut offset = 0;
        for len in &self.argv_len {
            self.argv.push(self.bytes.as_ptr().wrapping_add(offset));
            offset += len;
        }
        self.resp.clear();
        self.resp.resize(command.resp_len(), 0);
        let _ = command.encode_resp(&mut self.resp);
    }
}

/// One Redlock operation — an acquire, an extend or a release — as a state machine. The caller
/// does the I/O: poll it for commands to send and deadlines to wait for, feed it replies,
/// transport errors and timeouts, each with the time on the caller's monotonic clock.
///
/// **The contract: feed monotonic time with every input, then drain `redlock_op_poll` until it
/// returns WAIT or DONE; a lease is valid only until its `valid_until_ms` on your clock.**
///
/// Created by `redlock_acquire_new`, `redlock_acquire_all_new`, `redlock_acquire_seeded_new`,
/// `redlock_extend_new` or `redlock_release_new`; owned by the caller; freed with
/// `redlock_op_free` (which sends nothing: finish or cancel an acquire first, or its keys stay
/// until their TTL). Not safe for concurrent use; may be moved between threads.
#[derive(Debug)]
pub struct redlock_op {
    machine: Machine,
    send: SendBuffer,
}

// SAFETY: the raw pointers in `send` point into `send.bytes`, owned by the same value; nothing
// is shared with another object, so moving the operation to another thread is sound.
unsafe impl Send for redlock_op {}

/// Builds the resources from C arrays, checking lengths before touching memory.
///
/// # Safety
/// Non-NULL arrays must hold `n_keys` elements; each non-NULL key `key_lens[i]` bytes.
unsafe fn resources(
    keys: *const *const u8,
    key_lens: *const usize,
    n_keys: usize,
) -> Result<Resources, redlock_result> {
    if n_keys == 0 {
        return Err(redlock_result::NoResources);
    }
    if keys.is_null() || key_lens.is_null() {
        return Err(redlock_result::NullParameter);
    }
    if n_keys > MAX_RESOURCES {
        return Err(redlock_result::TooManyResources);
    }
    // SAFETY: non-NULL arrays of `n_keys` elements (caller contract).
    let (keys, lens) = unsafe { (try_slice(keys, n_keys)?, try_slice(key_lens, n_keys)?) };
    let mut resources = Resources::new();
    for (&key, &len) in keys.iter().zip(lens) {
        if len > MAX_KEY_LEN {
            return Err(redlock_result::KeyTooLong);
        }
        // SAFETY: `len` readable bytes at `key` (caller contract); the length is bounded above.
        resources.push(unsafe { try_slice(key, len) }?)?;
    }
    Ok(resources)
}

fn os_rng() -> Result<ChaCha20Rng, redlock_result> {
    let mut seed = [0u8; REDLOCK_SEED_LEN];
    getrandom::getrandom(&mut seed).map_err(|_| redlock_result::RandomUnavailable)?;
    Ok(ChaCha20Rng::from_seed(seed))
}

/// # Safety
/// `config` NULL or live; `op_out` checked by the caller of this helper.
unsafe fn start_acquire(
    config: *const redlock_config,
    resources: Resources,
    rng: ChaCha20Rng,
    now_ms: u64,
    op_out: *mut *mut redlock_op,
) -> Result<(), redlock_result> {
    // SAFETY: per the caller.
    let config = unsafe { try_ref(config) }?.config;
    let machine = Acquire::new(config, resources, rng, Instant::from_millis(now_ms))?;
    let op = redlock_op {
        machine: Machine::Acquire(machine),
        send: SendBuffer::default(),
    };
    // SAFETY: `op_out` was checked non-NULL by the caller of this helper.
    unsafe { write_out(op_out, into_handle(op)) };
    Ok(())
}

/// Starts acquiring one resource key (`key_len` bytes at `key`, binary allowed) at `now_ms`,
/// with the TTL, retries and timeouts of `config`. Lock values and retry jitter come from a
/// ChaCha20 generator seeded from the operating system (getrandom).
///
/// Errors: `REDLOCK_RESULT_EMPTY_KEY`, `REDLOCK_RESULT_KEY_TOO_LONG` (more than
/// `REDLOCK_MAX_KEY_LEN` bytes; checked before the key is read), `REDLOCK_RESULT_RANDOM_UNAVAILABLE`,
/// `REDLOCK_RESULT_NULL_PARAMETER`.
///
/// On success `*op_out` is a new operation owned by the caller (free with `redlock_op_free`);
/// its first commands are ready to poll. The configuration is copied.
#[no_mangle]
pub unsafe extern "C" fn redlock_acquire_new(
    config: *const redlock_config,
    key: *const u8,
    key_len: usize,
    now_ms: u64,
    op_out: *mut *mut redlock_op,
) -> redlock_result {
    ffi_result! {
        let out = check_out(op_out)?;
        // SAFETY: one key of `key_len` bytes (caller contract).
        let resources = unsafe { resources(&key, &key_len, 1) }?;
        // SAFETY: forwarded caller contract; `out` checked.
        unsafe { start_acquire(config, resources, os_rng()?, now_ms, out) }
    }
}

/// Starts acquiring several resource keys together (on each instance all of them or none):
/// `keys[i]` points to `key_lens[i]` bytes, for `i < n_keys`. Otherwise as
/// `redlock_acquire_new`.
///
/// Errors: as `redlock_acquire_new`, and `REDLOCK_RESULT_NO_RESOURCES` (`n_keys` is 0),
/// `REDLOCK_RESULT_TOO_MANY_RESOURCES`, `REDLOCK_RESULT_DUPLICATE_RESOURCE`.
#[no_mangle]
pub unsafe extern "C" fn redlock_acquire_all_new(
    config: *const redlock_config,
    keys: *const *const u8,
    key_lens: *const usize,
    n_keys: usize,
    now_ms: u64,
    op_out: *mut *mut redlock_op,
) -> redlock_result {
    ffi_result! {
        let out = check_out(op_out)?;
        // SAFETY: arrays of `n_keys` (caller contract).
        let resources = unsafe { resources(keys, key_lens, n_keys) }?;
        // SAFETY: forwarded caller contract; `out` checked.
        unsafe { start_acquire(config, resources, os_rng()?, now_ms, out) }
    }
}

/// As `redlock_acquire_all_new`, but lock values and jitter come from a ChaCha20 generator
/// seeded with the caller's `seed` (exactly `REDLOCK_SEED_LEN` = 32 bytes), for hosts without
/// an OS random source or for reproducible tests. The seed MUST be secret and never reused:
/// two operations with the same seed write the same lock values, and a holder could then
/// release or extend another's lock.
///
/// Errors: as `redlock_acquire_all_new`, and `REDLOCK_RESULT_INVALID_PARAMETER` (a seed length
/// other than 32).
#[no_mangle]
pub unsafe extern "C" fn redlock_acquire_seeded_new(
    config: *const redlock_config,
    keys: *const *const u8,
    key_lens: *const usize,
    n_keys: usize,
    seed: *const u8,
    seed_len: usize,
    now_ms: u64,
    op_out: *mut *mut redlock_op,
) -> redlock_result {
    ffi_result! {
        let out = check_out(op_out)?;
        if seed.is_null() {
            return Err(redlock_result::NullParameter);
        }
        if seed_len != REDLOCK_SEED_LEN {
            return Err(redlock_result::InvalidParameter);
        }
        // SAFETY: 32 readable bytes (caller contract, length checked).
        let seed: [u8; REDLOCK_SEED_LEN] = unsafe { try_slice(seed, seed_len) }?
            .try_into()
            .map_err(|_| redlock_result::InvalidParameter)?;
        // SAFETY: arrays of `n_keys` (caller contract).
        let resources = unsafe { resources(keys, key_lens, n_keys) }?;
        // SAFETY: forwarded caller contract; `out` checked.
        unsafe { start_acquire(config, resources, ChaCha20Rng::from_seed(seed), now_ms, out) }
    }
}

/// Starts extending `lease` at `now_ms` so its keys live for the TTL of `config` (set another
/// with `redlock_config_set_ttl`). If the lease has already expired at `now_ms`, nothing is sent
/// and the operation is at once DONE with `REDLOCK_OUTCOME_EXPIRED`: an expired lock is never
/// revived. When DONE, `redlock_op_lease` gives the lease to use from then on — extended, or
/// with its validity possibly shortened after a failure.
///
/// Errors: `REDLOCK_RESULT_NULL_PARAMETER`. On success `*op_out` is a new operation owned by the
/// caller; the lease and the configuration are copied.
#[no_mangle]
pub unsafe extern "C" fn redlock_extend_new(
    config: *const redlock_config,
    lease: *const redlock_lease,
    now_ms: u64,
    op_out: *mut *mut redlock_op,
) -> redlock_result {
    ffi_result! {
        // SAFETY: NULL or live objects (caller contract).
        let (config, lease) = unsafe { (try_ref(config)?, try_ref(lease)?) };
        let out = check_out(op_out)?;
        let machine = Extend::new(config.config, &lease.lease, Instant::from_millis(now_ms))?;
        let op = redlock_op { machine: Machine::Extend(machine), send: SendBuffer::default() };
        // SAFETY: checked non-NULL.
        unsafe { write_out(out, into_handle(op)) };
        Ok(())
    }
}

/// Starts releasing `lease` at `now_ms`: a compare-and-delete on every instance, so only keys
/// still holding the lease's value are deleted. Stop treating the lease as valid before calling.
/// It waits for every instance's answer or timeout; safe to run again.
///
/// Errors: `REDLOCK_RESULT_NULL_PARAMETER`. On success `*op_out` is a new operation owned by the
/// caller; the lease and the configuration are copied.
#[no_mangle]
pub unsafe extern "C" fn redlock_release_new(
    config: *const redlock_config,
    lease: *const redlock_lease,
    now_ms: u64,
    op_out: *mut *mut redlock_op,
) -> redlock_result {
    ffi_result! {
        // SAFETY: NULL or live objects (caller contract).
        let (config, lease) = unsafe { (try_ref(config)?, try_ref(lease)?) };
        let out = check_out(op_out)?;
        let machine = Release::new(config.config, &lease.lease, Instant::from_millis(now_ms))?;
        let op = redlock_op { machine: Machine::Release(machine), send: SendBuffer::default() };
        // SAFETY: checked non-NULL.
        unsafe { write_out(out, into_handle(op)) };
        Ok(())
    }
}

/// Frees an operation. NULL is ignored. Nothing is sent: an acquire freed before DONE may leave
/// keys that expire with their TTL (cancel it and drive it to DONE to clean up first).
#[no_mangle]
pub unsafe extern "C" fn redlock_op_free(op: *mut redlock_op) {
    ffi_value!((), {
        // SAFETY: NULL or an operation from a `_new` function, freed once (caller contract).
        unsafe { free_handle(op) }
    })
}

fn command_kind(kind: CommandKind) -> redlock_command_kind {
    match kind {
        CommandKind::Acquire => redlock_command_kind::Acquire,
        CommandKind::Extend => redlock_command_kind::Extend,
        CommandKind::Release => redlock_command_kind::Release,
    }
}

fn acquire_outcome(o: &AcquireOutcome) -> redlock_outcome {
    match o.failure() {
        None => redlock_outcome::Acquired,
        Some(AcquireFailure::Contended) => redlock_outcome::Contended,
        Some(AcquireFailure::NoQuorum) => redlock_outcome::NoQuorum,
        Some(AcquireFailure::ValidityExhausted) => redlock_outcome::ValidityExhausted,
        Some(AcquireFailure::Cancelled) => redlock_outcome::Cancelled,
        Some(AcquireFailure::ClockWentBackwards) => redlock_outcome::ClockWentBackwards,
        Some(_) => redlock_outcome::Failed,
    }
}

fn extend_outcome(o: &ExtendOutcome) -> redlock_outcome {
    match o.failure() {
        None => redlock_outcome::Extended,
        Some(ExtendFailure::Expired) => redlock_outcome::Expired,
        Some(ExtendFailure::Lost) => redlock_outcome::Lost,
        Some(ExtendFailure::NoQuorum) => redlock_outcome::NoQuorum,
        Some(ExtendFailure::ValidityExhausted) => redlock_outcome::ValidityExhausted,
        Some(ExtendFailure::ClockWentBackwards) => redlock_outcome::ClockWentBackwards,
        Some(_) => redlock_outcome::Failed,
    }
}

impl redlock_op {
    fn poll(&mut self) -> redlock_output {
        let send = &mut self.send;
        match &mut self.machine {
            Machine::Acquire(m) => map_output(m.poll_output(), send, acquire_outcome),
            Machine::Extend(m) => map_output(m.poll_output(), send, extend_outcome),
            Machine::Release(m) => map_output(m.poll_output(), send, |o| {
                if o.confirmed {
                    redlock_outcome::Released
                } else {
                    redlock_outcome::ReleaseUnconfirmed
                }
            }),
        }
    }

    fn handle(&mut self, input: Input<'_>) -> Result<(), redlock_core::Error> {
        match &mut self.machine {
            Machine::Acquire(m) => m.handle_input(input),
            Machine::Extend(m) => m.handle_input(input),
            Machine::Release(m) => m.handle_input(input),
        }
    }

    fn outcome(&self) -> redlock_outcome {
        match &self.machine {
            Machine::Acquire(m) => m.outcome().map(acquire_outcome),
            Machine::Extend(m) => m.outcome().map(extend_outcome),
            Machine::Release(m) => m.outcome().map(|o| {
                if o.confirmed {
                    redlock_outcome::Released
                } else {
                    redlock_outcome::ReleaseUnconfirmed
                }
            }),
        }
        .unwrap_or(redlock_outcome::None)
    }

    fn report(&self) -> Option<Report> {
        match &self.machine {
            Machine::Acquire(m) => m.outcome().map(|o| *o.report()),
            Machine::Extend(m) => m.outcome().map(|o| *o.report()),
            Machine::Release(m) => m.outcome().map(|o| o.report),
        }
    }
}

fn map_output<T>(
    output: Output<'_, T>,
    send: &mut SendBuffer,
    outcome: impl FnOnce(&T) -> redlock_outcome,
) -> redlock_output {
    match output {
        Output::Send(tx) => {
            send.fill(&tx.command);
            let mut out = redlock_output::empty(redlock_output_kind::Send);
            // In range: instance < MAX_INSTANCES (16).
            out.instance = tx.instance as u32;
            out.request = tx.request.as_u32();
            out.command = command_kind(tx.command.kind());
            out.argc = send.argv.len();
            out.argv = send.argv.as_ptr();
            out.argv_len = send.argv_len.as_ptr();
            out.resp = send.resp.as_ptr();
            out.resp_len = send.resp.len();
            out
        }
        Output::Wait { until } => {
            let mut out = redlock_output::empty(redlock_output_kind::Wait);
            out.until_ms = until.as_millis();
            out
        }
        Output::Done(o) => {
            let mut out = redlock_output::empty(redlock_output_kind::Done);
            out.outcome = outcome(o);
            out
        }
    }
}

/// What to do next: writes a SEND, WAIT or DONE into `*output_out` (see `redlock_output`).
/// Call it after creating the operation and after every input, until it returns WAIT or DONE.
///
/// Errors: `REDLOCK_RESULT_NULL_PARAMETER`.
#[no_mangle]
pub unsafe extern "C" fn redlock_op_poll(
    op: *mut redlock_op,
    output_out: *mut redlock_output,
) -> redlock_result {
    ffi_result! {
        // SAFETY: NULL or a live operation, not used concurrently (caller contract).
        let op = unsafe { try_mut(op) }?;
        let out = check_out(output_out)?;
        let output = op.poll();
        // SAFETY: checked non-NULL.
        unsafe { write_out(out, output) };
        Ok(())
    }
}

fn instance_index(instance: u32) -> usize {
    usize::try_from(instance).unwrap_or(usize::MAX)
}

/// Feeds the reply of instance `instance` to request `request` (both from the SEND output it
/// answers), received at `at_ms`. A stale reply (an earlier attempt, a duplicate) is ignored.
///
/// Errors: `REDLOCK_RESULT_UNKNOWN_INSTANCE` (not below N; ignored),
/// `REDLOCK_RESULT_TIME_WENT_BACKWARDS` (`at_ms` is earlier than a time fed before: the
/// operation fails closed — keep polling, an acquire still sends its cleanup),
/// `REDLOCK_RESULT_INVALID_PARAMETER` (an unknown reply kind), `REDLOCK_RESULT_NULL_PARAMETER`.
/// The reply's text is not kept after the call.
#[no_mangle]
pub unsafe extern "C" fn redlock_op_handle_reply(
    op: *mut redlock_op,
    instance: u32,
    request: u32,
    reply: *const redlock_reply,
    at_ms: u64,
) -> redlock_result {
    ffi_result! {
        // SAFETY: NULL or live objects (caller contract).
        let (op, reply) = unsafe { (try_mut(op)?, try_ref(reply)?) };
        // SAFETY: the reply's text is valid for its length (caller contract).
        let reply = unsafe { reply.as_core() }?;
        op.handle(Input::Reply {
            instance: instance_index(instance),
            request: RequestId::from_u32(request),
            reply,
            at: Instant::from_millis(at_ms),
        })?;
        Ok(())
    }
}

/// Feeds a transport failure for request `request` to instance `instance` — the connection was
/// refused, reset or closed, or could not be written — seen at `at_ms`. Errors: as
/// `redlock_op_handle_reply`.
#[no_mangle]
pub unsafe extern "C" fn redlock_op_handle_transport_error(
    op: *mut redlock_op,
    instance: u32,
    request: u32,
    at_ms: u64,
) -> redlock_result {
    ffi_result! {
        // SAFETY: NULL or a live operation (caller contract).
        let op = unsafe { try_mut(op) }?;
        op.handle(Input::TransportError {
            instance: instance_index(instance),
            request: RequestId::from_u32(request),
            at: Instant::from_millis(at_ms),
        })?;
        Ok(())
    }
}

/// Tells the operation that time `now_ms` has come: feed it when a WAIT deadline is reached
/// (earlier or more often is harmless). Errors: `REDLOCK_RESULT_TIME_WENT_BACKWARDS` (as for
/// `redlock_op_handle_reply`), `REDLOCK_RESULT_NULL_PARAMETER`.
#[no_mangle]
pub unsafe extern "C" fn redlock_op_handle_timeout(
    op: *mut redlock_op,
    now_ms: u64,
) -> redlock_result {
    ffi_result! {
        // SAFETY: NULL or a live operation (caller contract).
        let op = unsafe { try_mut(op) }?;
        op.handle(Input::Timeout { now: Instant::from_millis(now_ms) })?;
        Ok(())
    }
}

/// Cancels an acquire at `now_ms`: no further attempt starts, the running one is released on
/// every instance it reached, and the outcome becomes `REDLOCK_OUTCOME_CANCELLED` once its
/// commands have settled — keep polling and feeding until DONE. No effect once DONE (a lease
/// already granted stays granted: release it).
///
/// Errors: `REDLOCK_RESULT_WRONG_OPERATION` (an extend or a release),
/// `REDLOCK_RESULT_TIME_WENT_BACKWARDS`, `REDLOCK_RESULT_NULL_PARAMETER`.
#[no_mangle]
pub unsafe extern "C" fn redlock_op_cancel(op: *mut redlock_op, now_ms: u64) -> redlock_result {
    ffi_result! {
        // SAFETY: NULL or a live operation (caller contract).
        let op = unsafe { try_mut(op) }?;
        match &mut op.machine {
            Machine::Acquire(m) => m.cancel(Instant::from_millis(now_ms))?,
            _ => return Err(redlock_result::WrongOperation),
        }
        Ok(())
    }
}

/// How the operation ended, or `REDLOCK_OUTCOME_NONE` while it runs (or if `op` is NULL).
#[no_mangle]
pub unsafe extern "C" fn redlock_op_outcome(op: *const redlock_op) -> redlock_outcome {
    ffi_value!(redlock_outcome::None, {
        // SAFETY: NULL or a live operation (caller contract).
        unsafe { try_ref(op) }.map_or(redlock_outcome::None, |op| op.outcome())
    })
}

/// The lease of a finished operation: the acquired lease, or for an extend the lease to use from
/// now on (extended, or — after a failure — with its validity possibly shortened, never
/// lengthened).
///
/// Errors: `REDLOCK_RESULT_NOT_DONE`, `REDLOCK_RESULT_NO_LEASE` (a failed acquire, or a release),
/// `REDLOCK_RESULT_NULL_PARAMETER`. On success `*lease_out` is a new lease owned by the caller
/// (free with `redlock_lease_free`); calling again gives another copy.
#[no_mangle]
pub unsafe extern "C" fn redlock_op_lease(
    op: *const redlock_op,
    lease_out: *mut *mut redlock_lease,
) -> redlock_result {
    ffi_result! {
        // SAFETY: NULL or a live operation (caller contract).
        let op = unsafe { try_ref(op) }?;
        let out = check_out(lease_out)?;
        let lease = match &op.machine {
            Machine::Acquire(m) => m.outcome().ok_or(redlock_result::NotDone)?.lease(),
            Machine::Extend(m) => Some(m.outcome().ok_or(redlock_result::NotDone)?.lease()),
            Machine::Release(m) => {
                m.outcome().ok_or(redlock_result::NotDone)?;
                None
            }
        };
        let lease = lease.ok_or(redlock_result::NoLease)?;
        // SAFETY: checked non-NULL.
        unsafe { write_out(out, into_handle(redlock_lease::new(lease.clone()))) };
        Ok(())
    }
}

fn report_entry(status: InstanceStatus) -> redlock_instance_report {
    let (status, server_error) = match status {
        InstanceStatus::NotSent => (redlock_instance_status::NotSent, None),
        InstanceStatus::Pending => (redlock_instance_status::Pending, None),
        InstanceStatus::Yes => (redlock_instance_status::Yes, None),
        InstanceStatus::Held => (redlock_instance_status::Held, None),
        InstanceStatus::ServerError(e) => (redlock_instance_status::ServerError, Some(e)),
        InstanceStatus::TransportError => (redlock_instance_status::TransportError, None),
        InstanceStatus::TimedOut => (redlock_instance_status::TimedOut, None),
        InstanceStatus::UnexpectedReply => (redlock_instance_status::UnexpectedReply, None),
        _ => (redlock_instance_status::Unknown, None),
    };
    let server_error = match server_error {
        None => redlock_server_error::None,
        Some(ServerError::NoScript) => redlock_server_error::NoScript,
        Some(ServerError::ReadOnly) => redlock_server_error::ReadOnly,
        Some(ServerError::OutOfMemory) => redlock_server_error::OutOfMemory,
        Some(ServerError::Busy) => redlock_server_error::Busy,
        Some(ServerError::Loading) => redlock_server_error::Loading,
        Some(ServerError::MisConf) => redlock_server_error::MisConf,
        Some(ServerError::WrongType) => redlock_server_error::WrongType,
        Some(ServerError::Auth) => redlock_server_error::Auth,
        Some(ServerError::NoPerm) => redlock_server_error::NoPerm,
        Some(ServerError::Cluster) => redlock_server_error::Cluster,
        Some(_) => redlock_server_error::Other,
    };
    redlock_instance_report {
        status,
        server_error,
    }
}

/// What instance `instance` contributed to the finished operation (for an acquire: its last
/// attempt). Errors: `REDLOCK_RESULT_NOT_DONE`, `REDLOCK_RESULT_UNKNOWN_INSTANCE`,
/// `REDLOCK_RESULT_NULL_PARAMETER`.
#[no_mangle]
pub unsafe extern "C" fn redlock_op_report(
    op: *const redlock_op,
    instance: u32,
    report_out: *mut redlock_instance_report,
) -> redlock_result {
    ffi_result! {
        // SAFETY: NULL or a live operation (caller contract).
        let op = unsafe { try_ref(op) }?;
        let out = check_out(report_out)?;
        let report = op.report().ok_or(redlock_result::NotDone)?;
        let status = report
            .get(instance_index(instance))
            .ok_or(redlock_result::UnknownInstance)?;
        // SAFETY: checked non-NULL.
        unsafe { write_out(out, report_entry(status)) };
        Ok(())
    }
}

/// How many acquire attempts the operation has made (1 for an extend or a release that began;
/// 0 if `op` is NULL).
#[no_mangle]
pub unsafe extern "C" fn redlock_op_attempts(op: *const redlock_op) -> u32 {
    ffi_value!(0, {
        // SAFETY: NULL or a live operation (caller contract).
        match unsafe { try_ref(op) } {
            Ok(op) => match &op.machine {
                Machine::Acquire(m) => m.outcome().map_or(m.attempt(), |o| o.attempts()),
                _ => 1,
            },
            Err(_) => 0,
        }
    })
}

#[cfg(test)]
mod tests;
