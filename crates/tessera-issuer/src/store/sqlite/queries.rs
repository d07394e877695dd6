//! Every statement of the SQLite store: those it shares with PostgreSQL (`store::sql`, expanded here), and
//! its own: the rotation's swap, a family's insert (its trigger records the first token), the denial
//! sequence and the throttle's arithmetic in SQLite's functions.
//!
//! Statements are `&'static str` built with `concat!`, so none is assembled at run time (only the
//! group-commit batch repeats [`SWAP`]).

use sqlx::query::Query;
use sqlx::sqlite::{Sqlite, SqliteArguments, SqliteConnection};

use crate::store::sql::shared_statements;
use crate::store::{Denial, Rotation};

shared_statements!(Sqlite);

/// The attempt a reservation counts: the next within the window (`?3`) of the last one, else the first.
macro_rules! throttle_attempts {
    () => {
        "CASE WHEN login_throttle.last_attempt_at + ?3 > ?2 THEN login_throttle.attempts + 1 ELSE 1 END"
    };
}

/// Until when attempt number `n` at `?2` locks the key: from attempt `?4` on, `?5` doubled per attempt
/// up to `?6`; 0 (not locked) before.
macro_rules! throttle_lock {
    ($($n:tt)*) => {
        concat!(
            "CASE WHEN (", $($n)*, ") >= ?4 THEN ?2 + MIN(?6, ?5 << MIN((", $($n)*,
            ") - ?4, 30)) ELSE 0 END"
        )
    };
}

/// The throttle's reservation as one statement: counts the attempt unless the key is locked, and returns
/// the new `locked_until` if it did (see [`ThrottleRule::reserve`], which it mirrors).
const RESERVE_LOGIN: &str = concat!(
    "INSERT INTO login_throttle (key, attempts, last_attempt_at, locked_until, forget_at) \
     VALUES (?1, 1, ?2, ",
    throttle_lock!("1"),
    ", MAX(?2 + ?3, ",
    throttle_lock!("1"),
    ")) ON CONFLICT (key) DO UPDATE SET attempts = ",
    throttle_attempts!(),
    ", last_attempt_at = ?2, locked_until = ",
    throttle_lock!(throttle_attempts!()),
    ", forget_at = MAX(?2 + ?3, ",
    throttle_lock!(throttle_attempts!()),
    ") WHERE login_throttle.locked_until <= ?2 RETURNING locked_until"
);

/// Nothing to lock: the store's transactions begin `IMMEDIATE`, so they already exclude one another.
async fn lock_signing_keys(_: &mut SqliteConnection) -> Result<(), StoreError> {
    Ok(())
}

/// Nothing to lock, as for [`lock_signing_keys`].
async fn lock_logins(_: &mut SqliteConnection, _: &NewFamily) -> Result<(), StoreError> {
    Ok(())
}

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

/// Inserts a family at generation 0; its trigger records the first token.
async fn insert_family(
    db: impl sqlx::Executor<'_, Database = Sqlite>,
    new: &NewFamily,
) -> Result<(), StoreError> {
    const INSERT: &str = "INSERT INTO token_families (id, user_id, client_id, scope, roles, user_agent, \
        generation, current_hash, created_at, last_used_at, absolute_expires_at, \
        idle_expires_at, dpop_jkt) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7, ?8, ?8, ?9, MIN(?10, \
        ?9), ?11)";
    bind_new_family(sqlx::query(INSERT), new)?
        .execute(db)
        .await
        .map_err(backend)?;
    Ok(())
}

/// Records a denial under the next sequence number, keeping the later bounds of an existing one; a write
/// that extends nothing leaves the row (and its sequence number) alone. Call it inside the writer's
/// transaction: the sequence row serializes writers, so numbers become visible in order.
pub(super) async fn deny(tx: &mut SqliteConnection, denial: &Denial) -> Result<(), StoreError> {
    let seq: i64 = sqlx::query_scalar("UPDATE denial_sequence SET last = last + 1 RETURNING last")
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
    let (kind, key) = denial.key();
    sqlx::query(
        "INSERT INTO access_denials (kind, key, issued_before, until, seq) VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (kind, key) DO UPDATE SET \
         issued_before = MAX(issued_before, excluded.issued_before), \
         until = MAX(until, excluded.until), seq = excluded.seq \
         WHERE excluded.issued_before > access_denials.issued_before \
         OR excluded.until > access_denials.until",
    )
    .bind(kind.as_str())
    .bind(key)
    .bind(denial.issued_before())
    .bind(denial.until)
    .bind(seq)
    .execute(&mut *tx)
    .await
    .map_err(backend)?;
    Ok(())
}
