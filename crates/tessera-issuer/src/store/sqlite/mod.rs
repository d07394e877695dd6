//! A store in SQLite through sqlx: WAL journal, embedded migrations, a file or an in-memory database.
//!
//! Writes go through a pool of exactly one connection, so they queue in the pool (fairly, without SQLite's
//! sleeping busy handler) and a transaction never has to upgrade a read lock; reads use a separate pool of
//! read-only connections, which WAL lets run alongside the writer. Rotations, the hot path, take that
//! connection through a writer task that group-commits whatever rotations are queued together (see
//! [`group_commit`]), so one commit serves many of them under load.
//!
//! - [`queries`]: every statement, and the function that binds and runs it;
//! - [`rows`]: the rows they return, and their checked conversion into the store's types;
//! - [`group_commit`]: the writer task.
//!
//! The schema is the `migrations/` folder of this crate, embedded at compile time by `sqlx::migrate!`.

mod group_commit;
mod queries;
mod rows;

use std::path::Path;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use self::group_commit::GroupCommit;
use self::queries::Revoke;
use super::{
    AccessDenials, Family, FamilyId, LastRotation, NewFamily, PurgeReport, RefreshStore,
    RevokeReason, Rotation, RotationOutcome, StoreError, TokenHash, UserDenial, Verdict,
    key_matches,
};

/// The schema, checked against `migrations/` at compile time.
static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

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
/// Clones share the database, its connections and its writer task. [`RefreshStore::close`] (or
/// `Issuer::close`) shuts them all down.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use tessera_issuer::SqliteStore;
/// use tessera_issuer::store::RefreshStore as _;
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
        MIGRATOR.run(&writer).await.map_err(migration)?;
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

    /// A private in-memory database, gone when the store is dropped or closed.
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
        MIGRATOR.run(&pool).await.map_err(migration)?;
        Ok(SqliteStore {
            rotations: GroupCommit::spawn(pool.clone()),
            reader: pool.clone(),
            writer: pool,
        })
    }
}

impl RefreshStore for SqliteStore {
    async fn create_family(&self, new: NewFamily, cap: usize) -> Result<Vec<Family>, StoreError> {
        let mut tx = self.writer.begin().await.map_err(backend)?;
        let live = queries::count_live(&mut *tx, &new).await?;
        let cap = i64::try_from(cap.max(1)).unwrap_or(i64::MAX);
        let excess = (live + 1).saturating_sub(cap);
        let evicted = if excess > 0 {
            queries::evict_oldest(&mut *tx, &new, excess).await?
        } else {
            Vec::new()
        };
        queries::insert_family(&mut *tx, &new).await?;
        tx.commit().await.map_err(backend)?;
        Ok(evicted)
    }

    async fn rotate(&self, rotation: Rotation) -> Result<RotationOutcome, StoreError> {
        // Optimistic: the presented token is usually the current one, so the swap comes first and the
        // common case costs one statement.
        if let Some(family) = self.rotations.swap(rotation.clone()).await? {
            return Ok(RotationOutcome::Rotated(family));
        }
        let Some(token) = queries::token(&self.reader, rotation.presented).await? else {
            return Ok(RotationOutcome::Unknown);
        };
        let presented_generation = token.generation()?;
        for _ in 0..ROTATE_ATTEMPTS {
            let Some(state) = queries::family_state(&self.reader, &token.family_id).await? else {
                return Ok(RotationOutcome::Unknown);
            };
            let last = LastRotation {
                fingerprint: state.fingerprint.as_ref(),
                retries: state.retries,
            };
            let verdict = Verdict::of(&state.family, presented_generation, &rotation, last);
            let family = state.family;
            if token.client_id != rotation.client_id {
                return Ok(RotationOutcome::WrongClient(family));
            }
            if !key_matches(&family, &rotation) {
                return Ok(RotationOutcome::KeyMismatch(family));
            }
            match verdict {
                // Only reachable if the database changed underneath (generations only grow,
                // revocation and expiry are final): swap again rather than guess.
                Verdict::Rotate => {
                    if let Some(family) = self.rotations.swap(rotation.clone()).await? {
                        return Ok(RotationOutcome::Rotated(family));
                    }
                }
                // Served only if the budget still allows and no rotation got there first; otherwise the
                // family is read again (and a spent budget is then a replay).
                Verdict::Retry => {
                    let salt = state
                        .salt
                        .ok_or_else(|| rows::corrupt(&token.family_id, "rotation_salt"))?;
                    let counted = queries::count_retry(
                        &self.writer,
                        &token.family_id,
                        family.generation,
                        rotation.max_retries,
                    )
                    .await?;
                    if counted {
                        return Ok(RotationOutcome::Retry {
                            family,
                            salt,
                            successor: state.current,
                        });
                    }
                }
                Verdict::Replay => {
                    let which = Revoke::Family(&token.family_id);
                    let revoked = queries::revoke(
                        &self.writer,
                        which,
                        RevokeReason::ReuseDetected,
                        rotation.now,
                    )
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
            format!(
                "family {} kept changing during {ROTATE_ATTEMPTS} rotation attempts",
                token.family_id
            )
            .into(),
        ))
    }

    async fn find_by_token(&self, token: TokenHash) -> Result<Option<Family>, StoreError> {
        queries::family_by_token(&self.reader, token).await
    }

    async fn find_family(&self, id: &FamilyId) -> Result<Option<Family>, StoreError> {
        let state = queries::family_state(&self.reader, id.as_str()).await?;
        Ok(state.map(|state| state.family))
    }

    async fn revoke_family(
        &self,
        id: &FamilyId,
        reason: RevokeReason,
        now: i64,
    ) -> Result<Option<Family>, StoreError> {
        let revoked =
            queries::revoke(&self.writer, Revoke::Family(id.as_str()), reason, now).await?;
        Ok(revoked.into_iter().next())
    }

    async fn revoke_user(
        &self,
        user_id: &str,
        reason: RevokeReason,
        now: i64,
    ) -> Result<Vec<Family>, StoreError> {
        queries::revoke(&self.writer, Revoke::User(user_id), reason, now).await
    }

    async fn live_families(&self, user_id: &str, now: i64) -> Result<Vec<Family>, StoreError> {
        queries::live_families(&self.reader, user_id, now).await
    }

    async fn deny_access_token(&self, jti: &str, expires_at: i64) -> Result<(), StoreError> {
        queries::deny_access_token(&self.writer, jti, expires_at).await
    }

    async fn deny_user_tokens(&self, denial: UserDenial) -> Result<(), StoreError> {
        queries::deny_user_tokens(&self.writer, &denial).await
    }

    async fn access_denials(&self, now: i64) -> Result<AccessDenials, StoreError> {
        queries::access_denials(&self.reader, now).await
    }

    async fn purge_expired(&self, now: i64, batch: usize) -> Result<PurgeReport, StoreError> {
        queries::purge(&self.writer, now, batch).await
    }

    /// Answers every rotation already queued for the writer task and stops it, then closes every
    /// connection, which checkpoints the WAL into the database file.
    async fn close(&self) {
        self.rotations.close().await;
        self.reader.close().await;
        self.writer.close().await;
    }
}

/// A sqlx failure as a store error: a closed pool means the store was closed.
fn backend(error: sqlx::Error) -> StoreError {
    match error {
        sqlx::Error::PoolClosed => StoreError::Closed,
        other => StoreError::Backend(Box::new(other)),
    }
}

fn migration(error: sqlx::migrate::MigrateError) -> StoreError {
    StoreError::Backend(Box::new(error))
}
