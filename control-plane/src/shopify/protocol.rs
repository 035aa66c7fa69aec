//! Shopify's request authentication, as documented (pages cited in
//! `integrations/shopify/README.md`): the shop host check, the `hmac` query parameter of
//! install and callback requests, the webhook HMAC, and session tokens. Pure functions;
//! every MAC comparison is constant time (`Mac::verify_slice`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &[u8]) -> HmacSha256 {
    <HmacSha256 as Mac>::new_from_slice(secret).expect("HMAC-SHA256 accepts keys of any length")
}

/// A shop's permanent domain: `^[a-z0-9][a-z0-9-]*\.myshopify\.com$` (checked by hand: one
/// fixed suffix and a small alphabet need no regex engine). Nothing is ever sent to a
/// host that fails this.
#[must_use]
pub fn valid_shop(shop: &str) -> bool {
    let Some(name) = shop.strip_suffix(".myshopify.com") else {
        return false;
    };
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_lowercase() || b.is_ascii_digit())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && shop.len() <= 255
}

/// Escapes a query key or value the way Shopify's signing rule reads them (`%` and `&`;
/// `=` too in keys), so a value holding them cannot forge another pair.
fn escape(s: &str, key: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '%' => out.push_str("%25"),
            '&' => out.push_str("%26"),
            '=' if key => out.push_str("%3D"),
            c => out.push(c),
        }
    }
    out
}

/// The message Shopify signs for a query string: every decoded pair except `hmac` and
/// `signature`, sorted by key, joined `key=value` with `&`.
#[must_use]
pub fn query_message(pairs: &[(String, String)]) -> String {
    let mut kept: Vec<(String, String)> = pairs
        .iter()
        .filter(|(k, _)| k != "hmac" && k != "signature")
        .map(|(k, v)| (escape(k, true), escape(v, false)))
        .collect();
    kept.sort();
    kept.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Whether the query's `hmac` (lower-case hex HMAC-SHA256 of [`query_message`] under the
/// app secret) verifies. A missing, repeated or non-hex `hmac` does not.
#[must_use]
pub fn verify_query_hmac(secret: &[u8], pairs: &[(String, String)]) -> bool {
    let mut hmacs = pairs.iter().filter(|(k, _)| k == "hmac");
    let (Some((_, given)), None) = (hmacs.next(), hmacs.next()) else {
        return false;
    };
    let Ok(given) = hex::decode(given) else {
        return false;
    };
    let mut m = mac(secret);
    m.update(query_message(pairs).as_bytes());
    m.verify_slice(&given).is_ok()
}

/// The `hmac` a query would carry (tests and the stand-in's checks).
#[must_use]
pub fn sign_query(secret: &[u8], pairs: &[(String, String)]) -> String {
    let mut m = mac(secret);
    m.update(query_message(pairs).as_bytes());
    hex::encode(m.finalize().into_bytes())
}

/// Whether `X-Shopify-Hmac-Sha256` (base64 HMAC-SHA256 of the raw body under the app
/// secret) verifies.
#[must_use]
pub fn verify_webhook_hmac(secret: &[u8], body: &[u8], header: Option<&str>) -> bool {
    let Some(given) = header.and_then(|h| STANDARD.decode(h.trim()).ok()) else {
        return false;
    };
    let mut m = mac(secret);
    m.update(body);
    m.verify_slice(&given).is_ok()
}

/// The claims of a session token (App Bridge's id token) Samplit reads.
#[derive(Debug, Clone, Deserialize)]
pub struct SessionClaims {
    pub iss: String,
    pub dest: String,
    #[serde(default)]
    pub sub: Option<String>,
}

/// Why a session token was refused (logged; the caller sees one 401).
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("signature, audience, expiry or not-before check failed: {0}")]
    Jwt(#[from] jsonwebtoken::errors::Error),
    #[error("dest is not https://<shop>.myshopify.com")]
    BadDest,
    #[error("iss is not dest + /admin")]
    BadIssuer,
}

/// Verifies a session token: HS256 under the app secret, `aud` = the app's client id,
/// `exp` and `nbf` (5 s of leeway for clock skew), `dest` = `https://<valid shop>` and
/// `iss` = `dest/admin`. Answers the shop.
pub fn verify_session_token(
    secret: &[u8],
    api_key: &str,
    token: &str,
) -> Result<(String, SessionClaims), SessionError> {
    use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_audience(&[api_key]);
    validation.validate_nbf = true;
    validation.leeway = 5;
    validation.set_required_spec_claims(&["exp", "nbf", "aud", "iss"]);
    let data = decode::<SessionClaims>(token, &DecodingKey::from_secret(secret), &validation)?;
    let claims = data.claims;
    let shop = claims
        .dest
        .strip_prefix("https://")
        .filter(|s| valid_shop(s))
        .ok_or(SessionError::BadDest)?
        .to_owned();
    if claims.iss != format!("{}/admin", claims.dest) {
        return Err(SessionError::BadIssuer);
    }
    Ok((shop, claims))
}

/// An order id as the orders/create webhook (`id`, a number) or the web pixel
/// (`gid://shopify/OrderIdentity/<n>`, `gid://shopify/Order/<n>` or `<n>`) names it: its
/// trailing digits.
#[must_use]
pub fn order_number(raw: &str) -> Option<u64> {
    let digits = raw.rsplit('/').next()?;
    if digits.is_empty() || digits.len() > 19 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The event id an order's purchase carries, from the pixel and from the webhook alike, so
/// ingestion counts it once.
#[must_use]
pub fn purchase_event_id(order: u64) -> String {
    format!("shopify-order:{order}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(raw: &[(&str, &str)]) -> Vec<(String, String)> {
        raw.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn shop_hosts_follow_the_documented_pattern() {
        for ok in [
            "a.myshopify.com",
            "samplit-test.myshopify.com",
            "0shop.myshopify.com",
        ] {
            assert!(valid_shop(ok), "{ok}");
        }
        for bad in [
            "",
            ".myshopify.com",
            "-shop.myshopify.com",
            "Shop.myshopify.com",
            "shop.myshopify.com.evil.com",
            "evil.com",
            "shop.evil.com/.myshopify.com",
            "a.b.myshopify.com",
            "shop.myshopify.com:443",
            "shop_x.myshopify.com",
            "shop.myshopify.co",
        ] {
            assert!(!valid_shop(bad), "{bad}");
        }
    }

    /// The example of Shopify's authorization-code page: the query
    /// `code=0907a61c0c8d55e99db179b68161bc00&shop={shop}.myshopify.com&state=0.6784241404160823&timestamp=1337178173`
    /// is signed as that exact string (hmac removed, keys sorted). The expected hex was
    /// computed independently with `openssl dgst -sha256 -hmac hush`.
    #[test]
    fn query_hmac_signs_the_sorted_pairs_and_verifies_in_both_directions() {
        let p = pairs(&[
            ("shop", "some-shop.myshopify.com"),
            ("timestamp", "1337178173"),
            ("code", "0907a61c0c8d55e99db179b68161bc00"),
            ("state", "0.6784241404160823"),
        ]);
        assert_eq!(
            query_message(&p),
            "code=0907a61c0c8d55e99db179b68161bc00&shop=some-shop.myshopify.com&state=0.6784241404160823&timestamp=1337178173"
        );
        let signed = sign_query(b"hush", &p);
        assert_eq!(
            signed,
            "700e2dadb827fcc8609e9d5ce208b2e9cdaab9df07390d2cbca10d7c328fc4bf"
        );
        let mut with = p.clone();
        with.push(("hmac".to_owned(), signed.clone()));
        assert!(verify_query_hmac(b"hush", &with));
        assert!(!verify_query_hmac(b"other", &with));
        // A changed value, a missing hmac, a doubled hmac and non-hex all fail.
        let mut tampered = with.clone();
        tampered[0].1 = "evil.myshopify.com".to_owned();
        assert!(!verify_query_hmac(b"hush", &tampered));
        assert!(!verify_query_hmac(b"hush", &p));
        let mut doubled = with.clone();
        doubled.push(("hmac".to_owned(), signed));
        assert!(!verify_query_hmac(b"hush", &doubled));
        let mut junk = p.clone();
        junk.push(("hmac".to_owned(), "zz".to_owned()));
        assert!(!verify_query_hmac(b"hush", &junk));
    }

    #[test]
    fn a_value_holding_an_ampersand_cannot_forge_another_pair() {
        let smuggled = pairs(&[("a", "1&b=2")]);
        let honest = pairs(&[("a", "1"), ("b", "2")]);
        assert_ne!(query_message(&smuggled), query_message(&honest));
    }

    #[test]
    fn webhook_hmac_is_base64_over_the_raw_body() {
        let body = br#"{"id":1}"#;
        let mut m = mac(b"secret");
        m.update(body);
        let good = STANDARD.encode(m.finalize().into_bytes());
        assert!(verify_webhook_hmac(b"secret", body, Some(&good)));
        assert!(!verify_webhook_hmac(b"secret", br#"{"id":2}"#, Some(&good)));
        assert!(!verify_webhook_hmac(b"other", body, Some(&good)));
        assert!(!verify_webhook_hmac(b"secret", body, None));
        assert!(!verify_webhook_hmac(b"secret", body, Some("not base64!")));
    }

    fn token(secret: &[u8], claims: &serde_json::Value) -> String {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            claims,
            &jsonwebtoken::EncodingKey::from_secret(secret),
        )
        .unwrap()
    }

    #[test]
    fn session_tokens_are_checked_claim_by_claim() {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let good = serde_json::json!({
            "iss": "https://a-shop.myshopify.com/admin", "dest": "https://a-shop.myshopify.com",
            "aud": "key", "sub": "42", "exp": now + 60, "nbf": now - 1, "iat": now - 1,
        });
        let (shop, claims) = verify_session_token(b"s", "key", &token(b"s", &good)).unwrap();
        assert_eq!(shop, "a-shop.myshopify.com");
        assert_eq!(claims.sub.as_deref(), Some("42"));
        let with = |k: &str, v: serde_json::Value| {
            let mut c = good.clone();
            c[k] = v;
            c
        };
        let refused = [
            (token(b"other", &good), "wrong secret"),
            (token(b"s", &with("aud", "other".into())), "wrong aud"),
            (token(b"s", &with("exp", (now - 60).into())), "expired"),
            (
                token(b"s", &with("nbf", (now + 60).into())),
                "not yet valid",
            ),
            (
                token(b"s", &with("dest", "https://evil.com".into())),
                "dest not a shop",
            ),
            (
                token(
                    b"s",
                    &with("iss", "https://b-shop.myshopify.com/admin".into()),
                ),
                "iss of another shop",
            ),
        ];
        for (t, why) in refused {
            assert!(verify_session_token(b"s", "key", &t).is_err(), "{why}");
        }
        let mut none = good.clone();
        none.as_object_mut().unwrap().remove("nbf");
        assert!(verify_session_token(b"s", "key", &token(b"s", &none)).is_err());
    }

    #[test]
    fn order_numbers_come_from_any_documented_form() {
        assert_eq!(order_number("gid://shopify/OrderIdentity/1001"), Some(1001));
        assert_eq!(order_number("gid://shopify/Order/7"), Some(7));
        assert_eq!(order_number("123"), Some(123));
        assert_eq!(order_number("gid://shopify/Order/"), None);
        assert_eq!(order_number("12a"), None);
        assert_eq!(order_number("99999999999999999999"), None);
        assert_eq!(purchase_event_id(5), "shopify-order:5");
    }
}
