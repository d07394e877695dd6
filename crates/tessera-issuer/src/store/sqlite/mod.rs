//! A store in SQLite through sqlx: WAL journal, embedded migrations, a file or an in-memory database.
//!
//! Writes go through a pool of exactly one connection, so they queue in the pool (fairly, without SQLite's
//! sleeping busy handler) and a transaction never has to upgrade a read lock; reads use a separate pool of
//! read-only connections, which WAL lets run alongside the writer. Rotations, the hot path, take that
//! connection through a writer task that group-commits whatever rotations are queued together (see
//! [`group_commit`]), so one commit serves many of them under load.
//!
//! - [`queries`]: every statement, and the function that binds and runs it (the rows they return are
//!   `store::rows`, shared with the PostgreSQL store);
//! - [`group_commit`]: how a batch of the writer task (`store::group_commit`) is written.
//!
//! The schema is the `migrations/sqlite` folder of this crate, embedded at compile time by `sqlx::migrate!`.
//!
//! # Several processes on one file
//!
//! A rolling restart overlaps the old and the new process on the same file, so every step tolerates
//! another process: each write transaction starts with `BEGIN IMMEDIATE` (it takes the write lock at once,
//! waiting up to the busy timeout, instead of failing with `SQLITE_BUSY` when a read lock would have to be
//! upgraded), every connection waits up to the busy timeout for another process's lock, and opening the file
//! (switching it to WAL, which takes a lock SQLite cannot wait for, and migrating it) happens under an
//! exclusive lock on a sibling file (`<database>.open.lock`), so processes started together open it one
//! after the other.

mod group_commit;
mod queries;

use std::fs::{File, OpenOptions};
use std::path::Path;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use self::group_commit::SqliteWriter;
use self::queries::Which;
use super::group_commit::GroupCommit;
use super::rotation::{RotationSteps, rotate_optimistically};
use super::rows::{FamilyState, TokenRow};
use super::{
    ChangeNotifier, Denial, DenialBatch, Family, FamilyId, LoginAttempt, NewFamily, OnceKey,
    PurgeReport, RefreshStore, Revoke, Rotation, RotationOutcome, StoreChanges, StoreError,
    StoredKey, ThrottleKey, ThrottleRule, TokenHash, sqlx_error as backend,
};

/// The schema, checked against `migrations/sqlite` at compile time.
static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

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
    changes: ChangeNotifier,
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
        // Switching a new file to WAL takes a lock SQLite cannot wait for, and migrations must not run
        // twice: processes opening one file do both one after the other.
        let lock = open_lock(path.as_ref()).await?;
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
        drop(lock);
        Ok(SqliteStore {
            rotations: GroupCommit::spawn(SqliteWriter::new(writer.clone())),
            writer,
            reader,
            changes: ChangeNotifier::new(),
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
            rotations: GroupCommit::spawn(SqliteWriter::new(pool.clone())),
            reader: pool.clone(),
            writer: pool,
            changes: ChangeNotifier::new(),
        })
    }
}

impl SqliteStore {
    /// Revokes the families `which` names and denies their access tokens (and, for a user, every token
    /// issued before now), in one transaction.
    async fn revoke_and_deny(
        &self,
        which: Which<'_>,
        revoke: Revoke,
    ) -> Result<Vec<Family>, StoreError> {
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend)?;
        let revoked = queries::revoke(&mut *tx, which, &revoke).await?;
        for family in &revoked {
            queries::deny(&mut tx, &revoke.session_denial(&family.id)).await?;
        }
        if let Which::User(user_id) = which {
            let subject = Denial::subject(user_id, revoke.now, revoke.denied_until());
            queries::deny(&mut tx, &subject).await?;
        }
        tx.commit().await.map_err(backend)?;
        self.changes.notify();
        Ok(revoked)
    }
}

impl RotationSteps for SqliteStore {
    async fn swap(&self, rotation: &Rotation) -> Result<Option<Family>, StoreError> {
        self.rotations.swap(rotation.clone()).await
    }

    async fn token(&self, hash: TokenHash) -> Result<Option<TokenRow>, StoreError> {
        queries::token(&self.reader, hash).await
    }

    async fn state(&self, family_id: &str) -> Result<Option<FamilyState>, StoreError> {
        queries::family_state(&self.reader, family_id).await
    }

    async fn count_retry(
        &self,
        family_id: &str,
        generation: u64,
        max_retries: u32,
    ) -> Result<bool, StoreError> {
        queries::count_retry(&self.writer, family_id, generation, max_retries).await
    }

    async fn revoke_replayed(
        &self,
        family_id: &str,
        revoke: Revoke,
    ) -> Result<Option<Family>, StoreError> {
        let revoked = self
            .revoke_and_deny(Which::Family(family_id), revoke)
            .await?;
        Ok(revoked.into_iter().next())
    }
}

impl RefreshStore for SqliteStore {
    async fn create_family(&self, new: NewFamily, cap: usize) -> Result<Vec<Family>, StoreError> {
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend)?;
        let evicted = queries::create_family(&mut tx, &new, cap).await?;
        tx.commit().await.map_err(backend)?;
        Ok(evicted)
    }

    async fn rotate(&self, rotation: Rotation) -> Result<RotationOutcome, StoreError> {
        rotate_optimistically(self, rotation).await
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
        revoke: Revoke,
    ) -> Result<Option<Family>, StoreError> {
        let revoked = self
            .revoke_and_deny(Which::Family(id.as_str()), revoke)
            .await?;
        Ok(revoked.into_iter().next())
    }

    async fn revoke_user(&self, user_id: &str, revoke: Revoke) -> Result<Vec<Family>, StoreError> {
        self.revoke_and_deny(Which::User(user_id), revoke).await
    }

    async fn live_families(&self, user_id: &str, now: i64) -> Result<Vec<Family>, StoreError> {
        queries::live_families(&self.reader, user_id, now).await
    }

    async fn deny(&self, denial: Denial) -> Result<(), StoreError> {
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend)?;
        queries::deny(&mut tx, &denial).await?;
        tx.commit().await.map_err(backend)?;
        self.changes.notify();
        Ok(())
    }

    async fn denials_after(
        &self,
        after: u64,
        now: i64,
        limit: usize,
    ) -> Result<DenialBatch, StoreError> {
        queries::denials_after(&self.reader, after, now, limit.max(1)).await
    }

    async fn reserve_login(
        &self,
        key: &ThrottleKey,
        rule: &ThrottleRule,
        now: i64,
    ) -> Result<LoginAttempt, StoreError> {
        queries::reserve_login(&self.writer, key, rule, now).await
    }

    async fn clear_login_attempts(&self, key: &ThrottleKey) -> Result<(), StoreError> {
        queries::clear_login(&self.writer, key).await
    }

    async fn use_once(&self, key: &OnceKey, expires_at: i64, now: i64) -> Result<bool, StoreError> {
        queries::use_once(&self.writer, key, expires_at, now).await
    }

    async fn signing_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        queries::signing_keys(&self.reader).await
    }

    async fn add_signing_key(
        &self,
        key: StoredKey,
        only_if_none: bool,
    ) -> Result<Vec<StoredKey>, StoreError> {
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend)?;
        let (keys, added) = queries::add_signing_key(&mut tx, &key, only_if_none).await?;
        tx.commit().await.map_err(backend)?;
        if added {
            self.changes.notify();
        }
        Ok(keys)
    }

    async fn remove_signing_key(&self, kid: &str) -> Result<bool, StoreError> {
        let removed = queries::remove_signing_key(&self.writer, kid).await?;
        if removed {
            self.changes.notify();
        }
        Ok(removed)
    }

    async fn shared_secret(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>, StoreError> {
        queries::shared_secret(&self.writer, name, candidate).await
    }

    async fn purge_expired(&self, now: i64, batch: usize) -> Result<PurgeReport, StoreError> {
        queries::purge(&self.writer, now, batch).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.reader)
            .await
            .map_err(backend)?;
        Ok(())
    }

    fn subscribe(&self) -> Option<StoreChanges> {
        Some(self.changes.subscribe())
    }

    /// Answers every rotation already queued for the writer task and stops it, then closes every
    /// connection, which checkpoints the WAL into the database file.
    async fn close(&self) {
        self.rotations.close().await;
        self.reader.close().await;
        self.writer.close().await;
    }
}

/// Takes the exclusive lock that serializes the opening (the switch to WAL, the migrations) of processes
/// opening `database` together: an advisory lock on `<database>.open.lock`, released when the returned file
/// is dropped. Waits for another process's opening, off the async threads.
async fn open_lock(database: &Path) -> Result<File, StoreError> {
    let mut name = database.as_os_str().to_owned();
    name.push(".open.lock");
    let path = std::path::PathBuf::from(name);
    let locked = tokio::task::spawn_blocking(move || {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        file.lock()?;
        Ok::<_, std::io::Error>(file)
    })
    .await
    .map_err(|error| StoreError::Backend(Box::new(error)))?;
    locked.map_err(|error| StoreError::Backend(Box::new(error)))
}

fn migration(error: sqlx::migrate::MigrateError) -> StoreError {
    StoreError::Backend(Box::new(error))
}
