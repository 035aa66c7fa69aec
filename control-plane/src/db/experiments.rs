//! Experiments and their parts (`elements`, `variants`, `arms`, `goals`).
//!
//! A definition is written whole: [`insert_parts`] writes the elements, variants, the
//! generated arms and the goals of a validated [`ExperimentSpec`]; a draft edit that
//! changes the structure (kind, elements) or the goals deletes that part
//! ([`delete_structure`], [`delete_goals`]) and writes it again.
//! Every change to the `experiments` row bumps `version` and `updated_at` in the same
//! `UPDATE … WHERE version = $n`.
//!
//! [`arm_counts`] is the one place the publisher reads per-arm exposures and
//! conversions from.

use std::collections::HashMap;

use samplit_engine::allocator::ArmStats;
use samplit_engine::changes::Change;
use samplit_engine::stats::guardrail::{Direction, Guardrail};
use sqlx::PgConnection;
use sqlx::types::Json;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::experiment::{
    AllocatorSpec, Description, ElementSpec, ExperimentKind, ExperimentName, ExperimentSpec,
    GoalSpec, GoalTrigger, Metric, TrafficShare, VariantSpec, Weight, mode_str,
};
use crate::domain::lifecycle::Status;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ExperimentRow {
    pub id: Uuid,
    pub org_id: Uuid,
    pub site_id: Uuid,
    pub name: String,
    pub description: String,
    pub kind: ExperimentKind,
    pub status: Status,
    pub allocator: Json<AllocatorSpec>,
    pub coverage: f64,
    pub url_rules: serde_json::Value,
    pub seed: String,
    pub hash_version: i16,
    pub version: i32,
    pub started_at: Option<OffsetDateTime>,
    pub ended_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ElementRow {
    pub id: Uuid,
    pub position: i32,
    pub name: String,
    pub selector: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct VariantRow {
    pub id: Uuid,
    pub element_id: Uuid,
    pub position: i32,
    pub name: String,
    pub is_control: bool,
    pub weight: f64,
    pub changes: serde_json::Value,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ArmRow {
    pub id: Uuid,
    pub element_id: Option<Uuid>,
    pub position: i32,
    pub name: String,
    pub variant_ids: Vec<Uuid>,
    pub is_control: bool,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct GoalRow {
    pub id: Uuid,
    pub name: String,
    pub trigger: String,
    pub target: String,
    pub metric: Metric,
    pub is_primary: bool,
    pub guardrail: bool,
    pub guardrail_margin: Option<f64>,
    pub guardrail_direction: Option<String>,
}

/// An experiment with all its parts, each list in position order.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub experiment: ExperimentRow,
    pub elements: Vec<ElementRow>,
    pub variants: Vec<VariantRow>,
    pub arms: Vec<ArmRow>,
    pub goals: Vec<GoalRow>,
}

impl Loaded {
    /// The stored definition as a domain value, read back through the domain's
    /// constructors. A stored value they refuse (an unknown kind, a change the engine no
    /// longer parses) is a decode error naming it, never a silent default.
    pub fn spec(&self) -> Result<ExperimentSpec, sqlx::Error> {
        let e = &self.experiment;
        let decode = |what: &str, m: String| -> sqlx::Error {
            sqlx::Error::Decode(format!("experiment {}: stored {what}: {m}", e.id).into())
        };
        let elements = self
            .elements
            .iter()
            .map(|el| {
                let variants = self
                    .variants
                    .iter()
                    .filter(|v| v.element_id == el.id)
                    .map(|v| {
                        Ok(VariantSpec {
                            name: v.name.clone(),
                            is_control: v.is_control,
                            weight: Weight::parse(v.weight, "weight")
                                .map_err(|err| decode("weight", err.to_string()))?,
                            changes: serde_json::from_value::<Vec<Change>>(v.changes.clone())
                                .map_err(|err| decode("changes", err.to_string()))?,
                        })
                    })
                    .collect::<Result<_, sqlx::Error>>()?;
                Ok(ElementSpec {
                    name: el.name.clone(),
                    selector: el.selector.clone(),
                    variants,
                })
            })
            .collect::<Result<_, sqlx::Error>>()?;
        let goals = self
            .goals
            .iter()
            .map(|g| {
                Ok(GoalSpec {
                    name: g.name.clone(),
                    trigger: GoalTrigger::from_columns(&g.trigger, &g.target)
                        .map_err(|m| decode("goal trigger", m))?,
                    metric: g.metric,
                    primary: g.is_primary,
                    guardrail: match (g.guardrail, g.guardrail_margin, &g.guardrail_direction) {
                        (false, _, _) => None,
                        (true, Some(margin), Some(direction)) => Some(
                            Direction::parse(direction)
                                .ok_or_else(|| decode("guardrail direction", direction.clone()))
                                .and_then(|d| {
                                    Guardrail::new(margin, d)
                                        .map_err(|err| decode("guardrail margin", err.to_string()))
                                })?,
                        ),
                        (true, _, _) => {
                            return Err(decode("guardrail", "margin or direction missing".into()));
                        }
                    },
                })
            })
            .collect::<Result<_, sqlx::Error>>()?;
        Ok(ExperimentSpec {
            name: ExperimentName::parse(&e.name).map_err(|err| decode("name", err.to_string()))?,
            description: Description::parse(&e.description)
                .map_err(|err| decode("description", err.to_string()))?,
            mode: e.kind.0,
            coverage: TrafficShare::parse(e.coverage)
                .map_err(|err| decode("coverage", err.to_string()))?,
            allocator: e.allocator.0,
            url_rules: serde_json::from_value(e.url_rules.clone())
                .map_err(|err| decode("url_rules", err.to_string()))?,
            elements,
            goals,
        })
    }
}

const COLUMNS: &str = "id, org_id, site_id, name, description, kind, status, allocator, coverage, url_rules, seed, hash_version, version, started_at, ended_at, created_at, updated_at";

#[tracing::instrument(skip(conn, spec))]
pub async fn insert(
    conn: &mut PgConnection,
    id: Uuid,
    org_id: Uuid,
    site_id: Uuid,
    spec: &ExperimentSpec,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO experiments (id, org_id, site_id, name, description, kind, allocator, coverage, url_rules, seed)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(id)
    .bind(org_id)
    .bind(site_id)
    .bind(spec.name.as_str())
    .bind(spec.description.as_str())
    .bind(mode_str(spec.mode))
    .bind(Json(&spec.allocator))
    .bind(spec.coverage.get())
    .bind(Json(&spec.url_rules))
    // The bucketing seed is the experiment id: unique, stable for its lifetime.
    .bind(id.to_string())
    .execute(&mut *conn)
    .await?;
    insert_parts(conn, id, spec).await
}

/// Writes elements, variants, the generated arms and the goals of `spec`.
pub async fn insert_parts(
    conn: &mut PgConnection,
    experiment_id: Uuid,
    spec: &ExperimentSpec,
) -> Result<(), sqlx::Error> {
    insert_structure(conn, experiment_id, spec).await?;
    insert_goals(conn, experiment_id, spec).await
}

/// Writes elements, variants and the generated arms of `spec`.
#[tracing::instrument(skip(conn, spec))]
pub async fn insert_structure(
    conn: &mut PgConnection,
    experiment_id: Uuid,
    spec: &ExperimentSpec,
) -> Result<(), sqlx::Error> {
    let mut variant_ids: Vec<Vec<Uuid>> = Vec::with_capacity(spec.elements.len());
    let mut element_ids = Vec::with_capacity(spec.elements.len());
    for (i, element) in spec.elements.iter().enumerate() {
        let element_id = Uuid::new_v4();
        element_ids.push(element_id);
        sqlx::query(
            "INSERT INTO elements (id, experiment_id, position, name, selector) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(element_id)
        .bind(experiment_id)
        .bind(i32::try_from(i).unwrap_or(i32::MAX))
        .bind(&element.name)
        .bind(&element.selector)
        .execute(&mut *conn)
        .await?;
        let mut ids = Vec::with_capacity(element.variants.len());
        for (j, v) in element.variants.iter().enumerate() {
            let id = Uuid::new_v4();
            ids.push(id);
            sqlx::query(
                "INSERT INTO variants (id, experiment_id, element_id, position, name, is_control, weight, changes)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(id)
            .bind(experiment_id)
            .bind(element_id)
            .bind(i32::try_from(j).unwrap_or(i32::MAX))
            .bind(&v.name)
            .bind(v.is_control)
            .bind(v.weight.get())
            .bind(Json(&v.changes))
            .execute(&mut *conn)
            .await?;
        }
        variant_ids.push(ids);
    }
    // The spec was validated, so planning cannot fail here; an empty plan would only
    // mean an experiment without arms, which `start` refuses.
    let arms = spec.arms().unwrap_or_default();
    // One multi-row INSERT for the arms: a factorial experiment has up to 500.
    let mut ids = Vec::with_capacity(arms.len());
    let mut elements: Vec<Option<Uuid>> = Vec::with_capacity(arms.len());
    let mut positions = Vec::with_capacity(arms.len());
    let mut names = Vec::with_capacity(arms.len());
    let mut variants = Vec::with_capacity(arms.len());
    let mut controls = Vec::with_capacity(arms.len());
    for (k, arm) in arms.iter().enumerate() {
        ids.push(Uuid::new_v4());
        elements.push(arm.element.map(|i| element_ids[i]));
        positions.push(i32::try_from(k).unwrap_or(i32::MAX));
        names.push(arm.name.clone());
        let vs: Vec<Uuid> = match arm.element {
            Some(i) => vec![variant_ids[i][arm.variants[0]]],
            None => arm
                .variants
                .iter()
                .enumerate()
                .map(|(i, &j)| variant_ids[i][j])
                .collect(),
        };
        // uuid[][] must be rectangular; arms of one experiment all have the same arity.
        variants.push(vs.iter().map(Uuid::to_string).collect::<Vec<_>>().join(","));
        controls.push(arm.is_control);
    }
    sqlx::query(
        "INSERT INTO arms (id, experiment_id, element_id, position, name, variant_ids, is_control)
         SELECT a.id, $1, a.element_id, a.position, a.name, string_to_array(a.variants, ',')::uuid[], a.is_control
           FROM UNNEST($2::uuid[], $3::uuid[], $4::int[], $5::text[], $6::text[], $7::bool[])
                AS a(id, element_id, position, name, variants, is_control)",
    )
    .bind(experiment_id)
    .bind(&ids)
    .bind(&elements)
    .bind(&positions)
    .bind(&names)
    .bind(&variants)
    .bind(&controls)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Writes the goals of `spec`.
#[tracing::instrument(skip(conn, spec))]
pub async fn insert_goals(
    conn: &mut PgConnection,
    experiment_id: Uuid,
    spec: &ExperimentSpec,
) -> Result<(), sqlx::Error> {
    for goal in &spec.goals {
        let (trigger, target) = goal.trigger.columns();
        sqlx::query(
            "INSERT INTO goals (id, experiment_id, name, trigger, target, metric, is_primary,
                                guardrail, guardrail_margin, guardrail_direction)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(Uuid::new_v4())
        .bind(experiment_id)
        .bind(&goal.name)
        .bind(trigger)
        .bind(target)
        .bind(goal.metric)
        .bind(goal.primary)
        .bind(goal.guardrail.is_some())
        .bind(goal.guardrail.map(|g| g.margin()))
        .bind(goal.guardrail.map(|g| g.direction().as_str()))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Deletes the elements, variants and arms (a draft's structure is rewritten whole).
#[tracing::instrument(skip(conn))]
pub async fn delete_structure(
    conn: &mut PgConnection,
    experiment_id: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM arms WHERE experiment_id = $1")
        .bind(experiment_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM elements WHERE experiment_id = $1")
        .bind(experiment_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Deletes the goals.
#[tracing::instrument(skip(conn))]
pub async fn delete_goals(conn: &mut PgConnection, experiment_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM goals WHERE experiment_id = $1")
        .bind(experiment_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Writes the row's own fields from `spec` if the version still matches.
#[tracing::instrument(skip(conn, spec))]
pub async fn update(
    conn: &mut PgConnection,
    id: Uuid,
    version: i32,
    spec: &ExperimentSpec,
) -> Result<Option<ExperimentRow>, sqlx::Error> {
    sqlx::query_as::<_, ExperimentRow>(&format!(
        "UPDATE experiments
            SET name = $3, description = $4, kind = $5, allocator = $6, coverage = $7,
                url_rules = $8, version = version + 1, updated_at = now()
          WHERE id = $1 AND version = $2 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(version)
    .bind(spec.name.as_str())
    .bind(spec.description.as_str())
    .bind(mode_str(spec.mode))
    .bind(Json(&spec.allocator))
    .bind(spec.coverage.get())
    .bind(Json(&spec.url_rules))
    .fetch_optional(conn)
    .await
}

/// Moves to `status` if the version still matches; stamps `started_at` on the first
/// start and `ended_at` on completion.
#[tracing::instrument(skip(conn))]
pub async fn set_status(
    conn: &mut PgConnection,
    id: Uuid,
    version: i32,
    status: Status,
) -> Result<Option<ExperimentRow>, sqlx::Error> {
    sqlx::query_as::<_, ExperimentRow>(&format!(
        "UPDATE experiments
            SET status = $3, version = version + 1, updated_at = now(),
                started_at = CASE WHEN $3 = 'running' THEN COALESCE(started_at, now()) ELSE started_at END,
                ended_at = CASE WHEN $3 = 'completed' THEN now() ELSE ended_at END
          WHERE id = $1 AND version = $2 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(version)
    .bind(status.as_str())
    .fetch_optional(conn)
    .await
}

#[tracing::instrument(skip(conn))]
pub async fn delete(conn: &mut PgConnection, id: Uuid, version: i32) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM experiments WHERE id = $1 AND version = $2")
        .bind(id)
        .bind(version)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

#[tracing::instrument(skip(conn))]
pub async fn get_row(
    conn: &mut PgConnection,
    org_id: Uuid,
    id: Uuid,
    for_update: bool,
) -> Result<Option<ExperimentRow>, sqlx::Error> {
    let lock = if for_update { " FOR UPDATE" } else { "" };
    sqlx::query_as::<_, ExperimentRow>(&format!(
        "SELECT {COLUMNS} FROM experiments WHERE org_id = $1 AND id = $2{lock}"
    ))
    .bind(org_id)
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Which experiments of an organisation a list shows (every filter optional).
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub site_id: Option<Uuid>,
    pub status: Option<Status>,
    /// A substring of the name, matched case-insensitively and literally (`%`, `_` and
    /// `\` are characters like any other).
    pub name_contains: Option<String>,
}

/// One page of [`list`]: its rows, and how many experiments match the filter in all.
#[derive(Debug, Clone)]
pub struct ListPage {
    pub rows: Vec<ExperimentRow>,
    pub total: i64,
}

#[derive(sqlx::FromRow)]
struct CountedRow {
    #[sqlx(flatten)]
    row: ExperimentRow,
    total: i64,
}

/// Experiments of an organisation matching `filter`, newest first (`id` breaks ties, so
/// pages are stable), `limit` of them from `offset`; `total` counts every match.
///
/// The count rides on the page's rows (`count(*) OVER ()`); a page past the end has no
/// row to carry it, so then it is counted on its own.
#[tracing::instrument(skip(conn))]
pub async fn list(
    conn: &mut PgConnection,
    org_id: Uuid,
    filter: &ListFilter,
    limit: i64,
    offset: i64,
) -> Result<ListPage, sqlx::Error> {
    // `strpos` on lower-cased text is a literal substring test: no LIKE pattern, so
    // nothing in the search text needs escaping.
    const MATCHES: &str = "org_id = $1
           AND ($2::uuid IS NULL OR site_id = $2)
           AND ($3::text IS NULL OR status = $3)
           AND ($4::text IS NULL OR strpos(lower(name), lower($4)) > 0)";
    let counted = sqlx::query_as::<_, CountedRow>(&format!(
        "SELECT {COLUMNS}, count(*) OVER () AS total FROM experiments
          WHERE {MATCHES}
          ORDER BY created_at DESC, id
          LIMIT $5 OFFSET $6"
    ))
    .bind(org_id)
    .bind(filter.site_id)
    .bind(filter.status)
    .bind(filter.name_contains.as_deref())
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *conn)
    .await?;
    let total = match counted.first() {
        Some(first) => first.total,
        None if offset == 0 => 0,
        None => {
            sqlx::query_scalar::<_, i64>(&format!(
                "SELECT count(*) FROM experiments WHERE {MATCHES}"
            ))
            .bind(org_id)
            .bind(filter.site_id)
            .bind(filter.status)
            .bind(filter.name_contains.as_deref())
            .fetch_one(&mut *conn)
            .await?
        }
    };
    Ok(ListPage {
        rows: counted.into_iter().map(|c| c.row).collect(),
        total,
    })
}

/// The parts of an experiment whose row the caller already holds.
#[tracing::instrument(skip(conn, experiment), fields(experiment_id = %experiment.id))]
pub async fn load_parts(
    conn: &mut PgConnection,
    experiment: ExperimentRow,
) -> Result<Loaded, sqlx::Error> {
    let id = experiment.id;
    let elements = sqlx::query_as::<_, ElementRow>(
        "SELECT id, position, name, selector FROM elements WHERE experiment_id = $1 ORDER BY position",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    let variants = sqlx::query_as::<_, VariantRow>(
        "SELECT v.id, v.element_id, v.position, v.name, v.is_control, v.weight, v.changes
           FROM variants v JOIN elements e ON e.id = v.element_id
          WHERE v.experiment_id = $1 ORDER BY e.position, v.position",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    let arms = sqlx::query_as::<_, ArmRow>(
        "SELECT id, element_id, position, name, variant_ids, is_control FROM arms
          WHERE experiment_id = $1 ORDER BY position",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    let goals = sqlx::query_as::<_, GoalRow>(
        "SELECT id, name, trigger, target, metric, is_primary,
                guardrail, guardrail_margin, guardrail_direction FROM goals
          WHERE experiment_id = $1 ORDER BY is_primary DESC, name",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(Loaded {
        experiment,
        elements,
        variants,
        arms,
        goals,
    })
}

/// Running experiments of a site, oldest first (the snapshot's evaluation order).
#[tracing::instrument(skip(conn))]
pub async fn running_for_site(
    conn: &mut PgConnection,
    site_id: Uuid,
) -> Result<Vec<Loaded>, sqlx::Error> {
    let rows = sqlx::query_as::<_, ExperimentRow>(&format!(
        "SELECT {COLUMNS} FROM experiments WHERE site_id = $1 AND status = 'running'
          ORDER BY started_at, id"
    ))
    .bind(site_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        out.push(load_parts(conn, row).await?);
    }
    Ok(out)
}

/// Exposures and conversions (of the primary goal) per arm of an experiment — the
/// posterior counts the publisher puts into snapshots. Read from the ingestion's per-arm
/// aggregates ([`super::aggregates::arm_counts`]), so O(arms), never O(events). Arms with
/// no data yet read as zero.
#[tracing::instrument(skip(conn))]
pub async fn arm_counts(
    conn: &mut PgConnection,
    experiment_id: Uuid,
) -> Result<HashMap<Uuid, ArmStats>, sqlx::Error> {
    Ok(super::aggregates::arm_counts(conn, experiment_id)
        .await?
        .into_iter()
        .map(|c| {
            let stats = ArmStats {
                exposures: u64::try_from(c.exposures).unwrap_or(0),
                conversions: u64::try_from(c.conversions).unwrap_or(0),
            };
            (c.arm_id, stats)
        })
        .collect())
}
