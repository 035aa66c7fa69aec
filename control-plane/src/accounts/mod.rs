//! Accounts: people, how they prove who they are, and their sessions — apart from HTTP.
//!
//! - [`email`]: [`Email`], trimmed and lower-cased, so uniqueness is case-insensitive.
//! - [`password`]: [`Password`] (10 to 128 characters) and argon2id hashing and
//!   verification behind the argon2 gate.
//! - [`session`]: sessions and their tokens: [`session::start`], [`session::refresh`]
//!   (rotation, with reuse detection), [`session::end`], [`session::switch_org`].
//! - Here: the account operations themselves, [`register`] and [`login`], and the
//!   values they share ([`parse_name`], [`user_actor`]).
//!
//! The HTTP handlers (`http::auth`, `http::members`) turn requests into these types and
//! the results into responses; SQL stays in [`crate::db`]. Errors are the crate's
//! [`ApiError`], whose messages are safe to show. Nothing here logs a password or a
//! token, and the types that hold one do not derive `Debug`.

pub mod email;
pub mod password;
pub mod session;

use std::net::IpAddr;

use uuid::Uuid;

use crate::audit::{self, Change};
use crate::auth::{Actor, Principal, Role};
use crate::db;
use crate::error::{ApiError, ApiResult};
use crate::ratelimit;
use crate::state::AppState;

pub use email::Email;
pub use password::{
    PASSWORD_MAX_CHARS, PASSWORD_MIN_CHARS, Password, hash_password, verify_password,
};
pub use session::{Api, Browser, BrowserSession, Channel, Tokens};

pub const NAME_MAX_CHARS: usize = 200;

/// A display name: trimmed, at most 200 characters, may be empty.
pub fn parse_name(raw: Option<&str>) -> Result<String, &'static str> {
    let name = raw.unwrap_or("").trim();
    if name.chars().count() > NAME_MAX_CHARS {
        Err("a name has at most 200 characters")
    } else if name.chars().any(char::is_control) {
        Err("a name has no control characters")
    } else {
        Ok(name.to_owned())
    }
}

/// An `Actor` for a user who just proved who they are (registration, accepted
/// invitation), for the audit entry of that very change.
pub fn user_actor(user_id: Uuid, org_id: Uuid, role: Role, email: &str) -> Actor {
    Actor {
        principal: Principal::User {
            user_id,
            // No session is involved in the audited change itself.
            session_id: Uuid::nil(),
            browser: false,
        },
        org_id,
        role,
        person: user_id,
        label: email.to_owned(),
    }
}

/// A registration, validated: the person and the organisation they will own.
pub struct NewAccount {
    pub email: Email,
    pub password: Password,
    pub name: String,
    pub organization_name: String,
}

/// Creates a user **and a new organisation** they own (nobody registers into an existing
/// one: that takes an invitation), and logs them in.
///
/// Registrations are throttled per client address (before argon2 runs); a taken email is
/// 409 `email_taken`. The password is hashed before the transaction starts, so no
/// connection waits on argon2.
pub async fn register<C: Channel>(
    state: &AppState,
    client: Option<IpAddr>,
    account: NewAccount,
) -> ApiResult<C::Started> {
    let NewAccount {
        email,
        password,
        name,
        organization_name,
    } = account;
    ratelimit::check_and_record_registration(&state.pool, email.as_str(), client).await?;
    let password_hash = hash_password(&state.passwords, password).await?;
    let user_id = Uuid::new_v4();
    let org_id = Uuid::new_v4();
    let mut tx = state.pool.begin().await?;
    db::users::insert(&mut tx, user_id, email.as_str(), &password_hash, &name)
        .await
        .map_err(ApiError::conflict_on_unique(
            "email_taken",
            "an account with this email already exists; log in instead",
        ))?;
    db::orgs::insert(&mut tx, org_id, &organization_name).await?;
    db::orgs::add_member(&mut tx, org_id, user_id, Role::Owner).await?;
    let actor = user_actor(user_id, org_id, Role::Owner, email.as_str());
    let change =
        Change::new("organization.created", "organization", org_id).after(serde_json::json!({
            "name": organization_name,
            "owner_user_id": user_id,
            "owner_email": email.as_str(),
        }));
    audit::record_by(&mut tx, &actor, change).await?;
    let tokens = C::start(&mut tx, state, user_id, org_id).await?;
    tx.commit().await?;
    tracing::info!(%user_id, %org_id, "account registered");
    Ok(tokens)
}

/// What a login presents, as typed. No `Debug`: it holds a password.
pub struct Credentials {
    pub email: String,
    pub password: String,
    /// The organisation to log into; the user's oldest membership by default.
    pub organization_id: Option<Uuid>,
}

const BAD_CREDENTIALS: &str = "invalid email or password";

/// Logs in: checks the password and starts a session.
///
/// An unknown email and a wrong password get the same 401, and take as long: an unknown
/// email is verified against a dummy hash. Failures are throttled per account and per
/// client address (`crate::ratelimit`), counted before argon2 runs. A user in no
/// organisation is 403; an `organization_id` that is not theirs, 404.
pub async fn login<C: Channel>(
    state: &AppState,
    client: Option<IpAddr>,
    credentials: Credentials,
) -> ApiResult<C::Started> {
    // Invalid emails are not a 422 here: they are simply unknown accounts.
    let email: String = credentials
        .email
        .trim()
        .to_lowercase()
        .chars()
        .take(254)
        .collect();
    // Counted as a failure before argon2 runs, atomically with the check (see
    // `ratelimit`): parallel guesses cannot all slip under the limit.
    let reservation = ratelimit::reserve_login(&state.pool, &email, client).await?;

    let mut conn = state.pool.acquire().await?;
    let user = db::users::find_by_email(&mut conn, &email).await?;
    // No connection is held while argon2 runs (tens of milliseconds of CPU).
    drop(conn);
    // Passwords longer than any we accept cannot match; verify a bounded string instead
    // so a megabyte "password" costs no more than a normal one.
    let candidate = if credentials.password.chars().count() > PASSWORD_MAX_CHARS {
        None
    } else {
        Some(credentials.password)
    };
    let gate = &state.passwords;
    let verified = match (candidate, &user) {
        (Some(password), Some(user)) => {
            verify_password(gate, password, Some(user.password_hash.clone())).await
        }
        (Some(password), None) => verify_password(gate, password, None).await,
        (None, _) => verify_password(gate, String::new(), None).await,
    };
    let verified = match verified {
        Ok(verified) => verified,
        Err(e) => {
            // The password was never checked (busy): this attempt does not count.
            ratelimit::release(&state.pool, reservation).await?;
            return Err(e);
        }
    };
    let user = match (verified, user) {
        (true, Some(user)) => user,
        _ => return Err(ApiError::Unauthorized(BAD_CREDENTIALS)),
    };
    ratelimit::login_succeeded(&state.pool, &email).await?;

    let mut tx = state.pool.begin().await?;
    let orgs = db::orgs::orgs_of_user(&mut tx, user.id).await?;
    let org_id = match credentials.organization_id {
        Some(wanted) => orgs
            .iter()
            .find(|o| o.id == wanted)
            .map(|o| o.id)
            .ok_or(ApiError::NotFound("organization"))?,
        None => orgs.first().map(|o| o.id).ok_or(ApiError::Forbidden(
            "this account belongs to no organization; ask for an invitation",
        ))?,
    };
    let tokens = C::start(&mut tx, state, user.id, org_id).await?;
    tx.commit().await?;
    tracing::info!(user_id = %user.id, %org_id, "logged in");
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_are_trimmed_bounded_and_free_of_control_characters() {
        assert_eq!(parse_name(None).unwrap(), "", "absent is empty");
        assert_eq!(parse_name(Some("  Ada  ")).unwrap(), "Ada", "trimmed");
        assert!(
            parse_name(Some(&"é".repeat(200))).is_ok(),
            "200 characters (400 bytes) fit"
        );
        assert!(parse_name(Some(&"x".repeat(201))).is_err(), "201 do not");
        assert!(parse_name(Some("Ada\u{0}")).is_err(), "a NUL");
        assert!(parse_name(Some("A\nda")).is_err(), "an inner newline");
    }
}
