//! Experiments as validated values: [`ExperimentSpec`] is what the database layer stores
//! and the publisher reads. This module knows neither HTTP nor SQL: the API builds a spec
//! from its request body (`TryFrom<&ExperimentInput>` in `http::experiments::convert`,
//! with the constructors below), and stored rows decode into one
//! (`db::experiments::Loaded::spec`).
//!
//! Everything the edge will run is parsed with the engine's own types, so the API
//! accepts exactly what the edge accepts: each change is a
//! `samplit_engine::changes::Change`, each URL rule a `targeting::UrlRule`, the
//! Thompson parameters an `allocator::Thompson`, and every allocation unit's
//! `allocator::Allocator` is checked against its arm count (`check_arms`). HTML content
//! (`set_html`, `insert`) is sanitised with `ammonia` (scripts, event handlers,
//! `javascript:` URLs removed; ordinary markup kept) before the change is rebuilt.
//! What needs the site — form actions and redirects on the site's domains — is checked
//! by [`ExperimentSpec::check_for_site`] once the handler has the site; whether custom
//! code (`custom_css`/`custom_js`, [`ExperimentSpec::has_custom_code`]) may be saved
//! depends on the caller's role and is decided by the handler.
//!
//! Arms are planned here ([`ExperimentSpec::arms`]): `single` → one per variant of
//! its one element; `independent` → one per variant, grouped into one allocation unit
//! per element; `factorial` → the cartesian product of the elements' variants (the
//! engine's `multi::factorial_combinations`, at most 500 arms).

use samplit_engine::allocator::{Allocator, FixedSplit, Thompson};
use samplit_engine::changes::{self, Change, ChangeAction, SiteHosts};
use samplit_engine::multi::{self, Mode};
use samplit_engine::stats::guardrail::Guardrail;
use samplit_engine::targeting::UrlRule;
use serde::{Deserialize, Serialize};

use super::DomainError;

/// Most elements, variants per element, changes per variant, goals and URL rules.
pub const MAX_ELEMENTS: usize = 20;
pub const MAX_VARIANTS: usize = 50;
pub const MAX_CHANGES: usize = 100;
pub const MAX_GOALS: usize = 20;
pub const MAX_URL_RULES: usize = 50;
/// Most arms in one Thompson-sampling unit (the engine's `stats::bayes::MAX_ARMS`).
pub const MAX_THOMPSON_ARMS: usize = samplit_engine::stats::bayes::MAX_ARMS;

/// Trimmed text of at most `max` characters, without control characters other than
/// newline and tab; empty only when `allow_empty`. Errors name `field`.
pub fn bounded_text(
    field: &str,
    raw: &str,
    max: usize,
    allow_empty: bool,
) -> Result<String, DomainError> {
    let text = raw.trim();
    if text.is_empty() && !allow_empty {
        return Err(DomainError::new(field, "must not be empty"));
    }
    if text.chars().count() > max {
        return Err(DomainError::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(DomainError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(text.to_owned())
}

/// An experiment's name: 1–200 characters after trimming.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExperimentName(String);

impl ExperimentName {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        bounded_text("name", raw, 200, false).map(Self)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A free-text description, at most 5000 characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Description(String);

impl Description {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        bounded_text("description", raw, 5000, true).map(Self)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The share of eligible visitors that enter an experiment, in [0, 1].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TrafficShare(f64);

impl TrafficShare {
    pub fn parse(value: f64) -> Result<Self, DomainError> {
        if value.is_finite() && (0.0..=1.0).contains(&value) {
            Ok(Self(value))
        } else {
            Err(DomainError::new(
                "coverage",
                format!("{value} is not in [0, 1]"),
            ))
        }
    }
    pub fn get(self) -> f64 {
        self.0
    }
}

/// A fixed-split weight: finite and ≥ 0 (normalised within its element).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Weight(f64);

impl Weight {
    pub fn parse(value: f64, field: &str) -> Result<Self, DomainError> {
        if value.is_finite() && value >= 0.0 {
            Ok(Self(value))
        } else {
            Err(DomainError::new(
                field,
                format!("weight {value} must be a finite number ≥ 0"),
            ))
        }
    }
    pub fn get(self) -> f64 {
        self.0
    }
}

/// How traffic is split inside each allocation unit. Stored as the experiment's
/// `allocator` JSON: `{"kind":"fixed_split"}` (weights live on the variants) or
/// `{"kind":"thompson","prior_alpha":1.0,"prior_beta":1.0,"min_exposures":100,"floor":0.01}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AllocatorSpec {
    FixedSplit,
    Thompson(Thompson),
}

impl AllocatorSpec {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::FixedSplit => "fixed_split",
            Self::Thompson(_) => "thompson",
        }
    }

    /// The engine allocator of a unit: Thompson as configured, or a fixed split whose
    /// weights are the arms' weights normalised to sum to 1.
    pub fn unit_allocator(&self, arm_weights: &[f64]) -> Result<Allocator, String> {
        let allocator = match self {
            Self::Thompson(t) => {
                // The engine integrates P(best) over at most `bayes::MAX_ARMS` posteriors;
                // refuse here rather than fail at every publication.
                if arm_weights.len() > MAX_THOMPSON_ARMS {
                    return Err(format!(
                        "Thompson sampling supports at most {MAX_THOMPSON_ARMS} arms per unit \
                         ({} here); use a fixed split or fewer combinations",
                        arm_weights.len()
                    ));
                }
                Allocator::Thompson(*t)
            }
            Self::FixedSplit => {
                let sum: f64 = arm_weights.iter().sum();
                if !(sum.is_finite() && sum > 0.0) {
                    return Err("the weights of a unit must not all be zero".to_owned());
                }
                let weights = arm_weights.iter().map(|w| w / sum).collect();
                Allocator::FixedSplit(FixedSplit::new(weights).map_err(|e| e.to_string())?)
            }
        };
        allocator
            .check_arms(arm_weights.len())
            .map_err(|e| e.to_string())?;
        Ok(allocator)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct VariantSpec {
    pub name: String,
    pub is_control: bool,
    pub weight: Weight,
    pub changes: Vec<Change>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ElementSpec {
    pub name: String,
    pub selector: String,
    pub variants: Vec<VariantSpec>,
}

/// What counts as a conversion for a goal.
#[derive(Debug, Clone, PartialEq)]
pub enum GoalTrigger {
    /// A custom event name (`samplit.track(name)`, plugins).
    Custom(String),
    /// A page visit matching the URL rule.
    Url(UrlRule),
    /// A click on an element matching the selector.
    Click(String),
}

impl GoalTrigger {
    /// The `(trigger, target)` columns of the `goals` table.
    pub fn columns(&self) -> (&'static str, String) {
        match self {
            Self::Custom(event) => ("custom", event.clone()),
            Self::Url(rule) => ("url", serde_json::to_string(rule).unwrap_or_default()),
            Self::Click(selector) => ("click", selector.clone()),
        }
    }

    /// The inverse of [`GoalTrigger::columns`]: a stored goal's trigger.
    pub fn from_columns(trigger: &str, target: &str) -> Result<Self, String> {
        match trigger {
            "custom" => Ok(Self::Custom(target.to_owned())),
            "url" => serde_json::from_str(target)
                .map(Self::Url)
                .map_err(|e| format!("stored URL rule {target:?}: {e}")),
            "click" => Ok(Self::Click(target.to_owned())),
            other => Err(format!("unknown goal trigger {other:?} stored")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    Conversion,
    Revenue,
}

impl Metric {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Conversion => "conversion",
            Self::Revenue => "revenue",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "conversion" => Some(Self::Conversion),
            "revenue" => Some(Self::Revenue),
            _ => None,
        }
    }
}

crate::domain::text_column!(Metric, "metric");

#[derive(Debug, Clone, PartialEq)]
pub struct GoalSpec {
    pub name: String,
    pub trigger: GoalTrigger,
    pub metric: Metric,
    pub primary: bool,
    /// A guardrail: its non-inferiority margin and direction (never on the primary goal;
    /// `samplit_engine::stats::guardrail`).
    pub guardrail: Option<Guardrail>,
}

/// One arm to generate: which unit it belongs to and the variant index per element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArmPlan {
    /// `Some(element index)` for an independent experiment's per-element unit.
    pub element: Option<usize>,
    /// Variant index per element (one entry for single/independent).
    pub variants: Vec<usize>,
    pub name: String,
    pub is_control: bool,
}

/// A complete, valid experiment definition.
#[derive(Debug, Clone, PartialEq)]
pub struct ExperimentSpec {
    pub name: ExperimentName,
    pub description: Description,
    pub mode: Mode,
    pub coverage: TrafficShare,
    pub allocator: AllocatorSpec,
    pub url_rules: Vec<UrlRule>,
    pub elements: Vec<ElementSpec>,
    pub goals: Vec<GoalSpec>,
}

/// The engine's [`Mode`] as stored in `experiments.kind` and shown in the API:
/// `single`, `independent` or `factorial`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExperimentKind(pub Mode);

impl ExperimentKind {
    pub fn as_str(self) -> &'static str {
        mode_str(self.0)
    }

    pub fn parse(name: &str) -> Option<Self> {
        parse_mode(name).map(Self)
    }
}

crate::domain::text_column!(ExperimentKind, "experiment kind");

pub fn mode_str(mode: Mode) -> &'static str {
    match mode {
        Mode::Single => "single",
        Mode::Independent => "independent",
        Mode::Factorial => "factorial",
    }
}

pub fn parse_mode(s: &str) -> Option<Mode> {
    match s {
        "single" => Some(Mode::Single),
        "independent" => Some(Mode::Independent),
        "factorial" => Some(Mode::Factorial),
        _ => None,
    }
}

/// Sanitises the HTML of `set_html` and `insert` changes with ammonia's defaults
/// (keeps ordinary markup; drops `<script>`, `<style>`, `<iframe>`, event-handler
/// attributes and script URLs), then re-validates the change through the engine.
pub fn sanitise_change(change: Change) -> Result<Change, changes::ChangeError> {
    let action = match change.action() {
        ChangeAction::SetHtml { html } => ChangeAction::SetHtml {
            html: ammonia::clean(html),
        },
        ChangeAction::Insert { position, html } => ChangeAction::Insert {
            position: *position,
            html: ammonia::clean(html),
        },
        _ => return Ok(change),
    };
    Change::new(change.selector(), action)
}

/// The save-time rules that need the site (the engine's `changes::check` with the
/// site's domains): form actions, button form actions and redirects stay on the site's
/// hosts. `prefix` names the list in errors (`changes` → `changes[2]`).
pub fn check_changes_for_site(
    changes: &[Change],
    domains: &[String],
    prefix: &str,
) -> Vec<DomainError> {
    changes
        .iter()
        .enumerate()
        .filter_map(|(k, c)| {
            c.check_for_site(SiteHosts::Only(domains))
                .err()
                .map(|e| DomainError::new(format!("{prefix}[{k}]"), e.to_string()))
        })
        .collect()
}

impl ExperimentSpec {
    /// The rules that need the whole definition: the arms can be planned (factorial
    /// size) and every allocation unit's allocator accepts its arms (weights not all
    /// zero, Thompson's arm limit and floor). The error names `elements` for a fixed
    /// split and `allocator` for Thompson sampling.
    pub fn check_units(&self) -> Result<(), DomainError> {
        let arms = self.arms()?;
        for unit in self.units(&arms) {
            let weights: Vec<f64> = unit.iter().map(|a| self.arm_weight(a)).collect();
            if let Err(m) = self.allocator.unit_allocator(&weights) {
                let field = match self.allocator {
                    AllocatorSpec::FixedSplit => "elements",
                    AllocatorSpec::Thompson(_) => "allocator",
                };
                return Err(DomainError::new(field, m));
            }
        }
        Ok(())
    }

    /// [`check_changes_for_site`] for every variant; errors name
    /// `elements[i].variants[j].changes[k]`.
    pub fn check_for_site(&self, domains: &[String]) -> Result<(), Vec<DomainError>> {
        let errors: Vec<DomainError> = self
            .elements
            .iter()
            .enumerate()
            .flat_map(|(i, e)| {
                e.variants.iter().enumerate().flat_map(move |(j, v)| {
                    check_changes_for_site(
                        &v.changes,
                        domains,
                        &format!("elements[{i}].variants[{j}].changes"),
                    )
                })
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// Whether any variant carries custom code (`custom_css` / `custom_js`), which only
    /// owners and admins may save.
    pub fn has_custom_code(&self) -> bool {
        self.elements
            .iter()
            .flat_map(|e| &e.variants)
            .flat_map(|v| &v.changes)
            .any(Change::is_custom_code)
    }

    /// The arms, in a stable order (see the module docs).
    pub fn arms(&self) -> Result<Vec<ArmPlan>, DomainError> {
        fn plan_one(element: Option<usize>, e: &ElementSpec) -> impl Iterator<Item = ArmPlan> + '_ {
            e.variants.iter().enumerate().map(move |(j, v)| ArmPlan {
                element,
                variants: vec![j],
                name: v.name.clone(),
                is_control: v.is_control,
            })
        }
        match self.mode {
            Mode::Single => Ok(self
                .elements
                .first()
                .map(|e| plan_one(None, e).collect())
                .unwrap_or_default()),
            Mode::Independent => Ok(self
                .elements
                .iter()
                .enumerate()
                .flat_map(|(i, e)| plan_one(Some(i), e))
                .collect()),
            Mode::Factorial => {
                let counts: Vec<usize> = self.elements.iter().map(|e| e.variants.len()).collect();
                let combos = multi::factorial_combinations(&counts)
                    .map_err(|e| DomainError::new("elements", e.to_string()))?;
                Ok(combos
                    .into_iter()
                    .map(|combo| {
                        let picked: Vec<&VariantSpec> = combo
                            .iter()
                            .zip(&self.elements)
                            .map(|(&j, e)| &e.variants[j])
                            .collect();
                        ArmPlan {
                            element: None,
                            name: picked
                                .iter()
                                .map(|v| v.name.as_str())
                                .collect::<Vec<_>>()
                                .join(" × "),
                            is_control: picked.iter().all(|v| v.is_control),
                            variants: combo,
                        }
                    })
                    .collect())
            }
        }
    }

    /// Groups arms into allocation units (one per element for independent, else one).
    pub fn units<'a>(&self, arms: &'a [ArmPlan]) -> Vec<Vec<&'a ArmPlan>> {
        match self.mode {
            Mode::Independent => (0..self.elements.len())
                .map(|i| arms.iter().filter(|a| a.element == Some(i)).collect())
                .collect(),
            Mode::Single | Mode::Factorial => vec![arms.iter().collect()],
        }
    }

    /// An arm's fixed-split weight: its variant's weight, or for a factorial
    /// combination the product of its variants' weights (each element's split applied
    /// independently).
    pub fn arm_weight(&self, arm: &ArmPlan) -> f64 {
        match arm.element {
            Some(i) => self.elements[i].variants[arm.variants[0]].weight.get(),
            None => arm
                .variants
                .iter()
                .zip(&self.elements)
                .map(|(&j, e)| e.variants[j].weight.get())
                .product(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goal_triggers_round_trip_through_their_columns() {
        let rule: UrlRule =
            serde_json::from_str(r#"{"match":"prefix","pattern":"/thanks","include":true}"#)
                .unwrap();
        for trigger in [
            GoalTrigger::Custom("signup".into()),
            GoalTrigger::Url(rule),
            GoalTrigger::Click("#buy".into()),
        ] {
            let (kind, target) = trigger.columns();
            assert_eq!(GoalTrigger::from_columns(kind, &target), Ok(trigger));
        }
        let err = GoalTrigger::from_columns("hover", "#x").unwrap_err();
        assert!(err.contains("unknown goal trigger \"hover\""), "{err}");
        assert!(GoalTrigger::from_columns("url", "not json").is_err());
    }

    #[test]
    fn metrics_parse_their_own_names_only() {
        for m in [Metric::Conversion, Metric::Revenue] {
            assert_eq!(Metric::parse(m.as_str()), Some(m));
        }
        assert_eq!(Metric::parse("Revenue"), None);
    }
}
