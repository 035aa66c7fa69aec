//! Alerts (issue 15): when an experiment gets a winner, an SRM, a harmed guardrail, or
//! a site's publication keeps failing — mailed to who asked and posted to the
//! organisation's webhooks ([`webhooks`]), once per state change.
//!
//! Layout:
//! - [`evaluate`] is one pass (what [`run`] does every `SAMPLIT_ALERT_INTERVAL`): for
//!   each running experiment it computes the results once per goal (the same
//!   `http::results::compute` the results page answers with) and reads the
//!   conditions off them ([`conditions`]); for each site the publisher has tried, its
//!   failure streak. Each (subject, kind) has a state in `alert_states`; a change from
//!   inactive to active fires ([`transition`]): the state update, the `alert_events` log
//!   row, the mails ([`mails`]) and the webhook deliveries are written in one
//!   transaction, so a crash neither fires twice nor loses an alert. A change back to
//!   inactive is only recorded, so a later re-activation fires again.
//! - Recipients (`db::alerts::recipients`): members with a verified address whose
//!   per-experiment override (`follow`/`mute`), else preference for the kind, else role
//!   default (owners and admins) says yes.

pub mod conditions;
pub mod mails;
pub mod webhooks;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::db::alerts::{self as db, StateRow};
use crate::state::AppState;
use conditions::Finding;

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// The recommendation became "deploy the winner".
    Winner,
    /// A sample-ratio mismatch was detected.
    Srm,
    /// A guardrail metric is significantly worse than control.
    GuardrailHarmed,
    /// A site's snapshot failed to publish to the edge several times in a row.
    PublishFailing,
}

crate::domain::text_column!(AlertKind, "alert kind");

impl AlertKind {
    pub const ALL: [Self; 4] = [
        Self::Winner,
        Self::Srm,
        Self::GuardrailHarmed,
        Self::PublishFailing,
    ];

    /// The kinds about an experiment (the others are about a site).
    pub const EXPERIMENT: [Self; 3] = [Self::Winner, Self::Srm, Self::GuardrailHarmed];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Winner => "winner",
            Self::Srm => "srm",
            Self::GuardrailHarmed => "guardrail_harmed",
            Self::PublishFailing => "publish_failing",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

/// One state change worth telling: what the mails and the webhook deliveries are made of.
#[derive(Debug, Clone)]
pub struct AlertEvent {
    /// Unique per state change (the webhook payload's `id`, `Samplit-Event-Id`).
    pub id: Uuid,
    pub org_id: Uuid,
    pub kind: AlertKind,
    /// The experiment (id, name), for experiment alerts.
    pub experiment: Option<(Uuid, String)>,
    /// The site (id, name), for publication alerts and as the experiment's site.
    pub site: Option<(Uuid, String)>,
    /// One line in English for chat tools (the webhook's Slack-compatible `text`).
    pub text: String,
    /// The figures behind it (JSON), as the webhook payload's `detail`.
    pub detail: serde_json::Value,
    pub at: OffsetDateTime,
}

/// What one [`evaluate`] pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Running experiments evaluated (results computed).
    pub experiments: usize,
    /// Running experiments skipped because their results could not be computed.
    pub skipped: usize,
    /// Sites whose publication streak was looked at.
    pub sites: usize,
    /// Alerts fired: (kind, subject id).
    pub fired: Vec<(AlertKind, Uuid)>,
    /// Alerts that went back to inactive: (kind, subject id).
    pub cleared: Vec<(AlertKind, Uuid)>,
    /// Mails enqueued.
    pub mails: usize,
    /// Webhook deliveries enqueued.
    pub webhooks: usize,
}

/// What a state change means, from the stored state and the condition now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Inactive (or never seen) → active: fire.
    Fire,
    /// Active → inactive: record it (a later activation fires again).
    Clear,
    /// No change.
    Stay,
}

/// The transition of an alert whose stored state is `was_active` (None: never seen)
/// and whose condition now holds or not.
pub fn transition(was_active: Option<bool>, now_active: bool) -> Transition {
    match (was_active.unwrap_or(false), now_active) {
        (false, true) => Transition::Fire,
        (true, false) => Transition::Clear,
        _ => Transition::Stay,
    }
}

/// One pass over every running experiment and every published site: fires the alerts
/// whose condition became true since the last pass, records those that became false.
/// An experiment whose results cannot be computed is logged and skipped (its states stay
/// as they were); an alert that cannot be written is logged and retried next pass.
pub async fn evaluate(state: &AppState) -> anyhow::Result<Report> {
    let mut report = Report::default();
    let states: std::collections::HashMap<(Uuid, AlertKind), StateRow> = db::states(&state.pool)
        .await?
        .into_iter()
        .map(|s| ((s.subject_id, s.kind), s))
        .collect();
    let was = |subject: Uuid, kind: AlertKind| states.get(&(subject, kind)).map(|s| s.active);

    for running in db::running_experiments(&state.pool).await? {
        let x = &running.experiment;
        let findings = match conditions::of_experiment(state, x).await {
            Ok(f) => f,
            Err(error) => {
                tracing::warn!(experiment_id = %x.id, ?error, "alerts: results not computed; experiment skipped this pass");
                report.skipped += 1;
                continue;
            }
        };
        report.experiments += 1;
        let subject = Subject {
            org_id: running.org_id,
            id: x.id,
            experiment: Some((x.id, x.name.clone())),
            site: (x.site_id, running.site_name.clone()),
        };
        for (kind, finding) in findings {
            apply(state, &subject, kind, was(x.id, kind), finding, &mut report).await;
        }
    }

    for site in db::sites_with_publications(&state.pool).await? {
        report.sites += 1;
        let finding = {
            let mut conn = state.pool.acquire().await?;
            conditions::publish_failing(&mut conn, site.id, state.config.alerts.publish_failures)
                .await?
        };
        let subject = Subject {
            org_id: site.org_id,
            id: site.id,
            experiment: None,
            site: (site.id, site.name.clone()),
        };
        let kind = AlertKind::PublishFailing;
        apply(
            state,
            &subject,
            kind,
            was(site.id, kind),
            finding,
            &mut report,
        )
        .await;
    }
    Ok(report)
}

/// What an alert is about: an experiment (with its site) or a site.
struct Subject {
    org_id: Uuid,
    id: Uuid,
    experiment: Option<(Uuid, String)>,
    site: (Uuid, String),
}

async fn apply(
    state: &AppState,
    subject: &Subject,
    kind: AlertKind,
    was_active: Option<bool>,
    finding: Option<Finding>,
    report: &mut Report,
) {
    match (transition(was_active, finding.is_some()), finding) {
        (Transition::Fire, Some(finding)) => match fire(state, subject, kind, &finding).await {
            Ok(Some((mails, hooks))) => {
                tracing::info!(kind = kind.as_str(), subject_id = %subject.id, mails, webhooks = hooks, "alert fired");
                report.fired.push((kind, subject.id));
                report.mails += mails;
                report.webhooks += hooks;
            }
            Ok(None) => {} // another pass flipped it first
            Err(error) => {
                tracing::error!(kind = kind.as_str(), subject_id = %subject.id, ?error, "alert not written; retried next pass");
            }
        },
        (Transition::Clear, _) => match db::deactivate(&state.pool, subject.id, kind).await {
            Ok(true) => report.cleared.push((kind, subject.id)),
            Ok(false) => {}
            Err(error) => {
                tracing::error!(kind = kind.as_str(), subject_id = %subject.id, ?error, "alert state not cleared");
            }
        },
        _ => {}
    }
}

/// Fires one alert in one transaction: the state (only if this pass flips it), the log
/// row, the mails and the webhook deliveries. (mails, webhook deliveries) enqueued, or
/// None when the state was active already.
async fn fire(
    state: &AppState,
    subject: &Subject,
    kind: AlertKind,
    finding: &Finding,
) -> anyhow::Result<Option<(usize, usize)>> {
    let mut tx = state.pool.begin().await?;
    let Some(n) = db::activate(&mut tx, subject.org_id, subject.id, kind).await? else {
        return Ok(None);
    };
    let event = AlertEvent {
        id: Uuid::new_v4(),
        org_id: subject.org_id,
        kind,
        experiment: subject.experiment.clone(),
        site: Some(subject.site.clone()),
        text: finding.text(
            subject.experiment.as_ref().map(|e| e.1.as_str()),
            &subject.site.1,
        ),
        detail: finding.detail(subject.experiment.as_ref(), &subject.site),
        at: OffsetDateTime::now_utc(),
    };
    db::insert_event(&mut tx, subject.id, &event).await?;
    let experiment_id = subject.experiment.as_ref().map(|e| e.0);
    let recipients = db::recipients(&mut tx, subject.org_id, kind, experiment_id).await?;
    let mut mails = 0;
    for recipient in &recipients {
        let message = mails::render(&state.config, &event, finding, n, recipient)?;
        if crate::mail::enqueue(&mut tx, &message).await? {
            mails += 1;
        }
    }
    let hooks = webhooks::enqueue(&mut tx, &event).await?;
    tx.commit().await?;
    Ok(Some((mails, hooks)))
}

/// Evaluates alerts every `SAMPLIT_ALERT_INTERVAL` until `shutdown` resolves.
pub async fn run(state: AppState, shutdown: impl std::future::Future<Output = ()> + Send) {
    crate::background::every(state.config.alerts.interval, shutdown, || async {
        match evaluate(&state).await {
            Ok(report) if !report.fired.is_empty() || !report.cleared.is_empty() => {
                tracing::info!(
                    fired = report.fired.len(),
                    cleared = report.cleared.len(),
                    mails = report.mails,
                    webhooks = report.webhooks,
                    skipped = report.skipped,
                    "alert pass"
                );
            }
            Ok(_) => {}
            Err(error) => tracing::error!(?error, "alert pass failed"),
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_change_to_active_fires() {
        let cases = [
            (None, false, Transition::Stay, "never seen, still quiet"),
            (None, true, Transition::Fire, "first activation"),
            (Some(false), true, Transition::Fire, "re-activation"),
            (
                Some(true),
                true,
                Transition::Stay,
                "still active: no second alert",
            ),
            (Some(true), false, Transition::Clear, "went away"),
            (Some(false), false, Transition::Stay, "still gone"),
        ];
        for (was, now, want, why) in cases {
            assert_eq!(transition(was, now), want, "{why}");
        }
    }

    #[test]
    fn kinds_round_trip_through_their_names() {
        for kind in AlertKind::ALL {
            assert_eq!(AlertKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(AlertKind::parse("nope"), None);
    }
}
