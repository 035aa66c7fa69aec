//! Signed server calls (shared-engine `server_call.rs`): the `X-Samplit-Timestamp` and
//! `X-Samplit-Signature` headers as the edge reads them. Outside headers never verify
//! without the secret; a genuine signature verifies only for the exact request, inside
//! the window.
#![no_main]

use libfuzzer_sys::fuzz_target;
use samplit_engine::server_call::{self, CallError};
use samplit_fuzz::split2;

const SECRET: &[u8] = b"fuzz-snapshot-secret-0123456789abcdef0123";
const NOW: i64 = 1_800_000_000;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let ss = server_call::server_secret(SECRET, "pk_site", "00112233445566778899aabbccddeeff");
    let (headers, body) = split2(s);
    let (timestamp, signature) = split2(headers);

    // Forged headers: verification can only fail (a forgery would need the MAC), and it
    // never panics, whatever the timestamp and signature look like.
    let forged = server_call::verify(&ss, timestamp, signature, NOW, "POST", "/v1/events", body.as_bytes());
    if forged.is_ok() {
        // Only possible if the input is the genuine signature of this very request.
        let ts: i64 = timestamp.trim().parse().expect("a verified timestamp parses");
        assert_eq!(
            server_call::sign(&ss, ts, "POST", "/v1/events", body.as_bytes()),
            signature.trim()
        );
    }

    // A genuine signature over the fuzzed body verifies, at the edge of the window too,
    // and fails outside it, for another path or method, or with one byte more.
    let skew = i64::from(data.first().copied().unwrap_or(0)) * 3; // 0..=765 s
    let ts = NOW - skew;
    let sig = server_call::sign(&ss, ts, "POST", "/v1/assign", body.as_bytes());
    let got = server_call::verify(&ss, &ts.to_string(), &sig, NOW, "POST", "/v1/assign", body.as_bytes());
    if skew <= server_call::WINDOW_SECONDS {
        assert_eq!(got, Ok(()));
    } else {
        assert_eq!(got, Err(CallError::Expired));
    }
    let ts_s = ts.to_string();
    assert_eq!(
        server_call::verify(&ss, &ts_s, &sig, ts, "GET", "/v1/assign", body.as_bytes()),
        Err(CallError::BadSignature)
    );
    assert_eq!(
        server_call::verify(&ss, &ts_s, &sig, ts, "POST", "/v1/events", body.as_bytes()),
        Err(CallError::BadSignature)
    );
    let mut longer = body.as_bytes().to_vec();
    longer.push(b' ');
    assert_eq!(
        server_call::verify(&ss, &ts_s, &sig, ts, "POST", "/v1/assign", &longer),
        Err(CallError::BadSignature)
    );
});
