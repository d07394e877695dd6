//! Every statement the SQLite store runs, each with the function that binds and runs it.
//!
//! Statements are `&'static str` built with `concat!`, so none is assembled at run time (only the
//! group-commit batch repeats [`SWAP`]). Functions that run one statement take any executor (the pool, or
//! the connection of a transaction); those that run several take the pool.

use sqlx::SqliteExecutor;
use sqlx::query::{Query, QueryAs};
use sqlx::sqlite::{Sqlite, SqliteArguments, SqlitePool};

use super::backend;
use super::rows::{
    FamilyRow, FamilyState, FamilyStateRow, TokenRow, UserDenialRow, family_columns,
};
use crate::store::{
    AccessDenials, Family, NewFamily, PurgeReport, RevokeReason, Rotation, StoreError, TokenHash,
    UserDenial,
};

type FamilyQuery<'q> = QueryAs<'q, Sqlite, FamilyRow, SqliteArguments>;

/// The compare-and-swap of a rotation, one statement (see [`bind_swap`] for its parameters): installs the
/// successor (and the rotating request's fingerprint, resetting the retry count) if the presented token is
/// its family's current one, the family belongs to the client, is live and is bound to no DPoP key or to
/// the request's, and returns the rotated family's row. The trigger records the successor's hash in the same
/// statement.
///
/// The parameters are anonymous (`?`), so that several swaps can share one query string, and so one trip
/// to the connection's thread: sqlx numbers anonymous parameters on from the previous statement's.
pub(super) const SWAP: &str = concat!(
    "UPDATE token_families SET generation = generation + 1, last_used_at = ?, \
     idle_expires_at = MIN(? + ?, absolute_expires_at), current_hash = ?, rotation_salt = ?, \
     rotation_fingerprint = ?, retries = 0 \
     WHERE (id, generation) = (SELECT family_id, generation FROM refresh_tokens WHERE hash = ?) \
     AND client_id = ? AND revoked_at IS NULL AND ? < idle_expires_at AND ? < absolute_expires_at \
     AND (dpop_jkt IS NULL OR dpop_jkt = ?) \
     RETURNING ",
    family_columns!(),
    ";"
);

/// Binds the parameters of a [`SWAP`], in their order in the statement.
pub(super) fn bind_swap<'q>(
    query: Query<'q, Sqlite, SqliteArguments>,
    rotation: &Rotation,
) -> Query<'q, Sqlite, SqliteArguments> {
    query
        .bind(rotation.now)
        .bind(rotation.now)
        .bind(rotation.idle_ttl)
        .bind(rotation.successor.as_bytes().as_slice())
        .bind(rotation.salt.as_bytes().as_slice())
        .bind(rotation.fingerprint.as_bytes().as_slice())
        .bind(rotation.presented.as_bytes().as_slice())
        .bind(rotation.client_id.as_str())
        .bind(rotation.now)
        .bind(rotation.now)
        .bind(rotation.dpop_jkt.as_deref())
}

/// Counts one more retry served for the family at `generation`, if it is still at that generation,
/// not revoked, and below `max_retries`; `false` otherwise (the caller reads the family again).
pub(super) async fn count_retry(
    db: impl SqliteExecutor<'_>,
    id: &str,
    generation: u64,
    max_retries: u32,
) -> Result<bool, StoreError> {
    let generation = i64::try_from(generation).unwrap_or(i64::MAX);
    let counted: Option<i64> = sqlx::query_scalar(
        "UPDATE token_families SET retries = retries + 1 \
         WHERE id = ?1 AND generation = ?2 AND retries < ?3 AND revoked_at IS NULL RETURNING retries",
    )
    .bind(id)
    .bind(generation)
    .bind(i64::from(max_retries))
    .fetch_optional(db)
    .await
    .map_err(backend)?;
    Ok(counted.is_some())
}

/// A family with its rotation state.
pub(super) async fn family_state(
    db: impl SqliteExecutor<'_>,
    id: &str,
) -> Result<Option<FamilyState>, StoreError> {
    const SQL: &str = concat!(
        "SELECT ",
        family_columns!(),
        ", rotation_salt, rotation_fingerprint, retries, current_hash FROM token_families WHERE id = ?1"
    );
    sqlx::query_as::<_, FamilyStateRow>(SQL)
        .bind(id)
        .fetch_optional(db)
        .await
        .map_err(backend)?
        .map(FamilyState::try_from)
        .transpose()
}

/// The family, generation and client of a recorded token.
pub(super) async fn token(
    db: impl SqliteExecutor<'_>,
    hash: TokenHash,
) -> Result<Option<TokenRow>, StoreError> {
    sqlx::query_as(
        "SELECT t.family_id, t.generation, f.client_id FROM refresh_tokens t \
         JOIN token_families f ON f.id = t.family_id WHERE t.hash = ?1",
    )
    .bind(hash.as_bytes().as_slice())
    .fetch_optional(db)
    .await
    .map_err(backend)
}

/// The family a token of any generation belongs to.
pub(super) async fn family_by_token(
    db: impl SqliteExecutor<'_>,
    hash: TokenHash,
) -> Result<Option<Family>, StoreError> {
    const SQL: &str = concat!(
        "SELECT ",
        family_columns!(),
        " FROM token_families WHERE id = (SELECT family_id FROM refresh_tokens WHERE hash = ?1)"
    );
    let row: Option<FamilyRow> = sqlx::query_as(SQL)
        .bind(hash.as_bytes().as_slice())
        .fetch_optional(db)
        .await
        .map_err(backend)?;
    row.map(Family::try_from).transpose()
}

/// A user's live families, oldest first.
pub(super) async fn live_families(
    db: impl SqliteExecutor<'_>,
    user_id: &str,
    now: i64,
) -> Result<Vec<Family>, StoreError> {
    const SQL: &str = concat!(
        "SELECT ",
        family_columns!(),
        " FROM token_families WHERE user_id = ?1 AND revoked_at IS NULL \
         AND ?2 < idle_expires_at AND ?2 < absolute_expires_at ORDER BY created_at, id"
    );
    families(db, sqlx::query_as(SQL).bind(user_id).bind(now)).await
}

/// Which families a revocation is for.
#[derive(Debug, Clone, Copy)]
pub(super) enum Revoke<'a> {
    /// The family with this id.
    Family(&'a str),
    /// Every family of this user.
    User(&'a str),
}

/// Revokes the not-yet-revoked families `which` names; returns those it revoked.
pub(super) async fn revoke(
    db: impl SqliteExecutor<'_>,
    which: Revoke<'_>,
    reason: RevokeReason,
    now: i64,
) -> Result<Vec<Family>, StoreError> {
    const BY_ID: &str = concat!(
        "UPDATE token_families SET revoked_at = ?1, revoke_reason = ?2 \
         WHERE id = ?3 AND revoked_at IS NULL RETURNING ",
        family_columns!()
    );
    const BY_USER: &str = concat!(
        "UPDATE token_families SET revoked_at = ?1, revoke_reason = ?2 \
         WHERE user_id = ?3 AND revoked_at IS NULL RETURNING ",
        family_columns!()
    );
    let (sql, key) = match which {
        Revoke::Family(id) => (BY_ID, id),
        Revoke::User(user_id) => (BY_USER, user_id),
    };
    families(
        db,
        sqlx::query_as(sql)
            .bind(now)
            .bind(reason.as_str())
            .bind(key),
    )
    .await
}

/// How many live families the user has for the client.
pub(super) async fn count_live(
    db: impl SqliteExecutor<'_>,
    new: &NewFamily,
) -> Result<i64, StoreError> {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM token_families WHERE user_id = ?1 AND client_id = ?2 \
         AND revoked_at IS NULL AND ?3 < idle_expires_at AND ?3 < absolute_expires_at",
    )
    .bind(new.user_id.as_str())
    .bind(new.client_id.as_str())
    .bind(new.created_at)
    .fetch_one(db)
    .await
    .map_err(backend)
}

/// Revokes the `count` oldest live families of the user for the client ([`RevokeReason::Evicted`]).
pub(super) async fn evict_oldest(
    db: impl SqliteExecutor<'_>,
    new: &NewFamily,
    count: i64,
) -> Result<Vec<Family>, StoreError> {
    const SQL: &str = concat!(
        "UPDATE token_families SET revoked_at = ?3, revoke_reason = ?5 WHERE id IN (\
         SELECT id FROM token_families WHERE user_id = ?1 AND client_id = ?2 AND revoked_at IS NULL \
         AND ?3 < idle_expires_at AND ?3 < absolute_expires_at ORDER BY created_at, id LIMIT ?4) \
         RETURNING ",
        family_columns!()
    );
    families(
        db,
        sqlx::query_as(SQL)
            .bind(new.user_id.as_str())
            .bind(new.client_id.as_str())
            .bind(new.created_at)
            .bind(count)
            .bind(RevokeReason::Evicted.as_str()),
    )
    .await
}

/// Inserts a family at generation 0; its trigger records the first token.
pub(super) async fn insert_family(
    db: impl SqliteExecutor<'_>,
    new: &NewFamily,
) -> Result<(), StoreError> {
    let roles =
        serde_json::to_string(&new.roles).map_err(|error| StoreError::Backend(Box::new(error)))?;
    sqlx::query(
        "INSERT INTO token_families (id, user_id, client_id, scope, roles, user_agent, generation, \
         current_hash, created_at, last_used_at, absolute_expires_at, idle_expires_at, dpop_jkt) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7, ?8, ?8, ?9, MIN(?10, ?9), ?11)",
    )
    .bind(new.id.as_str())
    .bind(new.user_id.as_str())
    .bind(new.client_id.as_str())
    .bind(new.scope.as_deref())
    .bind(roles)
    .bind(new.user_agent.as_deref())
    .bind(new.token.as_bytes().as_slice())
    .bind(new.created_at)
    .bind(new.absolute_expires_at)
    .bind(new.idle_expires_at)
    .bind(new.dpop_jkt.as_deref())
    .execute(db)
    .await
    .map_err(backend)?;
    Ok(())
}

/// Records a revoked access token, keeping the later expiry.
pub(super) async fn deny_access_token(
    db: impl SqliteExecutor<'_>,
    jti: &str,
    expires_at: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO revoked_access_tokens (jti, expires_at) VALUES (?1, ?2) \
         ON CONFLICT (jti) DO UPDATE SET expires_at = MAX(expires_at, excluded.expires_at)",
    )
    .bind(jti)
    .bind(expires_at)
    .execute(db)
    .await
    .map_err(backend)?;
    Ok(())
}

/// Records a per-user revocation, keeping the later bounds.
pub(super) async fn deny_user_tokens(
    db: impl SqliteExecutor<'_>,
    denial: &UserDenial,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO revoked_user_tokens (user_id, issued_before, until) VALUES (?1, ?2, ?3) \
         ON CONFLICT (user_id) DO UPDATE SET \
         issued_before = MAX(issued_before, excluded.issued_before), until = MAX(until, excluded.until)",
    )
    .bind(denial.user_id.as_str())
    .bind(denial.issued_before)
    .bind(denial.until)
    .execute(db)
    .await
    .map_err(backend)?;
    Ok(())
}

/// The access-token revocations in force at `now`.
pub(super) async fn access_denials(db: &SqlitePool, now: i64) -> Result<AccessDenials, StoreError> {
    let tokens =
        sqlx::query_as("SELECT jti, expires_at FROM revoked_access_tokens WHERE expires_at > ?1")
            .bind(now)
            .fetch_all(db)
            .await
            .map_err(backend)?;
    let users: Vec<UserDenialRow> = sqlx::query_as(
        "SELECT user_id, issued_before, until FROM revoked_user_tokens WHERE until > ?1",
    )
    .bind(now)
    .fetch_all(db)
    .await
    .map_err(backend)?;
    Ok(AccessDenials {
        tokens,
        users: users.into_iter().map(UserDenial::from).collect(),
    })
}

/// One purge batch (see [`RefreshStore::purge_expired`](crate::store::RefreshStore::purge_expired)).
pub(super) async fn purge(
    db: &SqlitePool,
    now: i64,
    batch: usize,
) -> Result<PurgeReport, StoreError> {
    const TOKENS: &str = "DELETE FROM refresh_tokens WHERE hash IN (SELECT t.hash FROM token_families f \
         JOIN refresh_tokens t ON t.family_id = f.id WHERE f.idle_expires_at <= ?1 LIMIT ?2)";
    const FAMILIES: &str = "DELETE FROM token_families WHERE id IN (SELECT f.id FROM token_families f \
         WHERE f.idle_expires_at <= ?1 \
         AND NOT EXISTS (SELECT 1 FROM refresh_tokens t WHERE t.family_id = f.id) LIMIT ?2)";
    const ACCESS_DENIALS: &str = "DELETE FROM revoked_access_tokens WHERE jti IN \
         (SELECT jti FROM revoked_access_tokens WHERE expires_at <= ?1 LIMIT ?2)";
    const USER_DENIALS: &str = "DELETE FROM revoked_user_tokens WHERE user_id IN \
         (SELECT user_id FROM revoked_user_tokens WHERE until <= ?1 LIMIT ?2)";
    let limit = i64::try_from(batch).unwrap_or(i64::MAX);
    let delete = |sql: &'static str, limit: i64| async move {
        sqlx::query(sql)
            .bind(now)
            .bind(limit)
            .execute(db)
            .await
            .map(|done| done.rows_affected())
            .map_err(backend)
    };
    let tokens = delete(TOKENS, limit).await?;
    let families = delete(FAMILIES, limit).await?;
    let mut denials = delete(ACCESS_DENIALS, limit).await?;
    denials += delete(
        USER_DENIALS,
        limit - i64::try_from(denials).unwrap_or(limit),
    )
    .await?;
    Ok(PurgeReport {
        tokens,
        families,
        denials,
    })
}

/// Runs a query returning family rows and converts them.
async fn families(
    db: impl SqliteExecutor<'_>,
    query: FamilyQuery<'_>,
) -> Result<Vec<Family>, StoreError> {
    query
        .fetch_all(db)
        .await
        .map_err(backend)?
        .into_iter()
        .map(Family::try_from)
        .collect()
}
