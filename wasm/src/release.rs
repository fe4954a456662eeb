//! `Release`: deletes a lock's keys where they still hold its value, on every instance.

use redlock_core::{Input, Release};
use wasm_bindgen::prelude::*;

use crate::config::JsConfig;
use crate::convert::{self, core_error, ms, OwnedReply, Packer};

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
        let (instance, request) = (convert::instance(instance)?, convert::request(request)?);
        let at = redlock_core::Instant::from_millis(ms(at_ms, "atMs")?);
        let reply = OwnedReply::from_js(reply);
        self.machine
            .handle_input(Input::Reply {
                instance,
                request,
                reply: reply.as_reply(),
                at,
            })
            .map_err(core_error)
    }

    /// Request `request` to instance `instance` failed before a reply arrived.
    #[wasm_bindgen(js_name = "handleTransportError")]
    pub fn handle_transport_error(
        &mut self,
        instance: f64,
        request: f64,
        #[wasm_bindgen(js_name = "atMs")] at_ms: f64,
    ) -> Result<(), JsError> {
        let (instance, request) = (convert::instance(instance)?, convert::request(request)?);
        let at = redlock_core::Instant::from_millis(ms(at_ms, "atMs")?);
        self.machine
            .handle_input(Input::TransportError {
                instance,
                request,
                at,
            })
            .map_err(core_error)
    }

    /// Time passed: feed it when a `wait` deadline is reached.
    #[wasm_bindgen(js_name = "handleTimeout")]
    pub fn handle_timeout(
        &mut self,
        #[wasm_bindgen(js_name = "nowMs")] now_ms: f64,
    ) -> Result<(), JsError> {
        let now = redlock_core::Instant::from_millis(ms(now_ms, "nowMs")?);
        self.machine
            .handle_input(Input::Timeout { now })
            .map_err(core_error)
    }
}
