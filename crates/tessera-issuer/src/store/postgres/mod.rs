//! A store in PostgreSQL (cargo feature `postgres`), shared by any number of instances of the token
//! service: every operation is one statement or one short transaction that is correct under READ
//! COMMITTED whatever the other instances do at the same time.
//!
//! - Rotations go through a writer task that group-commits the rotations queued together in one statement
//!   ([`writer`]); the other operations use the pool.
//! - Writes of denials and keys notify every instance (`NOTIFY` on a channel named after the schema, sent
//!   at the commit); each store listens (`LISTEN`, reconnecting by itself) and wakes its
//!   [`subscribers`](RefreshStore::subscribe). A notification lost with a dropped connection is caught up by
//!   the readers' periodic catch-up, which reads the denial log after the last sequence number it saw.
//! - The schema is the `migrations/postgres` folder of this crate, embedded by `sqlx::migrate!`; instances
//!   starting together migrate one after the other (sqlx takes an advisory lock).
//!
//! [`queries`] holds every statement.

mod queries;
mod writer;

use std::fmt;
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use sqlx::{Connection as _, Executor as _};

use self::queries::Which;
use self::writer::PgWriter;
use super::group_commit::GroupCommit;
use super::rotation::{RotationSteps, rotate_optimistically};
use super::rows::{FamilyState, TokenRow};
use super::{
    ChangeNotifier, Denial, DenialBatch, Family, FamilyId, LoginAttempt, NewFamily, OnceKey,
    PurgeReport, RefreshStore, Revoke, Rotation, RotationOutcome, StoreChanges, StoreError,
    StoredKey, ThrottleKey, ThrottleRule, TokenHash, sqlx_error as backend,
};

/// The schema, checked against `migrations/postgres` at compile time.
static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// The notification channel of a store in the default schema.
const CHANNEL: &str = "tessera_changes";

/// How long the listener waits before connecting again after it could not.
const LISTEN_RETRY: Duration = Duration::from_secs(1);

/// Tuning of a [`PostgresStore`].
#[derive(Debug, Clone)]
pub struct PostgresStoreOptions {
    max_connections: u32,
    acquire_timeout: Duration,
    schema: Option<String>,
}

impl Default for PostgresStoreOptions {
    fn default() -> Self {
        PostgresStoreOptions {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
            schema: None,
        }
    }
}

impl PostgresStoreOptions {
    /// Default options: 16 connections, 5 s to get one, the database's default schema.
    pub fn new() -> Self {
        PostgresStoreOptions::default()
    }

    /// The most connections the store opens (at least 3: the rotation writer and the listener keep one
    /// each).
    #[must_use]
    pub fn max_connections(mut self, connections: u32) -> Self {
        self.max_connections = connections.max(3);
        self
    }

    /// How long a call waits for a connection (the database being unreachable) before failing with
    /// [`StoreError::Unavailable`].
    #[must_use]
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// Keeps the tables in `schema` (created if missing), so that several token services (or tests) share
    /// one database apart. Lowercase letters, digits and `_`, starting with a letter, at most 63.
    #[must_use]
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }
}

/// A [`RefreshStore`] in PostgreSQL, for several instances of the token service on one database.
///
/// Clones share the pool, the writer task and the listener. [`RefreshStore::close`] (or `Issuer::close`)
/// shuts them all down.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use tessera_issuer::{Issuer, PostgresStore};
///
/// let store = PostgresStore::connect("postgres://tessera@db.internal/tessera").await?;
/// let issuer = Issuer::builder()
///     .issuer("https://auth.example")
///     .audience("api")
///     .public_client("web")
///     .start(store) // keys, secret and revocations shared through the database
///     .await?;
/// # let _ = issuer;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
    rotations: GroupCommit,
    changes: ChangeNotifier,
    channel: Arc<str>,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("pool", &self.pool)
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/database?sslmode=...`) with
    /// default options and migrates it.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] if the database cannot be reached, [`StoreError::Backend`] if the URL
    /// is invalid or the migration fails.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        PostgresStore::connect_with(url, PostgresStoreOptions::default()).await
    }

    /// Connects to the database at `url` with `options` and migrates it.
    ///
    /// Call it inside the Tokio runtime that will use the store: the rotation writer and the listener are
    /// spawned on it.
    ///
    /// # Errors
    /// See [`PostgresStore::connect`]; an invalid schema name is [`StoreError::Backend`].
    pub async fn connect_with(
        url: &str,
        options: PostgresStoreOptions,
    ) -> Result<Self, StoreError> {
        let mut connect = PgConnectOptions::from_str(url).map_err(backend)?;
        let channel: Arc<str> = match &options.schema {
            Some(schema) => {
                if !valid_schema(schema) {
                    return Err(StoreError::Backend(
                        format!(
                            "the schema name `{schema}` is not 1 to 63 lowercase letters, digits and \
                             `_` starting with a letter"
                        )
                        .into(),
                    ));
                }
                create_schema(&connect, schema).await?;
                connect = connect.options([("search_path", schema.as_str())]);
                // Channel names are identifiers too: at most 63 bytes. A shared prefix only costs
                // spurious wake-ups.
                let name = format!("{CHANNEL}_{schema}");
                name[..name.len().min(63)].into()
            }
            None => CHANNEL.into(),
        };
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            // A broken connection fails its request and is dropped; a ping before every use would cost a
            // round trip per operation.
            .test_before_acquire(false)
            .connect_with(connect)
            .await
            .map_err(backend)?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|error| StoreError::Backend(Box::new(error)))?;
        let changes = ChangeNotifier::new();
        tokio::spawn(listen(pool.clone(), Arc::clone(&channel), changes.clone()));
        Ok(PostgresStore {
            rotations: GroupCommit::spawn(PgWriter::new(pool.clone())),
            pool,
            changes,
            channel,
        })
    }

    /// Runs `write` in a transaction that notifies every instance at its commit.
    async fn notifying<T>(
        &self,
        write: impl AsyncFnOnce(&mut sqlx::PgConnection) -> Result<(T, bool), StoreError>,
    ) -> Result<T, StoreError> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let (value, changed) = write(&mut tx).await?;
        if changed {
            queries::notify(&mut tx, &self.channel).await?;
        }
        tx.commit().await.map_err(backend)?;
        if changed {
            self.changes.notify();
        }
        Ok(value)
    }

    /// Revokes the families `which` names and denies their access tokens (and, for a user, every token
    /// issued before now), in one transaction.
    async fn revoke_and_deny(
        &self,
        which: Which<'_>,
        revoke: Revoke,
    ) -> Result<Vec<Family>, StoreError> {
        self.notifying(async |tx| {
            let revoked = queries::revoke(&mut *tx, which, &revoke).await?;
            for family in &revoked {
                queries::deny(tx, &revoke.session_denial(&family.id)).await?;
            }
            if let Which::User(user_id) = which {
                let subject = Denial::subject(user_id, revoke.now, revoke.denied_until());
                queries::deny(tx, &subject).await?;
            }
            let changed = !revoked.is_empty() || matches!(which, Which::User(_));
            Ok((revoked, changed))
        })
        .await
    }
}

/// Whether `schema` is a plain lowercase identifier (it is spliced into `CREATE SCHEMA`).
fn valid_schema(schema: &str) -> bool {
    schema.starts_with(|c: char| c.is_ascii_lowercase())
        && schema.len() <= 63
        && schema
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

async fn create_schema(connect: &PgConnectOptions, schema: &str) -> Result<(), StoreError> {
    let mut connection = sqlx::PgConnection::connect_with(connect)
        .await
        .map_err(backend)?;
    let created = connection
        .execute(sqlx::AssertSqlSafe(format!(
            "CREATE SCHEMA IF NOT EXISTS {schema}"
        )))
        .await;
    let closed = connection.close().await;
    match (created, closed) {
        // Two processes creating the schema at once: one of them loses the race on the catalog.
        (Err(sqlx::Error::Database(error)), _) if error.code().as_deref() == Some("23505") => {
            Ok(())
        }
        (Err(error), _) | (Ok(_), Err(error)) => Err(backend(error)),
        (Ok(_), Ok(())) => Ok(()),
    }
}

/// Listens on `channel` until the pool closes, waking the store's subscribers on every notification, and
/// on every reconnection (what was sent meanwhile is lost; the readers catch up).
async fn listen(pool: PgPool, channel: Arc<str>, changes: ChangeNotifier) {
    loop {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(listener) => listener,
            Err(sqlx::Error::PoolClosed) => return,
            Err(error) => {
                tracing::debug!(%error, "cannot listen for changes yet; retrying");
                tokio::time::sleep(LISTEN_RETRY).await;
                continue;
            }
        };
        if let Err(error) = listener.listen(&channel).await {
            tracing::debug!(%error, "LISTEN failed; retrying");
            tokio::time::sleep(LISTEN_RETRY).await;
            continue;
        }
        changes.notify();
        loop {
            match listener.try_recv().await {
                Ok(Some(_)) => changes.notify(),
                // The connection was lost and is re-established on the next call.
                Ok(None) => changes.notify(),
                Err(sqlx::Error::PoolClosed) => return,
                Err(error) => {
                    tracing::warn!(%error, "listening for changes failed; reconnecting");
                    tokio::time::sleep(LISTEN_RETRY).await;
                    break;
                }
            }
        }
    }
}

impl RotationSteps for PostgresStore {
    async fn swap(&self, rotation: &Rotation) -> Result<Option<Family>, StoreError> {
        self.rotations.swap(rotation.clone()).await
    }

    async fn token(&self, hash: TokenHash) -> Result<Option<TokenRow>, StoreError> {
        queries::token(&self.pool, hash).await
    }

    async fn state(&self, family_id: &str) -> Result<Option<FamilyState>, StoreError> {
        queries::family_state(&self.pool, family_id).await
    }

    async fn count_retry(
        &self,
        family_id: &str,
        generation: u64,
        max_retries: u32,
    ) -> Result<bool, StoreError> {
        queries::count_retry(&self.pool, family_id, generation, max_retries).await
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

impl RefreshStore for PostgresStore {
    async fn create_family(&self, new: NewFamily, cap: usize) -> Result<Vec<Family>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let evicted = queries::create_family(&mut tx, &new, cap).await?;
        tx.commit().await.map_err(backend)?;
        Ok(evicted)
    }

    async fn rotate(&self, rotation: Rotation) -> Result<RotationOutcome, StoreError> {
        rotate_optimistically(self, rotation).await
    }

    async fn find_by_token(&self, token: TokenHash) -> Result<Option<Family>, StoreError> {
        queries::family_by_token(&self.pool, token).await
    }

    async fn find_family(&self, id: &FamilyId) -> Result<Option<Family>, StoreError> {
        let state = queries::family_state(&self.pool, id.as_str()).await?;
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
        queries::live_families(&self.pool, user_id, now).await
    }

    async fn deny(&self, denial: Denial) -> Result<(), StoreError> {
        self.notifying(async |tx| {
            queries::deny(tx, &denial).await?;
            Ok(((), true))
        })
        .await
    }

    async fn denials_after(
        &self,
        after: u64,
        now: i64,
        limit: usize,
    ) -> Result<DenialBatch, StoreError> {
        queries::denials_after(&self.pool, after, now, limit.max(1)).await
    }

    async fn reserve_login(
        &self,
        key: &ThrottleKey,
        rule: &ThrottleRule,
        now: i64,
    ) -> Result<LoginAttempt, StoreError> {
        queries::reserve_login(&self.pool, key, rule, now).await
    }

    async fn clear_login_attempts(&self, key: &ThrottleKey) -> Result<(), StoreError> {
        queries::clear_login(&self.pool, key).await
    }

    async fn use_once(&self, key: &OnceKey, expires_at: i64, now: i64) -> Result<bool, StoreError> {
        queries::use_once(&self.pool, key, expires_at, now).await
    }

    async fn signing_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        queries::signing_keys(&self.pool).await
    }

    async fn add_signing_key(
        &self,
        key: StoredKey,
        only_if_none: bool,
    ) -> Result<Vec<StoredKey>, StoreError> {
        self.notifying(async |tx| queries::add_signing_key(tx, &key, only_if_none).await)
            .await
    }

    async fn remove_signing_key(&self, kid: &str) -> Result<bool, StoreError> {
        self.notifying(async |tx| {
            let removed = queries::remove_signing_key(tx, kid).await?;
            Ok((removed, removed))
        })
        .await
    }

    async fn shared_secret(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>, StoreError> {
        queries::shared_secret(&self.pool, name, candidate).await
    }

    async fn purge_expired(&self, now: i64, batch: usize) -> Result<PurgeReport, StoreError> {
        queries::purge(&self.pool, now, batch).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.pool.execute("SELECT 1").await.map_err(backend)?;
        Ok(())
    }

    fn subscribe(&self) -> Option<StoreChanges> {
        Some(self.changes.subscribe())
    }

    /// Answers every rotation already queued for the writer task and stops it, then closes the pool (the
    /// listener stops with it).
    async fn close(&self) {
        self.rotations.close().await;
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_plain_identifiers() {
        assert!(valid_schema("tessera_test_7"));
        for bad in ["", "7up", "Upper", "a-b", "a;drop", &"a".repeat(64)] {
            assert!(!valid_schema(bad), "{bad}");
        }
    }
}
