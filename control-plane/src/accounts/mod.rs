//! Accounts: people, how they prove who they are, and their sessions — apart from HTTP.
//!
//! - [`email`]: [`Email`], trimmed and lower-cased, so uniqueness is case-insensitive.
//! - [`password`]: [`Password`] (10 to 128 characters) and argon2id hashing and
//!   verification behind the argon2 gate.
//! - [`session`]: sessions and their tokens: [`session::start`], [`session::refresh`]
//!   (rotation, with reuse detection), [`session::end`], [`session::switch_org`].
//! - [`mailed`]: the mailed flows (issue 15): sign-ups confirmed by mail, address
//!   verification, password resets and changes, email changes, and their messages.
//! - Here: the account operations themselves, [`register`] and [`login`], and the
//!   values they share ([`parse_name`], [`user_actor`]).
//!
//! The HTTP handlers (`http::auth`, `http::members`) turn requests into these types and
//! the results into responses; SQL stays in [`crate::db`]. Errors are the crate's
//! [`ApiError`], whose messages are safe to show. Nothing here logs a password or a
//! token, and the types that hold one do not derive `Debug`.

pub mod email;
pub mod mailed;
pub mod password;
pub mod session;

use std::net::IpAddr;

use uuid::Uuid;

use crate::audit::{self, Change};
use crate::auth::{Actor, Principal, Role};
use crate::db;
use crate::error::{ApiError, ApiResult};
use crate::mail::Language;
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

/// What [`register`] did.
pub enum Registered<S> {
    /// The account exists and is signed in (mail is not delivered: the address stays
    /// unverified, and a verification message is logged).
    Started(S),
    /// Mail is delivered: a message went to the address (a confirmation link, or a note
    /// that it has an account already). Nothing says which.
    ConfirmationSent,
}

/// A new account's row, ready to insert.
pub(crate) struct AccountRow<'a> {
    pub email: &'a str,
    pub password_hash: &'a str,
    pub name: &'a str,
    pub organization_name: &'a str,
    pub language: Language,
    pub verified: bool,
}

/// Inserts a user and a new organisation they own, with its audit entry, in the caller's
/// transaction; a taken email is 409 `email_taken`. Returns (user, organisation).
pub(crate) async fn create_account(
    tx: &mut sqlx::PgConnection,
    account: &AccountRow<'_>,
) -> ApiResult<(Uuid, Uuid)> {
    let user_id = Uuid::new_v4();
    let org_id = Uuid::new_v4();
    db::users::insert(
        tx,
        user_id,
        account.email,
        account.password_hash,
        account.name,
    )
    .await
    .map_err(ApiError::conflict_on_unique(
        "email_taken",
        "an account with this email already exists; log in instead",
    ))?;
    db::users::set_language(tx, user_id, account.language.as_str()).await?;
    if account.verified {
        db::users::set_verified(tx, user_id).await?;
    }
    db::orgs::insert(tx, org_id, account.organization_name).await?;
    db::orgs::add_member(tx, org_id, user_id, Role::Owner).await?;
    let actor = user_actor(user_id, org_id, Role::Owner, account.email);
    let change =
        Change::new("organization.created", "organization", org_id).after(serde_json::json!({
            "name": account.organization_name,
            "owner_user_id": user_id,
            "owner_email": account.email,
        }));
    audit::record_by(tx, &actor, change).await?;
    Ok((user_id, org_id))
}

/// Creates a user **and a new organisation** they own (nobody registers into an existing
/// one: that takes an invitation), and logs them in — or, when mail is delivered, mails
/// a confirmation link first ([`mailed::register_pending`]; the account is created when
/// it is followed).
///
/// Registrations are throttled per client address (before argon2 runs); without mail, a
/// taken email is 409 `email_taken` (with mail, the answer is the same for every address).
/// The password is hashed before the transaction starts, so no connection waits on argon2.
pub async fn register<C: Channel>(
    state: &AppState,
    client: Option<IpAddr>,
    account: NewAccount,
    language: Language,
) -> ApiResult<Registered<C::Started>> {
    ratelimit::check_and_record_registration(&state.pool, account.email.as_str(), client).await?;
    if crate::mail::delivers(&state.config) {
        mailed::register_pending(state, account, language).await?;
        return Ok(Registered::ConfirmationSent);
    }
    let NewAccount {
        email,
        password,
        name,
        organization_name,
    } = account;
    let password_hash = hash_password(&state.passwords, password).await?;
    let mut tx = state.pool.begin().await?;
    let (user_id, org_id) = create_account(
        &mut tx,
        &AccountRow {
            email: email.as_str(),
            password_hash: &password_hash,
            name: &name,
            organization_name: &organization_name,
            language,
            verified: false,
        },
    )
    .await?;
    // Logged (link redacted) in this mode; kept so the flow is the same everywhere.
    mailed::enqueue_verification(&mut tx, &state.config, user_id, email.as_str(), language).await?;
    let tokens = C::start(&mut tx, state, user_id, org_id).await?;
    tx.commit().await?;
    tracing::info!(%user_id, %org_id, "account registered");
    Ok(Registered::Started(tokens))
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
