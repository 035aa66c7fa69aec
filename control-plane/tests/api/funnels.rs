//! Funnels (`/api/v1/experiments/{id}/funnels`): reach per arm from batches ingested
//! through the ingest endpoint (order, window, conversions before the exposure, visitors
//! in two units), the retention warning, authorisation and bad input. The statistics
//! themselves are checked against statsmodels in `samplit_engine::stats::funnel`.

use axum::http::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::fixtures::{
    Experiment, Site, batch, conversion_at, experiment, exposure_at, ingest_ok, now_ms,
    team_running,
};
use crate::helpers::{Team, TestApp, new_org};

/// A third goal, custom event `add_to_cart`, on the experiment.
async fn cart_goal(app: &TestApp, experiment: Uuid) -> Uuid {
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO goals (id, experiment_id, name, trigger, target, metric)
         VALUES ($1, $2, 'Cart', 'custom', 'add_to_cart', 'conversion')",
    )
    .bind(id)
    .bind(experiment)
    .execute(&app.pool)
    .await
    .unwrap();
    id
}

fn funnels_uri(x: Uuid) -> String {
    format!("/api/v1/experiments/{x}/funnels")
}

/// Creates a funnel on experiment `x` as `token` (201 expected); the funnel's view.
async fn create_funnel(app: &TestApp, token: &str, x: Uuid, body: Value) -> Value {
    let r = app.post(&funnels_uri(x), Some(token), body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    r.json()
}

/// Creates a funnel like [`create_funnel`] and returns its id.
async fn funnel_id(app: &TestApp, token: &str, x: Uuid, body: Value) -> String {
    create_funnel(app, token, x, body).await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Deletes funnel `fid` of experiment `x` as `token` (204 expected).
async fn delete_funnel(app: &TestApp, token: &str, x: Uuid, fid: &str) {
    let r = app
        .delete(&format!("{}/{fid}", funnels_uri(x)), Some(token))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
}

/// The results of funnel `fid` of experiment `x` as `token` sees them (200 expected).
async fn funnel_results(app: &TestApp, token: &str, x: Uuid, fid: &str) -> Value {
    let r = app
        .get(&format!("{}/{fid}/results", funnels_uri(x)), Some(token))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    r.json()
}

/// (arm index, visitor, [(goal name, seconds after the exposure)]).
type Plan<'a> = [(usize, &'a str, &'a [(&'a str, i64)])];

/// Exposes each visitor to its arm at `base`, then sends its conversions.
async fn ingest_plan(app: &TestApp, site: &Site, x: &Experiment, base: i64, plan: &Plan<'_>) {
    let mut items = Vec::new();
    for (arm, v, events) in plan {
        items.push(exposure_at(
            &format!("x-{v}"),
            site,
            x.id,
            x.arms[*arm],
            v,
            base,
        ));
        for (i, (goal, secs)) in events.iter().enumerate() {
            items.push(conversion_at(
                &format!("c-{v}-{i}"),
                site,
                v,
                goal,
                None,
                base + secs * 1000,
            ));
        }
    }
    let answer = ingest_ok(app, &batch(items)).await;
    assert_eq!(answer["rejected"], json!([]), "{answer}");
}

fn reached(arm: &Value) -> Vec<u64> {
    arm["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["reached"].as_u64().unwrap())
        .collect()
}

fn codes(body: &Value) -> Vec<String> {
    body["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["code"].as_str().unwrap().to_owned())
        .collect()
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn reach_follows_order_window_and_exposure(pool: PgPool) {
    let app = TestApp::new(pool);
    let (team, s, x) = team_running(&app, "single", &[2]).await;
    let cart = cart_goal(&app, x.id).await;
    // An hour's window; events 2 h after the exposure fall outside it.
    let funnel = create_funnel(
        &app,
        &team.editor.token,
        x.id,
        json!({"name": "Checkout", "steps": [x.signup, cart, x.purchase],
                   "window_seconds": 3600}),
    )
    .await;
    assert_eq!(funnel["window_seconds"], 3600);
    let names: Vec<&str> = funnel["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["goal_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["signup", "Cart", "Purchase"]);
    let fid = funnel["id"].as_str().unwrap().to_owned();

    // Three hours ago: every event, even 2 h later, is in the past.
    let base = now_ms() - 3 * 3600 * 1000;
    let plan: &Plan<'_> = &[
        // Control.
        (
            0,
            "a1",
            &[("signup", 10), ("add_to_cart", 20), ("purchase", 30)],
        ),
        (0, "a2", &[("signup", 10), ("add_to_cart", 20)]),
        // Out of order: cart before signup; purchase then lacks a cart after signup.
        (
            0,
            "a3",
            &[("add_to_cart", 10), ("signup", 20), ("purchase", 30)],
        ),
        // Signed up before the exposure: does not count.
        (0, "a4", &[("signup", -100), ("add_to_cart", 20)]),
        (0, "a5", &[]),
        // Treatment.
        (
            1,
            "b1",
            &[("signup", 10), ("add_to_cart", 20), ("purchase", 30)],
        ),
        // The cart comes after the window.
        (1, "b2", &[("signup", 10), ("add_to_cart", 7200)]),
        // Repeats are harmless; the last step just inside the window.
        (
            1,
            "b3",
            &[
                ("signup", 10),
                ("signup", 15),
                ("add_to_cart", 20),
                ("purchase", 3600),
            ],
        ),
        (1, "b4", &[("purchase", 10)]),
        // An unrelated custom event.
        (1, "b5", &[("newsletter", 5), ("signup", 6)]),
    ];
    ingest_plan(&app, &s, &x, base, plan).await;
    // A visitor never exposed converts: not in the funnel.
    let stray = conversion_at("c-stray", &s, "nobody", "signup", None, base + 1000);
    ingest_ok(&app, &batch(vec![stray])).await;

    let body = funnel_results(&app, &team.viewer.token, x.id, &fid).await;
    let analysis = &body["analyses"][0];
    assert_eq!(analysis["scope"], "arms");
    let (control, treatment) = (&analysis["arms"][0], &analysis["arms"][1]);
    assert_eq!(control["is_control"], true);
    assert_eq!(control["entered"], 5);
    assert_eq!(reached(control), [3, 2, 1]);
    assert_eq!(treatment["entered"], 5);
    assert_eq!(reached(treatment), [4, 2, 2]);
    // Conversion and drop-off per step.
    assert_eq!(control["steps"][0]["drop_off"], 2);
    assert_eq!(control["steps"][1]["rate_from_previous"], json!(2.0 / 3.0));
    assert_eq!(control["steps"][2]["drop_off"], 1);
    assert_eq!(control["steps"][2]["rate_from_entry"], json!(0.2));
    assert_eq!(control["steps"][0]["comparison"], Value::Null);
    let c = &treatment["steps"][0]["comparison"];
    assert!(
        (c["difference"].as_f64().unwrap() - 0.2).abs() < 1e-12,
        "{c}"
    );
    let (lo, hi) = (
        c["interval"]["lower"].as_f64().unwrap(),
        c["interval"]["upper"].as_f64().unwrap(),
    );
    assert!(lo < 0.2 && 0.2 < hi, "{c}");
    let p = c["p_value"].as_f64().unwrap();
    let p_holm = c["p_value_holm"].as_f64().unwrap();
    assert!(p > 0.0 && p <= p_holm && p_holm <= 1.0, "{c}");
    assert_eq!(body["complete_from"], Value::Null);
    assert_eq!(codes(&body), ["exploratory", "small_arms"]);

    // Listing, then deleting.
    let r = app.get(&funnels_uri(x.id), Some(&team.viewer.token)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json().as_array().unwrap().len(), 1);
    delete_funnel(&app, &team.editor.token, x.id, &fid).await;
    let r = app.get(&funnels_uri(x.id), Some(&team.viewer.token)).await;
    assert_eq!(r.json(), json!([]));
    let actions: Vec<String> = sqlx::query_scalar(
        "SELECT action FROM audit_log WHERE target_id = $1 AND action LIKE 'funnel.%' ORDER BY seq",
    )
    .bind(x.id)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(actions, ["funnel.created", "funnel.deleted"]);
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn a_visitor_in_two_units_counts_in_each_element(pool: PgPool) {
    let app = TestApp::new(pool);
    let (team, s, x) = team_running(&app, "independent", &[2, 2]).await;
    let funnel = create_funnel(
        &app,
        &team.editor.token,
        x.id,
        json!({"name": "Signup then buy", "steps": [x.signup, x.purchase]}),
    )
    .await;
    assert_eq!(funnel["window_seconds"], 604_800, "7 days by default");
    let fid = funnel["id"].as_str().unwrap().to_owned();
    let base = now_ms() - 3600 * 1000;
    // Arms: element 0 → 0 (control), 1; element 1 → 2 (control), 3.
    let items = vec![
        exposure_at("x-v-e0", &s, x.id, x.arms[1], "v", base),
        exposure_at("x-v-e1", &s, x.id, x.arms[2], "v", base + 60_000),
        exposure_at("x-w-e0", &s, x.id, x.arms[0], "w", base),
        // v signs up between its two exposures, then buys: element 1's funnel starts at
        // its own exposure, after the signup.
        conversion_at("c-v-1", &s, "v", "signup", None, base + 30_000),
        conversion_at("c-v-2", &s, "v", "purchase", None, base + 90_000),
        conversion_at("c-w-1", &s, "w", "signup", None, base + 10_000),
    ];
    let answer = ingest_ok(&app, &batch(items)).await;
    assert_eq!(answer["rejected"], json!([]), "{answer}");
    let body = funnel_results(&app, &team.viewer.token, x.id, &fid).await;
    let analyses = body["analyses"].as_array().unwrap();
    assert_eq!(analyses.len(), 2);
    assert_eq!(analyses[0]["scope"], "element");
    let e0 = &analyses[0]["arms"];
    assert_eq!(e0[0]["entered"], 1);
    assert_eq!(reached(&e0[0]), [1, 0], "w signed up only");
    assert_eq!(e0[1]["entered"], 1);
    assert_eq!(
        reached(&e0[1]),
        [1, 1],
        "v did both after its element-0 exposure"
    );
    let e1 = &analyses[1]["arms"];
    assert_eq!(e1[0]["entered"], 1);
    assert_eq!(
        reached(&e1[0]),
        [0, 0],
        "v signed up before its element-1 exposure"
    );
    assert_eq!(e1[1]["entered"], 0);
    assert_eq!(e1[1]["steps"][0]["rate_from_entry"], Value::Null);
    assert_eq!(e1[1]["steps"][0]["comparison"], Value::Null);
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn a_factorial_funnel_gets_each_elements_main_effect(pool: PgPool) {
    let app = TestApp::new(pool);
    let (team, s, x) = team_running(&app, "factorial", &[2, 2]).await;
    let funnel = create_funnel(
        &app,
        &team.editor.token,
        x.id,
        json!({"name": "Signup then buy", "steps": [x.signup, x.purchase]}),
    )
    .await;
    let fid = funnel["id"].as_str().unwrap().to_owned();
    let base = now_ms() - 3600 * 1000;
    // Arms (element 0's variant, element 1's variant): 0 = (0,0), 1 = (0,1), 2 = (1,0),
    // 3 = (1,1). Per arm: visitors, of whom the first `signups` sign up and the first
    // `buyers` of those also buy.
    let plan: [(usize, usize, usize); 4] = [(4, 2, 1), (3, 3, 0), (5, 1, 1), (2, 2, 2)];
    let mut items = Vec::new();
    for (arm, (visitors, signups, buyers)) in plan.into_iter().enumerate() {
        for i in 0..visitors {
            let v = format!("v{arm}-{i}");
            items.push(exposure_at(
                &format!("x-{v}"),
                &s,
                x.id,
                x.arms[arm],
                &v,
                base,
            ));
            if i < signups {
                items.push(conversion_at(
                    &format!("s-{v}"),
                    &s,
                    &v,
                    "signup",
                    None,
                    base + 1_000,
                ));
            }
            if i < buyers {
                items.push(conversion_at(
                    &format!("b-{v}"),
                    &s,
                    &v,
                    "purchase",
                    None,
                    base + 2_000,
                ));
            }
        }
    }
    let answer = ingest_ok(&app, &batch(items)).await;
    assert_eq!(answer["rejected"], json!([]), "{answer}");

    let body = funnel_results(&app, &team.viewer.token, x.id, &fid).await;
    let analyses = body["analyses"].as_array().unwrap();
    let scopes: Vec<&str> = analyses
        .iter()
        .map(|a| a["scope"].as_str().unwrap())
        .collect();
    assert_eq!(scopes, ["arms", "main_effect", "main_effect"]);
    // The combinations, each on its own.
    for (arm, (visitors, signups, buyers)) in plan.into_iter().enumerate() {
        let a = &analyses[0]["arms"][arm];
        assert_eq!(a["id"], json!(x.arms[arm]));
        assert_eq!(a["entered"], visitors as u64);
        assert_eq!(reached(a), [signups as u64, buyers as u64]);
    }
    // Each element's variants pool the combinations that show them, by the plan above:
    // element 0: variant 0 = arms 0 + 1, variant 1 = arms 2 + 3;
    // element 1: variant 0 = arms 0 + 2, variant 1 = arms 1 + 3.
    let pooled = |arms: [usize; 2]| -> (u64, Vec<u64>) {
        let sum = |f: fn(&(usize, usize, usize)) -> usize| {
            arms.iter().map(|&a| f(&plan[a]) as u64).sum::<u64>()
        };
        (sum(|p| p.0), vec![sum(|p| p.1), sum(|p| p.2)])
    };
    for (element, groups) in [(0, [[0, 1], [2, 3]]), (1, [[0, 2], [1, 3]])] {
        let effect = &analyses[1 + element];
        assert_eq!(effect["element_id"], json!(x.elements[element]));
        for (variant, arms) in groups.into_iter().enumerate() {
            let subject = &effect["arms"][variant];
            assert_eq!(subject["id"], json!(x.variants[element][variant]));
            assert_eq!(subject["is_control"], variant == 0);
            let (entered, reach) = pooled(arms);
            assert_eq!(
                subject["entered"], entered,
                "element {element} variant {variant}"
            );
            assert_eq!(
                reached(subject),
                reach,
                "element {element} variant {variant}"
            );
        }
        // The comparison of variant 1 with the control at the first step exists.
        assert!(effect["arms"][1]["steps"][0]["comparison"]["p_value"].is_number());
    }
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn results_warn_when_raw_events_have_expired(pool: PgPool) {
    let app = TestApp::new(pool);
    let (team, _s, x) = team_running(&app, "single", &[2]).await;
    // An assignment from 100 days ago: past the default 90-day retention.
    sqlx::query(
        "INSERT INTO assignments (experiment_id, visitor_id, unit, arm_id, propensity,
                                  snapshot_version, first_seen_at)
         VALUES ($1, 'old', $1, $2, 0.5, 1, now() - interval '100 days')",
    )
    .bind(x.id)
    .bind(x.arms[0])
    .execute(&app.pool)
    .await
    .unwrap();
    let funnel = create_funnel(
        &app,
        &team.editor.token,
        x.id,
        json!({"name": "F", "steps": [x.signup, x.purchase], "window_seconds": 60}),
    )
    .await;
    let fid = funnel["id"].as_str().unwrap().to_owned();
    let body = funnel_results(&app, &team.viewer.token, x.id, &fid).await;
    let expected = (time::OffsetDateTime::now_utc().date() - time::Duration::days(90)).to_string();
    assert_eq!(body["complete_from"], json!(expected), "{body}");
    assert!(codes(&body).contains(&"raw_events_expired".to_owned()));
    assert_eq!(body["analyses"][0]["arms"][0]["entered"], 1);
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn funnels_are_authorised(pool: PgPool) {
    let app = TestApp::new(pool);
    let (team, _s, x) = team_running(&app, "single", &[2]).await;
    let body = json!({"name": "F", "steps": [x.signup, x.purchase]});
    let r = app
        .post(&funnels_uri(x.id), Some(&team.viewer.token), body.clone())
        .await;
    r.assert_problem(StatusCode::FORBIDDEN, "forbidden");
    let funnel = create_funnel(&app, &team.editor.token, x.id, body.clone()).await;
    let fid = funnel["id"].as_str().unwrap().to_owned();
    let one = format!("{}/{fid}", funnels_uri(x.id));
    let results = format!("{one}/results");
    assert_eq!(
        app.get(&results, None).await.status,
        StatusCode::UNAUTHORIZED
    );
    app.delete(&one, Some(&team.viewer.token))
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");

    // Another organisation sees none of it.
    let other = new_org(&app).await;
    for uri in [funnels_uri(x.id), results.clone()] {
        app.get(&uri, Some(&other.token))
            .await
            .assert_problem(StatusCode::NOT_FOUND, "not_found");
    }
    app.post(&funnels_uri(x.id), Some(&other.token), body.clone())
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    app.delete(&one, Some(&other.token))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    // The funnel under another experiment of the same organisation: 404.
    let site2 = crate::fixtures::site(&app, team.owner.org_id).await;
    let y = experiment(&app, team.owner.org_id, site2.id, "single", &[2], "running").await;
    app.get(
        &format!("{}/{fid}/results", funnels_uri(y.id)),
        Some(&team.viewer.token),
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "not_found");
    // Ids that are not UUIDs: 404.
    app.get(
        &format!("{}/nope/results", funnels_uri(x.id)),
        Some(&team.viewer.token),
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "not_found");
    // Still there for its own experiment.
    let r = app.get(&results, Some(&team.viewer.token)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());

    // An archived experiment takes no new funnel, but its funnels still read.
    sqlx::query("UPDATE experiments SET status = 'archived' WHERE id = $1")
        .bind(x.id)
        .execute(&app.pool)
        .await
        .unwrap();
    let again = json!({"name": "G", "steps": [x.signup, x.purchase]});
    app.post(&funnels_uri(x.id), Some(&team.editor.token), again)
        .await
        .assert_problem(StatusCode::CONFLICT, "not_editable");
    assert_eq!(
        app.get(&results, Some(&team.viewer.token)).await.status,
        StatusCode::OK
    );
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn bad_funnels_are_refused(pool: PgPool) {
    let app = TestApp::new(pool);
    let (team, s, x) = team_running(&app, "single", &[2]).await;
    let token = Some(team.editor.token.as_str());
    let uri = funnels_uri(x.id);
    let y = experiment(&app, team.owner.org_id, s.id, "single", &[2], "running").await;
    let nine: Vec<Uuid> = (0..9).map(|_| Uuid::new_v4()).collect();
    let cases = [
        json!({"name": "F", "steps": [x.signup]}),
        json!({"name": "F", "steps": nine}),
        json!({"name": "F", "steps": [x.signup, y.purchase]}),
        json!({"name": "F", "steps": [x.signup, Uuid::new_v4()]}),
        json!({"name": "F", "steps": [x.signup, x.purchase], "window_seconds": 59}),
        json!({"name": "F", "steps": [x.signup, x.purchase], "window_seconds": 7_776_001}),
        json!({"name": "F", "steps": [x.signup, x.signup]}),
        json!({"name": "", "steps": [x.signup, x.purchase]}),
        json!({"name": "x".repeat(101), "steps": [x.signup, x.purchase]}),
    ];
    for case in cases {
        let r = app.post(&uri, token, case.clone()).await;
        r.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    }
    // Not the expected shape: a 4xx problem, never a 500.
    for case in [
        json!({"name": "F", "steps": ["not-a-uuid", x.purchase]}),
        json!({"name": "F", "steps": [x.signup, x.purchase], "extra": 1}),
        json!({"name": "F", "steps": [x.signup, x.purchase], "window_seconds": "long"}),
        json!([]),
    ] {
        let r = app.post(&uri, token, case.clone()).await;
        assert!(r.status.is_client_error(), "{case}: {}", r.status);
        assert_eq!(
            r.headers.get("content-type").unwrap(),
            "application/problem+json"
        );
    }
    // A name taken.
    let ok = json!({"name": "F", "steps": [x.signup, x.purchase]});
    assert_eq!(
        app.post(&uri, token, ok.clone()).await.status,
        StatusCode::CREATED
    );
    app.post(&uri, token, ok)
        .await
        .assert_problem(StatusCode::CONFLICT, "funnel_name_taken");
    // Deleting a goal drops the funnels that use it.
    sqlx::query("DELETE FROM goals WHERE id = $1")
        .bind(x.signup)
        .execute(&app.pool)
        .await
        .unwrap();
    let r = app.get(&uri, Some(&team.viewer.token)).await;
    assert_eq!(r.json(), json!([]));
}

/// Funnel results run behind the analysis gate (`analysis_gate`): one at a time per
/// organisation (another waits its turn, then 429), a bounded number in all (overflow
/// waits, then 503); authorisation comes first, so another organisation's ids never
/// queue.
#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn funnel_results_are_bounded_per_organisation_and_in_all(pool: PgPool) {
    let app = TestApp::with_config(
        pool,
        crate::helpers::test_config_with(&[
            ("SAMPLIT_ANALYSIS_CONCURRENCY", "2"),
            ("SAMPLIT_ANALYSIS_WAIT_MS", "50"),
        ]),
    );
    let (team, _s, x) = team_running(&app, "single", &[2]).await;
    let (other, _t, y) = team_running(&app, "single", &[2]).await;
    let mut results = Vec::new();
    for (t, e) in [(&team, &x), (&other, &y)] {
        let body = json!({"name": "F", "steps": [e.signup, e.purchase]});
        let funnel = create_funnel(&app, &t.editor.token, e.id, body).await;
        let fid = funnel["id"].as_str().unwrap().to_owned();
        results.push(format!("{}/{fid}/results", funnels_uri(e.id)));
    }

    // The first organisation has an analysis running (held here): its next request
    // waits the configured 50 ms for the turn, then 429.
    let held = app.state.analyses.enter(team.owner.org_id).await.unwrap();
    let limited = app.get(&results[0], Some(&team.viewer.token)).await;
    limited.assert_problem(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert_eq!(limited.headers["retry-after"], "1");
    // Its neighbour is not held up by it...
    let r = app.get(&results[1], Some(&other.viewer.token)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    // ...and cannot reach the first organisation's funnel, slot or not.
    app.get(&results[0], Some(&other.viewer.token))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");

    // Every slot busy (a third organisation holds the second): the neighbour waits the
    // configured 50 ms, then 503 with Retry-After.
    let third = new_org(&app).await;
    let busy = app.state.analyses.enter(third.org_id).await.unwrap();
    let r = app.get(&results[1], Some(&other.viewer.token)).await;
    r.assert_problem(StatusCode::SERVICE_UNAVAILABLE, "busy");
    assert!(r.headers.contains_key("retry-after"));

    // Slots freed: both read again.
    drop(held);
    drop(busy);
    for (uri, t) in [(&results[0], &team), (&results[1], &other)] {
        let r = app.get(uri, Some(&t.viewer.token)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    }
    assert!(app.state.analyses.max_in_flight() <= 2);
}

/// A funnel's queries stop at `SAMPLIT_ANALYSIS_TIMEOUT_MS` (a statement timeout in the
/// database), with a 503 problem that says so and how to narrow the funnel. Without it,
/// the 30 s request timeout answered the client while PostgreSQL went on computing, and
/// the request's analysis slot was already free: a loop of such requests would keep
/// the database busy past the analysis gate's bound. Here a lock held on the raw
/// conversions stands in for a computation too large to finish in time.
/// A two-step funnel (signup, purchase) on a running experiment of a new team, with one
/// visitor who signed up an hour ago, on an app whose analyses have `limits`:
/// (app, team, site, experiment, funnel id).
async fn one_visitor_funnel(
    pool: PgPool,
    limits: &[(&str, &str)],
) -> (TestApp, Team, Site, Experiment, String) {
    let app = TestApp::with_config(pool, crate::helpers::test_config_with(limits));
    let (team, s, x) = team_running(&app, "single", &[2]).await;
    let body = json!({"name": "F", "steps": [x.signup, x.purchase]});
    let fid = funnel_id(&app, &team.editor.token, x.id, body).await;
    ingest_plan(
        &app,
        &s,
        &x,
        now_ms() - 3600 * 1000,
        &[(0, "a1", &[("signup", 10)])],
    )
    .await;
    (app, team, s, x, fid)
}

/// Locks the raw conversions until the transaction ends: a stand-in for a funnel too
/// large to compute within a budget.
async fn lock_raw_conversions(app: &TestApp) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut blocker = app.pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE raw_conversions IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *blocker)
        .await
        .unwrap();
    blocker
}

/// Runs the background worker's pass (`serve` runs it every 2 s): the funnels computed.
async fn run_background(app: &TestApp) -> usize {
    samplit_control_plane::funnel_runs::run_pending(&app.state)
        .await
        .unwrap()
}

/// Moves the funnel's background `column` (a time) `minutes` into the past.
async fn age_run(app: &TestApp, fid: &str, column: &str, minutes: i32) {
    sqlx::query(&format!(
        "UPDATE funnel_runs SET {column} = {column} - make_interval(mins => $2)
          WHERE funnel_id = $1::uuid"
    ))
    .bind(fid)
    .bind(minutes)
    .execute(&app.pool)
    .await
    .unwrap();
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn a_funnel_too_slow_for_a_request_is_computed_in_the_background_and_served_with_its_age(
    pool: PgPool,
) {
    let (app, team, s, x, fid) =
        one_visitor_funnel(pool, &[("SAMPLIT_ANALYSIS_TIMEOUT_MS", "300")]).await;
    let base = now_ms() - 3600 * 1000;
    let uri = format!("{}/{fid}/results", funnels_uri(x.id));

    // Too large to compute within the request's budget.
    let blocker = lock_raw_conversions(&app).await;
    let started = std::time::Instant::now();
    let r = app.get(&uri, Some(&team.viewer.token)).await;
    let waited = started.elapsed();
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    assert_eq!(r.headers["retry-after"], "5");
    let computing = r.json();
    assert_eq!(computing["status"], "computing");
    assert!(
        computing["message"].as_str().unwrap().contains("0.3 s"),
        "{computing}"
    );
    assert!(
        waited < std::time::Duration::from_secs(10),
        "stopped by the statement timeout, not the request's: {waited:?}"
    );
    // Nothing of the request still runs in the database.
    let active: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity
          WHERE datname = current_database() AND pid <> pg_backend_pid()
            AND state = 'active' AND query ILIKE '%raw_conversions%'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(active, 0, "the funnel's query was cancelled");
    // Asked again while it waits: 202 at once, the same request, no second computation.
    let started = std::time::Instant::now();
    let again = app.get(&uri, Some(&team.viewer.token)).await;
    assert_eq!(again.status, StatusCode::ACCEPTED, "{}", again.text());
    assert_eq!(again.json()["requested_at"], computing["requested_at"]);
    assert!(started.elapsed() < std::time::Duration::from_millis(250));
    // Another organisation's member gets nothing of it.
    let other = new_org(&app).await;
    app.get(&uri, Some(&other.token))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    blocker.rollback().await.unwrap();

    // The worker computes it (serve runs it every 2 s) and keeps the answer.
    assert_eq!(run_background(&app).await, 1);
    let results = funnel_results(&app, &team.viewer.token, x.id, &fid).await;
    assert_eq!(reached(&results["analyses"][0]["arms"][0]), [1, 0]);
    let kept: time::OffsetDateTime =
        sqlx::query_scalar("SELECT result_at FROM funnel_runs WHERE funnel_id = $1::uuid")
            .bind(&fid)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    let computed_at = time::OffsetDateTime::parse(
        results["computed_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!(
        (kept - computed_at).abs() < time::Duration::seconds(1),
        "served with its age"
    );
    let warning = warning_message(&results, "computed_in_background");
    assert!(warning.contains("0.3 s"), "{warning}");
    // Served from the background, not computed again: a new visitor does not show yet.
    ingest_plan(
        &app,
        &s,
        &x,
        base,
        &[(0, "a2", &[("signup", 10), ("purchase", 20)])],
    )
    .await;
    let results = funnel_results(&app, &team.viewer.token, x.id, &fid).await;
    assert_eq!(reached(&results["analyses"][0]["arms"][0]), [1, 0]);
    assert_eq!(
        run_background(&app).await,
        0,
        "nothing queued while the answer is fresh"
    );

    // Ten minutes later, the old answer is served once more and a newer one queued.
    age_run(&app, &fid, "result_at", 11).await;
    let stale = funnel_results(&app, &team.viewer.token, x.id, &fid).await;
    assert_eq!(reached(&stale["analyses"][0]["arms"][0]), [1, 0]);
    assert!(
        warning_message(&stale, "computed_in_background").contains("newer computation"),
        "{stale}"
    );
    assert_eq!(run_background(&app).await, 1);
    let fresh = funnel_results(&app, &team.viewer.token, x.id, &fid).await;
    assert_eq!(reached(&fresh["analyses"][0]["arms"][0]), [2, 1]);

    // Another funnel of the experiment goes to the background at once: nothing is locked
    // now, so a live attempt would have answered 200.
    let body = json!({"name": "G", "steps": [x.purchase, x.signup]});
    let sibling = funnel_id(&app, &team.editor.token, x.id, body).await;
    let sibling_uri = format!("{}/{sibling}/results", funnels_uri(x.id));
    let r = app.get(&sibling_uri, Some(&team.viewer.token)).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    assert_eq!(run_background(&app).await, 1);
    let results = funnel_results(&app, &team.viewer.token, x.id, &sibling).await;
    // a2 bought after signing up: one reaches the purchase, nobody signs up after it.
    assert_eq!(reached(&results["analyses"][0]["arms"][0]), [1, 0]);
    warning_message(&results, "computed_in_background");
    // Another experiment's funnel is computed while the request waits.
    let y = experiment(&app, team.owner.org_id, s.id, "single", &[2], "running").await;
    let body = json!({"name": "F", "steps": [y.signup, y.purchase]});
    let theirs = funnel_id(&app, &team.editor.token, y.id, body).await;
    let results = funnel_results(&app, &team.viewer.token, y.id, &theirs).await;
    assert!(!from_background(&results), "{results}");
    // A day later the experiment's funnels are tried live first again.
    age_run(&app, &fid, "result_at", 25 * 60).await;
    age_run(&app, &sibling, "result_at", 25 * 60).await;
    let body = json!({"name": "H", "steps": [x.signup, x.purchase]});
    let later = funnel_id(&app, &team.editor.token, x.id, body).await;
    let results = funnel_results(&app, &team.viewer.token, x.id, &later).await;
    assert_eq!(reached(&results["analyses"][0]["arms"][0]), [2, 1]);
    assert!(!from_background(&results), "{results}");

    // Deleting the funnel deletes what the background kept of it.
    delete_funnel(&app, &team.editor.token, x.id, &fid).await;
    let left: Vec<String> = sqlx::query_scalar("SELECT funnel_id::text FROM funnel_runs")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(left, [sibling]);
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn a_funnel_too_slow_even_in_the_background_is_not_tried_again_for_an_hour(pool: PgPool) {
    let (app, team, _s, x, fid) = one_visitor_funnel(
        pool,
        &[
            ("SAMPLIT_ANALYSIS_TIMEOUT_MS", "300"),
            ("SAMPLIT_ANALYSIS_BACKGROUND_TIMEOUT_MS", "400"),
        ],
    )
    .await;
    let uri = format!("{}/{fid}/results", funnels_uri(x.id));

    // Too slow for the request; the background computes it.
    let blocker = lock_raw_conversions(&app).await;
    assert_eq!(
        app.get(&uri, Some(&team.viewer.token)).await.status,
        StatusCode::ACCEPTED
    );
    blocker.rollback().await.unwrap();
    assert_eq!(run_background(&app).await, 1);

    // Ten minutes later its refresh runs past the background's budget too: the last
    // answer is still served, says so, and is not queued again.
    age_run(&app, &fid, "result_at", 11).await;
    let blocker = lock_raw_conversions(&app).await;
    let stale = funnel_results(&app, &team.viewer.token, x.id, &fid).await;
    assert!(warning_message(&stale, "computed_in_background").contains("newer computation"));
    assert_eq!(run_background(&app).await, 1);
    let served = funnel_results(&app, &team.viewer.token, x.id, &fid).await;
    assert_eq!(reached(&served["analyses"][0]["arms"][0]), [1, 0]);
    let warning = warning_message(&served, "computed_in_background");
    assert!(
        warning.contains("ran past the background limit"),
        "{warning}"
    );
    assert_eq!(run_background(&app).await, 0, "not queued again at once");

    // Without an answer kept, the failure itself is the answer for the hour.
    sqlx::query(
        "UPDATE funnel_runs SET result = NULL, result_at = NULL WHERE funnel_id = $1::uuid",
    )
    .bind(&fid)
    .execute(&app.pool)
    .await
    .unwrap();
    let problem = app
        .get(&uri, Some(&team.viewer.token))
        .await
        .assert_problem(StatusCode::SERVICE_UNAVAILABLE, "analysis_timeout");
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("0.4 s") && detail.contains("SAMPLIT_ANALYSIS_BACKGROUND_TIMEOUT_MS"),
        "{detail}"
    );
    assert!(detail.contains("window"), "says how to narrow it: {detail}");
    assert_eq!(run_background(&app).await, 0);
    blocker.rollback().await.unwrap();

    // An hour later it is tried again, live first: the lock gone, it computes now.
    age_run(&app, &fid, "failed_at", 61).await;
    let results = funnel_results(&app, &team.viewer.token, x.id, &fid).await;
    assert_eq!(reached(&results["analyses"][0]["arms"][0]), [1, 0]);
    assert!(
        results["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|w| w["code"] != "computed_in_background"),
        "computed now: {results}"
    );
}

/// The message of the answer's warning `code` (which must be there).
/// Whether the results were computed in the background (they carry its warning).
fn from_background(results: &Value) -> bool {
    results["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|w| w["code"] == "computed_in_background")
}

fn warning_message(results: &Value, code: &str) -> String {
    results["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["code"] == code)
        .unwrap_or_else(|| panic!("no {code} warning: {results}"))["message"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// One organisation cannot fill the background worker's queue: past
/// `SAMPLIT_ANALYSIS_BACKGROUND_PER_ORG` funnels waiting, a further one of it is answered
/// 429, while another organisation's is still queued.
#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn an_organisation_queues_at_most_its_share_of_background_funnels(pool: PgPool) {
    let (app, team, _s, x, first) = one_visitor_funnel(
        pool,
        &[
            ("SAMPLIT_ANALYSIS_TIMEOUT_MS", "300"),
            ("SAMPLIT_ANALYSIS_BACKGROUND_PER_ORG", "1"),
        ],
    )
    .await;
    let body = json!({"name": "G", "steps": [x.purchase, x.signup]});
    let second = funnel_id(&app, &team.editor.token, x.id, body).await;
    let (other, t, y) = team_running(&app, "single", &[2]).await;
    let body = json!({"name": "F", "steps": [y.signup, y.purchase]});
    let theirs = funnel_id(&app, &other.editor.token, y.id, body).await;
    ingest_plan(
        &app,
        &t,
        &y,
        now_ms() - 3600 * 1000,
        &[(1, "b1", &[("signup", 10)])],
    )
    .await;
    let uri = |x: Uuid, fid: &str| format!("{}/{fid}/results", funnels_uri(x));

    let blocker = lock_raw_conversions(&app).await;
    let r = app.get(&uri(x.id, &first), Some(&team.viewer.token)).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let r = app.get(&uri(x.id, &second), Some(&team.viewer.token)).await;
    let problem = r.assert_problem(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert_eq!(r.headers["retry-after"], "60");
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("SAMPLIT_ANALYSIS_BACKGROUND_PER_ORG") && detail.contains('1'),
        "{detail}"
    );
    // The first is still the one waiting; another organisation is not held back.
    let r = app.get(&uri(x.id, &first), Some(&team.viewer.token)).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let r = app
        .get(&uri(y.id, &theirs), Some(&other.viewer.token))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    blocker.rollback().await.unwrap();

    // Once the worker is done, the organisation's next one may queue (at once: another
    // funnel of its experiment needed the background).
    assert_eq!(run_background(&app).await, 2);
    let r = app.get(&uri(x.id, &second), Some(&team.viewer.token)).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    assert_eq!(run_background(&app).await, 1);
    let results = funnel_results(&app, &team.viewer.token, x.id, &second).await;
    assert_eq!(reached(&results["analyses"][0]["arms"][0]), [0, 0]);

    // At its share, the organisation's stale answers are still served; their refresh
    // waits.
    age_run(&app, &first, "result_at", 11).await;
    let body = json!({"name": "H", "steps": [x.signup, x.purchase]});
    let third = funnel_id(&app, &team.editor.token, x.id, body).await;
    let r = app.get(&uri(x.id, &third), Some(&team.viewer.token)).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let stale = funnel_results(&app, &team.viewer.token, x.id, &first).await;
    let warning = warning_message(&stale, "computed_in_background");
    assert!(warning.contains("waits for your organisation"), "{warning}");
}

/// Requests of one organisation at the same instant, each for another funnel too slow for
/// a request, queue no more than its share: the count and the insert are one step.
#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn simultaneous_requests_of_an_organisation_queue_no_more_than_its_share(pool: PgPool) {
    const SHARE: i64 = 2;
    let (app, team, _s, x, first) = one_visitor_funnel(pool, &[]).await;
    let mut funnels = vec![first];
    for i in 0..7 {
        let body = json!({"name": format!("F{i}"), "steps": [x.purchase, x.signup]});
        let id = funnel_id(&app, &team.editor.token, x.id, body).await;
        funnels.push(id);
    }
    let org: Uuid = sqlx::query_scalar("SELECT org_id FROM experiments WHERE id = $1")
        .bind(x.id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    for round in 0..5 {
        let start = std::sync::Arc::new(tokio::sync::Barrier::new(funnels.len()));
        let tasks: Vec<_> = funnels
            .iter()
            .map(|fid| {
                let (pool, start) = (app.pool.clone(), start.clone());
                let fid: Uuid = fid.parse().unwrap();
                tokio::spawn(async move {
                    start.wait().await;
                    samplit_control_plane::db::funnels::request_run(&pool, fid, org, SHARE)
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut queued = 0;
        for task in tasks {
            queued += usize::from(task.await.unwrap().is_some());
        }
        let waiting: i64 =
            sqlx::query_scalar("SELECT count(*) FROM funnel_runs WHERE requested_at IS NOT NULL")
                .fetch_one(&app.pool)
                .await
                .unwrap();
        assert_eq!((queued, waiting), (SHARE as usize, SHARE), "round {round}");
        sqlx::query("DELETE FROM funnel_runs")
            .execute(&app.pool)
            .await
            .unwrap();
    }
}
