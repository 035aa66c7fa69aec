//! SQL of the raw events: the exposures and conversions ingestion keeps as they came
//! (`raw_exposures`, `raw_conversions`, partitioned by UTC day; see
//! `migrations/0024_raw_events_and_segments.sql`), the per-site daily quota's counts
//! (`raw_event_days`, migration 0029), their partitions (made on demand, dropped past the
//! retention), and the erasure of a site's visitors.
//!
//! Writes are set-wise like the rest of ingestion: one `INSERT … SELECT FROM UNNEST` per
//! table per batch, in the batch's transaction. Partition DDL runs outside it (see
//! [`ensure_partitions`]).

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

use samplit_engine::context::Dimension;
use sqlx::{PgConnection, PgPool};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

/// The pre-assignment context of an exposure as stored (in `raw_exposures` and
/// `assignments`): every field `None` when unknown or not sent. Values are the wire
/// names of `samplit_engine::context` (ingestion maps anything else to `other` or
/// `None`), so [`StoredContext::value`] is a dimension's segment value.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct StoredContext {
    pub country: Option<String>,
    pub device: Option<String>,
    pub browser: Option<String>,
    pub source: Option<String>,
    pub landing: Option<String>,
    pub prior_visits: Option<i32>,
    pub prior_conversions: Option<i32>,
}

impl StoredContext {
    /// The segment value of `dimension` (`unknown` when not known).
    #[must_use]
    pub fn value(&self, dimension: Dimension) -> &str {
        use samplit_engine::context::UNKNOWN;
        match dimension {
            Dimension::Country => self.country.as_deref().unwrap_or(UNKNOWN),
            Dimension::Device => self.device.as_deref().unwrap_or(UNKNOWN),
            Dimension::Browser => self.browser.as_deref().unwrap_or(UNKNOWN),
            Dimension::Source => self.source.as_deref().unwrap_or(UNKNOWN),
            Dimension::VisitorType => match self.prior_visits {
                None => UNKNOWN,
                Some(0) => "new",
                Some(_) => "returning",
            },
        }
    }
}

/// The context columns of rows to write (raw exposures, assignments), one entry per row.
#[derive(Debug, Default)]
pub struct ContextColumns {
    pub countries: Vec<Option<String>>,
    pub devices: Vec<Option<String>>,
    pub browsers: Vec<Option<String>>,
    pub sources: Vec<Option<String>>,
    pub landings: Vec<Option<String>>,
    pub prior_visits: Vec<Option<i32>>,
    pub prior_conversions: Vec<Option<i32>>,
}

impl ContextColumns {
    pub fn push(&mut self, c: &StoredContext) {
        self.countries.push(c.country.clone());
        self.devices.push(c.device.clone());
        self.browsers.push(c.browser.clone());
        self.sources.push(c.source.clone());
        self.landings.push(c.landing.clone());
        self.prior_visits.push(c.prior_visits);
        self.prior_conversions.push(c.prior_conversions);
    }
}

/// Column arrays of exposures to keep (one entry per newly processed exposure).
#[derive(Debug, Default)]
pub struct RawExposures {
    pub days: Vec<Date>,
    pub ts: Vec<OffsetDateTime>,
    pub site_ids: Vec<Uuid>,
    pub item_ids: Vec<String>,
    pub visitor_ids: Vec<String>,
    pub experiment_ids: Vec<Uuid>,
    pub arm_ids: Vec<Uuid>,
    pub element_ids: Vec<Option<Uuid>>,
    pub propensities: Vec<f64>,
    pub snapshot_versions: Vec<i64>,
    pub context: ContextColumns,
}

#[tracing::instrument(skip_all, fields(rows = r.item_ids.len()))]
pub async fn insert_exposures(conn: &mut PgConnection, r: &RawExposures) -> sqlx::Result<()> {
    if r.item_ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO raw_exposures
             (day, ts, site_id, item_id, visitor_id, experiment_id, arm_id, element_id,
              propensity, snapshot_version, country, device, browser, source, landing,
              prior_visits, prior_conversions)
         SELECT * FROM UNNEST($1::date[], $2::timestamptz[], $3::uuid[], $4::text[], $5::text[],
                              $6::uuid[], $7::uuid[], $8::uuid[], $9::float8[], $10::int8[],
                              $11::text[], $12::text[], $13::text[], $14::text[], $15::text[],
                              $16::int4[], $17::int4[])",
    )
    .bind(&r.days)
    .bind(&r.ts)
    .bind(&r.site_ids)
    .bind(&r.item_ids)
    .bind(&r.visitor_ids)
    .bind(&r.experiment_ids)
    .bind(&r.arm_ids)
    .bind(&r.element_ids)
    .bind(&r.propensities)
    .bind(&r.snapshot_versions)
    .bind(&r.context.countries)
    .bind(&r.context.devices)
    .bind(&r.context.browsers)
    .bind(&r.context.sources)
    .bind(&r.context.landings)
    .bind(&r.context.prior_visits)
    .bind(&r.context.prior_conversions)
    .execute(conn)
    .await?;
    Ok(())
}

/// Column arrays of conversions and custom events to keep.
#[derive(Debug, Default)]
pub struct RawConversions {
    pub days: Vec<Date>,
    pub ts: Vec<OffsetDateTime>,
    pub site_ids: Vec<Uuid>,
    pub item_ids: Vec<String>,
    pub visitor_ids: Vec<String>,
    /// `conversion` or `custom`.
    pub kinds: Vec<&'static str>,
    pub goals: Vec<String>,
    pub values: Vec<f64>,
    pub currencies: Vec<Option<String>>,
    pub signed: Vec<bool>,
}

#[tracing::instrument(skip_all, fields(rows = r.item_ids.len()))]
pub async fn insert_conversions(conn: &mut PgConnection, r: &RawConversions) -> sqlx::Result<()> {
    if r.item_ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO raw_conversions
             (day, ts, site_id, item_id, visitor_id, kind, goal, value, currency, signed)
         SELECT * FROM UNNEST($1::date[], $2::timestamptz[], $3::uuid[], $4::text[], $5::text[],
                              $6::text[], $7::text[], $8::float8[], $9::text[], $10::bool[])",
    )
    .bind(&r.days)
    .bind(&r.ts)
    .bind(&r.site_ids)
    .bind(&r.item_ids)
    .bind(&r.visitor_ids)
    .bind(&r.kinds)
    .bind(&r.goals)
    .bind(&r.values)
    .bind(&r.currencies)
    .bind(&r.signed)
    .execute(conn)
    .await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The per-site daily quota (`raw_event_days`, migration 0029; docs/ingestion.md,
// "Raw-event quota").

/// Raw rows per (site, UTC day), sorted by (site, day): the lock order of
/// `raw_event_days`, the same in every batch.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RawDayCounts {
    pub site_ids: Vec<Uuid>,
    pub days: Vec<Date>,
    pub rows: Vec<i64>,
}

/// Adds a batch's raw rows to `kept` of each (site, day), creating the rows it lacks, and
/// returns each key's new `kept` (this batch included). In the batch's transaction: the
/// upsert's row locks, held until commit, serialise concurrent batches of one site and
/// day, so each sees the total of the batches committed before it plus its own.
#[tracing::instrument(skip_all, fields(keys = c.site_ids.len()))]
pub async fn add_raw_days(
    conn: &mut PgConnection,
    c: &RawDayCounts,
) -> sqlx::Result<Vec<(Uuid, Date, i64)>> {
    if c.site_ids.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query_as(
        "INSERT INTO raw_event_days AS d (site_id, day, kept)
         SELECT * FROM UNNEST($1::uuid[], $2::date[], $3::int8[])
         ON CONFLICT (site_id, day) DO UPDATE SET kept = d.kept + EXCLUDED.kept
         RETURNING site_id, day, kept",
    )
    .bind(&c.site_ids)
    .bind(&c.days)
    .bind(&c.rows)
    .fetch_all(conn)
    .await
}

/// The keys of `c` whose `kept` has already reached `quota` (read without locking: a
/// batch gives their rows no room; for the others the upsert, [`add_raw_days`], decides).
#[tracing::instrument(skip_all, fields(keys = c.site_ids.len()))]
pub async fn full_raw_days(
    conn: &mut PgConnection,
    c: &RawDayCounts,
    quota: i64,
) -> sqlx::Result<Vec<(Uuid, Date)>> {
    sqlx::query_as(
        "SELECT d.site_id, d.day
           FROM raw_event_days d
           JOIN UNNEST($1::uuid[], $2::date[]) AS k (site_id, day)
             ON d.site_id = k.site_id AND d.day = k.day
          WHERE d.kept >= $3",
    )
    .bind(&c.site_ids)
    .bind(&c.days)
    .bind(quota)
    .fetch_all(conn)
    .await
}

/// Deletes raw exposures this transaction inserted (matched on day, site, visitor and item id).
pub async fn delete_exposures(conn: &mut PgConnection, r: &RawExposures) -> sqlx::Result<()> {
    delete_rows(
        conn,
        RawTable::Exposures,
        &r.days,
        &r.site_ids,
        &r.visitor_ids,
        &r.item_ids,
    )
    .await
}

/// Deletes raw conversions this transaction inserted (matched on day, site, visitor and item id).
pub async fn delete_conversions(conn: &mut PgConnection, r: &RawConversions) -> sqlx::Result<()> {
    delete_rows(
        conn,
        RawTable::Conversions,
        &r.days,
        &r.site_ids,
        &r.visitor_ids,
        &r.item_ids,
    )
    .await
}

/// One of the two raw tables (their names are never taken from input).
#[derive(Debug, Clone, Copy)]
enum RawTable {
    Exposures,
    Conversions,
}

/// Deletes rows of `table` matched on day, site, visitor and item id (the day prunes
/// partitions, the `(site_id, visitor_id)` index finds the rows).
#[tracing::instrument(skip(conn, days, site_ids, visitor_ids, item_ids), fields(rows = item_ids.len()))]
async fn delete_rows(
    conn: &mut PgConnection,
    table: RawTable,
    days: &[Date],
    site_ids: &[Uuid],
    visitor_ids: &[String],
    item_ids: &[String],
) -> sqlx::Result<()> {
    if item_ids.is_empty() {
        return Ok(());
    }
    let sql = match table {
        RawTable::Exposures => DELETE_EXPOSURES,
        RawTable::Conversions => DELETE_CONVERSIONS,
    };
    sqlx::query(sql)
        .bind(days)
        .bind(site_ids)
        .bind(visitor_ids)
        .bind(item_ids)
        .execute(conn)
        .await?;
    Ok(())
}

const DELETE_EXPOSURES: &str = "DELETE FROM raw_exposures r
      USING UNNEST($1::date[], $2::uuid[], $3::text[], $4::text[])
            AS d (day, site_id, visitor_id, item_id)
      WHERE r.day = d.day AND r.site_id = d.site_id AND r.visitor_id = d.visitor_id
        AND r.item_id = d.item_id";
const DELETE_CONVERSIONS: &str = "DELETE FROM raw_conversions r
      USING UNNEST($1::date[], $2::uuid[], $3::text[], $4::text[])
            AS d (day, site_id, visitor_id, item_id)
      WHERE r.day = d.day AND r.site_id = d.site_id AND r.visitor_id = d.visitor_id
        AND r.item_id = d.item_id";

/// Moves rows over the quota from `kept` to `dropped` (`c.rows` of each key, counted by
/// [`add_raw_days`] in the same transaction, whose locks it already holds).
#[tracing::instrument(skip_all, fields(keys = c.site_ids.len()))]
pub async fn move_to_dropped(conn: &mut PgConnection, c: &RawDayCounts) -> sqlx::Result<()> {
    if c.site_ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE raw_event_days AS d
            SET kept = d.kept - o.n, dropped = d.dropped + o.n
           FROM UNNEST($1::uuid[], $2::date[], $3::int8[]) AS o (site_id, day, n)
          WHERE d.site_id = o.site_id AND d.day = o.day",
    )
    .bind(&c.site_ids)
    .bind(&c.days)
    .bind(&c.rows)
    .execute(conn)
    .await?;
    Ok(())
}

/// The days from `from` to `to` (inclusive) on which the quota left raw rows of
/// `site_id` out, with how many, in day order.
#[tracing::instrument(skip(conn))]
pub async fn capped_days(
    conn: &mut PgConnection,
    site_id: Uuid,
    from: Date,
    to: Date,
) -> sqlx::Result<Vec<(Date, i64)>> {
    sqlx::query_as(
        "SELECT day, dropped FROM raw_event_days
          WHERE site_id = $1 AND day BETWEEN $2 AND $3 AND dropped > 0
          ORDER BY day",
    )
    .bind(site_id)
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await
}

// ---------------------------------------------------------------------------------------
// Partitions.

/// The partitioned tables of raw events.
pub const RAW_TABLES: [&str; 2] = ["raw_exposures", "raw_conversions"];

/// The name of `table`'s partition for `day`: `<table>_pYYYYMMDD`.
#[must_use]
pub fn partition_name(table: &str, day: Date) -> String {
    format!(
        "{table}_p{:04}{:02}{:02}",
        day.year(),
        u8::from(day.month()),
        day.day()
    )
}

/// The day of a partition named by [`partition_name`] for `table`, if it is one.
#[must_use]
pub fn partition_day(table: &str, name: &str) -> Option<Date> {
    let digits = name.strip_prefix(table)?.strip_prefix("_p")?;
    if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let year: i32 = digits[..4].parse().ok()?;
    let month: u8 = digits[4..6].parse().ok()?;
    let day: u8 = digits[6..].parse().ok()?;
    Date::from_calendar_date(year, time::Month::try_from(month).ok()?, day).ok()
}

/// Days whose partitions this process has made or seen, per database (tests run many
/// databases in one process). One entry per (database, day): the first batch of a day
/// pays one round of DDL, the others nothing.
static MADE: Mutex<Option<HashSet<(String, Date)>>> = Mutex::new(None);

fn database_key(pool: &PgPool) -> String {
    let o = pool.connect_options();
    format!(
        "{}:{}/{}",
        o.get_host(),
        o.get_port(),
        o.get_database().unwrap_or_default()
    )
}

/// Makes sure both raw tables have a partition for each of `days`. Runs outside the
/// batch's transaction (DDL there would hold the parent's lock until the batch commits).
/// Concurrent creators, in this process or another replica, are serialised by a
/// transaction-scoped advisory lock, and `IF NOT EXISTS` makes the second one a no-op;
/// a creation that still races (a creator that does not take the lock) is taken as done
/// when PostgreSQL answers that the table exists.
#[tracing::instrument(skip(pool))]
pub async fn ensure_partitions(pool: &PgPool, days: &[Date]) -> sqlx::Result<()> {
    let db = database_key(pool);
    let missing: Vec<Date> = {
        let made = MADE.lock().unwrap_or_else(PoisonError::into_inner);
        days.iter()
            .copied()
            .filter(|d| {
                made.as_ref()
                    .is_none_or(|set| !set.contains(&(db.clone(), *d)))
            })
            .collect()
    };
    if missing.is_empty() {
        return Ok(());
    }
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('samplit:raw_partitions', 0))")
        .execute(&mut *tx)
        .await?;
    for day in &missing {
        let next = day.next_day().unwrap_or(*day);
        for table in RAW_TABLES {
            let name = partition_name(table, *day);
            // Names and bounds come from a Date, never from input: no injection.
            let ddl = format!(
                "CREATE TABLE IF NOT EXISTS {name} PARTITION OF {table}
                 FOR VALUES FROM ('{day}') TO ('{next}')"
            );
            match sqlx::query(&ddl).execute(&mut *tx).await {
                Ok(_) => {}
                Err(sqlx::Error::Database(e))
                    if matches!(e.code().as_deref(), Some("42P07") | Some("23505")) =>
                {
                    // Made by a concurrent creator after our check: it exists.
                    tx.rollback().await?;
                    return Box::pin(ensure_partitions(pool, days)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
    tx.commit().await?;
    let mut made = MADE.lock().unwrap_or_else(PoisonError::into_inner);
    let set = made.get_or_insert_with(HashSet::new);
    for day in missing {
        set.insert((db.clone(), day));
    }
    Ok(())
}

/// Drops the raw-event partitions of days before `oldest_kept` (whole tables: no DELETE,
/// no vacuum). Returns the dropped tables' names.
#[tracing::instrument(skip(pool))]
pub async fn drop_partitions_before(pool: &PgPool, oldest_kept: Date) -> sqlx::Result<Vec<String>> {
    let mut dropped = Vec::new();
    for table in RAW_TABLES {
        for name in partitions(pool, table).await? {
            if partition_day(table, &name).is_some_and(|d| d < oldest_kept) {
                // The name matched `<table>_pYYYYMMDD`: safe to splice.
                sqlx::query(&format!("DROP TABLE IF EXISTS {name}"))
                    .execute(pool)
                    .await?;
                dropped.push(name);
            }
        }
    }
    Ok(dropped)
}

/// Deletes the raw-event quota's counts (`raw_event_days`) of days before `oldest_kept`:
/// their raw rows are gone with their partitions. Returns how many were deleted.
#[tracing::instrument(skip(pool))]
pub async fn prune_raw_days(pool: &PgPool, oldest_kept: Date) -> sqlx::Result<u64> {
    Ok(sqlx::query("DELETE FROM raw_event_days WHERE day < $1")
        .bind(oldest_kept)
        .execute(pool)
        .await?
        .rows_affected())
}

/// The names of `table`'s partitions.
async fn partitions(pool: &PgPool, table: &str) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i
           JOIN pg_class c ON c.oid = i.inhrelid
           JOIN pg_class p ON p.oid = i.inhparent
          WHERE p.relname = $1 AND p.relnamespace = to_regnamespace(current_schema())
          ORDER BY 1",
    )
    .bind(table)
    .fetch_all(pool)
    .await
}

/// What one purge pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Purged {
    /// Deleted sites whose raw rows the pass looked for.
    pub sites: u64,
    /// Raw rows deleted.
    pub rows: u64,
    /// Sites forgotten: nothing was left and the deletion is older than
    /// [`PURGE_GRACE`].
    pub done: u64,
}

/// How long a deleted site stays queued after a pass finds none of its rows: a batch that
/// resolved its site key just before the deletion may commit rows just after it.
pub const PURGE_GRACE: time::Duration = time::Duration::hours(1);

/// Deletes the raw events of the deleted sites queued in `raw_event_purges` (migration
/// 0028: a trigger queues every deleted site), one partition at a time so that no
/// statement holds locks over the whole table; forgets a site once a pass deleted none of
/// its rows and its deletion is older than [`PURGE_GRACE`] at `now`.
#[tracing::instrument(skip(pool))]
pub async fn purge_deleted_sites(pool: &PgPool, now: OffsetDateTime) -> sqlx::Result<Purged> {
    let queued: Vec<(Uuid, OffsetDateTime)> =
        sqlx::query_as("SELECT site_id, requested_at FROM raw_event_purges ORDER BY requested_at")
            .fetch_all(pool)
            .await?;
    let mut purged = Purged::default();
    if queued.is_empty() {
        return Ok(purged);
    }
    let mut tables = Vec::new();
    for table in RAW_TABLES {
        tables.extend(partitions(pool, table).await?);
    }
    for (site_id, requested_at) in queued {
        purged.sites += 1;
        let mut rows = 0;
        for name in &tables {
            // `name` comes from the catalog's list of our partitions: safe to splice.
            rows += sqlx::query(&format!("DELETE FROM {name} WHERE site_id = $1"))
                .bind(site_id)
                .execute(pool)
                .await?
                .rows_affected();
        }
        purged.rows += rows;
        if rows == 0 && requested_at < now - PURGE_GRACE {
            sqlx::query("DELETE FROM raw_event_purges WHERE site_id = $1")
                .bind(site_id)
                .execute(pool)
                .await?;
            purged.done += 1;
        }
    }
    Ok(purged)
}

// ---------------------------------------------------------------------------------------
// Erasure.

/// What an erasure deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Erased {
    pub raw_exposures: u64,
    pub raw_conversions: u64,
    pub assignments: u64,
    pub goal_conversions: u64,
    pub pending_conversions: u64,
}

/// The site `site_id` if it belongs to `org_id`.
#[tracing::instrument(skip(conn))]
pub async fn site_in_org(
    conn: &mut PgConnection,
    org_id: Uuid,
    site_id: Uuid,
) -> sqlx::Result<bool> {
    Ok(
        sqlx::query_scalar::<_, i32>("SELECT 1 FROM sites WHERE id = $1 AND org_id = $2")
            .bind(site_id)
            .bind(org_id)
            .fetch_optional(conn)
            .await?
            .is_some(),
    )
}

/// Deletes every row of `site_id` keyed by one of `visitor_ids`: raw exposures and
/// conversions (through the per-partition `(site_id, visitor_id)` index), assignments,
/// recorded and parked conversions in the site's experiments. Aggregates and segment
/// statistics stay: they are anonymous counts.
#[tracing::instrument(skip(conn, visitor_ids), fields(visitors = visitor_ids.len()))]
pub async fn erase_visitors(
    conn: &mut PgConnection,
    site_id: Uuid,
    visitor_ids: &[String],
) -> sqlx::Result<Erased> {
    let run = |sql: &'static str| sqlx::query(sql).bind(site_id).bind(visitor_ids);
    let raw_exposures =
        run("DELETE FROM raw_exposures WHERE site_id = $1 AND visitor_id = ANY($2)")
            .execute(&mut *conn)
            .await?
            .rows_affected();
    let raw_conversions =
        run("DELETE FROM raw_conversions WHERE site_id = $1 AND visitor_id = ANY($2)")
            .execute(&mut *conn)
            .await?
            .rows_affected();
    let goal_conversions = run(
        "DELETE FROM goal_conversions c USING goals g JOIN experiments e ON e.id = g.experiment_id
          WHERE c.goal_id = g.id AND e.site_id = $1 AND c.visitor_id = ANY($2)",
    )
    .execute(&mut *conn)
    .await?
    .rows_affected();
    let pending_conversions = run("DELETE FROM pending_conversions p USING experiments e
          WHERE e.id = p.experiment_id AND e.site_id = $1 AND p.visitor_id = ANY($2)")
    .execute(&mut *conn)
    .await?
    .rows_affected();
    let assignments = run("DELETE FROM assignments a USING experiments e
          WHERE e.id = a.experiment_id AND e.site_id = $1 AND a.visitor_id = ANY($2)")
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(Erased {
        raw_exposures,
        raw_conversions,
        assignments,
        goal_conversions,
        pending_conversions,
    })
}
