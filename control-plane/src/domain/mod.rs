//! Domain types: values that are valid by construction ("parse, don't validate").
//!
//! Request DTOs are converted with `TryFrom` into these newtypes; a handler that holds a
//! [`SiteDomain`] or a [`TrafficShare`] never re-checks it, and the database layer only
//! ever receives validated values. Each conversion error names the offending field so
//! the API answers a 422 with field errors.
//!
//! Layout: [`site`] (site names, allowed domains), [`experiment`] (names, traffic
//! share, weights, goals), [`lifecycle`] (statuses and the transition table), [`role`]
//! (the role ladder, decoded from rows), [`publication`] (what became of a snapshot push),
//! [`verification`] (domain-ownership proofs: what is published, what may be fetched).

pub mod experiment;
pub mod lifecycle;
pub mod publication;
pub mod role;
pub mod site;
pub mod verification;

pub use experiment::{ExperimentName, TrafficShare, Weight};
pub use lifecycle::{Action, Status};
pub use role::Role;
pub use site::{RevenueCap, SiteDomain, SiteName};

/// Stores a closed set of names (an enum with `as_str` and `parse`) in a PostgreSQL
/// `text` column: rows decode straight into the enum, and a stored name the enum does not
/// know is a decode error naming it (`unknown <what> "…" stored`), never a default.
macro_rules! text_column {
    ($ty:ty, $what:literal) => {
        impl sqlx::Type<sqlx::Postgres> for $ty {
            fn type_info() -> sqlx::postgres::PgTypeInfo {
                <&str as sqlx::Type<sqlx::Postgres>>::type_info()
            }

            fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
                <&str as sqlx::Type<sqlx::Postgres>>::compatible(ty)
            }
        }

        impl<'r> sqlx::Decode<'r, sqlx::Postgres> for $ty {
            fn decode(
                value: sqlx::postgres::PgValueRef<'r>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                let text = <&str as sqlx::Decode<sqlx::Postgres>>::decode(value)?;
                Self::parse(text)
                    .ok_or_else(|| format!(concat!("unknown ", $what, " {:?} stored"), text).into())
            }
        }

        impl sqlx::Encode<'_, sqlx::Postgres> for $ty {
            fn encode_by_ref(
                &self,
                buf: &mut sqlx::postgres::PgArgumentBuffer,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <&str as sqlx::Encode<sqlx::Postgres>>::encode_by_ref(&self.as_str(), buf)
            }
        }
    };
}
pub(crate) use text_column;

/// A closed set of lower-case names stored in a `text` column and shown in the API as
/// those names: the enum (serde, OpenAPI schema), `ALL`, `as_str`, `parse` and the
/// column codec ([`text_column!`]) in one declaration.
macro_rules! named_set {
    ($(#[$meta:meta])* $vis:vis enum $ty:ident ($what:literal) { $($(#[$vmeta:meta])* $variant:ident = $name:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        $vis enum $ty {
            $($(#[$vmeta])* $variant,)+
        }

        impl $ty {
            pub const ALL: &'static [$ty] = &[$($ty::$variant,)+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $name,)+
                }
            }

            pub fn parse(name: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == name)
            }
        }

        $crate::domain::text_column!($ty, $what);
    };
}
pub(crate) use named_set;

/// A value refused by a domain constructor: which field and why (safe to show).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct DomainError {
    pub field: String,
    pub message: String,
}

impl DomainError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl From<DomainError> for crate::error::FieldError {
    fn from(e: DomainError) -> Self {
        Self {
            field: e.field,
            message: e.message,
        }
    }
}

/// Collects field errors, so a request with several mistakes gets them all at once.
#[derive(Debug, Default)]
pub struct Errors(pub Vec<DomainError>);

impl Errors {
    pub fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(DomainError::new(field, message));
    }

    /// Keeps the value when `result` is `Ok`, records the error otherwise.
    pub fn take<T>(&mut self, result: Result<T, DomainError>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                self.0.push(e);
                None
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<DomainError> for crate::error::ApiError {
    fn from(e: DomainError) -> Self {
        Self::Validation(vec![e.into()])
    }
}
