//! Members of the caller's organisation, and invitations to join it.
//!
//! - `GET /members` (viewer+), `PATCH /members/{user_id}` {role} (admin+),
//!   `DELETE /members/{user_id}` (admin+ to remove someone; anyone to leave).
//! - `POST /invitations` {email, role} (admin+): when the server delivers mail, the
//!   invitee receives a link (`/app/accept-invitation#token=…`, in their language if
//!   they have an account, else English) and the answer has no token; without mail, the
//!   answer returns the token once. Only its SHA-256 is stored; it expires after
//!   [`INVITATION_TTL_DAYS`] days. `GET /invitations` and
//!   `DELETE /invitations/{id}` (admin+), `POST /invitations/accept` {token, password?,
//!   name?} (the token is the credential).
//!
//! Role rules (also in `docs/permissions.md`), checked by [`may_assign`]:
//! - nobody changes their own role (so nobody grants themselves one);
//! - only owners grant or revoke the owner role (promote to, demote from, invite as,
//!   remove an owner); admins manage viewer, editor and admin members;
//! - the last owner can neither leave nor be demoted (409 `last_owner`);
//! - no actor changes its own creator: an API key cannot change the role of, or remove,
//!   the person it answers for (`Actor::person`, the root of its creator chain).
//!
//! Keys and invitations follow their people: removing a member revokes the API keys
//! they answer for (and so those minted from them) and cancels the invitations they sent;
//! demoting a member cancels their open invitations that the new role could not send (a
//! key's role is capped by its person's current role on every request, in `auth.rs`).
//!
//! Accepting: with mail, a signed-in account must have verified its address (403
//! `email_unverified`), and a new account created by accepting is verified (the mailed
//! token proves the address). A new email sets a password (and becomes a user); an email that already
//! has an account must be logged in as that account (409 `login_required` otherwise), so
//! a leaked invitation cannot be used to take over an existing account's identity.

use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::auth::{Errors, TokenResponse};
use super::no_store::NoStore;
use super::rfc3339;
use crate::accounts::mailed::AccountMail;
use crate::accounts::{self, Email, Password};
use crate::audit::{self, Change};
use crate::auth::roles::{Admin, Viewer};
use crate::auth::{Actor, RequireRole, Role, new_token, token_hash};
use crate::db;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{Json, PathId};
use crate::mail::{self, Language, LinkRef};
use crate::state::AppState;

/// Prefix of invitation tokens.
pub const INVITATION_TOKEN_PREFIX: &str = "inv_";
pub const INVITATION_TTL_DAYS: i64 = 7;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_members))
        .routes(routes!(change_role, remove_member))
        .routes(routes!(invite, list_invitations))
        .routes(routes!(revoke_invitation))
        .routes(routes!(accept_invitation))
}

/// Whether `actor_role` may give `target_new` to a member whose role is `target_current`
/// (`None` for a new member). Self-changes are refused before this is asked.
pub fn may_assign(actor_role: Role, target_current: Option<Role>, target_new: Role) -> bool {
    let touches_owner = target_new == Role::Owner || target_current == Some(Role::Owner);
    if touches_owner {
        actor_role == Role::Owner
    } else {
        actor_role >= Role::Admin
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct MemberOut {
    pub user_id: Uuid,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub joined_at: String,
}

/// The organisation's members.
#[utoipa::path(
    get, path = "/members", tag = "members",
    responses(
        (status = 200, body = Vec<MemberOut>),
        (status = 401, description = "Not authenticated", body = Problem),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(skip_all, fields(org_id = %actor.org_id))]
async fn list_members(
    State(state): State<AppState>,
    RequireRole { actor, .. }: RequireRole<Viewer>,
) -> ApiResult<axum::Json<Vec<MemberOut>>> {
    let mut conn = state.pool.acquire().await?;
    let members = db::orgs::members(&mut conn, actor.org_id)
        .await?
        .into_iter()
        .map(|m| {
            Ok(MemberOut {
                role: m.role,
                user_id: m.user_id,
                email: m.email,
                name: m.name,
                joined_at: rfc3339(m.joined_at),
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(axum::Json(members))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct ChangeRoleRequest {
    pub role: Role,
}

/// Changes a member's role.
#[utoipa::path(
    patch, path = "/members/{user_id}", tag = "members",
    params(("user_id" = Uuid, Path, description = "The member's user id")),
    request_body = ChangeRoleRequest,
    responses(
        (status = 200, body = MemberOut),
        (status = 401, description = "Not authenticated", body = Problem),
        (status = 403, description = "Own role, or a role only owners may grant/revoke", body = Problem),
        (status = 404, description = "No such member in this organisation", body = Problem),
        (status = 409, description = "Would leave the organisation without an owner (`last_owner`)", body = Problem),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(skip_all, fields(org_id = %actor.org_id, target = %user_id))]
async fn change_role(
    State(state): State<AppState>,
    RequireRole { actor, .. }: RequireRole<Admin>,
    PathId(user_id): PathId,
    Json(body): Json<ChangeRoleRequest>,
) -> ApiResult<axum::Json<MemberOut>> {
    if actor.user_id() == Some(user_id) {
        return Err(ApiError::Forbidden("you cannot change your own role"));
    }
    if actor.person == user_id {
        return Err(ApiError::Forbidden(
            "an API key cannot change the role of the person who minted it",
        ));
    }
    let mut tx = state.pool.begin().await?;
    let owners = db::orgs::lock_and_count_owners(&mut tx, actor.org_id).await?;
    let current = db::orgs::member_role_for_update(&mut tx, actor.org_id, user_id)
        .await?
        .ok_or(ApiError::NotFound("member"))?;
    if !may_assign(actor.role, Some(current), body.role) {
        return Err(ApiError::Forbidden(
            "only owners grant or revoke the owner role",
        ));
    }
    if current == Role::Owner && body.role != Role::Owner && owners <= 1 {
        return Err(ApiError::conflict(
            "last_owner",
            "the organization's last owner cannot be demoted; make someone else owner first",
        ));
    }
    if current != body.role {
        db::orgs::set_role(&mut tx, actor.org_id, user_id, body.role).await?;
        if body.role < current {
            // An invitation they sent may grant only what they could still grant.
            let keep: Vec<&str> = [Role::Viewer, Role::Editor, Role::Admin, Role::Owner]
                .into_iter()
                .filter(|r| may_assign(body.role, None, *r))
                .map(Role::as_str)
                .collect();
            db::orgs::revoke_invitations_by(&mut tx, actor.org_id, user_id, &keep).await?;
        }
        let change = Change::new("member.role_changed", "user", user_id)
            .before(serde_json::json!({ "role": current }))
            .after(serde_json::json!({ "role": body.role }));
        audit::record_by(&mut tx, &actor, change).await?;
    }
    let member = db::orgs::members(&mut tx, actor.org_id)
        .await?
        .into_iter()
        .find(|m| m.user_id == user_id)
        .ok_or(ApiError::NotFound("member"))?;
    tx.commit().await?;
    Ok(axum::Json(MemberOut {
        role: member.role,
        user_id: member.user_id,
        email: member.email,
        name: member.name,
        joined_at: rfc3339(member.joined_at),
    }))
}

/// Removes a member (admin+; owners only to remove an owner), or leaves the organisation
/// when `user_id` is the caller.
#[utoipa::path(
    delete, path = "/members/{user_id}", tag = "members",
    params(("user_id" = Uuid, Path, description = "The member's user id (your own to leave)")),
    responses(
        (status = 204, description = "Removed; their sessions in this organisation are revoked"),
        (status = 401, description = "Not authenticated", body = Problem),
        (status = 403, description = "Role too low", body = Problem),
        (status = 404, description = "No such member in this organisation", body = Problem),
        (status = 409, description = "The last owner cannot leave (`last_owner`)", body = Problem),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(skip_all, fields(org_id = %actor.org_id, target = %user_id))]
async fn remove_member(
    State(state): State<AppState>,
    actor: Actor,
    PathId(user_id): PathId,
) -> ApiResult<StatusCode> {
    let leaving = actor.user_id() == Some(user_id);
    if !leaving && actor.person == user_id {
        return Err(ApiError::Forbidden(
            "an API key cannot remove the person who minted it",
        ));
    }
    if !leaving {
        actor.require(Role::Admin)?;
    }
    let mut tx = state.pool.begin().await?;
    let owners = db::orgs::lock_and_count_owners(&mut tx, actor.org_id).await?;
    let current = db::orgs::member_role_for_update(&mut tx, actor.org_id, user_id)
        .await?
        .ok_or(ApiError::NotFound("member"))?;
    if !leaving && current == Role::Owner && actor.role != Role::Owner {
        return Err(ApiError::Forbidden("only owners remove an owner"));
    }
    if current == Role::Owner && owners <= 1 {
        return Err(ApiError::conflict(
            "last_owner",
            "the organization's last owner cannot leave; make someone else owner first",
        ));
    }
    db::orgs::remove_member(&mut tx, actor.org_id, user_id).await?;
    let revoked_keys =
        db::api_keys::revoke_of_person(&mut tx, actor.org_id, user_id, "member_removed").await?;
    let cancelled_invitations =
        db::orgs::revoke_invitations_by(&mut tx, actor.org_id, user_id, &[]).await?;
    let action = if leaving {
        "member.left"
    } else {
        "member.removed"
    };
    let change = Change::new(action, "user", user_id)
        .before(serde_json::json!({ "role": current }))
        .after(serde_json::json!({
            "revoked_api_keys": revoked_keys,
            "cancelled_invitations": cancelled_invitations,
        }));
    audit::record_by(&mut tx, &actor, change).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct InviteRequest {
    #[schema(example = "grace@example.com")]
    pub email: Option<String>,
    pub role: Option<Role>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct InvitationOut {
    pub id: Uuid,
    pub email: String,
    pub role: Role,
    pub invited_by: Option<Uuid>,
    pub created_at: String,
    pub expires_at: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedInvitation {
    #[serde(flatten)]
    pub invitation: InvitationOut,
    /// Shown only in this answer, and only when the server does not deliver mail: send
    /// it to the invitee (e.g. in a link). With mail, the invitee receives it in a link
    /// and this field is absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

fn invitation_out(row: db::orgs::InvitationRow) -> ApiResult<InvitationOut> {
    Ok(InvitationOut {
        role: row.role,
        id: row.id,
        email: row.email,
        invited_by: row.invited_by,
        created_at: rfc3339(row.created_at),
        expires_at: rfc3339(row.expires_at),
    })
}

/// Invites someone by email with a role (replacing an open invitation for that email).
#[utoipa::path(
    post, path = "/invitations", tag = "members",
    request_body = InviteRequest,
    responses(
        (status = 201, description = "The invitation; its token (shown once) when mail is not delivered, else mailed to the invitee", body = CreatedInvitation),
        (status = 401, description = "Not authenticated", body = Problem),
        (status = 403, description = "Role too low, or inviting as owner without being one", body = Problem),
        (status = 409, description = "Already a member (`already_member`)", body = Problem),
        (status = 422, description = "Invalid fields", body = Problem),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(skip_all, fields(org_id = %actor.org_id))]
async fn invite(
    State(state): State<AppState>,
    RequireRole { actor, .. }: RequireRole<Admin>,
    Json(body): Json<InviteRequest>,
) -> ApiResult<impl IntoResponse> {
    let mut errors = Errors::default();
    let email = errors.required("email", body.email.as_deref(), Email::parse);
    let role = errors.required("role", body.role, Ok);
    errors.into_result()?;
    let (Some(email), Some(role)) = (email, role) else {
        return Err(ApiError::Internal(anyhow::anyhow!(
            "validated fields missing"
        )));
    };
    if !may_assign(actor.role, None, role) {
        return Err(ApiError::Forbidden("only owners invite owners"));
    }
    let mut tx = state.pool.begin().await?;
    if let Some(user) = db::users::find_by_email(&mut tx, email.as_str()).await?
        && db::orgs::member_role_for_update(&mut tx, actor.org_id, user.id)
            .await?
            .is_some()
    {
        return Err(ApiError::conflict(
            "already_member",
            "this person is already a member; change their role instead",
        ));
    }
    let delivers = mail::delivers(&state.config);
    let invitation_id = Uuid::new_v4();
    // With mail, the token is the invitation's mail link token (derived again when the
    // message is sent, never stored or answered); without, a random one for the inviter.
    let token = if delivers {
        mail::link_token(
            &state.config,
            LinkRef {
                purpose: "invitation",
                id: invitation_id,
            },
        )
    } else {
        new_token(INVITATION_TOKEN_PREFIX)
    };
    let expires_at = OffsetDateTime::now_utc() + time::Duration::days(INVITATION_TTL_DAYS);
    let row = db::orgs::insert_invitation(
        &mut tx,
        invitation_id,
        actor.org_id,
        email.as_str(),
        role,
        &token_hash(&token),
        // The person answerable for it (through a key: the key's person), so removing
        // them cancels it.
        Some(actor.person),
        expires_at,
    )
    .await?;
    let change = Change::new("invitation.created", "invitation", row.id)
        .after(serde_json::json!({ "email": email.as_str(), "role": role }));
    audit::record_by(&mut tx, &actor, change).await?;
    if delivers {
        let invitee = db::users::find_by_email(&mut tx, email.as_str()).await?;
        let lang = invitee.map_or(Language::En, |u| Language::from_code(&u.language));
        let inviter = match db::users::find(&mut tx, actor.person).await? {
            Some(u) if !u.name.is_empty() => format!("{} ({})", u.name, u.email),
            Some(u) => u.email,
            None => actor.label.clone(),
        };
        let org = db::orgs::find(&mut tx, actor.org_id)
            .await?
            .ok_or(ApiError::NotFound("organization"))?;
        accounts::mailed::enqueue(
            &mut tx,
            &state.config,
            email.as_str(),
            lang,
            &AccountMail::Invitation {
                inviter: &inviter,
                organization: &org.name,
                role,
            },
            Some(invitation_id),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(NoStore((
        StatusCode::CREATED,
        axum::Json(CreatedInvitation {
            invitation: invitation_out(row)?,
            token: (!delivers).then_some(token),
        }),
    )))
}

/// Open invitations (not accepted, revoked or expired).
#[utoipa::path(
    get, path = "/invitations", tag = "members",
    responses(
        (status = 200, body = Vec<InvitationOut>),
        (status = 401, description = "Not authenticated", body = Problem),
        (status = 403, description = "Admins and owners only", body = Problem),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(skip_all, fields(org_id = %actor.org_id))]
async fn list_invitations(
    State(state): State<AppState>,
    RequireRole { actor, .. }: RequireRole<Admin>,
) -> ApiResult<axum::Json<Vec<InvitationOut>>> {
    let mut conn = state.pool.acquire().await?;
    let rows = db::orgs::open_invitations(&mut conn, actor.org_id).await?;
    Ok(axum::Json(
        rows.into_iter()
            .map(invitation_out)
            .collect::<ApiResult<_>>()?,
    ))
}

/// Revokes an open invitation.
#[utoipa::path(
    delete, path = "/invitations/{id}", tag = "members",
    params(("id" = Uuid, Path, description = "Invitation id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "Not authenticated", body = Problem),
        (status = 403, description = "Admins and owners only", body = Problem),
        (status = 404, description = "No open invitation with this id here", body = Problem),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(skip_all, fields(org_id = %actor.org_id, invitation = %id))]
async fn revoke_invitation(
    State(state): State<AppState>,
    RequireRole { actor, .. }: RequireRole<Admin>,
    PathId(id): PathId,
) -> ApiResult<StatusCode> {
    let mut tx = state.pool.begin().await?;
    let row = db::orgs::revoke_invitation(&mut tx, actor.org_id, id)
        .await?
        .ok_or(ApiError::NotFound("invitation"))?;
    let change = Change::new("invitation.revoked", "invitation", id)
        .before(serde_json::json!({ "email": row.email, "role": row.role }));
    audit::record_by(&mut tx, &actor, change).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller, if the request carries credentials (which must then be valid).
pub struct MaybeActor(pub Option<Actor>);

impl FromRequestParts<AppState> for MaybeActor {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if parts.headers.contains_key(AUTHORIZATION)
            || crate::auth::has_session_cookie(parts, state)
        {
            Actor::from_request_parts(parts, state)
                .await
                .map(|a| Self(Some(a)))
        } else {
            Ok(Self(None))
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct AcceptRequest {
    pub token: String,
    /// Required for a new account (10 to 128 characters); ignored when logged in.
    pub password: Option<String>,
    /// For a new account.
    pub name: Option<String>,
}

/// Accepts an invitation: as the logged-in user whose email was invited, or as a new
/// user who sets a password. Answers tokens for a session in the organisation; a signed-in
/// console (session cookie) gets 204 and moves there with `/auth/console/switch`.
#[utoipa::path(
    post, path = "/invitations/accept", tag = "members",
    request_body = AcceptRequest,
    responses(
        (status = 200, description = "Joined; logged into the organisation", body = TokenResponse),
        (status = 204, description = "Joined, by a signed-in console session (no tokens)"),
        (status = 403, description = "Logged in as another email than the invited one; or, when mail is delivered, the signed-in address is not verified yet (`email_unverified`)", body = Problem),
        (status = 404, description = "Unknown, used, revoked or expired invitation", body = Problem),
        (status = 409, description = "The email has an account: log in first (`login_required`); or already a member (`already_member`)", body = Problem),
        (status = 422, description = "Password missing or invalid for a new account", body = Problem),
    ),
    security((), ("bearer" = []))
)]
#[tracing::instrument(skip_all)]
async fn accept_invitation(
    State(state): State<AppState>,
    MaybeActor(actor): MaybeActor,
    Json(body): Json<AcceptRequest>,
) -> ApiResult<axum::response::Response> {
    let delivers = mail::delivers(&state.config);
    let mut tx = state.pool.begin().await?;
    let invitation = db::orgs::open_invitation_for_update(&mut tx, &token_hash(body.token.trim()))
        .await?
        .ok_or(ApiError::NotFound("invitation"))?;
    let role = invitation.role;
    let existing = db::users::find_by_email(&mut tx, &invitation.email).await?;
    let user_id = match (&actor, existing) {
        (Some(actor), existing) => {
            let Some(actor_user) = actor.user_id() else {
                return Err(ApiError::Forbidden(
                    "an API key cannot accept an invitation",
                ));
            };
            let Some(user) = existing.filter(|u| u.id == actor_user) else {
                return Err(ApiError::Forbidden(
                    "this invitation is for another email address",
                ));
            };
            if delivers && user.email_verified_at.is_none() {
                return Err(ApiError::coded(
                    StatusCode::FORBIDDEN,
                    "email_unverified",
                    "verify your email address first (see your inbox, or ask for a new link)",
                ));
            }
            actor_user
        }
        (None, Some(_)) => {
            return Err(ApiError::conflict(
                "login_required",
                "an account with this email exists: log in, then accept the invitation",
            ));
        }
        (None, None) => {
            let mut errors = Errors::default();
            let password = errors.required("password", body.password, Password::parse);
            let name = errors.check("name", accounts::parse_name(body.name.as_deref()));
            errors.into_result()?;
            let (Some(password), Some(name)) = (password, name) else {
                return Err(ApiError::Internal(anyhow::anyhow!(
                    "validated fields missing"
                )));
            };
            let hash = accounts::hash_password(&state.passwords, password).await?;
            let id = Uuid::new_v4();
            db::users::insert(&mut tx, id, &invitation.email, &hash, &name)
                .await
                .map_err(ApiError::conflict_on_unique(
                    "login_required",
                    "an account with this email exists: log in, then accept the invitation",
                ))?;
            if delivers {
                // The token came by mail to this address: that proves it.
                db::users::set_verified(&mut tx, id).await?;
            }
            id
        }
    };
    if db::orgs::member_role_for_update(&mut tx, invitation.org_id, user_id)
        .await?
        .is_some()
    {
        return Err(ApiError::conflict(
            "already_member",
            "you are already a member of this organization",
        ));
    }
    db::orgs::add_member(&mut tx, invitation.org_id, user_id, role).await?;
    db::orgs::mark_invitation_accepted(&mut tx, invitation.id).await?;
    let new_member = accounts::user_actor(user_id, invitation.org_id, role, &invitation.email);
    let change = Change::new("member.joined", "user", user_id).after(serde_json::json!({
        "role": role,
        "invitation_id": invitation.id,
        "invited_by": invitation.invited_by,
    }));
    audit::record_by(&mut tx, &new_member, change).await?;
    let browser = actor.as_ref().is_some_and(|a| {
        matches!(
            a.principal,
            crate::auth::Principal::User { browser: true, .. }
        )
    });
    if browser {
        // The console moves to the organisation with /auth/console/switch.
        tx.commit().await?;
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let tokens = accounts::session::start(&mut tx, &state, user_id, invitation.org_id).await?;
    tx.commit().await?;
    Ok(NoStore(axum::Json(TokenResponse::from(tokens))).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_owners_touch_the_owner_role_and_admins_manage_the_rest() {
        use Role::*;
        let cases = [
            (Owner, Some(Viewer), Owner, true, "owner promotes to owner"),
            (Owner, Some(Owner), Admin, true, "owner demotes an owner"),
            (
                Admin,
                Some(Viewer),
                Owner,
                false,
                "admin cannot make owners",
            ),
            (
                Admin,
                Some(Owner),
                Viewer,
                false,
                "admin cannot demote owners",
            ),
            (Admin, Some(Editor), Admin, true, "admin promotes to admin"),
            (Admin, Some(Admin), Viewer, true, "admin demotes an admin"),
            (Admin, None, Editor, true, "admin invites an editor"),
            (Admin, None, Owner, false, "admin cannot invite an owner"),
            (Editor, Some(Viewer), Editor, false, "editors manage nobody"),
            (Viewer, None, Viewer, false, "viewers manage nobody"),
        ];
        for (actor, current, new, allowed, why) in cases {
            assert_eq!(may_assign(actor, current, new), allowed, "{why}");
        }
    }
}
