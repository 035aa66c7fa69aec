//! `POST /public/signups`: the public simulator's form — validated, one row per address
//! whatever its case, the same answer for a new and a known address, rate-limited per
//! client address (IPv6 per /64), nothing stored when refused.

use axum::http::StatusCode;
use serde_json::json;
use sqlx::PgPool;

use crate::helpers::TestApp;

const URI: &str = "/api/v1/public/signups";

async fn rows(pool: &PgPool) -> Vec<(String, String, String, i32)> {
    sqlx::query_as("SELECT email, name, company, requests FROM signups ORDER BY email")
        .fetch_all(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn an_address_is_stored_once_and_the_answer_never_says_whether_it_was_known(pool: PgPool) {
    let app = TestApp::new(pool.clone());
    let peer = "198.51.100.7:5000".parse().unwrap();
    let first = app
        .post_from(
            URI,
            peer,
            &[],
            json!({"email": " Ana@Example.com ", "name": "Ana", "source": "simulator"}),
        )
        .await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.text());
    let again = app
        .post_from(
            URI,
            peer,
            &[],
            json!({"email": "ana@example.COM", "company": "Ana Co", "source": "simulator"}),
        )
        .await;
    assert_eq!(again.status, StatusCode::ACCEPTED);
    assert_eq!(
        first.body, again.body,
        "a known address gets the same answer"
    );
    assert_eq!(first.json(), json!({"status": "received"}));
    // One row; an empty name does not erase the one given before.
    assert_eq!(
        rows(&pool).await,
        vec![("ana@example.com".into(), "Ana".into(), "Ana Co".into(), 2)]
    );
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn bad_sign_ups_are_refused_naming_each_field_and_store_nothing(pool: PgPool) {
    let app = TestApp::new(pool.clone());
    let peer = "198.51.100.8:5000".parse().unwrap();
    let bad = app
        .post_from(
            URI,
            peer,
            &[],
            json!({"email": "no-at-sign", "name": "x".repeat(201), "company": "a\u{0}b", "source": "elsewhere"}),
        )
        .await;
    let problem = bad.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["email", "name", "company", "source"]);
    // Unknown fields and missing ones are refused too.
    let unknown = app
        .post_from(
            URI,
            peer,
            &[],
            json!({"email": "a@example.com", "source": "simulator", "admin": true}),
        )
        .await;
    assert!(unknown.status.is_client_error(), "{}", unknown.status);
    let missing = app
        .post_from(URI, peer, &[], json!({"source": "simulator"}))
        .await;
    assert!(missing.status.is_client_error(), "{}", missing.status);
    assert!(rows(&pool).await.is_empty());
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn five_sign_ups_per_address_an_hour_then_429_with_retry_after(pool: PgPool) {
    let app = TestApp::new(pool.clone());
    // Two addresses of one IPv6 /64 share a budget; another /64 has its own.
    let a: std::net::SocketAddr = "[2001:db8:1:2::1]:5000".parse().unwrap();
    let b: std::net::SocketAddr = "[2001:db8:1:2::ffff]:5000".parse().unwrap();
    let other: std::net::SocketAddr = "[2001:db8:9:9::1]:5000".parse().unwrap();
    for i in 0..5 {
        let peer = if i % 2 == 0 { a } else { b };
        let res = app
            .post_from(
                URI,
                peer,
                &[],
                json!({"email": format!("p{i}@example.com"), "source": "simulator"}),
            )
            .await;
        assert_eq!(res.status, StatusCode::ACCEPTED, "{i}: {}", res.text());
    }
    let refused = app
        .post_from(
            URI,
            b,
            &[],
            json!({"email": "p5@example.com", "source": "simulator"}),
        )
        .await;
    refused.assert_problem(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let retry: u64 = refused.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3600).contains(&retry), "{retry}");
    assert_eq!(rows(&pool).await.len(), 5, "the refused one is not stored");
    let elsewhere = app
        .post_from(
            URI,
            other,
            &[],
            json!({"email": "p5@example.com", "source": "simulator"}),
        )
        .await;
    assert_eq!(elsewhere.status, StatusCode::ACCEPTED);
    // A client-chosen X-Forwarded-For does not pick a fresh bucket.
    let forged = app
        .post_from(
            URI,
            a,
            &[("x-forwarded-for", "203.0.113.50")],
            json!({"email": "p6@example.com", "source": "simulator"}),
        )
        .await;
    assert_eq!(forged.status, StatusCode::TOO_MANY_REQUESTS);
}
