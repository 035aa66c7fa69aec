// Not every test module uses every helper.
#![allow(dead_code)]

//! Shared test plumbing: a test app over a fresh database, request helpers, and members
//! of organisations with a given role (inserted directly, with a real access token).

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use samplit_control_plane::auth::Role;
use samplit_control_plane::config::{self, Config};
use samplit_control_plane::{AppState, router};
use serde_json::Value;
use sqlx::PgPool;
use tower::ServiceExt;
use uuid::Uuid;

/// Test-only secrets (32+ bytes); production has no defaults.
pub const TEST_JWT_SECRET: &str = "test-jwt-secret-0123456789abcdef0123456789";
pub const TEST_INGEST_SECRET: &str = "test-ingest-secret-0123456789abcdef01234567";
pub const TEST_SNAPSHOT_SECRET: &str = "test-snapshot-secret-0123456789abcdef012345";

pub fn test_config() -> Config {
    test_config_with(&[])
}

/// The test configuration with some variables set (or overridden).
pub fn test_config_with(extra: &[(&str, &str)]) -> Config {
    config::from_lookup(|name| {
        if let Some((_, value)) = extra.iter().find(|(k, _)| *k == name) {
            return Some((*value).to_owned());
        }
        match name {
            "DATABASE_URL" => Some("postgres://unused-in-tests"),
            "SAMPLIT_JWT_SECRET" => Some(TEST_JWT_SECRET),
            "SAMPLIT_INGEST_SECRET" => Some(TEST_INGEST_SECRET),
            "SAMPLIT_SNAPSHOT_SECRET" => Some(TEST_SNAPSHOT_SECRET),
            "SAMPLIT_CORS_ORIGINS" => Some("https://admin.example"),
            _ => None,
        }
        .map(str::to_owned)
    })
    .expect("the test configuration is valid")
}

pub struct TestApp {
    pub pool: PgPool,
    pub state: AppState,
}

pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl TestResponse {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts a problem+json error with this status and code, and returns its body.
    #[track_caller]
    pub fn assert_problem(&self, status: StatusCode, code: &str) -> Value {
        assert_eq!(self.status, status, "body: {}", self.text());
        assert_eq!(
            self.headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
            Some("application/problem+json"),
            "body: {}",
            self.text()
        );
        let body = self.json();
        assert_eq!(body["code"], code, "body: {body}");
        assert!(
            body["request_id"].is_string(),
            "a problem carries the request id: {body}"
        );
        body
    }
}

impl TestApp {
    pub fn new(pool: PgPool) -> Self {
        Self::with_config(pool, test_config())
    }

    pub fn with_config(pool: PgPool, config: Config) -> Self {
        let state = AppState::new(pool.clone(), config).expect("metrics register");
        Self { pool, state }
    }

    /// Sends one request through the whole router (middleware included).
    /// Every response is checked against the OpenAPI document ([`crate::contract`]).
    pub async fn send(&self, request: Request<Body>) -> TestResponse {
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let response = router(self.state.clone())
            .oneshot(request)
            .await
            .expect("the router is infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body reads")
            .to_bytes()
            .to_vec();
        crate::contract::check(
            &method,
            &path,
            status,
            headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
            &body,
        );
        TestResponse {
            status,
            headers,
            body,
        }
    }

    /// A JSON request (or none with `body: None`), with an optional bearer token.
    pub async fn call(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> TestResponse {
        let mut builder = Request::builder().method(method).uri(uri);
        if let Some(token) = token {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = match body {
            Some(json) => builder
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(json.to_string())),
            None => builder.body(Body::empty()),
        }
        .expect("a valid request");
        self.send(request).await
    }

    pub async fn get(&self, uri: &str, token: Option<&str>) -> TestResponse {
        self.call(Method::GET, uri, token, None).await
    }

    pub async fn post(&self, uri: &str, token: Option<&str>, body: Value) -> TestResponse {
        self.call(Method::POST, uri, token, Some(body)).await
    }
}

/// A user who is a member of an organisation, with a valid access token.
#[derive(Debug, Clone)]
pub struct Member {
    pub user_id: Uuid,
    pub org_id: Uuid,
    pub email: String,
    pub token: String,
}

/// Creates an organisation and its owner.
pub async fn new_org(app: &TestApp) -> Member {
    let org_id = Uuid::new_v4();
    sqlx::query("INSERT INTO organizations (id, name) VALUES ($1, 'Test org')")
        .bind(org_id)
        .execute(&app.pool)
        .await
        .unwrap();
    add_member(app, org_id, Role::Owner).await
}

/// Adds a new user with `role` to `org_id`, logged in (a live session and access token).
pub async fn add_member(app: &TestApp, org_id: Uuid, role: Role) -> Member {
    let user_id = Uuid::new_v4();
    let email = format!(
        "{}-{}@example.com",
        role.as_str(),
        &user_id.simple().to_string()[..8]
    );
    sqlx::query("INSERT INTO users (id, email, password_hash) VALUES ($1, $2, 'not-a-login-hash')")
        .bind(user_id)
        .bind(&email)
        .execute(&app.pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO memberships (org_id, user_id, role) VALUES ($1, $2, $3)")
        .bind(org_id)
        .bind(user_id)
        .bind(role.as_str())
        .execute(&app.pool)
        .await
        .unwrap();
    let session_id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO auth_sessions (id, user_id, org_id, expires_at) VALUES ($1, $2, $3, now() + interval '1 day')",
    )
    .bind(session_id)
    .bind(user_id)
    .bind(org_id)
    .execute(&app.pool)
    .await
    .unwrap();
    let token = app
        .state
        .jwt
        .issue(
            user_id,
            org_id,
            session_id,
            std::time::Duration::from_secs(600),
        )
        .unwrap();
    Member {
        user_id,
        org_id,
        email,
        token,
    }
}

/// An organisation with one member of each role.
pub struct Team {
    pub owner: Member,
    pub admin: Member,
    pub editor: Member,
    pub viewer: Member,
}

pub async fn new_team(app: &TestApp) -> Team {
    let owner = new_org(app).await;
    let org = owner.org_id;
    Team {
        admin: add_member(app, org, Role::Admin).await,
        editor: add_member(app, org, Role::Editor).await,
        viewer: add_member(app, org, Role::Viewer).await,
        owner,
    }
}

// ---------------------------------------------------------------------------------------
// Accounts helpers (registration and login through the API).

/// A password that passes validation.
pub const GOOD_PASSWORD: &str = "correct horse battery staple";

impl TestApp {
    pub async fn patch(&self, uri: &str, token: Option<&str>, body: Value) -> TestResponse {
        self.call(Method::PATCH, uri, token, Some(body)).await
    }

    pub async fn delete(&self, uri: &str, token: Option<&str>) -> TestResponse {
        self.call(Method::DELETE, uri, token, None).await
    }

    /// A JSON POST as if from TCP peer `peer`, with extra headers.
    pub async fn post_from(
        &self,
        uri: &str,
        peer: std::net::SocketAddr,
        headers: &[(&str, &str)],
        body: Value,
    ) -> TestResponse {
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .extension(axum::extract::ConnectInfo(peer));
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        self.send(builder.body(Body::from(body.to_string())).unwrap())
            .await
    }

    /// Sends a raw body (for malformed JSON and content-type cases).
    pub async fn post_raw(
        &self,
        uri: &str,
        content_type: Option<&str>,
        body: &str,
    ) -> TestResponse {
        let mut builder = Request::builder().method(Method::POST).uri(uri);
        if let Some(ct) = content_type {
            builder = builder.header(header::CONTENT_TYPE, ct);
        }
        self.send(builder.body(Body::from(body.to_owned())).unwrap())
            .await
    }
}

/// Tokens of a registered (or logged-in) user.
#[derive(Debug, Clone)]
pub struct Session {
    pub access: String,
    pub refresh: String,
    pub org_id: Uuid,
}

impl Session {
    pub fn from_json(body: &Value) -> Self {
        Self {
            access: body["access_token"]
                .as_str()
                .expect("access_token")
                .to_owned(),
            refresh: body["refresh_token"]
                .as_str()
                .expect("refresh_token")
                .to_owned(),
            org_id: body["organization_id"]
                .as_str()
                .expect("organization_id")
                .parse()
                .unwrap(),
        }
    }
}

/// Registers `email` with [`GOOD_PASSWORD`] and a new organisation.
pub async fn register(app: &TestApp, email: &str) -> Session {
    let resp = app
        .post(
            "/api/v1/auth/register",
            None,
            serde_json::json!({
                "email": email,
                "password": GOOD_PASSWORD,
                "name": "Test User",
                "organization_name": "Org of ".to_owned() + email,
            }),
        )
        .await;
    assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.text());
    Session::from_json(&resp.json())
}

/// Logs in and returns the response (not asserted).
pub async fn login(app: &TestApp, email: &str, password: &str) -> TestResponse {
    app.post(
        "/api/v1/auth/login",
        None,
        serde_json::json!({ "email": email, "password": password }),
    )
    .await
}

/// Creates an API key with `role` as `creator` and returns (id, key).
pub async fn create_api_key(
    app: &TestApp,
    creator: &str,
    name: &str,
    role: Role,
) -> (Uuid, String) {
    let resp = app
        .post(
            "/api/v1/api-keys",
            Some(creator),
            serde_json::json!({ "name": name, "role": role.as_str() }),
        )
        .await;
    assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.text());
    let body = resp.json();
    (
        body["id"].as_str().unwrap().parse().unwrap(),
        body["key"].as_str().unwrap().to_owned(),
    )
}
impl TestApp {
    /// Like [`TestApp::call`], with extra request headers (e.g. `If-Match`).
    pub async fn call_with(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> TestResponse {
        let mut builder = Request::builder().method(method).uri(uri);
        if let Some(token) = token {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = match body {
            Some(json) => builder
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(json.to_string())),
            None => builder.body(Body::empty()),
        }
        .expect("a valid request");
        self.send(request).await
    }

    /// A request with a raw (possibly malformed) JSON body.
    pub async fn call_raw(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: &str,
    ) -> TestResponse {
        let mut builder = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(token) = token {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        self.send(
            builder
                .body(Body::from(body.to_owned()))
                .expect("a valid request"),
        )
        .await
    }
}

impl TestResponse {
    /// The `ETag` header's value (e.g. `"1"`, quotes included).
    pub fn etag(&self) -> String {
        self.headers
            .get(header::ETAG)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("no ETag header: {}", self.text()))
            .to_owned()
    }
}
