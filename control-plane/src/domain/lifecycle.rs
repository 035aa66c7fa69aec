//! The experiment lifecycle: `draft → running ⇄ paused → completed → archived`.
//!
//! [`Status::apply`] is the whole transition table; anything it does not list is an
//! invalid transition (answered 409 `invalid_transition`). Completing is allowed from
//! running and from paused; archiving only from completed. Nothing leaves `archived`.
//!
//! What may be edited in each status is decided by [`Status::editable`], documented in
//! `docs/experiments.md`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Draft,
    Running,
    Paused,
    Completed,
    Archived,
}

crate::domain::text_column!(Status, "experiment status");

/// A lifecycle action (`POST /experiments/{id}/{action}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Start,
    Pause,
    Resume,
    Complete,
    Archive,
}

/// Which parts of an experiment a PATCH may change in a given status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Editable {
    /// Everything (drafts).
    All,
    /// Name, description and coverage (running, paused).
    NameDescriptionCoverage,
    /// Name and description (completed).
    NameDescription,
    /// Nothing (archived).
    Nothing,
}

impl Status {
    pub const ALL: [Status; 5] = [
        Self::Draft,
        Self::Running,
        Self::Paused,
        Self::Completed,
        Self::Archived,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Completed => "completed",
            Self::Archived => "archived",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// The status after `action`, or `None` when the transition is not allowed.
    pub fn apply(self, action: Action) -> Option<Status> {
        use Action as A;
        use Status as S;
        match (self, action) {
            (S::Draft, A::Start) => Some(S::Running),
            (S::Running, A::Pause) => Some(S::Paused),
            (S::Paused, A::Resume) => Some(S::Running),
            (S::Running | S::Paused, A::Complete) => Some(S::Completed),
            (S::Completed, A::Archive) => Some(S::Archived),
            _ => None,
        }
    }

    pub fn editable(self) -> Editable {
        match self {
            Self::Draft => Editable::All,
            Self::Running | Self::Paused => Editable::NameDescriptionCoverage,
            Self::Completed => Editable::NameDescription,
            Self::Archived => Editable::Nothing,
        }
    }

    /// Whether the experiment may be deleted: not while it is live (running or paused);
    /// complete it first, so its results are closed before they go away.
    pub fn deletable(self) -> bool {
        !matches!(self, Self::Running | Self::Paused)
    }
}

impl Action {
    pub const ALL: [Action; 5] = [
        Self::Start,
        Self::Pause,
        Self::Resume,
        Self::Complete,
        Self::Archive,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Pause => "pause",
            Self::Resume => "resume",
            Self::Complete => "complete",
            Self::Archive => "archive",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_six_transitions_are_allowed() {
        let allowed: Vec<_> = Status::ALL
            .iter()
            .flat_map(|s| Action::ALL.iter().map(move |a| (*s, *a)))
            .filter(|(s, a)| s.apply(*a).is_some())
            .collect();
        assert_eq!(allowed.len(), 6, "{allowed:?}");
        assert_eq!(Status::Paused.apply(Action::Resume), Some(Status::Running));
        assert_eq!(Status::Archived.apply(Action::Start), None);
    }

    #[test]
    fn statuses_round_trip_through_their_names() {
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
        assert_eq!(Status::parse("deleted"), None);
    }
}
