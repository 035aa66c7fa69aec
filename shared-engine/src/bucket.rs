//! GrowthBook-compatible bucketing: hashing (v1, v2), bucket ranges, namespaces.
//!
//! A site moving from GrowthBook must keep its visitors' buckets, so this module follows
//! the GrowthBook JS SDK's documented algorithm exactly (`hashFnv32a`, `hash`,
//! `getBucketRanges`, `chooseVariation`, `inNamespace` in the SDK's `util.ts`):
//!
//! - FNV-1a 32-bit over the string's **UTF-16 code units** (what `charCodeAt` returns):
//!   start at the offset basis 2166136261; for each code unit, XOR it into the hash, then
//!   multiply by the FNV prime 16777619 modulo 2^32.
//! - v1: `fnv1a32(value + seed) % 1000 / 1000`.
//! - v2: `fnv1a32(decimal_string(fnv1a32(seed + value))) % 10000 / 10000`.
//! - Ranges: coverage clamped to [0, 1]; weights of the wrong length or whose sum is
//!   outside [0.99, 1.01] are replaced by equal weights; range i is
//!   `[start_i, start_i + coverage·w_i)` with `start_i` the sum of the previous weights.
//! - The chosen variation is the first range with `start ≤ n < end`.
//!
//! The public functions mirror the SDK's signatures. The hot path (the Worker, per
//! request) uses [`hash_parts`] and [`choose_from_weights`], which never allocate: the
//! FNV state is fed piece by piece instead of concatenating strings, and the v2 inner
//! hash is formatted into a stack buffer. Property tests check that both paths agree.
//!
//! The golden vectors in the tests were computed independently by
//! `tests/reference/growthbook_hash.py` (a direct transcription of the definition).

use alloc::string::String;
use alloc::vec::Vec;

/// FNV-1a 32-bit offset basis.
const FNV_OFFSET: u32 = 2_166_136_261;
/// FNV-1a 32-bit prime.
const FNV_PRIME: u32 = 16_777_619;

/// Incremental FNV-1a over UTF-16 code units, so a hash of `a + b` can be computed by
/// feeding `a` then `b` without building the concatenation.
#[derive(Debug, Clone, Copy)]
pub struct Fnv1a32(u32);

impl Default for Fnv1a32 {
    fn default() -> Self {
        Self::new()
    }
}

impl Fnv1a32 {
    /// A fresh state (the offset basis).
    #[must_use]
    pub const fn new() -> Self {
        Self(FNV_OFFSET)
    }

    /// Feeds one UTF-16 code unit.
    #[inline]
    pub fn write_unit(&mut self, unit: u16) {
        self.0 ^= u32::from(unit);
        self.0 = self.0.wrapping_mul(FNV_PRIME);
    }

    /// Feeds a string as the JS SDK sees it: its UTF-16 code units in order.
    #[inline]
    pub fn write_str(&mut self, s: &str) {
        // ASCII fast path: for ASCII, UTF-8 bytes and UTF-16 code units coincide, and
        // byte iteration is much cheaper than `encode_utf16`.
        if s.is_ascii() {
            for &b in s.as_bytes() {
                self.write_unit(u16::from(b));
            }
        } else {
            for unit in s.encode_utf16() {
                self.write_unit(unit);
            }
        }
    }

    /// The hash value.
    #[must_use]
    pub const fn finish(self) -> u32 {
        self.0
    }
}

/// FNV-1a 32-bit of a string's UTF-16 code units (GrowthBook's `hashFnv32a`).
#[must_use]
pub fn fnv1a32(s: &str) -> u32 {
    let mut h = Fnv1a32::new();
    h.write_str(s);
    h.finish()
}

/// GrowthBook's `hash(seed, value, version)`: a number in [0, 1) deciding the bucket.
///
/// Returns `None` for an unknown hash version (the SDK returns `null`).
#[must_use]
pub fn hash(seed: &str, value: &str, version: u8) -> Option<f64> {
    hash_parts(&[seed], value, version)
}

/// Allocation-free [`hash`] whose seed is the concatenation of `seed_parts`
/// (e.g. `[seed, ":", element_id]` for a multi-element salt).
///
/// `hash_parts(&[a, b], v, ver) == hash(&(a.to_owned() + b), v, ver)`.
#[must_use]
pub fn hash_parts(seed_parts: &[&str], value: &str, version: u8) -> Option<f64> {
    match version {
        1 => Some(v1(value, "", seed_parts)),
        2 => {
            // v2 hashes `seed + value`, then hashes the inner hash's decimal string.
            let mut inner = Fnv1a32::new();
            for part in seed_parts {
                inner.write_str(part);
            }
            inner.write_str(value);
            Some(v2_outer(inner.finish()))
        }
        _ => None,
    }
}

/// v1: `fnv1a32(value + seed) % 1000 / 1000`, the seed being `first` then `rest`.
fn v1(value: &str, first: &str, rest: &[&str]) -> f64 {
    let mut h = Fnv1a32::new();
    h.write_str(value);
    h.write_str(first);
    for part in rest {
        h.write_str(part);
    }
    f64::from(h.finish() % 1000) / 1000.0
}

/// v2's outer step: `fnv1a32(decimal_string(inner)) % 10000 / 10000`.
fn v2_outer(inner: u32) -> f64 {
    let mut buf = [0u8; 10];
    let digits = decimal(inner, &mut buf);
    let mut outer = Fnv1a32::new();
    for &d in digits {
        outer.write_unit(u16::from(d));
    }
    f64::from(outer.finish() % 10_000) / 10_000.0
}

/// A bucketing seed (an experiment's `seed`) with the FNV-1a state of its UTF-16 code
/// units computed once, when the seed is made.
///
/// Hash v2 starts with `fnv1a32(seed + value)`: the seed's share of that hash is the same
/// for every visitor, so [`Seed::hash_parts`] resumes from the stored state and feeds
/// only the rest. For a UUID seed and a UUID visitor id that halves the per-request
/// hashing. The state is private and set only from the text, so it cannot go stale;
/// the seed serialises as its plain string.
#[derive(Clone)]
pub struct Seed {
    text: String,
    state: Fnv1a32,
}

impl Seed {
    /// A seed and its hash state.
    pub fn new(text: impl Into<String>) -> Self {
        let text = text.into();
        let mut state = Fnv1a32::new();
        state.write_str(&text);
        Self { text, state }
    }

    /// The seed's text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// `hash_parts(&[seed, rest[0], rest[1], …], value, version)`, resuming from the
    /// seed's stored state for v2 (v1 hashes `value + seed`, so it starts from scratch).
    #[must_use]
    pub fn hash_parts(&self, rest: &[&str], value: &str, version: u8) -> Option<f64> {
        match version {
            1 => Some(v1(value, &self.text, rest)),
            2 => {
                let mut inner = self.state;
                for part in rest {
                    inner.write_str(part);
                }
                inner.write_str(value);
                Some(v2_outer(inner.finish()))
            }
            _ => None,
        }
    }
}

impl core::ops::Deref for Seed {
    type Target = str;
    fn deref(&self) -> &str {
        &self.text
    }
}

impl AsRef<str> for Seed {
    fn as_ref(&self) -> &str {
        &self.text
    }
}

impl PartialEq for Seed {
    fn eq(&self, other: &Self) -> bool {
        // The state is a function of the text.
        self.text == other.text
    }
}

impl Eq for Seed {}

impl core::fmt::Debug for Seed {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Debug::fmt(&self.text, f)
    }
}

impl core::fmt::Display for Seed {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.text)
    }
}

impl From<String> for Seed {
    fn from(text: String) -> Self {
        Self::new(text)
    }
}

impl From<&str> for Seed {
    fn from(text: &str) -> Self {
        Self::new(text)
    }
}

impl From<Seed> for String {
    fn from(seed: Seed) -> Self {
        seed.text
    }
}

impl serde::Serialize for Seed {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> serde::Deserialize<'de> for Seed {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self::new)
    }
}

/// Writes `n` in decimal (as JS `Number.prototype.toString` does for a u32) into `buf`
/// and returns the digits used.
fn decimal(mut n: u32, buf: &mut [u8; 10]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        // `n % 10 < 10`, so the cast cannot truncate.
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[i..]
}

/// Resolves the effective weights GrowthBook would use: `weights` if it has `n`
/// entries summing to within [0.99, 1.01], else equal weights. Calls `f(i, w_i)`.
///
/// One deliberate difference from the JS SDK: a NaN sum (NaN weight) falls back to equal
/// weights, where JS (whose comparisons with NaN are false) keeps the NaN weights and so
/// buckets nobody.
fn for_each_weight(n: usize, weights: Option<&[f64]>, mut f: impl FnMut(usize, f64) -> bool) {
    let chosen = weights.filter(|w| {
        let sum: f64 = w.iter().sum();
        w.len() == n && (0.99..=1.01).contains(&sum)
    });
    match chosen {
        Some(w) => {
            for (i, &wi) in w.iter().enumerate() {
                if !f(i, wi) {
                    return;
                }
            }
        }
        None => {
            // `n as f64` is exact for any realistic arm count (< 2^53).
            let equal = 1.0 / n as f64;
            for i in 0..n {
                if !f(i, equal) {
                    return;
                }
            }
        }
    }
}

/// Clamps coverage to [0, 1] like the SDK (NaN stays NaN, so nobody is bucketed, as in JS).
fn clamp_coverage(coverage: f64) -> f64 {
    // `f64::clamp` returns NaN for NaN, matching JS.
    coverage.clamp(0.0, 1.0)
}

/// GrowthBook's `getBucketRanges(numVariations, coverage, weights)`.
#[must_use]
pub fn bucket_ranges(n: usize, coverage: f64, weights: Option<&[f64]>) -> Vec<(f64, f64)> {
    let coverage = clamp_coverage(coverage);
    let mut out = Vec::with_capacity(n);
    let mut cumulative = 0.0;
    for_each_weight(n, weights, |_, w| {
        let start = cumulative;
        cumulative += w;
        out.push((start, start + coverage * w));
        true
    });
    out
}

/// GrowthBook's `chooseVariation(n, ranges)`: the first range with `start ≤ n < end`.
#[must_use]
pub fn choose_variation(n: f64, ranges: &[(f64, f64)]) -> Option<usize> {
    ranges
        .iter()
        .position(|&(start, end)| n >= start && n < end)
}

/// Allocation-free `choose_variation(n, &bucket_ranges(k, coverage, weights))`.
#[must_use]
pub fn choose_from_weights(
    n: f64,
    k: usize,
    coverage: f64,
    weights: Option<&[f64]>,
) -> Option<usize> {
    let coverage = clamp_coverage(coverage);
    let mut cumulative = 0.0;
    let mut found = None;
    for_each_weight(k, weights, |i, w| {
        let start = cumulative;
        cumulative += w;
        if n >= start && n < start + coverage * w {
            found = Some(i);
            false
        } else {
            true
        }
    });
    found
}

/// GrowthBook's `inNamespace(hashValue, [id, start, end])`:
/// `hash("__" + id, visitor, 1)` lies in `[start, end)`.
#[must_use]
pub fn in_namespace(visitor: &str, namespace: (&str, f64, f64)) -> bool {
    let (id, start, end) = namespace;
    match hash_parts(&["__", id], visitor, 1) {
        Some(n) => n >= start && n < end,
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn decimal_formats_like_js_to_string() {
        let mut buf = [0u8; 10];
        assert_eq!(decimal(0, &mut buf), b"0");
        assert_eq!(decimal(7, &mut buf), b"7");
        assert_eq!(decimal(u32::MAX, &mut buf), u32::MAX.to_string().as_bytes());
        assert_eq!(decimal(1_000_000, &mut buf), b"1000000");
    }

    #[test]
    fn fnv_of_empty_string_is_the_offset_basis() {
        assert_eq!(fnv1a32(""), FNV_OFFSET);
    }
}
