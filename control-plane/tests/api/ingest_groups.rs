//! Group commit (`ingest::group`): batches that arrive while every writer is busy are
//! written in one transaction, and each is still answered with its own counts, after
//! that commit, through the real router and PostgreSQL.

use futures_util::future::join_all;
use serde_json::Value;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use uuid::Uuid;

use crate::fixtures::{arm_totals, batch, conversion, exposure, ingest, ingest_ok, running};
use crate::helpers::{TestApp, TestResponse};

/// (batches waiting, batches written, transactions) from the app's metrics.
fn group_figures(app: &TestApp) -> (i64, u64, u64) {
    let m = &app.state.metrics;
    (
        m.ingest_waiting.get(),
        m.ingest_group_batches.get_sample_sum() as u64,
        m.ingest_group_batches.get_sample_count(),
    )
}

/// A test app whose pool has room for a blocking session, the writers and every batch's
/// reads (the test pool's default is smaller).
async fn roomy_app(pool: PgPool) -> TestApp {
    let pool = PgPoolOptions::new()
        .max_connections(20)
        .connect_with((*pool.connect_options()).clone())
        .await
        .unwrap();
    TestApp::new(pool)
}

/// Sends `bodies` at once while another session holds the rows of `arms` (which must
/// exist): every writer blocks on them at its upsert, so the batches that come after
/// wait in the queue. The rows are released once every batch is waiting or taken by a
/// writer (asserted; bounded wait of 20 s).
async fn while_writers_wait(app: &TestApp, arms: &[Uuid], bodies: &[Value]) -> Vec<TestResponse> {
    let (_, written_before, _) = group_figures(app);
    let mut blocker = app.pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM arm_stats WHERE arm_id = ANY($1) FOR UPDATE")
        .bind(arms)
        .execute(&mut *blocker)
        .await
        .unwrap();
    let all_in = |(waiting, written, _): (i64, u64, u64)| {
        waiting as u64 + written - written_before == bodies.len() as u64
    };
    let release = async {
        for _ in 0..400 {
            if all_in(group_figures(app)) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let figures = group_figures(app);
        blocker.commit().await.unwrap();
        figures
    };
    let (answers, queued) = tokio::join!(join_all(bodies.iter().map(|b| ingest(app, b))), release);
    assert!(
        all_in(queued),
        "every batch was queued or taken before the rows were released: {queued:?}"
    );
    answers
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn batches_waiting_for_a_writer_share_a_transaction_and_keep_their_own_counts(pool: PgPool) {
    let app = roomy_app(pool).await;
    let (_, site, x) = running(&app, "single", &[2]).await;
    let (a, b) = (x.arms[0], x.arms[1]);
    // The arms' rows exist once a first batch is in.
    ingest_ok(
        &app,
        &batch(vec![
            exposure("first-a", &site, x.id, a, "v-first-a"),
            exposure("first-b", &site, x.id, b, "v-first-b"),
        ]),
    )
    .await;
    assert_eq!(group_figures(&app), (0, 1, 1));

    // Sent while the writers wait (see `while_writers_wait`): 12 batches, two new visitors each (one per arm), a conversion of one of them, and
    // the same redelivered exposure (counted once, by whichever batch comes first).
    const BATCHES: usize = 12;
    let bodies: Vec<Value> = (0..BATCHES)
        .map(|i| {
            batch(vec![
                exposure(&format!("x{i}a"), &site, x.id, a, &format!("v{i}a")),
                exposure(&format!("x{i}b"), &site, x.id, b, &format!("v{i}b")),
                conversion(
                    &format!("c{i}"),
                    &site,
                    &format!("v{i}a"),
                    "purchase",
                    Some(2.0),
                ),
                exposure("redelivered", &site, x.id, a, "v-redelivered"),
            ])
        })
        .collect();
    let answers: Vec<Value> = while_writers_wait(&app, &x.arms, &bodies)
        .await
        .iter()
        .map(|r| {
            assert_eq!(r.status, 200, "{}", r.text());
            r.json()
        })
        .collect();

    // Each answer is its own batch's.
    let firsts = answers.iter().filter(|r| r["accepted"] == 4).count();
    assert_eq!(
        firsts, 1,
        "the redelivered exposure counts once: {answers:?}"
    );
    for r in &answers {
        let accepted = r["accepted"].as_u64().unwrap();
        assert!(accepted == 3 || accepted == 4, "{r}");
        assert_eq!(accepted + r["duplicates"].as_u64().unwrap(), 4, "{r}");
        assert_eq!(r["conflicts"], 0, "{r}");
        assert_eq!(r["unattributed"], 0, "{r}");
    }

    // Fewer transactions than batches: the ones that waited were written together.
    let (waiting, written, transactions) = group_figures(&app);
    assert_eq!((waiting, written), (0, 1 + BATCHES as u64));
    assert!(
        transactions < written,
        "no batches were grouped: {transactions} transactions for {written} batches"
    );

    // And the aggregates hold every batch once.
    assert_eq!(arm_totals(&app, a).await, (1 + BATCHES as i64 + 1, 0));
    assert_eq!(arm_totals(&app, b).await, (1 + BATCHES as i64, 0));
    let converters: i64 = sqlx::query_scalar(
        "SELECT COALESCE(SUM(converters), 0)::bigint FROM arm_goal_stats WHERE goal_id = $1",
    )
    .bind(x.purchase)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(converters, BATCHES as i64);
}

/// One batch that cannot be written (here a trigger refuses one of its raw rows) fails
/// the group's transaction: each batch is then written on its own, so only that one is
/// refused (a 500: the queue retries it) and the others are kept.
#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn a_batch_that_cannot_be_written_fails_alone(pool: PgPool) {
    let app = roomy_app(pool).await;
    let (_, site, x) = running(&app, "single", &[2]).await;
    let a = x.arms[0];
    ingest_ok(
        &app,
        &batch(vec![exposure("first", &site, x.id, a, "v-first")]),
    )
    .await;
    for statement in [
        "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF NEW.item_id = 'poison' THEN RAISE EXCEPTION 'poisoned row'; END IF;
             RETURN NEW;
         END $$",
        "CREATE TRIGGER refuse_poison BEFORE INSERT ON raw_exposures
         FOR EACH ROW EXECUTE FUNCTION refuse_poison()",
    ] {
        sqlx::query(statement).execute(&app.pool).await.unwrap();
    }
    const BATCHES: usize = 8;
    const POISONED: usize = 5;
    let bodies: Vec<Value> = (0..BATCHES)
        .map(|i| {
            let id = if i == POISONED {
                "poison".to_owned()
            } else {
                format!("x{i}")
            };
            batch(vec![exposure(&id, &site, x.id, a, &format!("v{i}"))])
        })
        .collect();
    let answers = while_writers_wait(&app, &[a], &bodies).await;
    for (i, r) in answers.iter().enumerate() {
        if i == POISONED {
            assert_eq!(r.status, 500, "{}", r.text());
        } else {
            assert_eq!(r.status, 200, "{}", r.text());
            assert_eq!(r.json()["accepted"], 1, "{}", r.text());
        }
    }
    let (_, written, transactions) = group_figures(&app);
    assert!(transactions < written, "no batches were grouped");
    assert_eq!(arm_totals(&app, a).await.0, 1 + BATCHES as i64 - 1);
    // Not marked seen: once the cause is gone, the queue's retry is counted.
    sqlx::query("DROP TRIGGER refuse_poison ON raw_exposures")
        .execute(&app.pool)
        .await
        .unwrap();
    let retry = ingest_ok(&app, &bodies[POISONED]).await;
    assert_eq!(retry["accepted"], 1, "{retry}");
}

/// A NUL character cannot be stored in PostgreSQL text: an item carrying one in any
/// text it keeps is refused on its own, and the rest of the batch — other sites' events
/// travel in the same queue batch — is kept.
#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn a_nul_character_rejects_its_item_not_the_batch(pool: PgPool) {
    let app = TestApp::new(pool);
    let (_, site, x) = running(&app, "single", &[2]).await;
    let a = x.arms[0];
    let mut in_landing = exposure("nul-landing", &site, x.id, a, "v-landing");
    in_landing["context"] = serde_json::json!({"landing": "/shop\u{0}/x", "device": "mobile"});
    let items = vec![
        exposure("good", &site, x.id, a, "v-good"),
        exposure("nul-visitor", &site, x.id, a, "v\u{0}1"),
        exposure("nul\u{0}id", &site, x.id, a, "v-id"),
        conversion("nul-goal", &site, "v-good", "pur\u{0}chase", None),
        in_landing,
    ];
    let r = ingest_ok(&app, &batch(items)).await;
    let rejected: Vec<(&str, &str)> = r["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (x["id"].as_str().unwrap(), x["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(
        rejected,
        vec![
            ("nul-visitor", "invalid_item"),
            ("", "invalid_id"),
            ("nul-goal", "invalid_item"),
        ],
        "{r}"
    );
    // The landing page is context, read leniently: the exposure is kept without it.
    assert_eq!(r["accepted"], 2, "{r}");
    assert_eq!(arm_totals(&app, a).await.0, 2);

    // A batch whose every item is rejected opens no transaction.
    let before = group_figures(&app);
    let r = ingest_ok(
        &app,
        &batch(vec![exposure("nul-again", &site, x.id, a, "v\u{0}2")]),
    )
    .await;
    assert_eq!(r["rejected"].as_array().unwrap().len(), 1, "{r}");
    assert_eq!(group_figures(&app), before);
}
