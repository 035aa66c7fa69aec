//! Request bodies → domain values: `TryFrom<&ExperimentInput> for ExperimentSpec` (and
//! the allocator), as zero2prod's routes build their `NewSubscriber`.
//!
//! The body is walked field by field with the domain's constructors
//! ([`ExperimentName::parse`], [`Weight::parse`], [`bounded_text`], the engine's
//! `Change` and `UrlRule`), collecting every mistake with its path
//! (`elements[0].variants[1].changes[0]`) so one 422 lists them all; the rules that need
//! the whole definition (arms, each unit's allocator) are the domain's
//! [`ExperimentSpec::check_units`]. A draft PATCH is merged at this level too
//! ([`ExperimentInput::from`] a stored spec, then [`super::dto::ExperimentPatch::apply`]),
//! so an edit is validated by exactly the rules a create is.

use samplit_engine::allocator::{DEFAULT_FLOOR, DEFAULT_MIN_EXPOSURES, Thompson};
use samplit_engine::changes::{self, Change};
use samplit_engine::multi::Mode;
use samplit_engine::stats::guardrail::{Direction, Guardrail};
use samplit_engine::targeting::UrlRule;

use super::dto::{
    AllocatorInput, ElementInput, ExperimentInput, GoalInput, GoalTriggerInput, VariantInput,
};
use crate::domain::experiment::{
    AllocatorSpec, Description, ElementSpec, ExperimentName, ExperimentSpec, GoalSpec, GoalTrigger,
    MAX_CHANGES, MAX_ELEMENTS, MAX_GOALS, MAX_URL_RULES, MAX_VARIANTS, Metric, TrafficShare,
    VariantSpec, Weight, bounded_text, mode_str, parse_mode, sanitise_change,
};
use crate::domain::{DomainError, Errors};

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
        guardrail: parse_guardrail(input, &field)?,
    })
}

/// A goal's guardrail fields: all absent unless `guardrail`; then a margin in (0, 1] is
/// required, the direction defaults to `higher_is_better`, and the goal is not primary.
fn parse_guardrail(input: &GoalInput, field: &str) -> Result<Option<Guardrail>, DomainError> {
    if !input.guardrail {
        for (name, present) in [
            ("guardrail_margin", input.guardrail_margin.is_some()),
            ("guardrail_direction", input.guardrail_direction.is_some()),
        ] {
            if present {
                return Err(DomainError::new(
                    format!("{field}.{name}"),
                    "only a guardrail goal (guardrail: true) has one",
                ));
            }
        }
        return Ok(None);
    }
    if input.primary {
        return Err(DomainError::new(
            format!("{field}.guardrail"),
            "the primary goal cannot be a guardrail",
        ));
    }
    let margin = input.guardrail_margin.ok_or_else(|| {
        DomainError::new(
            format!("{field}.guardrail_margin"),
            "a guardrail needs a margin: the relative loss tolerated, in (0, 1] (0.05 = 5 %)",
        )
    })?;
    let direction = match input.guardrail_direction.as_deref() {
        None => Direction::HigherIsBetter,
        Some(d) => Direction::parse(d).ok_or_else(|| {
            DomainError::new(
                format!("{field}.guardrail_direction"),
                format!("unknown direction {d:?} (higher_is_better or lower_is_better)"),
            )
        })?,
    };
    Guardrail::new(margin, direction).map(Some).map_err(|_| {
        DomainError::new(
            format!("{field}.guardrail_margin"),
            "the margin is a relative loss in (0, 1] (0.05 = 5 %)",
        )
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
        spec.check_units().map_err(|e| vec![e])?;
        Ok(spec)
    }
}

impl ExperimentInput {
    /// A stored definition as a request body again: the base a draft PATCH is merged
    /// into before the whole is validated like a create.
    pub fn from_spec(spec: &ExperimentSpec) -> Result<Self, serde_json::Error> {
        let to_values = |v: &[Change]| -> Result<Vec<serde_json::Value>, serde_json::Error> {
            v.iter().map(serde_json::to_value).collect()
        };
        Ok(Self {
            name: spec.name.as_str().to_owned(),
            description: spec.description.as_str().to_owned(),
            kind: mode_str(spec.mode).to_owned(),
            coverage: spec.coverage.get(),
            allocator: serde_json::from_value(serde_json::to_value(spec.allocator)?)?,
            url_rules: spec
                .url_rules
                .iter()
                .map(serde_json::to_value)
                .collect::<Result<_, _>>()?,
            elements: spec
                .elements
                .iter()
                .map(|el| {
                    Ok(ElementInput {
                        name: Some(el.name.clone()),
                        selector: el.selector.clone(),
                        variants: el
                            .variants
                            .iter()
                            .map(|v| {
                                Ok(VariantInput {
                                    name: v.name.clone(),
                                    is_control: v.is_control,
                                    weight: v.weight.get(),
                                    changes: to_values(&v.changes)?,
                                })
                            })
                            .collect::<Result<_, serde_json::Error>>()?,
                    })
                })
                .collect::<Result<_, serde_json::Error>>()?,
            goals: spec
                .goals
                .iter()
                .map(|g| {
                    Ok(GoalInput {
                        name: g.name.clone(),
                        metric: Some(g.metric.as_str().to_owned()),
                        primary: g.primary,
                        guardrail: g.guardrail.is_some(),
                        guardrail_margin: g.guardrail.map(|x| x.margin()),
                        guardrail_direction: g.guardrail.map(|x| x.direction().as_str().to_owned()),
                        trigger: match &g.trigger {
                            GoalTrigger::Custom(event) => GoalTriggerInput::Custom {
                                event: event.clone(),
                            },
                            GoalTrigger::Url(rule) => GoalTriggerInput::Url {
                                rule: serde_json::to_value(rule)?,
                            },
                            GoalTrigger::Click(selector) => GoalTriggerInput::Click {
                                selector: selector.clone(),
                            },
                        },
                    })
                })
                .collect::<Result<_, serde_json::Error>>()?,
        })
    }
}
