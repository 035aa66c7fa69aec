//! Mailed account flows (issue 15) through the API and a real SMTP server (aiosmtpd on
//! loopback, [`crate::smtp`]): each message is read as it arrived, its link's token is
//! followed through the API, and what the link says happens (and only once, and only
//! in time). Also: the answers of sign-up and forgot-password say nothing about whether
//! an address has an account (same bytes, and about the same time), throttles, and who
//! may call what.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use samplit_control_plane::auth::Role;
use samplit_control_plane::mail::outbox;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{
    GOOD_PASSWORD, Session, TestApp, TestResponse, add_member, create_api_key, login, new_org,
    new_team, test_config,
};
use crate::smtp::{PUBLIC_URL, Received, SmtpServer};

const NEW_PASSWORD: &str = "a brand new passphrase";

fn link(path: &str) -> String {
    format!("{PUBLIC_URL}/app{path}")
}

fn mailing_app(pool: PgPool, smtp: &SmtpServer) -> TestApp {
    TestApp::with_config(pool, smtp.config(&[]))
}

/// Sends what the outbox holds, then waits (bounded) until `n` messages to `to` arrived;
/// the newest one.
async fn mail_to(app: &TestApp, smtp: &SmtpServer, to: &str, n: usize) -> Received {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        outbox::pass(&app.state.pool, &app.state.config, &app.state.mail)
            .await
            .unwrap();
        let got = smtp.messages_to(to);
        if got.len() >= n {
            return got[n - 1].clone();
        }
        assert!(
            Instant::now() < deadline,
            "expected {n} messages to {to}, got {:?}",
            got.iter().map(|m| &m.subject).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn registration(email: &str) -> Value {
    json!({
        "email": email,
        "password": GOOD_PASSWORD,
        "name": "Ada",
        "organization_name": "Acme",
    })
}

/// Status and body without the request id (problems carry one; nothing else varies).
fn answer(resp: &TestResponse) -> (StatusCode, Vec<u8>) {
    (resp.status, resp.body.clone())
}

/// Signs `email` up through the mailed confirmation link; its session.
async fn signed_up(app: &TestApp, smtp: &SmtpServer, email: &str) -> Session {
    let resp = app
        .post("/api/v1/auth/register", None, registration(email))
        .await;
    assert_eq!(resp.status, StatusCode::ACCEPTED, "{}", resp.text());
    let n = smtp.messages_to(email).len() + 1;
    let m = mail_to(app, smtp, email, n).await;
    let token = m
        .token(&link("/verify-email"))
        .expect("a confirmation link");
    let resp = app
        .post(
            "/api/v1/auth/register/confirm",
            None,
            json!({ "token": token }),
        )
        .await;
    assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.text());
    Session::from_json(&resp.json())
}

async fn me(app: &TestApp, token: &str) -> Value {
    let resp = app.get("/api/v1/auth/me", Some(token)).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    resp.json()
}

#[sqlx::test(migrations = "../migrations")]
async fn signing_up_mails_a_confirmation_link_that_creates_a_verified_account(pool: PgPool) {
    let smtp = SmtpServer::start();
    let app = mailing_app(pool.clone(), &smtp);
    let resp = app
        .post(
            "/api/v1/auth/register",
            None,
            registration("ada@example.com"),
        )
        .await;
    assert_eq!(resp.status, StatusCode::ACCEPTED, "{}", resp.text());
    assert_eq!(resp.json(), json!({ "status": "confirmation_sent" }));
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(users, 0, "no account before the address is confirmed");

    let m = mail_to(&app, &smtp, "ada@example.com", 1).await;
    assert_eq!(m.subject, "Confirm your email address");
    assert!(m.text.contains("Acme"), "{}", m.text);
    let token = m
        .token(&link("/verify-email?signup=1"))
        .expect("a confirmation link");
    assert!(m.html.contains(&token), "the HTML part has the link too");
    let resp = app
        .post(
            "/api/v1/auth/register/confirm",
            None,
            json!({ "token": token }),
        )
        .await;
    assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.text());
    let session = Session::from_json(&resp.json());
    let me = me(&app, &session.access).await;
    assert_eq!(me["user"]["email"], "ada@example.com");
    assert_eq!(me["user"]["email_verified"], true);
    assert_eq!(me["user"]["language"], "en");
    assert_eq!(me["mail_delivery"], true);
    assert_eq!(me["organization"]["name"], "Acme");
    assert_eq!(me["role"], "owner");
    assert_eq!(
        login(&app, "ada@example.com", GOOD_PASSWORD).await.status,
        StatusCode::OK
    );

    let again = app
        .post(
            "/api/v1/auth/register/confirm",
            None,
            json!({ "token": token }),
        )
        .await;
    again.assert_problem(StatusCode::NOT_FOUND, "invalid_token");
    app.post(
        "/api/v1/auth/register/confirm",
        None,
        json!({ "token": "made-up" }),
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "invalid_token");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_spanish_sign_up_gets_its_mail_in_spanish_and_the_console_is_signed_in(pool: PgPool) {
    let smtp = SmtpServer::start();
    let app = mailing_app(pool, &smtp);
    let peer: SocketAddr = "198.51.100.20:1000".parse().unwrap();
    let resp = app
        .post_from(
            "/api/v1/auth/console/register",
            peer,
            &[("accept-language", "es-ES,es;q=0.9,en;q=0.5")],
            registration("lucia@example.com"),
        )
        .await;
    assert_eq!(resp.status, StatusCode::ACCEPTED, "{}", resp.text());
    assert_eq!(resp.json(), json!({ "status": "confirmation_sent" }));
    assert!(
        resp.headers.get("set-cookie").is_none(),
        "nobody signed in yet"
    );
    let m = mail_to(&app, &smtp, "lucia@example.com", 1).await;
    assert_eq!(m.subject, "Confirma tu dirección de correo");
    assert!(m.html.contains("lang=\"es\""), "{}", m.html);
    assert!(m.text.contains("Confirmar mi dirección"), "{}", m.text);
    let token = m.token(&link("/verify-email")).unwrap();
    let resp = app
        .post(
            "/api/v1/auth/console/register/confirm",
            None,
            json!({ "token": token }),
        )
        .await;
    assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.text());
    assert!(
        resp.headers.get("set-cookie").is_some(),
        "the browser is signed in"
    );
    assert!(resp.json()["csrf_token"].is_string());
    let language: String =
        sqlx::query_scalar("SELECT language FROM users WHERE email = 'lucia@example.com'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(language, "es");
}

#[sqlx::test(migrations = "../migrations")]
async fn signing_up_with_a_taken_address_answers_the_same_and_tells_only_the_mailbox(pool: PgPool) {
    let smtp = SmtpServer::start();
    let app = mailing_app(pool.clone(), &smtp);
    signed_up(&app, &smtp, "taken@example.com").await;
    let taken = app
        .post(
            "/api/v1/auth/register",
            None,
            registration("taken@example.com"),
        )
        .await;
    let free = app
        .post(
            "/api/v1/auth/register",
            None,
            registration("free@example.com"),
        )
        .await;
    assert_eq!(answer(&taken), answer(&free), "byte-identical answers");
    assert_eq!(taken.status, StatusCode::ACCEPTED);
    let m = mail_to(&app, &smtp, "taken@example.com", 2).await;
    assert_eq!(m.subject, "You already have a Samplit account");
    assert!(m.text.contains(&link("/forgot-password")), "{}", m.text);
    assert!(!m.text.contains("#token="), "no token: {}", m.text);
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(users, 1);
}

#[sqlx::test(migrations = "../migrations")]
async fn confirmation_links_expire_and_only_one_per_address_works(pool: PgPool) {
    let smtp = SmtpServer::start();
    let app = mailing_app(pool.clone(), &smtp);
    for _ in 0..2 {
        app.post(
            "/api/v1/auth/register",
            None,
            registration("twice@example.com"),
        )
        .await;
    }
    app.post(
        "/api/v1/auth/register",
        None,
        registration("late@example.com"),
    )
    .await;
    let first = mail_to(&app, &smtp, "twice@example.com", 1).await;
    let second = mail_to(&app, &smtp, "twice@example.com", 2).await;
    let late = mail_to(&app, &smtp, "late@example.com", 1).await;
    let token = |m: &Received| m.token(&link("/verify-email")).unwrap();
    let confirm = |t: String| {
        let app = &app;
        async move {
            app.post("/api/v1/auth/register/confirm", None, json!({ "token": t }))
                .await
        }
    };
    assert_eq!(confirm(token(&second)).await.status, StatusCode::CREATED);
    confirm(token(&first))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "invalid_token");

    sqlx::query(
        "UPDATE pending_registrations SET expires_at = now() - interval '1 second'
          WHERE email = 'late@example.com'",
    )
    .execute(&pool)
    .await
    .unwrap();
    confirm(token(&late))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "invalid_token");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_confirmation_for_an_address_taken_meanwhile_is_a_conflict(pool: PgPool) {
    let smtp = SmtpServer::start();
    let app = mailing_app(pool.clone(), &smtp);
    app.post(
        "/api/v1/auth/register",
        None,
        registration("race@example.com"),
    )
    .await;
    let m = mail_to(&app, &smtp, "race@example.com", 1).await;
    // Taken meanwhile (e.g. by an accepted invitation).
    sqlx::query(
        "INSERT INTO users (id, email, password_hash) VALUES ($1, 'race@example.com', 'x')",
    )
    .bind(Uuid::new_v4())
    .execute(&pool)
    .await
    .unwrap();
    app.post(
        "/api/v1/auth/register/confirm",
        None,
        json!({ "token": m.token(&link("/verify-email")).unwrap() }),
    )
    .await
    .assert_problem(StatusCode::CONFLICT, "email_taken");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_reset_link_sets_the_password_once_and_ends_every_session(pool: PgPool) {
    let smtp = SmtpServer::start();
    let app = mailing_app(pool.clone(), &smtp);
    let first = signed_up(&app, &smtp, "reset@example.com").await;
    let second = Session::from_json(&login(&app, "reset@example.com", GOOD_PASSWORD).await.json());
    let resp = app
        .post(
            "/api/v1/auth/password/forgot",
            None,
            json!({ "email": "Reset@Example.com" }),
        )
        .await;
    assert_eq!(resp.status, StatusCode::ACCEPTED, "{}", resp.text());
    assert_eq!(resp.json(), json!({ "status": "reset_sent" }));
    let m = mail_to(&app, &smtp, "reset@example.com", 2).await;
    assert_eq!(m.subject, "Reset your Samplit password");
    let token = m.token(&link("/reset-password")).expect("a reset link");
    let stored: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM account_tokens WHERE token_hash = sha256($1::bytea)",
    )
    .bind(token.as_bytes())
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(stored, 1, "only the token's hash is stored");

    let reset = |password: &'static str| {
        let app = &app;
        let token = token.clone();
        async move {
            app.post(
                "/api/v1/auth/password/reset",
                None,
                json!({ "token": token, "password": password }),
            )
            .await
        }
    };
    reset("short")
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(reset(NEW_PASSWORD).await.status, StatusCode::NO_CONTENT);
    reset(NEW_PASSWORD)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "invalid_token");

    // Every session ended: access tokens and refresh tokens alike.
    for session in [&first, &second] {
        assert_eq!(
            app.get("/api/v1/auth/me", Some(&session.access))
                .await
                .status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            app.post(
                "/api/v1/auth/refresh",
                None,
                json!({ "refresh_token": session.refresh })
            )
            .await
            .status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        login(&app, "reset@example.com", GOOD_PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login(&app, "reset@example.com", NEW_PASSWORD).await.status,
        StatusCode::OK
    );
    let notice = mail_to(&app, &smtp, "reset@example.com", 3).await;
    assert_eq!(notice.subject, "Your password was changed");
    let audited: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'user.password_reset'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(audited, 1);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_reset_link_expires_after_an_hour(pool: PgPool) {
    let smtp = SmtpServer::start();
    let app = mailing_app(pool.clone(), &smtp);
    signed_up(&app, &smtp, "slow@example.com").await;
    app.post(
        "/api/v1/auth/password/forgot",
        None,
        json!({ "email": "slow@example.com" }),
    )
    .await;
    let m = mail_to(&app, &smtp, "slow@example.com", 2).await;
    let expires_in: f64 = sqlx::query_scalar(
        "SELECT EXTRACT(EPOCH FROM expires_at - created_at)::float8 FROM account_tokens
          WHERE purpose = 'reset_password'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!((expires_in - 3600.0).abs() < 5.0, "{expires_in}");
    sqlx::query("UPDATE account_tokens SET expires_at = now() - interval '1 second'")
        .execute(&pool)
        .await
        .unwrap();
    app.post(
        "/api/v1/auth/password/reset",
        None,
        json!({ "token": m.token(&link("/reset-password")).unwrap(), "password": NEW_PASSWORD }),
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "invalid_token");
}

#[sqlx::test(migrations = "../migrations")]
async fn forgot_password_answers_the_same_for_unknown_addresses_and_tells_their_mailbox(
    pool: PgPool,
) {
    let smtp = SmtpServer::start();
    let app = mailing_app(pool.clone(), &smtp);
    signed_up(&app, &smtp, "known@example.com").await;
    let known = app
        .post(
            "/api/v1/auth/password/forgot",
            None,
            json!({ "email": "known@example.com" }),
        )
        .await;
    let unknown = app
        .call_with(
            Method::POST,
            "/api/v1/auth/password/forgot",
            None,
            Some(json!({ "email": "nobody@example.com" })),
            &[("accept-language", "es")],
        )
        .await;
    assert_eq!(answer(&known), answer(&unknown), "byte-identical answers");
    let m = mail_to(&app, &smtp, "nobody@example.com", 1).await;
    assert_eq!(m.subject, "Solicitud para restablecer una contraseña");
    assert!(!m.text.contains("#token="), "{}", m.text);
    // More than the per-address limit: still 202, nothing more sent.
    for _ in 0..4 {
        let resp = app
            .post(
                "/api/v1/auth/password/forgot",
                None,
                json!({ "email": "known@example.com" }),
            )
            .await;
        assert_eq!(answer(&resp), answer(&known));
    }
    outbox::pass(&app.state.pool, &app.state.config, &app.state.mail)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let resets = smtp
        .messages_to("known@example.com")
        .iter()
        .filter(|m| m.subject == "Reset your Samplit password")
        .count();
    assert_eq!(resets, 3, "at most 3 reset mails per address and hour");
    app.post(
        "/api/v1/auth/password/forgot",
        None,
        json!({ "email": "not an address" }),
    )
    .await
    .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
}

#[sqlx::test(migrations = "../migrations")]
async fn forgot_password_is_throttled_per_client_address_whatever_the_address(pool: PgPool) {
    let smtp = SmtpServer::start();
    let app = mailing_app(pool, &smtp);
    let peer: SocketAddr = "203.0.113.50:4000".parse().unwrap();
    for i in 0..10 {
        let resp = app
            .post_from(
                "/api/v1/auth/password/forgot",
                peer,
                &[],
                json!({ "email": format!("guess{i}@example.com") }),
            )
            .await;
        assert_eq!(resp.status, StatusCode::ACCEPTED, "request {i}");
    }
    let resp = app
        .post_from(
            "/api/v1/auth/password/forgot",
            peer,
            &[],
            json!({ "email": "guess10@example.com" }),
        )
        .await;
    resp.assert_problem(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert!(resp.headers.get("retry-after").is_some());
    let other: SocketAddr = "203.0.113.51:4000".parse().unwrap();
    let resp = app
        .post_from(
            "/api/v1/auth/password/forgot",
            other,
            &[],
            json!({ "email": "guess10@example.com" }),
        )
        .await;
    assert_eq!(
        resp.status,
        StatusCode::ACCEPTED,
        "another client is not limited"
    );
}

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64()
}

/// A coarse guard, not a benchmark: the answers for an address with an account and one
/// without must not take measurably different times (the median of 15 interleaved
/// requests each within a factor of 1.5). Sign-up is dominated by argon2, which both
/// branches run; forgot-password does one insert and one enqueue in both.
#[sqlx::test(migrations = "../migrations")]
async fn sign_up_and_forgot_password_take_as_long_for_known_and_unknown_addresses(pool: PgPool) {
    let smtp = SmtpServer::start();
    let app = mailing_app(pool.clone(), &smtp);
    const N: usize = 15;
    for i in 0..N {
        sqlx::query("INSERT INTO users (id, email, password_hash) VALUES ($1, $2, 'x')")
            .bind(Uuid::new_v4())
            .bind(format!("known{i}@example.com"))
            .execute(&pool)
            .await
            .unwrap();
    }
    for (path, body) in [
        ("/api/v1/auth/register", registration as fn(&str) -> Value),
        (
            "/api/v1/auth/password/forgot",
            |e: &str| json!({ "email": e }),
        ),
    ] {
        let (mut known, mut unknown) = (Vec::new(), Vec::new());
        // Warm up both paths once.
        app.post(path, None, body("warm@example.com")).await;
        for i in 0..N {
            for (bucket, email) in [
                (&mut known, format!("known{i}@example.com")),
                (
                    &mut unknown,
                    format!("unknown{i}-{}@example.com", path.len()),
                ),
            ] {
                let started = Instant::now();
                let resp = app.post(path, None, body(&email)).await;
                bucket.push(started.elapsed());
                assert_eq!(resp.status, StatusCode::ACCEPTED, "{}", resp.text());
            }
        }
        let ratio = median(known) / median(unknown);
        assert!(
            (0.67..=1.5).contains(&ratio),
            "{path}: known/unknown median time ratio {ratio:.2}"
        );
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn a_verification_link_verifies_the_address_and_resends_are_limited(pool: PgPool) {
    let smtp = SmtpServer::start();
    let app = mailing_app(pool.clone(), &smtp);
    let owner = new_org(&app).await;
    assert_eq!(
        me(&app, &owner.token).await["user"]["email_verified"],
        false
    );
    let resp = app
        .post(
            "/api/v1/auth/verify-email/resend",
            Some(&owner.token),
            json!({}),
        )
        .await;
    assert_eq!(resp.status, StatusCode::ACCEPTED, "{}", resp.text());
    assert_eq!(resp.json(), json!({ "status": "verification_sent" }));
    let m = mail_to(&app, &smtp, &owner.email, 1).await;
    assert_eq!(m.subject, "Verify your email address");
    let token = m.token(&link("/verify-email")).unwrap();
    let resp = app
        .post("/api/v1/auth/verify-email", None, json!({ "token": token }))
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    assert_eq!(resp.json()["email"], owner.email.as_str());
    assert_eq!(me(&app, &owner.token).await["user"]["email_verified"], true);
    app.post("/api/v1/auth/verify-email", None, json!({ "token": token }))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "invalid_token");
    app.post(
        "/api/v1/auth/verify-email/resend",
        Some(&owner.token),
        json!({}),
    )
    .await
    .assert_problem(StatusCode::CONFLICT, "already_verified");

    // Expired links, and the limit of 5 resends an hour.
    let other = add_member(&app, owner.org_id, Role::Viewer).await;
    for i in 0..5 {
        let resp = app
            .post(
                "/api/v1/auth/verify-email/resend",
                Some(&other.token),
                json!({}),
            )
            .await;
        assert_eq!(resp.status, StatusCode::ACCEPTED, "resend {i}");
    }
    app.post(
        "/api/v1/auth/verify-email/resend",
        Some(&other.token),
        json!({}),
    )
    .await
    .assert_problem(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let m = mail_to(&app, &smtp, &other.email, 5).await;
    sqlx::query("UPDATE account_tokens SET expires_at = now() - interval '1 second'")
        .execute(&pool)
        .await
        .unwrap();
    app.post(
        "/api/v1/auth/verify-email",
        None,
        json!({ "token": m.token(&link("/verify-email")).unwrap() }),
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "invalid_token");
    app.post("/api/v1/auth/verify-email/resend", None, json!({}))
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
}

#[sqlx::test(migrations = "../migrations")]
async fn changing_the_password_needs_the_current_one_and_ends_the_other_sessions(pool: PgPool) {
    let smtp = SmtpServer::start();
    let app = mailing_app(pool, &smtp);
    let current = signed_up(&app, &smtp, "change@example.com").await;
    let other = Session::from_json(
        &login(&app, "change@example.com", GOOD_PASSWORD)
            .await
            .json(),
    );
    let change = |current_password: &str, new_password: &str| {
        let app = &app;
        let token = current.access.clone();
        let body = json!({ "current_password": current_password, "new_password": new_password });
        async move { app.post("/api/v1/auth/password", Some(&token), body).await }
    };
    change("wrong password!", NEW_PASSWORD)
        .await
        .assert_problem(StatusCode::FORBIDDEN, "wrong_password");
    change(GOOD_PASSWORD, "short")
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(
        change(GOOD_PASSWORD, NEW_PASSWORD).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get("/api/v1/auth/me", Some(&current.access))
            .await
            .status,
        StatusCode::OK,
        "this session stays"
    );
    assert_eq!(
        app.get("/api/v1/auth/me", Some(&other.access)).await.status,
        StatusCode::UNAUTHORIZED,
        "the others end"
    );
    assert_eq!(
        login(&app, "change@example.com", NEW_PASSWORD).await.status,
        StatusCode::OK
    );
    let notice = mail_to(&app, &smtp, "change@example.com", 2).await;
    assert_eq!(notice.subject, "Your password was changed");

    // Wrong current passwords are throttled like logins (5 failures per account).
    for _ in 0..5 {
        change("wrong password!", NEW_PASSWORD)
            .await
            .assert_problem(StatusCode::FORBIDDEN, "wrong_password");
    }
    change("wrong password!", NEW_PASSWORD)
        .await
        .assert_problem(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
}

#[sqlx::test(migrations = "../migrations")]
async fn changing_the_email_mails_the_new_address_and_its_link_makes_the_change(pool: PgPool) {
    let smtp = SmtpServer::start();
    let app = mailing_app(pool.clone(), &smtp);
    let ada = signed_up(&app, &smtp, "old@example.com").await;
    app.post(
        "/api/v1/auth/email",
        Some(&ada.access),
        json!({ "new_email": "new@example.com", "password": "wrong password!" }),
    )
    .await
    .assert_problem(StatusCode::FORBIDDEN, "wrong_password");
    let resp = app
        .post(
            "/api/v1/auth/email",
            Some(&ada.access),
            json!({ "new_email": "New@Example.com", "password": GOOD_PASSWORD }),
        )
        .await;
    assert_eq!(resp.status, StatusCode::ACCEPTED, "{}", resp.text());
    assert_eq!(resp.json(), json!({ "status": "email_change_sent" }));
    let notice = mail_to(&app, &smtp, "old@example.com", 2).await;
    assert_eq!(notice.subject, "Your email address is being changed");
    assert!(notice.text.contains("n***@example.com"), "{}", notice.text);
    let m = mail_to(&app, &smtp, "new@example.com", 1).await;
    assert_eq!(m.subject, "Confirm your new email address");
    let token = m.token(&link("/verify-email")).unwrap();
    assert_eq!(
        me(&app, &ada.access).await["user"]["email"],
        "old@example.com",
        "nothing changes before the link is followed"
    );
    let resp = app
        .post("/api/v1/auth/verify-email", None, json!({ "token": token }))
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    assert_eq!(resp.json()["email"], "new@example.com");
    let me = me(&app, &ada.access).await;
    assert_eq!(me["user"]["email"], "new@example.com");
    assert_eq!(me["user"]["email_verified"], true);
    assert_eq!(
        login(&app, "new@example.com", GOOD_PASSWORD).await.status,
        StatusCode::OK
    );
    app.post("/api/v1/auth/verify-email", None, json!({ "token": token }))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "invalid_token");
    let audited: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'user.email_changed'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(audited, 1);
}

#[sqlx::test(migrations = "../migrations")]
async fn changing_to_a_taken_address_answers_the_same_and_its_link_says_email_taken(pool: PgPool) {
    let smtp = SmtpServer::start();
    let app = mailing_app(pool, &smtp);
    let ada = signed_up(&app, &smtp, "ada@example.com").await;
    let grace = signed_up(&app, &smtp, "grace@example.com").await;
    let body = |to: &str| json!({ "new_email": to, "password": GOOD_PASSWORD });
    let taken = app
        .post(
            "/api/v1/auth/email",
            Some(&ada.access),
            body("grace@example.com"),
        )
        .await;
    let free = app
        .post(
            "/api/v1/auth/email",
            Some(&ada.access),
            body("free@example.com"),
        )
        .await;
    assert_eq!(answer(&taken), answer(&free));
    let m = mail_to(&app, &smtp, "grace@example.com", 2).await;
    assert_eq!(m.subject, "Confirm your new email address");
    // Grace follows the link while signed in as herself: the token changes only the
    // account that asked for it, and here the address is taken.
    app.post(
        "/api/v1/auth/verify-email",
        Some(&grace.access),
        json!({ "token": m.token(&link("/verify-email")).unwrap() }),
    )
    .await
    .assert_problem(StatusCode::CONFLICT, "email_taken");
    assert_eq!(
        me(&app, &ada.access).await["user"]["email"],
        "ada@example.com"
    );
    assert_eq!(
        me(&app, &grace.access).await["user"]["email"],
        "grace@example.com"
    );
    app.post(
        "/api/v1/auth/email",
        Some(&ada.access),
        body("ada@example.com"),
    )
    .await
    .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
}

#[sqlx::test(migrations = "../migrations")]
async fn another_persons_change_link_changes_only_the_account_that_asked(pool: PgPool) {
    let smtp = SmtpServer::start();
    let app = mailing_app(pool, &smtp);
    let ada = signed_up(&app, &smtp, "ada@example.com").await;
    let mallory = signed_up(&app, &smtp, "mallory@example.com").await;
    app.post(
        "/api/v1/auth/email",
        Some(&mallory.access),
        json!({ "new_email": "mallory2@example.com", "password": GOOD_PASSWORD }),
    )
    .await;
    let m = mail_to(&app, &smtp, "mallory2@example.com", 1).await;
    // Presented with Ada's session, the token still belongs to Mallory's account.
    let resp = app
        .post(
            "/api/v1/auth/verify-email",
            Some(&ada.access),
            json!({ "token": m.token(&link("/verify-email")).unwrap() }),
        )
        .await;
    assert_eq!(resp.status, StatusCode::OK);
    assert_eq!(
        me(&app, &ada.access).await["user"]["email"],
        "ada@example.com"
    );
    assert_eq!(
        me(&app, &mallory.access).await["user"]["email"],
        "mallory2@example.com"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn api_keys_cannot_act_on_a_persons_account(pool: PgPool) {
    let smtp = SmtpServer::start();
    let app = mailing_app(pool, &smtp);
    let owner = new_org(&app).await;
    let (_, key) = create_api_key(&app, &owner.token, "ci", Role::Admin).await;
    let cases = [
        (
            Method::POST,
            "/api/v1/auth/password",
            json!({ "current_password": GOOD_PASSWORD, "new_password": NEW_PASSWORD }),
        ),
        (
            Method::POST,
            "/api/v1/auth/email",
            json!({ "new_email": "key@example.com", "password": GOOD_PASSWORD }),
        ),
        (Method::POST, "/api/v1/auth/verify-email/resend", json!({})),
        (
            Method::PATCH,
            "/api/v1/auth/me",
            json!({ "language": "es" }),
        ),
    ];
    for (method, path, body) in cases {
        let resp = app
            .call(method.clone(), path, Some(&key), Some(body.clone()))
            .await;
        assert_eq!(
            resp.status,
            StatusCode::FORBIDDEN,
            "{method} {path}: {}",
            resp.text()
        );
        let resp = app.call(method.clone(), path, None, Some(body)).await;
        assert_eq!(
            resp.status,
            StatusCode::UNAUTHORIZED,
            "{method} {path} anonymous"
        );
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn the_language_follows_the_person(pool: PgPool) {
    let smtp = SmtpServer::start();
    let app = mailing_app(pool, &smtp);
    let ada = signed_up(&app, &smtp, "ada@example.com").await;
    let resp = app
        .patch(
            "/api/v1/auth/me",
            Some(&ada.access),
            json!({ "language": "es", "name": "Ada L." }),
        )
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    assert_eq!(resp.json()["user"]["language"], "es");
    assert_eq!(resp.json()["user"]["name"], "Ada L.");
    app.patch(
        "/api/v1/auth/me",
        Some(&ada.access),
        json!({ "language": "fr" }),
    )
    .await
    .assert_problem(StatusCode::BAD_REQUEST, "bad_request");
    app.post(
        "/api/v1/auth/password/forgot",
        None,
        json!({ "email": "ada@example.com" }),
    )
    .await;
    let m = mail_to(&app, &smtp, "ada@example.com", 2).await;
    assert_eq!(m.subject, "Restablece tu contraseña de Samplit");
    assert!(m.token(&link("/reset-password")).is_some());
}

#[sqlx::test(migrations = "../migrations")]
async fn invitations_are_mailed_and_accepted_with_the_mailed_token(pool: PgPool) {
    let smtp = SmtpServer::start();
    let app = mailing_app(pool.clone(), &smtp);
    let team = new_team(&app).await;
    let resp = app
        .post(
            "/api/v1/invitations",
            Some(&team.admin.token),
            json!({ "email": "new@example.com", "role": "editor" }),
        )
        .await;
    assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.text());
    assert!(resp.json().get("token").is_none(), "{}", resp.text());
    let m = mail_to(&app, &smtp, "new@example.com", 1).await;
    assert_eq!(
        m.subject,
        format!("{} invited you to Test org on Samplit", team.admin.email)
    );
    assert!(m.text.contains("editor"), "{}", m.text);
    let token = m
        .token(&link("/accept-invitation"))
        .expect("an invitation link");
    let resp = app
        .post(
            "/api/v1/invitations/accept",
            None,
            json!({ "token": token, "password": GOOD_PASSWORD, "name": "New" }),
        )
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    let session = Session::from_json(&resp.json());
    let me = me(&app, &session.access).await;
    assert_eq!(me["role"], "editor");
    assert_eq!(
        me["user"]["email_verified"], true,
        "the mailed token proves it"
    );
    app.post(
        "/api/v1/invitations/accept",
        None,
        json!({ "token": token, "password": GOOD_PASSWORD }),
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "not_found");

    // An invitee with an account gets it in their language.
    let lucia = add_member(&app, new_org(&app).await.org_id, Role::Owner).await;
    sqlx::query("UPDATE users SET language = 'es' WHERE id = $1")
        .bind(lucia.user_id)
        .execute(&pool)
        .await
        .unwrap();
    app.post(
        "/api/v1/invitations",
        Some(&team.owner.token),
        json!({ "email": lucia.email, "role": "viewer" }),
    )
    .await;
    let m = mail_to(&app, &smtp, &lucia.email, 1).await;
    assert!(
        m.subject.contains("te ha invitado a Test org"),
        "{}",
        m.subject
    );
    assert!(m.text.contains("lector"), "{}", m.text);
}

#[sqlx::test(migrations = "../migrations")]
async fn an_unverified_address_cannot_accept_an_invitation(pool: PgPool) {
    let smtp = SmtpServer::start();
    let app = mailing_app(pool.clone(), &smtp);
    let team = new_team(&app).await;
    let elsewhere = new_org(&app).await;
    app.post(
        "/api/v1/invitations",
        Some(&team.owner.token),
        json!({ "email": elsewhere.email, "role": "viewer" }),
    )
    .await;
    let m = mail_to(&app, &smtp, &elsewhere.email, 1).await;
    let token = m.token(&link("/accept-invitation")).unwrap();
    let accept = || {
        app.post(
            "/api/v1/invitations/accept",
            Some(&elsewhere.token),
            json!({ "token": token }),
        )
    };
    accept()
        .await
        .assert_problem(StatusCode::FORBIDDEN, "email_unverified");
    sqlx::query("UPDATE users SET email_verified_at = now() WHERE id = $1")
        .bind(elsewhere.user_id)
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(accept().await.status, StatusCode::OK);
}

#[sqlx::test(migrations = "../migrations")]
async fn without_smtp_sign_up_signs_in_and_invitations_answer_their_token(pool: PgPool) {
    let app = TestApp::with_config(pool.clone(), test_config());
    let resp = app
        .post(
            "/api/v1/auth/register",
            None,
            registration("dev@example.com"),
        )
        .await;
    assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.text());
    let session = Session::from_json(&resp.json());
    let me = me(&app, &session.access).await;
    assert_eq!(me["user"]["email_verified"], false);
    assert_eq!(me["mail_delivery"], false);
    let (purpose, body): (Option<String>, String) = sqlx::query_as(
        "SELECT link_purpose, text_body FROM mail_outbox WHERE to_address = 'dev@example.com'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        purpose.as_deref(),
        Some("verify_email"),
        "a verification is queued"
    );
    assert!(body.contains("/app/verify-email#token="), "{body}");
    let resp = app
        .post(
            "/api/v1/invitations",
            Some(&session.access),
            json!({ "email": "guest@example.com", "role": "viewer" }),
        )
        .await;
    assert_eq!(resp.status, StatusCode::CREATED);
    assert!(resp.json()["token"].is_string());
}
