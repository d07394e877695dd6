//! A store in SQLite through sqlx: WAL journal, embedded migrations, a file or an in-memory database.
//!
//! Writes go through a pool of exactly one connection, so they queue in the pool (fairly, without SQLite's
//! sleeping busy handler) and a transaction never has to upgrade a read lock; reads use a separate pool of
//! read-only connections, which WAL lets run alongside the writer. Rotations, the hot path, take that
//! connection through a writer task that group-commits whatever rotations are queued together (see
//! [`group_commit`]), so one commit serves many of them under load.

mod group_commit;

use std::borrow::Cow;
use std::path::Path;
use std::time::Duration;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::query::Query;
use sqlx::sqlite::{
    Sqlite, SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePool,
    SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row as _, SqlSafeStr as _};

use super::{
    AccessDenials, Family, FamilyId, NewFamily, PurgeReport, RefreshStore, Revocation,
    RevokeReason, Rotation, RotationOutcome, StoreError, UserDenial, Verdict, classify,
};
use crate::refresh::{RotationSalt, TokenHash};
use group_commit::GroupCommit;

const FAMILY_COLUMNS: &str = "id, user_id, client_id, scope, roles, user_agent, generation, created_at, \
     last_used_at, absolute_expires_at, idle_expires_at, revoked_at, revoke_reason";

/// How many times a rotation re-reads and retries when the family changed under it; each retry means
/// another request made progress, so this only bounds pathological interleavings.
const ROTATE_ATTEMPTS: usize = 4;

/// Tuning of a [`SqliteStore`].
#[derive(Debug, Clone)]
pub struct SqliteStoreOptions {
    readers: u32,
    busy_timeout: Duration,
}

impl Default for SqliteStoreOptions {
    fn default() -> Self {
        SqliteStoreOptions {
            readers: 4,
            busy_timeout: Duration::from_secs(5),
        }
    }
}

impl SqliteStoreOptions {
    /// Default options: 4 reader connections, 5 s busy timeout.
    pub fn new() -> Self {
        SqliteStoreOptions::default()
    }

    /// The number of read-only connections (at least 1).
    #[must_use]
    pub fn readers(mut self, readers: u32) -> Self {
        self.readers = readers.max(1);
        self
    }

    /// How long a connection waits for another process's lock on the file before failing.
    #[must_use]
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }
}

/// A [`RefreshStore`] in SQLite.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use tessera_issuer::SqliteStore;
///
/// let dir = tempfile::tempdir()?;
/// let store = SqliteStore::open(dir.path().join("tessera.db")).await?;
/// store.close().await;
/// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    rotations: GroupCommit,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path` with default options and migrates it.
    ///
    /// # Errors
    /// [`StoreError::Backend`] if the file cannot be opened or migrated.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        SqliteStore::open_with(path, SqliteStoreOptions::default()).await
    }

    /// Opens the database file at `path` with `options`.
    ///
    /// Call it inside the Tokio runtime that will use the store: the task that group-commits rotations is
    /// spawned on it, and rotations fail with [`StoreError::Backend`] once that runtime has shut down.
    ///
    /// # Errors
    /// [`StoreError::Backend`] if the file cannot be opened or migrated.
    pub async fn open_with(
        path: impl AsRef<Path>,
        options: SqliteStoreOptions,
    ) -> Result<Self, StoreError> {
        let connect = SqliteConnectOptions::new()
            .filename(path.as_ref())
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // With WAL, NORMAL stays consistent across crashes; a power loss may drop the last commits.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(options.busy_timeout)
            .foreign_keys(true);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(connect.clone())
            .await
            .map_err(backend)?;
        migrate(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(options.readers)
            .connect_with(connect.read_only(true))
            .await
            .map_err(backend)?;
        Ok(SqliteStore {
            rotations: GroupCommit::spawn(writer.clone()),
            writer,
            reader,
        })
    }

    /// A private in-memory database, gone when the store is dropped.
    ///
    /// # Errors
    /// [`StoreError::Backend`] if SQLite cannot start.
    pub async fn in_memory() -> Result<Self, StoreError> {
        let connect = SqliteConnectOptions::new()
            .in_memory(true)
            .foreign_keys(true);
        // The database lives exactly as long as its one connection, so that connection is never recycled.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(connect)
            .await
            .map_err(backend)?;
        migrate(&pool).await?;
        Ok(SqliteStore {
            rotations: GroupCommit::spawn(pool.clone()),
            reader: pool.clone(),
            writer: pool,
        })
    }

    /// Closes every connection, checkpointing the WAL into the database file. Rotations that are already
    /// queued for the writer, and any later store call, fail with [`StoreError::Backend`].
    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }

    async fn family(
        &self,
        id: &str,
    ) -> Result<Option<(Family, Option<RotationSalt>, TokenHash)>, StoreError> {
        let sql = format!(
            "SELECT {FAMILY_COLUMNS}, rotation_salt, current_hash FROM token_families WHERE id = ?1"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.reader)
            .await
            .map_err(backend)?;
        row.map(|row| {
            let salt = row
                .try_get::<Option<Vec<u8>>, _>("rotation_salt")
                .map_err(backend)?
                .map(|bytes| {
                    RotationSalt::from_slice(&bytes).ok_or_else(|| corrupt(id, "rotation_salt"))
                })
                .transpose()?;
            let current: Vec<u8> = row.try_get("current_hash").map_err(backend)?;
            let current =
                TokenHash::from_slice(&current).ok_or_else(|| corrupt(id, "current_hash"))?;
            Ok((family_from_row(&row)?, salt, current))
        })
        .transpose()
    }

    /// The compare-and-swap ([`swap_statement`]), group-committed with concurrent ones (see
    /// [`GroupCommit::swap`]).
    async fn try_rotate(&self, rotation: &Rotation) -> Result<Option<Family>, StoreError> {
        self.rotations.swap(rotation.clone()).await
    }

    async fn revoke_where(
        &self,
        condition: &str,
        key: &str,
        reason: RevokeReason,
        now: i64,
    ) -> Result<Vec<Family>, StoreError> {
        let sql = format!(
            "UPDATE token_families SET revoked_at = ?1, revoke_reason = ?2 \
             WHERE {condition} = ?3 AND revoked_at IS NULL RETURNING {FAMILY_COLUMNS}"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now)
            .bind(reason.as_str())
            .bind(key)
            .fetch_all(&self.writer)
            .await
            .map_err(backend)?;
        rows.iter().map(family_from_row).collect()
    }
}

impl RefreshStore for SqliteStore {
    async fn create_family(&self, new: NewFamily, cap: usize) -> Result<Vec<Family>, StoreError> {
        let now = new.created_at;
        let mut tx = self.writer.begin().await.map_err(backend)?;
        let live: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM token_families WHERE user_id = ?1 AND client_id = ?2 \
             AND revoked_at IS NULL AND ?3 < idle_expires_at AND ?3 < absolute_expires_at",
        )
        .bind(&new.user_id)
        .bind(&new.client_id)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
        let cap = i64::try_from(cap.max(1)).unwrap_or(i64::MAX);
        let excess = (live + 1).saturating_sub(cap);
        let mut evicted = Vec::new();
        if excess > 0 {
            let sql = format!(
                "UPDATE token_families SET revoked_at = ?3, revoke_reason = ?5 WHERE id IN (\
                 SELECT id FROM token_families WHERE user_id = ?1 AND client_id = ?2 AND revoked_at IS NULL \
                 AND ?3 < idle_expires_at AND ?3 < absolute_expires_at ORDER BY created_at, id LIMIT ?4) \
                 RETURNING {FAMILY_COLUMNS}"
            );
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&new.user_id)
                .bind(&new.client_id)
                .bind(now)
                .bind(excess)
                .bind(RevokeReason::Evicted.as_str())
                .fetch_all(&mut *tx)
                .await
                .map_err(backend)?;
            evicted = rows.iter().map(family_from_row).collect::<Result<_, _>>()?;
        }
        let roles = serde_json::to_string(&new.roles).map_err(backend)?;
        sqlx::query(
            "INSERT INTO token_families (id, user_id, client_id, scope, roles, user_agent, generation, \
             current_hash, created_at, last_used_at, absolute_expires_at, idle_expires_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7, ?8, ?8, ?9, MIN(?10, ?9))",
        )
        .bind(new.id.as_str())
        .bind(&new.user_id)
        .bind(&new.client_id)
        .bind(&new.scope)
        .bind(roles)
        .bind(&new.user_agent)
        .bind(new.token.as_bytes().as_slice())
        .bind(now)
        .bind(new.absolute_expires_at)
        .bind(new.idle_expires_at)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(evicted)
    }

    async fn rotate(&self, rotation: Rotation) -> Result<RotationOutcome, StoreError> {
        // Optimistic: the presented token is usually the current one, so the swap comes first and the
        // common case costs one statement.
        if let Some(family) = self.try_rotate(&rotation).await? {
            return Ok(RotationOutcome::Rotated(family));
        }
        let found = sqlx::query(
            "SELECT t.family_id, t.generation, f.client_id FROM refresh_tokens t \
             JOIN token_families f ON f.id = t.family_id WHERE t.hash = ?1",
        )
        .bind(rotation.presented.as_bytes().as_slice())
        .fetch_optional(&self.reader)
        .await
        .map_err(backend)?;
        let Some(found) = found else {
            return Ok(RotationOutcome::Unknown);
        };
        let family_id: String = found.try_get("family_id").map_err(backend)?;
        let presented: i64 = found.try_get("generation").map_err(backend)?;
        let presented_generation =
            u64::try_from(presented).map_err(|_| corrupt(&family_id, "generation"))?;
        let client_id: String = found.try_get("client_id").map_err(backend)?;
        for _ in 0..ROTATE_ATTEMPTS {
            let Some((family, salt, current)) = self.family(&family_id).await? else {
                return Ok(RotationOutcome::Unknown);
            };
            if client_id != rotation.client_id {
                return Ok(RotationOutcome::WrongClient(family));
            }
            match classify(&family, presented_generation, rotation.now, rotation.grace) {
                // Only reachable if the database changed underneath (generations only grow,
                // revocation and expiry are final): swap again rather than guess.
                Verdict::Rotate => {
                    if let Some(family) = self.try_rotate(&rotation).await? {
                        return Ok(RotationOutcome::Rotated(family));
                    }
                }
                Verdict::Retry => {
                    let salt = salt.ok_or_else(|| corrupt(&family_id, "rotation_salt"))?;
                    return Ok(RotationOutcome::Retry {
                        family,
                        salt,
                        successor: current,
                    });
                }
                Verdict::Replay => {
                    let revoked = self
                        .revoke_where("id", &family_id, RevokeReason::ReuseDetected, rotation.now)
                        .await?;
                    if let Some(family) = revoked.into_iter().next() {
                        return Ok(RotationOutcome::Replay {
                            family,
                            presented_generation,
                        });
                    }
                }
                Verdict::Revoked => return Ok(RotationOutcome::Revoked(family)),
                Verdict::Expired => return Ok(RotationOutcome::Expired(family)),
            }
        }
        Err(StoreError::Backend(
            format!("family {family_id} kept changing during {ROTATE_ATTEMPTS} rotation attempts")
                .into(),
        ))
    }

    async fn find_by_token(&self, token: TokenHash) -> Result<Option<Family>, StoreError> {
        let sql = format!(
            "SELECT {FAMILY_COLUMNS} FROM token_families WHERE id = \
             (SELECT family_id FROM refresh_tokens WHERE hash = ?1)"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(token.as_bytes().as_slice())
            .fetch_optional(&self.reader)
            .await
            .map_err(backend)?;
        row.as_ref().map(family_from_row).transpose()
    }

    async fn find_family(&self, id: &FamilyId) -> Result<Option<Family>, StoreError> {
        Ok(self.family(id.as_str()).await?.map(|(family, _, _)| family))
    }

    async fn revoke_family(
        &self,
        id: &FamilyId,
        reason: RevokeReason,
        now: i64,
    ) -> Result<Option<Family>, StoreError> {
        Ok(self
            .revoke_where("id", id.as_str(), reason, now)
            .await?
            .into_iter()
            .next())
    }

    async fn revoke_user(
        &self,
        user_id: &str,
        reason: RevokeReason,
        now: i64,
    ) -> Result<Vec<Family>, StoreError> {
        self.revoke_where("user_id", user_id, reason, now).await
    }

    async fn live_families(&self, user_id: &str, now: i64) -> Result<Vec<Family>, StoreError> {
        let sql = format!(
            "SELECT {FAMILY_COLUMNS} FROM token_families WHERE user_id = ?1 AND revoked_at IS NULL \
             AND ?2 < idle_expires_at AND ?2 < absolute_expires_at ORDER BY created_at, id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(user_id)
            .bind(now)
            .fetch_all(&self.reader)
            .await
            .map_err(backend)?;
        rows.iter().map(family_from_row).collect()
    }

    async fn deny_access_token(&self, jti: &str, expires_at: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO revoked_access_tokens (jti, expires_at) VALUES (?1, ?2) \
             ON CONFLICT (jti) DO UPDATE SET expires_at = MAX(expires_at, excluded.expires_at)",
        )
        .bind(jti)
        .bind(expires_at)
        .execute(&self.writer)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn deny_user_tokens(&self, denial: UserDenial) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO revoked_user_tokens (user_id, issued_before, until) VALUES (?1, ?2, ?3) \
             ON CONFLICT (user_id) DO UPDATE SET \
             issued_before = MAX(issued_before, excluded.issued_before), until = MAX(until, excluded.until)",
        )
        .bind(&denial.user_id)
        .bind(denial.issued_before)
        .bind(denial.until)
        .execute(&self.writer)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn access_denials(&self, now: i64) -> Result<AccessDenials, StoreError> {
        let tokens =
            sqlx::query("SELECT jti, expires_at FROM revoked_access_tokens WHERE expires_at > ?1")
                .bind(now)
                .fetch_all(&self.reader)
                .await
                .map_err(backend)?;
        let users = sqlx::query(
            "SELECT user_id, issued_before, until FROM revoked_user_tokens WHERE until > ?1",
        )
        .bind(now)
        .fetch_all(&self.reader)
        .await
        .map_err(backend)?;
        Ok(AccessDenials {
            tokens: tokens
                .iter()
                .map(|row| Ok((row.try_get("jti")?, row.try_get("expires_at")?)))
                .collect::<Result<_, sqlx::Error>>()
                .map_err(backend)?,
            users: users
                .iter()
                .map(|row| {
                    Ok(UserDenial {
                        user_id: row.try_get("user_id")?,
                        issued_before: row.try_get("issued_before")?,
                        until: row.try_get("until")?,
                    })
                })
                .collect::<Result<_, sqlx::Error>>()
                .map_err(backend)?,
        })
    }

    async fn purge_expired(&self, now: i64, batch: usize) -> Result<PurgeReport, StoreError> {
        let limit = i64::try_from(batch).unwrap_or(i64::MAX);
        let tokens = sqlx::query(
            "DELETE FROM refresh_tokens WHERE hash IN (SELECT t.hash FROM token_families f \
             JOIN refresh_tokens t ON t.family_id = f.id WHERE f.idle_expires_at <= ?1 LIMIT ?2)",
        )
        .bind(now)
        .bind(limit)
        .execute(&self.writer)
        .await
        .map_err(backend)?
        .rows_affected();
        let families = sqlx::query(
            "DELETE FROM token_families WHERE id IN (SELECT f.id FROM token_families f \
             WHERE f.idle_expires_at <= ?1 \
             AND NOT EXISTS (SELECT 1 FROM refresh_tokens t WHERE t.family_id = f.id) LIMIT ?2)",
        )
        .bind(now)
        .bind(limit)
        .execute(&self.writer)
        .await
        .map_err(backend)?
        .rows_affected();
        let mut denials = 0;
        for table in [
            "DELETE FROM revoked_access_tokens WHERE jti IN \
             (SELECT jti FROM revoked_access_tokens WHERE expires_at <= ?1 LIMIT ?2)",
            "DELETE FROM revoked_user_tokens WHERE user_id IN \
             (SELECT user_id FROM revoked_user_tokens WHERE until <= ?1 LIMIT ?2)",
        ] {
            let budget = limit - i64::try_from(denials).unwrap_or(limit);
            denials += sqlx::query(table)
                .bind(now)
                .bind(budget)
                .execute(&self.writer)
                .await
                .map_err(backend)?
                .rows_affected();
        }
        Ok(PurgeReport {
            tokens,
            families,
            denials,
        })
    }
}

/// The compare-and-swap of a rotation, one statement (see [`bind_swap`] for its parameters): installs the
/// successor if the presented token is its family's current one, the family belongs to the client and is
/// live, and returns the rotated family's row. The trigger records the successor's hash in the same
/// statement.
///
/// The parameters are anonymous (`?`), so that several swaps can share one query string, and so one trip
/// to the connection's thread: sqlx numbers anonymous parameters on from the previous statement's.
fn swap_statement() -> String {
    format!(
        "UPDATE token_families SET generation = generation + 1, last_used_at = ?, \
         idle_expires_at = MIN(? + ?, absolute_expires_at), current_hash = ?, rotation_salt = ? \
         WHERE (id, generation) = (SELECT family_id, generation FROM refresh_tokens WHERE hash = ?) \
         AND client_id = ? AND revoked_at IS NULL AND ? < idle_expires_at AND ? < absolute_expires_at \
         RETURNING {FAMILY_COLUMNS};"
    )
}

/// Binds the parameters of a [`swap_statement`], in their order in the statement.
fn bind_swap<'q>(
    query: Query<'q, Sqlite, SqliteArguments>,
    rotation: &Rotation,
) -> Query<'q, Sqlite, SqliteArguments> {
    query
        .bind(rotation.now)
        .bind(rotation.now)
        .bind(rotation.idle_ttl)
        .bind(rotation.successor.as_bytes().as_slice())
        .bind(rotation.salt.as_bytes().as_slice())
        .bind(rotation.presented.as_bytes().as_slice())
        .bind(rotation.client_id.as_str())
        .bind(rotation.now)
        .bind(rotation.now)
}

async fn migrate(pool: &SqlitePool) -> Result<(), StoreError> {
    let migrator = Migrator::with_migrations(vec![
        Migration::new(
            1,
            Cow::Borrowed("token families"),
            MigrationType::Simple,
            include_str!("../../migrations/0001_token_families.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            2,
            Cow::Borrowed("access denials"),
            MigrationType::Simple,
            include_str!("../../migrations/0002_access_denials.sql").into_sql_str(),
            false,
        ),
    ]);
    migrator.run(pool).await.map_err(backend)
}

fn family_from_row(row: &SqliteRow) -> Result<Family, StoreError> {
    let id: String = row.try_get("id").map_err(backend)?;
    let roles: String = row.try_get("roles").map_err(backend)?;
    let roles = serde_json::from_str(&roles).map_err(|_| corrupt(&id, "roles"))?;
    let generation: i64 = row.try_get("generation").map_err(backend)?;
    let revoked_at: Option<i64> = row.try_get("revoked_at").map_err(backend)?;
    let reason: Option<String> = row.try_get("revoke_reason").map_err(backend)?;
    let revoked = match (revoked_at, reason) {
        (Some(at), Some(reason)) => Some(Revocation {
            at,
            reason: RevokeReason::parse(&reason).ok_or_else(|| corrupt(&id, "revoke_reason"))?,
        }),
        (None, None) => None,
        _ => return Err(corrupt(&id, "revoked_at/revoke_reason")),
    };
    Ok(Family {
        generation: u64::try_from(generation).map_err(|_| corrupt(&id, "generation"))?,
        user_id: row.try_get("user_id").map_err(backend)?,
        client_id: row.try_get("client_id").map_err(backend)?,
        scope: row.try_get("scope").map_err(backend)?,
        roles,
        user_agent: row.try_get("user_agent").map_err(backend)?,
        created_at: row.try_get("created_at").map_err(backend)?,
        last_used_at: row.try_get("last_used_at").map_err(backend)?,
        absolute_expires_at: row.try_get("absolute_expires_at").map_err(backend)?,
        idle_expires_at: row.try_get("idle_expires_at").map_err(backend)?,
        revoked,
        id: FamilyId::from(id),
    })
}

fn backend(error: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Backend(Box::new(error))
}

fn corrupt(family_id: &str, column: &str) -> StoreError {
    StoreError::Corrupt(format!(
        "family {family_id}: column `{column}` has an invalid value"
    ))
}
