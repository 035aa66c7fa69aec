//! Rows for ingestion and results tests, inserted directly with SQL (the experiments API
//! is another module's): a site with its key, running experiments of each kind with arms
//! and goals, and signed ingest requests.

use axum::body::Body;
use axum::http::{Method, Request, header};
use samplit_engine::ingest as signature;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Member, TEST_INGEST_SECRET, Team, TestApp, TestResponse, new_org, new_team};

pub struct Site {
    pub id: Uuid,
    pub key: String,
}

pub async fn site(app: &TestApp, org_id: Uuid) -> Site {
    let id = Uuid::new_v4();
    let key = format!("site_{}", id.simple());
    sqlx::query(
        "INSERT INTO sites (id, org_id, name, domains, site_key, server_secret_hash)
         VALUES ($1, $2, 'Shop', '{shop.example}', $3, '\\x00')",
    )
    .bind(id)
    .bind(org_id)
    .bind(&key)
    .execute(&app.pool)
    .await
    .unwrap();
    Site { id, key }
}

/// A new organisation (its owner) with one site.
pub async fn org_with_site(app: &TestApp) -> (Member, Site) {
    let org = new_org(app).await;
    let site = site(app, org.org_id).await;
    (org, site)
}

/// A new organisation with one site and one running experiment of this `kind` and
/// `shape` (see [`experiment`]).
pub async fn running(
    app: &TestApp,
    kind: &'static str,
    shape: &[usize],
) -> (Member, Site, Experiment) {
    let (org, site) = org_with_site(app).await;
    let x = experiment(app, org.org_id, site.id, kind, shape, "running").await;
    (org, site, x)
}

/// [`running`] for a team (an organisation with a member of each role).
pub async fn team_running(
    app: &TestApp,
    kind: &'static str,
    shape: &[usize],
) -> (Team, Site, Experiment) {
    let team = new_team(app).await;
    let site = site(app, team.owner.org_id).await;
    let x = experiment(app, team.owner.org_id, site.id, kind, shape, "running").await;
    (team, site, x)
}

pub struct Experiment {
    pub id: Uuid,
    /// Elements in position order.
    pub elements: Vec<Uuid>,
    /// Variants per element, in position order (the first is the control).
    pub variants: Vec<Vec<Uuid>>,
    /// Arms in position order; for independent experiments, element by element.
    pub arms: Vec<Uuid>,
    /// Primary goal: custom event `purchase`, a revenue metric.
    pub purchase: Uuid,
    /// URL goal named `signup`, a conversion metric.
    pub signup: Uuid,
}

/// A running experiment. `shape` gives the number of variants of each element: `[3]` is
/// a single-element A/B/C; `kind` is `single`, `independent` or `factorial`.
pub async fn experiment(
    app: &TestApp,
    org_id: Uuid,
    site_id: Uuid,
    kind: &'static str,
    shape: &[usize],
    status: &str,
) -> Experiment {
    let id = Uuid::new_v4();
    let arms_total: usize = match kind {
        "factorial" => shape.iter().product(),
        _ => shape.iter().sum(),
    };
    let weights = vec![1.0 / shape[0] as f64; shape[0]];
    sqlx::query(
        "INSERT INTO experiments (id, org_id, site_id, name, kind, status, allocator, seed, started_at)
         VALUES ($1, $2, $3, 'Test', $4, $5, $6, 'seed', now())",
    )
    .bind(id)
    .bind(org_id)
    .bind(site_id)
    .bind(kind)
    .bind(status)
    .bind(json!({"kind": "fixed_split", "weights": weights}))
    .execute(&app.pool)
    .await
    .unwrap();
    let mut elements = Vec::new();
    let mut variants = Vec::new();
    for (e, count) in shape.iter().enumerate() {
        let element = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO elements (id, experiment_id, position, name, selector) VALUES ($1, $2, $3, $4, '#x')",
        )
        .bind(element)
        .bind(id)
        .bind(e as i32)
        .bind(format!("element {e}"))
        .execute(&app.pool)
        .await
        .unwrap();
        let mut vs = Vec::new();
        for v in 0..*count {
            let variant = Uuid::new_v4();
            sqlx::query(
                "INSERT INTO variants (id, experiment_id, element_id, position, name, is_control, weight)
                 VALUES ($1, $2, $3, $4, $5, $6, 1)",
            )
            .bind(variant)
            .bind(id)
            .bind(element)
            .bind(v as i32)
            .bind(format!("variant {e}.{v}"))
            .bind(v == 0)
            .execute(&app.pool)
            .await
            .unwrap();
            vs.push(variant);
        }
        elements.push(element);
        variants.push(vs);
    }
    // Arms: (element id, variant ids, is control).
    let mut arm_specs: Vec<(Option<Uuid>, Vec<Uuid>, bool)> = Vec::new();
    match kind {
        "factorial" => {
            let mut combos: Vec<Vec<usize>> = vec![vec![]];
            for count in shape {
                combos = combos
                    .into_iter()
                    .flat_map(|c| {
                        (0..*count).map(move |v| {
                            let mut c = c.clone();
                            c.push(v);
                            c
                        })
                    })
                    .collect();
            }
            for combo in combos {
                let ids = combo
                    .iter()
                    .enumerate()
                    .map(|(e, v)| variants[e][*v])
                    .collect();
                arm_specs.push((None, ids, combo.iter().all(|v| *v == 0)));
            }
        }
        "independent" => {
            for (e, vs) in variants.iter().enumerate() {
                for (v, variant) in vs.iter().enumerate() {
                    arm_specs.push((Some(elements[e]), vec![*variant], v == 0));
                }
            }
        }
        _ => {
            for (v, variant) in variants[0].iter().enumerate() {
                arm_specs.push((None, vec![*variant], v == 0));
            }
        }
    }
    assert_eq!(arm_specs.len(), arms_total);
    let mut arms = Vec::new();
    for (position, (element, ids, control)) in arm_specs.into_iter().enumerate() {
        let arm = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO arms (id, experiment_id, element_id, position, name, variant_ids, is_control)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(arm)
        .bind(id)
        .bind(element)
        .bind(position as i32)
        .bind(format!("arm {position}"))
        .bind(&ids)
        .bind(control)
        .execute(&app.pool)
        .await
        .unwrap();
        arms.push(arm);
    }
    let purchase = Uuid::new_v4();
    let signup = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO goals (id, experiment_id, name, trigger, target, metric, is_primary) VALUES
         ($1, $3, 'Purchase', 'custom', 'purchase', 'revenue', true),
         ($2, $3, 'signup', 'url', '{\"path\":\"/thanks\"}', 'conversion', false)",
    )
    .bind(purchase)
    .bind(signup)
    .bind(id)
    .execute(&app.pool)
    .await
    .unwrap();
    Experiment {
        id,
        elements,
        variants,
        arms,
        purchase,
        signup,
    }
}

pub fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

pub fn exposure(id: &str, site: &Site, experiment: Uuid, arm: Uuid, visitor: &str) -> Value {
    exposure_at(id, site, experiment, arm, visitor, now_ms())
}

pub fn exposure_at(
    id: &str,
    site: &Site,
    experiment: Uuid,
    arm: Uuid,
    visitor: &str,
    ts_ms: i64,
) -> Value {
    json!({
        "id": id, "type": "exposure", "site_key": site.key,
        "experiment_id": experiment, "arm_id": arm, "visitor_id": visitor,
        "propensity": 0.5, "snapshot_version": 1, "ts_ms": ts_ms
    })
}

/// An exposure item with a `context` (what the edge knew before assigning: issue 16).
pub fn with_context(mut item: Value, context: Value) -> Value {
    item["context"] = context;
    item
}

pub fn conversion(id: &str, site: &Site, visitor: &str, goal: &str, value: Option<f64>) -> Value {
    conversion_at(id, site, visitor, goal, value, now_ms())
}

pub fn conversion_at(
    id: &str,
    site: &Site,
    visitor: &str,
    goal: &str,
    value: Option<f64>,
    ts_ms: i64,
) -> Value {
    let mut item = json!({
        "id": id, "type": "conversion", "site_key": site.key,
        "visitor_id": visitor, "goal": goal, "ts_ms": ts_ms
    });
    if let Some(v) = value {
        item["value"] = json!(v);
    }
    item
}

pub fn batch(items: Vec<Value>) -> Value {
    json!({"batch_id": Uuid::new_v4(), "items": items})
}

/// The ingest request for `body`, signed now with the test secret.
pub fn signed_request(body: &[u8]) -> Request<Body> {
    let ts = time::OffsetDateTime::now_utc().unix_timestamp().to_string();
    let sig = signature::sign(TEST_INGEST_SECRET.as_bytes(), &ts, body);
    Request::builder()
        .method(Method::POST)
        .uri("/api/v1/ingest")
        .header(header::CONTENT_TYPE, "application/json")
        .header(signature::TIMESTAMP_HEADER, ts)
        .header(signature::SIGNATURE_HEADER, sig)
        .body(Body::from(body.to_vec()))
        .unwrap()
}

/// Sends a signed batch.
pub async fn ingest(app: &TestApp, body: &Value) -> TestResponse {
    app.send(signed_request(body.to_string().as_bytes())).await
}

/// Sends a signed batch and asserts it was processed.
pub async fn ingest_ok(app: &TestApp, body: &Value) -> Value {
    let response = ingest(app, body).await;
    assert_eq!(response.status, 200, "{}", response.text());
    response.json()
}

/// (visitors, conflicting exposures) of an arm.
pub async fn arm_totals(app: &TestApp, arm: Uuid) -> (i64, i64) {
    sqlx::query_as::<_, (i64, i64)>(
        "SELECT COALESCE(MAX(visitors), 0), COALESCE(MAX(conflicting_exposures), 0)
         FROM arm_stats WHERE arm_id = $1",
    )
    .bind(arm)
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

/// (converters, revenue_n, revenue_sum, revenue_sumsq) of an arm on a goal.
pub async fn goal_totals(app: &TestApp, arm: Uuid, goal: Uuid) -> (i64, i64, f64, f64) {
    sqlx::query_as::<_, (i64, i64, f64, f64)>(
        "SELECT COALESCE(MAX(converters), 0), COALESCE(MAX(revenue_n), 0),
                COALESCE(MAX(revenue_sum), 0), COALESCE(MAX(revenue_sumsq), 0)
         FROM arm_goal_stats WHERE arm_id = $1 AND goal_id = $2",
    )
    .bind(arm)
    .bind(goal)
    .fetch_one(&app.pool)
    .await
    .unwrap()
}
