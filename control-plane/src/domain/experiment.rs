//! Experiments as validated values: [`ExperimentSpec`] is built with `TryFrom` from the
//! request body ([`crate::http::experiments::dto::ExperimentInput`]) and is what the
//! database layer stores.
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

use samplit_engine::allocator::{
    Allocator, DEFAULT_FLOOR, DEFAULT_MIN_EXPOSURES, FixedSplit, Thompson,
};
use samplit_engine::changes::{self, Change, ChangeAction, SiteHosts};
use samplit_engine::multi::{self, Mode};
use samplit_engine::targeting::UrlRule;
use serde::{Deserialize, Serialize};

use super::{DomainError, Errors};
use crate::http::experiments::dto::{
    AllocatorInput, ElementInput, ExperimentInput, GoalInput, GoalTriggerInput, VariantInput,
};

/// Most elements, variants per element, changes per variant, goals and URL rules.
pub const MAX_ELEMENTS: usize = 20;
pub const MAX_VARIANTS: usize = 50;
pub const MAX_CHANGES: usize = 100;
pub const MAX_GOALS: usize = 20;
pub const MAX_URL_RULES: usize = 50;
/// Most arms in one Thompson-sampling unit (the engine's `stats::bayes::MAX_ARMS`).
pub const MAX_THOMPSON_ARMS: usize = samplit_engine::stats::bayes::MAX_ARMS;

fn bounded_text(
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

impl TryFrom<&AllocatorInput> for AllocatorSpec {
    type Error = DomainError;
    fn try_from(input: &AllocatorInput) -> Result<Self, DomainError> {
        let err = |m: String| DomainError::new("allocator", m);
        match input.kind.as_str() {
            "fixed_split" => Ok(Self::FixedSplit),
            "thompson" => Thompson::new(
                input.prior_alpha.unwrap_or(1.0),
                input.prior_beta.unwrap_or(1.0),
                input.min_exposures.unwrap_or(DEFAULT_MIN_EXPOSURES),
                input.floor.unwrap_or(DEFAULT_FLOOR),
            )
            .map(Self::Thompson)
            .map_err(|e| err(e.to_string())),
            other => Err(err(format!(
                "unknown allocator kind {other:?} (fixed_split or thompson)"
            ))),
        }
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
}

#[derive(Debug, Clone, PartialEq)]
pub struct GoalSpec {
    pub name: String,
    pub trigger: GoalTrigger,
    pub metric: Metric,
    pub primary: bool,
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

/// Parses one change from its JSON with the engine's type; a precise message on failure.
fn parse_change(value: &serde_json::Value, field: &str) -> Result<Change, DomainError> {
    let change: Change = serde_json::from_value(value.clone())
        .map_err(|e| DomainError::new(field, format!("invalid change: {e}")))?;
    sanitise_change(change).map_err(|e| DomainError::new(field, e.to_string()))
}

fn parse_variant(input: &VariantInput, field: &str, errors: &mut Errors) -> Option<VariantSpec> {
    let name = errors.take(bounded_text(
        &format!("{field}.name"),
        &input.name,
        100,
        false,
    ));
    let weight = errors.take(Weight::parse(input.weight, &format!("{field}.weight")));
    if input.changes.len() > MAX_CHANGES {
        errors.push(
            format!("{field}.changes"),
            format!("at most {MAX_CHANGES} changes"),
        );
    }
    let changes: Vec<Option<Change>> = input
        .changes
        .iter()
        .enumerate()
        .map(|(k, c)| errors.take(parse_change(c, &format!("{field}.changes[{k}]"))))
        .collect();
    Some(VariantSpec {
        name: name?,
        is_control: input.is_control,
        weight: weight?,
        changes: changes.into_iter().collect::<Option<_>>()?,
    })
}

fn parse_element(input: &ElementInput, i: usize, errors: &mut Errors) -> Option<ElementSpec> {
    let field = format!("elements[{i}]");
    let name = errors.take(bounded_text(
        &format!("{field}.name"),
        input
            .name
            .as_deref()
            .unwrap_or(&format!("Element {}", i + 1)),
        100,
        false,
    ));
    let selector = errors.take(
        changes::validate_selector(&input.selector)
            .map(|()| input.selector.trim().to_owned())
            .map_err(|e| DomainError::new(format!("{field}.selector"), e.to_string())),
    );
    if input.variants.is_empty() {
        errors.push(format!("{field}.variants"), "needs at least one variant");
    }
    if input.variants.len() > MAX_VARIANTS {
        errors.push(
            format!("{field}.variants"),
            format!("at most {MAX_VARIANTS} variants"),
        );
    }
    let mut names = std::collections::BTreeSet::new();
    for (j, v) in input.variants.iter().enumerate() {
        if !names.insert(v.name.trim()) {
            errors.push(
                format!("{field}.variants[{j}].name"),
                "variant names must be unique within an element",
            );
        }
    }
    let controls = input.variants.iter().filter(|v| v.is_control).count();
    if controls > 1 {
        errors.push(
            format!("{field}.variants"),
            "at most one variant per element is the control",
        );
    }
    let variants: Vec<Option<VariantSpec>> = input
        .variants
        .iter()
        .enumerate()
        .map(|(j, v)| parse_variant(v, &format!("{field}.variants[{j}]"), errors))
        .collect();
    let mut variants: Vec<VariantSpec> = variants.into_iter().collect::<Option<_>>()?;
    // No control named: the first variant is the control (the engine's convention).
    if controls == 0
        && let Some(first) = variants.first_mut()
    {
        first.is_control = true;
    }
    Some(ElementSpec {
        name: name?,
        selector: selector?,
        variants,
    })
}

fn parse_goal(input: &GoalInput, i: usize) -> Result<GoalSpec, DomainError> {
    let field = format!("goals[{i}]");
    let name = bounded_text(&format!("{field}.name"), &input.name, 100, false)?;
    let metric = match input.metric.as_deref().unwrap_or("conversion") {
        "conversion" => Metric::Conversion,
        "revenue" => Metric::Revenue,
        other => {
            return Err(DomainError::new(
                format!("{field}.metric"),
                format!("unknown metric {other:?} (conversion or revenue)"),
            ));
        }
    };
    let trigger_field = format!("{field}.trigger");
    let trigger = match &input.trigger {
        GoalTriggerInput::Custom { event } => {
            let event = bounded_text(&format!("{trigger_field}.event"), event, 100, false)?;
            if !event
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'))
            {
                return Err(DomainError::new(
                    format!("{trigger_field}.event"),
                    "event names use letters, digits, _ - . and :",
                ));
            }
            GoalTrigger::Custom(event)
        }
        GoalTriggerInput::Url { rule } => {
            GoalTrigger::Url(serde_json::from_value(rule.clone()).map_err(|e| {
                DomainError::new(
                    format!("{trigger_field}.rule"),
                    format!("invalid URL rule: {e}"),
                )
            })?)
        }
        GoalTriggerInput::Click { selector } => {
            changes::validate_selector(selector).map_err(|e| {
                DomainError::new(format!("{trigger_field}.selector"), e.to_string())
            })?;
            GoalTrigger::Click(selector.trim().to_owned())
        }
    };
    Ok(GoalSpec {
        name,
        trigger,
        metric,
        primary: input.primary,
    })
}

impl TryFrom<&ExperimentInput> for ExperimentSpec {
    type Error = Vec<DomainError>;

    fn try_from(input: &ExperimentInput) -> Result<Self, Self::Error> {
        let mut errors = Errors::default();
        let name = errors.take(ExperimentName::parse(&input.name));
        let description = errors.take(Description::parse(&input.description));
        let coverage = errors.take(TrafficShare::parse(input.coverage));
        let mode = errors.take(parse_mode(&input.kind).ok_or_else(|| {
            DomainError::new(
                "kind",
                format!(
                    "unknown kind {:?} (single, independent or factorial)",
                    input.kind
                ),
            )
        }));
        let allocator = errors.take(AllocatorSpec::try_from(&input.allocator));
        if input.url_rules.len() > MAX_URL_RULES {
            errors.push("url_rules", format!("at most {MAX_URL_RULES} rules"));
        }
        let url_rules: Vec<Option<UrlRule>> = input
            .url_rules
            .iter()
            .enumerate()
            .map(|(i, r)| {
                errors.take(serde_json::from_value(r.clone()).map_err(|e| {
                    DomainError::new(format!("url_rules[{i}]"), format!("invalid URL rule: {e}"))
                }))
            })
            .collect();
        if input.elements.is_empty() {
            errors.push("elements", "needs at least one element");
        }
        if input.elements.len() > MAX_ELEMENTS {
            errors.push("elements", format!("at most {MAX_ELEMENTS} elements"));
        }
        if mode == Some(Mode::Single) && input.elements.len() > 1 {
            errors.push(
                "elements",
                "a single-element experiment has exactly one element",
            );
        }
        let elements: Vec<Option<ElementSpec>> = input
            .elements
            .iter()
            .enumerate()
            .map(|(i, e)| parse_element(e, i, &mut errors))
            .collect();
        if input.goals.len() > MAX_GOALS {
            errors.push("goals", format!("at most {MAX_GOALS} goals"));
        }
        let goals: Vec<Option<GoalSpec>> = input
            .goals
            .iter()
            .enumerate()
            .map(|(i, g)| errors.take(parse_goal(g, i)))
            .collect();
        let mut goal_names = std::collections::BTreeSet::new();
        for (i, g) in goals.iter().enumerate() {
            if let Some(g) = g
                && !goal_names.insert(g.name.clone())
            {
                errors.push(format!("goals[{i}].name"), "goal names must be unique");
            }
        }
        if goals.iter().flatten().filter(|g| g.primary).count() > 1 {
            errors.push("goals", "exactly one goal may be primary");
        }

        let (Some(name), Some(description), Some(coverage), Some(mode), Some(allocator)) =
            (name, description, coverage, mode, allocator)
        else {
            return Err(errors.0);
        };
        let (Some(url_rules), Some(elements), Some(goals)) = (
            url_rules.into_iter().collect::<Option<Vec<_>>>(),
            elements.into_iter().collect::<Option<Vec<_>>>(),
            goals.into_iter().collect::<Option<Vec<_>>>(),
        ) else {
            return Err(errors.0);
        };
        if !errors.is_empty() {
            return Err(errors.0);
        }
        let spec = Self {
            name,
            description,
            mode,
            coverage,
            allocator,
            url_rules,
            elements,
            goals,
        };
        // Arms and allocators: factorial size, weights, Thompson floor vs arm count.
        let arms = spec.arms().map_err(|e| vec![e])?;
        for unit in spec.units(&arms) {
            let weights: Vec<f64> = unit.iter().map(|a| spec.arm_weight(a)).collect();
            if let Err(m) = spec.allocator.unit_allocator(&weights) {
                let field = match spec.allocator {
                    AllocatorSpec::FixedSplit => "elements",
                    AllocatorSpec::Thompson(_) => "allocator",
                };
                return Err(vec![DomainError::new(field, m)]);
            }
        }
        Ok(spec)
    }
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
