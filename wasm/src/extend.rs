//! `Extend`: resets the TTL of a held lock's keys on a quorum, never re-creating a key.

use redlock_core::Extend;
use wasm_bindgen::prelude::*;

use crate::config::JsConfig;
use crate::convert::{self, core_error, ms, Packer};

/// The extend machine for a JavaScript host, driven like {@link Acquire}. It extends `lease` to
/// the TTL of `config` (see {@link Config.withTtl}); it refuses an expired lease (outcome
/// `expired`, nothing sent) and does not retry.
#[wasm_bindgen(js_name = "Extend")]
#[derive(Debug)]
pub struct JsExtend {
    machine: Extend,
    packer: Packer,
    done: Option<JsValue>,
}

#[wasm_bindgen(js_class = "Extend")]
impl JsExtend {
    /// Starts extending `lease` (from an `acquired` or `extended` outcome) at `nowMs`.
    #[wasm_bindgen(constructor)]
    pub fn new(
        config: &JsConfig,
        #[wasm_bindgen(unchecked_param_type = "Lease")] lease: &JsValue,
        #[wasm_bindgen(js_name = "nowMs")] now_ms: f64,
    ) -> Result<Self, JsError> {
        let lease = convert::lease_from_js(lease)?;
        let now = redlock_core::Instant::from_millis(ms(now_ms, "nowMs")?);
        let machine = Extend::new(config.inner, &lease, now).map_err(core_error)?;
        Ok(Self {
            machine,
            packer: Packer::default(),
            done: None,
        })
    }

    /// What to do next; see {@link Acquire.pollOutput}.
    #[wasm_bindgen(
        js_name = "pollOutput",
        unchecked_return_type = "Output<ExtendOutcome>"
    )]
    pub fn poll_output(&mut self) -> JsValue {
        let out = self.machine.poll_output();
        convert::output(
            out,
            &mut self.packer,
            &mut self.done,
            convert::extend_outcome,
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
