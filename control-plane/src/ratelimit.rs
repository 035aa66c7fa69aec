//! Login and registration throttling, stored in PostgreSQL (`login_attempts`) so that
//! every replica sees the same counts.
//!
//! Two independent limits apply to `POST /auth/login`, both over a sliding window of
//! [`WINDOW`]: at most [`PER_ACCOUNT`] failures per account (the normalised email, whether
//! or not such a user exists, so the answer never tells which emails are registered) and
//! at most [`PER_ADDRESS`] failures per client address (IPv6 addresses counted per /64:
//! one subscriber usually holds a whole /64, so counting single addresses would give
//! them 2^64 buckets). Checking and counting are one atomic step ([`reserve_login`]):
//! every attempt is recorded as a failure *before* the password is verified, under a
//! per-account and a per-address transaction lock, so N parallel wrong passwords cannot
//! all pass the check before the first failure lands — at most the limit run argon2, the
//! rest get 429 without costing a hash. A successful login clears the account's failures
//! (its own reservation included; not the address's).
//!
//! Registrations are limited to [`REGISTRATIONS_PER_ADDRESS`] per [`REGISTRATION_WINDOW`]
//! per client address (each costs an argon2 hash and creates an organisation).
//! Forgot-password requests to [`PASSWORD_RESETS_PER_ADDRESS`] per client address (counted
//! whether or not the address has an account), and verification resends to
//! [`RESENDS_PER_USER`] per person, both per hour.
//!
//! The client address is the TCP peer ([`ConnectInfo`]); `X-Forwarded-For` is read only
//! when the peer is one of `config.trusted_proxies` — a header chosen by the client must
//! never pick its own rate-limit bucket (the original keyed limits on such headers).
//!
//! Trade-offs: the per-account limit lets
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

/// The bucket an address is counted in: IPv4 addresses (and IPv4-mapped IPv6) one by
/// one, IPv6 addresses by their /64 (written `2001:db8:1:2::/64`).
pub fn address_bucket(address: IpAddr) -> String {
    match address {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                format!("{}/64", std::net::Ipv6Addr::from(prefix))
            }
        },
    }
}

/// A login attempt counted in advance as a failure: [`login_succeeded`] clears it,
/// [`release`] takes it back when the password was never checked (server busy).
#[derive(Debug, Clone, Copy)]
pub struct Reservation(i64);

/// Atomically checks both limits and, if neither is used up, records this attempt as a
/// failure; fails with 429 (and the seconds until a slot frees up) otherwise.
///
/// One transaction takes a transaction-scoped advisory lock on the account and then on
/// the address bucket (always in that order, so two attempts never wait on each other in
/// a cycle), counts, and inserts. A concurrent attempt for the same account or address
/// waits for the lock and then sees this one's row: the limit holds exactly.
#[tracing::instrument(skip(pool, email))]
pub async fn reserve_login(
    pool: &PgPool,
    email: &str,
    address: Option<IpAddr>,
) -> Result<Reservation, ApiError> {
    let window = window_secs();
    let bucket = address.map(address_bucket);
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('login:account:' || $1, 0))")
        .bind(email)
        .execute(&mut *tx)
        .await?;
    if let Some(bucket) = &bucket {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('login:address:' || $1, 0))")
            .bind(bucket)
            .execute(&mut *tx)
            .await?;
    }
    let account: (i64, Option<f64>) = sqlx::query_as(
        "SELECT count(*), EXTRACT(EPOCH FROM min(at) + make_interval(secs => $2) - now())::float8
           FROM login_attempts
          WHERE kind = 'login_failure' AND email = $1 AND at > now() - make_interval(secs => $2)",
    )
    .bind(email)
    .bind(window)
    .fetch_one(&mut *tx)
    .await?;
    if account.0 >= PER_ACCOUNT {
        return Err(too_many(account.1));
    }
    if let Some(bucket) = &bucket {
        let by_address: (i64, Option<f64>) = sqlx::query_as(
            "SELECT count(*), EXTRACT(EPOCH FROM min(at) + make_interval(secs => $2) - now())::float8
               FROM login_attempts
              WHERE kind = 'login_failure' AND address = $1 AND at > now() - make_interval(secs => $2)",
        )
        .bind(bucket)
        .bind(window)
        .fetch_one(&mut *tx)
        .await?;
        if by_address.0 >= PER_ADDRESS {
            return Err(too_many(by_address.1));
        }
    }
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO login_attempts (kind, email, address) VALUES ('login_failure', $1, $2)
         RETURNING id",
    )
    .bind(email)
    .bind(bucket.as_deref())
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    prune(pool).await?;
    Ok(Reservation(id))
}

/// Takes back a reservation whose password was never checked (the server was busy).
#[tracing::instrument(skip(pool))]
pub async fn release(pool: &PgPool, reservation: Reservation) -> Result<(), ApiError> {
    sqlx::query("DELETE FROM login_attempts WHERE id = $1")
        .bind(reservation.0)
        .execute(pool)
        .await?;
    Ok(())
}

async fn prune(pool: &PgPool) -> Result<(), ApiError> {
    sqlx::query("DELETE FROM login_attempts WHERE at < now() - make_interval(secs => $1)")
        .bind(RETENTION.as_secs_f64())
        .execute(pool)
        .await?;
    Ok(())
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
        .bind(address.map(address_bucket))
        .execute(pool)
        .await?;
    prune(pool).await
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
    check_and_record_per_address(
        pool,
        "registration",
        email,
        address,
        REGISTRATIONS_PER_ADDRESS,
        REGISTRATION_WINDOW,
    )
    .await
}

/// Sign-ups (the public simulator's form) allowed per client address within
/// [`SIGNUP_WINDOW`].
pub const SIGNUPS_PER_ADDRESS: i64 = 5;
pub const SIGNUP_WINDOW: Duration = Duration::from_secs(3600);

/// Fails with 429 if the address has sent [`SIGNUPS_PER_ADDRESS`] sign-ups in the
/// window; otherwise counts this one. (Without a known address, not limited.)
#[tracing::instrument(skip(pool, email))]
pub async fn check_and_record_signup(
    pool: &PgPool,
    email: &str,
    address: Option<IpAddr>,
) -> Result<(), ApiError> {
    check_and_record_per_address(
        pool,
        "signup",
        email,
        address,
        SIGNUPS_PER_ADDRESS,
        SIGNUP_WINDOW,
    )
    .await
}

/// Forgot-password requests allowed per client address within [`PASSWORD_RESET_WINDOW`]
/// (counted whether or not the address has an account, so the limit says nothing).
pub const PASSWORD_RESETS_PER_ADDRESS: i64 = 10;
pub const PASSWORD_RESET_WINDOW: Duration = Duration::from_secs(3600);

/// Fails with 429 if the client address has asked [`PASSWORD_RESETS_PER_ADDRESS`] resets
/// in the window; otherwise counts this one. (Without a known address, not limited here;
/// the per-address-mailed limit in `accounts::mailed` still applies.)
#[tracing::instrument(skip(pool, email))]
pub async fn check_and_record_password_reset(
    pool: &PgPool,
    email: &str,
    address: Option<IpAddr>,
) -> Result<(), ApiError> {
    check_and_record_per_address(
        pool,
        "password_reset",
        email,
        address,
        PASSWORD_RESETS_PER_ADDRESS,
        PASSWORD_RESET_WINDOW,
    )
    .await
}

/// Verification mails a user may ask for again within [`RESEND_WINDOW`].
pub const RESENDS_PER_USER: i64 = 5;
pub const RESEND_WINDOW: Duration = Duration::from_secs(3600);

/// Fails with 429 if the user has asked [`RESENDS_PER_USER`] verification mails in the
/// window; otherwise counts this one (keyed by user id in the `email` column).
#[tracing::instrument(skip(pool))]
pub async fn check_and_record_verification_resend(
    pool: &PgPool,
    user_id: uuid::Uuid,
) -> Result<(), ApiError> {
    let key = user_id.to_string();
    let (count, left): (i64, Option<f64>) = sqlx::query_as(
        "SELECT count(*), EXTRACT(EPOCH FROM min(at) + make_interval(secs => $2) - now())::float8
           FROM login_attempts
          WHERE kind = 'verification_resend' AND email = $1 AND at > now() - make_interval(secs => $2)",
    )
    .bind(&key)
    .bind(RESEND_WINDOW.as_secs_f64())
    .fetch_one(pool)
    .await?;
    if count >= RESENDS_PER_USER {
        return Err(too_many_within(left, RESEND_WINDOW));
    }
    record(pool, "verification_resend", &key, None).await
}

async fn check_and_record_per_address(
    pool: &PgPool,
    kind: &str,
    email: &str,
    address: Option<IpAddr>,
    limit: i64,
    window: Duration,
) -> Result<(), ApiError> {
    let Some(address) = address else {
        return Ok(());
    };
    let (count, left): (i64, Option<f64>) = sqlx::query_as(
        "SELECT count(*), EXTRACT(EPOCH FROM min(at) + make_interval(secs => $3) - now())::float8
           FROM login_attempts
          WHERE kind = $1 AND address = $2 AND at > now() - make_interval(secs => $3)",
    )
    .bind(kind)
    .bind(address_bucket(address))
    .bind(window.as_secs_f64())
    .fetch_one(pool)
    .await?;
    if count >= limit {
        return Err(too_many_within(left, window));
    }
    record(pool, kind, email, Some(address)).await
}

/// Clears the account's failures (this attempt's reservation included) after a
/// successful login.
#[tracing::instrument(skip(pool, email))]
pub async fn login_succeeded(pool: &PgPool, email: &str) -> Result<(), ApiError> {
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
    fn ipv6_addresses_count_per_64_and_ipv4_one_by_one() {
        assert_eq!(
            address_bucket(ip("2001:db8:1:2:aaaa::1")),
            address_bucket(ip("2001:db8:1:2:ffff:ffff:ffff:ffff"))
        );
        assert_eq!(address_bucket(ip("2001:db8:1:2::9")), "2001:db8:1:2::/64");
        assert_ne!(
            address_bucket(ip("2001:db8:1:2::1")),
            address_bucket(ip("2001:db8:1:3::1"))
        );
        assert_eq!(address_bucket(ip("203.0.113.9")), "203.0.113.9");
        assert_eq!(address_bucket(ip("::ffff:203.0.113.9")), "203.0.113.9");
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
