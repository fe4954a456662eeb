//! Values crossing the boundary: resources, replies and leases in; outputs and outcomes out.
//!
//! Everything coming from JavaScript is checked here, before the core sees it, and refused with
//! a JS `Error` naming the argument; nothing here can panic.

use js_sys::{Array, JsString, Uint8Array};
use redlock_core::{
    AcquireFailure, AcquireOutcome, Command, CommandForm, CommandKind, Error as CoreError,
    ExtendFailure, ExtendOutcome, Input, InstanceStatus, Instant, Lease, Output, ReleaseOutcome,
    Reply, Report, RequestId, Resources, ServerError, Token, MAX_INSTANCES, MAX_KEY_LEN,
    MAX_RESOURCES,
};
use wasm_bindgen::prelude::*;

use crate::time::{integer_from_js, ms_from_js, ms_to_js, NumberError};

#[wasm_bindgen(module = "/src/shapes.js")]
extern "C" {
    #[wasm_bindgen(js_name = byteList)]
    fn byte_list(packed: &[u8], ends: &[u32], binary: u32) -> Array;
    #[wasm_bindgen(js_name = statusList)]
    fn status_list(codes: &[u8]) -> Array;
    #[wasm_bindgen(js_name = sendOutput)]
    fn send_output(instance: u32, request: u32, command: u8, form: u8, args: Array) -> JsValue;
    #[wasm_bindgen(js_name = waitOutput)]
    fn wait_output(until: f64) -> JsValue;
    #[wasm_bindgen(js_name = doneOutput)]
    fn done_output(outcome: &JsValue) -> JsValue;
    #[wasm_bindgen(js_name = leaseObject)]
    fn lease_object(resources: Array, value: &str, ttl_ms: f64, valid_until: f64) -> JsValue;
    #[wasm_bindgen(js_name = acquiredOutcome)]
    fn acquired_outcome(lease: JsValue, decided_at: f64, attempts: u32, report: Array) -> JsValue;
    #[wasm_bindgen(js_name = acquireFailedOutcome)]
    fn acquire_failed_outcome(reason: &str, attempts: u32, report: Array) -> JsValue;
    #[wasm_bindgen(js_name = extendedOutcome)]
    fn extended_outcome(lease: JsValue, report: Array) -> JsValue;
    #[wasm_bindgen(js_name = extendFailedOutcome)]
    fn extend_failed_outcome(reason: &str, lease: JsValue, report: Array) -> JsValue;
    #[wasm_bindgen(js_name = releasedOutcome)]
    fn released_outcome(confirmed: bool, deleted: u32, report: Array) -> JsValue;
}

/// A JS `Error` with `message`.
pub(crate) fn error(message: &str) -> JsError {
    JsError::new(message)
}

/// A refused number, naming the argument it was given as.
pub(crate) fn number_error(what: &str, e: NumberError) -> JsError {
    // JavaScript formats the number: Rust's float formatting would bloat the module.
    let shown = js_sys::Number::from(e.value())
        .to_string_with_radix(10)
        .map(String::from)
        .unwrap_or_default();
    error(&format!("{what} {} (got {shown})", e.reason()))
}

/// A core misuse error as a JS `Error`.
pub(crate) fn core_error(e: CoreError) -> JsError {
    error(&e.to_string())
}

/// A time or duration in milliseconds from a JS number.
pub(crate) fn ms(v: f64, what: &str) -> Result<u64, JsError> {
    ms_from_js(v).map_err(|e| number_error(what, e))
}

/// An instance index from a JS number (the core checks it against N).
pub(crate) fn instance(v: f64) -> Result<usize, JsError> {
    integer_from_js(v, u32::MAX)
        .map(|i| i as usize)
        .map_err(|e| number_error("instance", e))
}

/// A request id from a JS number.
pub(crate) fn request(v: f64) -> Result<RequestId, JsError> {
    integer_from_js(v, u32::MAX)
        .map(RequestId::from_u32)
        .map_err(|e| number_error("request", e))
}

/// Copies one key out of JavaScript, refusing an oversized one before copying it.
fn key_bytes(v: &JsValue) -> Result<Vec<u8>, JsError> {
    if let Some(array) = v.dyn_ref::<Uint8Array>() {
        let len = array.length() as usize;
        if len > MAX_KEY_LEN {
            return Err(core_error(CoreError::KeyTooLong { len }));
        }
        return Ok(array.to_vec());
    }
    if let Some(s) = v.dyn_ref::<JsString>() {
        // Each UTF-16 unit is at least one UTF-8 byte: longer than the maximum in units means
        // longer in bytes, refused without copying a huge string into wasm memory.
        let units = s.length() as usize;
        if units > MAX_KEY_LEN {
            return Err(core_error(CoreError::KeyTooLong { len: units }));
        }
        return Ok(String::from(s).into_bytes());
    }
    Err(error("a resource key must be a string or a Uint8Array"))
}

/// Resources from a key or an array of keys.
pub(crate) fn resources(v: &JsValue) -> Result<Resources, JsError> {
    let Some(list) = v.dyn_ref::<Array>() else {
        return Resources::single(&key_bytes(v)?).map_err(core_error);
    };
    if list.length() as usize > MAX_RESOURCES {
        return Err(core_error(CoreError::TooManyResources));
    }
    let mut resources = Resources::new();
    for item in list.iter() {
        resources.push(&key_bytes(&item)?).map_err(core_error)?;
    }
    if resources.is_empty() {
        return Err(core_error(CoreError::NoResources));
    }
    Ok(resources)
}

/// A reply as JavaScript hands it over, owned until it is fed.
#[derive(Debug)]
pub(crate) enum OwnedReply {
    Ok,
    Nil,
    Integer(i64),
    Error(Vec<u8>),
    Other,
}

thread_local! {
    /// The status reply `OK`, compared by identity-free `===` in one call.
    static OK: JsValue = JsValue::from_str("OK");
}

/// Error texts are classified by their first word; the rest is not needed.
const MAX_ERROR_TEXT: usize = 64;

impl OwnedReply {
    /// Maps a JS reply: `"OK"`, `null`, an integer (number or bigint) or `{ error: string }`;
    /// anything else is an unexpected reply, which never counts as a success.
    pub(crate) fn from_js(v: &JsValue) -> Self {
        // The common replies first, each in as few calls into JavaScript as possible.
        if OK.with(|ok| v == ok) {
            return Self::Ok;
        }
        if let Some(n) = v.as_f64() {
            // The cast is exact: n is integral and inside i64's range.
            return if n.fract() == 0.0 && (-9.2e18..=9.2e18).contains(&n) {
                Self::Integer(n as i64)
            } else {
                Self::Other
            };
        }
        if v.is_null() {
            return Self::Nil;
        }
        if v.is_bigint() {
            return i64::try_from(v.clone()).map_or(Self::Other, Self::Integer);
        }
        if v.is_object() {
            let text = js_sys::Reflect::get(v, &JsValue::from_str("error")).ok();
            if let Some(text) = text.as_ref().and_then(|t| t.dyn_ref::<JsString>()) {
                let prefix = text.slice(0, MAX_ERROR_TEXT as u32);
                return Self::Error(String::from(prefix).into_bytes());
            }
        }
        Self::Other
    }

    /// The core's view of it.
    pub(crate) fn as_reply(&self) -> Reply<'_> {
        match self {
            Self::Ok => Reply::Ok,
            Self::Nil => Reply::Nil,
            Self::Integer(i) => Reply::Integer(*i),
            Self::Error(text) => Reply::Error(text),
            Self::Other => Reply::Other,
        }
    }
}

/// Reusable buffers for packing byte strings into one view of wasm memory, and the last list
/// built from them: the N sends of one round carry the same arguments, decoded once.
#[derive(Debug, Default)]
pub(crate) struct Packer {
    packed: Vec<u8>,
    ends: Vec<u32>,
    last: Option<(Vec<u8>, Vec<u32>, Array)>,
}

impl Packer {
    /// A JS array of the byte strings: strings when valid UTF-8, `Uint8Array`s otherwise.
    /// At most 32 items (a command has at most 3 + 8 keys + 2 arguments). The array may be
    /// shared with the previous call's: the JS side copies it for each output.
    pub(crate) fn list<'b>(&mut self, items: impl Iterator<Item = &'b [u8]>) -> Array {
        self.packed.clear();
        self.ends.clear();
        let mut binary = 0u32;
        for (i, item) in items.take(32).enumerate() {
            if core::str::from_utf8(item).is_err() {
                binary |= 1 << i;
            }
            self.packed.extend_from_slice(item);
            // At most 32 items of at most MAX_RESOURCES_LEN or script-source bytes each.
            self.ends
                .push(u32::try_from(self.packed.len()).unwrap_or(u32::MAX));
        }
        if let Some((packed, ends, list)) = &self.last {
            if *packed == self.packed && *ends == self.ends {
                return list.clone();
            }
        }
        let list = byte_list(&self.packed, &self.ends, binary);
        self.last = Some((self.packed.clone(), self.ends.clone(), list.clone()));
        list
    }
}

fn command_code(c: &Command<'_>) -> (u8, u8) {
    let kind = match c.kind() {
        CommandKind::Acquire => 0,
        CommandKind::Extend => 1,
        CommandKind::Release => 2,
    };
    let form = match c.form() {
        CommandForm::Set => 0,
        CommandForm::EvalSha => 1,
        CommandForm::Eval => 2,
    };
    (kind, form)
}

/// A machine's output as `{ type: "send" | "wait" | "done", … }`; the outcome object is built
/// once and kept in `done`.
pub(crate) fn output<T>(
    out: Output<'_, T>,
    packer: &mut Packer,
    done: &mut Option<JsValue>,
    outcome: impl FnOnce(&T, &mut Packer) -> JsValue,
) -> JsValue {
    match out {
        Output::Send(tx) => {
            let (kind, form) = command_code(&tx.command);
            let args = packer.list(tx.command.args());
            // In range: instance < N <= MAX_INSTANCES.
            let instance = tx.instance.min(MAX_INSTANCES) as u32;
            send_output(instance, tx.request.as_u32(), kind, form, args)
        }
        Output::Wait { until } => wait_output(ms_to_js(until.as_millis())),
        Output::Done(o) => {
            let value = done.get_or_insert_with(|| outcome(o, packer));
            done_output(value)
        }
    }
}

fn status_code(s: InstanceStatus) -> u8 {
    match s {
        InstanceStatus::NotSent => 0,
        InstanceStatus::Pending => 1,
        InstanceStatus::Yes => 2,
        InstanceStatus::Held => 3,
        InstanceStatus::TransportError => 4,
        InstanceStatus::TimedOut => 5,
        InstanceStatus::UnexpectedReply => 6,
        InstanceStatus::ServerError(e) => match e {
            ServerError::NoScript => 8,
            ServerError::ReadOnly => 9,
            ServerError::OutOfMemory => 10,
            ServerError::Busy => 11,
            ServerError::Loading => 12,
            ServerError::MisConf => 13,
            ServerError::WrongType => 14,
            ServerError::Auth => 15,
            ServerError::NoPerm => 16,
            ServerError::Cluster => 17,
            _ => 18,
        },
        // A status added to the core later shows as "unknown" until it is mapped here.
        _ => 7,
    }
}

fn report(r: &Report) -> Array {
    let mut codes = [0u8; MAX_INSTANCES];
    for (code, status) in codes.iter_mut().zip(r.as_slice()) {
        *code = status_code(*status);
    }
    status_list(codes.get(..r.len()).unwrap_or_default())
}

/// A core enum variant's name in camelCase (`NoQuorum` → `noQuorum`), for variants added to the
/// core after this crate was written.
fn camel_name(v: &impl core::fmt::Debug) -> String {
    let name = format!("{v:?}");
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_ascii_lowercase().to_string() + chars.as_str(),
        None => name,
    }
}

fn acquire_failure(f: AcquireFailure) -> String {
    match f {
        AcquireFailure::Contended => "contended".into(),
        AcquireFailure::NoQuorum => "noQuorum".into(),
        AcquireFailure::ValidityExhausted => "validityExhausted".into(),
        AcquireFailure::Cancelled => "cancelled".into(),
        AcquireFailure::ClockWentBackwards => "clockWentBackwards".into(),
        other => camel_name(&other),
    }
}

fn extend_failure(f: ExtendFailure) -> String {
    match f {
        ExtendFailure::Expired => "expired".into(),
        ExtendFailure::Lost => "lost".into(),
        ExtendFailure::NoQuorum => "noQuorum".into(),
        ExtendFailure::ValidityExhausted => "validityExhausted".into(),
        ExtendFailure::ClockWentBackwards => "clockWentBackwards".into(),
        other => camel_name(&other),
    }
}

/// A lease as `{ resources, value, ttlMs, validUntil }`.
pub(crate) fn lease_to_js(lease: &Lease, packer: &mut Packer) -> JsValue {
    let resources = packer.list(lease.resources().iter());
    lease_object(
        resources,
        lease.value().as_str(),
        ms_to_js(lease.ttl_ms()),
        ms_to_js(lease.valid_until().as_millis()),
    )
}

// Indices of the fields of a lease object in `LEASE_FIELD_NAMES`.
const RESOURCES: usize = 0;
const VALUE: usize = 1;
const TTL_MS: usize = 2;
const VALID_UNTIL: usize = 3;
const LEASE_FIELD_NAMES: [&str; 4] = ["resources", "value", "ttlMs", "validUntil"];

thread_local! {
    /// The lease's property names as JS strings, made once: every release and extend reads them.
    static LEASE_FIELDS: [JsValue; 4] = LEASE_FIELD_NAMES.map(JsValue::from_str);
}

fn field(v: &JsValue, index: usize) -> JsValue {
    LEASE_FIELDS
        .with(|names| names.get(index).map(|name| js_sys::Reflect::get(v, name)))
        .and_then(Result::ok)
        .unwrap_or(JsValue::UNDEFINED)
}

fn number_field(v: &JsValue, index: usize) -> Result<u64, JsError> {
    let name = LEASE_FIELD_NAMES.get(index).copied().unwrap_or("?");
    let Some(n) = field(v, index).as_f64() else {
        return Err(error(&format!(
            "lease.{name} must be a number of milliseconds"
        )));
    };
    // The argument's name is formatted only for the error.
    ms_from_js(n).map_err(|e| number_error(&format!("lease.{name}"), e))
}

/// A lease back from JavaScript, as [`lease_to_js`] produced it (or stored and reloaded).
pub(crate) fn lease_from_js(v: &JsValue) -> Result<Lease, JsError> {
    if !v.is_object() {
        return Err(error(
            "lease must be an object { resources, value, ttlMs, validUntil } from an acquire outcome",
        ));
    }
    let resources = resources(&field(v, RESOURCES))?;
    let value = field(v, VALUE)
        .as_string()
        .and_then(|s| Token::from_hex(s.as_bytes()))
        .ok_or_else(|| {
            error("lease.value must be the 32-character lowercase hex value of the lock")
        })?;
    let ttl_ms = number_field(v, TTL_MS)?;
    let valid_until = number_field(v, VALID_UNTIL)?;
    Ok(Lease::new(
        resources,
        value,
        ttl_ms,
        redlock_core::Instant::from_millis(valid_until),
    ))
}

/// An acquire outcome as `{ type: "acquired", … } | { type: "failed", … }`.
pub(crate) fn acquire_outcome(o: &AcquireOutcome, packer: &mut Packer) -> JsValue {
    match o {
        AcquireOutcome::Acquired {
            lease,
            decided_at,
            attempts,
            report: r,
        } => acquired_outcome(
            lease_to_js(lease, packer),
            ms_to_js(decided_at.as_millis()),
            *attempts,
            report(r),
        ),
        AcquireOutcome::Failed {
            reason,
            attempts,
            report: r,
        } => acquire_failed_outcome(&acquire_failure(*reason), *attempts, report(r)),
    }
}

/// An extend outcome as `{ type: "extended", … } | { type: "failed", … }`.
pub(crate) fn extend_outcome(o: &ExtendOutcome, packer: &mut Packer) -> JsValue {
    match o {
        ExtendOutcome::Extended { lease, report: r } => {
            extended_outcome(lease_to_js(lease, packer), report(r))
        }
        ExtendOutcome::Failed {
            reason,
            lease,
            report: r,
        } => extend_failed_outcome(
            &extend_failure(*reason),
            lease_to_js(lease, packer),
            report(r),
        ),
    }
}

/// A release outcome as `{ type: "released", confirmed, deleted, report }`.
pub(crate) fn release_outcome(o: &ReleaseOutcome, _packer: &mut Packer) -> JsValue {
    // At most MAX_INSTANCES.
    released_outcome(o.confirmed, o.deleted as u32, report(&o.report))
}

/// The fallible `handle_input` of any of the three machines.
pub(crate) type Handle<'m> = &'m mut dyn FnMut(Input<'_>) -> Result<(), CoreError>;

/// Checks the JS arguments of `handleReply` and feeds the reply to `handle`.
pub(crate) fn feed_reply(
    handle: Handle<'_>,
    instance: f64,
    request: f64,
    reply: &JsValue,
    at_ms: f64,
) -> Result<(), JsError> {
    let (instance, request) = (self::instance(instance)?, self::request(request)?);
    let at = Instant::from_millis(ms(at_ms, "atMs")?);
    let reply = OwnedReply::from_js(reply);
    handle(Input::Reply {
        instance,
        request,
        reply: reply.as_reply(),
        at,
    })
    .map_err(core_error)
}

/// Checks the JS arguments of `handleTransportError` and feeds the failure to `handle`.
pub(crate) fn feed_transport_error(
    handle: Handle<'_>,
    instance: f64,
    request: f64,
    at_ms: f64,
) -> Result<(), JsError> {
    let (instance, request) = (self::instance(instance)?, self::request(request)?);
    let at = Instant::from_millis(ms(at_ms, "atMs")?);
    handle(Input::TransportError {
        instance,
        request,
        at,
    })
    .map_err(core_error)
}

/// Checks the JS argument of `handleTimeout` and feeds the tick to `handle`.
pub(crate) fn feed_timeout(handle: Handle<'_>, now_ms: f64) -> Result<(), JsError> {
    let now = Instant::from_millis(ms(now_ms, "nowMs")?);
    handle(Input::Timeout { now }).map_err(core_error)
}
