//! Domain ownership (`site_domains`), signed host routes (`domain_routes`) and site
//! tombstones (`site_tombstones`); see `migrations/0010_domain_ownership.sql`.
//!
//! `site_domains` holds one row per host a site lists, pending until proven; a unique
//! partial index keeps a host verified by at most one site. `domain_routes` is what the
//! edge must be told about hosts: every change of a verified host's owner (verified,
//! removed, transferred, site deleted) takes a new version from one sequence, and the
//! publisher pushes rows whose version the edge has not accepted yet.

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::verification::{DomainStatus, Method};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DomainRow {
    pub site_id: Uuid,
    pub host: String,
    pub status: DomainStatus,
    pub token: String,
    pub method: Option<Method>,
    pub verified_at: Option<OffsetDateTime>,
}

const COLUMNS: &str = "site_id, host, status, token, method, verified_at";

/// The site's domain rows, by host.
#[tracing::instrument(skip(conn))]
pub async fn for_site(
    conn: &mut PgConnection,
    site_id: Uuid,
) -> Result<Vec<DomainRow>, sqlx::Error> {
    sqlx::query_as::<_, DomainRow>(&format!(
        "SELECT {COLUMNS} FROM site_domains WHERE site_id = $1 ORDER BY host"
    ))
    .bind(site_id)
    .fetch_all(conn)
    .await
}

/// The domain rows of several sites (the site list), by site then host.
#[tracing::instrument(skip(conn, site_ids))]
pub async fn for_sites(
    conn: &mut PgConnection,
    site_ids: &[Uuid],
) -> Result<Vec<DomainRow>, sqlx::Error> {
    sqlx::query_as::<_, DomainRow>(&format!(
        "SELECT {COLUMNS} FROM site_domains WHERE site_id = ANY($1) ORDER BY site_id, host"
    ))
    .bind(site_ids)
    .fetch_all(conn)
    .await
}

/// The site's verified hosts, sorted.
#[tracing::instrument(skip(conn))]
pub async fn verified_hosts(
    conn: &mut PgConnection,
    site_id: Uuid,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT host FROM site_domains WHERE site_id = $1 AND status = 'verified' ORDER BY host",
    )
    .bind(site_id)
    .fetch_all(conn)
    .await
}

/// Brings the site's rows in line with `hosts`: new hosts get a pending row with a fresh
/// token, rows of hosts no longer listed go. Returns the hosts removed while verified
/// (their routes must be tombstoned).
#[tracing::instrument(skip(conn, hosts, new_token))]
pub async fn sync(
    conn: &mut PgConnection,
    site_id: Uuid,
    hosts: &[String],
    new_token: impl Fn() -> String,
) -> Result<Vec<String>, sqlx::Error> {
    let removed: Vec<Option<String>> = sqlx::query_scalar(
        "DELETE FROM site_domains WHERE site_id = $1 AND NOT (host = ANY($2))
         RETURNING CASE WHEN status = 'verified' THEN host END",
    )
    .bind(site_id)
    .bind(hosts)
    .fetch_all(&mut *conn)
    .await?;
    let removed: Vec<String> = removed.into_iter().flatten().collect();
    for host in hosts {
        sqlx::query(
            "INSERT INTO site_domains (site_id, host, token) VALUES ($1, $2, $3)
             ON CONFLICT (site_id, host) DO NOTHING",
        )
        .bind(site_id)
        .bind(host)
        .bind(new_token())
        .execute(&mut *conn)
        .await?;
    }
    Ok(removed)
}

/// Locks and returns one domain row of a site.
#[tracing::instrument(skip(conn))]
pub async fn get_for_update(
    conn: &mut PgConnection,
    site_id: Uuid,
    host: &str,
) -> Result<Option<DomainRow>, sqlx::Error> {
    sqlx::query_as::<_, DomainRow>(&format!(
        "SELECT {COLUMNS} FROM site_domains WHERE site_id = $1 AND host = $2 FOR UPDATE"
    ))
    .bind(site_id)
    .bind(host)
    .fetch_optional(conn)
    .await
}

/// The site (id, org, key) holding `host` verified, if any other than `except_site`.
#[tracing::instrument(skip(conn))]
pub async fn verified_owner(
    conn: &mut PgConnection,
    host: &str,
    except_site: Uuid,
) -> Result<Option<(Uuid, Uuid)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT d.site_id, s.org_id FROM site_domains d JOIN sites s ON s.id = d.site_id
          WHERE d.host = $1 AND d.status = 'verified' AND d.site_id <> $2
          FOR UPDATE OF d",
    )
    .bind(host)
    .bind(except_site)
    .fetch_optional(conn)
    .await
}

/// Sends another site's verified row back to pending (a transfer proven by a new owner).
#[tracing::instrument(skip(conn))]
pub async fn revoke(conn: &mut PgConnection, site_id: Uuid, host: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE site_domains SET status = 'pending', method = NULL, verified_at = NULL
          WHERE site_id = $1 AND host = $2",
    )
    .bind(site_id)
    .bind(host)
    .execute(&mut *conn)
    .await?;
    // The publisher notices content changes by hash; bumping the site's version also
    // changes its ETag, so clients see that something changed.
    sqlx::query("UPDATE sites SET version = version + 1, updated_at = now() WHERE id = $1")
        .bind(site_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Marks the row verified.
#[tracing::instrument(skip(conn))]
pub async fn mark_verified(
    conn: &mut PgConnection,
    site_id: Uuid,
    host: &str,
    method: Method,
) -> Result<DomainRow, sqlx::Error> {
    sqlx::query_as::<_, DomainRow>(&format!(
        "UPDATE site_domains SET status = 'verified', method = $3, verified_at = now()
          WHERE site_id = $1 AND host = $2 RETURNING {COLUMNS}"
    ))
    .bind(site_id)
    .bind(host)
    .bind(method)
    .fetch_one(conn)
    .await
}

/// Records that `host` now routes to `site_key` (`None`: to no site), with a new version.
#[tracing::instrument(skip(conn))]
pub async fn set_route(
    conn: &mut PgConnection,
    host: &str,
    site_key: Option<&str>,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO domain_routes (host, site_key, version)
         VALUES ($1, $2, nextval('domain_route_version_seq'))
         ON CONFLICT (host) DO UPDATE
            SET site_key = EXCLUDED.site_key, version = EXCLUDED.version,
                last_error = NULL, updated_at = now()
         RETURNING version",
    )
    .bind(host)
    .bind(site_key)
    .fetch_one(conn)
    .await
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RouteRow {
    pub host: String,
    pub site_key: Option<String>,
    pub version: i64,
}

/// Routes the edge has not accepted in their current version.
#[tracing::instrument(skip(conn))]
pub async fn unpushed_routes(conn: &mut PgConnection) -> Result<Vec<RouteRow>, sqlx::Error> {
    sqlx::query_as::<_, RouteRow>(
        "SELECT host, site_key, version FROM domain_routes
          WHERE pushed_version IS DISTINCT FROM version ORDER BY version",
    )
    .fetch_all(conn)
    .await
}

/// Records a push outcome for `version` (a newer version set meanwhile stays unpushed).
#[tracing::instrument(skip(conn, error))]
pub async fn route_pushed(
    conn: &mut PgConnection,
    host: &str,
    version: i64,
    error: Option<&str>,
) -> Result<(), sqlx::Error> {
    let q = match error {
        None => {
            "UPDATE domain_routes SET pushed_version = $2, last_error = NULL
                  WHERE host = $1 AND version = $2"
        }
        Some(_) => "UPDATE domain_routes SET last_error = $3 WHERE host = $1 AND version = $2",
    };
    sqlx::query(q)
        .bind(host)
        .bind(version)
        .bind(error)
        .execute(conn)
        .await?;
    Ok(())
}

/// Records the tombstone of a site being deleted (in the deleting transaction, before
/// the delete cascades its publications): its version is two above the highest snapshot
/// version attempted, so it also beats a push the publisher may have in flight (which
/// takes max + 1).
#[tracing::instrument(skip(conn))]
pub async fn insert_tombstone(
    conn: &mut PgConnection,
    site_id: Uuid,
    org_id: Uuid,
    site_key: &str,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO site_tombstones (site_key, org_id, version)
         SELECT $2, $3, COALESCE(MAX(version), 0) + 2 FROM snapshot_publications WHERE site_id = $1
         ON CONFLICT (site_key) DO UPDATE SET version = EXCLUDED.version, pushed_at = NULL
         RETURNING version",
    )
    .bind(site_id)
    .bind(site_key)
    .bind(org_id)
    .fetch_one(conn)
    .await
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TombstoneRow {
    pub site_key: String,
    pub org_id: Uuid,
    pub version: i64,
}

/// Tombstones the edge has not accepted yet.
#[tracing::instrument(skip(conn))]
pub async fn unpushed_tombstones(
    conn: &mut PgConnection,
) -> Result<Vec<TombstoneRow>, sqlx::Error> {
    sqlx::query_as::<_, TombstoneRow>(
        "SELECT site_key, org_id, version FROM site_tombstones WHERE pushed_at IS NULL
          ORDER BY created_at",
    )
    .fetch_all(conn)
    .await
}

#[tracing::instrument(skip(conn, error))]
pub async fn tombstone_pushed(
    conn: &mut PgConnection,
    site_key: &str,
    error: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE site_tombstones SET attempts = attempts + 1, last_error = $2,
                pushed_at = CASE WHEN $2 IS NULL THEN now() END
          WHERE site_key = $1",
    )
    .bind(site_key)
    .bind(error)
    .execute(conn)
    .await?;
    Ok(())
}

/// Sets the site's `snippet_seen_at` the first time an exposure arrives from one of its
/// verified hosts. Returns whether it was set now.
#[tracing::instrument(skip(conn))]
pub async fn mark_snippet_seen(
    conn: &mut PgConnection,
    site_key: &str,
    host: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE sites s SET snippet_seen_at = now()
          WHERE s.site_key = $1 AND s.snippet_seen_at IS NULL
            AND EXISTS (SELECT 1 FROM site_domains d
                         WHERE d.site_id = s.id AND d.host = $2 AND d.status = 'verified')",
    )
    .bind(site_key)
    .bind(host)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}
