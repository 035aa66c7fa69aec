//! `GET /api/v1/experiments/headlines`: each headline equals what
//! `GET /experiments/{id}/results` says for the same experiment (visitors, leader and its
//! chance to be best, SRM flag, recommendation); drafts, unknown ids and other
//! organisations' ids are simply absent; bad `ids` are a 422; any member may ask.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::fixtures::{Experiment, Site, batch, conversion, experiment, exposure, ingest_ok, site};
use crate::helpers::{TestApp, TestResponse, new_org, new_team};

/// Ingests, per arm, (visitors, converters) — visitor ids `<prefix>-<arm>-<n>`, each
/// converter buying once for 10.
async fn ingest_counts(
    app: &TestApp,
    s: &Site,
    x: &Experiment,
    prefix: &str,
    plan: &[(usize, usize)],
) {
    let mut items = Vec::new();
    for (a, (visitors, converters)) in plan.iter().enumerate() {
        for v in 0..*visitors {
            let visitor = format!("{prefix}-{a}-{v}");
            items.push(exposure(
                &format!("e-{visitor}"),
                s,
                x.id,
                x.arms[a],
                &visitor,
            ));
            if v < *converters {
                items.push(conversion(
                    &format!("c-{visitor}"),
                    s,
                    &visitor,
                    "purchase",
                    Some(10.0),
                ));
            }
        }
    }
    for chunk in items.chunks(1000) {
        let r = ingest_ok(app, &batch(chunk.to_vec())).await;
        assert!(r["rejected"].as_array().unwrap().is_empty(), "{r}");
    }
}

fn uri(ids: &[Uuid]) -> String {
    let list: Vec<String> = ids.iter().map(Uuid::to_string).collect();
    format!("/api/v1/experiments/headlines?ids={}", list.join(","))
}

async fn headlines(app: &TestApp, token: &str, ids: &[Uuid]) -> Vec<Value> {
    let resp = app.get(&uri(ids), Some(token)).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    resp.json().as_array().unwrap().clone()
}

/// The headline the list must show, read off the results independently: the first
/// analysis' arms summed, its first arm of the highest chance, its SRM flag and its
/// recommendation (with the arm a winner names).
fn expected_from(results: &Value) -> Value {
    let analysis = &results["analyses"][0];
    let r = &analysis["result"];
    if r.is_null() {
        // No analysis (e.g. no visitor yet): nothing but why.
        assert!(analysis["error"].is_string(), "{analysis}");
        return json!({
            "experiment_id": results["experiment_id"],
            "goal_id": results["goal"]["id"],
            "visitors": 0,
            "leader": null,
            "srm_mismatch": false,
            "recommendation": null,
            "recommended_arm": null,
            "error": analysis["error"],
        });
    }
    let arms = r["arms"].as_array().unwrap();
    let visitors: u64 = arms.iter().map(|a| a["visitors"].as_u64().unwrap()).sum();
    let mut leader = 0;
    for (i, a) in arms.iter().enumerate() {
        if a["chance_to_be_best"].as_f64().unwrap()
            > arms[leader]["chance_to_be_best"].as_f64().unwrap()
        {
            leader = i;
        }
    }
    let subject = |i: usize| {
        let s = &analysis["subjects"][i];
        json!({ "arm_id": s["id"], "name": s["name"] })
    };
    let recommended = match r["recommendation"]["arm"].as_u64() {
        Some(i) if r["recommendation"]["action"] == "deploy_winner" => subject(i as usize),
        _ => Value::Null,
    };
    json!({
        "experiment_id": results["experiment_id"],
        "goal_id": results["goal"]["id"],
        "visitors": visitors,
        "leader": {
            "arm_id": analysis["subjects"][leader]["id"],
            "name": analysis["subjects"][leader]["name"],
            "chance_to_be_best": arms[leader]["chance_to_be_best"],
        },
        "srm_mismatch": r["srm"]["mismatch"],
        "recommendation": r["recommendation"],
        "recommended_arm": recommended,
        "error": null,
    })
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn headlines_equal_the_results_of_each_live_experiment(pool: PgPool) {
    let app = TestApp::new(pool);
    let team = new_team(&app).await;
    let org = team.owner.org_id;
    let s = site(&app, org).await;
    // A clear winner, a traffic split gone wrong, a paused independent experiment (its
    // first element's arms), a completed one with no data yet.
    let winner = experiment(&app, org, s.id, "single", &[2], "running").await;
    ingest_counts(&app, &s, &winner, "w", &[(400, 20), (400, 80)]).await;
    let srm = experiment(&app, org, s.id, "single", &[2], "running").await;
    ingest_counts(&app, &s, &srm, "s", &[(300, 30), (150, 15)]).await;
    let independent = experiment(&app, org, s.id, "independent", &[3, 2], "running").await;
    ingest_counts(
        &app,
        &s,
        &independent,
        "i",
        &[(50, 5), (60, 9), (55, 4), (40, 2), (45, 3)],
    )
    .await;
    sqlx::query("UPDATE experiments SET status = 'paused' WHERE id = $1")
        .bind(independent.id)
        .execute(&app.pool)
        .await
        .unwrap();
    let empty = experiment(&app, org, s.id, "factorial", &[2, 2], "completed").await;
    let draft = experiment(&app, org, s.id, "single", &[2], "draft").await;
    // Live but without a primary goal: its results need a goal_id, so no headline.
    let goalless = experiment(&app, org, s.id, "single", &[2], "running").await;
    sqlx::query("UPDATE goals SET is_primary = false WHERE experiment_id = $1")
        .bind(goalless.id)
        .execute(&app.pool)
        .await
        .unwrap();
    let stranger = new_org(&app).await;
    let their_site = site(&app, stranger.org_id).await;
    let theirs = experiment(
        &app,
        stranger.org_id,
        their_site.id,
        "single",
        &[2],
        "running",
    )
    .await;
    ingest_counts(&app, &their_site, &theirs, "t", &[(30, 3), (30, 6)]).await;

    let asked = [
        empty.id,
        draft.id,
        srm.id,
        Uuid::new_v4(),
        theirs.id,
        winner.id,
        goalless.id,
        independent.id,
        winner.id, // twice: answered once
    ];
    let got = headlines(&app, &team.viewer.token, &asked).await;
    let live = [empty.id, srm.id, winner.id, independent.id];
    let got_ids: Vec<Value> = got.iter().map(|h| h["experiment_id"].clone()).collect();
    assert_eq!(
        got_ids,
        live.iter().map(|id| json!(id)).collect::<Vec<_>>(),
        "the live ones of this organisation, in the order asked"
    );
    for (headline, id) in got.iter().zip(live) {
        let results = app
            .get(
                &format!("/api/v1/experiments/{id}/results"),
                Some(&team.viewer.token),
            )
            .await;
        assert_eq!(results.status, StatusCode::OK, "{}", results.text());
        assert_eq!(*headline, expected_from(&results.json()), "{id}");
    }
    // What the numbers are, spelled out, so a bug shared by both sides still shows.
    let w = &got[2];
    assert_eq!(w["visitors"], 800);
    assert_eq!(w["leader"]["arm_id"], json!(winner.arms[1]));
    assert_eq!(w["leader"]["name"], "arm 1");
    assert!(
        w["leader"]["chance_to_be_best"].as_f64().unwrap() > 0.99,
        "{w}"
    );
    assert_eq!(w["srm_mismatch"], false);
    assert_eq!(
        w["recommendation"],
        json!({ "action": "deploy_winner", "arm": 1 })
    );
    assert_eq!(
        w["recommended_arm"],
        json!({ "arm_id": winner.arms[1], "name": "arm 1" })
    );
    let m = &got[1];
    assert_eq!(m["visitors"], 450);
    assert_eq!(m["srm_mismatch"], true);
    assert_eq!(
        m["recommendation"],
        json!({ "action": "keep_collecting", "reason": "sample_ratio_mismatch" })
    );
    assert_eq!(m["recommended_arm"], Value::Null);
    let i = &got[3];
    assert_eq!(i["visitors"], 165, "the first element's arms");
    assert_eq!(i["leader"]["arm_id"], json!(independent.arms[1]));
    let e = &got[0];
    assert_eq!(e["visitors"], 0, "{e}");
    assert!(e["error"].as_str().unwrap().contains("no visitors"), "{e}");
    assert_eq!(e["leader"], Value::Null, "{e}");
    assert_eq!(e["recommendation"], Value::Null, "{e}");

    // Their owner gets theirs only, and nothing of ours.
    let seen = headlines(&app, &stranger.token, &asked).await;
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0]["experiment_id"], json!(theirs.id));
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn headlines_answer_every_member_and_nobody_else(pool: PgPool) {
    let app = TestApp::new(pool);
    let team = new_team(&app).await;
    let s = site(&app, team.owner.org_id).await;
    let x = experiment(&app, team.owner.org_id, s.id, "single", &[2], "running").await;
    for m in [&team.viewer, &team.editor, &team.admin, &team.owner] {
        let got = headlines(&app, &m.token, &[x.id]).await;
        assert_eq!(got.len(), 1, "{}", m.email);
        assert_eq!(got[0]["experiment_id"], json!(x.id));
    }
    app.get(&uri(&[x.id]), None)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    app.get(&uri(&[x.id]), Some("not-a-token"))
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    // Not a change: POST is no operation here (and not `/experiments/{id}` either).
    let post = app
        .call(
            Method::POST,
            &uri(&[x.id]),
            Some(&team.owner.token),
            Some(json!({})),
        )
        .await;
    assert_eq!(
        post.status,
        StatusCode::METHOD_NOT_ALLOWED,
        "{}",
        post.text()
    );
    // The static segment does not shadow real ids.
    let one = app
        .get(
            &format!("/api/v1/experiments/{}", x.id),
            Some(&team.viewer.token),
        )
        .await;
    assert_eq!(one.status, StatusCode::OK, "{}", one.text());
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn bad_headlines_ids_are_a_422_naming_ids(pool: PgPool) {
    let app = TestApp::new(pool);
    let owner = new_org(&app).await;
    let fifty: Vec<Uuid> = (0..50).map(|_| Uuid::new_v4()).collect();
    let fifty_one: Vec<Uuid> = (0..51).map(|_| Uuid::new_v4()).collect();
    let ok = headlines(&app, &owner.token, &fifty).await;
    assert!(
        ok.is_empty(),
        "unknown ids are absent, never an error: {ok:?}"
    );
    let one = Uuid::new_v4();
    let cases: Vec<(String, &str)> = vec![
        (uri(&fifty_one), "51 ids"),
        ("/api/v1/experiments/headlines".into(), "no ids"),
        (
            "/api/v1/experiments/headlines?ids=nope".into(),
            "not a UUID",
        ),
        (
            format!("/api/v1/experiments/headlines?ids={one},x"),
            "one not a UUID",
        ),
        (
            format!("/api/v1/experiments/headlines?ids={one},,{one}"),
            "an empty item",
        ),
        (
            format!("/api/v1/experiments/headlines?ids={one},"),
            "a trailing comma",
        ),
        (
            format!("/api/v1/experiments/headlines?ids={one}%00"),
            "a NUL byte",
        ),
    ];
    for (path, why) in cases {
        let body = app
            .get(&path, Some(&owner.token))
            .await
            .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(body["errors"][0]["field"], "ids", "{why}: {body}");
    }
    // An empty list is an empty answer; spaces around ids are fine.
    let empty: TestResponse = app
        .get("/api/v1/experiments/headlines?ids=", Some(&owner.token))
        .await;
    assert_eq!(empty.status, StatusCode::OK);
    assert_eq!(empty.json(), json!([]));
    let spaced = app
        .get(
            &format!(
                "/api/v1/experiments/headlines?ids=%20{one}%20,{}",
                Uuid::new_v4()
            ),
            Some(&owner.token),
        )
        .await;
    assert_eq!(spaced.status, StatusCode::OK, "{}", spaced.text());
    // An unknown parameter is a malformed query (400), like everywhere else.
    app.get(
        &format!("/api/v1/experiments/headlines?ids={one}&goal_id={one}"),
        Some(&owner.token),
    )
    .await
    .assert_problem(StatusCode::BAD_REQUEST, "bad_request");
}
