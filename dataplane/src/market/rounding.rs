//! Decimal rounding for published numbers.
//!
//! Published JSON is diffed and cached byte-for-byte, so values are rounded
//! to a fixed number of decimals to keep payloads compact and stable.

/// Decimals used for prices, percentages and index values.
pub const PRICE_DP: u32 = 4;
/// Decimals used for aggregated money totals.
pub const MONEY_DP: u32 = 2;

/// Rounds `x` half away from zero to `dp` decimals.
///
/// Never returns a non-finite value: JSON has no NaN/Infinity (serde_json
/// would emit `null`, which then fails to read back as `f64`), so NaN maps
/// to 0 and infinities saturate to `±f64::MAX`.
pub fn round_dp(x: f64, dp: u32) -> f64 {
    if x.is_nan() {
        return 0.0;
    }
    if x.is_infinite() {
        return f64::MAX.copysign(x);
    }
    // Beyond 1e15 an f64 has no fractional digits left to round, and scaling
    // could overflow to infinity.
    if x.abs() >= 1e15 {
        return x;
    }
    let scale = 10f64.powi(dp as i32);
    let rounded = (x * scale).round() / scale;
    // Avoid "-0.0" in JSON for tiny negatives that round to zero.
    if rounded == 0.0 { 0.0 } else { rounded }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_to_requested_decimals() {
        assert_eq!(round_dp(1.234_56, 4), 1.2346);
        assert_eq!(round_dp(-1.234_54, 4), -1.2345);
        assert_eq!(round_dp(2.005_1, 2), 2.01);
    }

    #[test]
    fn normalizes_negative_zero_and_non_finite() {
        assert!(round_dp(-0.000_01, 4).is_sign_positive());
        assert_eq!(round_dp(f64::NAN, 4), 0.0);
        assert_eq!(round_dp(f64::INFINITY, 4), f64::MAX);
        assert_eq!(round_dp(f64::NEG_INFINITY, 4), -f64::MAX);
        assert_eq!(round_dp(1e300, 4), 1e300);
    }
}
