//! The signed-in person's own account, and the mailed account flows (issue 15): email
//! verification, forgotten passwords, changing password and email.

use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
}
