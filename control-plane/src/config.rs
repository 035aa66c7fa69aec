//! Typed configuration, loaded once at start-up from the environment (and an optional
//! `.env`, loaded by `main`). Secrets have no defaults in code: a missing or weak secret
//! stops start-up with a message that names the variable. Secrets are wrapped in
//! [`Secret`], whose `Debug` never prints the value.

use std::net::SocketAddr;
use std::time::Duration;

/// Minimum length of every secret, in bytes (HMAC-SHA256 keys want ≥ 32).
pub const MIN_SECRET_BYTES: usize = 32;

/// A secret value: readable on purpose with [`Secret::expose`], never by `{:?}`.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret, rejecting one shorter than [`MIN_SECRET_BYTES`].
    pub fn new(name: &str, value: String) -> Result<Self, ConfigError> {
        if value.len() < MIN_SECRET_BYTES {
            return Err(ConfigError::WeakSecret {
                name: name.to_owned(),
                min: MIN_SECRET_BYTES,
            });
        }
        Ok(Self(value))
    }

    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name} is not set: {hint}")]
    Missing { name: String, hint: &'static str },
    #[error("{name} is too weak: it must be at least {min} bytes (try `openssl rand -hex 32`)")]
    WeakSecret { name: String, min: usize },
    #[error("{name} is invalid: {reason}")]
    Invalid { name: String, reason: String },
}

#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: String,
    pub listen: SocketAddr,
    /// Signs access tokens (HS256).
    pub jwt_secret: Secret,
    /// Verifies event batches from the edge (`POST /api/v1/ingest`).
    pub ingest_secret: Secret,
    /// Signs snapshots pushed to the edge; optional until the publisher is enabled.
    pub snapshot_secret: Option<Secret>,
    /// Where the publisher pushes snapshots (the Worker's origin); no publishing if unset.
    pub edge_url: Option<String>,
    pub publish_interval: Duration,
    /// Origins allowed by CORS for the admin API (exact matches; never `*`).
    pub cors_origins: Vec<String>,
    /// Peers whose `X-Forwarded-For` is believed for the client address (rate limits).
    pub trusted_proxies: Vec<std::net::IpAddr>,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    /// Apply migrations at `serve` start (default true; `SAMPLIT_MIGRATE=false` to skip).
    pub migrate_on_start: bool,
    /// Quotas, back-pressure and the other abuse limits (`docs/security.md`).
    pub limits: Limits,
    /// `SAMPLIT_DNS_RESOLVER` (`ip:port`, UDP): the DNS server domain proofs ask; default
    /// the system's configuration.
    pub dns_resolver: Option<SocketAddr>,
    /// `SAMPLIT_DEV_ALLOW_LOCAL_DOMAINS` (default false): development names
    /// (`localhost`, `.test`, `.example`, …) become verifiable and the file proof may
    /// fetch from loopback. Never on in production.
    pub dev_allow_local_domains: bool,
    /// `SAMPLIT_DEV_VERIFY_PORT`: with the development switch only, the file proof uses
    /// plain http on this port (a local origin).
    pub dev_verify_port: Option<u16>,
    /// `SAMPLIT_DEV_INSECURE_COOKIES` (default false): the console's session cookie is sent
    /// without `Secure` (and without the `__Host-` prefix that requires it), so a
    /// plain-http development server can sign in. Never on in production.
    pub dev_insecure_cookies: bool,
    /// The Shopify app (`integrations/shopify/README.md`); off unless
    /// `SAMPLIT_SHOPIFY_API_KEY` is set.
    pub shopify: Option<ShopifyConfig>,
    /// `SAMPLIT_PUBLIC_URL`: this control plane's public origin (`https://…`, no trailing
    /// slash), the base of the links in mails and of the Shopify app's redirects.
    /// Required by SMTP and by the Shopify app.
    pub public_url: Option<String>,
    /// Outgoing mail (`crate::mail`).
    pub mail: MailConfig,
    /// `SAMPLIT_WEBHOOK_SECRET`: the key the organisations' outgoing-webhook signing
    /// secrets are derived from (`crate::alerts`); webhooks are off without it.
    pub webhook_secret: Option<Secret>,
    /// Alerts and outgoing webhooks (`crate::alerts`).
    pub alerts: AlertsConfig,
    /// `SAMPLIT_RAW_EVENTS_RETENTION_DAYS` (default 90, at least
    /// [`MIN_RAW_EVENTS_RETENTION_DAYS`]): raw events' day partitions older than this are
    /// dropped by the ingest housekeeping (`docs/segments.md`).
    pub raw_events_retention_days: u32,
}

/// The shortest raw-event retention: longer than the 14-day replay window, so every item
/// ingestion still accepts has its day's partition.
pub const MIN_RAW_EVENTS_RETENTION_DAYS: u32 = 15;

/// When alerts are evaluated and how webhook deliveries are retried.
#[derive(Debug, Clone)]
pub struct AlertsConfig {
    /// How often running experiments are checked for a state change
    /// (`SAMPLIT_ALERT_INTERVAL`, seconds, default 60).
    pub interval: Duration,
    /// Consecutive failed publications of a site before "publishing keeps failing"
    /// (`SAMPLIT_ALERT_PUBLISH_FAILURES`, default 3).
    pub publish_failures: i64,
    /// How often the webhook worker looks for due deliveries (`SAMPLIT_WEBHOOK_POLL_MS`,
    /// default 2000).
    pub webhook_poll: Duration,
    /// First retry delay of a failed delivery, doubled per failure up to an hour
    /// (`SAMPLIT_WEBHOOK_RETRY_BASE_MS`, default 30 000).
    pub webhook_retry_base: Duration,
    /// A delivery is given up this long after the event, logged (`SAMPLIT_WEBHOOK_GIVE_UP`,
    /// seconds, default 1 day).
    pub webhook_give_up: Duration,
    /// One delivery attempt's time limit (`SAMPLIT_WEBHOOK_TIMEOUT_MS`, default 10 000).
    pub webhook_timeout: Duration,
}

/// Outgoing mail: where it goes, from whom, and how the outbox worker retries.
#[derive(Debug, Clone)]
pub struct MailConfig {
    /// `SAMPLIT_SMTP_URL`; unset, mail is written to the log (links redacted).
    pub smtp: Option<SmtpUrl>,
    /// `SAMPLIT_MAIL_FROM` (`Name <address>`), required with SMTP.
    pub from: Option<String>,
    /// How often the outbox worker looks for due mail (`SAMPLIT_MAIL_POLL_MS`, default
    /// 2000).
    pub poll: Duration,
    /// The first retry's delay after a failed send, doubled on each further failure up
    /// to an hour (`SAMPLIT_MAIL_RETRY_BASE_MS`, default 30 000).
    pub retry_base: Duration,
    /// How long a message is retried before it is given up, logged at error level
    /// (`SAMPLIT_MAIL_GIVE_UP`, seconds, default 3 days).
    pub give_up: Duration,
}

/// An SMTP URL as lettre reads it (`smtps://user:pass@host:465`,
/// `smtp://host:587?tls=required`). TLS by default: a plain `smtp://` URL to anything
/// but a loopback address gets `tls=required` (STARTTLS); `tls=opportunistic` is refused
/// there (a downgrade). It may hold a password: `Debug` shows only scheme and host.
#[derive(Clone)]
pub struct SmtpUrl(String);

impl SmtpUrl {
    /// Validates `raw` and applies the TLS default.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut url = url::Url::parse(raw.trim()).map_err(|e| format!("not a URL: {e}"))?;
        // `smtp` is not a special scheme for the URL standard: an IP address comes as an
        // opaque host string.
        let loopback = match url
            .host_str()
            .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
        {
            None | Some("") => return Err("the URL has no host".to_owned()),
            Some(h) if h.eq_ignore_ascii_case("localhost") => true,
            Some(h) => h
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback()),
        };
        let tls = url
            .query_pairs()
            .find(|(k, _)| k == "tls")
            .map(|(_, v)| v.into_owned());
        match (url.scheme(), tls.as_deref()) {
            ("smtps", _) | ("smtp", Some("required")) => {}
            ("smtp", None) if loopback => {}
            ("smtp", None) => {
                url.query_pairs_mut().append_pair("tls", "required");
            }
            ("smtp", Some(other)) if loopback => {
                if other != "opportunistic" {
                    return Err(format!("unknown tls={other:?}: use required"));
                }
            }
            ("smtp", Some(_)) => {
                return Err(
                    "only tls=required is accepted for a remote server (STARTTLS that cannot be downgraded)"
                        .to_owned(),
                );
            }
            (other, _) => return Err(format!("scheme {other:?}: use smtps:// or smtp://")),
        }
        Ok(Self(url.into()))
    }

    /// The URL, for the transport only (it may hold credentials).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SmtpUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match url::Url::parse(&self.0) {
            Ok(u) => write!(
                f,
                "SmtpUrl({}://{}:{})",
                u.scheme(),
                u.host_str().unwrap_or(""),
                u.port()
                    .map_or_else(|| "default".to_owned(), |p| p.to_string())
            ),
            Err(_) => f.write_str("SmtpUrl(***)"),
        }
    }
}

/// The Shopify app's credentials and settings.
#[derive(Debug, Clone)]
pub struct ShopifyConfig {
    /// The app's client id (`SAMPLIT_SHOPIFY_API_KEY`): session tokens' `aud`.
    pub api_key: String,
    /// The app's client secret (`SAMPLIT_SHOPIFY_API_SECRET`): signs webhooks, `hmac`
    /// query parameters and session tokens; sent only to validated shop hosts.
    pub api_secret: Secret,
    /// Encrypt access tokens at rest (`SAMPLIT_SHOPIFY_TOKEN_KEYS`, `id:base64,...`).
    pub token_keys: crate::shopify::tokens::TokenKeys,
    /// This control plane's public origin (`SAMPLIT_PUBLIC_URL`): the OAuth
    /// `redirect_uri` is `<it>/shopify/auth/callback`.
    pub public_url: String,
    /// Access scopes requested (`SAMPLIT_SHOPIFY_SCOPES`, default the least the app
    /// needs: `read_orders,write_pixels,read_customer_events`).
    pub scopes: String,
    /// `SAMPLIT_DEV_SHOPIFY_ADMIN_ORIGIN` (development switch only): OAuth and Admin API
    /// calls go to this origin with `Host: <shop>` instead of `https://<shop>` (the
    /// test suite's Shopify stand-in).
    pub dev_admin_origin: Option<String>,
}

/// Value of the `aud` claim of access tokens: they are for this API and nothing else.
pub const JWT_AUDIENCE: &str = "samplit-api";

/// Per-organisation quotas and back-pressure limits, each with a default and a variable
/// (documented in `.env.example` and `docs/security.md`, "Accounts, keys, quotas and
/// back-pressure").
#[derive(Debug, Clone)]
pub struct Limits {
    /// `iss` of access tokens (`SAMPLIT_JWT_ISSUER`, default `samplit`): not a secret, but
    /// two deployments sharing a JWT secret by mistake still refuse each other's tokens.
    pub jwt_issuer: String,
    /// When set, `/metrics` requires `Authorization: Bearer <token>`
    /// (`SAMPLIT_METRICS_TOKEN`); unset, it is for an internal network only.
    pub metrics_token: Option<Secret>,
    /// Argon2 hashes run at once (`SAMPLIT_ARGON2_CONCURRENCY`, default: the cores).
    pub argon2_concurrency: usize,
    /// How long a login or registration waits for an argon2 slot before 503
    /// (`SAMPLIT_ARGON2_WAIT_MS`, default 5000).
    pub argon2_wait: Duration,
    /// Analyses computed from raw events (funnel results) run at once in this process
    /// (`SAMPLIT_ANALYSIS_CONCURRENCY`, default: the cores); see `analysis_gate`.
    pub analysis_concurrency: usize,
    /// How long such an analysis waits for a slot before 503 (`SAMPLIT_ANALYSIS_WAIT_MS`,
    /// default 5000).
    pub analysis_wait: Duration,
    /// Of those, at once per organisation (`SAMPLIT_ANALYSIS_PER_ORG`, default 1); more
    /// is answered 429.
    pub analysis_per_org: usize,
    /// How long such an analysis may run in the database, from its start, before
    /// PostgreSQL stops it (the time left is each statement's `statement_timeout`;
    /// `SAMPLIT_ANALYSIS_TIMEOUT_MS`, default 20000, below the 30 s request timeout so
    /// the database stops before the request does).
    pub analysis_timeout: Duration,
    /// The same budget for a funnel computed in the background after its request ran
    /// out of `analysis_timeout` (`SAMPLIT_ANALYSIS_BACKGROUND_TIMEOUT_MS`, default
    /// 600000: ten minutes; no request waits for it).
    pub analysis_background_timeout: Duration,
    /// Funnels of one organisation waiting for or in a background computation at once
    /// (`SAMPLIT_ANALYSIS_BACKGROUND_PER_ORG`, default 2); past it, a further one is
    /// answered 429, so one organisation cannot fill the worker's queue for everyone.
    pub analysis_background_per_org: i64,
    /// Sites per organisation (`SAMPLIT_QUOTA_SITES`, default 50).
    pub max_sites: i64,
    /// Running experiments per organisation (`SAMPLIT_QUOTA_RUNNING_EXPERIMENTS`,
    /// default 100).
    pub max_running_experiments: i64,
    /// Live API keys per organisation (`SAMPLIT_QUOTA_API_KEYS`, default 50).
    pub max_api_keys: i64,
    /// A site's built snapshot, in bytes (`SAMPLIT_QUOTA_SNAPSHOT_BYTES`, default 1 MiB:
    /// a quarter of the edge's 4 MiB body cap, `SNAPSHOT_BODY_LIMIT` in
    /// `edge-worker/src/body.rs`, which it may never exceed).
    pub max_snapshot_bytes: usize,
    /// Raw events (exposures and conversions) kept per site and UTC day
    /// (`SAMPLIT_RAW_EVENTS_PER_SITE_DAY`, default 5 000 000); past it the aggregates
    /// still count every event (docs/ingestion.md, "Raw-event quota").
    pub raw_events_per_site_day: i64,
    /// Longest wait between retries of a failing publication
    /// (`SAMPLIT_PUBLISH_BACKOFF_MAX`, seconds, default 600).
    pub publish_backoff_max: Duration,
}

/// The edge refuses snapshot bodies above this (`edge-worker/src/body.rs`,
/// `SNAPSHOT_BODY_LIMIT`); the snapshot quota must stay below it.
pub const EDGE_SNAPSHOT_BODY_LIMIT: usize = 4 * 1024 * 1024;

/// Reads a variable through `get`, so tests can pass a map instead of the process env.
pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
    let required = |name: &str, hint: &'static str| {
        get(name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ConfigError::Missing {
                name: name.to_owned(),
                hint,
            })
    };
    let secret = |name: &str| -> Result<Secret, ConfigError> {
        Secret::new(
            name,
            required(name, "generate one with `openssl rand -hex 32`")?,
        )
    };
    let optional_secret = |name: &str| -> Result<Option<Secret>, ConfigError> {
        match get(name).filter(|v| !v.is_empty()) {
            Some(v) => Secret::new(name, v).map(Some),
            None => Ok(None),
        }
    };
    let parse_secs = |name: &str, default: u64| -> Result<Duration, ConfigError> {
        match get(name) {
            None => Ok(Duration::from_secs(default)),
            Some(v) => v
                .parse::<u64>()
                .ok()
                .filter(|s| *s > 0)
                .map(Duration::from_secs)
                .ok_or_else(|| ConfigError::Invalid {
                    name: name.to_owned(),
                    reason: format!("expected a positive number of seconds, got {v:?}"),
                }),
        }
    };
    let list = |name: &str| -> Vec<String> {
        get(name)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };

    let listen_raw = get("SAMPLIT_LISTEN").unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    let listen = listen_raw.parse().map_err(|_| ConfigError::Invalid {
        name: "SAMPLIT_LISTEN".to_owned(),
        reason: format!("expected host:port, got {listen_raw:?}"),
    })?;
    let cors_origins = list("SAMPLIT_CORS_ORIGINS");
    if cors_origins.iter().any(|o| o == "*") {
        return Err(ConfigError::Invalid {
            name: "SAMPLIT_CORS_ORIGINS".to_owned(),
            reason: "`*` is not allowed (the API uses credentials); list exact origins".to_owned(),
        });
    }
    let trusted_proxies = list("SAMPLIT_TRUSTED_PROXIES")
        .iter()
        .map(|s| {
            s.parse().map_err(|_| ConfigError::Invalid {
                name: "SAMPLIT_TRUSTED_PROXIES".to_owned(),
                reason: format!("{s:?} is not an IP address"),
            })
        })
        .collect::<Result<_, _>>()?;
    let migrate_on_start = match get("SAMPLIT_MIGRATE").as_deref() {
        None | Some("true") | Some("1") => true,
        Some("false") | Some("0") => false,
        Some(other) => {
            return Err(ConfigError::Invalid {
                name: "SAMPLIT_MIGRATE".to_owned(),
                reason: format!("expected true or false, got {other:?}"),
            });
        }
    };

    let parse_count = |name: &str, default: u64| -> Result<u64, ConfigError> {
        // Empty counts as unset (`.env.example` lists some variables without a value).
        match get(name).filter(|v| !v.trim().is_empty()) {
            None => Ok(default),
            Some(v) => {
                v.parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| ConfigError::Invalid {
                        name: name.to_owned(),
                        reason: format!("expected a positive whole number, got {v:?}"),
                    })
            }
        }
    };
    let to_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let to_usize = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    let cores =
        std::thread::available_parallelism().map_or(2, |n| u64::try_from(n.get()).unwrap_or(2));
    let max_snapshot_bytes = to_usize(parse_count("SAMPLIT_QUOTA_SNAPSHOT_BYTES", 1024 * 1024)?);
    if max_snapshot_bytes >= EDGE_SNAPSHOT_BODY_LIMIT {
        return Err(ConfigError::Invalid {
            name: "SAMPLIT_QUOTA_SNAPSHOT_BYTES".to_owned(),
            reason: format!(
                "must stay below the edge's snapshot body cap of {EDGE_SNAPSHOT_BODY_LIMIT} bytes"
            ),
        });
    }
    let limits = Limits {
        jwt_issuer: get("SAMPLIT_JWT_ISSUER")
            .filter(|v| !v.trim().is_empty())
            .unwrap_or_else(|| "samplit".to_owned()),
        metrics_token: optional_secret("SAMPLIT_METRICS_TOKEN")?,
        argon2_concurrency: to_usize(parse_count("SAMPLIT_ARGON2_CONCURRENCY", cores)?),
        argon2_wait: Duration::from_millis(parse_count("SAMPLIT_ARGON2_WAIT_MS", 5000)?),
        analysis_concurrency: to_usize(parse_count("SAMPLIT_ANALYSIS_CONCURRENCY", cores)?),
        analysis_wait: Duration::from_millis(parse_count("SAMPLIT_ANALYSIS_WAIT_MS", 5000)?),
        analysis_per_org: to_usize(parse_count("SAMPLIT_ANALYSIS_PER_ORG", 1)?),
        analysis_timeout: analysis_timeout(parse_count("SAMPLIT_ANALYSIS_TIMEOUT_MS", 20_000)?)?,
        analysis_background_timeout: Duration::from_millis(parse_count(
            "SAMPLIT_ANALYSIS_BACKGROUND_TIMEOUT_MS",
            600_000,
        )?),
        analysis_background_per_org: to_i64(parse_count("SAMPLIT_ANALYSIS_BACKGROUND_PER_ORG", 2)?),
        max_sites: to_i64(parse_count("SAMPLIT_QUOTA_SITES", 50)?),
        max_running_experiments: to_i64(parse_count("SAMPLIT_QUOTA_RUNNING_EXPERIMENTS", 100)?),
        max_api_keys: to_i64(parse_count("SAMPLIT_QUOTA_API_KEYS", 50)?),
        max_snapshot_bytes,
        raw_events_per_site_day: to_i64(parse_count("SAMPLIT_RAW_EVENTS_PER_SITE_DAY", 5_000_000)?),
        publish_backoff_max: parse_secs("SAMPLIT_PUBLISH_BACKOFF_MAX", 600)?,
    };
    let switch = |name: &str| match get(name).as_deref() {
        None | Some("") | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") => Ok(true),
        Some(other) => Err(ConfigError::Invalid {
            name: name.to_owned(),
            reason: format!("expected true or false, got {other:?}"),
        }),
    };
    let dev_allow_local_domains = switch("SAMPLIT_DEV_ALLOW_LOCAL_DOMAINS")?;
    let dev_insecure_cookies = switch("SAMPLIT_DEV_INSECURE_COOKIES")?;
    let dns_resolver = match get("SAMPLIT_DNS_RESOLVER").filter(|v| !v.is_empty()) {
        None => None,
        Some(v) => Some(v.parse().map_err(|_| ConfigError::Invalid {
            name: "SAMPLIT_DNS_RESOLVER".to_owned(),
            reason: format!("expected ip:port, got {v:?}"),
        })?),
    };
    let dev_verify_port = match get("SAMPLIT_DEV_VERIFY_PORT").filter(|v| !v.is_empty()) {
        None => None,
        Some(v) => Some(v.parse().map_err(|_| ConfigError::Invalid {
            name: "SAMPLIT_DEV_VERIFY_PORT".to_owned(),
            reason: format!("expected a port number, got {v:?}"),
        })?),
    };

    let public_url = match get("SAMPLIT_PUBLIC_URL").filter(|v| !v.trim().is_empty()) {
        None => None,
        Some(raw) => {
            let public_url = raw.trim().trim_end_matches('/').to_owned();
            let secure = public_url.starts_with("https://");
            if !(secure || dev_allow_local_domains && public_url.starts_with("http://")) {
                return Err(ConfigError::Invalid {
                    name: "SAMPLIT_PUBLIC_URL".to_owned(),
                    reason: "must be an https:// origin".to_owned(),
                });
            }
            Some(public_url)
        }
    };
    let smtp = match get("SAMPLIT_SMTP_URL").filter(|v| !v.trim().is_empty()) {
        None => None,
        Some(raw) => Some(SmtpUrl::parse(&raw).map_err(|reason| ConfigError::Invalid {
            name: "SAMPLIT_SMTP_URL".to_owned(),
            reason,
        })?),
    };
    let mail_from = get("SAMPLIT_MAIL_FROM").filter(|v| !v.trim().is_empty());
    if smtp.is_some() {
        let from = mail_from.as_deref().ok_or_else(|| ConfigError::Missing {
            name: "SAMPLIT_MAIL_FROM".to_owned(),
            hint: "the sender of mails, e.g. Samplit <noreply@example.com>",
        })?;
        from.parse::<lettre::message::Mailbox>()
            .map_err(|e| ConfigError::Invalid {
                name: "SAMPLIT_MAIL_FROM".to_owned(),
                reason: format!("not a mailbox ({e}): expected Name <address>"),
            })?;
        if public_url.is_none() {
            return Err(ConfigError::Missing {
                name: "SAMPLIT_PUBLIC_URL".to_owned(),
                hint: "mails link to the console there, e.g. https://app.samplit.dev",
            });
        }
    }
    let mail = MailConfig {
        smtp,
        from: mail_from,
        poll: Duration::from_millis(parse_count("SAMPLIT_MAIL_POLL_MS", 2000)?),
        retry_base: Duration::from_millis(parse_count("SAMPLIT_MAIL_RETRY_BASE_MS", 30_000)?),
        give_up: parse_secs("SAMPLIT_MAIL_GIVE_UP", 3 * 24 * 3600)?,
    };

    let shopify = match get("SAMPLIT_SHOPIFY_API_KEY").filter(|v| !v.trim().is_empty()) {
        None => None,
        Some(api_key) => {
            let token_keys = crate::shopify::tokens::TokenKeys::parse(&required(
                "SAMPLIT_SHOPIFY_TOKEN_KEYS",
                "id:base64 keys of 32 bytes, e.g. k1:$(openssl rand -base64 32)",
            )?)
            .map_err(|reason| ConfigError::Invalid {
                name: "SAMPLIT_SHOPIFY_TOKEN_KEYS".to_owned(),
                reason,
            })?;
            let public_url = public_url.clone().ok_or_else(|| ConfigError::Missing {
                name: "SAMPLIT_PUBLIC_URL".to_owned(),
                hint: "this control plane's public origin, e.g. https://app.samplit.dev",
            })?;
            let dev_admin_origin =
                get("SAMPLIT_DEV_SHOPIFY_ADMIN_ORIGIN").filter(|v| !v.is_empty());
            if dev_admin_origin.is_some() && !dev_allow_local_domains {
                return Err(ConfigError::Invalid {
                    name: "SAMPLIT_DEV_SHOPIFY_ADMIN_ORIGIN".to_owned(),
                    reason:
                        "is for development only: it needs SAMPLIT_DEV_ALLOW_LOCAL_DOMAINS=true"
                            .to_owned(),
                });
            }
            Some(ShopifyConfig {
                api_key: api_key.trim().to_owned(),
                api_secret: secret("SAMPLIT_SHOPIFY_API_SECRET")?,
                token_keys,
                public_url,
                scopes: get("SAMPLIT_SHOPIFY_SCOPES")
                    .filter(|v| !v.trim().is_empty())
                    .unwrap_or_else(|| "read_orders,write_pixels,read_customer_events".to_owned()),
                dev_admin_origin: dev_admin_origin.map(|o| o.trim_end_matches('/').to_owned()),
            })
        }
    };

    let raw_events_retention_days = u32::try_from(parse_count(
        "SAMPLIT_RAW_EVENTS_RETENTION_DAYS",
        90,
    )?)
    .ok()
    .filter(|d| *d >= MIN_RAW_EVENTS_RETENTION_DAYS)
    .ok_or_else(|| ConfigError::Invalid {
        name: "SAMPLIT_RAW_EVENTS_RETENTION_DAYS".to_owned(),
        reason: format!(
            "must be at least {MIN_RAW_EVENTS_RETENTION_DAYS} days (the replay window is 14)"
        ),
    })?;
    Ok(Config {
        raw_events_retention_days,
        shopify,
        public_url,
        mail,
        webhook_secret: optional_secret("SAMPLIT_WEBHOOK_SECRET")?,
        alerts: AlertsConfig {
            interval: parse_secs("SAMPLIT_ALERT_INTERVAL", 60)?,
            publish_failures: to_i64(parse_count("SAMPLIT_ALERT_PUBLISH_FAILURES", 3)?),
            webhook_poll: Duration::from_millis(parse_count("SAMPLIT_WEBHOOK_POLL_MS", 2000)?),
            webhook_retry_base: Duration::from_millis(parse_count(
                "SAMPLIT_WEBHOOK_RETRY_BASE_MS",
                30_000,
            )?),
            webhook_give_up: parse_secs("SAMPLIT_WEBHOOK_GIVE_UP", 24 * 3600)?,
            webhook_timeout: Duration::from_millis(parse_count(
                "SAMPLIT_WEBHOOK_TIMEOUT_MS",
                10_000,
            )?),
        },
        dns_resolver,
        dev_allow_local_domains,
        dev_verify_port,
        dev_insecure_cookies,
        database_url: required(
            "DATABASE_URL",
            "e.g. postgres://postgres@127.0.0.1:5432/samplit",
        )?,
        listen,
        jwt_secret: secret("SAMPLIT_JWT_SECRET")?,
        ingest_secret: secret("SAMPLIT_INGEST_SECRET")?,
        snapshot_secret: optional_secret("SAMPLIT_SNAPSHOT_SECRET")?,
        edge_url: get("SAMPLIT_EDGE_URL").filter(|v| !v.is_empty()),
        publish_interval: parse_secs("SAMPLIT_PUBLISH_INTERVAL", 10)?,
        cors_origins,
        trusted_proxies,
        access_token_ttl: parse_secs("SAMPLIT_ACCESS_TOKEN_TTL", 900)?,
        refresh_token_ttl: parse_secs("SAMPLIT_REFRESH_TOKEN_TTL", 30 * 24 * 3600)?,
        migrate_on_start,
        limits,
    })
}

/// `SAMPLIT_ANALYSIS_TIMEOUT_MS`: at least 1 ms (checked by the caller) and below the
/// request timeout. At or past it, the client would get the request's timeout while
/// PostgreSQL went on computing for a request whose analysis slot was already free.
fn analysis_timeout(ms: u64) -> Result<Duration, ConfigError> {
    let limit = crate::http::REQUEST_TIMEOUT;
    let timeout = Duration::from_millis(ms);
    if timeout >= limit {
        return Err(ConfigError::Invalid {
            name: "SAMPLIT_ANALYSIS_TIMEOUT_MS".to_owned(),
            reason: format!(
                "must be below the request timeout ({} ms), got {ms}",
                limit.as_millis()
            ),
        });
    }
    Ok(timeout)
}

/// The configuration from the process environment.
pub fn from_env() -> Result<Config, ConfigError> {
    from_lookup(|name| std::env::var(name).ok())
}

#[cfg(test)]
mod tests {
    #[test]
    fn smtp_urls_use_tls_unless_the_server_is_on_loopback() {
        let ok = |raw: &str| SmtpUrl::parse(raw).map(|u| u.expose().to_owned());
        assert_eq!(
            ok("smtp://mail.example.com:587").unwrap(),
            "smtp://mail.example.com:587?tls=required",
            "TLS by default"
        );
        assert_eq!(
            ok("smtps://u:p@mail.example.com").unwrap(),
            "smtps://u:p@mail.example.com"
        );
        assert_eq!(
            ok("smtp://mail.example.com?tls=required").unwrap(),
            "smtp://mail.example.com?tls=required"
        );
        assert_eq!(
            ok("smtp://127.0.0.1:2525").unwrap(),
            "smtp://127.0.0.1:2525"
        );
        assert_eq!(ok("smtp://[::1]:2525").unwrap(), "smtp://[::1]:2525");
        assert!(
            ok("smtp://mail.example.com?tls=opportunistic").is_err(),
            "downgradable"
        );
        assert!(ok("http://mail.example.com").is_err());
        assert!(ok("smtp://").is_err());
        let debug = format!(
            "{:?}",
            SmtpUrl::parse("smtps://user:hunter2@mail.example.com").unwrap()
        );
        assert!(
            !debug.contains("hunter2") && debug.contains("mail.example.com"),
            "{debug}"
        );
    }

    use super::*;
    use std::collections::HashMap;

    fn base() -> HashMap<&'static str, String> {
        HashMap::from([
            ("DATABASE_URL", "postgres://x".to_owned()),
            ("SAMPLIT_JWT_SECRET", "j".repeat(32)),
            ("SAMPLIT_INGEST_SECRET", "i".repeat(32)),
        ])
    }

    fn load(vars: &HashMap<&'static str, String>) -> Result<Config, ConfigError> {
        from_lookup(|k| vars.get(k).cloned())
    }

    #[test]
    fn defaults_apply_when_only_the_required_variables_are_set() {
        let config = load(&base()).unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.publish_interval, Duration::from_secs(10));
        assert!(config.migrate_on_start);
    }

    #[test]
    fn missing_or_weak_secrets_stop_start_up_and_name_the_variable() {
        let cases: [(&str, Option<&str>, &str); 4] = [
            ("SAMPLIT_JWT_SECRET", None, "SAMPLIT_JWT_SECRET is not set"),
            (
                "SAMPLIT_JWT_SECRET",
                Some("short"),
                "SAMPLIT_JWT_SECRET is too weak",
            ),
            (
                "SAMPLIT_INGEST_SECRET",
                None,
                "SAMPLIT_INGEST_SECRET is not set",
            ),
            (
                "SAMPLIT_SNAPSHOT_SECRET",
                Some("short"),
                "SAMPLIT_SNAPSHOT_SECRET is too weak",
            ),
        ];
        for (name, value, expected) in cases {
            let mut vars = base();
            match value {
                Some(v) => vars.insert(name, v.to_owned()),
                None => vars.remove(name),
            };
            let err = load(&vars).unwrap_err().to_string();
            assert!(err.contains(expected), "{name}={value:?}: got {err}");
        }
    }

    #[test]
    fn a_wildcard_cors_origin_is_refused() {
        let mut vars = base();
        vars.insert("SAMPLIT_CORS_ORIGINS", "https://a.example, *".to_owned());
        assert!(
            load(&vars)
                .unwrap_err()
                .to_string()
                .contains("`*` is not allowed")
        );
    }

    #[test]
    fn limits_have_defaults_and_the_snapshot_quota_stays_below_the_edge_cap() {
        let limits = load(&base()).unwrap().limits;
        assert_eq!(limits.jwt_issuer, "samplit");
        assert!(limits.metrics_token.is_none());
        assert!(limits.argon2_concurrency >= 1);
        assert_eq!(limits.max_snapshot_bytes, 1024 * 1024);
        assert_eq!(limits.publish_backoff_max, Duration::from_secs(600));
        let mut vars = base();
        vars.insert(
            "SAMPLIT_QUOTA_SNAPSHOT_BYTES",
            (4 * 1024 * 1024).to_string(),
        );
        let err = load(&vars).unwrap_err().to_string();
        assert!(err.contains("SAMPLIT_QUOTA_SNAPSHOT_BYTES"), "{err}");
        vars.insert("SAMPLIT_QUOTA_SNAPSHOT_BYTES", String::new());
        assert_eq!(load(&vars).unwrap().limits.max_snapshot_bytes, 1024 * 1024);
        vars.insert("SAMPLIT_QUOTA_SITES", "0".to_owned());
        assert!(
            load(&vars)
                .unwrap_err()
                .to_string()
                .contains("SAMPLIT_QUOTA_SITES")
        );
    }

    #[test]
    fn the_raw_event_quota_defaults_to_five_million_and_must_be_a_positive_integer() {
        assert_eq!(
            load(&base()).unwrap().limits.raw_events_per_site_day,
            5_000_000
        );
        let mut vars = base();
        vars.insert("SAMPLIT_RAW_EVENTS_PER_SITE_DAY", "10".to_owned());
        assert_eq!(load(&vars).unwrap().limits.raw_events_per_site_day, 10);
        vars.insert("SAMPLIT_RAW_EVENTS_PER_SITE_DAY", String::new());
        assert_eq!(
            load(&vars).unwrap().limits.raw_events_per_site_day,
            5_000_000,
            "empty is unset"
        );
        for bad in ["0", "-1", "1.5", "5e6", "lots"] {
            vars.insert("SAMPLIT_RAW_EVENTS_PER_SITE_DAY", bad.to_owned());
            let err = load(&vars).unwrap_err().to_string();
            assert!(
                err.contains("SAMPLIT_RAW_EVENTS_PER_SITE_DAY") && err.contains("positive"),
                "{bad:?}: {err}"
            );
        }
    }

    #[test]
    fn the_background_analysis_budget_defaults_to_ten_minutes() {
        let name = "SAMPLIT_ANALYSIS_BACKGROUND_TIMEOUT_MS";
        assert_eq!(
            load(&base()).unwrap().limits.analysis_background_timeout,
            Duration::from_secs(600)
        );
        let mut vars = base();
        vars.insert(name, "3600000".to_owned());
        assert_eq!(
            load(&vars).unwrap().limits.analysis_background_timeout,
            Duration::from_secs(3600)
        );
        assert_eq!(load(&base()).unwrap().limits.analysis_background_per_org, 2);
        for bad in ["0", "10m"] {
            vars.insert(name, bad.to_owned());
            let err = load(&vars).unwrap_err().to_string();
            assert!(
                err.contains(name) && err.contains("positive"),
                "{bad:?}: {err}"
            );
        }
    }

    #[test]
    fn the_analysis_timeout_defaults_to_20_s_and_stays_below_the_request_timeout() {
        let name = "SAMPLIT_ANALYSIS_TIMEOUT_MS";
        assert_eq!(
            load(&base()).unwrap().limits.analysis_timeout,
            Duration::from_secs(20)
        );
        let mut vars = base();
        vars.insert(name, "29999".to_owned());
        assert_eq!(
            load(&vars).unwrap().limits.analysis_timeout,
            Duration::from_millis(29_999)
        );
        for (bad, says) in [
            ("30000", "below the request timeout (30000 ms)"),
            ("600000", "below the request timeout"),
            ("0", "positive"),
            ("2s", "positive"),
        ] {
            vars.insert(name, bad.to_owned());
            let err = load(&vars).unwrap_err().to_string();
            assert!(err.contains(name) && err.contains(says), "{bad:?}: {err}");
        }
    }

    #[test]
    fn the_edge_snapshot_cap_mirrored_here_is_the_edges() {
        let body_rs = include_str!("../../edge-worker/src/body.rs");
        assert!(
            body_rs.contains("pub const SNAPSHOT_BODY_LIMIT: usize = 4 * 1024 * 1024;"),
            "edge-worker/src/body.rs changed its cap: update EDGE_SNAPSHOT_BODY_LIMIT"
        );
        assert_eq!(EDGE_SNAPSHOT_BODY_LIMIT, 4 * 1024 * 1024);
    }

    #[test]
    fn shopify_is_off_by_default_and_complete_when_on() {
        assert!(load(&base()).unwrap().shopify.is_none());
        let mut vars = base();
        vars.insert("SAMPLIT_SHOPIFY_API_KEY", "key".to_owned());
        let err = load(&vars).unwrap_err().to_string();
        assert!(err.contains("SAMPLIT_SHOPIFY_TOKEN_KEYS"), "{err}");
        vars.insert(
            "SAMPLIT_SHOPIFY_TOKEN_KEYS",
            format!("k1:{}", "A".repeat(43) + "="),
        );
        vars.insert("SAMPLIT_PUBLIC_URL", "http://127.0.0.1:1".to_owned());
        vars.insert("SAMPLIT_SHOPIFY_API_SECRET", "s".repeat(32));
        let err = load(&vars).unwrap_err().to_string();
        assert!(err.contains("https://"), "{err}");
        vars.insert("SAMPLIT_PUBLIC_URL", "https://app.example/".to_owned());
        vars.insert(
            "SAMPLIT_DEV_SHOPIFY_ADMIN_ORIGIN",
            "http://127.0.0.1:9".to_owned(),
        );
        let err = load(&vars).unwrap_err().to_string();
        assert!(err.contains("SAMPLIT_DEV_ALLOW_LOCAL_DOMAINS"), "{err}");
        vars.remove("SAMPLIT_DEV_SHOPIFY_ADMIN_ORIGIN");
        let shopify = load(&vars).unwrap().shopify.unwrap();
        assert_eq!(shopify.public_url, "https://app.example");
        assert_eq!(
            shopify.scopes,
            "read_orders,write_pixels,read_customer_events"
        );
        assert!(!format!("{shopify:?}").contains(&"s".repeat(32)));
    }

    #[test]
    fn secrets_never_print() {
        let config = load(&base()).unwrap();
        let printed = format!("{config:?}");
        assert!(!printed.contains(&"j".repeat(32)), "{printed}");
    }
}
