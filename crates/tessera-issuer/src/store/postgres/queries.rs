//! Every statement of the PostgreSQL store: those it shares with SQLite (`store::sql`, expanded here), and
//! its own: the login lock, a family's insert with its first token, the denial sequence and notifications,
//! the throttle's arithmetic in PostgreSQL's functions, the signing-key lock.
//!
//! Every statement is correct under READ COMMITTED with any number of instances: a swap is one `UPDATE …
//! WHERE generation = <presented>` (PostgreSQL re-checks the condition on the row a concurrent writer left,
//! so of concurrent swaps one applies); upserts (`INSERT … ON CONFLICT DO UPDATE`) lock the row they
//! update; the few decisions that read before they write take a lock first.

use sqlx::postgres::{PgConnection, Postgres};
use sqlx::{Executor as _, PgExecutor};

use crate::store::Denial;
use crate::store::sql::shared_statements;

shared_statements!(Postgres);

/// Serializes the logins of one user on one client, so that the cap is counted and enforced as if they
/// came one after another. Inside the login's transaction.
async fn lock_logins(tx: &mut PgConnection, new: &NewFamily) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1 || chr(1) || $2, 7))")
        .bind(new.user_id.as_str())
        .bind(new.client_id.as_str())
        .execute(tx)
        .await
        .map_err(backend)?;
    Ok(())
}

/// Inserts a family at generation 0 and records its first token, in one statement.
async fn insert_family(db: impl PgExecutor<'_>, new: &NewFamily) -> Result<(), StoreError> {
    const INSERT: &str = "WITH family AS (INSERT INTO token_families (id, user_id, client_id, scope, roles, \
        user_agent, generation, current_hash, created_at, last_used_at, absolute_expires_at, \
        idle_expires_at, dpop_jkt) VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $8, $8, $9, LEAST($10, \
        $9), $11) RETURNING id, current_hash, generation) INSERT INTO refresh_tokens (hash, \
        family_id, generation) SELECT current_hash, id, generation FROM family";
    bind_new_family(sqlx::query(INSERT), new)?
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

/// Locks the signing keys against the other instances adding one, until the transaction ends.
async fn lock_signing_keys(tx: &mut PgConnection) -> Result<(), StoreError> {
    tx.execute("LOCK TABLE signing_keys IN SHARE ROW EXCLUSIVE MODE")
        .await
        .map_err(backend)?;
    Ok(())
}
