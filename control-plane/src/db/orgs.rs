//! Organisations, memberships (who has which role where) and invitations.

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::Role;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OrgRow {
    pub id: Uuid,
    pub name: String,
    pub created_at: OffsetDateTime,
}

/// One of a user's organisations, with their role there.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserOrgRow {
    pub id: Uuid,
    pub name: String,
    pub role: Role,
}

/// A member of an organisation.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MemberRow {
    pub user_id: Uuid,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub joined_at: OffsetDateTime,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InvitationRow {
    pub id: Uuid,
    pub org_id: Uuid,
    pub email: String,
    pub role: Role,
    pub invited_by: Option<Uuid>,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

#[tracing::instrument(skip(conn))]
pub async fn insert(conn: &mut PgConnection, id: Uuid, name: &str) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO organizations (id, name) VALUES ($1, $2)")
        .bind(id)
        .bind(name)
        .execute(conn)
        .await?;
    Ok(())
}

#[tracing::instrument(skip(conn))]
pub async fn find(conn: &mut PgConnection, id: Uuid) -> Result<Option<OrgRow>, sqlx::Error> {
    sqlx::query_as::<_, OrgRow>("SELECT id, name, created_at FROM organizations WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await
}

#[tracing::instrument(skip(conn))]
pub async fn add_member(
    conn: &mut PgConnection,
    org_id: Uuid,
    user_id: Uuid,
    role: Role,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO memberships (org_id, user_id, role) VALUES ($1, $2, $3)")
        .bind(org_id)
        .bind(user_id)
        .bind(role)
        .execute(conn)
        .await?;
    Ok(())
}

/// The user's organisations, oldest membership first (the default org at login).
#[tracing::instrument(skip(conn))]
pub async fn orgs_of_user(
    conn: &mut PgConnection,
    user_id: Uuid,
) -> Result<Vec<UserOrgRow>, sqlx::Error> {
    sqlx::query_as::<_, UserOrgRow>(
        "SELECT o.id, o.name, m.role
           FROM memberships m JOIN organizations o ON o.id = m.org_id
          WHERE m.user_id = $1
          ORDER BY m.created_at, o.id",
    )
    .bind(user_id)
    .fetch_all(conn)
    .await
}

/// The user's role in the organisation, locking the membership row for the transaction.
#[tracing::instrument(skip(conn))]
pub async fn member_role_for_update(
    conn: &mut PgConnection,
    org_id: Uuid,
    user_id: Uuid,
) -> Result<Option<Role>, sqlx::Error> {
    sqlx::query_scalar("SELECT role FROM memberships WHERE org_id = $1 AND user_id = $2 FOR UPDATE")
        .bind(org_id)
        .bind(user_id)
        .fetch_optional(conn)
        .await
}

#[tracing::instrument(skip(conn))]
pub async fn members(conn: &mut PgConnection, org_id: Uuid) -> Result<Vec<MemberRow>, sqlx::Error> {
    sqlx::query_as::<_, MemberRow>(
        "SELECT u.id AS user_id, u.email, u.name, m.role, m.created_at AS joined_at
           FROM memberships m JOIN users u ON u.id = m.user_id
          WHERE m.org_id = $1
          ORDER BY m.created_at, u.email",
    )
    .bind(org_id)
    .fetch_all(conn)
    .await
}

/// Locks the organisation's owner memberships and counts them. Every change that could
/// remove an owner takes this lock first, so two concurrent demotions cannot both pass
/// a "there is another owner" check.
#[tracing::instrument(skip(conn))]
pub async fn lock_and_count_owners(
    conn: &mut PgConnection,
    org_id: Uuid,
) -> Result<i64, sqlx::Error> {
    // Row locks on the owners alone would not stop a concurrent promotion-then-demotion
    // pair; a transaction advisory lock per org serialises all owner changes.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('owners:' || $1::text, 0))")
        .bind(org_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query_scalar("SELECT count(*) FROM memberships WHERE org_id = $1 AND role = 'owner'")
        .bind(org_id)
        .fetch_one(conn)
        .await
}

#[tracing::instrument(skip(conn))]
pub async fn set_role(
    conn: &mut PgConnection,
    org_id: Uuid,
    user_id: Uuid,
    role: Role,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE memberships SET role = $3 WHERE org_id = $1 AND user_id = $2")
        .bind(org_id)
        .bind(user_id)
        .bind(role)
        .execute(conn)
        .await?;
    Ok(())
}

/// Removes the membership and ends the user's sessions in that organisation.
#[tracing::instrument(skip(conn))]
pub async fn remove_member(
    conn: &mut PgConnection,
    org_id: Uuid,
    user_id: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM memberships WHERE org_id = $1 AND user_id = $2")
        .bind(org_id)
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "UPDATE auth_sessions SET revoked_at = now(), revoked_reason = 'membership_removed'
          WHERE org_id = $1 AND user_id = $2 AND revoked_at IS NULL",
    )
    .bind(org_id)
    .bind(user_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Creates an invitation, replacing (revoking) any open one for the same email.
#[tracing::instrument(skip(conn, token_hash))]
#[allow(clippy::too_many_arguments)]
pub async fn insert_invitation(
    conn: &mut PgConnection,
    id: Uuid,
    org_id: Uuid,
    email: &str,
    role: Role,
    token_hash: &[u8],
    invited_by: Option<Uuid>,
    expires_at: OffsetDateTime,
) -> Result<InvitationRow, sqlx::Error> {
    sqlx::query(
        "UPDATE invitations SET revoked_at = now()
          WHERE org_id = $1 AND email = $2 AND accepted_at IS NULL AND revoked_at IS NULL",
    )
    .bind(org_id)
    .bind(email)
    .execute(&mut *conn)
    .await?;
    sqlx::query_as::<_, InvitationRow>(
        "INSERT INTO invitations (id, org_id, email, role, token_hash, invited_by, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         RETURNING id, org_id, email, role, invited_by, created_at, expires_at",
    )
    .bind(id)
    .bind(org_id)
    .bind(email)
    .bind(role)
    .bind(token_hash)
    .bind(invited_by)
    .bind(expires_at)
    .fetch_one(conn)
    .await
}

/// The open, unexpired invitation with this token hash, locked for acceptance.
#[tracing::instrument(skip_all)]
pub async fn open_invitation_for_update(
    conn: &mut PgConnection,
    token_hash: &[u8],
) -> Result<Option<InvitationRow>, sqlx::Error> {
    sqlx::query_as::<_, InvitationRow>(
        "SELECT id, org_id, email, role, invited_by, created_at, expires_at
           FROM invitations
          WHERE token_hash = $1 AND accepted_at IS NULL AND revoked_at IS NULL
            AND expires_at > now()
          FOR UPDATE",
    )
    .bind(token_hash)
    .fetch_optional(conn)
    .await
}

#[tracing::instrument(skip(conn))]
pub async fn mark_invitation_accepted(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE invitations SET accepted_at = now() WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Open (not accepted, revoked or expired) invitations of the organisation.
#[tracing::instrument(skip(conn))]
pub async fn open_invitations(
    conn: &mut PgConnection,
    org_id: Uuid,
) -> Result<Vec<InvitationRow>, sqlx::Error> {
    sqlx::query_as::<_, InvitationRow>(
        "SELECT id, org_id, email, role, invited_by, created_at, expires_at
           FROM invitations
          WHERE org_id = $1 AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > now()
          ORDER BY created_at DESC",
    )
    .bind(org_id)
    .fetch_all(conn)
    .await
}

/// Revokes an open invitation of the organisation; returns it if there was one.
#[tracing::instrument(skip(conn))]
pub async fn revoke_invitation(
    conn: &mut PgConnection,
    org_id: Uuid,
    id: Uuid,
) -> Result<Option<InvitationRow>, sqlx::Error> {
    sqlx::query_as::<_, InvitationRow>(
        "UPDATE invitations SET revoked_at = now()
          WHERE org_id = $1 AND id = $2 AND accepted_at IS NULL AND revoked_at IS NULL
          RETURNING id, org_id, email, role, invited_by, created_at, expires_at",
    )
    .bind(org_id)
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Revokes the open invitations `person` sent in the organisation (themselves or through
/// one of their keys), except those whose role is in `keep`. Returns how many.
#[tracing::instrument(skip(conn))]
pub async fn revoke_invitations_by(
    conn: &mut PgConnection,
    org_id: Uuid,
    person: Uuid,
    keep: &[&str],
) -> Result<u64, sqlx::Error> {
    let keep: Vec<String> = keep.iter().map(|r| (*r).to_owned()).collect();
    Ok(sqlx::query(
        "UPDATE invitations SET revoked_at = now()
          WHERE org_id = $1 AND invited_by = $2 AND accepted_at IS NULL AND revoked_at IS NULL
            AND NOT (role = ANY($3))",
    )
    .bind(org_id)
    .bind(person)
    .bind(keep)
    .execute(conn)
    .await?
    .rows_affected())
}
