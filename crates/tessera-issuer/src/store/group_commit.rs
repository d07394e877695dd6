//! Group commit of rotations: one writer task takes every rotation queued at the time and writes them
//! together, in as few transactions (and trips to the database) as the backend manages; a lone rotation is
//! written at once. No timer ever waits for more work.
//!
//! This is the queue and its life cycle, shared by the SQL backends; each backend's [`BatchWriter`] writes a
//! batch, with the semantics of running its rotations one after another, each in its own transaction:
//! - a caller is answered only once its write is committed, or with the error that kept it from being
//!   written;
//! - a failing swap costs no other rotation its write;
//! - a later swap of the same family sees the earlier one's result, as if they had been serialized.
//!
//! [`GroupCommit::close`] queues a stop behind the rotations already accepted: the task closes the queue
//! (later rotations fail at once with [`StoreError::Closed`]), answers everything still in it, and only then
//! acknowledges, so no accepted rotation is lost to a shutdown.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::{mpsc, oneshot};

use super::{Family, Rotation, StoreError};

/// The most rotations one transaction carries.
pub(super) const MAX_BATCH: usize = 64;

/// How many rotations may wait for the writer before callers wait to enqueue theirs.
const QUEUE_CAPACITY: usize = 1024;

/// What a queued swap is answered with: the rotated family, `None` if the swap did not apply.
pub(super) type Answer = Result<Option<Family>, StoreError>;

/// Why a queued rotation got no answer of its own.
#[derive(Debug, thiserror::Error)]
pub(super) enum GroupCommitError {
    /// The transaction that held, or would have held, the rotation could not begin or commit: none of
    /// the rotations it was to hold was written.
    #[error("the group commit of {size} rotations failed")]
    Transaction {
        /// How many rotations failed with it.
        size: usize,
        /// What SQLite said.
        #[source]
        source: Arc<sqlx::Error>,
    },
    /// The writer task is gone without having been closed: its Tokio runtime shut down.
    #[error("the store's writer task has stopped; its Tokio runtime shut down")]
    Stopped,
}

impl From<GroupCommitError> for StoreError {
    fn from(error: GroupCommitError) -> Self {
        StoreError::Backend(Box::new(error))
    }
}

/// What the writer task is asked to do.
enum Message {
    /// Run a swap and answer it (boxed: a rotation is several times the size of a close).
    Swap {
        rotation: Box<Rotation>,
        reply: oneshot::Sender<Answer>,
    },
    /// Answer everything queued, then stop and acknowledge.
    Close(oneshot::Sender<()>),
}

/// Writes a batch of swaps: the backend's half of a [`GroupCommit`].
pub(super) trait BatchWriter: Send + 'static {
    /// Answers each rotation of `batch` (at most [`MAX_BATCH`]), in order: the rotated family once its
    /// swap is committed, `None` if the presented token was not current, or the error that kept it from
    /// being written.
    fn write(&mut self, batch: &[Rotation]) -> impl Future<Output = Vec<Answer>> + Send;
}

/// The handle to the writer task; the task ends once it is closed or every handle is dropped.
#[derive(Debug, Clone)]
pub(super) struct GroupCommit {
    queue: mpsc::Sender<Message>,
    /// Set by [`GroupCommit::close`], so that a refused rotation is told the store was closed, rather than
    /// that the task died.
    pub(super) closed: Arc<AtomicBool>,
}

impl GroupCommit {
    /// Spawns the writer task, which writes through `writer`, on the current Tokio runtime.
    pub(super) fn spawn(writer: impl BatchWriter) -> Self {
        let (queue, messages) = mpsc::channel(QUEUE_CAPACITY);
        tokio::spawn(run(writer, messages));
        GroupCommit {
            queue,
            closed: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Runs `rotation`'s compare-and-swap in the writer's next transaction, answering once it committed.
    pub(super) async fn swap(&self, rotation: Rotation) -> Answer {
        let (reply, answer) = oneshot::channel();
        if self
            .queue
            .send(Message::Swap {
                rotation: Box::new(rotation),
                reply,
            })
            .await
            .is_err()
        {
            return Err(self.refused());
        }
        answer.await.map_err(|_| self.refused())?
    }

    /// Answers every rotation queued so far, then stops the task; later rotations fail with
    /// [`StoreError::Closed`]. Returns once the task has stopped (at once if it already had).
    pub(super) async fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let (done, stopped) = oneshot::channel();
        if self.queue.send(Message::Close(done)).await.is_ok() && stopped.await.is_err() {
            tracing::debug!("the store's writer task stopped before acknowledging the close");
        }
    }

    /// Why the task took no rotation: closed on purpose, or gone with its runtime.
    fn refused(&self) -> StoreError {
        if self.closed.load(Ordering::SeqCst) {
            StoreError::Closed
        } else {
            GroupCommitError::Stopped.into()
        }
    }
}

/// The writer task: takes whatever is queued, has it written, answers, repeats.
async fn run(mut writer: impl BatchWriter, mut queue: mpsc::Receiver<Message>) {
    let mut messages = Vec::with_capacity(MAX_BATCH);
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut closers = Vec::new();
    while queue.recv_many(&mut messages, MAX_BATCH).await > 0 {
        for message in messages.drain(..) {
            match message {
                Message::Swap { rotation, reply } => batch.push(Job {
                    rotation: *rotation,
                    reply,
                }),
                Message::Close(done) => {
                    // What is queued behind still gets answered: `recv_many` drains the closed queue.
                    queue.close();
                    closers.push(done);
                }
            }
        }
        if batch.is_empty() {
            continue;
        }
        tracing::trace!(size = batch.len(), "group commit");
        let rotations: Vec<Rotation> = batch.iter().map(|job| job.rotation.clone()).collect();
        let answers = writer.write(&rotations).await;
        for (job, answer) in batch.drain(..).zip(answers) {
            if job.reply.send(answer).is_err() {
                tracing::debug!("a rotation's caller left before its transaction committed");
            }
        }
    }
    for done in closers {
        // The closer may have given up waiting; nothing is lost either way.
        done.send(()).ok();
    }
}

/// A swap waiting for the writer, and where its answer goes.
struct Job {
    rotation: Rotation,
    reply: oneshot::Sender<Answer>,
}
