//! `Release`: deletes a lock's keys where they still hold its value, on every instance.

use redlock_core::Release;
use wasm_bindgen::prelude::*;

use crate::config::JsConfig;
use crate::convert::{self, core_error, ms, Packer};

/// The release machine for a JavaScript host, driven like {@link Acquire}: the compare-and-delete
/// script goes to every instance (never a plain `DEL`, so it cannot free another holder's lock),
/// and the outcome reports per instance once each has answered or timed out.
#[wasm_bindgen(js_name = "Release")]
#[derive(Debug)]
pub struct JsRelease {
    machine: Release,
    packer: Packer,
    done: Option<JsValue>,
}

#[wasm_bindgen(js_class = "Release")]
impl JsRelease {
    /// Starts releasing `lease` at `nowMs`.
    #[wasm_bindgen(constructor)]
    pub fn new(
        config: &JsConfig,
        #[wasm_bindgen(unchecked_param_type = "Lease")] lease: &JsValue,
        #[wasm_bindgen(js_name = "nowMs")] now_ms: f64,
    ) -> Result<Self, JsError> {
        let lease = convert::lease_from_js(lease)?;
        let now = redlock_core::Instant::from_millis(ms(now_ms, "nowMs")?);
        let machine = Release::new(config.inner, &lease, now).map_err(core_error)?;
        Ok(Self {
            machine,
            packer: Packer::default(),
            done: None,
        })
    }

    /// What to do next; see {@link Acquire.pollOutput}.
    #[wasm_bindgen(
        js_name = "pollOutput",
        unchecked_return_type = "Output<ReleaseOutcome>"
    )]
    pub fn poll_output(&mut self) -> JsValue {
        let out = self.machine.poll_output();
        convert::output(
            out,
            &mut self.packer,
            &mut self.done,
            convert::release_outcome,
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

    /// Request `request` to instance `instance` failed before a reply arrived.
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

    /// Time passed: feed it when a `wait` deadline is reached.
    #[wasm_bindgen(js_name = "handleTimeout")]
    pub fn handle_timeout(
        &mut self,
        #[wasm_bindgen(js_name = "nowMs")] now_ms: f64,
    ) -> Result<(), JsError> {
        convert::feed_timeout(&mut |i| self.machine.handle_input(i), now_ms)
    }
}
