//! The Shopify app's endpoints, in process: the install's signed-query checks and state,
//! session tokens, and webhooks (HMAC, deduplication, the signed forward of an order to
//! a loopback edge that verifies it as the Worker does, compliance topics). The whole
//! flow against the Shopify stand-in, the Worker and a browser is
//! `integrations/shopify/test/shopify.test.mjs`.

use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use samplit_control_plane::shopify::protocol;
use serde_json::{Value, json};
use sha2::Sha256;
use sqlx::PgPool;

use crate::fixtures::{batch, exposure, ingest_ok, running};
use crate::helpers::{TEST_SNAPSHOT_SECRET, TestApp, TestResponse, test_config_with};

const API_KEY: &str = "test-client-id";
const API_SECRET: &str = "shpss_test_secret_0123456789abcdef0123456789";
const SHOP: &str = "samplit-test.myshopify.com";
const SALT: &str = "00112233445566778899aabbccddeeff";

fn app_with(pool: PgPool, edge_url: &str) -> TestApp {
    let config = test_config_with(&[
        ("SAMPLIT_SHOPIFY_API_KEY", API_KEY),
        ("SAMPLIT_SHOPIFY_API_SECRET", API_SECRET),
        (
            "SAMPLIT_SHOPIFY_TOKEN_KEYS",
            "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        ),
        ("SAMPLIT_PUBLIC_URL", "https://app.samplit.test"),
        ("SAMPLIT_EDGE_URL", edge_url),
    ]);
    TestApp::with_config(pool, config)
}

/// A loopback edge that checks the signature the way the Worker does and records the
/// bodies it accepted; answers `status` (shared, so a test can bring it "down").
struct Edge {
    url: String,
    accepted: Arc<Mutex<Vec<Value>>>,
    status: Arc<Mutex<u16>>,
}

async fn edge(site_key: &str) -> Edge {
    let accepted: Arc<Mutex<Vec<Value>>> = Arc::default();
    let status = Arc::new(Mutex::new(202u16));
    let (acc, st, key) = (accepted.clone(), status.clone(), site_key.to_owned());
    let handler = move |headers: HeaderMap, body: Bytes| {
        let (acc, st, key) = (acc.clone(), st.clone(), key.clone());
        async move {
            let code = *st.lock().unwrap();
            if code != 202 {
                return StatusCode::from_u16(code).unwrap();
            }
            let secret = samplit_engine::server_call::server_secret(
                TEST_SNAPSHOT_SECRET.as_bytes(),
                &key,
                SALT,
            );
            let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            if samplit_engine::server_call::verify(
                &secret,
                h("x-samplit-timestamp"),
                h("x-samplit-signature"),
                now,
                "POST",
                "/v1/events",
                &body,
            )
            .is_err()
            {
                return StatusCode::UNAUTHORIZED;
            }
            acc.lock()
                .unwrap()
                .push(serde_json::from_slice(&body).unwrap());
            StatusCode::ACCEPTED
        }
    };
    let router = axum::Router::new().route("/v1/events", axum::routing::post(handler));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    Edge {
        url,
        accepted,
        status,
    }
}

/// An installed shop (as the install leaves it) on a fresh organisation's site with a
/// running experiment; answers the app, the edge, the site and the experiment.
async fn installed(
    pool: PgPool,
) -> (
    TestApp,
    Edge,
    crate::fixtures::Site,
    crate::fixtures::Experiment,
    String,
) {
    let setup = TestApp::new(pool.clone());
    let (org, s, x) = running(&setup, "single", &[2]).await;
    sqlx::query("UPDATE sites SET server_secret_salt = $2 WHERE id = $1")
        .bind(s.id)
        .bind(SALT)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO shopify_shops (shop, org_id, site_id, created_org, scope) VALUES ($1, $2, $3, false, 'read_orders')",
    )
    .bind(SHOP)
    .bind(org.org_id)
    .bind(s.id)
    .execute(&pool)
    .await
    .unwrap();
    let e = edge(&s.key).await;
    let app = app_with(pool, &e.url);
    (app, e, s, x, org.token)
}

fn webhook_hmac(body: &[u8]) -> String {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(API_SECRET.as_bytes()).unwrap();
    m.update(body);
    base64::engine::general_purpose::STANDARD.encode(m.finalize().into_bytes())
}

async fn webhook(
    app: &TestApp,
    topic: &str,
    id: &str,
    payload: &Value,
    hmac: Option<&str>,
) -> TestResponse {
    let body = payload.to_string();
    let mut req = Request::builder()
        .method(Method::POST)
        .uri("/shopify/webhooks")
        .header(header::CONTENT_TYPE, "application/json")
        .header("X-Shopify-Topic", topic)
        .header("X-Shopify-Shop-Domain", SHOP)
        .header("X-Shopify-Webhook-Id", id)
        .header("X-Shopify-API-Version", "2025-10");
    let signed = webhook_hmac(body.as_bytes());
    if let Some(h) = hmac.or(Some(&signed)).filter(|h| !h.is_empty()) {
        req = req.header("X-Shopify-Hmac-Sha256", h);
    }
    app.send(req.body(Body::from(body)).unwrap()).await
}

fn order(id: u64, visitor: Option<&str>, total: &str) -> Value {
    let attributes: Vec<Value> = visitor
        .map(|v| json!({ "name": "_samplit_vid", "value": v }))
        .into_iter()
        .collect();
    json!({
        "id": id, "admin_graphql_api_id": format!("gid://shopify/Order/{id}"),
        "total_price": total, "currency": "EUR", "note_attributes": attributes,
    })
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&app.pool).await.unwrap()
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn without_the_app_configured_its_routes_answer_404(pool: PgPool) {
    let app = TestApp::new(pool);
    let r = app.get("/shopify/auth?shop=a.myshopify.com", None).await;
    r.assert_problem(StatusCode::NOT_FOUND, "shopify_disabled");
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn a_webhook_with_a_bad_or_missing_hmac_is_401_and_changes_nothing(pool: PgPool) {
    let (app, edge, ..) = installed(pool).await;
    let payload = order(1, Some("v1"), "10.00");
    for hmac in ["", "AAAA", &webhook_hmac(b"another body")] {
        let r = webhook(&app, "orders/create", "w-bad", &payload, Some(hmac)).await;
        r.assert_problem(StatusCode::UNAUTHORIZED, "bad_hmac");
    }
    assert_eq!(
        count(&app, "SELECT count(*) FROM shopify_webhook_deliveries").await,
        0
    );
    assert_eq!(count(&app, "SELECT count(*) FROM shopify_orders").await, 0);
    assert!(edge.accepted.lock().unwrap().is_empty());
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn an_order_is_forwarded_signed_once_whatever_the_deliveries(pool: PgPool) {
    let (app, edge, s, ..) = installed(pool).await;
    let payload = order(1001, Some("visitor-1"), "59.90");
    let r = webhook(&app, "orders/create", "w-1", &payload, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    {
        let got = edge.accepted.lock().unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(
            got[0],
            json!({
                "site_key": s.key, "visitor_id": "visitor-1",
                "events": [{ "type": "conversion", "goal": "purchase", "value": 59.9,
                             "currency": "EUR", "id": "shopify-order:1001" }],
            })
        );
    }
    // Shopify retries the same delivery; another delivery of the same order comes too.
    let again = webhook(&app, "orders/create", "w-1", &payload, None).await;
    assert_eq!(again.status, StatusCode::OK);
    let other = webhook(&app, "orders/create", "w-2", &payload, None).await;
    assert_eq!(other.status, StatusCode::OK);
    assert_eq!(edge.accepted.lock().unwrap().len(), 1);
    assert_eq!(count(&app, "SELECT count(*) FROM shopify_orders").await, 1);
    let metrics = app.get("/metrics", None).await.text();
    assert!(
        metrics.contains(r#"samplit_shopify_orders_total{outcome="forwarded"} 1"#),
        "{metrics}"
    );
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn an_order_without_a_visitor_id_is_recorded_and_counted_nowhere(pool: PgPool) {
    let (app, edge, ..) = installed(pool).await;
    let r = webhook(&app, "orders/create", "w-1", &order(7, None, "5.00"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(edge.accepted.lock().unwrap().is_empty());
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM shopify_orders WHERE order_id = 7 AND visitor_id IS NULL"
        )
        .await,
        1
    );
    let metrics = app.get("/metrics", None).await.text();
    assert!(
        metrics.contains(r#"samplit_shopify_orders_total{outcome="no_visitor"} 1"#),
        "{metrics}"
    );
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn an_edge_failure_answers_503_so_shopify_retries_and_nothing_is_lost(pool: PgPool) {
    let (app, edge, ..) = installed(pool).await;
    *edge.status.lock().unwrap() = 503;
    let payload = order(42, Some("visitor-9"), "12.00");
    let r = webhook(&app, "orders/create", "w-1", &payload, None).await;
    r.assert_problem(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    // Nothing recorded: the retry is processed in full.
    assert_eq!(
        count(&app, "SELECT count(*) FROM shopify_webhook_deliveries").await,
        0
    );
    assert_eq!(count(&app, "SELECT count(*) FROM shopify_orders").await, 0);
    *edge.status.lock().unwrap() = 202;
    let retry = webhook(&app, "orders/create", "w-1", &payload, None).await;
    assert_eq!(retry.status, StatusCode::OK, "{}", retry.text());
    assert_eq!(edge.accepted.lock().unwrap().len(), 1);
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn a_malformed_order_is_400_and_not_recorded(pool: PgPool) {
    let (app, ..) = installed(pool).await;
    let mut bad = order(3, Some("v"), "ten euros");
    let r = webhook(&app, "orders/create", "w-1", &bad, None).await;
    r.assert_problem(StatusCode::BAD_REQUEST, "bad_request");
    bad["total_price"] = json!("10.00");
    bad["currency"] = json!("euro");
    let r = webhook(&app, "orders/create", "w-2", &bad, None).await;
    r.assert_problem(StatusCode::BAD_REQUEST, "bad_request");
    assert_eq!(
        count(&app, "SELECT count(*) FROM shopify_webhook_deliveries").await,
        0
    );
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn uninstall_pauses_running_experiments_unroutes_and_forgets_the_token(pool: PgPool) {
    let (app, _edge, s, x, _token) = installed(pool).await;
    sqlx::query("UPDATE shopify_shops SET token_key_id = 'k1', token_nonce = '\\x00', token_ciphertext = '\\x00' WHERE shop = $1")
        .bind(SHOP)
        .execute(&app.pool)
        .await
        .unwrap();
    let r = webhook(
        &app,
        "app/uninstalled",
        "w-u",
        &json!({ "id": 1, "myshopify_domain": SHOP }),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let status: String = sqlx::query_scalar("SELECT status FROM experiments WHERE id = $1")
        .bind(x.id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(status, "paused");
    let sealed: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT token_ciphertext FROM shopify_shops WHERE shop = $1")
            .bind(SHOP)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(sealed.is_none());
    let tombstones: i64 =
        sqlx::query_scalar("SELECT count(*) FROM site_tombstones WHERE site_key = $1")
            .bind(&s.key)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(tombstones, 1);
    let audit: i64 = count(
        &app,
        "SELECT count(*) FROM audit_log WHERE action = 'experiment.pause'",
    )
    .await;
    assert_eq!(audit, 1);
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn compliance_webhooks_report_and_erase_what_samplit_holds(pool: PgPool) {
    let (app, _edge, s, x, token) = installed(pool).await;
    ingest_ok(
        &app,
        &batch(vec![exposure("e1", &s, x.id, x.arms[0], "visitor-1")]),
    )
    .await;
    webhook(
        &app,
        "orders/create",
        "w-1",
        &order(501, Some("visitor-1"), "20.00"),
        None,
    )
    .await;
    webhook(
        &app,
        "orders/create",
        "w-2",
        &order(502, Some("visitor-2"), "30.00"),
        None,
    )
    .await;

    let request = json!({
        "shop_id": 1, "shop_domain": SHOP, "orders_requested": [501],
        "customer": { "id": 77, "email": "c@example.com" }, "data_request": { "id": 9 },
    });
    let r = webhook(&app, "customers/data_request", "w-3", &request, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let list = app.get("/api/v1/shopify/data-requests", Some(&token)).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text());
    let list = list.json();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["customer_id"], 77);
    assert_eq!(
        list[0]["data"]["orders"][0]["visitor_id"], "visitor-1",
        "{list}"
    );
    assert_eq!(list[0]["data"]["orders"].as_array().unwrap().len(), 1);
    // Another organisation sees none of it.
    let stranger = crate::helpers::new_org(&app).await;
    let theirs = app
        .get("/api/v1/shopify/data-requests", Some(&stranger.token))
        .await
        .json();
    assert_eq!(theirs, json!([]));

    let redact = json!({ "shop_id": 1, "shop_domain": SHOP, "customer": { "id": 77 }, "orders_to_redact": [501] });
    let r = webhook(&app, "customers/redact", "w-4", &redact, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM shopify_orders WHERE order_id = 501 AND visitor_id IS NULL"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM assignments WHERE visitor_id = 'visitor-1'"
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM assignments WHERE visitor_id LIKE 'redacted-%'"
        )
        .await,
        1
    );
    // The other customer's order keeps its link.
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM shopify_orders WHERE order_id = 502 AND visitor_id = 'visitor-2'"
        )
        .await,
        1
    );

    let r = webhook(
        &app,
        "shop/redact",
        "w-5",
        &json!({ "shop_id": 1, "shop_domain": SHOP }),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let sites: i64 = sqlx::query_scalar("SELECT count(*) FROM sites WHERE id = $1")
        .bind(s.id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(sites, 0);
    assert_eq!(count(&app, "SELECT count(*) FROM shopify_orders").await, 0);
    assert_eq!(count(&app, "SELECT count(*) FROM shopify_shops").await, 0);
    // The organisation was not the install's: it stays.
    assert_eq!(count(&app, "SELECT count(*) FROM organizations").await, 2);
}

fn signed_query(pairs: &[(&str, &str)]) -> String {
    let owned: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let hmac = protocol::sign_query(API_SECRET.as_bytes(), &owned);
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        q.append_pair(k, v);
    }
    q.append_pair("hmac", &hmac);
    q.finish()
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn install_starts_only_for_a_valid_shop_with_a_valid_hmac(pool: PgPool) {
    let app = app_with(pool, "http://127.0.0.1:9");
    for shop in [
        "evil.example.com",
        "x.myshopify.com.evil.com",
        "X.myshopify.com",
    ] {
        let q = signed_query(&[("shop", shop), ("timestamp", "1700000000")]);
        let r = app.get(&format!("/shopify/auth?{q}"), None).await;
        r.assert_problem(StatusCode::BAD_REQUEST, "invalid_shop");
    }
    let r = app
        .get(&format!("/shopify/auth?shop={SHOP}&timestamp=1"), None)
        .await;
    r.assert_problem(StatusCode::UNAUTHORIZED, "bad_hmac");
    let q =
        signed_query(&[("shop", SHOP), ("timestamp", "1")]).replace("timestamp=1", "timestamp=2");
    let r = app.get(&format!("/shopify/auth?{q}"), None).await;
    r.assert_problem(StatusCode::UNAUTHORIZED, "bad_hmac");

    let q = signed_query(&[("shop", SHOP), ("timestamp", "1700000000")]);
    let r = app.get(&format!("/shopify/auth?{q}"), None).await;
    assert_eq!(r.status, StatusCode::FOUND, "{}", r.text());
    let location = url::Url::parse(r.headers[header::LOCATION].to_str().unwrap()).unwrap();
    assert_eq!(location.host_str(), Some(SHOP));
    assert_eq!(location.scheme(), "https");
    assert_eq!(location.path(), "/admin/oauth/authorize");
    let params: std::collections::HashMap<String, String> =
        location.query_pairs().into_owned().collect();
    assert_eq!(params["client_id"], API_KEY);
    assert_eq!(
        params["scope"],
        "read_orders,write_pixels,read_customer_events"
    );
    assert_eq!(
        params["redirect_uri"],
        "https://app.samplit.test/shopify/auth/callback"
    );
    let cookie = r.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(
        cookie.starts_with(&format!("samplit_shopify_state={}", params["state"])),
        "{cookie}"
    );
    for attr in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/shopify"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    // The secret is nowhere in what goes to the browser.
    assert!(!location.as_str().contains(API_SECRET));
}

async fn callback(app: &TestApp, query: &str, cookie: Option<&str>) -> TestResponse {
    let mut req = Request::builder().uri(format!("/shopify/auth/callback?{query}"));
    if let Some(c) = cookie {
        req = req.header(header::COOKIE, c);
    }
    app.send(req.body(Body::empty()).unwrap()).await
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn the_callback_needs_this_browsers_unused_state_for_this_shop(pool: PgPool) {
    let app = app_with(pool, "http://127.0.0.1:9");
    let start = |shop: &'static str| {
        let app = &app;
        async move {
            let q = signed_query(&[("shop", shop), ("timestamp", "1700000000")]);
            let r = app.get(&format!("/shopify/auth?{q}"), None).await;
            let location = url::Url::parse(r.headers[header::LOCATION].to_str().unwrap()).unwrap();
            location
                .query_pairs()
                .find(|(k, _)| k == "state")
                .unwrap()
                .1
                .into_owned()
        }
    };
    let state = start(SHOP).await;
    let cookie = format!("samplit_shopify_state={state}");
    let cb = |shop: &str, state: &str| {
        signed_query(&[
            ("code", "abc"),
            ("shop", shop),
            ("state", state),
            ("timestamp", "1700000001"),
        ])
    };

    // No cookie, another browser's cookie, a tampered state.
    callback(&app, &cb(SHOP, &state), None)
        .await
        .assert_problem(StatusCode::FORBIDDEN, "bad_state");
    callback(&app, &cb(SHOP, &state), Some("samplit_shopify_state=other"))
        .await
        .assert_problem(StatusCode::FORBIDDEN, "bad_state");
    let tampered = format!("{}0", &state[..state.len() - 1]);
    callback(
        &app,
        &cb(SHOP, &tampered),
        Some(&format!("samplit_shopify_state={tampered}")),
    )
    .await
    .assert_problem(StatusCode::FORBIDDEN, "bad_state");
    // The state of one shop presented for another.
    callback(&app, &cb("other-shop.myshopify.com", &state), Some(&cookie))
        .await
        .assert_problem(StatusCode::FORBIDDEN, "bad_state");
    // That attempt consumed it: the right shop cannot use it now either.
    callback(&app, &cb(SHOP, &state), Some(&cookie))
        .await
        .assert_problem(StatusCode::FORBIDDEN, "bad_state");
    // A bad hmac is refused before the state is looked at.
    let fresh = start(SHOP).await;
    let unsigned = format!("code=abc&shop={SHOP}&state={fresh}&timestamp=1&hmac=00");
    callback(
        &app,
        &unsigned,
        Some(&format!("samplit_shopify_state={fresh}")),
    )
    .await
    .assert_problem(StatusCode::UNAUTHORIZED, "bad_hmac");
    // A good state whose code Shopify cannot be asked about (nothing listens on the
    // development origin here): refused upstream, not a 500. (Exchanges that succeed are
    // proven against the stand-in.)
    let q = cb(SHOP, &fresh);
    let r = callback(&app, &q, Some(&format!("samplit_shopify_state={fresh}"))).await;
    r.assert_problem(StatusCode::BAD_GATEWAY, "shopify_unavailable");
}

fn session_token(claims: Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn the_embedded_api_refuses_bad_session_tokens(pool: PgPool) {
    let app = app_with(pool, "http://127.0.0.1:9");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let good = json!({ "iss": format!("https://{SHOP}/admin"), "dest": format!("https://{SHOP}"),
        "aud": API_KEY, "sub": "1", "exp": now + 60, "nbf": now - 1, "iat": now - 1 });
    let mut wrong_aud = good.clone();
    wrong_aud["aud"] = json!("another-app");
    let mut expired = good.clone();
    expired["exp"] = json!(now - 120);
    let mut foreign_dest = good.clone();
    foreign_dest["dest"] = json!("https://evil.example.com");
    foreign_dest["iss"] = json!("https://evil.example.com/admin");
    let cases = [
        None,
        Some(session_token(
            good.clone(),
            "not-the-app-secret-0123456789abcdef",
        )),
        Some(session_token(wrong_aud, API_SECRET)),
        Some(session_token(expired, API_SECRET)),
        Some(session_token(foreign_dest, API_SECRET)),
        Some("not.a.jwt".to_owned()),
    ];
    for token in cases {
        let r = app.get("/shopify/api/overview", token.as_deref()).await;
        r.assert_problem(StatusCode::UNAUTHORIZED, "invalid_session_token");
    }
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn the_embedded_page_is_framed_only_by_the_shops_admin(pool: PgPool) {
    let app = app_with(pool, "http://127.0.0.1:9");
    let r = app.get(&format!("/shopify/app?shop={SHOP}"), None).await;
    assert_eq!(r.status, StatusCode::OK);
    let csp = r.headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(
        csp.contains(&format!(
            "frame-ancestors https://{SHOP} https://admin.shopify.com"
        )),
        "{csp}"
    );
    assert!(r.text().contains(&format!(
        r#"<meta name="shopify-api-key" content="{API_KEY}">"#
    )));
    let r = app.get("/shopify/app?shop=evil.example.com", None).await;
    r.assert_problem(StatusCode::BAD_REQUEST, "invalid_shop");
}
