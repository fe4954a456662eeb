//! `Config`: the algorithm's parameters, validated once, from a plain options object.

use core::time::Duration;

use js_sys::{Array, Object, Reflect};
use redlock_core::{Config, MAX_INSTANCES};
use wasm_bindgen::prelude::*;

use crate::convert::{error, ms, number_error};
use crate::time::integer_from_js;

/// The option names `new Config(options)` understands; any other name is refused, so a typo is
/// an error instead of a silently ignored setting.
const OPTIONS: [&str; 11] = [
    "instances",
    "ttlMs",
    "driftFactor",
    "driftPadMs",
    "instanceTimeoutMs",
    "retryCount",
    "retryDelayMs",
    "retryJitterMs",
    "minValidityMs",
    "acquireDeadlineMs",
    "releaseNotification",
];

/// The parameters of the Redlock algorithm for N instances and one TTL, validated once: a
/// `Config` that exists is usable.
///
/// Defaults: quorum `N / 2 + 1`; drift `floor(ttl × 0.01) + 2` ms; instance timeout 5 % of
/// the TTL (at least 10 ms); 3 retries, 200 ± 100 ms apart; no minimum validity; no overall
/// deadline; releases not announced.
#[wasm_bindgen(js_name = "Config")]
#[derive(Debug, Clone, Copy)]
pub struct JsConfig {
    pub(crate) inner: Config,
}

fn get(options: &JsValue, name: &str) -> Result<Option<f64>, JsError> {
    let v = Reflect::get(options, &JsValue::from_str(name)).unwrap_or(JsValue::UNDEFINED);
    if v.is_undefined() {
        return Ok(None);
    }
    match v.as_f64() {
        Some(n) => Ok(Some(n)),
        None => Err(error(&format!("Config option {name} must be a number"))),
    }
}

fn get_ms(options: &JsValue, name: &str) -> Result<Option<u64>, JsError> {
    get(options, name)?.map(|v| ms(v, name)).transpose()
}

fn config_error(e: redlock_core::ConfigError) -> JsError {
    error(&e.to_string())
}

#[wasm_bindgen(js_class = "Config")]
impl JsConfig {
    /// A configuration from `{ instances, ttlMs, …optional settings }`. Throws on a missing,
    /// unknown or invalid option (a TTL too short for its drift, a jitter above the delay…).
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(unchecked_param_type = "ConfigOptions")] options: &JsValue,
    ) -> Result<Self, JsError> {
        if !options.is_object() {
            return Err(error(
                "Config options must be an object like { instances: 3, ttlMs: 10000 }",
            ));
        }
        let keys: Array = Object::keys(options.unchecked_ref::<Object>());
        for key in keys.iter() {
            let known = key
                .as_string()
                .is_some_and(|k| OPTIONS.contains(&k.as_str()));
            if !known {
                let name = key.as_string().unwrap_or_default();
                return Err(error(&format!(
                    "unknown Config option {name:?} (known: {})",
                    OPTIONS.join(", ")
                )));
            }
        }
        let instances = get(options, "instances")?
            .ok_or_else(|| error("Config option instances is required"))?;
        let instances =
            integer_from_js(instances, 255).map_err(|e| number_error("instances", e))? as usize;
        if instances > MAX_INSTANCES {
            return Err(config_error(redlock_core::ConfigError::TooManyInstances {
                requested: instances,
            }));
        }
        let ttl =
            get_ms(options, "ttlMs")?.ok_or_else(|| error("Config option ttlMs is required"))?;
        let mut c = Config::new(instances, Duration::from_millis(ttl)).map_err(config_error)?;
        if let Some(f) = get(options, "driftFactor")? {
            c = c.with_drift_factor(f).map_err(config_error)?;
        }
        if let Some(pad) = get_ms(options, "driftPadMs")? {
            c = c
                .with_drift_pad(Duration::from_millis(pad))
                .map_err(config_error)?;
        }
        if let Some(t) = get_ms(options, "instanceTimeoutMs")? {
            c = c
                .with_instance_timeout(Duration::from_millis(t))
                .map_err(config_error)?;
        }
        if let Some(n) = get(options, "retryCount")? {
            let n = integer_from_js(n, u32::MAX).map_err(|e| number_error("retryCount", e))?;
            c = c.with_retry_count(n).map_err(config_error)?;
        }
        let delay = get_ms(options, "retryDelayMs")?;
        let jitter = get_ms(options, "retryJitterMs")?;
        if delay.is_some() || jitter.is_some() {
            let delay = delay.unwrap_or(c.retry_delay_ms());
            // A new delay without a jitter keeps the default jitter only if it still fits.
            let jitter = jitter.unwrap_or(c.retry_jitter_ms().min(delay));
            c = c
                .with_retry_delay(Duration::from_millis(delay), Duration::from_millis(jitter))
                .map_err(config_error)?;
        }
        if let Some(min) = get_ms(options, "minValidityMs")? {
            c = c
                .with_min_validity(Duration::from_millis(min))
                .map_err(config_error)?;
        }
        let deadline = Reflect::get(options, &JsValue::from_str("acquireDeadlineMs"))
            .unwrap_or(JsValue::UNDEFINED);
        if !deadline.is_null() && !deadline.is_undefined() {
            let d = get_ms(options, "acquireDeadlineMs")?;
            c = c
                .with_acquire_deadline(d.map(Duration::from_millis))
                .map_err(config_error)?;
        }
        let notify = Reflect::get(options, &JsValue::from_str("releaseNotification"))
            .unwrap_or(JsValue::UNDEFINED);
        if !notify.is_undefined() {
            let Some(on) = notify.as_bool() else {
                return Err(error("Config option releaseNotification must be a boolean"));
            };
            c = c.with_release_notification(on);
        }
        Ok(Self { inner: c })
    }

    /// The same configuration with another lease TTL (for a per-call TTL, or an extend).
    #[wasm_bindgen(js_name = "withTtl")]
    pub fn with_ttl(&self, ttl_ms: f64) -> Result<Self, JsError> {
        let ttl = ms(ttl_ms, "ttlMs")?;
        self.inner
            .with_ttl(Duration::from_millis(ttl))
            .map(|inner| Self { inner })
            .map_err(config_error)
    }

    /// The configured number of instances, N.
    #[wasm_bindgen(getter)]
    pub fn instances(&self) -> u32 {
        // At most MAX_INSTANCES.
        self.inner.instances() as u32
    }

    /// The quorum, `N / 2 + 1`.
    #[wasm_bindgen(getter)]
    pub fn quorum(&self) -> u32 {
        // At most MAX_INSTANCES.
        self.inner.quorum() as u32
    }

    /// The lease TTL in milliseconds.
    #[wasm_bindgen(getter, js_name = "ttlMs")]
    pub fn ttl_ms(&self) -> f64 {
        self.inner.ttl_ms() as f64
    }

    /// The drift subtracted from the TTL, in milliseconds.
    #[wasm_bindgen(getter, js_name = "driftMs")]
    pub fn drift_ms(&self) -> f64 {
        self.inner.drift_ms() as f64
    }

    /// The drift factor.
    #[wasm_bindgen(getter, js_name = "driftFactor")]
    pub fn drift_factor(&self) -> f64 {
        self.inner.drift_factor()
    }

    /// The fixed pad added to the drift, in milliseconds.
    #[wasm_bindgen(getter, js_name = "driftPadMs")]
    pub fn drift_pad_ms(&self) -> f64 {
        self.inner.drift_pad_ms() as f64
    }

    /// How long one instance may take to answer one command, in milliseconds.
    #[wasm_bindgen(getter, js_name = "instanceTimeoutMs")]
    pub fn instance_timeout_ms(&self) -> f64 {
        self.inner.instance_timeout_ms() as f64
    }

    /// How many times a failed acquire is retried.
    #[wasm_bindgen(getter, js_name = "retryCount")]
    pub fn retry_count(&self) -> u32 {
        self.inner.retry_count()
    }

    /// The base delay between attempts, in milliseconds.
    #[wasm_bindgen(getter, js_name = "retryDelayMs")]
    pub fn retry_delay_ms(&self) -> f64 {
        self.inner.retry_delay_ms() as f64
    }

    /// The jitter of the retry delay, in milliseconds.
    #[wasm_bindgen(getter, js_name = "retryJitterMs")]
    pub fn retry_jitter_ms(&self) -> f64 {
        self.inner.retry_jitter_ms() as f64
    }

    /// The least validity worth having, in milliseconds.
    #[wasm_bindgen(getter, js_name = "minValidityMs")]
    pub fn min_validity_ms(&self) -> f64 {
        self.inner.min_validity_ms() as f64
    }

    /// Whether releases (and cleanups of failed attempts) announce themselves on
    /// `redlock:released:<key>` for fast handoff.
    #[wasm_bindgen(getter, js_name = "releaseNotification")]
    pub fn release_notification(&self) -> bool {
        self.inner.release_notification()
    }

    /// The overall acquire deadline in milliseconds, if any.
    #[wasm_bindgen(getter, js_name = "acquireDeadlineMs")]
    pub fn acquire_deadline_ms(&self) -> Option<f64> {
        self.inner.acquire_deadline_ms().map(|d| d as f64)
    }
}
