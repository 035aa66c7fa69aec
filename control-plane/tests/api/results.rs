//! Results and time series: the numbers equal the engine's on known inputs, days are
//! real, multi-element analyses, authorisation.

use axum::http::StatusCode;
use samplit_engine::stats::analyze::{AnalysisConfig, AnalysisInput, ArmInput, analyze};
use samplit_engine::stats::continuous::Moments;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::fixtures::{
    Experiment, Site, batch, conversion, conversion_at, experiment, exposure, exposure_at,
    ingest_ok, now_ms, site, team_running,
};
use crate::helpers::{TestApp, new_org, new_team};

/// Per arm: (visitors, converters, purchase values of each converter — a visitor with
/// two values bought twice).
type Plan = Vec<(usize, Vec<Vec<f64>>)>;

/// Ingests the plan for `arms` (visitor ids `<prefix>-<arm>-<n>`); returns the engine
/// input an independent computation gives for it (equal fixed shares).
async fn ingest_plan(
    app: &TestApp,
    s: &Site,
    x: &Experiment,
    arms: &[Uuid],
    plan: &Plan,
) -> Vec<ArmInput> {
    let mut items = Vec::new();
    let mut inputs = Vec::new();
    for (a, (visitors, converters)) in plan.iter().enumerate() {
        let arm = arms[a];
        let (mut sum, mut sum_sq) = (0.0, 0.0);
        for v in 0..*visitors {
            let visitor = format!("p-{a}-{v}");
            items.push(exposure(&format!("e-{a}-{v}"), s, x.id, arm, &visitor));
            if let Some(values) = converters.get(v) {
                let mut total = 0.0;
                for (k, value) in values.iter().enumerate() {
                    items.push(conversion(
                        &format!("c-{a}-{v}-{k}"),
                        s,
                        &visitor,
                        "purchase",
                        Some(*value),
                    ));
                    total += value;
                }
                sum += total;
                sum_sq += total * total;
            }
        }
        inputs.push(ArmInput {
            arm_id: arm.to_string(),
            visitors: *visitors as u64,
            conversions: converters.len() as u64,
            revenue: Moments {
                n: *visitors as u64,
                sum,
                sum_sq,
            },
            propensity_sum: 1.0 / plan.len() as f64,
            previous_sequential_p_value: None,
        });
    }
    for chunk in items.chunks(1000) {
        let r = ingest_ok(app, &batch(chunk.to_vec())).await;
        assert!(r["rejected"].as_array().unwrap().is_empty(), "{r}");
    }
    inputs
}

fn engine(arms: Vec<ArmInput>, control: usize) -> Value {
    serde_json::to_value(
        analyze(&AnalysisInput {
            arms,
            control,
            config: AnalysisConfig::default(),
        })
        .unwrap(),
    )
    .unwrap()
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn results_equal_the_engine_on_the_ingested_counts(pool: PgPool) {
    let app = TestApp::new(pool);
    let (team, s, x) = team_running(&app, "single", &[3]).await;
    let plan: Plan = vec![
        (120, vec![vec![10.0]; 12]),
        (
            130,
            [vec![vec![20.0, 5.0]; 3], vec![vec![12.5]; 17]].concat(),
        ),
        (110, vec![vec![8.0]; 6]),
    ];
    let expected_input = ingest_plan(&app, &s, &x, &x.arms, &plan).await;
    let res = app
        .get(
            &format!("/api/v1/experiments/{}/results", x.id),
            Some(&team.viewer.token),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let body = res.json();
    assert_eq!(
        body["goal"]["id"],
        json!(x.purchase),
        "the primary goal by default"
    );
    assert_eq!(body["srm_expected_from"], "fixed_weights");
    let analysis = &body["analyses"][0];
    assert_eq!(analysis["scope"], "arms");
    assert_eq!(analysis["result"], engine(expected_input, 0), "{analysis}");
    assert_eq!(
        analysis["subjects"][1]["revenue_sum"],
        json!(3.0 * 25.0 + 17.0 * 12.5)
    );
    // A few numbers spelled out, so a bug shared by both sides would still show.
    let arms = &analysis["result"]["arms"];
    assert_eq!(arms[0]["visitors"], 120);
    assert_eq!(arms[1]["conversions"], 20);
    assert!((arms[2]["rate"].as_f64().unwrap() - 6.0 / 110.0).abs() < 1e-12);

    // The conversion goal (url goal, no revenue) is analysed on request.
    let res = app
        .get(
            &format!("/api/v1/experiments/{}/results?goal_id={}", x.id, x.signup),
            Some(&team.viewer.token),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let arms = &res.json()["analyses"][0]["result"]["arms"];
    assert_eq!(arms[0]["conversions"], 0);
    assert!(
        arms[0]["revenue"].is_null(),
        "no revenue for a conversion goal: {arms}"
    );
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn the_always_valid_p_value_is_passed_back_as_a_running_minimum(pool: PgPool) {
    let app = TestApp::new(pool);
    let (team, s, x) = team_running(&app, "single", &[2]).await;
    let plan: Plan = vec![(200, vec![vec![1.0]; 10]), (200, vec![vec![1.0]; 40])];
    let mut input = ingest_plan(&app, &s, &x, &x.arms, &plan).await;
    let uri = format!("/api/v1/experiments/{}/results", x.id);
    let first = app.get(&uri, Some(&team.viewer.token)).await.json();
    let p1 = first["analyses"][0]["result"]["arms"][1]["comparison"]["sequential_p_value"]
        .as_f64()
        .unwrap();
    // More control visitors without conversions move the fresh p-value; the reported
    // one is the engine's with the previous value passed back.
    let items = (0..50)
        .map(|v| {
            exposure(
                &format!("more-{v}"),
                &s,
                x.id,
                x.arms[0],
                &format!("more-{v}"),
            )
        })
        .collect();
    ingest_ok(&app, &batch(items)).await;
    input[0].visitors += 50;
    input[0].revenue.n += 50;
    input[1].previous_sequential_p_value = Some(p1);
    let second = app.get(&uri, Some(&team.viewer.token)).await.json();
    assert_eq!(second["analyses"][0]["result"], engine(input, 0));
    let p2 = second["analyses"][0]["result"]["arms"][1]["comparison"]["sequential_p_value"]
        .as_f64()
        .unwrap();
    assert!(p2 <= p1, "{p2} > {p1}");
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn independent_elements_are_analysed_separately(pool: PgPool) {
    let app = TestApp::new(pool);
    let team = new_team(&app).await;
    let s = site(&app, team.owner.org_id).await;
    let x = experiment(
        &app,
        team.owner.org_id,
        s.id,
        "independent",
        &[2, 3],
        "running",
    )
    .await;
    // arms: element 0 → arms 0, 1; element 1 → arms 2, 3, 4.
    let first = ingest_plan(
        &app,
        &s,
        &x,
        &x.arms[..2],
        &vec![(50, vec![vec![2.0]; 5]), (60, vec![vec![3.0]; 9])],
    )
    .await;
    let body = app
        .get(
            &format!("/api/v1/experiments/{}/results", x.id),
            Some(&team.viewer.token),
        )
        .await
        .json();
    let analyses = body["analyses"].as_array().unwrap();
    assert_eq!(analyses.len(), 2, "{body}");
    assert_eq!(analyses[0]["scope"], "element");
    assert_eq!(analyses[0]["element_id"], json!(x.elements[0]));
    let first: Vec<ArmInput> = first
        .into_iter()
        .map(|a| ArmInput {
            propensity_sum: 0.5,
            ..a
        })
        .collect();
    assert_eq!(analyses[0]["result"], engine(first, 0));
    assert_eq!(analyses[1]["subjects"].as_array().unwrap().len(), 3);
    // No visitor on element 1 yet: the engine declines, and the page says why.
    assert!(analyses[1]["result"].is_null(), "{}", analyses[1]);
    assert_eq!(analyses[1]["error"], "arm 0: no visitors");
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn factorial_main_effects_pool_each_variant_over_the_other_elements(pool: PgPool) {
    let app = TestApp::new(pool);
    let team = new_team(&app).await;
    let s = site(&app, team.owner.org_id).await;
    let x = experiment(
        &app,
        team.owner.org_id,
        s.id,
        "factorial",
        &[2, 2],
        "running",
    )
    .await;
    // Combinations in order: (a0,b0) (a0,b1) (a1,b0) (a1,b1).
    let plan: Plan = vec![
        (40, vec![vec![1.0]; 4]),
        (50, vec![vec![2.0]; 10]),
        (45, vec![vec![3.0]; 9]),
        (55, vec![vec![4.0]; 11]),
    ];
    let arms = ingest_plan(&app, &s, &x, &x.arms, &plan).await;
    let body = app
        .get(
            &format!("/api/v1/experiments/{}/results", x.id),
            Some(&team.viewer.token),
        )
        .await
        .json();
    let analyses = body["analyses"].as_array().unwrap();
    assert_eq!(
        analyses
            .iter()
            .map(|a| a["scope"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["arms", "main_effect", "main_effect"]
    );
    let pool_of = |id: String, members: [usize; 2]| {
        let (a, b) = (&arms[members[0]], &arms[members[1]]);
        ArmInput {
            arm_id: id,
            visitors: a.visitors + b.visitors,
            conversions: a.conversions + b.conversions,
            revenue: Moments {
                n: a.revenue.n + b.revenue.n,
                sum: a.revenue.sum + b.revenue.sum,
                sum_sq: a.revenue.sum_sq + b.revenue.sum_sq,
            },
            propensity_sum: 0.5,
            previous_sequential_p_value: None,
        }
    };
    let element_a = vec![
        pool_of(x.variants[0][0].to_string(), [0, 1]),
        pool_of(x.variants[0][1].to_string(), [2, 3]),
    ];
    let element_b = vec![
        pool_of(x.variants[1][0].to_string(), [0, 2]),
        pool_of(x.variants[1][1].to_string(), [1, 3]),
    ];
    assert_eq!(analyses[1]["element_id"], json!(x.elements[0]));
    assert_eq!(analyses[1]["result"], engine(element_a, 0));
    assert_eq!(analyses[2]["result"], engine(element_b, 0));
    assert_eq!(analyses[1]["result"]["arms"][0]["visitors"], 90);
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn the_time_series_has_real_daily_figures_and_cumulative_rates(pool: PgPool) {
    let app = TestApp::new(pool);
    let (team, s, x) = team_running(&app, "single", &[2]).await;
    let day = 86_400_000;
    let t = now_ms();
    let items = vec![
        exposure_at("e1", &s, x.id, x.arms[0], "v1", t - 3 * day),
        exposure_at("e2", &s, x.id, x.arms[0], "v2", t - 3 * day),
        exposure_at("e3", &s, x.id, x.arms[1], "v3", t - 3 * day),
        conversion_at("c1", &s, "v1", "purchase", Some(5.0), t - 3 * day),
        // Nothing on day -2: the day is still in the series, with zeros.
        exposure_at("e4", &s, x.id, x.arms[0], "v4", t - day),
        conversion_at("c2", &s, "v4", "purchase", Some(7.0), t - day),
        conversion_at("c3", &s, "v3", "purchase", None, t - day),
    ];
    ingest_ok(&app, &batch(items)).await;
    let body = app
        .get(
            &format!("/api/v1/experiments/{}/timeseries", x.id),
            Some(&team.viewer.token),
        )
        .await
        .json();
    let today = time::OffsetDateTime::now_utc().date();
    let d = |n: i64| (today - time::Duration::days(n)).to_string();
    assert_eq!(body["days"], json!([d(3), d(2), d(1)]), "{body}");
    let a0 = &body["arms"][0]["points"];
    assert_eq!(body["arms"][0]["arm_id"], json!(x.arms[0]));
    let summary: Vec<(i64, i64, f64, i64, f64)> = a0
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["visitors"].as_i64().unwrap(),
                p["conversions"].as_i64().unwrap(),
                p["revenue"].as_f64().unwrap(),
                p["cumulative_visitors"].as_i64().unwrap(),
                p["cumulative_rate"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (2, 1, 5.0, 2, 0.5),
            (0, 0, 0.0, 2, 0.5),
            (1, 1, 7.0, 3, 2.0 / 3.0)
        ]
    );
    let a1 = &body["arms"][1]["points"];
    assert_eq!(a1[0]["visitors"], 1);
    assert_eq!(a1[2]["conversions"], 1);
    assert_eq!(a1[2]["cumulative_rate"], 1.0);

    // Chance to be best over time, from the cumulative counts with a Beta(1, 1) prior.
    // Worked by hand: day -3, Beta(2, 2) vs Beta(1, 2): ∫ 6x(1−x)·(2x − x²) dx = 0.7;
    // day -1, Beta(3, 2) vs Beta(2, 1): ∫ 12x²(1−x)·x² dx = 0.4.
    let chance =
        |arm: &Value, day: usize| arm[day]["cumulative_chance_to_be_best"].as_f64().unwrap();
    for (day, expected) in [(0, 0.7), (1, 0.7), (2, 0.4)] {
        assert!(
            (chance(a0, day) - expected).abs() < 1e-9,
            "day {day}: {}",
            chance(a0, day)
        );
        assert!(
            (chance(a1, day) - (1.0 - expected)).abs() < 1e-9,
            "day {day}"
        );
    }
    // On the last day it is the results' own figure.
    let results = app
        .get(
            &format!("/api/v1/experiments/{}/results", x.id),
            Some(&team.viewer.token),
        )
        .await
        .json();
    for (i, arm) in [a0, a1].into_iter().enumerate() {
        let shown = results["analyses"][0]["result"]["arms"][i]["chance_to_be_best"]
            .as_f64()
            .unwrap();
        assert!((chance(arm, 2) - shown).abs() < 1e-12, "arm {i}: {shown}");
    }

    // The cumulative rate's 95 % Wilson interval, against values computed independently
    // (Python, statistics.NormalDist): 1 of 2 → [0.094531…, 0.905469…], 2 of 3 →
    // [0.207660…, 0.938508…]; on the last day it is the results' `rate_interval`.
    let interval = |arm: &Value, day: usize| {
        let i = &arm[day]["cumulative_rate_interval"];
        (i["lower"].as_f64().unwrap(), i["upper"].as_f64().unwrap())
    };
    for (got, want) in [
        (
            interval(a0, 0),
            (0.094_531_205_734_230_74, 0.905_468_794_265_769_3),
        ),
        (
            interval(a0, 1),
            (0.094_531_205_734_230_74, 0.905_468_794_265_769_3),
        ),
        (
            interval(a0, 2),
            (0.207_659_600_802_047_82, 0.938_508_055_279_603_8),
        ),
    ] {
        assert!(
            (got.0 - want.0).abs() < 1e-9 && (got.1 - want.1).abs() < 1e-9,
            "{got:?} vs {want:?}"
        );
    }
    for (i, arm) in [a0, a1].into_iter().enumerate() {
        let shown = &results["analyses"][0]["result"]["arms"][i]["rate_interval"];
        let last = interval(arm, 2);
        assert!(
            (last.0 - shown["lower"].as_f64().unwrap()).abs() < 1e-12,
            "arm {i}"
        );
        assert!(
            (last.1 - shown["upper"].as_f64().unwrap()).abs() < 1e-12,
            "arm {i}"
        );
    }
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn results_need_a_member_of_the_experiments_organisation(pool: PgPool) {
    let app = TestApp::new(pool);
    let team = new_team(&app).await;
    let stranger = new_org(&app).await;
    let s = site(&app, team.owner.org_id).await;
    let x = experiment(&app, team.owner.org_id, s.id, "single", &[2], "running").await;
    for path in ["results", "timeseries"] {
        let uri = format!("/api/v1/experiments/{}/{path}", x.id);
        app.get(&uri, None)
            .await
            .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
        app.get(&uri, Some("not-a-token"))
            .await
            .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
        for member in [&team.viewer, &team.editor, &team.admin, &team.owner] {
            let res = app.get(&uri, Some(&member.token)).await;
            assert_eq!(
                res.status,
                StatusCode::OK,
                "{path} for {}: {}",
                member.email,
                res.text()
            );
        }
        app.get(&uri, Some(&stranger.token))
            .await
            .assert_problem(StatusCode::NOT_FOUND, "not_found");
        app.get(
            &format!("/api/v1/experiments/{}/{path}", Uuid::new_v4()),
            Some(&team.viewer.token),
        )
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
        app.get(
            &format!("{uri}?goal_id={}", Uuid::new_v4()),
            Some(&team.viewer.token),
        )
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
        app.get(&format!("{uri}?goal_id=nope"), Some(&team.viewer.token))
            .await
            .assert_problem(StatusCode::BAD_REQUEST, "bad_request");
    }
    // Without a primary goal and no goal_id: 422.
    sqlx::query("UPDATE goals SET is_primary = false WHERE experiment_id = $1")
        .bind(x.id)
        .execute(&app.pool)
        .await
        .unwrap();
    app.get(
        &format!("/api/v1/experiments/{}/results", x.id),
        Some(&team.viewer.token),
    )
    .await
    .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn results_export_as_csv_and_xlsx_with_formulas_neutralised(pool: PgPool) {
    let app = TestApp::new(pool);
    let team = new_team(&app).await;
    let stranger = new_org(&app).await;
    let s = site(&app, team.owner.org_id).await;
    let x = experiment(&app, team.owner.org_id, s.id, "single", &[2], "running").await;
    sqlx::query("UPDATE arms SET name = '=HYPERLINK(\"http://evil\")' WHERE id = $1")
        .bind(x.arms[1])
        .execute(&app.pool)
        .await
        .unwrap();
    ingest_plan(
        &app,
        &s,
        &x,
        &x.arms,
        &vec![(30, vec![vec![1.0]; 3]), (40, vec![vec![2.0]; 8])],
    )
    .await;
    let uri = format!("/api/v1/experiments/{}/results/export", x.id);
    let csv = app
        .get(&format!("{uri}?format=csv"), Some(&team.viewer.token))
        .await;
    assert_eq!(csv.status, StatusCode::OK, "{}", csv.text());
    assert_eq!(csv.headers["content-type"], "text/csv; charset=utf-8");
    assert!(
        csv.headers["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment; filename=\"results-")
    );
    let text = csv.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[0]
            .starts_with("scope,element,subject_id,subject,is_control,visitors,conversions,rate"),
        "{text}"
    );
    assert!(lines[1].contains(",30,3,0.1,"), "control row: {text}");
    assert!(
        lines[2].contains("'=HYPERLINK"),
        "formula neutralised: {text}"
    );
    assert!(lines[2].contains(",40,8,0.2,"), "{text}");

    let xlsx = app
        .get(&format!("{uri}?format=xlsx"), Some(&team.viewer.token))
        .await;
    assert_eq!(xlsx.status, StatusCode::OK);
    assert_eq!(
        xlsx.headers["content-type"],
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    );
    assert_eq!(&xlsx.body[..2], b"PK", "an XLSX file is a zip archive");

    app.get(&format!("{uri}?format=csv"), None)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    app.get(&format!("{uri}?format=csv"), Some(&stranger.token))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    app.get(&format!("{uri}?format=pdf"), Some(&team.viewer.token))
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "bad_request");
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn bandit_srm_expects_the_shares_the_logged_propensities_implied(pool: PgPool) {
    let app = TestApp::new(pool);
    let (team, s, x) = team_running(&app, "single", &[2]).await;
    sqlx::query(
        "UPDATE experiments SET allocator = '{\"kind\":\"thompson\",\"prior_alpha\":1,\"prior_beta\":1,\"min_exposures\":10,\"floor\":0.01}' WHERE id = $1",
    )
    .bind(x.id)
    .execute(&app.pool)
    .await
    .unwrap();
    // Snapshot 1: arms at 0.8 / 0.2, 80 + 20 visitors. Snapshot 2: only arm 0 seen, at
    // 0.6 — arm 1's share that version is the rest, 0.4.
    let mut items = Vec::new();
    for v in 0..100 {
        let (arm, p) = if v < 80 {
            (x.arms[0], 0.8)
        } else {
            (x.arms[1], 0.2)
        };
        let mut e = exposure(&format!("s1-{v}"), &s, x.id, arm, &format!("s1-{v}"));
        e["propensity"] = json!(p);
        items.push(e);
    }
    for v in 0..10 {
        let mut e = exposure(&format!("s2-{v}"), &s, x.id, x.arms[0], &format!("s2-{v}"));
        e["propensity"] = json!(0.6);
        e["snapshot_version"] = json!(2);
        items.push(e);
    }
    ingest_ok(&app, &batch(items)).await;
    let body = app
        .get(
            &format!("/api/v1/experiments/{}/results", x.id),
            Some(&team.viewer.token),
        )
        .await
        .json();
    assert_eq!(body["srm_expected_from"], "logged_propensities");
    let subjects = &body["analyses"][0]["subjects"];
    // Expected visitors: arm 0 = 100·0.8 + 10·0.6 = 86, arm 1 = 100·0.2 + 10·0.4 = 24.
    let share0 = subjects[0]["expected_share"].as_f64().unwrap();
    assert!((share0 - 86.0 / 110.0).abs() < 1e-9, "{subjects}");
    let srm = &body["analyses"][0]["result"]["srm"];
    assert!(
        srm["p_value"].as_f64().unwrap() > 0.2,
        "90/20 observed vs 86/24 expected: {srm}"
    );
    assert_eq!(srm["mismatch"], false);
}
