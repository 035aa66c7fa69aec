//! Alerts and outgoing webhooks (issue 15): each person's alert preferences and
//! per-experiment overrides, the organisation's webhooks and their delivery log.

use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
}
