//! Outgoing mail: every message goes through the `mail_outbox` table, written in the
//! transaction of the change that causes it ([`enqueue`]), and is sent by the outbox
//! worker ([`outbox`]) over SMTP (lettre) with retries and back-off — or, with no
//! `SAMPLIT_SMTP_URL`, written to the log at info level with its link redacted.
//!
//! - Messages are rendered when enqueued ([`Outgoing`], plain text and HTML, in the
//!   recipient's [`Language`]); the templates are askama files under
//!   `control-plane/templates/mail/`.
//! - A message with a link to follow (verify an address, reset a password, accept an
//!   invitation) carries [`LINK_TOKEN_PLACEHOLDER`] where the token goes, and a
//!   [`LinkRef`] (purpose and id of the token's row). The token itself is
//!   [`link_token`]: an HMAC of the purpose and id under a key derived from the JWT
//!   secret. Only its SHA-256 ([`token_hash`]) is stored, where the feature keeps its
//!   tokens; the outbox holds neither, and the worker derives the token again when it
//!   sends. Rotating `SAMPLIT_JWT_SECRET` invalidates unfollowed links.
//! - Sending is at least once in one narrow case: the worker marks a message sent in
//!   the transaction that locked it, after the SMTP server accepted it; a crash between
//!   the two resends it. Its `Message-ID` is stable ([`outbox`]), so mail systems can
//!   drop the copy.

pub mod outbox;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::config::Config;

/// Where the link token goes in a rendered body (replaced when sending, or by
/// `[redacted]` in the log). Templates put it in the URL's fragment
/// (`/app/verify-email#token=…`), so it never reaches a server's access log.
pub const LINK_TOKEN_PLACEHOLDER: &str = "SAMPLIT-LINK-TOKEN-8f3a1c";

/// The languages mails are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    #[default]
    En,
    Es,
}

impl Language {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::En => "en",
            Self::Es => "es",
        }
    }

    /// `en` or `es` (as stored in `users.language`); anything else is English.
    pub fn from_code(code: &str) -> Self {
        if code.trim().to_ascii_lowercase().starts_with("es") {
            Self::Es
        } else {
            Self::En
        }
    }

    /// The first supported language of an `Accept-Language` header, by preference
    /// order (`q` weights); English when none is supported.
    pub fn from_accept_language(header: Option<&str>) -> Self {
        let Some(header) = header else {
            return Self::En;
        };
        let mut best: Option<(f32, Self)> = None;
        for part in header.split(',') {
            let mut pieces = part.split(';');
            let tag = pieces.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = pieces
                .find_map(|p| p.trim().strip_prefix("q=").map(str::to_owned))
                .and_then(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            let lang = if tag == "es" || tag.starts_with("es-") {
                Self::Es
            } else if tag == "en" || tag.starts_with("en-") {
                Self::En
            } else {
                continue;
            };
            if q > 0.0 && best.is_none_or(|(bq, _)| q > bq) {
                best = Some((q, lang));
            }
        }
        best.map_or(Self::En, |(_, l)| l)
    }
}

/// Every purpose a link token may have ([`LinkRef::purpose`]); the worker refuses a row
/// naming another.
pub const PURPOSES: &[&str] = &[
    "verify_email",
    "confirm_registration",
    "reset_password",
    "change_email",
    "invitation",
];

/// Which token a message's link carries: the purpose (e.g. `verify_email`) and the id of
/// the row that holds the token's hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkRef {
    pub purpose: &'static str,
    pub id: Uuid,
}

/// A rendered message, ready for the outbox.
pub struct Outgoing {
    /// Enqueueing the same key twice keeps the first message (a retried change, an alert
    /// for a state already announced).
    pub dedupe_key: String,
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    pub link: Option<LinkRef>,
}

/// Writes `message` to the outbox in the caller's transaction; `false` when a message
/// with the same dedupe key exists already (nothing written).
pub async fn enqueue(conn: &mut PgConnection, message: &Outgoing) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO mail_outbox
             (dedupe_key, to_address, subject, text_body, html_body, link_purpose, link_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (dedupe_key) DO NOTHING",
    )
    .bind(&message.dedupe_key)
    .bind(&message.to)
    .bind(&message.subject)
    .bind(&message.text)
    .bind(&message.html)
    .bind(message.link.map(|l| l.purpose))
    .bind(message.link.map(|l| l.id))
    .execute(conn)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

type HmacSha256 = Hmac<Sha256>;

/// The token of a link: base64url (no padding) of HMAC-SHA256 over `purpose` and `id`,
/// keyed by a key derived from the JWT secret for this use only. Not guessable without
/// the secret; the same inputs give the same token (so the worker can put it into the
/// message when sending without it being stored).
pub fn link_token(config: &Config, link: LinkRef) -> String {
    use base64::Engine as _;
    let mut key = HmacSha256::new_from_slice(config.jwt_secret.expose())
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    key.update(b"samplit mail link tokens v1");
    let derived = key.finalize().into_bytes();
    let mut mac = HmacSha256::new_from_slice(&derived)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(link.purpose.as_bytes());
    mac.update(b":");
    mac.update(link.id.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

/// What is stored of a link token: its SHA-256.
pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.trim().as_bytes()).to_vec()
}

/// A link into the console: `<SAMPLIT_PUBLIC_URL>/app<path>#token=<placeholder>`. With no
/// public URL (log mode only: SMTP requires one) the origin reads `<SAMPLIT_PUBLIC_URL>`.
pub fn console_link(config: &Config, path: &str) -> String {
    format!(
        "{}/app{path}#token={LINK_TOKEN_PLACEHOLDER}",
        config
            .public_url
            .as_deref()
            .unwrap_or("<SAMPLIT_PUBLIC_URL>")
    )
}

/// A plain link into the console (no token), e.g. an experiment's results.
pub fn console_url(config: &Config, path: &str) -> String {
    format!(
        "{}/app{path}",
        config
            .public_url
            .as_deref()
            .unwrap_or("<SAMPLIT_PUBLIC_URL>")
    )
}

/// Whether mail actually leaves this server (SMTP configured). Without it, mail is only
/// logged, and features that rely on a person receiving it say so (e.g. addresses cannot
/// be verified, invitations answer their token to the inviter).
pub fn delivers(config: &Config) -> bool {
    config.mail.smtp.is_some()
}

/// `a***@example.com`: enough to tell recipients apart in a log, not the address.
pub fn masked(address: &str) -> String {
    match address.split_once('@') {
        Some((local, domain)) => {
            let first = local.chars().next().unwrap_or('*');
            format!("{first}***@{domain}")
        }
        None => "***".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language_picks_the_preferred_supported_language() {
        let cases = [
            (None, Language::En),
            (Some("es-ES,es;q=0.9,en;q=0.8"), Language::Es),
            (Some("fr-FR,fr;q=0.9,es;q=0.8,en;q=0.5"), Language::Es),
            (Some("en-GB,es;q=0.9"), Language::En),
            (Some("es;q=0.2, en;q=0.9"), Language::En),
            (Some("de"), Language::En),
            (Some("es;q=0"), Language::En),
        ];
        for (header, want) in cases {
            assert_eq!(Language::from_accept_language(header), want, "{header:?}");
        }
    }

    #[test]
    fn masked_addresses_keep_only_the_first_letter_and_the_domain() {
        assert_eq!(masked("ada@example.com"), "a***@example.com");
        assert_eq!(masked("nonsense"), "***");
    }
}
