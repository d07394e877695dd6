//! Every statement the PostgreSQL store runs, each with the function that binds and runs it. The rows they
//! return are `store::rows`, shared with SQLite.
//!
//! Every statement is correct under READ COMMITTED with any number of instances: a swap is one `UPDATE …
//! WHERE generation = <presented>` (PostgreSQL re-checks the condition on the row a concurrent writer left,
//! so of concurrent swaps one applies); upserts (`INSERT … ON CONFLICT DO UPDATE`) lock the row they
//! update; the few decisions that read before they write take a lock first.

use sqlx::postgres::{PgConnection, PgPool};
use sqlx::{Executor as _, PgExecutor};

use crate::store::rows::{
    DenialRow, FamilyRow, FamilyState, FamilyStateRow, KeyRow, TokenRow, denial_batch,
    family_columns,
};
use crate::store::{
    Denial, DenialBatch, Family, LoginAttempt, NewFamily, OnceKey, PurgeReport, Revoke,
    RevokeReason, StoreError, StoredKey, ThrottleKey, ThrottleRule, TokenHash, duplicate_kid,
    sqlx_error as backend,
};

/// A family with its rotation state.
pub(super) async fn family_state(
    db: impl PgExecutor<'_>,
    id: &str,
) -> Result<Option<FamilyState>, StoreError> {
    const SQL: &str = concat!(
        "SELECT ",
        family_columns!(),
        ", rotation_salt, current_hash FROM token_families WHERE id = $1"
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
    db: impl PgExecutor<'_>,
    hash: TokenHash,
) -> Result<Option<TokenRow>, StoreError> {
    sqlx::query_as(
        "SELECT t.family_id, t.generation, f.client_id FROM refresh_tokens t \
         JOIN token_families f ON f.id = t.family_id WHERE t.hash = $1",
    )
    .bind(hash.as_bytes().as_slice())
    .fetch_optional(db)
    .await
    .map_err(backend)
}

/// The family a token of any generation belongs to.
pub(super) async fn family_by_token(
    db: impl PgExecutor<'_>,
    hash: TokenHash,
) -> Result<Option<Family>, StoreError> {
    const SQL: &str = concat!(
        "SELECT ",
        family_columns!(),
        " FROM token_families WHERE id = (SELECT family_id FROM refresh_tokens WHERE hash = $1)"
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
    db: impl PgExecutor<'_>,
    user_id: &str,
    now: i64,
) -> Result<Vec<Family>, StoreError> {
    const SQL: &str = concat!(
        "SELECT ",
        family_columns!(),
        " FROM token_families WHERE user_id = $1 AND revoked_at IS NULL \
         AND $2 < idle_expires_at AND $2 < absolute_expires_at ORDER BY created_at, id"
    );
    families(db, sqlx::query_as(SQL).bind(user_id).bind(now)).await
}

/// Which families a revocation is for.
#[derive(Debug, Clone, Copy)]
pub(super) enum Which<'a> {
    /// The family with this id.
    Family(&'a str),
    /// Every family of this user.
    User(&'a str),
}

/// Revokes the not-yet-revoked families `which` names; returns those it revoked. The caller denies their
/// access tokens in the same transaction.
pub(super) async fn revoke(
    db: impl PgExecutor<'_>,
    which: Which<'_>,
    revoke: &Revoke,
) -> Result<Vec<Family>, StoreError> {
    const BY_ID: &str = concat!(
        "UPDATE token_families SET revoked_at = $1, revoke_reason = $2 \
         WHERE id = $3 AND revoked_at IS NULL RETURNING ",
        family_columns!()
    );
    const BY_USER: &str = concat!(
        "UPDATE token_families SET revoked_at = $1, revoke_reason = $2 \
         WHERE user_id = $3 AND revoked_at IS NULL RETURNING ",
        family_columns!()
    );
    let (sql, key) = match which {
        Which::Family(id) => (BY_ID, id),
        Which::User(user_id) => (BY_USER, user_id),
    };
    families(
        db,
        sqlx::query_as(sql)
            .bind(revoke.now)
            .bind(revoke.reason.as_str())
            .bind(key),
    )
    .await
}

/// Serializes the logins of one user on one client, so that the cap is counted and enforced as if they
/// came one after another. Inside the login's transaction.
pub(super) async fn lock_user_client(
    tx: &mut PgConnection,
    new: &NewFamily,
) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1 || chr(1) || $2, 7))")
        .bind(new.user_id.as_str())
        .bind(new.client_id.as_str())
        .execute(tx)
        .await
        .map_err(backend)?;
    Ok(())
}

/// How many live families the user has for the client.
pub(super) async fn count_live(
    db: impl PgExecutor<'_>,
    new: &NewFamily,
) -> Result<i64, StoreError> {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM token_families WHERE user_id = $1 AND client_id = $2 \
         AND revoked_at IS NULL AND $3 < idle_expires_at AND $3 < absolute_expires_at",
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
    db: impl PgExecutor<'_>,
    new: &NewFamily,
    count: i64,
) -> Result<Vec<Family>, StoreError> {
    const SQL: &str = concat!(
        "UPDATE token_families SET revoked_at = $3, revoke_reason = $5 WHERE id IN (\
         SELECT id FROM token_families WHERE user_id = $1 AND client_id = $2 AND revoked_at IS NULL \
         AND $3 < idle_expires_at AND $3 < absolute_expires_at ORDER BY created_at, id LIMIT $4) \
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

/// Inserts a family at generation 0 and records its first token, in one statement.
pub(super) async fn insert_family(
    db: impl PgExecutor<'_>,
    new: &NewFamily,
) -> Result<(), StoreError> {
    let roles =
        serde_json::to_string(&new.roles).map_err(|error| StoreError::Backend(Box::new(error)))?;
    sqlx::query(
        "WITH family AS (INSERT INTO token_families (id, user_id, client_id, scope, roles, user_agent, \
         generation, current_hash, created_at, last_used_at, absolute_expires_at, idle_expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $8, $8, $9, LEAST($10, $9)) \
         RETURNING id, current_hash, generation) \
         INSERT INTO refresh_tokens (hash, family_id, generation) \
         SELECT current_hash, id, generation FROM family",
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
    .execute(db)
    .await
    .map_err(backend)?;
    Ok(())
}

/// Records a denial under the next sequence number, keeping the later bounds of an existing one. Call it
/// inside a transaction: the sequence row stays locked until the commit, so numbers become visible in
/// order.
pub(super) async fn deny(tx: &mut PgConnection, denial: &Denial) -> Result<(), StoreError> {
    let (kind, key) = denial.key();
    sqlx::query(
        "WITH next AS (UPDATE denial_sequence SET last = last + 1 RETURNING last) \
         INSERT INTO access_denials AS d (kind, key, issued_before, until, seq) \
         SELECT $1, $2, $3, $4, last FROM next \
         ON CONFLICT (kind, key) DO UPDATE SET \
         issued_before = GREATEST(d.issued_before, excluded.issued_before), \
         until = GREATEST(d.until, excluded.until), seq = excluded.seq \
         WHERE excluded.issued_before > d.issued_before OR excluded.until > d.until",
    )
    .bind(kind.as_str())
    .bind(key)
    .bind(denial.issued_before())
    .bind(denial.until)
    .execute(tx)
    .await
    .map_err(backend)?;
    Ok(())
}

/// Tells every instance listening on `channel` that denials or keys changed, at the commit of the
/// transaction it runs in.
pub(super) async fn notify(tx: &mut PgConnection, channel: &str) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_notify($1, 'changed')")
        .bind(channel)
        .execute(tx)
        .await
        .map_err(backend)?;
    Ok(())
}

/// The denials in force at `now` written after `after`, oldest write first.
pub(super) async fn denials_after(
    db: &PgPool,
    after: u64,
    now: i64,
    limit: usize,
) -> Result<DenialBatch, StoreError> {
    #[derive(sqlx::FromRow)]
    struct Row {
        seq: i64,
        #[sqlx(flatten)]
        denial: DenialRow,
    }
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT seq, kind, key, issued_before, until FROM access_denials \
         WHERE seq > $1 AND until > $2 ORDER BY seq LIMIT $3",
    )
    .bind(i64::try_from(after).unwrap_or(i64::MAX))
    .bind(now)
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(db)
    .await
    .map_err(backend)?;
    denial_batch(
        rows.into_iter().map(|row| (row.seq, row.denial)).collect(),
        after,
        limit,
    )
}

/// The attempt a reservation counts: the next within the window (`$3`) of the last one, else the first.
macro_rules! throttle_attempts {
    () => {
        "CASE WHEN t.last_attempt_at + $3 > $2 THEN t.attempts + 1 ELSE 1 END"
    };
}

/// Until when attempt number `n` at `$2` locks the key: from attempt `$4` on, `$5` doubled per attempt up
/// to `$6`; 0 (not locked) before.
macro_rules! throttle_lock {
    ($($n:tt)*) => {
        concat!(
            "CASE WHEN (", $($n)*, ") >= $4 THEN $2 + LEAST($6, $5 << LEAST((", $($n)*,
            ") - $4, 30)::integer) ELSE 0 END"
        )
    };
}

/// The throttle's reservation as one statement (see [`ThrottleRule::reserve`], which it mirrors): counts
/// the attempt unless the key is locked, and returns the new `locked_until` if it did.
const RESERVE_LOGIN: &str = concat!(
    "INSERT INTO login_throttle AS t (key, attempts, last_attempt_at, locked_until, forget_at) \
     VALUES ($1, 1, $2, ",
    throttle_lock!("1::bigint"),
    ", GREATEST($2 + $3, ",
    throttle_lock!("1::bigint"),
    ")) ON CONFLICT (key) DO UPDATE SET attempts = ",
    throttle_attempts!(),
    ", last_attempt_at = $2, locked_until = ",
    throttle_lock!(throttle_attempts!()),
    ", forget_at = GREATEST($2 + $3, ",
    throttle_lock!(throttle_attempts!()),
    ") WHERE t.locked_until <= $2 RETURNING locked_until"
);

/// Reserves a login attempt.
pub(super) async fn reserve_login(
    db: &PgPool,
    key: &ThrottleKey,
    rule: &ThrottleRule,
    now: i64,
) -> Result<LoginAttempt, StoreError> {
    let counted: Option<i64> = sqlx::query_scalar(RESERVE_LOGIN)
        .bind(key.as_bytes().as_slice())
        .bind(now)
        .bind(rule.window)
        .bind(i64::from(rule.lock_after))
        .bind(rule.base_delay)
        .bind(rule.max_delay)
        .fetch_optional(db)
        .await
        .map_err(backend)?;
    if counted.is_some() {
        return Ok(LoginAttempt::Allowed);
    }
    let locked_until: Option<i64> =
        sqlx::query_scalar("SELECT locked_until FROM login_throttle WHERE key = $1")
            .bind(key.as_bytes().as_slice())
            .fetch_optional(db)
            .await
            .map_err(backend)?;
    Ok(LoginAttempt::Locked {
        retry_after: locked_until.map_or(1, |until| (until - now).max(1)),
    })
}

/// Forgets a key's attempts.
pub(super) async fn clear_login(db: &PgPool, key: &ThrottleKey) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM login_throttle WHERE key = $1")
        .bind(key.as_bytes().as_slice())
        .execute(db)
        .await
        .map_err(backend)?;
    Ok(())
}

/// Records a one-time value; whether this was its first use.
pub(super) async fn use_once(
    db: &PgPool,
    key: &OnceKey,
    expires_at: i64,
    now: i64,
) -> Result<bool, StoreError> {
    let first: Option<i32> = sqlx::query_scalar(
        "INSERT INTO one_time_values AS o (key, expires_at) VALUES ($1, $2) \
         ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at \
         WHERE o.expires_at <= $3 RETURNING 1",
    )
    .bind(key.as_bytes().as_slice())
    .bind(expires_at)
    .bind(now)
    .fetch_optional(db)
    .await
    .map_err(backend)?;
    Ok(first.is_some())
}

/// Every signing key, by activation.
pub(super) async fn signing_keys(db: impl PgExecutor<'_>) -> Result<Vec<StoredKey>, StoreError> {
    let rows: Vec<KeyRow> = sqlx::query_as(
        "SELECT kid, algorithm, material, created_at, active_from FROM signing_keys \
         ORDER BY active_from, kid",
    )
    .fetch_all(db)
    .await
    .map_err(backend)?;
    rows.into_iter().map(StoredKey::try_from).collect()
}

/// Adds a signing key unless `only_if_none` and one exists, under a lock on the table that excludes the
/// other instances doing the same; every key afterwards, and whether it added.
pub(super) async fn add_signing_key(
    tx: &mut PgConnection,
    key: &StoredKey,
    only_if_none: bool,
) -> Result<(Vec<StoredKey>, bool), StoreError> {
    tx.execute("LOCK TABLE signing_keys IN SHARE ROW EXCLUSIVE MODE")
        .await
        .map_err(backend)?;
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM signing_keys)")
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
    let add = !only_if_none || !exists;
    if add {
        let inserted = sqlx::query(
            "INSERT INTO signing_keys (kid, algorithm, material, created_at, active_from) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (kid) DO NOTHING",
        )
        .bind(key.kid.as_str())
        .bind(key.algorithm.as_str())
        .bind(key.material.as_slice())
        .bind(key.created_at)
        .bind(key.active_from)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        if inserted.rows_affected() == 0 {
            return Err(duplicate_kid(&key.kid));
        }
    }
    Ok((signing_keys(&mut *tx).await?, add))
}

/// Deletes a signing key; whether there was one.
pub(super) async fn remove_signing_key(
    tx: &mut PgConnection,
    kid: &str,
) -> Result<bool, StoreError> {
    let done = sqlx::query("DELETE FROM signing_keys WHERE kid = $1")
        .bind(kid)
        .execute(tx)
        .await
        .map_err(backend)?;
    Ok(done.rows_affected() > 0)
}

/// The shared secret `name`, stored from `candidate` if absent. A concurrent insert of another instance
/// is waited for, then read.
pub(super) async fn shared_secret(
    db: &PgPool,
    name: &str,
    candidate: &[u8],
) -> Result<Vec<u8>, StoreError> {
    sqlx::query(
        "INSERT INTO shared_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .bind(candidate)
    .execute(db)
    .await
    .map_err(backend)?;
    sqlx::query_scalar("SELECT value FROM shared_secrets WHERE name = $1")
        .bind(name)
        .fetch_one(db)
        .await
        .map_err(backend)
}

/// One purge batch (see [`RefreshStore::purge_expired`](crate::store::RefreshStore::purge_expired)).
pub(super) async fn purge(db: &PgPool, now: i64, batch: usize) -> Result<PurgeReport, StoreError> {
    const TOKENS: &str = "DELETE FROM refresh_tokens WHERE hash IN (SELECT t.hash FROM token_families f \
         JOIN refresh_tokens t ON t.family_id = f.id WHERE f.idle_expires_at <= $1 LIMIT $2)";
    const FAMILIES: &str = "DELETE FROM token_families WHERE id IN (SELECT f.id FROM token_families f \
         WHERE f.idle_expires_at <= $1 \
         AND NOT EXISTS (SELECT 1 FROM refresh_tokens t WHERE t.family_id = f.id) LIMIT $2)";
    const DENIALS: &str = "DELETE FROM access_denials WHERE (kind, key) IN \
         (SELECT kind, key FROM access_denials WHERE until <= $1 LIMIT $2)";
    const THROTTLE: &str = "DELETE FROM login_throttle WHERE key IN \
         (SELECT key FROM login_throttle WHERE forget_at <= $1 LIMIT $2)";
    const ONE_TIME: &str = "DELETE FROM one_time_values WHERE key IN \
         (SELECT key FROM one_time_values WHERE expires_at <= $1 LIMIT $2)";
    let limit = i64::try_from(batch).unwrap_or(i64::MAX);
    let delete = |sql: &'static str| async move {
        sqlx::query(sql)
            .bind(now)
            .bind(limit)
            .execute(db)
            .await
            .map(|done| done.rows_affected())
            .map_err(backend)
    };
    Ok(PurgeReport {
        tokens: delete(TOKENS).await?,
        families: delete(FAMILIES).await?,
        denials: delete(DENIALS).await?,
        throttle: delete(THROTTLE).await?,
        one_time: delete(ONE_TIME).await?,
    })
}

/// Runs a query returning family rows and converts them.
async fn families(
    db: impl PgExecutor<'_>,
    query: sqlx::query::QueryAs<'_, sqlx::Postgres, FamilyRow, sqlx::postgres::PgArguments>,
) -> Result<Vec<Family>, StoreError> {
    query
        .fetch_all(db)
        .await
        .map_err(backend)?
        .into_iter()
        .map(Family::try_from)
        .collect()
}
