//! The mail outbox against a real SMTP server on loopback (aiosmtpd, [`crate::smtp`]):
//! delivery with the link token put in when sending, deduplication, an SMTP outage
//! (nothing lost, nothing sent twice), a control-plane restart, and log mode.

use std::time::Duration;

use samplit_control_plane::AppState;
use samplit_control_plane::mail::{self, LINK_TOKEN_PLACEHOLDER, LinkRef, Outgoing, outbox};
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::test_config;
use crate::smtp::SmtpServer;

fn message(key: &str, to: &str, link: Option<LinkRef>) -> Outgoing {
    Outgoing {
        dedupe_key: key.to_owned(),
        to: to.to_owned(),
        subject: format!("Subject {key}"),
        text: format!(
            "Hello.\nFollow https://app.samplit.test/app/verify-email#token={LINK_TOKEN_PLACEHOLDER}\n"
        ),
        html: format!(
            "<p>Hello.</p><p><a href=\"https://app.samplit.test/app/verify-email#token={LINK_TOKEN_PLACEHOLDER}\">Verify</a></p>"
        ),
        link,
    }
}

async fn enqueue(pool: &PgPool, m: &Outgoing) -> bool {
    let mut conn = pool.acquire().await.unwrap();
    mail::enqueue(&mut conn, m).await.unwrap()
}

async fn pass(state: &AppState) -> outbox::PassReport {
    outbox::pass(&state.pool, &state.config, &state.mail)
        .await
        .unwrap()
}

#[sqlx::test(migrations = "../migrations")]
async fn a_queued_message_arrives_once_with_its_link_token(pool: PgPool) {
    let smtp = SmtpServer::start();
    let state = AppState::new(pool.clone(), smtp.config(&[])).unwrap();
    let link = LinkRef {
        purpose: "verify_email",
        id: Uuid::new_v4(),
    };
    assert!(enqueue(&pool, &message("m1", "ada@example.com", Some(link))).await);
    assert!(
        !enqueue(&pool, &message("m1", "ada@example.com", Some(link))).await,
        "the same dedupe key is one message"
    );
    let report = pass(&state).await;
    let error: Option<String> = sqlx::query_scalar("SELECT last_error FROM mail_outbox")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(report.sent, 1, "{report:?} {error:?}");
    assert_eq!(pass(&state).await, outbox::PassReport::default());
    let got = smtp.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1);
    let m = &got[0];
    assert_eq!(m.to, "ada@example.com");
    assert_eq!(m.from, "noreply@samplit.test");
    assert_eq!(m.subject, "Subject m1");
    let token = m
        .token("https://app.samplit.test/app/verify-email")
        .expect("a link with a token");
    assert_eq!(token, mail::link_token(&state.config, link));
    assert!(!m.raw.contains(LINK_TOKEN_PLACEHOLDER));
    assert!(m.html.contains(&token), "the HTML part has the link too");
    assert!(m.message_id.ends_with("@samplit.test"), "{}", m.message_id);
    // Nothing usable is stored: the outbox row has the placeholder, not the token.
    let stored: String = sqlx::query_scalar("SELECT text_body FROM mail_outbox")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(stored.contains(LINK_TOKEN_PLACEHOLDER) && !stored.contains(&token));
}

#[sqlx::test(migrations = "../migrations")]
async fn an_smtp_outage_delays_mail_and_loses_or_doubles_none(pool: PgPool) {
    let mut smtp = SmtpServer::start();
    let state = AppState::new(pool.clone(), smtp.config(&[])).unwrap();
    smtp.stop();
    for i in 0..3 {
        enqueue(
            &pool,
            &message(&format!("out{i}"), &format!("p{i}@example.com"), None),
        )
        .await;
    }
    let report = pass(&state).await;
    assert_eq!((report.sent, report.retried), (0, 1), "{report:?}");
    // Still down at the next attempts: each message is retried, none given up.
    tokio::time::sleep(Duration::from_millis(300)).await;
    pass(&state).await;
    let (failed, pending): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE failed_at IS NOT NULL),
                count(*) FILTER (WHERE sent_at IS NULL AND failed_at IS NULL)
           FROM mail_outbox",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((failed, pending), (0, 3));
    let last_error: Option<String> =
        sqlx::query_scalar("SELECT last_error FROM mail_outbox WHERE attempts > 0 LIMIT 1")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(last_error.is_some());

    smtp.resume();
    // Bounded: the back-off is 100 ms doubled per failure here.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        pass(&state).await;
        let left: i64 =
            sqlx::query_scalar("SELECT count(*) FROM mail_outbox WHERE sent_at IS NULL")
                .fetch_one(&pool)
                .await
                .unwrap();
        if left == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{left} messages never sent"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    pass(&state).await;
    let got = smtp.wait_for(3, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got_later = smtp.messages();
    assert_eq!(got_later.len(), 3, "each message exactly once: {got:?}");
    let mut to: Vec<String> = got_later.iter().map(|m| m.to.clone()).collect();
    to.sort();
    assert_eq!(to, ["p0@example.com", "p1@example.com", "p2@example.com"]);
}

#[sqlx::test(migrations = "../migrations")]
async fn mail_queued_before_a_restart_is_sent_by_the_next_process(pool: PgPool) {
    let smtp = SmtpServer::start();
    {
        // The first process queues and stops before its worker ever runs.
        let _first = AppState::new(pool.clone(), smtp.config(&[])).unwrap();
        enqueue(&pool, &message("restart", "grace@example.com", None)).await;
    }
    // The next process's worker (the real loop, as `serve` runs it) sends it.
    let second = AppState::new(pool.clone(), smtp.config(&[])).unwrap();
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(outbox::run(
        second.pool.clone(),
        second.config.clone(),
        second.mail.clone(),
        async move {
            let _ = stop_rx.wait_for(|s| *s).await;
        },
    ));
    let got = smtp.wait_for(1, Duration::from_secs(15)).await;
    stop_tx.send(true).unwrap();
    worker.await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].to, "grace@example.com");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_refused_recipient_is_given_up_not_retried_forever(pool: PgPool) {
    let smtp = SmtpServer::start();
    let state = AppState::new(pool.clone(), smtp.config(&[("SAMPLIT_MAIL_GIVE_UP", "1")])).unwrap();
    let mut stopped = smtp;
    stopped.stop();
    enqueue(&pool, &message("old", "late@example.com", None)).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let report = pass(&state).await;
    assert_eq!(
        report.given_up, 1,
        "older than SAMPLIT_MAIL_GIVE_UP: {report:?}"
    );
    let failed: bool = sqlx::query_scalar(
        "SELECT failed_at IS NOT NULL FROM mail_outbox WHERE dedupe_key = 'old'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(failed);
}

#[sqlx::test(migrations = "../migrations")]
async fn without_smtp_mail_is_logged_and_marked_sent(pool: PgPool) {
    let state = AppState::new(pool.clone(), test_config()).unwrap();
    assert!(!mail::delivers(&state.config));
    enqueue(&pool, &message("logged", "ada@example.com", None)).await;
    assert_eq!(pass(&state).await.sent, 1);
    let sent: bool = sqlx::query_scalar("SELECT sent_at IS NOT NULL FROM mail_outbox")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(sent);
}
