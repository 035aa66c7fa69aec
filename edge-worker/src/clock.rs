//! The Worker's clock: JavaScript's `Date.now()`, never `std::time` (which panics on
//! wasm32-unknown-unknown). Inside a Worker the clock only advances across I/O, which is
//! all the snapshot TTL needs.

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    js_sys::Date::now() as i64
}
