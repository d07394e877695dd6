//! How SQLite writes a batch of the group commit (see `store::group_commit`): in one `BEGIN IMMEDIATE …
//! COMMIT`, or in autocommit mode for a lone swap.
//!
//! - A failing swap costs no other rotation its write. A swap is one `UPDATE` (its trigger's `INSERT`
//!   included), and neither has an `ON CONFLICT`/`OR` clause or a `RAISE`, so a failure is resolved by
//!   SQLite's default `ABORT`: the statement's own changes are undone and the transaction stays open with
//!   the changes of earlier statements. Only `SQLITE_FULL`, `SQLITE_IOERR`, `SQLITE_BUSY` and
//!   `SQLITE_NOMEM` may instead roll back the whole transaction, after which later statements would run
//!   in autocommit mode, outside it. So the transaction ends at the first failing swap: what came before
//!   is committed (if the whole transaction was rolled back, the `COMMIT` fails and those callers get the
//!   error, which is then true), the failing swap is answered with its own error, and the rest of the batch
//!   goes into a new transaction. This needs no `SAVEPOINT` per swap, which would triple the statements.
//! - Swaps run in queue order on one connection, so a later swap of the same family sees the earlier one's
//!   uncommitted result, exactly as if they had been serialized; its caller, answered after the commit,
//!   then reads the committed state (a retry within grace, or a replay) from the reader pool.
//!
//! What bounds the throughput is not SQLite but the trips to the thread on which sqlx runs the connection
//! (each a channel send and a thread wake-up both ways). So the swaps of a transaction go there as one
//! query string of consecutive statements, and a transaction costs three trips (`BEGIN`, the swaps,
//! `COMMIT`) however many swaps it holds. sqlx 0.9 runs such multi-statement queries for SQLite but calls
//! the behaviour deprecated (launchbadge/sqlx#3108): the tests below run full batches, so a sqlx upgrade
//! that drops it fails them instead of failing rotations.

use std::sync::Arc;

use futures_util::StreamExt as _;
use sqlx::sqlite::{SqlitePool, SqliteRow};
use sqlx::{AssertSqlSafe, Either, Executor as _, FromRow as _};

use super::queries::{SWAP, bind_swap};
use crate::store::group_commit::{Answer, BatchWriter, GroupCommitError};
use crate::store::rows::FamilyRow;
use crate::store::sqlx_error as backend;
use crate::store::{Family, Rotation};

/// The SQLite half of the group commit: the writer connection's pool, and the batch statements built so
/// far.
pub(super) struct SqliteWriter {
    pool: SqlitePool,
    statements: Statements,
}

impl SqliteWriter {
    pub(super) fn new(pool: SqlitePool) -> Self {
        SqliteWriter {
            pool,
            statements: Statements::default(),
        }
    }
}

impl BatchWriter for SqliteWriter {
    async fn write(&mut self, batch: &[Rotation]) -> Vec<Answer> {
        execute(&self.pool, &mut self.statements, batch).await
    }
}

/// The query strings of `1..=MAX_BATCH` consecutive swaps, each built on first use.
#[derive(Default)]
struct Statements(Vec<Arc<str>>);

impl Statements {
    /// The query string that runs `count` swaps, one after another.
    fn swaps(&mut self, count: usize) -> Arc<str> {
        if self.0.is_empty() {
            self.0.push(SWAP.into());
        }
        while self.0.len() < count {
            let longer = format!("{}{SWAP}", self.0[self.0.len() - 1]);
            self.0.push(longer.into());
        }
        Arc::clone(&self.0[count - 1])
    }
}
/// Answers every job of `batch`, in order, running them in consecutive transactions (see the module docs).
async fn execute(
    pool: &SqlitePool,
    statements: &mut Statements,
    batch: &[Rotation],
) -> Vec<Answer> {
    let mut answers = Vec::with_capacity(batch.len());
    while answers.len() < batch.len() {
        let rest = &batch[answers.len()..];
        match transaction(pool, statements, rest).await {
            Ok(done) => answers.extend(done),
            Err(source) => {
                tracing::warn!(error = %source, size = rest.len(), "group commit failed");
                let source = Arc::new(source);
                let fail = || {
                    Err(GroupCommitError::Transaction {
                        size: rest.len(),
                        source: Arc::clone(&source),
                    }
                    .into())
                };
                answers.extend(std::iter::repeat_with(fail).take(rest.len()));
            }
        }
    }
    answers
}

/// Runs `jobs` in one `BEGIN IMMEDIATE … COMMIT`, in order, up to and including the first swap that fails,
/// and answers that prefix (never empty); a lone swap runs in autocommit mode instead. All the swaps go to
/// the connection's thread as one query of consecutive statements, so the transaction costs three trips
/// to that thread however many swaps it holds. An error means nothing of the prefix was committed.
async fn transaction(
    pool: &SqlitePool,
    statements: &mut Statements,
    jobs: &[Rotation],
) -> Result<Vec<Answer>, sqlx::Error> {
    let query = jobs.iter().fold(
        sqlx::query(AssertSqlSafe(statements.swaps(jobs.len()))),
        bind_swap,
    );
    if jobs.len() == 1 {
        let row = query.fetch_optional(pool).await;
        return Ok(vec![answer(row)]);
    }
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let mut answers = Vec::with_capacity(jobs.len());
    {
        // One `Left` (the statement's summary) ends each swap, after its `Right` (the row) if it applied.
        let mut results = tx.fetch_many(query);
        let mut row = None;
        while let Some(result) = results.next().await {
            match result {
                Ok(Either::Right(returned)) => row = Some(returned),
                Ok(Either::Left(_)) => answers.push(answer(Ok(row.take()))),
                Err(error) => {
                    answers.push(answer(Err(error)));
                    break;
                }
            }
        }
    }
    if answers.is_empty() {
        return Err(sqlx::Error::Protocol(
            "SQLite answered a batch of swaps with no result".into(),
        ));
    }
    tx.commit().await?;
    Ok(answers)
}

/// A swap's answer from its statement's result.
fn answer(row: Result<Option<SqliteRow>, sqlx::Error>) -> Answer {
    row.map_err(backend)?
        .map(|row| Family::try_from(FamilyRow::from_row(&row).map_err(backend)?))
        .transpose()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use crate::store::{
        FamilyId, NewFamily, RefreshStore as _, RequestFingerprint, Rotation, RotationOutcome,
        RotationSalt, SqliteStore, StoreError, TokenHash,
    };

    const NOW: i64 = 1_800_000_000;

    fn hash(family: u8, generation: u8) -> TokenHash {
        TokenHash::from_slice(&[family, generation].repeat(16)).unwrap()
    }

    fn rotation(family: u8, presented: u8, successor: TokenHash) -> Rotation {
        Rotation {
            presented: hash(family, presented),
            client_id: "app".into(),
            successor,
            salt: RotationSalt::from_slice(&[7; 32]).unwrap(),
            now: NOW,
            idle_ttl: 3_600,
            grace: 30,
            fingerprint: RequestFingerprint::from_slice(&[1; 32]).unwrap(),
            max_retries: 3,
            dpop_jkt: None,
            deny_access_for: 1_200,
        }
    }

    async fn create(store: &SqliteStore, family: u8) {
        let new = NewFamily {
            id: FamilyId::from(format!("family-{family}")),
            user_id: format!("user-{family}"),
            client_id: "app".into(),
            scope: None,
            roles: Vec::new(),
            user_agent: None,
            dpop_jkt: None,
            token: hash(family, 0),
            created_at: NOW,
            absolute_expires_at: NOW + 86_400,
            idle_expires_at: NOW + 3_600,
        };
        store.create_family(new, 10).await.unwrap();
    }

    /// On a current-thread runtime the five rotations all queue before the writer task runs, so they go
    /// into one batch: the second sees the first's swap, and the failing one takes nobody down with it,
    /// neither the swaps before it nor the one after it.
    #[tokio::test]
    async fn a_batch_behaves_as_if_serialized_and_isolates_a_failing_swap() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("tokens.db"))
            .await
            .unwrap();
        for family in 1..=4 {
            create(&store, family).await;
        }

        let (first, duplicate, other, colliding, after) = tokio::join!(
            store.rotate(rotation(1, 0, hash(1, 1))),
            store.rotate(rotation(1, 0, hash(1, 9))),
            store.rotate(rotation(2, 0, hash(2, 1))),
            // The successor's hash is already recorded: the trigger's insert violates the primary key.
            store.rotate(rotation(3, 0, hash(2, 0))),
            store.rotate(rotation(4, 0, hash(4, 1))),
        );

        assert!(
            matches!(first.unwrap(), RotationOutcome::Rotated(family) if family.generation == 1)
        );
        match duplicate.unwrap() {
            RotationOutcome::Retry { successor, .. } => assert_eq!(successor, hash(1, 1)),
            outcome => panic!("expected a retry of the first rotation, got {outcome:?}"),
        }
        assert!(
            matches!(other.unwrap(), RotationOutcome::Rotated(family) if family.generation == 1)
        );
        assert!(matches!(colliding, Err(StoreError::Backend(_))));
        assert!(
            matches!(after.unwrap(), RotationOutcome::Rotated(family) if family.generation == 1)
        );
        for family in [1, 2, 4] {
            let found = store.find_by_token(hash(family, 1)).await.unwrap();
            assert!(found.is_some(), "family {family}'s rotation was committed");
        }
        let untouched = store
            .find_family(&FamilyId::from("family-3".to_owned()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(untouched.generation, 0);
        store.close().await;
    }

    /// More rotations than one transaction carries, all queued at once: each is answered with its own
    /// family, however far into its batch's query it ran.
    #[tokio::test]
    async fn every_swap_of_a_full_batch_applies() {
        const FAMILIES: u8 = 70;
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(
            SqliteStore::open(dir.path().join("tokens.db"))
                .await
                .unwrap(),
        );
        for family in 1..=FAMILIES {
            create(&store, family).await;
        }

        let rotations: Vec<_> = (1..=FAMILIES)
            .map(|family| {
                let store = std::sync::Arc::clone(&store);
                tokio::spawn(
                    async move { store.rotate(rotation(family, 0, hash(family, 1))).await },
                )
            })
            .collect();

        for (family, rotated) in (1..=FAMILIES).zip(rotations) {
            match rotated.await.unwrap().unwrap() {
                RotationOutcome::Rotated(rotated) => {
                    assert_eq!(rotated.id, FamilyId::from(format!("family-{family}")));
                    assert_eq!(rotated.generation, 1);
                }
                outcome => panic!("family {family}: expected a rotation, got {outcome:?}"),
            }
        }
        store.close().await;
    }

    /// Closing while rotations wait for the writer answers them with their committed result first; only
    /// the calls after the close are refused, and they are told the store was closed.
    #[tokio::test]
    async fn closing_answers_the_queued_rotations_then_refuses_more() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.db");
        let store = SqliteStore::open(&path).await.unwrap();
        for family in 1..=3 {
            create(&store, family).await;
        }

        // The only writer connection is held until the close has begun, so both rotations are still
        // waiting for the writer when it does.
        let held = store.writer.acquire().await.unwrap();
        let closing = {
            let store = &store;
            async move {
                while !store.rotations.closed.load(Ordering::SeqCst) && !store.writer.is_closed() {
                    tokio::task::yield_now().await;
                }
                drop(held);
            }
        };
        let (first, second, (), ()) = tokio::join!(
            store.rotate(rotation(1, 0, hash(1, 1))),
            store.rotate(rotation(2, 0, hash(2, 1))),
            store.close(),
            closing,
        );
        for (family, rotated) in [(1, first), (2, second)] {
            match rotated {
                Ok(RotationOutcome::Rotated(rotated)) => assert_eq!(rotated.generation, 1),
                other => panic!("family {family}: expected a rotation, got {other:?}"),
            }
        }
        assert!(matches!(
            store.rotate(rotation(3, 0, hash(3, 1))).await,
            Err(StoreError::Closed)
        ));
        assert!(matches!(
            store.find_by_token(hash(1, 1)).await,
            Err(StoreError::Closed)
        ));
        store.close().await;

        let reopened = SqliteStore::open(&path).await.unwrap();
        for family in [1, 2] {
            let found = reopened.find_by_token(hash(family, 1)).await.unwrap();
            assert_eq!(found.map(|family| family.generation), Some(1), "committed");
        }
        reopened.close().await;
    }
}
