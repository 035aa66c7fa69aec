//! `GET /api/v1/experiments`: pages (`limit`, `offset`, stable newest-first order,
//! `X-Total-Count`), filters (`site_id`, `status`, `q`) alone and together, the search
//! text matched literally, each bad parameter a 422 naming it, and another
//! organisation's experiments never listed nor counted.

use axum::http::{Method, StatusCode};
use serde_json::Value;
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::fixtures::site;
use crate::helpers::{TestApp, TestResponse, new_org, new_team};

/// Inserts an experiment created `age_secs` before `base` (equal ages: equal
/// `created_at`, so only the id orders them).
async fn insert(
    app: &TestApp,
    org_id: Uuid,
    site_id: Uuid,
    name: &str,
    status: &str,
    base: OffsetDateTime,
    age_secs: i64,
) -> Uuid {
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO experiments (id, org_id, site_id, name, kind, status, allocator, seed, created_at)
         VALUES ($1, $2, $3, $4, 'single', $5, '{\"kind\": \"fixed_split\"}', 'seed', $6)",
    )
    .bind(id)
    .bind(org_id)
    .bind(site_id)
    .bind(name)
    .bind(status)
    .bind(base - time::Duration::seconds(age_secs))
    .execute(&app.pool)
    .await
    .unwrap();
    id
}

/// A fixed instant with whole seconds (PostgreSQL keeps microseconds).
fn base() -> OffsetDateTime {
    OffsetDateTime::now_utc().replace_nanosecond(0).unwrap()
}

fn ids(resp: &TestResponse) -> Vec<Uuid> {
    resp.json()
        .as_array()
        .unwrap_or_else(|| panic!("a JSON array: {}", resp.text()))
        .iter()
        .map(|e| e["id"].as_str().unwrap().parse().unwrap())
        .collect()
}

fn names(resp: &TestResponse) -> Vec<String> {
    resp.json()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_owned())
        .collect()
}

#[track_caller]
fn total(resp: &TestResponse) -> i64 {
    resp.headers
        .get("x-total-count")
        .unwrap_or_else(|| panic!("no X-Total-Count: {}", resp.text()))
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

async fn list(app: &TestApp, token: &str, query: &str) -> TestResponse {
    let resp = app
        .get(&format!("/api/v1/experiments{query}"), Some(token))
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{query}: {}", resp.text());
    resp
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn experiments_come_in_stable_newest_first_pages_with_the_total_count(pool: PgPool) {
    let app = TestApp::new(pool);
    let team = new_team(&app).await;
    let s = site(&app, team.owner.org_id).await;
    let base = base();
    // Ages 0..7 seconds, three of them created at the same instant (age 3).
    let mut made: Vec<(i64, Uuid)> = Vec::new();
    for (n, age) in [5, 3, 0, 3, 6, 1, 3].into_iter().enumerate() {
        let id = insert(
            &app,
            team.owner.org_id,
            s.id,
            &format!("x{n}"),
            "draft",
            base,
            age,
        )
        .await;
        made.push((age, id));
    }
    // Newest first; at equal times, by id.
    made.sort();
    let expected: Vec<Uuid> = made.iter().map(|(_, id)| *id).collect();

    let all = list(&app, &team.viewer.token, "").await;
    assert_eq!(ids(&all), expected, "no parameters: everything, in order");
    assert_eq!(total(&all), 7);

    let mut paged = Vec::new();
    for offset in [0, 3, 6] {
        let page = list(
            &app,
            &team.viewer.token,
            &format!("?limit=3&offset={offset}"),
        )
        .await;
        assert_eq!(total(&page), 7, "offset {offset}");
        assert_eq!(ids(&page).len(), if offset == 6 { 1 } else { 3 });
        paged.extend(ids(&page));
    }
    assert_eq!(
        paged, expected,
        "pages add up to the whole list, nothing twice"
    );
    // The same page twice is the same page (ties included).
    let again = list(&app, &team.viewer.token, "?limit=3&offset=3").await;
    assert_eq!(ids(&again), expected[3..6]);

    // Past the end: an empty array, still the total.
    let past = list(&app, &team.viewer.token, "?limit=5&offset=100").await;
    assert_eq!(past.json(), serde_json::json!([]));
    assert_eq!(total(&past), 7);
    let one = list(&app, &team.viewer.token, "?limit=1").await;
    assert_eq!(ids(&one), expected[..1]);
    assert_eq!(total(&one), 7);
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn experiments_list_100_by_default_and_at_most_100(pool: PgPool) {
    let app = TestApp::new(pool);
    let owner = new_org(&app).await;
    let s = site(&app, owner.org_id).await;
    sqlx::query(
        "INSERT INTO experiments (id, org_id, site_id, name, kind, allocator, seed, created_at)
         SELECT gen_random_uuid(), $1, $2, 'bulk ' || n, 'single', '{\"kind\": \"fixed_split\"}',
                'seed', now() - make_interval(secs => n)
         FROM generate_series(1, 105) AS n",
    )
    .bind(owner.org_id)
    .bind(s.id)
    .execute(&app.pool)
    .await
    .unwrap();
    let first = list(&app, &owner.token, "").await;
    assert_eq!(ids(&first).len(), 100);
    assert_eq!(total(&first), 105);
    assert_eq!(names(&first)[0], "bulk 1");
    let rest = list(&app, &owner.token, "?offset=100").await;
    assert_eq!(
        names(&rest),
        ["bulk 101", "bulk 102", "bulk 103", "bulk 104", "bulk 105"]
    );
    let max = list(&app, &owner.token, "?limit=100&offset=5").await;
    assert_eq!(ids(&max).len(), 100);
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn experiments_filter_by_site_status_and_name_alone_and_together(pool: PgPool) {
    let app = TestApp::new(pool);
    let team = new_team(&app).await;
    let org = team.owner.org_id;
    let (a, b) = (site(&app, org).await, site(&app, org).await);
    let base = base();
    let rows = [
        (&a, "Hero headline", "running"),
        (&a, "Checkout button", "draft"),
        (&a, "HERO image", "draft"),
        (&b, "hero copy", "running"),
        (&b, "Pricing page", "completed"),
        (&b, "Footer", "archived"),
        (&a, "Banner", "paused"),
    ];
    let mut by_name = std::collections::HashMap::new();
    for (age, (s, name, status)) in rows.iter().enumerate() {
        let id = insert(&app, org, s.id, name, status, base, age as i64).await;
        by_name.insert(*name, id);
    }
    let token = &team.viewer.token;
    let cases: Vec<(String, Vec<&str>)> = vec![
        (
            format!("?site_id={}", a.id),
            vec!["Hero headline", "Checkout button", "HERO image", "Banner"],
        ),
        (
            format!("?site_id={}", b.id),
            vec!["hero copy", "Pricing page", "Footer"],
        ),
        ("?status=running".into(), vec!["Hero headline", "hero copy"]),
        (
            "?status=draft".into(),
            vec!["Checkout button", "HERO image"],
        ),
        ("?status=paused".into(), vec!["Banner"]),
        ("?status=completed".into(), vec!["Pricing page"]),
        ("?status=archived".into(), vec!["Footer"]),
        (
            "?q=hero".into(),
            vec!["Hero headline", "HERO image", "hero copy"],
        ),
        ("?q=HeRo%20H".into(), vec!["Hero headline"]),
        (
            "?q=er".into(),
            vec![
                "Hero headline",
                "HERO image",
                "hero copy",
                "Footer",
                "Banner",
            ],
        ),
        ("?q=nothing-like-it".into(), vec![]),
        (
            "?q=&status=".into(),
            vec![
                "Hero headline",
                "Checkout button",
                "HERO image",
                "hero copy",
                "Pricing page",
                "Footer",
                "Banner",
            ],
        ),
        (
            "?q=hero&status=running".into(),
            vec!["Hero headline", "hero copy"],
        ),
        (
            format!("?q=hero&status=draft&site_id={}", a.id),
            vec!["HERO image"],
        ),
        (
            format!("?q=hero&status=running&site_id={}", b.id),
            vec!["hero copy"],
        ),
        (format!("?status=draft&site_id={}", b.id), vec![]),
        (
            format!("?q=e&site_id={}&limit=2&offset=1", a.id),
            vec!["Checkout button", "HERO image"],
        ),
    ];
    for (query, expected) in cases {
        let resp = list(&app, token, &query).await;
        assert_eq!(names(&resp), expected, "{query}");
        let counted = if query.contains("limit=2") {
            4 // every name of site a has an `e`
        } else {
            expected.len() as i64
        };
        assert_eq!(total(&resp), counted, "{query}");
    }
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn experiments_search_text_is_matched_literally(pool: PgPool) {
    let app = TestApp::new(pool);
    let owner = new_org(&app).await;
    let s = site(&app, owner.org_id).await;
    let base = base();
    let names_made = [
        "100% off",
        "100 off",
        "a_b test",
        "axb test",
        "back\\slash",
        "backslash",
        "Ünïcode Straße",
    ];
    for (age, name) in names_made.iter().enumerate() {
        insert(&app, owner.org_id, s.id, name, "draft", base, age as i64).await;
    }
    for (q, expected) in [
        ("%25", vec!["100% off"]),
        ("0%25%20", vec!["100% off"]),
        ("_", vec!["a_b test"]),
        ("a_b", vec!["a_b test"]),
        ("%5C", vec!["back\\slash"]),
        ("k%5Cs", vec!["back\\slash"]),
        ("%25%25", vec![]),
        ("__", vec![]),
        ("%5C%5C", vec![]),
        ("%2A", vec![]),
        ("N%C3%AFcode%20stra%C3%9Fe", vec!["Ünïcode Straße"]),
    ] {
        let resp = list(&app, &owner.token, &format!("?q={q}")).await;
        assert_eq!(names(&resp), expected, "q={q}");
        assert_eq!(total(&resp), expected.len() as i64, "q={q}");
    }
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn each_bad_experiments_list_parameter_is_a_422_naming_it(pool: PgPool) {
    let app = TestApp::new(pool);
    let owner = new_org(&app).await;
    let long = "a".repeat(201);
    let cases: Vec<(String, &str, &str)> = vec![
        ("status=deleted".into(), "status", "an unknown status"),
        ("status=Running".into(), "status", "statuses are lower-case"),
        (format!("q={long}"), "q", "201 characters"),
        ("q=a%00b".into(), "q", "a NUL byte"),
        ("q=a%0Ab".into(), "q", "a line feed"),
        ("limit=0".into(), "limit", "below 1"),
        ("limit=101".into(), "limit", "above 100"),
        ("limit=-1".into(), "limit", "negative"),
        ("limit=ten".into(), "limit", "not a number"),
        ("limit=2.5".into(), "limit", "not an integer"),
        ("limit=".into(), "limit", "empty"),
        ("limit=99999999999999999999".into(), "limit", "beyond i64"),
        ("offset=-1".into(), "offset", "negative"),
        ("offset=1000001".into(), "offset", "above a million"),
        ("offset=x".into(), "offset", "not a number"),
    ];
    for (query, field, why) in cases {
        let body = app
            .get(&format!("/api/v1/experiments?{query}"), Some(&owner.token))
            .await
            .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(body["errors"][0]["field"], field, "{why}: {body}");
        assert_eq!(body["errors"].as_array().unwrap().len(), 1, "{why}: {body}");
    }
    // The longest accepted values pass.
    let max = "a".repeat(200);
    list(
        &app,
        &owner.token,
        &format!("?q={max}&limit=100&offset=1000000"),
    )
    .await;
    // Several bad parameters: all named at once.
    let body = app
        .get(
            "/api/v1/experiments?status=nope&limit=0&offset=-5",
            Some(&owner.token),
        )
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["status", "limit", "offset"], "{body}");
    // An unknown parameter stays a malformed query (400), as before.
    app.get("/api/v1/experiments?page=2", Some(&owner.token))
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "bad_request");
    // Without credentials: 401 before any parameter is looked at.
    app.get("/api/v1/experiments?limit=0", None)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn another_organisations_experiments_are_never_listed_nor_counted(pool: PgPool) {
    let app = TestApp::new(pool);
    let team = new_team(&app).await;
    let mine = site(&app, team.owner.org_id).await;
    let stranger = new_org(&app).await;
    let theirs = site(&app, stranger.org_id).await;
    let base = base();
    let my_id = insert(
        &app,
        team.owner.org_id,
        mine.id,
        "Hero mine",
        "running",
        base,
        2,
    )
    .await;
    for (age, name) in ["Hero theirs", "Other theirs", "Hero draft theirs"]
        .into_iter()
        .enumerate()
    {
        let status = if age == 2 { "draft" } else { "running" };
        insert(
            &app,
            stranger.org_id,
            theirs.id,
            name,
            status,
            base,
            age as i64,
        )
        .await;
    }
    for m in [&team.viewer, &team.editor, &team.admin, &team.owner] {
        for query in ["", "?q=hero", "?status=running", "?limit=1", "?q=theirs"] {
            let resp = list(&app, &m.token, query).await;
            let expected: Vec<Uuid> = if query == "?q=theirs" {
                vec![]
            } else {
                vec![my_id]
            };
            assert_eq!(ids(&resp), expected, "{query}");
            assert_eq!(total(&resp), expected.len() as i64, "{query}");
        }
    }
    // Their site as a filter: 404 as before, with or without other filters.
    for query in [
        format!("?site_id={}", theirs.id),
        format!("?site_id={}&status=running&q=hero&limit=5", theirs.id),
    ] {
        app.get(
            &format!("/api/v1/experiments{query}"),
            Some(&team.owner.token),
        )
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    }
    // They see theirs only.
    let resp = list(&app, &stranger.token, "?q=hero").await;
    assert_eq!(names(&resp), ["Hero theirs", "Hero draft theirs"]);
    assert_eq!(total(&resp), 2);
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn a_cross_origin_client_may_read_the_experiments_total_count(pool: PgPool) {
    let app = TestApp::new(pool);
    let owner = new_org(&app).await;
    let resp = app
        .call_with(
            Method::GET,
            "/api/v1/experiments",
            Some(&owner.token),
            None,
            &[("origin", "https://admin.example")],
        )
        .await;
    assert_eq!(resp.status, StatusCode::OK);
    assert_eq!(total(&resp), 0);
    assert_eq!(resp.json(), Value::Array(vec![]));
    let exposed = resp
        .headers
        .get("access-control-expose-headers")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(exposed.contains("x-total-count"), "{exposed:?}");
}
