//! Numbers from JavaScript: milliseconds, instance indices and request ids, checked before they
//! reach the core. Pure Rust, so the checks are unit-tested natively.

/// The largest integer a JavaScript number holds exactly (`Number.MAX_SAFE_INTEGER`), the upper
/// bound of every time and duration accepted from JavaScript.
pub(crate) const MAX_SAFE_MS: f64 = 9_007_199_254_740_991.0;

/// Why a JavaScript number was refused.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum NumberError {
    /// `NaN` or an infinity.
    NotFinite(f64),
    /// Below zero.
    Negative(f64),
    /// Above the largest allowed value ([`MAX_SAFE_MS`] for times), given as the second field.
    TooLarge(f64, u64),
    /// Has a fractional part where an integer is required.
    NotInteger(f64),
}

impl NumberError {
    /// The refused number.
    pub(crate) fn value(&self) -> f64 {
        match *self {
            Self::NotFinite(v) | Self::Negative(v) | Self::TooLarge(v, _) | Self::NotInteger(v) => {
                v
            }
        }
    }

    /// What was wrong, as a phrase (no float formatting here: it would bloat the module).
    pub(crate) fn reason(&self) -> String {
        match self {
            Self::NotFinite(_) => "must be a finite number".into(),
            Self::Negative(_) => "must not be negative".into(),
            Self::TooLarge(_, max) => format!("must be at most {max}"),
            Self::NotInteger(_) => "must be an integer".into(),
        }
    }
}

fn check_range(v: f64, max: f64) -> Result<f64, NumberError> {
    if !v.is_finite() {
        return Err(NumberError::NotFinite(v));
    }
    if v < 0.0 {
        return Err(NumberError::Negative(v));
    }
    if v > max {
        // In range: max is an integer of at most 2^53 - 1.
        return Err(NumberError::TooLarge(v, max as u64));
    }
    Ok(v)
}

/// Milliseconds from a JavaScript number (a `performance.now()` reading or a duration): finite,
/// non-negative, at most 2^53 - 1, rounded down.
///
/// Rounding down is consistent for every reading, so a monotonic clock stays monotonic; the
/// core's drift pad covers the sub-millisecond it loses.
pub(crate) fn ms_from_js(v: f64) -> Result<u64, NumberError> {
    // In range: 0 <= floor(v) <= 2^53 - 1, exactly representable as u64.
    check_range(v, MAX_SAFE_MS).map(|v| v.floor() as u64)
}

/// A non-negative integer of at most `max` from a JavaScript number, fractions refused.
pub(crate) fn integer_from_js(v: f64, max: u32) -> Result<u32, NumberError> {
    let v = check_range(v, f64::from(max))?;
    if v.fract() != 0.0 {
        return Err(NumberError::NotInteger(v));
    }
    // In range: an integer in [0, max] with max <= u32::MAX.
    Ok(v as u32)
}

/// Milliseconds as a JavaScript number. Exact up to 2^53; beyond that (only sums near the far
/// future, which saturate in the core) the nearest double, which still orders correctly.
pub(crate) fn ms_to_js(ms: u64) -> f64 {
    ms as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_are_floored_and_bounded() {
        assert_eq!(ms_from_js(0.0), Ok(0));
        assert_eq!(ms_from_js(-0.0), Ok(0));
        assert_eq!(ms_from_js(1234.999), Ok(1234));
        assert_eq!(ms_from_js(MAX_SAFE_MS), Ok(9_007_199_254_740_991));
        assert_eq!(ms_from_js(-1.0), Err(NumberError::Negative(-1.0)));
        assert!(matches!(
            ms_from_js(f64::NAN),
            Err(NumberError::NotFinite(_))
        ));
        assert!(matches!(
            ms_from_js(f64::INFINITY),
            Err(NumberError::NotFinite(_))
        ));
        assert!(matches!(
            ms_from_js(MAX_SAFE_MS + 2.0),
            Err(NumberError::TooLarge(..))
        ));
    }

    #[test]
    fn integers_refuse_fractions_and_overflow() {
        assert_eq!(integer_from_js(3.0, 16), Ok(3));
        assert_eq!(integer_from_js(16.0, 16), Ok(16));
        assert_eq!(integer_from_js(1.5, 16), Err(NumberError::NotInteger(1.5)));
        assert_eq!(
            integer_from_js(17.0, 16),
            Err(NumberError::TooLarge(17.0, 16))
        );
        assert_eq!(integer_from_js(f64::from(u32::MAX), u32::MAX), Ok(u32::MAX));
        assert!(matches!(
            integer_from_js(f64::NAN, 16),
            Err(NumberError::NotFinite(_))
        ));
        assert_eq!(integer_from_js(-1.0, 16), Err(NumberError::Negative(-1.0)));
    }

    #[test]
    fn floored_readings_stay_monotonic() {
        let readings = [0.1, 0.9, 1.0, 1.5, 2.999, 3.0, 1e12 + 0.5];
        let ms: Vec<u64> = readings.iter().map(|&r| ms_from_js(r).unwrap()).collect();
        assert!(ms.windows(2).all(|w| w[0] <= w[1]));
    }
}
