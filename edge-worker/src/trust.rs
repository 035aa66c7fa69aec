//! Who may choose what at the edge: sticky tokens and signed server calls.
//!
//! - Sticky tokens ([`samplit_engine::sticky`]): the edge hands out `<arm>.<mac>` tokens
//!   (response `sticky` map and the `samplit_arms` cookie) and obeys, on input, only
//!   those that verify for this site and visitor ([`verified_sticky`]). A forged,
//!   foreign or malformed value is dropped silently: the visitor is assigned as if it
//!   had not been sent.
//! - Signed calls ([`samplit_engine::server_call`]): a request carrying
//!   `X-Samplit-Timestamp`/`X-Samplit-Signature` is verified against the site's server
//!   secret, which the edge derives from the snapshot secret and the salt the snapshot
//!   publishes ([`check_call`]); nothing is fetched from the control plane. Only a
//!   verified call may override `ip`/`user_agent` or report a value above the site's
//!   revenue cap.
//!
//! Both keys come from `SAMPLIT_SNAPSHOT_SECRET`, derived under their own labels, so
//! neither a sticky token nor a request signature verifies as anything else.

use std::cell::RefCell;

use samplit_engine::server_call::{self, CallError, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use samplit_engine::snapshot::Snapshot;
use samplit_engine::sticky::StickyKey;
use worker::{Env, Request};

use crate::clock::now_ms;
use crate::error::ApiError;
use crate::snapshots;

thread_local! {
    /// The sticky key derived from the secret it was derived from: derived once per
    /// isolate (and again only if the secret changes), not per request.
    static STICKY: RefCell<Option<(String, StickyKey)>> = const { RefCell::new(None) };
}

/// The sticky-token key (503 when the snapshot secret is not configured).
pub fn sticky_key(env: &Env) -> Result<StickyKey, ApiError> {
    let secret = snapshots::secret(env)?;
    Ok(STICKY.with_borrow_mut(|slot| match slot {
        Some((held, key)) if *held == secret => key.clone(),
        _ => {
            let key = StickyKey::derive(secret.as_bytes());
            *slot = Some((secret, key.clone()));
            key
        }
    }))
}

/// The (sticky key, arm) pairs of `candidates` (sticky key, token) whose token verifies
/// for this site and visitor, in order, at most one per sticky key (the first that
/// verifies). Everything else is ignored.
pub fn verified_sticky<'c>(
    key: &StickyKey,
    site_key: &str,
    visitor_id: &str,
    candidates: impl IntoIterator<Item = &'c (String, String)>,
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (sticky_key, token) in candidates {
        if out.iter().any(|(k, _)| k == sticky_key) {
            continue;
        }
        if let Some(arm) = key.verify(site_key, visitor_id, sticky_key, token) {
            out.push((sticky_key.clone(), arm.to_owned()));
        }
    }
    out
}

/// (sticky key, token) for each (sticky key, arm).
pub fn tokens(
    key: &StickyKey,
    site_key: &str,
    visitor_id: &str,
    arms: &[(String, String)],
) -> Vec<(String, String)> {
    arms.iter()
        .map(|(k, arm)| (k.clone(), key.token(site_key, visitor_id, k, arm)))
        .collect()
}

/// The path and query of the request, as a signer signs it.
pub fn path_and_query(req: &Request) -> Result<String, ApiError> {
    let url = req
        .url()
        .map_err(|e| ApiError::bad_request("invalid_url", e.to_string()))?;
    Ok(url[url::Position::BeforePath..url::Position::AfterQuery].to_owned())
}

fn unauthorized(code: &'static str, message: &str) -> ApiError {
    ApiError::new(401, code, message)
}

/// Whether the request carries either signature header (then [`check_call`] answers
/// `Ok(true)` or an error, never `Ok(false)`).
pub fn has_signature_headers(req: &Request) -> bool {
    let has = |name: &str| matches!(req.headers().has(name), Ok(true));
    has(TIMESTAMP_HEADER) || has(SIGNATURE_HEADER)
}

/// Whether the request is a verified signed call for `snapshot`'s site.
///
/// - no signature headers: `Ok(false)` (an anonymous call, e.g. the snippet);
/// - headers present and valid: `Ok(true)`;
/// - the site publishes no salt (or has no snapshot): 401 `server_secret_not_set`;
/// - a bad MAC or malformed headers: 401 `bad_signature`; a genuine signature outside
///   the ±300 s window: 401 `signature_expired`.
pub fn check_call(
    req: &Request,
    env: &Env,
    snapshot: Option<&Snapshot>,
    body: &[u8],
) -> Result<bool, ApiError> {
    let header = |name: &str| req.headers().get(name).ok().flatten();
    let (ts, sig) = match (header(TIMESTAMP_HEADER), header(SIGNATURE_HEADER)) {
        (None, None) => return Ok(false),
        (Some(ts), Some(sig)) => (ts, sig),
        _ => {
            return Err(unauthorized(
                "bad_signature",
                "a signed call needs both X-Samplit-Timestamp and X-Samplit-Signature",
            ));
        }
    };
    let Some(salt) = snapshot.and_then(|s| s.trust.server_secret_salt.as_deref()) else {
        return Err(unauthorized(
            "server_secret_not_set",
            "this site has no server secret yet: rotate it (POST /api/v1/sites/{id}/rotate-secret) and sign with the new one",
        ));
    };
    let site_key = snapshot.map(|s| s.site_key.as_str()).unwrap_or_default();
    let secret = snapshots::secret(env)?;
    let server_secret = server_call::server_secret(secret.as_bytes(), site_key, salt);
    let method = req.method().to_string().to_ascii_uppercase();
    server_call::verify(
        &server_secret,
        &ts,
        &sig,
        now_ms().div_euclid(1000),
        &method,
        &path_and_query(req)?,
        body,
    )
    .map_err(|e| match e {
        CallError::BadSignature => unauthorized(
            "bad_signature",
            "X-Samplit-Signature does not verify for this request and the site's server secret",
        ),
        CallError::Expired => unauthorized(
            "signature_expired",
            "X-Samplit-Timestamp is more than 300 s from the edge's clock",
        ),
    })?;
    Ok(true)
}

/// 401 `signature_required` unless `signed`: for what only a server may do.
pub fn require_signed(signed: bool, what: &str) -> Result<(), ApiError> {
    if signed {
        Ok(())
    } else {
        Err(unauthorized(
            "signature_required",
            &format!("{what} is only accepted in a signed server call (X-Samplit-Signature)"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::cookies::tests::pairs;

    #[test]
    fn only_tokens_minted_for_this_visitor_are_kept_first_valid_wins() {
        let key = StickyKey::derive(b"secret");
        let mine = tokens(&key, "pk", "v1", &pairs(&[("e1", "b"), ("e2", "a")]));
        let theirs = tokens(&key, "pk", "v2", &pairs(&[("e3", "a")]));
        let input: Vec<(String, String)> =
            pairs(&[("e1", "b"), ("e2", "forged.AAAAAAAAAAAAAAAAAAAAAA")])
                .into_iter()
                .chain(mine.clone())
                .chain(theirs)
                .collect();
        assert_eq!(
            verified_sticky(&key, "pk", "v1", &input),
            pairs(&[("e1", "b"), ("e2", "a")])
        );
        assert!(verified_sticky(&key, "pk", "v3", &mine).is_empty());
    }

    #[test]
    fn overrides_need_a_signature() {
        assert!(require_signed(true, "ip").is_ok());
        let e = require_signed(false, "ip").unwrap_err();
        assert_eq!((e.status, e.code), (401, "signature_required"));
    }
}
