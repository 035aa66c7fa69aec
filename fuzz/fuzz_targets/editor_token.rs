//! Editor tokens: `verify` on arbitrary tokens, and on payloads MACed with the derived
//! editor key (to reach the claims parser). A verified token's claims are valid, within
//! the lifetime window, and re-sign to a token that verifies to the same claims.
#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::Mac;
use libfuzzer_sys::fuzz_target;
use samplit_engine::editor_token::{self, MAX_LIFETIME_MS, TokenError};
use samplit_fuzz::mode;

const SECRET: &[u8] = b"fuzz-snapshot-secret-0123456789abcdef";
const NOW: i64 = 1_800_000_000_000;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// The token the control plane would mint for these payload bytes.
fn mint(payload: &[u8]) -> String {
    let mut derive = HmacSha256::new_from_slice(SECRET).unwrap();
    derive.update(b"samplit/editor-token/v1");
    let key = derive.finalize().into_bytes();
    let mut mac = HmacSha256::new_from_slice(&key).unwrap();
    mac.update(payload);
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(payload),
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

fuzz_target!(|data: &[u8]| {
    let Some((m, rest)) = mode(data) else { return };
    let token = if m & 1 == 0 {
        mint(rest)
    } else {
        let Ok(t) = std::str::from_utf8(rest) else {
            return;
        };
        t.to_owned()
    };
    let claims = match editor_token::verify(&token, SECRET, NOW) {
        Ok(c) => c,
        Err(TokenError::EmptyKey) => panic!("non-empty key"),
        Err(_) => return,
    };
    claims.validate().expect("verified claims are valid");
    assert!(claims.exp_ms > NOW && claims.exp_ms - NOW <= MAX_LIFETIME_MS);
    assert!(editor_token::verify(&token, b"another secret", NOW).is_err());
    assert_eq!(
        editor_token::verify(&token, SECRET, claims.exp_ms),
        Err(TokenError::Expired)
    );
    match editor_token::sign(&claims, SECRET) {
        Ok(again) => assert_eq!(
            editor_token::verify(&again, SECRET, NOW).as_ref(),
            Ok(&claims)
        ),
        Err(TokenError::TooLong(_)) => {}
        Err(e) => panic!("verified claims do not re-sign: {e}"),
    }
});
