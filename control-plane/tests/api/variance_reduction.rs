//! Variance reduction in `GET /api/v1/experiments/{id}/results` (`analyses[].
//! variance_reduction`): visitors with prior visits / conversions go through the real
//! ingest path; the reported adjusted numbers equal the engine's on moments computed here
//! from the raw visitors generated, the reduction is positive, the running-minimum
//! p-value is stored under its own scope, and authorisation is the results'. A factorial
//! experiment's main effects pool the combinations' strata moments.

use axum::http::StatusCode;
use samplit_engine::stats::cuped::{
    CellMoments, CupedInput, MIN_STRATUM_VISITORS, MixingVariance, StratumInput, adjust, capped,
};
use samplit_engine::stats::sequential::DEFAULT_TAU_SQUARED;
use serde_json::{Value, json};
use sqlx::PgPool;
use std::collections::BTreeMap;
use uuid::Uuid;

use crate::fixtures::{Experiment, Site, batch, conversion, exposure, ingest_ok, team_running};
use crate::helpers::{TestApp, new_org};

/// One generated visitor: its context and what it does.
struct Visitor {
    arm: usize,
    id: String,
    device: &'static str,
    prior_visits: i32,
    prior_conversions: i32,
    /// Purchase values, in two batches (0 = none).
    purchases: [f64; 2],
    signup: bool,
}

impl Visitor {
    fn stratum(&self) -> String {
        let vtype = if self.prior_visits == 0 {
            "new"
        } else {
            "returning"
        };
        format!("{vtype}/{}", self.device)
    }

    fn x(&self) -> [f64; 2] {
        [
            capped(Some(self.prior_conversions)),
            capped(Some(self.prior_visits)),
        ]
    }
}

/// 240 visitors per arm: half returning (prior visits 1..9, one beyond the cap of 50,
/// prior conversions 0..3), two devices; who signs up and how much they spend grow with
/// their prior conversions, and arm 1 converts a little more often.
fn visitors() -> Vec<Visitor> {
    visitors_of(2, 240)
}

/// [`visitors`] for `arms` arms of `per_arm` visitors each (arm `a` converts a little
/// more often as `a` grows).
fn visitors_of(arms: usize, per_arm: usize) -> Vec<Visitor> {
    let mut out = Vec::new();
    for arm in 0..arms {
        for i in 0..per_arm {
            let returning = i % 2 == 0;
            let prior_visits = if !returning {
                0
            } else if i == 100 {
                400
            } else {
                1 + ((i * 7) % 9) as i32
            };
            let prior_conversions = if returning { ((i * 3) % 4) as i32 } else { 0 };
            let converts = prior_conversions >= 2 || i % (7 - arm.min(4)) == 0;
            let value = 10.0 + 15.0 * f64::from(prior_conversions) + (i % 5) as f64;
            out.push(Visitor {
                arm,
                id: format!("a{arm}-v{i}"),
                device: if i % 3 == 0 { "mobile" } else { "desktop" },
                prior_visits,
                prior_conversions,
                purchases: if converts {
                    [value, if i % 4 == 0 { 5.0 } else { 0.0 }]
                } else {
                    [0.0, 0.0]
                },
                signup: converts || i % 11 == 0,
            });
        }
    }
    out
}

/// The engine's answer on moments computed from the raw visitors (`y` of each visitor:
/// signed up, or its purchase total), as the control plane configures it.
fn expected(visitors: &[Visitor], revenue: bool) -> Value {
    expected_by(visitors, revenue, 2, |v| v.arm)
}

/// [`expected`] with `subjects` subjects, each visitor counting for `subject(v)`.
fn expected_by(
    visitors: &[Visitor],
    revenue: bool,
    subjects: usize,
    subject: impl Fn(&Visitor) -> usize,
) -> Value {
    let mut strata: BTreeMap<String, Vec<CellMoments>> = BTreeMap::new();
    for v in visitors {
        let y = if revenue {
            v.purchases[0] + v.purchases[1]
        } else {
            f64::from(u8::from(v.signup))
        };
        strata
            .entry(v.stratum())
            .or_insert_with(|| vec![CellMoments::default(); subjects])[subject(v)]
        .push(v.x(), y);
    }
    let input = CupedInput {
        strata: strata
            .into_iter()
            .map(|(name, arms)| StratumInput {
                group: name.split('/').next().unwrap().to_owned(),
                name,
                arms,
            })
            .collect(),
        control: 0,
        previous_p_values: vec![None; subjects],
        alpha: 0.05,
        mixing: if revenue {
            MixingVariance::Relative(0.05)
        } else {
            MixingVariance::Absolute(DEFAULT_TAU_SQUARED)
        },
        min_stratum_visitors: MIN_STRATUM_VISITORS,
    };
    serde_json::to_value(adjust(&input).unwrap()).unwrap()
}

/// Every number of `got` equals `want`'s within a relative 1e-9 (sums in another order).
fn assert_close(got: &Value, want: &Value, path: &str) {
    match (got, want) {
        (Value::Number(g), Value::Number(w)) => {
            let (g, w) = (g.as_f64().unwrap(), w.as_f64().unwrap());
            assert!(
                (g - w).abs() <= 1e-9 * w.abs().max(1e-6),
                "{path}: {g} vs {w}"
            );
        }
        (Value::Array(g), Value::Array(w)) => {
            assert_eq!(g.len(), w.len(), "{path}");
            for (i, (g, w)) in g.iter().zip(w).enumerate() {
                assert_close(g, w, &format!("{path}[{i}]"));
            }
        }
        (Value::Object(g), Value::Object(w)) => {
            assert_eq!(
                g.keys().collect::<Vec<_>>(),
                w.keys().collect::<Vec<_>>(),
                "{path}"
            );
            for (k, w) in w {
                assert_close(&g[k], w, &format!("{path}.{k}"));
            }
        }
        _ => assert_eq!(got, want, "{path}"),
    }
}

/// Sends each visitor's exposure (with its context) and conversions through ingestion:
/// first purchases and sign-ups, then the repeated purchases in a later batch.
async fn ingest_visitors(app: &TestApp, s: &Site, x: &Experiment, visitors: &[Visitor]) {
    let mut first = Vec::new();
    let mut second = Vec::new();
    for v in visitors {
        let mut e = exposure(&format!("x-{}", v.id), s, x.id, x.arms[v.arm], &v.id);
        e["context"] = json!({"device": v.device, "prior_visits": v.prior_visits,
                              "prior_conversions": v.prior_conversions});
        first.push(e);
        if v.purchases[0] > 0.0 {
            first.push(conversion(
                &format!("p1-{}", v.id),
                s,
                &v.id,
                "purchase",
                Some(v.purchases[0]),
            ));
        }
        if v.signup {
            first.push(conversion(&format!("s-{}", v.id), s, &v.id, "signup", None));
        }
        // A repeated purchase in a later batch moves Σx·revenue by x·(t₁ − t₀).
        if v.purchases[1] > 0.0 {
            second.push(conversion(
                &format!("p2-{}", v.id),
                s,
                &v.id,
                "purchase",
                Some(v.purchases[1]),
            ));
        }
    }
    for chunk in first.chunks(900) {
        ingest_ok(app, &batch(chunk.to_vec())).await;
    }
    ingest_ok(app, &batch(second)).await;
}

/// The results of `x` on `goal`, as a viewer sees them (asserting a 200).
async fn results_of(app: &TestApp, x: &Experiment, goal: Uuid, token: &str) -> Value {
    let r = app
        .get(
            &format!("/api/v1/experiments/{}/results?goal_id={goal}", x.id),
            Some(token),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    r.json()
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn results_report_the_variance_reduction_computed_from_the_visitors(pool: PgPool) {
    let app = TestApp::new(pool);
    let (team, s, x) = team_running(&app, "single", &[2]).await;
    let visitors = visitors();
    ingest_visitors(&app, &s, &x, &visitors).await;

    for (goal, revenue) in [(x.purchase, true), (x.signup, false)] {
        let body = results_of(&app, &x, goal, &team.viewer.token).await;
        let vr = &body["analyses"][0]["variance_reduction"];
        assert_eq!(vr["method"], "cuped_post_stratified", "{body}");
        assert_eq!(
            vr["covariates"],
            json!(["prior_conversions", "prior_visits"])
        );
        assert_eq!(vr["covariate_cap"], 50.0);
        let got = &vr["result"];
        assert_close(
            got,
            &expected(&visitors, revenue),
            "variance_reduction.result",
        );
        // Four strata, each with 40 to 80 visitors per arm: all kept.
        let strata: Vec<&str> = got["strata"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            strata,
            [
                "new/desktop",
                "new/mobile",
                "returning/desktop",
                "returning/mobile"
            ]
        );
        assert!(got["comparisons"][0].is_null());
        let reduction = got["comparisons"][1]["variance_reduction"]
            .as_f64()
            .unwrap();
        assert!(reduction > 0.0, "goal {goal}: reduction {reduction}");
        // The unadjusted numbers beside it are the analysis' own.
        let arms = &body["analyses"][0]["result"]["arms"];
        assert_eq!(arms[1]["visitors"], got["arms"][1]["visitors"]);
        // The running minimum is kept under its own scope.
        let stored: Vec<(String, f64)> = sqlx::query_as(
            "SELECT scope, p_value FROM sequential_p_values
              WHERE goal_id = $1 AND subject_id = $2 ORDER BY scope",
        )
        .bind(goal)
        .bind(x.arms[1])
        .fetch_all(&app.pool)
        .await
        .unwrap();
        let cuped = stored.iter().find(|(scope, _)| scope == "cuped:arms");
        let p = got["comparisons"][1]["p_value"].as_f64().unwrap();
        match cuped {
            Some((_, stored)) => assert_eq!(*stored, p),
            None => assert_eq!(p, 1.0, "only a p-value below 1 is stored"),
        }
    }

    // Viewers and editors see it; another organisation's experiment is not found.
    let path = format!("/api/v1/experiments/{}/results", x.id);
    for token in [&team.viewer.token, &team.editor.token] {
        let r = app.get(&path, Some(token)).await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(r.json()["analyses"][0]["variance_reduction"]["result"].is_object());
    }
    let stranger = new_org(&app).await;
    app.get(&path, Some(&stranger.token))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(app.get(&path, None).await.status, StatusCode::UNAUTHORIZED);
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn without_context_everything_is_one_stratum_and_nothing_is_reduced(pool: PgPool) {
    let app = TestApp::new(pool);
    let (team, s, x) = team_running(&app, "single", &[2]).await;
    let mut items = Vec::new();
    for i in 0..80usize {
        let v = format!("v{i}");
        items.push(exposure(&format!("x{i}"), &s, x.id, x.arms[i % 2], &v));
        if i % 4 == 0 {
            items.push(conversion(&format!("c{i}"), &s, &v, "signup", None));
        }
    }
    ingest_ok(&app, &batch(items)).await;
    let body = results_of(&app, &x, x.signup, &team.viewer.token).await;
    let got = &body["analyses"][0]["variance_reduction"]["result"];
    // No context: one fine stratum `unknown/unknown` (40 a side: kept), x = 0, θ = 0.
    assert_eq!(got["strata"][0]["name"], "unknown/unknown", "{body}");
    assert_eq!(got["strata"][0]["theta"], json!([0.0, 0.0]));
    let c = &got["comparisons"][1];
    assert_eq!(c["variance_reduction"], 0.0);
    assert_eq!(c["difference"], c["unadjusted_difference"]);

    // Visitors counted before the strata existed (simulated: their rows removed) make
    // the two populations differ: nothing adjusted is reported, and the reason is given.
    sqlx::query(
        "UPDATE segment_daily SET visitors = visitors - 5
          WHERE arm_id = $1 AND dimension = 'cuped_stratum'",
    )
    .bind(x.arms[0])
    .execute(&app.pool)
    .await
    .unwrap();
    let body = results_of(&app, &x, x.signup, &team.viewer.token).await;
    let vr = &body["analyses"][0]["variance_reduction"];
    assert!(vr["result"].is_null(), "{body}");
    assert_eq!(
        vr["error"],
        "the variance-reduction strata hold 75 of the 80 visitors (visitors ingested before \
         it existed): not computed"
    );
    assert!(body["analyses"][0]["result"].is_object());
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn a_factorial_main_effect_is_reduced_on_the_pooled_combinations(pool: PgPool) {
    let app = TestApp::new(pool);
    // 2 × 2: arm a shows variant a / 2 of element 0 and a % 2 of element 1.
    let (team, s, x) = team_running(&app, "factorial", &[2, 2]).await;
    let visitors = visitors_of(4, 120);
    ingest_visitors(&app, &s, &x, &visitors).await;
    for (goal, revenue) in [(x.purchase, true), (x.signup, false)] {
        let body = results_of(&app, &x, goal, &team.viewer.token).await;
        let analyses = body["analyses"].as_array().unwrap();
        assert_eq!(analyses.len(), 3, "{body}");
        // The combinations, each on its own.
        assert_eq!(analyses[0]["scope"], "arms");
        assert_close(
            &analyses[0]["variance_reduction"]["result"],
            &expected_by(&visitors, revenue, 4, |v| v.arm),
            "arms",
        );
        // Each element's variants, pooled over the other element.
        for (element, analysis) in analyses[1..].iter().enumerate() {
            assert_eq!(analysis["scope"], "main_effect", "{body}");
            assert_eq!(analysis["element_id"], json!(x.elements[element]));
            let variant = |v: &Visitor| if element == 0 { v.arm / 2 } else { v.arm % 2 };
            let got = &analysis["variance_reduction"]["result"];
            assert_close(
                got,
                &expected_by(&visitors, revenue, 2, variant),
                &format!("main effect of element {element}"),
            );
            // The pooled visitors are the unadjusted analysis' own.
            for i in 0..2 {
                assert_eq!(got["arms"][i]["visitors"], 240);
                assert_eq!(analysis["result"]["arms"][i]["visitors"], 240);
            }
            let reduction = got["comparisons"][1]["variance_reduction"]
                .as_f64()
                .unwrap();
            assert!(reduction > 0.0, "element {element}: reduction {reduction}");
        }
        // Element 0's running minimum is kept under its main effect's own scope.
        let scope = format!("cuped:main_effect:{}", x.elements[0]);
        let stored: Option<f64> = sqlx::query_scalar(
            "SELECT p_value FROM sequential_p_values
              WHERE goal_id = $1 AND subject_id = $2 AND scope = $3",
        )
        .bind(goal)
        .bind(x.variants[0][1])
        .bind(&scope)
        .fetch_optional(&app.pool)
        .await
        .unwrap();
        let p = analyses[1]["variance_reduction"]["result"]["comparisons"][1]["p_value"]
            .as_f64()
            .unwrap();
        match stored {
            Some(stored) => assert_eq!(stored, p),
            None => assert_eq!(p, 1.0, "only a p-value below 1 is stored"),
        }
    }
}
