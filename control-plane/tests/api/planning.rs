//! The planning calculator: the engine's numbers with the results page's settings,
//! defaults, authorisation (any member, or an API key), and a 422 naming the parameter
//! for each kind of value out of range.

use axum::http::StatusCode;
use samplit_control_plane::auth::Role;
use samplit_engine::stats::analyze::AnalysisConfig;
use samplit_engine::stats::planning::{PlanInput, plan};
use serde_json::Value;
use sqlx::PgPool;

use crate::helpers::{TestApp, create_api_key, new_org, new_team};

const URI: &str = "/api/v1/planning/sample-size";

/// 5% baseline, +10%, 10 000 visitors a day: a week for the fixed-horizon test.
const QUERY: &str = "baseline_rate=0.05&minimum_detectable_effect=0.1&visitors_per_day=10000";

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("{v} is not a number"))
}

fn u(v: &Value) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("{v} is not an unsigned integer"))
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn a_viewer_gets_the_engines_plan_with_the_results_pages_settings(pool: PgPool) {
    let app = TestApp::new(pool);
    let team = new_team(&app).await;
    let resp = app
        .get(&format!("{URI}?{QUERY}"), Some(&team.viewer.token))
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    let body = resp.json();

    // Defaults filled in from the analysis the results page runs.
    let analysis = AnalysisConfig::default();
    let a = &body["assumptions"];
    assert_eq!(u(&a["arms"]), 2);
    assert_eq!(f(&a["alpha"]), analysis.alpha);
    assert_eq!(f(&a["power"]), 0.8);
    assert_eq!(u(&a["looks_per_day"]), 1);
    assert_eq!(f(&a["tau_squared"]), analysis.tau_squared);

    let want = plan(&PlanInput {
        baseline_rate: 0.05,
        minimum_detectable_effect: 0.1,
        arms: 2,
        alpha: analysis.alpha,
        power: 0.8,
        visitors_per_day: 10_000,
        looks_per_day: 1,
        tau_squared: analysis.tau_squared,
    })
    .unwrap();
    assert_eq!(f(&body["treatment_rate"]), want.treatment_rate);
    assert_eq!(f(&body["absolute_effect"]), want.absolute_effect);
    assert_eq!(u(&body["comparisons"]), 1);
    assert_eq!(f(&body["alpha_per_comparison"]), want.alpha_per_comparison);
    let fixed = &body["fixed_horizon"];
    let w = want.fixed_horizon;
    // statsmodels' samplesize_proportions_2indep_onetail, rounded up (the engine's
    // reference value, shared-engine/tests/reference/stats_planning.py).
    assert_eq!(u(&fixed["visitors_per_arm"]), 31_234);
    assert_eq!(u(&fixed["visitors_per_arm"]), w.visitors_per_arm);
    assert_eq!(u(&fixed["visitors_total"]), 62_468);
    assert_eq!(u(&fixed["days"]), 7);
    assert_eq!(f(&fixed["power"]), w.power);
    let seq = &body["always_valid"];
    let w = want.always_valid;
    assert_eq!(u(&seq["visitors_per_arm"]), w.visitors_per_arm);
    assert_eq!(u(&seq["visitors_total"]), w.visitors_total);
    assert_eq!(u(&seq["days"]), w.days);
    assert_eq!(f(&seq["power"]), w.power);
    assert_eq!(f(&seq["power_at_fixed_horizon"]), w.power_at_fixed_horizon);
    assert_eq!(u(&seq["looks"]), w.looks);
    assert_eq!(f(&seq["visitors_per_arm_per_look"]), 5_000.0);
    // Daily looks at 5 000 per arm: the always-valid test needs more than the fixed one,
    // and is far from its power at the fixed-horizon size.
    assert!(u(&seq["visitors_per_arm"]) > 31_234);
    assert!(f(&seq["power"]) >= 0.8);
    assert!(f(&seq["power_at_fixed_horizon"]) < 0.8);
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn every_parameter_can_be_set_and_several_variants_share_alpha(pool: PgPool) {
    let app = TestApp::new(pool);
    let owner = new_org(&app).await;
    let resp = app
        .get(
            &format!(
                "{URI}?baseline_rate=0.1&minimum_detectable_effect=-0.15&visitors_per_day=3000\
                 &arms=4&alpha=0.1&power=0.9&looks_per_day=3"
            ),
            Some(&owner.token),
        )
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    let body = resp.json();
    let want = plan(&PlanInput {
        baseline_rate: 0.1,
        minimum_detectable_effect: -0.15,
        arms: 4,
        alpha: 0.1,
        power: 0.9,
        visitors_per_day: 3000,
        looks_per_day: 3,
        tau_squared: AnalysisConfig::default().tau_squared,
    })
    .unwrap();
    assert_eq!(u(&body["comparisons"]), 3);
    assert_eq!(f(&body["alpha_per_comparison"]), 0.1 / 3.0);
    assert_eq!(
        u(&body["fixed_horizon"]["visitors_per_arm"]),
        want.fixed_horizon.visitors_per_arm
    );
    assert_eq!(
        u(&body["always_valid"]["visitors_per_arm"]),
        want.always_valid.visitors_per_arm
    );
    assert_eq!(f(&body["always_valid"]["visitors_per_arm_per_look"]), 250.0);
    assert_eq!(u(&body["assumptions"]["looks_per_day"]), 3);
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn without_a_token_it_is_401(pool: PgPool) {
    let app = TestApp::new(pool);
    let resp = app.get(&format!("{URI}?{QUERY}"), None).await;
    resp.assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    let resp = app
        .get(&format!("{URI}?{QUERY}"), Some("not-a-token"))
        .await;
    resp.assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn an_api_key_with_the_lowest_role_works(pool: PgPool) {
    let app = TestApp::new(pool);
    let team = new_team(&app).await;
    let (_, key) = create_api_key(&app, &team.admin.token, "planner", Role::Viewer).await;
    let resp = app.get(&format!("{URI}?{QUERY}"), Some(&key)).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    assert_eq!(u(&resp.json()["fixed_horizon"]["visitors_per_arm"]), 31_234);
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn each_kind_of_value_out_of_range_is_a_422_naming_the_parameter(pool: PgPool) {
    let app = TestApp::new(pool);
    let member = new_org(&app).await;
    let base = "baseline_rate=0.05&minimum_detectable_effect=0.1&visitors_per_day=10000";
    // (query, the parameter at fault, what the case is)
    let cases = [
        (
            "baseline_rate=0&minimum_detectable_effect=0.1&visitors_per_day=10000",
            "baseline_rate",
            "a zero baseline",
        ),
        (
            "baseline_rate=1&minimum_detectable_effect=0.1&visitors_per_day=10000",
            "baseline_rate",
            "a baseline of 100%",
        ),
        (
            "baseline_rate=NaN&minimum_detectable_effect=0.1&visitors_per_day=10000",
            "baseline_rate",
            "a NaN baseline",
        ),
        (
            "baseline_rate=0.05&minimum_detectable_effect=0&visitors_per_day=10000",
            "minimum_detectable_effect",
            "no effect",
        ),
        (
            "baseline_rate=0.05&minimum_detectable_effect=-1&visitors_per_day=10000",
            "minimum_detectable_effect",
            "a −100% effect",
        ),
        (
            "baseline_rate=0.05&minimum_detectable_effect=inf&visitors_per_day=10000",
            "minimum_detectable_effect",
            "an infinite effect",
        ),
        (
            "baseline_rate=0.5&minimum_detectable_effect=1&visitors_per_day=10000",
            "minimum_detectable_effect",
            "an effect taking the rate to 100%",
        ),
        (
            "baseline_rate=0.000001&minimum_detectable_effect=0.0001&visitors_per_day=10000",
            "minimum_detectable_effect",
            "an effect too small to plan for",
        ),
        (
            "baseline_rate=0.05&minimum_detectable_effect=0.1&visitors_per_day=0",
            "visitors_per_day",
            "no traffic",
        ),
        (&format!("{base}&arms=1"), "arms", "one arm"),
        (&format!("{base}&arms=257"), "arms", "257 arms"),
        (&format!("{base}&alpha=0"), "alpha", "alpha 0"),
        (&format!("{base}&alpha=0.7"), "alpha", "alpha above 0.5"),
        (&format!("{base}&power=0.3"), "power", "power below 0.5"),
        (&format!("{base}&power=1"), "power", "power 1"),
        (
            &format!("{base}&looks_per_day=0"),
            "looks_per_day",
            "no looks",
        ),
        (
            &format!("{base}&looks_per_day=25"),
            "looks_per_day",
            "25 looks a day",
        ),
    ];
    for (query, field, what) in cases {
        let resp = app
            .get(&format!("{URI}?{query}"), Some(&member.token))
            .await;
        let body = resp.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        let errors = body["errors"].as_array().unwrap();
        assert_eq!(errors.len(), 1, "{what}: {body}");
        assert_eq!(errors[0]["field"], field, "{what}: {body}");
        assert!(
            !errors[0]["message"].as_str().unwrap().is_empty(),
            "{what}: {body}"
        );
    }

    // Several faults are reported together, one per parameter.
    let resp = app
        .get(
            &format!(
                "{URI}?baseline_rate=2&minimum_detectable_effect=0&visitors_per_day=0&arms=0\
                 &alpha=1&power=2&looks_per_day=99"
            ),
            Some(&member.token),
        )
        .await;
    let body = resp.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "baseline_rate",
            "minimum_detectable_effect",
            "arms",
            "alpha",
            "power",
            "visitors_per_day",
            "looks_per_day"
        ]
    );
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn a_malformed_query_is_a_400(pool: PgPool) {
    let app = TestApp::new(pool);
    let member = new_org(&app).await;
    let cases = [
        (
            "minimum_detectable_effect=0.1&visitors_per_day=10000",
            "no baseline",
        ),
        (
            "baseline_rate=five&minimum_detectable_effect=0.1&visitors_per_day=10000",
            "a word for a number",
        ),
        (
            "baseline_rate=0.05&minimum_detectable_effect=0.1&visitors_per_day=-5",
            "negative traffic",
        ),
        (
            "baseline_rate=0.05&minimum_detectable_effect=0.1&visitors_per_day=10000&arms=2.5",
            "a fractional arm count",
        ),
        (
            "baseline_rate=0.05&mde=0.1&visitors_per_day=10000",
            "an unknown parameter",
        ),
    ];
    for (query, what) in cases {
        let resp = app
            .get(&format!("{URI}?{query}"), Some(&member.token))
            .await;
        assert_eq!(
            resp.status,
            StatusCode::BAD_REQUEST,
            "{what}: {}",
            resp.text()
        );
        resp.assert_problem(StatusCode::BAD_REQUEST, "bad_request");
    }
}
