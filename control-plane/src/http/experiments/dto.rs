//! Request and response bodies of the experiments API.
//!
//! Inputs keep the engine-typed parts (changes, URL rules) as raw JSON values so each
//! one is parsed on its own and a mistake is reported as a 422 naming its field
//! (`elements[0].variants[1].changes[0]`), instead of one 400 for the whole body.
//! [`crate::domain::experiment::ExperimentSpec`] is built from [`ExperimentInput`]
//! (`super::convert`); views are built from the stored rows.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::db::experiments::Loaded;
use crate::domain::experiment::{AllocatorSpec, Metric};

fn one() -> f64 {
    1.0
}

fn single() -> String {
    "single".to_owned()
}

fn fixed_split() -> AllocatorInput {
    AllocatorInput {
        kind: "fixed_split".to_owned(),
        prior_alpha: None,
        prior_beta: None,
        min_exposures: None,
        floor: None,
    }
}

/// A complete experiment definition (create, and the merged result of a draft PATCH).
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExperimentInput {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// `single` (default), `independent` or `factorial`.
    #[serde(default = "single")]
    pub kind: String,
    /// Share of eligible visitors that enter, in [0, 1] (default 1).
    #[serde(default = "one")]
    pub coverage: f64,
    #[serde(default = "fixed_split")]
    pub allocator: AllocatorInput,
    /// Engine URL rules, e.g. `{"match": "prefix", "pattern": "/pricing", "include": true}`.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub url_rules: Vec<serde_json::Value>,
    pub elements: Vec<ElementInput>,
    #[serde(default)]
    pub goals: Vec<GoalInput>,
}

/// `{"kind": "fixed_split"}` (weights on the variants) or `{"kind": "thompson"}` with
/// optional `prior_alpha`/`prior_beta` (default 1), `min_exposures` (default 100) and
/// `floor` (default 0.01).
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AllocatorInput {
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prior_alpha: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prior_beta: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_exposures: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floor: Option<f64>,
}

#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ElementInput {
    #[serde(default)]
    pub name: Option<String>,
    /// CSS selector of the element.
    pub selector: String,
    pub variants: Vec<VariantInput>,
}

#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VariantInput {
    pub name: String,
    /// The control of its element (default: the first variant).
    #[serde(default)]
    pub is_control: bool,
    /// Fixed-split weight, ≥ 0, normalised within the element (default 1).
    #[serde(default = "one")]
    pub weight: f64,
    /// Engine changes, e.g. `{"selector": "h1", "action": {"type": "set_text", "text": "Hi"}}`.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub changes: Vec<serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GoalInput {
    pub name: String,
    /// `conversion` (default) or `revenue`.
    #[serde(default)]
    pub metric: Option<String>,
    /// The primary metric (exactly one goal must be primary to start).
    #[serde(default)]
    pub primary: bool,
    pub trigger: GoalTriggerInput,
    /// A guardrail: a secondary goal the winner must not harm by more than
    /// `guardrail_margin` (never the primary goal). Default false.
    #[serde(default)]
    pub guardrail: bool,
    /// Required for a guardrail, else absent: the relative loss tolerated, in (0, 1]
    /// (0.05 = the variant may be at most 5 % worse than the control).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guardrail_margin: Option<f64>,
    /// For a guardrail: `higher_is_better` (default; purchases, revenue) or
    /// `lower_is_better` (a bounce or error event counted as a conversion).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guardrail_direction: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum GoalTriggerInput {
    /// A custom event (`samplit.track("signup")`, plugins).
    Custom { event: String },
    /// A page visit matching an engine URL rule.
    Url {
        #[schema(value_type = Object)]
        rule: serde_json::Value,
    },
    /// A click on an element matching the selector.
    Click { selector: String },
}

/// A PATCH: every field optional. Drafts accept all; running/paused experiments only
/// `name`, `description`, `coverage`; completed ones `name` and `description`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExperimentPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub kind: Option<String>,
    pub coverage: Option<f64>,
    pub allocator: Option<AllocatorInput>,
    #[schema(value_type = Option<Vec<Object>>)]
    pub url_rules: Option<Vec<serde_json::Value>>,
    pub elements: Option<Vec<ElementInput>>,
    pub goals: Option<Vec<GoalInput>>,
}

impl ExperimentPatch {
    /// The names of the fields present, for the running-edit check and the audit entry.
    pub fn fields(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        let present = [
            ("name", self.name.is_some()),
            ("description", self.description.is_some()),
            ("kind", self.kind.is_some()),
            ("coverage", self.coverage.is_some()),
            ("allocator", self.allocator.is_some()),
            ("url_rules", self.url_rules.is_some()),
            ("elements", self.elements.is_some()),
            ("goals", self.goals.is_some()),
        ];
        for (name, is) in present {
            if is {
                out.push(name);
            }
        }
        out
    }

    /// Applies the present fields to `base`.
    pub fn apply(self, mut base: ExperimentInput) -> ExperimentInput {
        if let Some(v) = self.name {
            base.name = v;
        }
        if let Some(v) = self.description {
            base.description = v;
        }
        if let Some(v) = self.kind {
            base.kind = v;
        }
        if let Some(v) = self.coverage {
            base.coverage = v;
        }
        if let Some(v) = self.allocator {
            base.allocator = v;
        }
        if let Some(v) = self.url_rules {
            base.url_rules = v;
        }
        if let Some(v) = self.elements {
            base.elements = v;
        }
        if let Some(v) = self.goals {
            base.goals = v;
        }
        base
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ExperimentView {
    pub id: Uuid,
    pub site_id: Uuid,
    pub name: String,
    pub description: String,
    pub kind: String,
    pub status: crate::domain::Status,
    pub coverage: f64,
    #[schema(value_type = Object)]
    pub allocator: AllocatorSpec,
    #[schema(value_type = Vec<Object>)]
    pub url_rules: serde_json::Value,
    pub elements: Vec<ElementView>,
    pub arms: Vec<ArmView>,
    pub goals: Vec<GoalView>,
    pub version: i32,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub started_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub ended_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ElementView {
    pub id: Uuid,
    pub name: String,
    pub selector: String,
    pub variants: Vec<VariantView>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct VariantView {
    pub id: Uuid,
    pub name: String,
    pub is_control: bool,
    pub weight: f64,
    #[schema(value_type = Vec<Object>)]
    pub changes: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ArmView {
    pub id: Uuid,
    /// The element of an independent experiment's per-element unit.
    pub element_id: Option<Uuid>,
    pub name: String,
    /// The variant of each element this arm shows, in element order.
    pub variant_ids: Vec<Uuid>,
    pub is_control: bool,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct GoalView {
    pub id: Uuid,
    pub name: String,
    pub metric: Metric,
    pub primary: bool,
    /// `{"type": "custom", "event": …}`, `{"type": "url", "rule": {…}}` or
    /// `{"type": "click", "selector": …}`.
    #[schema(value_type = Object)]
    pub trigger: serde_json::Value,
    /// A guardrail goal (see `GoalInput`).
    pub guardrail: bool,
    /// The guardrail's relative margin; null unless `guardrail`.
    pub guardrail_margin: Option<f64>,
    /// `higher_is_better` or `lower_is_better`; null unless `guardrail`.
    pub guardrail_direction: Option<String>,
}

/// A list entry: the experiment without its parts.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ExperimentSummary {
    pub id: Uuid,
    pub site_id: Uuid,
    pub name: String,
    pub kind: String,
    pub status: crate::domain::Status,
    pub coverage: f64,
    pub version: i32,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

fn goal_trigger_json(trigger: &str, target: &str) -> serde_json::Value {
    match trigger {
        "custom" => serde_json::json!({ "type": "custom", "event": target }),
        "url" => serde_json::json!({
            "type": "url",
            "rule": serde_json::from_str::<serde_json::Value>(target).unwrap_or(serde_json::Value::Null),
        }),
        _ => serde_json::json!({ "type": "click", "selector": target }),
    }
}

impl From<&Loaded> for ExperimentView {
    fn from(l: &Loaded) -> Self {
        let e = &l.experiment;
        Self {
            id: e.id,
            site_id: e.site_id,
            name: e.name.clone(),
            description: e.description.clone(),
            kind: e.kind.as_str().to_owned(),
            status: e.status,
            coverage: e.coverage,
            allocator: e.allocator.0,
            url_rules: e.url_rules.clone(),
            elements: l
                .elements
                .iter()
                .map(|el| ElementView {
                    id: el.id,
                    name: el.name.clone(),
                    selector: el.selector.clone(),
                    variants: l
                        .variants
                        .iter()
                        .filter(|v| v.element_id == el.id)
                        .map(|v| VariantView {
                            id: v.id,
                            name: v.name.clone(),
                            is_control: v.is_control,
                            weight: v.weight,
                            changes: v.changes.clone(),
                        })
                        .collect(),
                })
                .collect(),
            arms: l
                .arms
                .iter()
                .map(|a| ArmView {
                    id: a.id,
                    element_id: a.element_id,
                    name: a.name.clone(),
                    variant_ids: a.variant_ids.clone(),
                    is_control: a.is_control,
                })
                .collect(),
            goals: l
                .goals
                .iter()
                .map(|g| GoalView {
                    id: g.id,
                    name: g.name.clone(),
                    metric: g.metric,
                    primary: g.is_primary,
                    trigger: goal_trigger_json(&g.trigger, &g.target),
                    guardrail: g.guardrail,
                    guardrail_margin: g.guardrail_margin,
                    guardrail_direction: g.guardrail_direction.clone(),
                })
                .collect(),
            version: e.version,
            started_at: e.started_at,
            ended_at: e.ended_at,
            created_at: e.created_at,
            updated_at: e.updated_at,
        }
    }
}
