//! Helpers shared by the fuzz targets: the invariants every target checks the same way.

use samplit_edge::error::ApiError;

/// A refusal of outside input must be a 4xx with a stable code, never a 5xx.
pub fn assert_client_error(e: &ApiError) {
    assert!(
        (400..500).contains(&e.status),
        "outside input answered {} {}: {}",
        e.status,
        e.code,
        e.message
    );
    assert!(!e.code.is_empty());
}

/// Two independent strings from one input, separated by the first `\x01` (the second is
/// empty when there is none).
pub fn split2(s: &str) -> (&str, &str) {
    s.split_once('\u{1}').unwrap_or((s, ""))
}

/// The first byte picks a mode, the rest is the input proper.
pub fn mode(data: &[u8]) -> Option<(u8, &[u8])> {
    data.split_first().map(|(m, rest)| (*m, rest))
}
