//! Experiments and goals deleted around ingestion
//! (`migrations/0030_ingest_without_row_foreign_keys.sql`): their assignments and
//! conversions go with them, and a batch that was being written for an experiment
//! deleted meanwhile leaves nothing behind, through the real router and PostgreSQL.

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

use crate::fixtures::{batch, conversion, exposure, ingest, ingest_ok, running};
use crate::helpers::TestApp;

async fn count(app: &TestApp, sql: &str, id: Uuid) -> i64 {
    sqlx::query_scalar(sql)
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

async fn delete(app: &TestApp, sql: &str, id: Uuid) {
    sqlx::query(sql).bind(id).execute(&app.pool).await.unwrap();
}

async fn assignments(app: &TestApp, experiment: Uuid) -> i64 {
    count(
        app,
        "SELECT count(*) FROM assignments WHERE experiment_id = $1",
        experiment,
    )
    .await
}

async fn conversions(app: &TestApp, goal: Uuid) -> i64 {
    count(
        app,
        "SELECT count(*) FROM goal_conversions WHERE goal_id = $1",
        goal,
    )
    .await
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn deleting_an_experiment_its_goals_or_its_site_deletes_their_rows(pool: PgPool) {
    let app = TestApp::new(pool);
    let (_, site, x) = running(&app, "single", &[2]).await;
    let (_, other_site, z) = running(&app, "single", &[2]).await;
    let fill = |site: &crate::fixtures::Site, e: &crate::fixtures::Experiment, p: &str| {
        batch(vec![
            exposure(&format!("{p}1"), site, e.id, e.arms[0], &format!("{p}-v1")),
            exposure(&format!("{p}2"), site, e.id, e.arms[1], &format!("{p}-v2")),
            conversion(
                &format!("{p}3"),
                site,
                &format!("{p}-v1"),
                "purchase",
                Some(5.0),
            ),
        ])
    };
    ingest_ok(&app, &fill(&site, &x, "x")).await;
    ingest_ok(&app, &fill(&other_site, &z, "z")).await;
    assert_eq!(assignments(&app, x.id).await, 2);
    assert_eq!(conversions(&app, x.purchase).await, 1);

    // A goal deleted (as an edit that replaces the goals does) takes its conversions.
    delete(&app, "DELETE FROM goals WHERE id = $1", x.purchase).await;
    assert_eq!(conversions(&app, x.purchase).await, 0);
    assert_eq!(assignments(&app, x.id).await, 2, "the assignments stay");

    // The experiment deleted: its assignments go; another experiment's stay.
    delete(&app, "DELETE FROM experiments WHERE id = $1", x.id).await;
    assert_eq!(assignments(&app, x.id).await, 0);
    assert_eq!(assignments(&app, z.id).await, 2);
    assert_eq!(conversions(&app, z.purchase).await, 1);

    // A site deleted: its experiments' cascade reaches their assignments and conversions.
    delete(&app, "DELETE FROM sites WHERE id = $1", other_site.id).await;
    assert_eq!(assignments(&app, z.id).await, 0);
    assert_eq!(conversions(&app, z.purchase).await, 0);
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn a_batch_whose_experiment_is_deleted_while_it_is_written_leaves_nothing(pool: PgPool) {
    // Room for the deleting session, the writer and the batch's reads.
    let pool = PgPoolOptions::new()
        .max_connections(10)
        .connect_with((*pool.connect_options()).clone())
        .await
        .unwrap();
    let app = TestApp::new(pool);
    let (_, site, x) = running(&app, "single", &[2]).await;
    let body = batch(vec![
        exposure("d1", &site, x.id, x.arms[0], "d-v1"),
        exposure("d2", &site, x.id, x.arms[1], "d-v2"),
    ]);

    // Another session deletes the experiment and holds its transaction open: the batch
    // reads its catalog (the experiment is still there for it), then waits at its lock
    // on the experiment's row until the delete commits.
    let mut deleter = app.pool.begin().await.unwrap();
    sqlx::query("DELETE FROM experiments WHERE id = $1")
        .bind(x.id)
        .execute(&mut *deleter)
        .await
        .unwrap();
    let commit_when_blocked = async {
        let mut blocked = false;
        for _ in 0..400 {
            blocked = sqlx::query_scalar::<_, bool>(
                "SELECT EXISTS (SELECT 1 FROM pg_stat_activity
                                 WHERE wait_event_type = 'Lock'
                                   AND query LIKE 'SELECT id FROM experiments%FOR KEY SHARE')",
            )
            .fetch_one(&app.pool)
            .await
            .unwrap();
            if blocked {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        deleter.commit().await.unwrap();
        blocked
    };
    let (answer, blocked) = tokio::join!(ingest(&app, &body), commit_when_blocked);
    assert!(blocked, "the batch waited for the delete");
    assert_eq!(
        answer.status,
        500,
        "an error, so the queue retries: {}",
        answer.text()
    );
    assert_eq!(
        assignments(&app, x.id).await,
        0,
        "no assignment left behind"
    );

    // The retry reads the catalog again: the items are rejected, nothing is written.
    let retried = ingest_ok(&app, &body).await;
    assert_eq!(retried["accepted"], 0, "{retried}");
    assert_eq!(
        retried["rejected"].as_array().unwrap().len(),
        2,
        "{retried}"
    );
    assert_eq!(assignments(&app, x.id).await, 0);
}
