//! The outbox worker: sends due messages of `mail_outbox`, one per transaction.
//!
//! Each message is locked (`FOR UPDATE SKIP LOCKED`: several control planes share the
//! work without sending a message twice), sent, and marked sent in that transaction. A
//! failed send is retried after `SAMPLIT_MAIL_RETRY_BASE_MS`, doubled per failure up to
//! an hour; a permanent refusal (SMTP 5xx) or a message older than
//! `SAMPLIT_MAIL_GIVE_UP` is given up and logged at error level. A pass stops at the
//! first transient failure (the server is likely down; the rest stay due for the next
//! pass). `Message-ID` is derived from the dedupe key, so the rare resend after a crash
//! between the server's acceptance and the commit is recognisably the same message.

use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::AsyncSmtpTransport;
use lettre::{AsyncTransport, Message, Tokio1Executor};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{LINK_TOKEN_PLACEHOLDER, LinkRef, link_token, masked};
use crate::config::Config;

/// The longest wait between two attempts of one message.
pub const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// The most messages one pass sends (the next pass continues).
pub const PASS_LIMIT: usize = 200;

/// How messages leave: an SMTP transport, or the log.
pub struct Sender {
    smtp: Option<(AsyncSmtpTransport<Tokio1Executor>, Mailbox)>,
}

impl Sender {
    /// The transport for `config.mail` (no connection is made until the first send).
    pub fn new(config: &Config) -> anyhow::Result<Self> {
        let smtp = match (&config.mail.smtp, &config.mail.from) {
            (Some(url), Some(from)) => {
                let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose())
                    .map_err(|e| anyhow::anyhow!("SAMPLIT_SMTP_URL: {e}"))?
                    .timeout(Some(Duration::from_secs(20)))
                    .build();
                let from: Mailbox = from
                    .parse()
                    .map_err(|e| anyhow::anyhow!("SAMPLIT_MAIL_FROM: {e}"))?;
                Some((transport, from))
            }
            _ => None,
        };
        Ok(Self { smtp })
    }
}

#[derive(sqlx::FromRow)]
struct Due {
    id: i64,
    dedupe_key: String,
    to_address: String,
    subject: String,
    text_body: String,
    html_body: String,
    link_purpose: Option<String>,
    link_id: Option<Uuid>,
    attempts: i32,
    created_at: OffsetDateTime,
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PassReport {
    pub sent: usize,
    pub retried: usize,
    pub given_up: usize,
}

enum Outcome {
    Sent,
    Transient(String),
    Permanent(String),
}

/// The delay before attempt `attempts + 1` after `attempts` failures.
pub fn backoff(base: Duration, attempts: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempts.saturating_sub(1).min(20));
    base.saturating_mul(factor).min(MAX_BACKOFF)
}

/// Sends what is due, until nothing is due, [`PASS_LIMIT`] messages, or a transient
/// failure.
pub async fn pass(pool: &PgPool, config: &Config, sender: &Sender) -> anyhow::Result<PassReport> {
    let mut report = PassReport::default();
    for _ in 0..PASS_LIMIT {
        let mut tx = pool.begin().await?;
        let due: Option<Due> = sqlx::query_as(
            "SELECT id, dedupe_key, to_address, subject, text_body, html_body, link_purpose,
                    link_id, attempts, created_at
               FROM mail_outbox
              WHERE sent_at IS NULL AND failed_at IS NULL AND next_attempt_at <= now()
              ORDER BY next_attempt_at, id
              LIMIT 1
                FOR UPDATE SKIP LOCKED",
        )
        .fetch_optional(&mut *tx)
        .await?;
        let Some(due) = due else { break };
        let outcome = send(config, sender, &due).await;
        let attempts = u32::try_from(due.attempts).unwrap_or(0).saturating_add(1);
        let stop = match outcome {
            Outcome::Sent => {
                sqlx::query(
                    "UPDATE mail_outbox SET sent_at = now(), attempts = attempts + 1,
                            last_error = NULL WHERE id = $1",
                )
                .bind(due.id)
                .execute(&mut *tx)
                .await?;
                report.sent += 1;
                false
            }
            Outcome::Permanent(error) => {
                give_up(&mut tx, &due, &error).await?;
                report.given_up += 1;
                false
            }
            Outcome::Transient(error) => {
                let age = OffsetDateTime::now_utc() - due.created_at;
                if age >= config.mail.give_up {
                    give_up(&mut tx, &due, &error).await?;
                    report.given_up += 1;
                } else {
                    let delay = backoff(config.mail.retry_base, attempts);
                    tracing::warn!(
                        outbox_id = due.id, attempts, retry_in_ms = delay.as_millis() as u64,
                        %error, "mail not sent; will retry"
                    );
                    sqlx::query(
                        "UPDATE mail_outbox SET attempts = attempts + 1, last_error = $2,
                                next_attempt_at = now() + $3 WHERE id = $1",
                    )
                    .bind(due.id)
                    .bind(&error)
                    .bind(time::Duration::try_from(delay).unwrap_or(time::Duration::HOUR))
                    .execute(&mut *tx)
                    .await?;
                    report.retried += 1;
                }
                true
            }
        };
        tx.commit().await?;
        if stop {
            break;
        }
    }
    Ok(report)
}

async fn give_up(tx: &mut sqlx::PgConnection, due: &Due, error: &str) -> Result<(), sqlx::Error> {
    tracing::error!(
        outbox_id = due.id,
        to = %masked(&due.to_address),
        attempts = due.attempts + 1,
        %error,
        "mail given up"
    );
    sqlx::query(
        "UPDATE mail_outbox SET attempts = attempts + 1, last_error = $2, failed_at = now()
          WHERE id = $1",
    )
    .bind(due.id)
    .bind(error)
    .execute(tx)
    .await?;
    Ok(())
}

fn link_of(due: &Due) -> Option<LinkRef> {
    let purpose = due.link_purpose.as_deref()?;
    // Purposes are a closed set in code; the row's text is matched against it so the
    // `&'static str` in `LinkRef` stays honest.
    let purpose = super::PURPOSES.iter().find(|p| **p == purpose)?;
    Some(LinkRef {
        purpose,
        id: due.link_id?,
    })
}

async fn send(config: &Config, sender: &Sender, due: &Due) -> Outcome {
    let Some((transport, from)) = &sender.smtp else {
        // No SMTP: the log gets the message with its link token redacted.
        tracing::info!(
            outbox_id = due.id,
            to = %masked(&due.to_address),
            subject = %due.subject,
            body = %due.text_body.replace(LINK_TOKEN_PLACEHOLDER, "[redacted]"),
            "mail (SAMPLIT_SMTP_URL is not set: logged, not sent)"
        );
        return Outcome::Sent;
    };
    let (text, html) = match (due.link_purpose.is_some(), link_of(due)) {
        (false, _) => (due.text_body.clone(), due.html_body.clone()),
        (true, Some(link)) => {
            let token = link_token(config, link);
            (
                due.text_body.replace(LINK_TOKEN_PLACEHOLDER, &token),
                due.html_body.replace(LINK_TOKEN_PLACEHOLDER, &token),
            )
        }
        (true, None) => {
            return Outcome::Permanent(format!(
                "unknown link purpose {:?}",
                due.link_purpose.as_deref().unwrap_or("")
            ));
        }
    };
    let to: Mailbox = match due.to_address.parse() {
        Ok(to) => to,
        Err(e) => return Outcome::Permanent(format!("recipient: {e}")),
    };
    let domain = from.email.domain().to_owned();
    let digest = hex::encode(&Sha256::digest(due.dedupe_key.as_bytes())[..16]);
    let message = Message::builder()
        .from(from.clone())
        .to(to)
        .subject(due.subject.clone())
        .message_id(Some(format!("<{digest}@{domain}>")))
        .multipart(MultiPart::alternative_plain_html(text, html));
    let message = match message {
        Ok(m) => m,
        Err(e) => return Outcome::Permanent(format!("message: {e}")),
    };
    match transport.send(message).await {
        Ok(_) => Outcome::Sent,
        Err(e) if e.is_permanent() => Outcome::Permanent(e.to_string()),
        Err(e) => Outcome::Transient(e.to_string()),
    }
}

/// Runs [`pass`] every `SAMPLIT_MAIL_POLL_MS` until `shutdown` resolves.
pub async fn run(
    pool: PgPool,
    config: std::sync::Arc<Config>,
    sender: std::sync::Arc<Sender>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) {
    crate::background::every(config.mail.poll, shutdown, || async {
        match pass(&pool, &config, &sender).await {
            Ok(report) if report != PassReport::default() => {
                tracing::info!(
                    sent = report.sent,
                    retried = report.retried,
                    given_up = report.given_up,
                    "mail outbox pass"
                );
            }
            Ok(_) => {}
            Err(error) => tracing::error!(%error, "mail outbox pass failed"),
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_base_up_to_an_hour() {
        let base = Duration::from_secs(30);
        assert_eq!(backoff(base, 1), Duration::from_secs(30));
        assert_eq!(backoff(base, 2), Duration::from_secs(60));
        assert_eq!(backoff(base, 4), Duration::from_secs(240));
        assert_eq!(backoff(base, 12), MAX_BACKOFF);
        assert_eq!(backoff(base, u32::MAX), MAX_BACKOFF);
    }
}
