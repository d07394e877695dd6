//! How PostgreSQL writes a batch of the group commit (see `store::group_commit`): every swap of the batch in
//! one statement, one round trip and one commit, on a connection the writer keeps (so no connection is
//! checked out and pinged back per rotation).
//!
//! The statement joins the batch (arrays, `unnest … WITH ORDINALITY`) to the presented tokens' records,
//! updates each family whose generation is still the presented one, records each successor, and returns
//! the rotated families with their place in the batch. It keeps the semantics of the swaps running one
//! after another:
//! - Each family row is updated by at most one swap of the statement: a token presented twice in one batch
//!   goes in once, and its other presentations are answered "not applied" after the commit, so they read
//!   the committed rotation (a retry within grace, or a replay) like a swap that lost to another instance.
//!   Two different tokens of one family cannot both be current.
//! - Under READ COMMITTED, a row another instance updated meanwhile is re-checked against the presented
//!   generation (PostgreSQL's re-evaluation of `UPDATE … WHERE`), so of concurrent swaps of one token on
//!   any number of instances exactly one applies.
//! - The presented tokens are looked up once (a `MATERIALIZED` step), then each family by its primary key
//!   ([`PLAN`]): otherwise the planner may join each batch row to every family of the same client before
//!   looking its token up (the square of the batch), or scan the families.
//! - A failing statement (a successor hash that is already recorded, say) is retried swap by swap, so it
//!   costs no other rotation its write; a lost connection fails the batch, which was then not committed
//!   (the statement runs in autocommit), and the next batch takes a new connection.

use std::collections::HashMap;

use sqlx::FromRow as _;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgPool, PgRow};
use sqlx::{Executor as _, Postgres, Row as _};

use crate::store::group_commit::{Answer, BatchWriter};
use crate::store::rows::{FamilyRow, family_columns};
use crate::store::{Family, Rotation, StoreError, sqlx_error as backend};

/// The swaps of a batch, as one statement (parameters: arrays of presented hash, successor hash, salt,
/// client, now, idle lifetime, request fingerprint, DPoP key thumbprint). A swap also keeps the rotating
/// request's fingerprint and resets the retry count, and applies to a family bound to a DPoP key only with
/// that key.
const SWAPS: &str = concat!(
    "WITH batch AS (\
       SELECT * FROM unnest($1::bytea[], $2::bytea[], $3::bytea[], $4::text[], $5::int8[], $6::int8[], \
         $7::bytea[], $8::text[]) \
       WITH ORDINALITY AS b (presented, successor, salt, presenting_client, now, idle_ttl, fingerprint, \
         presented_jkt, place)), \
     presented AS MATERIALIZED (\
       SELECT b.*, t.family_id, t.generation AS presented_generation \
       FROM batch b JOIN refresh_tokens t ON t.hash = b.presented), \
     swapped AS (\
       UPDATE token_families f SET generation = f.generation + 1, last_used_at = p.now, \
         idle_expires_at = LEAST(p.now + p.idle_ttl, f.absolute_expires_at), \
         current_hash = p.successor, rotation_salt = p.salt, rotation_fingerprint = p.fingerprint, \
         retries = 0 \
       FROM presented p \
       WHERE f.id = p.family_id AND f.generation = p.presented_generation AND f.client_id = p.presenting_client \
         AND f.revoked_at IS NULL AND p.now < f.idle_expires_at AND p.now < f.absolute_expires_at \
         AND (f.dpop_jkt IS NULL OR f.dpop_jkt = p.presented_jkt) \
       RETURNING p.place, f.current_hash, ",
    family_columns!(),
    "), \
     recorded AS (\
       INSERT INTO refresh_tokens (hash, family_id, generation) \
       SELECT current_hash, id, generation FROM swapped) \
     SELECT place, ",
    family_columns!(),
    " FROM swapped"
);

/// The writer connection's planner settings: the swap is always a walk of the batch through the primary
/// keys (a few index probes per rotation). Left to estimates, the planner may scan and hash the families
/// instead, which a small, busy table (whose heap is mostly dead row versions between vacuums) makes many
/// times slower; this connection runs nothing else.
const PLAN: &str =
    "SET enable_seqscan = off; SET enable_hashjoin = off; SET enable_mergejoin = off";

/// The PostgreSQL half of the group commit.
pub(super) struct PgWriter {
    pool: PgPool,
    connection: Option<PoolConnection<Postgres>>,
}

impl PgWriter {
    pub(super) fn new(pool: PgPool) -> Self {
        PgWriter {
            pool,
            connection: None,
        }
    }

    /// Runs the swaps of `rotations` in one statement: the rotated family of each that applied, by its
    /// index in `rotations`.
    async fn swap_all(
        &mut self,
        rotations: &[&Rotation],
    ) -> Result<HashMap<usize, Family>, StoreError> {
        let connection = match &mut self.connection {
            Some(connection) => connection,
            None => {
                let mut connection = self.pool.acquire().await.map_err(backend)?;
                connection.execute(PLAN).await.map_err(backend)?;
                self.connection.insert(connection)
            }
        };
        let bytes = |field: fn(&Rotation) -> &[u8]| -> Vec<Vec<u8>> {
            rotations
                .iter()
                .map(|rotation| field(rotation).to_vec())
                .collect()
        };
        let rows: Result<Vec<PgRow>, sqlx::Error> = sqlx::query(SWAPS)
            .bind(bytes(|rotation| rotation.presented.as_bytes()))
            .bind(bytes(|rotation| rotation.successor.as_bytes()))
            .bind(bytes(|rotation| rotation.salt.as_bytes()))
            .bind(
                rotations
                    .iter()
                    .map(|rotation| rotation.client_id.clone())
                    .collect::<Vec<String>>(),
            )
            .bind(
                rotations
                    .iter()
                    .map(|rotation| rotation.now)
                    .collect::<Vec<i64>>(),
            )
            .bind(
                rotations
                    .iter()
                    .map(|rotation| rotation.idle_ttl)
                    .collect::<Vec<i64>>(),
            )
            .bind(bytes(|rotation| rotation.fingerprint.as_bytes()))
            .bind(
                rotations
                    .iter()
                    .map(|rotation| rotation.dpop_jkt.clone())
                    .collect::<Vec<Option<String>>>(),
            )
            .fetch_all(&mut **connection)
            .await;
        let rows = rows.map_err(|error| {
            if !matches!(error, sqlx::Error::Database(_)) {
                // The connection may be broken: the next batch takes another.
                self.connection = None;
            }
            backend(error)
        })?;
        let mut swapped = HashMap::with_capacity(rows.len());
        for row in rows {
            let place: i64 = row.try_get("place").map_err(backend)?;
            let family = Family::try_from(FamilyRow::from_row(&row).map_err(backend)?)?;
            let index = usize::try_from(place - 1)
                .map_err(|_| StoreError::Corrupt(format!("a swap returned the place {place}")))?;
            swapped.insert(index, family);
        }
        Ok(swapped)
    }
}

impl PgWriter {
    /// Answers each of `unique` (no token twice), in order.
    async fn write_unique(&mut self, unique: &[&Rotation]) -> Vec<Answer> {
        match self.swap_all(unique).await {
            Ok(mut swapped) => (0..unique.len())
                .map(|index| Ok(swapped.remove(&index)))
                .collect(),
            Err(StoreError::Backend(_)) if unique.len() > 1 => {
                // One swap failed the statement: run them one by one, so only it fails.
                let mut answers = Vec::with_capacity(unique.len());
                for rotation in unique {
                    let swapped = self.swap_all(&[rotation]).await;
                    answers.push(swapped.map(|mut swapped| swapped.remove(&0)));
                }
                answers
            }
            Err(error) => {
                tracing::warn!(%error, size = unique.len(), "a batch of rotations failed");
                let unavailable = matches!(error, StoreError::Unavailable(_));
                let detail = error.to_string();
                (0..unique.len())
                    .map(|_| {
                        let source = detail.clone().into();
                        Err(if unavailable {
                            StoreError::Unavailable(source)
                        } else {
                            StoreError::Backend(source)
                        })
                    })
                    .collect()
            }
        }
    }
}

impl BatchWriter for PgWriter {
    async fn write(&mut self, batch: &[Rotation]) -> Vec<Answer> {
        // Each presented token once: its later presentations in the batch are answered "not applied".
        let mut first_of = HashMap::with_capacity(batch.len());
        let mut unique = Vec::with_capacity(batch.len());
        for (index, rotation) in batch.iter().enumerate() {
            first_of.entry(rotation.presented).or_insert_with(|| {
                unique.push(rotation);
                index
            });
        }
        let mut answers = self.write_unique(&unique).await.into_iter();
        batch
            .iter()
            .enumerate()
            .map(|(index, rotation)| {
                if first_of.get(&rotation.presented) == Some(&index) {
                    answers.next().unwrap_or_else(|| {
                        Err(StoreError::Corrupt(
                            "a swap of the batch went unanswered".into(),
                        ))
                    })
                } else {
                    Ok(None)
                }
            })
            .collect()
    }
}
