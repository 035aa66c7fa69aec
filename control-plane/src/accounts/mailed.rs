//! The mailed account flows (issue 15): sign-ups confirmed by mail, address verification,
//! forgotten and changed passwords, changed addresses — and the messages they send.
//!
//! - Messages: [`AccountMail`] says what a message is about; [`enqueue`] renders it in
//!   the recipient's [`Language`] with the two askama templates
//!   (`templates/mail/account/message.txt|.html`: one layout per format, the words here)
//!   and writes it to the outbox in the caller's transaction.
//! - Tokens: every link token is `mail::link_token(purpose, row id)`; the row
//!   (`pending_registrations` or `account_tokens`, see `db::account_tokens`) stores only
//!   its SHA-256. Followed links use the row up; unknown, used and expired tokens are all
//!   404 `invalid_token`.
//! - No enumeration: [`register_pending`] and [`forgot_password`] do the same work (an
//!   argon2 hash or none, one lookup, one row or none, one mail) and give the same answer
//!   whether or not the address has an account; only the mailbox's owner learns which.

use std::net::IpAddr;
use std::time::Duration;

use axum::http::StatusCode;
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Email, NewAccount, Password, hash_password, user_actor, verify_password};
use crate::audit::{self, Change};
use crate::auth::Role;
use crate::config::Config;
use crate::db;
use crate::db::account_tokens::{NewPending, Purpose};
use crate::error::{ApiError, ApiResult};
use crate::mail::{self, Language, LinkRef, Outgoing};
use crate::ratelimit;
use crate::state::AppState;

/// How long a sign-up confirmation, a verification or an email-change link works.
pub const ADDRESS_LINK_TTL: time::Duration = time::Duration::hours(24);
/// How long a password-reset link works.
pub const RESET_LINK_TTL: time::Duration = time::Duration::hours(1);
/// Reset mails sent to one address per hour; past it, forgot-password still answers 202
/// but sends nothing (a silent limit: it says nothing about the address).
pub const RESETS_PER_EMAIL: i64 = 3;
const RESET_EMAIL_WINDOW: Duration = Duration::from_secs(3600);

/// 404 `invalid_token`: the answer for every link token that cannot be used.
pub fn invalid_token() -> ApiError {
    ApiError::coded(
        StatusCode::NOT_FOUND,
        "invalid_token",
        "this link is unknown, expired or already used; ask for a new one",
    )
}

/// 403 `wrong_password`.
fn wrong_password() -> ApiError {
    ApiError::coded(
        StatusCode::FORBIDDEN,
        "wrong_password",
        "the current password is wrong",
    )
}

/// What an account message is about.
pub enum AccountMail<'a> {
    /// Finish a sign-up (to the new address; link).
    ConfirmRegistration { organization: &'a str },
    /// Someone signed up with an address that has an account (no link).
    AlreadyRegistered,
    /// Prove the address (link).
    VerifyEmail,
    /// Reset the password (link, one hour).
    ResetPassword,
    /// A reset was asked for an address without an account (no link).
    ResetUnknown,
    /// Notice after a reset or change.
    PasswordChanged,
    /// Confirm a new address (to the new address; link).
    ChangeEmail,
    /// Notice to the old address that a change was asked.
    EmailChangeNotice { new_email: &'a str },
    /// An invitation to an organisation (link).
    Invitation {
        inviter: &'a str,
        organization: &'a str,
        role: Role,
    },
}

/// The link of a message, as the templates show it.
pub struct Action {
    pub label: String,
    pub url: String,
}

#[derive(askama::Template)]
#[template(path = "mail/account/message.txt")]
struct TextBody<'a> {
    greeting: &'a str,
    paragraphs: &'a [String],
    action: Option<&'a Action>,
    after: &'a [String],
}

#[derive(askama::Template)]
#[template(path = "mail/account/message.html")]
struct HtmlBody<'a> {
    lang: &'a str,
    subject: &'a str,
    greeting: &'a str,
    paragraphs: &'a [String],
    action: Option<&'a Action>,
    link_hint: &'a str,
    after: &'a [String],
}

/// A message's words, before the layout.
pub struct Composed {
    pub subject: String,
    pub greeting: String,
    pub paragraphs: Vec<String>,
    pub action: Option<Action>,
    pub after: Vec<String>,
}

fn role_name(role: Role, lang: Language) -> &'static str {
    match (role, lang) {
        (Role::Viewer, Language::En) => "viewer",
        (Role::Editor, Language::En) => "editor",
        (Role::Admin, Language::En) => "admin",
        (Role::Owner, Language::En) => "owner",
        (Role::Viewer, Language::Es) => "lector",
        (Role::Editor, Language::Es) => "editor",
        (Role::Admin, Language::Es) => "administrador",
        (Role::Owner, Language::Es) => "propietario",
    }
}

impl AccountMail<'_> {
    /// The link purpose of the message's token, if it has one.
    pub fn purpose(&self) -> Option<&'static str> {
        match self {
            Self::ConfirmRegistration { .. } => Some("confirm_registration"),
            Self::VerifyEmail => Some("verify_email"),
            Self::ResetPassword => Some("reset_password"),
            Self::ChangeEmail => Some("change_email"),
            Self::Invitation { .. } => Some("invitation"),
            Self::AlreadyRegistered
            | Self::ResetUnknown
            | Self::PasswordChanged
            | Self::EmailChangeNotice { .. } => None,
        }
    }

    /// The words of the message in `lang`.
    pub fn compose(&self, config: &Config, lang: Language) -> Composed {
        let es = lang == Language::Es;
        let t = |en: &str, es_text: &str| {
            if es {
                es_text.to_owned()
            } else {
                en.to_owned()
            }
        };
        let hello = t("Hello,", "Hola:");
        let link = |path: &str, en: &str, es_text: &str| {
            Some(Action {
                label: t(en, es_text),
                url: mail::console_link(config, path),
            })
        };
        let ignore = t(
            "If you did not ask for this, ignore this message: nothing will change.",
            "Si no lo has pedido tú, ignora este mensaje: no cambiará nada.",
        );
        let forgot = mail::console_url(config, "/forgot-password");
        match self {
            Self::ConfirmRegistration { organization } => Composed {
                subject: t(
                    "Confirm your email address",
                    "Confirma tu dirección de correo",
                ),
                greeting: hello,
                paragraphs: vec![if es {
                    format!(
                        "Confirma tu dirección para terminar de crear tu cuenta de Samplit y la organización «{organization}». El enlace vale 24 horas."
                    )
                } else {
                    format!(
                        "Confirm your address to finish creating your Samplit account and the organisation “{organization}”. The link works for 24 hours."
                    )
                }],
                action: link(
                    "/verify-email?signup=1",
                    "Confirm my address",
                    "Confirmar mi dirección",
                ),
                after: vec![t(
                    "If you did not sign up, ignore this message: no account will be created.",
                    "Si no te has registrado, ignora este mensaje: no se creará ninguna cuenta.",
                )],
            },
            Self::AlreadyRegistered => Composed {
                subject: t(
                    "You already have a Samplit account",
                    "Ya tienes una cuenta de Samplit",
                ),
                greeting: hello,
                paragraphs: vec![
                    t(
                        "Someone (hopefully you) tried to sign up for Samplit with this address, but it already has an account. No new account was created.",
                        "Alguien (esperamos que tú) ha intentado registrarse en Samplit con esta dirección, pero ya tiene una cuenta. No se ha creado ninguna cuenta nueva.",
                    ),
                    if es {
                        format!("¿Has olvidado tu contraseña? Restablécela aquí: {forgot}")
                    } else {
                        format!("Forgot your password? Reset it here: {forgot}")
                    },
                ],
                action: Some(Action {
                    label: t("Sign in", "Iniciar sesión"),
                    url: mail::console_url(config, "/"),
                }),
                after: vec![ignore],
            },
            Self::VerifyEmail => Composed {
                subject: t(
                    "Verify your email address",
                    "Verifica tu dirección de correo",
                ),
                greeting: hello,
                paragraphs: vec![t(
                    "Confirm that this address is yours, so Samplit can send you invitations and alerts. The link works for 24 hours.",
                    "Confirma que esta dirección es tuya para que Samplit pueda enviarte invitaciones y alertas. El enlace vale 24 horas.",
                )],
                action: link(
                    "/verify-email",
                    "Verify my address",
                    "Verificar mi dirección",
                ),
                after: vec![ignore],
            },
            Self::ResetPassword => Composed {
                subject: t(
                    "Reset your Samplit password",
                    "Restablece tu contraseña de Samplit",
                ),
                greeting: hello,
                paragraphs: vec![t(
                    "Someone asked to reset the password of your Samplit account. Choose a new one with this link; it works once, for one hour. Resetting signs you out everywhere.",
                    "Alguien ha pedido restablecer la contraseña de tu cuenta de Samplit. Elige una nueva con este enlace; vale una sola vez, durante una hora. Al restablecerla se cerrarán todas tus sesiones.",
                )],
                action: link(
                    "/reset-password",
                    "Choose a new password",
                    "Elegir una contraseña nueva",
                ),
                after: vec![t(
                    "If you did not ask for this, ignore this message: your password stays the same.",
                    "Si no lo has pedido tú, ignora este mensaje: tu contraseña no cambiará.",
                )],
            },
            Self::ResetUnknown => Composed {
                subject: t(
                    "Password reset requested",
                    "Solicitud para restablecer una contraseña",
                ),
                greeting: hello,
                paragraphs: vec![t(
                    "Someone asked to reset the password of a Samplit account with this address, but no Samplit account uses it. If it was you, you may have signed up with another address.",
                    "Alguien ha pedido restablecer la contraseña de una cuenta de Samplit con esta dirección, pero ninguna cuenta de Samplit la usa. Si has sido tú, quizá te registraste con otra dirección.",
                )],
                action: None,
                after: vec![ignore],
            },
            Self::PasswordChanged => Composed {
                subject: t("Your password was changed", "Tu contraseña ha cambiado"),
                greeting: hello,
                paragraphs: vec![t(
                    "The password of your Samplit account was just changed.",
                    "La contraseña de tu cuenta de Samplit se acaba de cambiar.",
                )],
                action: None,
                after: vec![if es {
                    format!("Si no has sido tú, restablécela ahora: {forgot}")
                } else {
                    format!("If this was not you, reset it now: {forgot}")
                }],
            },
            Self::ChangeEmail => Composed {
                subject: t(
                    "Confirm your new email address",
                    "Confirma tu nueva dirección de correo",
                ),
                greeting: hello,
                paragraphs: vec![t(
                    "Your Samplit account will use this address once you confirm it. The link works for 24 hours.",
                    "Tu cuenta de Samplit usará esta dirección cuando la confirmes. El enlace vale 24 horas.",
                )],
                action: link(
                    "/verify-email",
                    "Confirm my new address",
                    "Confirmar mi nueva dirección",
                ),
                after: vec![ignore],
            },
            Self::EmailChangeNotice { new_email } => {
                let masked = mail::masked(new_email);
                Composed {
                    subject: t(
                        "Your email address is being changed",
                        "Se está cambiando tu dirección de correo",
                    ),
                    greeting: hello,
                    paragraphs: vec![if es {
                        format!(
                            "Se ha pedido cambiar la dirección de tu cuenta de Samplit a {masked}. El cambio se hará cuando se confirme desde esa dirección."
                        )
                    } else {
                        format!(
                            "Someone asked to change the address of your Samplit account to {masked}. The change happens once it is confirmed from that address."
                        )
                    }],
                    action: None,
                    after: vec![if es {
                        format!("Si no has sido tú, cambia tu contraseña ahora: {forgot}")
                    } else {
                        format!("If this was not you, change your password now: {forgot}")
                    }],
                }
            }
            Self::Invitation {
                inviter,
                organization,
                role,
            } => {
                let role = role_name(*role, lang);
                Composed {
                    subject: if es {
                        format!("{inviter} te ha invitado a {organization} en Samplit")
                    } else {
                        format!("{inviter} invited you to {organization} on Samplit")
                    },
                    greeting: hello,
                    paragraphs: vec![if es {
                        format!(
                            "{inviter} te ha invitado a unirte a la organización «{organization}» en Samplit con el rol de {role}. La invitación vale 7 días."
                        )
                    } else {
                        format!(
                            "{inviter} invited you to join the organisation “{organization}” on Samplit as {role}. The invitation works for 7 days."
                        )
                    }],
                    action: link(
                        "/accept-invitation",
                        "Accept the invitation",
                        "Aceptar la invitación",
                    ),
                    after: vec![t(
                        "If you do not know this person, ignore this message.",
                        "Si no conoces a esta persona, ignora este mensaje.",
                    )],
                }
            }
        }
    }
}

/// Renders `message` for `to` in `lang` (link token of row `link_id`, if it has a link)
/// and writes it to the outbox in the caller's transaction.
pub async fn enqueue(
    conn: &mut PgConnection,
    config: &Config,
    to: &str,
    lang: Language,
    message: &AccountMail<'_>,
    link_id: Option<Uuid>,
) -> ApiResult<()> {
    use askama::Template;
    let composed = message.compose(config, lang);
    let link = match (message.purpose(), link_id) {
        (Some(purpose), Some(id)) => Some(LinkRef { purpose, id }),
        _ => None,
    };
    let text = TextBody {
        greeting: &composed.greeting,
        paragraphs: &composed.paragraphs,
        action: composed.action.as_ref(),
        after: &composed.after,
    }
    .render()
    .map_err(|e| ApiError::Internal(e.into()))?;
    let html = HtmlBody {
        lang: lang.as_str(),
        subject: &composed.subject,
        greeting: &composed.greeting,
        paragraphs: &composed.paragraphs,
        action: composed.action.as_ref(),
        link_hint: if lang == Language::Es {
            "Si el botón no funciona, copia este enlace en tu navegador:"
        } else {
            "If the button does not work, copy this link into your browser:"
        },
        after: &composed.after,
    }
    .render()
    .map_err(|e| ApiError::Internal(e.into()))?;
    let kind = message.purpose().unwrap_or("notice");
    let outgoing = Outgoing {
        dedupe_key: format!("account:{kind}:{}", link_id.unwrap_or_else(Uuid::new_v4)),
        to: to.to_owned(),
        subject: composed.subject,
        text,
        html,
        link,
    };
    mail::enqueue(conn, &outgoing).await?;
    Ok(())
}

/// The token hash of a link to row `id` with `purpose`.
fn link_hash(config: &Config, purpose: &'static str, id: Uuid) -> Vec<u8> {
    mail::token_hash(&mail::link_token(config, LinkRef { purpose, id }))
}

/// Sign-up when mail is delivered: nothing is created yet. A free address gets a
/// pending registration and a confirmation link; a taken one, a message saying it has
/// an account. Same answer, same work (the password is hashed either way).
pub async fn register_pending(
    state: &AppState,
    account: NewAccount,
    language: Language,
) -> ApiResult<()> {
    let NewAccount {
        email,
        password,
        name,
        organization_name,
    } = account;
    let password_hash = hash_password(&state.passwords, password).await?;
    let mut tx = state.pool.begin().await?;
    match db::users::find_by_email(&mut tx, email.as_str()).await? {
        Some(user) => {
            let lang = Language::from_code(&user.language);
            enqueue(
                &mut tx,
                &state.config,
                email.as_str(),
                lang,
                &AccountMail::AlreadyRegistered,
                None,
            )
            .await?;
        }
        None => {
            let id = Uuid::new_v4();
            let token_hash = link_hash(&state.config, "confirm_registration", id);
            db::account_tokens::insert_pending(
                &mut tx,
                &NewPending {
                    id,
                    email: email.as_str(),
                    password_hash: &password_hash,
                    name: &name,
                    organization_name: &organization_name,
                    language: language.as_str(),
                    token_hash: &token_hash,
                    expires_at: OffsetDateTime::now_utc() + ADDRESS_LINK_TTL,
                },
            )
            .await?;
            enqueue(
                &mut tx,
                &state.config,
                email.as_str(),
                language,
                &AccountMail::ConfirmRegistration {
                    organization: &organization_name,
                },
                Some(id),
            )
            .await?;
        }
    }
    tx.commit().await?;
    tracing::info!(to = %mail::masked(email.as_str()), "sign-up answered by mail");
    Ok(())
}

/// Follows a sign-up confirmation link: creates the (verified) account and its
/// organisation and starts a session, as [`super::register`] does without mail.
pub async fn confirm_registration<C: super::Channel>(
    state: &AppState,
    token: &str,
) -> ApiResult<C::Started> {
    let mut tx = state.pool.begin().await?;
    let pending = db::account_tokens::pending_for_update(&mut tx, &mail::token_hash(token))
        .await?
        .ok_or_else(invalid_token)?;
    let (user_id, org_id) = super::create_account(
        &mut tx,
        &super::AccountRow {
            email: &pending.email,
            password_hash: &pending.password_hash,
            name: &pending.name,
            organization_name: &pending.organization_name,
            language: Language::from_code(&pending.language),
            verified: true,
        },
    )
    .await?;
    db::account_tokens::close_pending_of(&mut tx, &pending.email).await?;
    let started = C::start(&mut tx, state, user_id, org_id).await?;
    tx.commit().await?;
    tracing::info!(%user_id, %org_id, "sign-up confirmed");
    Ok(started)
}

/// Mails a verification link for `user_id`'s current address (in the caller's
/// transaction).
pub async fn enqueue_verification(
    conn: &mut PgConnection,
    config: &Config,
    user_id: Uuid,
    email: &str,
    lang: Language,
) -> ApiResult<()> {
    let id = Uuid::new_v4();
    db::account_tokens::insert(
        conn,
        id,
        Purpose::VerifyEmail,
        Some(user_id),
        email,
        &link_hash(config, Purpose::VerifyEmail.as_str(), id),
        OffsetDateTime::now_utc() + ADDRESS_LINK_TTL,
    )
    .await?;
    enqueue(
        conn,
        config,
        email,
        lang,
        &AccountMail::VerifyEmail,
        Some(id),
    )
    .await
}

/// Records an account change in every organisation the user belongs to (the audit
/// trail is per organisation).
async fn audit_account_change(
    conn: &mut PgConnection,
    user_id: Uuid,
    email: &str,
    action: &str,
    after: serde_json::Value,
) -> ApiResult<()> {
    for org in db::orgs::orgs_of_user(conn, user_id).await? {
        let actor = user_actor(user_id, org.id, org.role, email);
        let change = Change::new(action, "user", user_id).after(after.clone());
        audit::record_by(conn, &actor, change).await?;
    }
    Ok(())
}

/// Follows a verification or email-change link (`POST /auth/verify-email`). Returns the
/// address now verified.
pub async fn verify_email(state: &AppState, token: &str) -> ApiResult<String> {
    let mut tx = state.pool.begin().await?;
    let row = db::account_tokens::open_for_update(
        &mut tx,
        &mail::token_hash(token),
        &[Purpose::VerifyEmail, Purpose::ChangeEmail],
    )
    .await?
    .ok_or_else(invalid_token)?;
    let user = db::users::find_for_update(&mut tx, row.user_id)
        .await?
        .ok_or_else(invalid_token)?;
    match row.purpose {
        Purpose::ChangeEmail => {
            db::users::set_email(&mut tx, user.id, &row.email)
                .await
                .map_err(ApiError::conflict_on_unique(
                    "email_taken",
                    "another account uses this address now",
                ))?;
            audit_account_change(
                &mut tx,
                user.id,
                &row.email,
                "user.email_changed",
                serde_json::json!({ "from": user.email, "to": row.email }),
            )
            .await?;
            // Links to the old address prove nothing about the new one.
            db::account_tokens::close_all(&mut tx, user.id, Purpose::VerifyEmail).await?;
            db::account_tokens::close_all(&mut tx, user.id, Purpose::ResetPassword).await?;
        }
        _ => {
            if row.email != user.email {
                // Mailed to an address the account no longer uses.
                return Err(invalid_token());
            }
            db::users::set_verified(&mut tx, user.id).await?;
        }
    }
    db::account_tokens::close_all(&mut tx, user.id, row.purpose).await?;
    tx.commit().await?;
    Ok(row.email)
}

/// 409 `already_verified`.
fn already_verified() -> ApiError {
    ApiError::conflict("already_verified", "this address is verified already")
}

/// Mails a new verification link to the signed-in user (throttled per user).
pub async fn resend_verification(state: &AppState, user_id: Uuid) -> ApiResult<()> {
    let mut conn = state.pool.acquire().await?;
    let user = db::users::find(&mut conn, user_id)
        .await?
        .ok_or(ApiError::Unauthorized("session ended"))?;
    if user.email_verified_at.is_some() {
        return Err(already_verified());
    }
    drop(conn);
    ratelimit::check_and_record_verification_resend(&state.pool, user_id).await?;
    let mut tx = state.pool.begin().await?;
    enqueue_verification(
        &mut tx,
        &state.config,
        user.id,
        &user.email,
        Language::from_code(&user.language),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// `POST /auth/password/forgot`: always the same outcome for the caller. A known
/// address gets a reset link (one hour, single use); an unknown one, a message saying no
/// account uses it. Both insert one row and enqueue one message. Throttled per client
/// address (429) and, silently, per address mailed.
pub async fn forgot_password(
    state: &AppState,
    client: Option<IpAddr>,
    email: &Email,
    request_language: Language,
) -> ApiResult<()> {
    ratelimit::check_and_record_password_reset(&state.pool, email.as_str(), client).await?;
    let mut tx = state.pool.begin().await?;
    let recent = db::account_tokens::count_recent(
        &mut tx,
        Purpose::ResetPassword,
        email.as_str(),
        RESET_EMAIL_WINDOW,
    )
    .await?;
    if recent >= RESETS_PER_EMAIL {
        tracing::info!(to = %mail::masked(email.as_str()), "password reset mail limit reached");
        return Ok(());
    }
    let user = db::users::find_by_email(&mut tx, email.as_str()).await?;
    let id = Uuid::new_v4();
    db::account_tokens::insert(
        &mut tx,
        id,
        Purpose::ResetPassword,
        user.as_ref().map(|u| u.id),
        email.as_str(),
        &link_hash(&state.config, Purpose::ResetPassword.as_str(), id),
        OffsetDateTime::now_utc() + RESET_LINK_TTL,
    )
    .await?;
    match &user {
        Some(user) => {
            let lang = Language::from_code(&user.language);
            enqueue(
                &mut tx,
                &state.config,
                &user.email,
                lang,
                &AccountMail::ResetPassword,
                Some(id),
            )
            .await?;
        }
        None => {
            enqueue(
                &mut tx,
                &state.config,
                email.as_str(),
                request_language,
                &AccountMail::ResetUnknown,
                None,
            )
            .await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// `POST /auth/password/reset`: sets the new password, uses the token up, verifies the
/// address (the link proves it), revokes every session of the user, and mails a notice.
pub async fn reset_password(state: &AppState, token: &str, password: Password) -> ApiResult<()> {
    let hash_of_token = mail::token_hash(token);
    // Cheap check first, so an invalid token costs no argon2 hash.
    {
        let mut conn = state.pool.acquire().await?;
        db::account_tokens::open_for_update(&mut conn, &hash_of_token, &[Purpose::ResetPassword])
            .await?
            .ok_or_else(invalid_token)?;
    }
    let password_hash = hash_password(&state.passwords, password).await?;
    let mut tx = state.pool.begin().await?;
    let row =
        db::account_tokens::open_for_update(&mut tx, &hash_of_token, &[Purpose::ResetPassword])
            .await?
            .ok_or_else(invalid_token)?;
    let user = db::users::find_for_update(&mut tx, row.user_id)
        .await?
        .ok_or_else(invalid_token)?;
    db::users::set_password_hash(&mut tx, user.id, &password_hash).await?;
    if row.email == user.email {
        db::users::set_verified(&mut tx, user.id).await?;
    }
    db::account_tokens::close_all(&mut tx, user.id, Purpose::ResetPassword).await?;
    let revoked = db::users::revoke_sessions(&mut tx, user.id, None, "password_reset").await?;
    audit_account_change(
        &mut tx,
        user.id,
        &user.email,
        "user.password_reset",
        serde_json::json!({ "sessions_revoked": revoked }),
    )
    .await?;
    enqueue(
        &mut tx,
        &state.config,
        &user.email,
        Language::from_code(&user.language),
        &AccountMail::PasswordChanged,
        None,
    )
    .await?;
    tx.commit().await?;
    // A reset proves the owner: lift the login lock of the account.
    ratelimit::login_succeeded(&state.pool, &user.email).await?;
    tracing::info!(user_id = %user.id, revoked, "password reset");
    Ok(())
}

/// Checks a signed-in user's current password, throttled like logins (the same
/// per-account and per-address failure counts); 403 `wrong_password` when it is wrong.
async fn check_current_password(
    state: &AppState,
    client: Option<IpAddr>,
    user: &db::users::UserRow,
    candidate: String,
) -> ApiResult<()> {
    let reservation = ratelimit::reserve_login(&state.pool, &user.email, client).await?;
    let candidate = if candidate.chars().count() > super::PASSWORD_MAX_CHARS {
        String::new()
    } else {
        candidate
    };
    let verified = match verify_password(
        &state.passwords,
        candidate,
        Some(user.password_hash.clone()),
    )
    .await
    {
        Ok(v) => v,
        Err(e) => {
            ratelimit::release(&state.pool, reservation).await?;
            return Err(e);
        }
    };
    if !verified {
        return Err(wrong_password());
    }
    ratelimit::login_succeeded(&state.pool, &user.email).await
}

async fn signed_in_user(state: &AppState, user_id: Uuid) -> ApiResult<db::users::UserRow> {
    let mut conn = state.pool.acquire().await?;
    db::users::find(&mut conn, user_id)
        .await?
        .ok_or(ApiError::Unauthorized("session ended"))
}

/// `POST /auth/password`: changes a signed-in user's password; their other sessions
/// end, `keep_session` stays.
pub async fn change_password(
    state: &AppState,
    client: Option<IpAddr>,
    user_id: Uuid,
    keep_session: Uuid,
    current: String,
    new: Password,
) -> ApiResult<()> {
    let user = signed_in_user(state, user_id).await?;
    check_current_password(state, client, &user, current).await?;
    let password_hash = hash_password(&state.passwords, new).await?;
    let mut tx = state.pool.begin().await?;
    db::users::set_password_hash(&mut tx, user.id, &password_hash).await?;
    db::account_tokens::close_all(&mut tx, user.id, Purpose::ResetPassword).await?;
    let revoked =
        db::users::revoke_sessions(&mut tx, user.id, Some(keep_session), "password_changed")
            .await?;
    audit_account_change(
        &mut tx,
        user.id,
        &user.email,
        "user.password_changed",
        serde_json::json!({ "sessions_revoked": revoked }),
    )
    .await?;
    enqueue(
        &mut tx,
        &state.config,
        &user.email,
        Language::from_code(&user.language),
        &AccountMail::PasswordChanged,
        None,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// `POST /auth/email`: after the password check, mails a link to the new address and a
/// notice to the old one — whether or not the new address is taken (following the link
/// says so: 409 `email_taken`).
pub async fn change_email(
    state: &AppState,
    client: Option<IpAddr>,
    user_id: Uuid,
    new_email: &Email,
    password: String,
) -> ApiResult<()> {
    let user = signed_in_user(state, user_id).await?;
    check_current_password(state, client, &user, password).await?;
    if new_email.as_str() == user.email {
        return Err(ApiError::validation(
            "new_email",
            "this is your address already",
        ));
    }
    let lang = Language::from_code(&user.language);
    let id = Uuid::new_v4();
    let mut tx = state.pool.begin().await?;
    db::account_tokens::insert(
        &mut tx,
        id,
        Purpose::ChangeEmail,
        Some(user.id),
        new_email.as_str(),
        &link_hash(&state.config, Purpose::ChangeEmail.as_str(), id),
        OffsetDateTime::now_utc() + ADDRESS_LINK_TTL,
    )
    .await?;
    enqueue(
        &mut tx,
        &state.config,
        new_email.as_str(),
        lang,
        &AccountMail::ChangeEmail,
        Some(id),
    )
    .await?;
    enqueue(
        &mut tx,
        &state.config,
        &user.email,
        lang,
        &AccountMail::EmailChangeNotice {
            new_email: new_email.as_str(),
        },
        None,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        crate::config::from_lookup(|name| {
            match name {
                "DATABASE_URL" => Some("postgres://unused"),
                "SAMPLIT_JWT_SECRET" => Some("unit-test-jwt-secret-0123456789abcdef0123"),
                "SAMPLIT_INGEST_SECRET" => Some("unit-test-ingest-secret-0123456789abcdef01"),
                "SAMPLIT_PUBLIC_URL" => Some("https://app.samplit.test"),
                _ => None,
            }
            .map(str::to_owned)
        })
        .expect("a valid configuration")
    }

    #[test]
    fn every_message_has_words_in_both_languages_and_its_link_carries_the_placeholder() {
        use askama::Template;
        let config = config();
        let messages = [
            AccountMail::ConfirmRegistration {
                organization: "Acme <script>",
            },
            AccountMail::AlreadyRegistered,
            AccountMail::VerifyEmail,
            AccountMail::ResetPassword,
            AccountMail::ResetUnknown,
            AccountMail::PasswordChanged,
            AccountMail::ChangeEmail,
            AccountMail::EmailChangeNotice {
                new_email: "new@example.com",
            },
            AccountMail::Invitation {
                inviter: "Ada",
                organization: "Acme",
                role: Role::Editor,
            },
        ];
        for message in &messages {
            let en = message.compose(&config, Language::En);
            let es = message.compose(&config, Language::Es);
            assert_ne!(en.subject, es.subject, "translated subjects");
            assert_ne!(en.paragraphs, es.paragraphs, "translated bodies");
            let action = en.action.as_ref();
            match message.purpose() {
                Some(_) => assert!(
                    action.is_some_and(|a| a.url.contains(mail::LINK_TOKEN_PLACEHOLDER)),
                    "{}: a link with the token placeholder",
                    en.subject
                ),
                None => assert!(
                    !en.paragraphs
                        .concat()
                        .contains(mail::LINK_TOKEN_PLACEHOLDER)
                        && action.is_none_or(|a| !a.url.contains("#token=")),
                    "{}: no token",
                    en.subject
                ),
            }
            let html = HtmlBody {
                lang: "en",
                subject: &en.subject,
                greeting: &en.greeting,
                paragraphs: &en.paragraphs,
                action,
                link_hint: "hint",
                after: &en.after,
            }
            .render()
            .unwrap();
            assert!(!html.contains("<script>"), "HTML escapes what it shows");
            if let Some(action) = action {
                // The button's href, the text link's href and its text (and, for the
                // sign-in URL, a prefix of the forgot-password link in the body).
                assert!(
                    html.matches(action.url.as_str()).count() >= 3,
                    "{}: the link as a button and as text",
                    en.subject
                );
            }
        }
    }
}
