//! The statements SQLite and PostgreSQL share word for word (both read `$1`-style parameters), written once:
//! [`shared_statements!`] expands them, with the binding and the conversion of their rows, into each
//! backend's `queries` module for its sqlx database type. What differs between the two (the rotation's
//! swap, recording a first token, the denial sequence, the throttle's arithmetic, locking) stays in each
//! backend's module, which also supplies `insert_family` (its SQL; the values are bound by the shared
//! `bind_new_family`), `lock_logins`, `lock_signing_keys` and
//! `RESERVE_LOGIN` to the shared code.

/// Expands the shared statements for the sqlx database `$db` (`sqlx::Sqlite`, `sqlx::Postgres`).
macro_rules! shared_statements {
    ($db:ty) => {
        use crate::store::rows::{
            DenialRow, FamilyRow, FamilyState, FamilyStateRow, KeyRow, TokenRow, denial_batch,
            family_columns,
        };
        use crate::store::{
            DenialBatch, Family, LoginAttempt, NewFamily, OnceKey, PurgeReport, Revoke,
            RevokeReason, StoreError, StoredKey, ThrottleKey, ThrottleRule, TokenHash, duplicate_kid,
            sqlx_error as backend,
        };

        /// A family with its rotation state.
        pub(super) async fn family_state(
            db: impl sqlx::Executor<'_, Database = $db>,
            id: &str,
        ) -> Result<Option<FamilyState>, StoreError> {
            const SQL: &str = concat!(
                "SELECT ",
                family_columns!(),
                ", rotation_salt, rotation_fingerprint, retries, current_hash \
                 FROM token_families WHERE id = $1"
            );
            sqlx::query_as::<_, FamilyStateRow>(SQL)
                .bind(id)
                .fetch_optional(db)
                .await
                .map_err(backend)?
                .map(FamilyState::try_from)
                .transpose()
        }

        /// Counts one more retry served for the family at `generation`, if it is still at that
        /// generation, not revoked, and below `max_retries`; `false` otherwise (the caller reads the
        /// family again).
        pub(super) async fn count_retry(
            db: impl sqlx::Executor<'_, Database = $db>,
            id: &str,
            generation: u64,
            max_retries: u32,
        ) -> Result<bool, StoreError> {
            let generation = i64::try_from(generation).unwrap_or(i64::MAX);
            let counted: Option<i64> = sqlx::query_scalar(
                "UPDATE token_families SET retries = retries + 1 \
                 WHERE id = $1 AND generation = $2 AND retries < $3 AND revoked_at IS NULL \
                 RETURNING retries",
            )
            .bind(id)
            .bind(generation)
            .bind(i64::from(max_retries))
            .fetch_optional(db)
            .await
            .map_err(backend)?;
            Ok(counted.is_some())
        }

        /// The family, generation and client of a recorded token.
        pub(super) async fn token(
            db: impl sqlx::Executor<'_, Database = $db>,
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
            db: impl sqlx::Executor<'_, Database = $db>,
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
            db: impl sqlx::Executor<'_, Database = $db>,
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

        /// Revokes the not-yet-revoked families `which` names; returns those it revoked. The caller denies
        /// their access tokens in the same transaction.
        pub(super) async fn revoke(
            db: impl sqlx::Executor<'_, Database = $db>,
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

        /// Creates a family in the transaction `tx`, first revoking the user's oldest live families for
        /// the client beyond `cap` ([`RevokeReason::Evicted`]); returns those. `lock_logins` keeps
        /// concurrent logins of the user on the client out until the transaction ends.
        pub(super) async fn create_family(
            tx: &mut <$db as sqlx::Database>::Connection,
            new: &NewFamily,
            cap: usize,
        ) -> Result<Vec<Family>, StoreError> {
            lock_logins(&mut *tx, new).await?;
            let live = count_live(&mut *tx, new).await?;
            let cap = i64::try_from(cap.max(1)).unwrap_or(i64::MAX);
            let excess = (live + 1).saturating_sub(cap);
            let evicted = if excess > 0 {
                evict_oldest(&mut *tx, new, excess).await?
            } else {
                Vec::new()
            };
            insert_family(&mut *tx, new).await?;
            Ok(evicted)
        }

        /// Binds a new family's values to `insert`, the backend's `insert_family` statement, in the order
        /// both backends number them: id, user, client, scope, roles (JSON), user agent, first token's
        /// hash, creation time, absolute end, idle end, DPoP key thumbprint.
        fn bind_new_family<'q>(
            insert: sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments>,
            new: &'q NewFamily,
        ) -> Result<sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments>, StoreError> {
            let roles = serde_json::to_string(&new.roles)
                .map_err(|error| StoreError::Backend(Box::new(error)))?;
            Ok(insert
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
                .bind(new.dpop_jkt.as_deref()))
        }

        /// How many live families the user has for the client.
        async fn count_live(
            db: impl sqlx::Executor<'_, Database = $db>,
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

        /// Revokes the `count` oldest live families of the user for the client
        /// ([`RevokeReason::Evicted`]).
        async fn evict_oldest(
            db: impl sqlx::Executor<'_, Database = $db>,
            new: &NewFamily,
            count: i64,
        ) -> Result<Vec<Family>, StoreError> {
            const SQL: &str = concat!(
                "UPDATE token_families SET revoked_at = $3, revoke_reason = $5 WHERE id IN (\
                 SELECT id FROM token_families WHERE user_id = $1 AND client_id = $2 \
                 AND revoked_at IS NULL AND $3 < idle_expires_at AND $3 < absolute_expires_at \
                 ORDER BY created_at, id LIMIT $4) RETURNING ",
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

        /// The denials in force at `now` written after `after`, oldest write first.
        pub(super) async fn denials_after(
            db: impl sqlx::Executor<'_, Database = $db>,
            after: u64,
            now: i64,
            limit: usize,
        ) -> Result<DenialBatch, StoreError> {
            /// A denial with its sequence number.
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

        /// Reserves a login attempt with the backend's `RESERVE_LOGIN` (parameters: key, now, window, lock
        /// after, base delay, max delay), which counts it unless the key is locked.
        pub(super) async fn reserve_login(
            db: &sqlx::Pool<$db>,
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
        pub(super) async fn clear_login(
            db: impl sqlx::Executor<'_, Database = $db>,
            key: &ThrottleKey,
        ) -> Result<(), StoreError> {
            sqlx::query("DELETE FROM login_throttle WHERE key = $1")
                .bind(key.as_bytes().as_slice())
                .execute(db)
                .await
                .map_err(backend)?;
            Ok(())
        }

        /// Records a one-time value; whether this was its first use.
        pub(super) async fn use_once(
            db: impl sqlx::Executor<'_, Database = $db>,
            key: &OnceKey,
            expires_at: i64,
            now: i64,
        ) -> Result<bool, StoreError> {
            let first: Option<i32> = sqlx::query_scalar(
                "INSERT INTO one_time_values (key, expires_at) VALUES ($1, $2) \
                 ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at \
                 WHERE one_time_values.expires_at <= $3 RETURNING 1",
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
        pub(super) async fn signing_keys(
            db: impl sqlx::Executor<'_, Database = $db>,
        ) -> Result<Vec<StoredKey>, StoreError> {
            let rows: Vec<KeyRow> = sqlx::query_as(
                "SELECT kid, algorithm, material, created_at, active_from FROM signing_keys \
                 ORDER BY active_from, kid",
            )
            .fetch_all(db)
            .await
            .map_err(backend)?;
            rows.into_iter().map(StoredKey::try_from).collect()
        }

        /// Adds a signing key unless `only_if_none` and one exists, inside a transaction that
        /// `lock_signing_keys` keeps other instances out of; every key afterwards, and whether it added.
        pub(super) async fn add_signing_key(
            tx: &mut <$db as sqlx::Database>::Connection,
            key: &StoredKey,
            only_if_none: bool,
        ) -> Result<(Vec<StoredKey>, bool), StoreError> {
            lock_signing_keys(&mut *tx).await?;
            let keys: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM signing_keys")
                .fetch_one(&mut *tx)
                .await
                .map_err(backend)?;
            let add = !only_if_none || keys == 0;
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
            db: impl sqlx::Executor<'_, Database = $db>,
            kid: &str,
        ) -> Result<bool, StoreError> {
            let done = sqlx::query("DELETE FROM signing_keys WHERE kid = $1")
                .bind(kid)
                .execute(db)
                .await
                .map_err(backend)?;
            Ok(done.rows_affected() > 0)
        }

        /// The shared secret `name`, stored from `candidate` if absent (a concurrent insert of another
        /// instance is waited for, then read).
        pub(super) async fn shared_secret(
            db: &sqlx::Pool<$db>,
            name: &str,
            candidate: &[u8],
        ) -> Result<Vec<u8>, StoreError> {
            sqlx::query(
                "INSERT INTO shared_secrets (name, value) VALUES ($1, $2) \
                 ON CONFLICT (name) DO NOTHING",
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

        /// One purge batch (see
        /// [`RefreshStore::purge_expired`](crate::store::RefreshStore::purge_expired)).
        pub(super) async fn purge(
            db: &sqlx::Pool<$db>,
            now: i64,
            batch: usize,
        ) -> Result<PurgeReport, StoreError> {
            // Both start from the earliest-expired families, found through the expiry index, and look
            // their tokens up by family: a batch costs the same on a table of 10k or of 1M families.
            // (Filtering before limiting let PostgreSQL answer the anti-join with a scan of every refresh
            // token, once per batch: 337 ms a batch at 1M families.)
            const TOKENS: &str = "DELETE FROM refresh_tokens WHERE hash IN (SELECT t.hash \
                 FROM (SELECT id FROM token_families WHERE idle_expires_at <= $1 \
                 ORDER BY idle_expires_at LIMIT $2) f \
                 JOIN refresh_tokens t ON t.family_id = f.id LIMIT $2)";
            const FAMILIES: &str = "DELETE FROM token_families WHERE id IN (SELECT f.id \
                 FROM (SELECT id FROM token_families WHERE idle_expires_at <= $1 \
                 ORDER BY idle_expires_at LIMIT $2) f \
                 WHERE NOT EXISTS (SELECT 1 FROM refresh_tokens t WHERE t.family_id = f.id))";
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
            db: impl sqlx::Executor<'_, Database = $db>,
            query: sqlx::query::QueryAs<
                '_,
                $db,
                FamilyRow,
                <$db as sqlx::Database>::Arguments,
            >,
        ) -> Result<Vec<Family>, StoreError> {
            query
                .fetch_all(db)
                .await
                .map_err(backend)?
                .into_iter()
                .map(Family::try_from)
                .collect()
        }
    };
}

pub(super) use shared_statements;
