//! Login and registration throttling, stored in PostgreSQL (`login_attempts`) so that
//! every replica sees the same counts.
//!
//! Two independent limits apply to `POST /auth/login`, both over a sliding window of
//! [`WINDOW`]: at most [`PER_ACCOUNT`] failures per account (the normalised email, whether
//! or not such a user exists, so the answer never tells which emails are registered) and
//! at most [`PER_ADDRESS`] failures per client address. The check runs *before* the
//! password is verified, so a throttled caller cannot make the server spend argon2 time.
//! A successful login clears the account's failures (not the address's).
//!
//! Registrations are limited to [`REGISTRATIONS_PER_ADDRESS`] per [`REGISTRATION_WINDOW`]
//! per client address (each costs an argon2 hash and creates an organisation).
//!
//! The client address is the TCP peer ([`ConnectInfo`]); `X-Forwarded-For` is read only
//! when the peer is one of `config.trusted_proxies` — a header chosen by the client must
//! never pick its own rate-limit bucket (the original keyed limits on such headers).
//!
//! Trade-offs: counting and recording are two statements, so a burst of concurrent
//! attempts can overshoot a limit by the number in flight; the per-account limit lets
//! anyone slow down logins to a known email for [`WINDOW`] (the usual price of stopping
//! password guessing; the per-address limit bounds how many accounts one address can
//! lock).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use sqlx::PgPool;

use crate::error::ApiError;
use crate::state::AppState;

/// Failures allowed per account within [`WINDOW`].
pub const PER_ACCOUNT: i64 = 5;
/// Failures allowed per client address within [`WINDOW`].
pub const PER_ADDRESS: i64 = 20;
/// The sliding window of both limits.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Registrations allowed per client address within [`REGISTRATION_WINDOW`].
pub const REGISTRATIONS_PER_ADDRESS: i64 = 10;
pub const REGISTRATION_WINDOW: Duration = Duration::from_secs(3600);
/// Attempts older than this are deleted when new failures are recorded.
const RETENTION: Duration = Duration::from_secs(24 * 3600);

/// The client's address as far as this server can tell (see the module docs), or `None`
/// when the server was not started with connect info (then only the per-account limit
/// applies; `serve` always provides it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        Ok(Self(client_ip(
            peer,
            &parts.headers,
            &state.config.trusted_proxies,
        )))
    }
}

/// The client address: the peer, unless the peer is a trusted proxy, in which case the
/// right-most `X-Forwarded-For` entry that is not itself a trusted proxy (entries to the
/// left of it were written by the client and prove nothing).
pub fn client_ip(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &[IpAddr]) -> Option<IpAddr> {
    let peer = peer?;
    if !trusted.contains(&peer) {
        return Some(peer);
    }
    let mut hops: Vec<IpAddr> = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        let Ok(value) = value.to_str() else {
            return Some(peer);
        };
        for hop in value.split(',') {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) => hops.push(ip),
                // A malformed chain cannot be trusted past this point: use the proxy.
                Err(_) => return Some(peer),
            }
        }
    }
    Some(
        hops.into_iter()
            .rev()
            .find(|ip| !trusted.contains(ip))
            .unwrap_or(peer),
    )
}

/// Fails with 429 (and the seconds until a slot frees up) if the account or the address
/// has used up its failures in the window.
#[tracing::instrument(skip(pool, email))]
pub async fn check_login(
    pool: &PgPool,
    email: &str,
    address: Option<IpAddr>,
) -> Result<(), ApiError> {
    let window = window_secs();
    let account: (i64, Option<f64>) = sqlx::query_as(
        "SELECT count(*), EXTRACT(EPOCH FROM min(at) + make_interval(secs => $2) - now())::float8
           FROM login_attempts
          WHERE kind = 'login_failure' AND email = $1 AND at > now() - make_interval(secs => $2)",
    )
    .bind(email)
    .bind(window)
    .fetch_one(pool)
    .await?;
    if account.0 >= PER_ACCOUNT {
        return Err(too_many(account.1));
    }
    if let Some(address) = address {
        let by_address: (i64, Option<f64>) = sqlx::query_as(
            "SELECT count(*), EXTRACT(EPOCH FROM min(at) + make_interval(secs => $2) - now())::float8
               FROM login_attempts
              WHERE kind = 'login_failure' AND address = $1 AND at > now() - make_interval(secs => $2)",
        )
        .bind(address.to_string())
        .bind(window)
        .fetch_one(pool)
        .await?;
        if by_address.0 >= PER_ADDRESS {
            return Err(too_many(by_address.1));
        }
    }
    Ok(())
}

/// Records a failed login (and prunes attempts past retention).
#[tracing::instrument(skip(pool, email))]
pub async fn record_failure(
    pool: &PgPool,
    email: &str,
    address: Option<IpAddr>,
) -> Result<(), ApiError> {
    record(pool, "login_failure", email, address).await
}

async fn record(
    pool: &PgPool,
    kind: &str,
    email: &str,
    address: Option<IpAddr>,
) -> Result<(), ApiError> {
    sqlx::query("INSERT INTO login_attempts (kind, email, address) VALUES ($1, $2, $3)")
        .bind(kind)
        .bind(email)
        .bind(address.map(|a| a.to_string()))
        .execute(pool)
        .await?;
    sqlx::query("DELETE FROM login_attempts WHERE at < now() - make_interval(secs => $1)")
        .bind(RETENTION.as_secs_f64())
        .execute(pool)
        .await?;
    Ok(())
}

/// Fails with 429 if the address has registered [`REGISTRATIONS_PER_ADDRESS`] times in
/// the window; otherwise counts this registration attempt. (Without a known address —
/// no connect info — registrations are not limited.)
#[tracing::instrument(skip(pool, email))]
pub async fn check_and_record_registration(
    pool: &PgPool,
    email: &str,
    address: Option<IpAddr>,
) -> Result<(), ApiError> {
    let Some(address) = address else {
        return Ok(());
    };
    let window = REGISTRATION_WINDOW.as_secs_f64();
    let (count, left): (i64, Option<f64>) = sqlx::query_as(
        "SELECT count(*), EXTRACT(EPOCH FROM min(at) + make_interval(secs => $2) - now())::float8
           FROM login_attempts
          WHERE kind = 'registration' AND address = $1 AND at > now() - make_interval(secs => $2)",
    )
    .bind(address.to_string())
    .bind(window)
    .fetch_one(pool)
    .await?;
    if count >= REGISTRATIONS_PER_ADDRESS {
        return Err(too_many_within(left, REGISTRATION_WINDOW));
    }
    record(pool, "registration", email, Some(address)).await
}

/// Clears the account's failures after a successful login.
#[tracing::instrument(skip(pool, email))]
pub async fn record_success(pool: &PgPool, email: &str) -> Result<(), ApiError> {
    sqlx::query("DELETE FROM login_attempts WHERE kind = 'login_failure' AND email = $1")
        .bind(email)
        .execute(pool)
        .await?;
    Ok(())
}

fn window_secs() -> f64 {
    WINDOW.as_secs_f64()
}

fn too_many(seconds_left: Option<f64>) -> ApiError {
    too_many_within(seconds_left, WINDOW)
}

fn too_many_within(seconds_left: Option<f64>, window: Duration) -> ApiError {
    // At least one second: `Retry-After: 0` would invite an immediate retry.
    let secs = seconds_left.unwrap_or(1.0).ceil().max(1.0);
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let retry_after_secs = secs.min(window.as_secs_f64()) as u64;
    ApiError::TooManyRequests { retry_after_secs }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn xff(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn forwarded_for_is_ignored_from_an_untrusted_peer() {
        let got = client_ip(Some(ip("203.0.113.9")), &xff("198.51.100.1"), &[]);
        assert_eq!(got, Some(ip("203.0.113.9")));
    }

    #[test]
    fn a_trusted_proxy_yields_the_right_most_untrusted_hop() {
        let proxy = ip("10.0.0.1");
        let inner = ip("10.0.0.2");
        // The client wrote "1.1.1.1" itself; the proxies appended the real address.
        let headers = xff("1.1.1.1, 198.51.100.7, 10.0.0.2");
        assert_eq!(
            client_ip(Some(proxy), &headers, &[proxy, inner]),
            Some(ip("198.51.100.7"))
        );
    }

    #[test]
    fn a_trusted_proxy_without_a_usable_header_counts_as_the_client() {
        let proxy = ip("10.0.0.1");
        assert_eq!(
            client_ip(Some(proxy), &HeaderMap::new(), &[proxy]),
            Some(proxy)
        );
        assert_eq!(
            client_ip(Some(proxy), &xff("not-an-ip"), &[proxy]),
            Some(proxy)
        );
        assert_eq!(client_ip(None, &xff("1.2.3.4"), &[proxy]), None);
    }

    #[test]
    fn retry_after_is_between_one_second_and_the_window() {
        let secs = |e: ApiError| match e {
            ApiError::TooManyRequests { retry_after_secs } => retry_after_secs,
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(secs(too_many(Some(0.2))), 1);
        assert_eq!(secs(too_many(Some(-3.0))), 1);
        assert_eq!(secs(too_many(Some(61.5))), 62);
        assert_eq!(secs(too_many(Some(1e9))), WINDOW.as_secs());
    }
}
