//! `Acquire`: takes a lock on a quorum of instances, or fails (as data) and cleans up.

use redlock_core::Acquire;
use wasm_bindgen::prelude::*;

use crate::config::JsConfig;
use crate::convert::{self, core_error, error, ms, Packer};
use crate::rng::{self, SharedRng};

/// The acquire machine for a JavaScript host: drain {@link Acquire.pollOutput} until it returns
/// `wait` or `done`, send each `send` to its instance, and feed back replies, transport errors
/// and timeouts with the time they happened (`performance.now()`).
///
/// Contention, no quorum and exhausted validity are outcomes (`{ type: "failed", reason }`);
/// misuse (a bad number, an unknown instance, time going backwards) throws an `Error`.
#[wasm_bindgen(js_name = "Acquire")]
#[derive(Debug)]
pub struct JsAcquire {
    machine: Acquire<SharedRng>,
    packer: Packer,
    done: Option<JsValue>,
}

#[wasm_bindgen(js_class = "Acquire")]
impl JsAcquire {
    /// Starts acquiring `resources` (a key, or an array of keys locked together) at `nowMs`.
    /// Its lock values come from ChaCha20 seeded from `crypto.getRandomValues`.
    #[wasm_bindgen(constructor)]
    pub fn new(
        config: &JsConfig,
        #[wasm_bindgen(unchecked_param_type = "Resource | Resource[]")] resources: &JsValue,
        #[wasm_bindgen(js_name = "nowMs")] now_ms: f64,
    ) -> Result<Self, JsError> {
        let resources = convert::resources(resources)?;
        let now = redlock_core::Instant::from_millis(ms(now_ms, "nowMs")?);
        rng::ensure_seeded()
            .map_err(|e| error(&format!("no cryptographic randomness available: {e}")))?;
        let machine = Acquire::new(config.inner, resources, SharedRng, now).map_err(core_error)?;
        Ok(Self {
            machine,
            packer: Packer::default(),
            done: None,
        })
    }

    /// What to do next: `{ type: "send", … }` (send it, then poll again), `{ type: "wait",
    /// until }` (wait for a reply or until `until`), or `{ type: "done", outcome }` (terminal).
    #[wasm_bindgen(
        js_name = "pollOutput",
        unchecked_return_type = "Output<AcquireOutcome>"
    )]
    pub fn poll_output(&mut self) -> JsValue {
        let out = self.machine.poll_output();
        convert::output(
            out,
            &mut self.packer,
            &mut self.done,
            convert::acquire_outcome,
        )
    }

    /// Instance `instance` answered request `request` with `reply` at `atMs`.
    #[wasm_bindgen(js_name = "handleReply")]
    pub fn handle_reply(
        &mut self,
        instance: f64,
        request: f64,
        #[wasm_bindgen(unchecked_param_type = "Reply")] reply: &JsValue,
        #[wasm_bindgen(js_name = "atMs")] at_ms: f64,
    ) -> Result<(), JsError> {
        convert::feed_reply(
            &mut |i| self.machine.handle_input(i),
            instance,
            request,
            reply,
            at_ms,
        )
    }

    /// Request `request` to instance `instance` failed before a reply arrived (refused, reset,
    /// closed).
    #[wasm_bindgen(js_name = "handleTransportError")]
    pub fn handle_transport_error(
        &mut self,
        instance: f64,
        request: f64,
        #[wasm_bindgen(js_name = "atMs")] at_ms: f64,
    ) -> Result<(), JsError> {
        convert::feed_transport_error(
            &mut |i| self.machine.handle_input(i),
            instance,
            request,
            at_ms,
        )
    }

    /// Time passed: feed it when a `wait` deadline is reached (early or often is harmless).
    #[wasm_bindgen(js_name = "handleTimeout")]
    pub fn handle_timeout(
        &mut self,
        #[wasm_bindgen(js_name = "nowMs")] now_ms: f64,
    ) -> Result<(), JsError> {
        convert::feed_timeout(&mut |i| self.machine.handle_input(i), now_ms)
    }

    /// Stops the acquire: no further attempt starts and everything sent is released; the
    /// outcome becomes `cancelled` once the commands in flight settle. No effect once done.
    pub fn cancel(
        &mut self,
        #[wasm_bindgen(js_name = "nowMs")] now_ms: f64,
    ) -> Result<(), JsError> {
        let now = redlock_core::Instant::from_millis(ms(now_ms, "nowMs")?);
        self.machine.cancel(now).map_err(core_error)
    }

    /// A hint that the lock may just have been freed (a release announcement, for fast
    /// handoff): if the acquire is waiting to retry, its next attempt moves up to a random point
    /// within `spreadMs` of `nowMs`. Only the timing changes: an early attempt that loses before
    /// the timed retry was due does not use up a retry (the timed retry stays), and the deadline
    /// and the cleanups stay, so a lost or spurious hint costs nothing but an early attempt.
    /// Returns whether the retry moved.
    pub fn wake(
        &mut self,
        #[wasm_bindgen(js_name = "nowMs")] now_ms: f64,
        #[wasm_bindgen(js_name = "spreadMs")] spread_ms: f64,
    ) -> Result<bool, JsError> {
        let now = redlock_core::Instant::from_millis(ms(now_ms, "nowMs")?);
        let spread = core::time::Duration::from_millis(ms(spread_ms, "spreadMs")?);
        self.machine.wake(now, spread).map_err(core_error)
    }

    /// Whether the acquire is waiting to retry after a failed attempt (as opposed to running an
    /// attempt, or done): the moment a fast-handoff waiter subscribes.
    #[wasm_bindgen(getter, js_name = "isWaitingToRetry")]
    pub fn is_waiting_to_retry(&self) -> bool {
        self.machine.is_waiting_to_retry()
    }

    /// The current attempt, 1-based.
    #[wasm_bindgen(getter)]
    pub fn attempt(&self) -> u32 {
        self.machine.attempt()
    }

    /// The value the current attempt writes (32 lowercase hex characters).
    #[wasm_bindgen(getter)]
    pub fn value(&self) -> String {
        self.machine.value().as_str().to_owned()
    }
}
