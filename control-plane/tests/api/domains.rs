//! Domain ownership (docs/security.md, "Domains: ownership, routing, unpublish"): hosts
//! are pending until proven by DNS TXT (against a local DNS server) or by a file fetched
//! under SSRF rules; only verified hosts reach the snapshot, the editor and the edge's
//! routes; one verified owner per host across organisations; deleting a site tombstones it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, TXT};
use hickory_proto::rr::{RData, Record, RecordType};
use hickory_proto::serialize::binary::BinEncodable;
use samplit_control_plane::{config, publisher};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{
    TEST_INGEST_SECRET, TEST_JWT_SECRET, TEST_SNAPSHOT_SECRET, TestApp, new_team,
};
use crate::sites::create_site;

/// A DNS server on 127.0.0.1 (UDP) answering A and TXT questions from a table; other
/// names get NXDOMAIN.
type Table = HashMap<(String, RecordType), Vec<RData>>;

#[derive(Clone)]
pub(crate) struct LocalDns {
    addr: SocketAddr,
    records: Arc<Mutex<Table>>,
}

impl LocalDns {
    pub(crate) async fn start() -> Self {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let records: Arc<Mutex<Table>> = Arc::default();
        let table = records.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
                    return;
                };
                let Ok(request) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                let mut response = Message::new();
                response
                    .set_id(request.id())
                    .set_message_type(MessageType::Response)
                    .set_op_code(OpCode::Query)
                    .set_recursion_desired(true)
                    .set_recursion_available(true)
                    .set_authoritative(true);
                let mut found_name = false;
                for q in request.queries() {
                    response.add_query(q.clone());
                    let name = q
                        .name()
                        .to_ascii()
                        .trim_end_matches('.')
                        .to_ascii_lowercase();
                    let table = table.lock().unwrap();
                    found_name |= table.keys().any(|(n, _)| *n == name);
                    for rdata in table.get(&(name, q.query_type())).into_iter().flatten() {
                        response.add_answer(Record::from_rdata(
                            q.name().clone(),
                            60,
                            rdata.clone(),
                        ));
                    }
                }
                if !found_name {
                    response.set_response_code(ResponseCode::NXDomain);
                }
                if let Ok(bytes) = response.to_bytes() {
                    let _ = socket.send_to(&bytes, peer).await;
                }
            }
        });
        Self { addr, records }
    }

    pub(crate) fn a(&self, host: &str, ip: &str) {
        let ip: std::net::Ipv4Addr = ip.parse().unwrap();
        self.records
            .lock()
            .unwrap()
            .entry((host.to_owned(), RecordType::A))
            .or_default()
            .push(RData::A(A(ip)));
    }

    fn txt(&self, name: &str, value: &str) {
        self.records
            .lock()
            .unwrap()
            .entry((name.to_owned(), RecordType::TXT))
            .or_default()
            .push(RData::TXT(TXT::new(vec![value.to_owned()])));
    }
}

/// A public-looking address for hosts whose TXT record is checked (never connected to).
const PUBLIC_IP: &str = "93.184.216.34";

pub(crate) fn app_with(pool: PgPool, dns: &LocalDns, extra: &[(&str, String)]) -> TestApp {
    let resolver = dns.addr.to_string();
    let extra: HashMap<String, String> = extra
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    let config = config::from_lookup(move |name| match name {
        "DATABASE_URL" => Some("postgres://unused-in-tests".to_owned()),
        "SAMPLIT_JWT_SECRET" => Some(TEST_JWT_SECRET.to_owned()),
        "SAMPLIT_INGEST_SECRET" => Some(TEST_INGEST_SECRET.to_owned()),
        "SAMPLIT_SNAPSHOT_SECRET" => Some(TEST_SNAPSHOT_SECRET.to_owned()),
        "SAMPLIT_CORS_ORIGINS" => Some("https://admin.example".to_owned()),
        "SAMPLIT_DNS_RESOLVER" => Some(resolver.clone()),
        other => extra.get(other).cloned(),
    })
    .unwrap();
    TestApp::with_config(pool, config)
}

fn domain<'a>(site: &'a Value, host: &str) -> &'a Value {
    site["domain_verification"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["host"] == host)
        .unwrap_or_else(|| panic!("{host} not in {site}"))
}

async fn verify(
    app: &TestApp,
    token: &str,
    site_id: &str,
    host: &str,
    body: Value,
) -> crate::helpers::TestResponse {
    app.post(
        &format!("/api/v1/sites/{site_id}/domains/{host}/verify"),
        Some(token),
        body,
    )
    .await
}

async fn allowed_origins(app: &TestApp, site_id: &str) -> Vec<String> {
    let mut conn = app.pool.acquire().await.unwrap();
    let site = samplit_control_plane::db::sites::all(&mut conn)
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.id.to_string() == site_id)
        .unwrap();
    publisher::build_snapshot(&mut conn, &site)
        .await
        .unwrap()
        .0
        .allowed_origins
}

/// Marks a host verified directly (tests of other modules that need a verified domain).
pub async fn mark_verified(pool: &PgPool, site_id: &str, host: &str) {
    let done = sqlx::query(
        "UPDATE site_domains SET status = 'verified', method = 'dns_txt', verified_at = now()
          WHERE site_id = $1::uuid AND host = $2",
    )
    .bind(site_id)
    .bind(host)
    .execute(pool)
    .await
    .unwrap();
    assert_eq!(
        done.rows_affected(),
        1,
        "{host} is one of the site's domains"
    );
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn a_strangers_site_listing_a_victims_host_does_not_reach_its_snapshot_until_verified(
    pool: PgPool,
) {
    let dns = LocalDns::start().await;
    let app = app_with(pool, &dns, &[]);
    let stranger = new_team(&app).await;
    let site = create_site(&app, &stranger.admin.token, &["shop.victim.com"]).await;
    let site_id = site["id"].as_str().unwrap();
    let d = domain(&site, "shop.victim.com");
    assert_eq!(d["status"], "pending");
    assert_eq!(d["txt_name"], "_samplit.shop.victim.com");
    assert!(
        d["txt_value"]
            .as_str()
            .unwrap()
            .starts_with("samplit-verification=")
    );
    assert_eq!(
        d["file_url"],
        "https://shop.victim.com/.well-known/samplit-verification.txt"
    );
    assert!(
        allowed_origins(&app, site_id).await.is_empty(),
        "a pending host never reaches the edge"
    );

    // The stranger cannot prove it: the victim's DNS has no such record.
    dns.a("shop.victim.com", PUBLIC_IP);
    dns.txt(
        "_samplit.shop.victim.com",
        "samplit-verification=the-victims-own-token",
    );
    let resp = verify(
        &app,
        &stranger.admin.token,
        site_id,
        "shop.victim.com",
        json!({}),
    )
    .await;
    let problem = resp.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let message = problem["errors"][0]["message"].as_str().unwrap();
    assert_eq!(problem["errors"][0]["field"], "dns_txt");
    assert!(
        message.contains("_samplit.shop.victim.com")
            && message.contains(d["txt_value"].as_str().unwrap())
            && message.contains("the-victims-own-token"),
        "says what was looked for and what was found: {message}"
    );
    assert!(allowed_origins(&app, site_id).await.is_empty());
    let site = app
        .get(
            &format!("/api/v1/sites/{site_id}"),
            Some(&stranger.viewer.token),
        )
        .await
        .json();
    assert_eq!(domain(&site, "shop.victim.com")["status"], "pending");
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn a_dns_txt_record_with_the_token_verifies_the_host_and_it_reaches_the_snapshot(
    pool: PgPool,
) {
    let dns = LocalDns::start().await;
    let app = app_with(pool.clone(), &dns, &[]);
    let team = new_team(&app).await;
    let site = create_site(
        &app,
        &team.admin.token,
        &["shop.owner.com", "www.owner.com"],
    )
    .await;
    let site_id = site["id"].as_str().unwrap();
    let value = domain(&site, "shop.owner.com")["txt_value"]
        .as_str()
        .unwrap()
        .to_owned();
    dns.a("shop.owner.com", PUBLIC_IP);
    dns.txt("_samplit.shop.owner.com", "v=spf1 -all");
    dns.txt("_samplit.shop.owner.com", &value);

    let resp = verify(
        &app,
        &team.admin.token,
        site_id,
        "shop.owner.com",
        json!({"method": "dns_txt"}),
    )
    .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    assert_eq!(resp.json()["status"], "verified");
    assert_eq!(resp.json()["method"], "dns_txt");
    assert_eq!(
        allowed_origins(&app, site_id).await,
        vec!["https://shop.owner.com"],
        "only the verified host; www.owner.com is still pending"
    );
    // A route for the host is queued for the edge, naming this site.
    let (key, version): (Option<String>, i64) =
        sqlx::query_as("SELECT site_key, version FROM domain_routes WHERE host = 'shop.owner.com'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(key.as_deref(), site["site_key"].as_str());
    assert!(version >= 1);
    let actions = crate::sites::audit_actions(&pool, team.owner.org_id).await;
    assert!(
        actions.contains(&"site.domain.verify".to_owned()),
        "{actions:?}"
    );
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn a_second_organisation_cannot_verify_a_host_another_holds_without_a_transfer_proof(
    pool: PgPool,
) {
    let dns = LocalDns::start().await;
    let app = app_with(pool.clone(), &dns, &[]);
    let owner = new_team(&app).await;
    let other = new_team(&app).await;
    let first = create_site(&app, &owner.admin.token, &["shop.contested.com"]).await;
    let second = create_site(&app, &other.admin.token, &["shop.contested.com"]).await;
    let (first_id, second_id) = (
        first["id"].as_str().unwrap(),
        second["id"].as_str().unwrap(),
    );
    dns.a("shop.contested.com", PUBLIC_IP);
    dns.txt(
        "_samplit.shop.contested.com",
        domain(&first, "shop.contested.com")["txt_value"]
            .as_str()
            .unwrap(),
    );
    let resp = verify(
        &app,
        &owner.admin.token,
        first_id,
        "shop.contested.com",
        json!({}),
    )
    .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());

    // The second organisation, even with its own proof published, gets 409.
    dns.txt(
        "_samplit.shop.contested.com",
        domain(&second, "shop.contested.com")["txt_value"]
            .as_str()
            .unwrap(),
    );
    let resp = verify(
        &app,
        &other.admin.token,
        second_id,
        "shop.contested.com",
        json!({}),
    )
    .await;
    resp.assert_problem(StatusCode::CONFLICT, "domain_taken");
    assert!(allowed_origins(&app, second_id).await.is_empty());

    // A transfer needs the proof: with it, the host moves and the old site loses it.
    let resp = verify(
        &app,
        &other.admin.token,
        second_id,
        "shop.contested.com",
        json!({"transfer": true}),
    )
    .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    assert_eq!(
        allowed_origins(&app, second_id).await,
        vec!["https://shop.contested.com"]
    );
    assert!(
        allowed_origins(&app, first_id).await.is_empty(),
        "the old site's snapshot drops it"
    );
    let old = app
        .get(
            &format!("/api/v1/sites/{first_id}"),
            Some(&owner.viewer.token),
        )
        .await
        .json();
    assert_eq!(domain(&old, "shop.contested.com")["status"], "pending");
    let route: Option<String> =
        sqlx::query_scalar("SELECT site_key FROM domain_routes WHERE host = 'shop.contested.com'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        route.as_deref(),
        second["site_key"].as_str(),
        "the route names the new owner"
    );
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn development_and_internal_names_are_never_verifiable_without_the_switch(pool: PgPool) {
    let dns = LocalDns::start().await;
    let app = app_with(pool, &dns, &[]);
    let team = new_team(&app).await;
    let hosts = [
        "shop.e2e.example",
        "loop.shop.com",
        "intranet.shop.com",
        "meta.shop.com",
    ];
    let site = create_site(&app, &team.admin.token, &hosts).await;
    let site_id = site["id"].as_str().unwrap();
    dns.a("loop.shop.com", "127.0.0.1");
    dns.a("intranet.shop.com", "10.1.2.3");
    dns.a("meta.shop.com", "169.254.169.254");
    for host in hosts {
        dns.a(host, "127.0.0.1");
        dns.txt(
            &format!("_samplit.{host}"),
            domain(&site, host)["txt_value"].as_str().unwrap(),
        );
    }
    let cases = [
        ("shop.e2e.example", "dns_txt", "development name"),
        ("loop.shop.com", "http_file", "internal addresses"),
        ("intranet.shop.com", "http_file", "private"),
        ("intranet.shop.com", "dns_txt", "private"),
        ("meta.shop.com", "http_file", "link-local"),
    ];
    for (host, method, why) in cases {
        let resp = verify(
            &app,
            &team.admin.token,
            site_id,
            host,
            json!({"method": method}),
        )
        .await;
        let problem = resp.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        let message = problem["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains(why), "{host} by {method}: {message}");
    }
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn with_the_development_switch_a_file_on_a_local_origin_verifies_the_host(pool: PgPool) {
    let dns = LocalDns::start().await;
    // The site's origin: serves the proof file once the test knows the token.
    let served: Arc<Mutex<String>> = Arc::default();
    let body = served.clone();
    let origin = axum::Router::new().route(
        "/.well-known/samplit-verification.txt",
        axum::routing::get(move || {
            let body = body.clone();
            async move { body.lock().unwrap().clone() }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, origin).await.unwrap() });

    let app = app_with(
        pool.clone(),
        &dns,
        &[
            ("SAMPLIT_DEV_ALLOW_LOCAL_DOMAINS", "true".to_owned()),
            ("SAMPLIT_DEV_VERIFY_PORT", port.to_string()),
        ],
    );
    let team = new_team(&app).await;
    let site = create_site(
        &app,
        &team.admin.token,
        &["demo.shop.test", "inside.shop.com"],
    )
    .await;
    let site_id = site["id"].as_str().unwrap();
    dns.a("demo.shop.test", "127.0.0.1");
    dns.a("inside.shop.com", "10.0.0.7");

    // Nothing served yet: 422 saying what was found.
    let resp = verify(
        &app,
        &team.admin.token,
        site_id,
        "demo.shop.test",
        json!({"method": "http_file"}),
    )
    .await;
    let problem = resp.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(problem["errors"][0]["field"], "http_file");

    *served.lock().unwrap() = domain(&site, "demo.shop.test")["txt_value"]
        .as_str()
        .unwrap()
        .to_owned();
    let resp = verify(
        &app,
        &team.admin.token,
        site_id,
        "demo.shop.test",
        json!({"method": "http_file"}),
    )
    .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    assert_eq!(resp.json()["method"], "http_file");
    assert_eq!(
        allowed_origins(&app, site_id).await,
        vec!["https://demo.shop.test"]
    );

    // The switch opens loopback only: a private address stays refused.
    let resp = verify(
        &app,
        &team.admin.token,
        site_id,
        "inside.shop.com",
        json!({"method": "http_file"}),
    )
    .await;
    let problem = resp.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert!(
        problem["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("private")
    );
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn verification_is_for_admins_of_the_sites_organisation_only(pool: PgPool) {
    let dns = LocalDns::start().await;
    let app = app_with(pool, &dns, &[]);
    let team = new_team(&app).await;
    let stranger = new_team(&app).await;
    let site = create_site(&app, &team.admin.token, &["shop.roles.com"]).await;
    let site_id = site["id"].as_str().unwrap();
    for (token, status, why) in [
        (&team.editor.token, StatusCode::FORBIDDEN, "an editor"),
        (&team.viewer.token, StatusCode::FORBIDDEN, "a viewer"),
        (
            &stranger.owner.token,
            StatusCode::NOT_FOUND,
            "another organisation's owner",
        ),
    ] {
        let resp = verify(&app, token, site_id, "shop.roles.com", json!({})).await;
        assert_eq!(resp.status, status, "{why}: {}", resp.text());
    }
    for (path, why) in [
        (
            format!("/api/v1/sites/{site_id}/domains/not-listed.com/verify"),
            "a host the site does not list",
        ),
        (
            format!(
                "/api/v1/sites/{}/domains/shop.roles.com/verify",
                Uuid::new_v4()
            ),
            "an unknown site",
        ),
        (
            "/api/v1/sites/not-a-uuid/domains/shop.roles.com/verify".to_owned(),
            "a malformed id",
        ),
    ] {
        let resp = app.post(&path, Some(&team.admin.token), json!({})).await;
        assert_eq!(resp.status, StatusCode::NOT_FOUND, "{why}: {}", resp.text());
    }
    let resp = verify(
        &app,
        &team.admin.token,
        site_id,
        "shop.roles.com",
        json!({"method": "carrier_pigeon"}),
    )
    .await;
    assert!(
        resp.status.is_client_error(),
        "an unknown method: {}",
        resp.text()
    );
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn removing_a_verified_domain_or_deleting_the_site_queues_tombstones_for_the_edge(
    pool: PgPool,
) {
    let dns = LocalDns::start().await;
    let app = app_with(pool.clone(), &dns, &[]);
    let team = new_team(&app).await;
    let site = create_site(&app, &team.admin.token, &["a.gone.com", "b.gone.com"]).await;
    let site_id = site["id"].as_str().unwrap();
    mark_verified(&pool, site_id, "a.gone.com").await;
    mark_verified(&pool, site_id, "b.gone.com").await;

    let resp = app
        .call_with(
            axum::http::Method::PATCH,
            &format!("/api/v1/sites/{site_id}"),
            Some(&team.admin.token),
            Some(json!({"domains": ["b.gone.com"]})),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    let routes: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT host, site_key FROM domain_routes ORDER BY host")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        routes,
        vec![("a.gone.com".to_owned(), None)],
        "the removed host is tombstoned"
    );

    let resp = app
        .call_with(
            axum::http::Method::DELETE,
            &format!("/api/v1/sites/{site_id}"),
            Some(&team.admin.token),
            None,
            &[("if-match", "\"2\"")],
        )
        .await;
    assert_eq!(resp.status, StatusCode::NO_CONTENT, "{}", resp.text());
    let routes: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT host, site_key FROM domain_routes ORDER BY host")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        routes,
        vec![
            ("a.gone.com".to_owned(), None),
            ("b.gone.com".to_owned(), None)
        ]
    );
    let tombstone: (String, i64) =
        sqlx::query_as("SELECT site_key, version FROM site_tombstones WHERE pushed_at IS NULL")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(tombstone.0, site["site_key"].as_str().unwrap());
    assert_eq!(
        tombstone.1, 2,
        "above any version a push in flight could carry"
    );
}

/// `shopify_install` is what a Shopify install records, never a proof a caller can ask
/// for: the endpoint refuses it and the host stays pending.
#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn the_shopify_install_method_cannot_be_claimed_through_the_verify_endpoint(pool: PgPool) {
    let dns = LocalDns::start().await;
    let app = app_with(pool, &dns, &[]);
    let stranger = new_team(&app).await;
    let site = create_site(&app, &stranger.admin.token, &["someone.myshopify.com"]).await;
    let site_id = site["id"].as_str().unwrap();
    let r = verify(
        &app,
        &stranger.admin.token,
        site_id,
        "someone.myshopify.com",
        json!({ "method": "shopify_install" }),
    )
    .await;
    let body = r.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert!(
        body.to_string().contains("installing the Shopify app"),
        "{body}"
    );
    let site = app
        .get(
            &format!("/api/v1/sites/{site_id}"),
            Some(&stranger.admin.token),
        )
        .await
        .json();
    assert_eq!(domain(&site, "someone.myshopify.com")["status"], "pending");
}
