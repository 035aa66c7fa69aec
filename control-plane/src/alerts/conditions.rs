//! When each alert's condition holds, read off an experiment's results (the same
//! `http::results::compute` the results page answers with) or a site's publication streak;
//! each condition gives a [`Finding`] with the figures behind it, or nothing.
//!
//! - winner: an analysis of the primary goal over the arms (or, in an independent
//!   experiment, over one element's arms) recommends deploying an arm.
//! - srm: such an analysis flags a sample-ratio mismatch.
//! - guardrail_harmed: [`guardrail_harms`]: on the primary goal's results, some arm is
//!   `harmed` on a goal marked as a guardrail (worse than control by more than its
//!   margin, `samplit_engine::stats::guardrail`).
//! - publish_failing: [`publish_failing`].
//!
//! Main-effect analyses (factorial experiments) are not looked at: they pool the same
//! visitors as the arms' analysis, so they would only repeat it.

use samplit_engine::stats::guardrail::{Direction, GuardrailStatus};
use samplit_engine::stats::proportions::Interval;
use samplit_engine::stats::recommend::Recommendation;
use serde::Serialize;
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use super::AlertKind;
use crate::db::publications;
use crate::db::results::{self as results_db, ExperimentRow};
use crate::error::ApiResult;
use crate::http::results::{self, AnalysisView, ResultsView};
use crate::state::AppState;

/// An id and a name.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Named {
    pub id: Uuid,
    pub name: String,
}

/// An arm's figures against control.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArmFigures {
    pub arm: Named,
    /// The goal the figures are on.
    pub goal: Named,
    /// Relative lift of the conversion rate over control (None while control has none).
    pub lift: Option<f64>,
    /// Holm-adjusted always-valid p-value (the results' decision test); for a harmed
    /// guardrail, the always-valid p-value of "no worse than the margin".
    pub p_value: f64,
    pub chance_to_be_best: f64,
    /// For a harmed guardrail: its margin, direction and the interval of `lift`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guardrail: Option<GuardrailFigures>,
}

/// A harmed guardrail's definition and interval.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GuardrailFigures {
    /// The relative margin (0.05 = 5 %).
    pub margin: f64,
    /// `higher_is_better` or `lower_is_better`.
    pub direction: Direction,
    /// Always-valid 95 % interval of the relative difference.
    pub interval: Option<Interval>,
}

/// One arm's visitors against the share it should get.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SrmArm {
    pub arm: Named,
    pub visitors: u64,
    pub expected_share: f64,
}

/// Why an alert's condition holds, with the figures (the alert's `detail`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Finding {
    Winner {
        #[serde(flatten)]
        winner: ArmFigures,
        /// The element, in an independent multi-element experiment.
        element: Option<String>,
    },
    Srm {
        /// The χ² goodness-of-fit p-value.
        srm_p_value: f64,
        arms: Vec<SrmArm>,
    },
    GuardrailHarmed {
        /// Every (arm, guardrail goal) harmed: `goal` is the guardrail, `lift` its
        /// relative difference against control.
        harmed: Vec<ArmFigures>,
    },
    PublishFailing {
        failures: i64,
        last_error: Option<String>,
        #[serde(with = "time::serde::rfc3339")]
        last_at: OffsetDateTime,
    },
}

/// `+12.3 %`.
pub fn percent(x: f64) -> String {
    format!("{:+.1} %", x * 100.0)
}

/// `0.012`, or `< 0.001`.
pub fn p_value(p: f64) -> String {
    if p < 0.001 {
        "< 0.001".to_owned()
    } else {
        format!("{p:.3}")
    }
}

impl Finding {
    /// The one English line of the alert (chat tools, the console's list).
    pub fn text(&self, experiment: Option<&str>, site: &str) -> String {
        let experiment = experiment.unwrap_or("");
        match self {
            Self::Winner { winner, .. } => format!(
                "Samplit: \"{experiment}\" has a winner: \"{}\" ({} on {}, p {}). Deploy it.",
                winner.arm.name,
                winner.lift.map_or_else(|| "n/a".to_owned(), percent),
                winner.goal.name,
                with_eq(winner.p_value),
            ),
            Self::Srm { srm_p_value, .. } => format!(
                "Samplit: sample ratio mismatch in \"{experiment}\" (p {}): visitors are not split as configured; its results may be biased.",
                with_eq(*srm_p_value),
            ),
            Self::GuardrailHarmed { harmed } => {
                let first = &harmed[0];
                format!(
                    "Samplit: in \"{experiment}\", \"{}\" harms the guardrail \"{}\" ({} against control{}, p {}){}.",
                    first.arm.name,
                    first.goal.name,
                    first.lift.map_or_else(|| "n/a".to_owned(), percent),
                    first
                        .guardrail
                        .as_ref()
                        .map(|g| format!(", margin {:.1} %", g.margin * 100.0))
                        .unwrap_or_default(),
                    with_eq(first.p_value),
                    if harmed.len() > 1 {
                        format!(" and {} more", harmed.len() - 1)
                    } else {
                        String::new()
                    },
                )
            }
            Self::PublishFailing {
                failures,
                last_error,
                ..
            } => format!(
                "Samplit: publishing site \"{site}\" to the edge failed {}{}.",
                if *failures == 1 {
                    "once".to_owned()
                } else {
                    format!("{failures} times in a row")
                },
                last_error
                    .as_deref()
                    .map(|e| format!(" (last error: {e})"))
                    .unwrap_or_default(),
            ),
        }
    }

    /// The figures as JSON, with the experiment and site named.
    pub fn detail(
        &self,
        experiment: Option<&(Uuid, String)>,
        site: &(Uuid, String),
    ) -> serde_json::Value {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        if let Some(map) = value.as_object_mut() {
            if let Some((id, name)) = experiment {
                map.insert(
                    "experiment".to_owned(),
                    serde_json::json!({"id": id, "name": name}),
                );
            }
            map.insert(
                "site".to_owned(),
                serde_json::json!({"id": site.0, "name": site.1}),
            );
        }
        value
    }
}

fn with_eq(p: f64) -> String {
    let s = p_value(p);
    if s.starts_with('<') {
        s
    } else {
        format!("= {s}")
    }
}

/// The analyses an alert looks at: every arm, or one element's arms (not main effects).
fn arm_analyses(view: &ResultsView) -> impl Iterator<Item = &AnalysisView> {
    view.analyses.iter().filter(|a| a.scope != "main_effect")
}

fn goal_of(view: &ResultsView) -> Named {
    Named {
        id: view.goal.id,
        name: view.goal.name.clone(),
    }
}

/// The figures of arm `i` of an analysis.
fn figures(view: &ResultsView, analysis: &AnalysisView, i: usize) -> Option<ArmFigures> {
    let result = analysis.result.as_ref()?;
    let arm = result.arms.get(i)?;
    let subject = analysis.subjects.get(i)?;
    Some(ArmFigures {
        arm: Named {
            id: subject.id,
            name: subject.name.clone(),
        },
        goal: goal_of(view),
        lift: arm.comparison.and_then(|c| c.lift).map(|l| l.relative),
        p_value: arm.comparison.map_or(1.0, |c| c.p_value_holm),
        chance_to_be_best: arm.chance_to_be_best,
        guardrail: None,
    })
}

/// A `deploy_winner` recommendation of the primary goal's results.
pub fn winner(view: &ResultsView) -> Option<Finding> {
    arm_analyses(view).find_map(|analysis| match analysis.result.as_ref()?.recommendation {
        Recommendation::DeployWinner { arm } => Some(Finding::Winner {
            winner: figures(view, analysis, arm)?,
            element: analysis.element_name.clone(),
        }),
        _ => None,
    })
}

/// A sample-ratio mismatch in the primary goal's results.
pub fn srm(view: &ResultsView) -> Option<Finding> {
    arm_analyses(view).find_map(|analysis| {
        let result = analysis.result.as_ref()?;
        result.srm.mismatch.then(|| Finding::Srm {
            srm_p_value: result.srm.p_value,
            arms: analysis
                .subjects
                .iter()
                .zip(&result.arms)
                .map(|(s, a)| SrmArm {
                    arm: Named {
                        id: s.id,
                        name: s.name.clone(),
                    },
                    visitors: a.visitors,
                    expected_share: s.expected_share,
                })
                .collect(),
        })
    })
}

/// "Guardrail harmed": on the results of the primary goal (`view`), every (arm, goal
/// marked as a guardrail) whose verdict is `harmed` — worse than control by more than the
/// goal's margin, in the goal's direction, with always-valid confidence (the results'
/// `subjects[].guardrails`, `samplit_engine::stats::guardrail`). Goals not marked as
/// guardrails are never looked at.
pub fn guardrail_harms(view: &ResultsView) -> Vec<ArmFigures> {
    let mut harmed = Vec::new();
    for analysis in arm_analyses(view) {
        let Some(result) = analysis.result.as_ref() else {
            continue;
        };
        for (subject, arm) in analysis.subjects.iter().zip(&result.arms) {
            for g in subject
                .guardrails
                .iter()
                .filter(|g| g.status == GuardrailStatus::Harmed)
            {
                harmed.push(ArmFigures {
                    arm: Named {
                        id: subject.id,
                        name: subject.name.clone(),
                    },
                    goal: Named {
                        id: g.goal_id,
                        name: g.name.clone(),
                    },
                    lift: g.relative_difference,
                    p_value: g.p_value,
                    chance_to_be_best: arm.chance_to_be_best,
                    guardrail: Some(GuardrailFigures {
                        margin: g.margin,
                        direction: g.direction,
                        interval: g.interval,
                    }),
                });
            }
        }
    }
    harmed
}

/// The experiment alerts' findings (None = the condition does not hold), from the
/// primary goal's results, computed once.
pub async fn of_experiment(
    state: &AppState,
    experiment: &ExperimentRow,
) -> ApiResult<Vec<(AlertKind, Option<Finding>)>> {
    let (mut won, mut mismatch, mut harmed) = (None, None, Vec::new());
    if let Some(goal) = results_db::goal_of(&state.pool, experiment.id, None).await? {
        // One computation: the primary goal's results carry every guardrail's verdict.
        let view = results::compute(state, experiment.clone(), goal).await?;
        won = winner(&view);
        mismatch = srm(&view);
        harmed = guardrail_harms(&view);
    }
    Ok(vec![
        (AlertKind::Winner, won),
        (AlertKind::Srm, mismatch),
        (
            AlertKind::GuardrailHarmed,
            (!harmed.is_empty()).then_some(Finding::GuardrailHarmed { harmed }),
        ),
    ])
}

/// Longest last error kept in an alert.
const MAX_ERROR_CHARS: usize = 300;

/// A site's publication is failing: at least `threshold` failed publications since its
/// last successful one (`db::publications::failure_streak`). A success ends the streak,
/// and so the alert.
pub async fn publish_failing(
    conn: &mut PgConnection,
    site_id: Uuid,
    threshold: i64,
) -> sqlx::Result<Option<Finding>> {
    let Some(streak) = publications::failure_streak(conn, site_id).await? else {
        return Ok(None);
    };
    if streak.failures < threshold.max(1) {
        return Ok(None);
    }
    let last_error = publications::list(conn, site_id, 1)
        .await?
        .into_iter()
        .next()
        .and_then(|p| p.error)
        .map(|e| e.chars().take(MAX_ERROR_CHARS).collect());
    Ok(Some(Finding::PublishFailing {
        failures: streak.failures,
        last_error,
        last_at: streak.last_at,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arm(name: &str) -> Named {
        Named {
            id: Uuid::nil(),
            name: name.to_owned(),
        }
    }

    #[test]
    fn figures_are_written_for_people() {
        assert_eq!(percent(0.6), "+60.0 %");
        assert_eq!(percent(-0.375), "-37.5 %");
        assert_eq!(p_value(0.0123), "0.012");
        assert_eq!(p_value(0.0004), "< 0.001");
    }

    #[test]
    fn the_one_line_names_what_happened() {
        let winner = Finding::Winner {
            winner: ArmFigures {
                arm: arm("Short"),
                goal: arm("Purchase"),
                lift: Some(0.125),
                p_value: 0.02,
                chance_to_be_best: 0.97,
                guardrail: None,
            },
            element: None,
        };
        assert_eq!(
            winner.text(Some("Hero"), "Shop"),
            "Samplit: \"Hero\" has a winner: \"Short\" (+12.5 % on Purchase, p = 0.020). Deploy it."
        );
        let failing = |failures| Finding::PublishFailing {
            failures,
            last_error: Some("edge answered 503".to_owned()),
            last_at: OffsetDateTime::UNIX_EPOCH,
        };
        assert_eq!(
            failing(1).text(None, "Shop"),
            "Samplit: publishing site \"Shop\" to the edge failed once (last error: edge answered 503)."
        );
        assert!(
            failing(4)
                .text(None, "Shop")
                .contains("failed 4 times in a row")
        );
        let harmed = Finding::GuardrailHarmed {
            harmed: vec![ArmFigures {
                arm: arm("Short"),
                goal: arm("Revenue"),
                lift: Some(-0.125),
                p_value: 0.0004,
                chance_to_be_best: 0.97,
                guardrail: Some(GuardrailFigures {
                    margin: 0.05,
                    direction: Direction::HigherIsBetter,
                    interval: None,
                }),
            }],
        };
        assert_eq!(
            harmed.text(Some("Hero"), "Shop"),
            "Samplit: in \"Hero\", \"Short\" harms the guardrail \"Revenue\" (-12.5 % against control, margin 5.0 %, p < 0.001)."
        );
        let detail = harmed.detail(None, &(Uuid::nil(), "Shop".to_owned()));
        assert_eq!(
            detail["harmed"][0]["guardrail"]["direction"],
            "higher_is_better"
        );
        let detail = failing(4).detail(None, &(Uuid::nil(), "Shop".to_owned()));
        assert_eq!(detail["kind"], "publish_failing");
        assert_eq!(detail["failures"], 4);
        assert_eq!(detail["site"]["name"], "Shop");
        assert!(detail.get("experiment").is_none());
    }
}
