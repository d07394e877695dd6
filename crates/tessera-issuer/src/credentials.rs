//! Checking a user's password: the [`CredentialVerifier`] trait and the built-in argon2id [`UserTable`].

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{Semaphore, SemaphorePermit};

use crate::password::{self, PasswordError, PasswordHashing};

/// A user whose password checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedUser {
    /// The stable user id, used as the access token's `sub`.
    pub subject: String,
    /// Roles carried in the access tokens' `roles` claim.
    pub roles: Vec<String>,
}

/// The credential backend failed (not "wrong password": that is `Ok(None)`).
#[derive(Debug, thiserror::Error)]
#[error("the credential backend failed: {source}")]
pub struct CredentialError {
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl CredentialError {
    /// Wraps the backend's error.
    pub fn new(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        CredentialError {
            source: source.into(),
        }
    }
}

/// The future a [`CredentialVerifier`] returns.
pub type VerifyFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Option<VerifiedUser>, CredentialError>> + Send + 'a>>;

/// Checks a username and password for the password grant.
///
/// Answer `Ok(None)` for an unknown user and for a wrong password alike, and take about the same time for
/// both (verify against a dummy hash when the user is unknown), so neither the answer nor its timing tells
/// an attacker which usernames exist. The token service already answers both with identical bytes.
///
/// ```
/// use tessera_issuer::{CredentialVerifier, VerifiedUser, VerifyFuture};
///
/// /// Accepts one hard-coded service account (a stand-in for an LDAP bind or a database lookup).
/// struct Directory;
///
/// impl CredentialVerifier for Directory {
///     fn verify<'a>(&'a self, username: &'a str, password: &'a str) -> VerifyFuture<'a> {
///         Box::pin(async move {
///             let ok = username == "robot" && password == "beep";
///             Ok(ok.then(|| VerifiedUser { subject: "robot".into(), roles: vec![] }))
///         })
///     }
/// }
/// ```
pub trait CredentialVerifier: Send + Sync + 'static {
    /// `Some(user)` if the password is right, `None` if the user is unknown or the password wrong.
    fn verify<'a>(&'a self, username: &'a str, password: &'a str) -> VerifyFuture<'a>;
}

/// The built-in user table: usernames with argon2id password hashes and roles, in memory.
///
/// Verification runs on tokio's blocking pool. An unknown username is verified against a dummy hash made
/// with the same parameters, so it costs the same time as a wrong password.
///
/// ```
/// use tessera_issuer::{PasswordHashing, UserTable};
///
/// let mut users = UserTable::with_hashing(PasswordHashing::new(64, 1)?)?;
/// users.add_user("alice", "wonderland", ["admin"])?;
/// assert!(users.contains("alice"));
/// # Ok::<(), tessera_issuer::PasswordError>(())
/// ```
#[derive(Clone)]
pub struct UserTable {
    hashing: PasswordHashing,
    users: HashMap<String, Arc<UserRecord>>,
    dummy: Arc<UserRecord>,
}

struct UserRecord {
    hash: String,
    roles: Vec<String>,
}

impl fmt::Debug for UserTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserTable")
            .field("users", &self.users.len())
            .field("hashing", &self.hashing)
            .finish()
    }
}

impl UserTable {
    /// An empty table hashing with [`PasswordHashing::default`].
    ///
    /// # Errors
    /// [`PasswordError`] if the dummy hash cannot be made.
    pub fn new() -> Result<Self, PasswordError> {
        UserTable::with_hashing(PasswordHashing::default())
    }

    /// An empty table hashing with `hashing`.
    ///
    /// # Errors
    /// [`PasswordError`] if the dummy hash cannot be made.
    pub fn with_hashing(hashing: PasswordHashing) -> Result<Self, PasswordError> {
        let dummy = Arc::new(UserRecord {
            hash: hashing.hash("tessera dummy password")?,
            roles: Vec::new(),
        });
        Ok(UserTable {
            hashing,
            users: HashMap::new(),
            dummy,
        })
    }

    /// Adds (or replaces) a user, hashing `password`.
    ///
    /// # Errors
    /// [`PasswordError`] if hashing fails.
    pub fn add_user(
        &mut self,
        username: impl Into<String>,
        password: &str,
        roles: impl IntoIterator<Item = impl Into<String>>,
    ) -> Result<(), PasswordError> {
        let hash = self.hashing.hash(password)?;
        self.insert(username.into(), hash, roles);
        Ok(())
    }

    /// Adds (or replaces) a user from an existing argon2 PHC hash string.
    ///
    /// # Errors
    /// [`PasswordError::InvalidHash`] if `hash` is not a PHC string.
    pub fn add_user_hash(
        &mut self,
        username: impl Into<String>,
        hash: impl Into<String>,
        roles: impl IntoIterator<Item = impl Into<String>>,
    ) -> Result<(), PasswordError> {
        let hash = hash.into();
        password::validate_hash(&hash)?;
        self.insert(username.into(), hash, roles);
        Ok(())
    }

    fn insert(
        &mut self,
        username: String,
        hash: String,
        roles: impl IntoIterator<Item = impl Into<String>>,
    ) {
        let roles = roles.into_iter().map(Into::into).collect();
        self.users
            .insert(username, Arc::new(UserRecord { hash, roles }));
    }

    /// Whether the table has this user.
    pub fn contains(&self, username: &str) -> bool {
        self.users.contains_key(username)
    }

    /// The number of users.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether the table has no users.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

impl CredentialVerifier for UserTable {
    fn verify<'a>(&'a self, username: &'a str, password: &'a str) -> VerifyFuture<'a> {
        let user = self.users.get(username).cloned();
        let record = user.clone().unwrap_or_else(|| self.dummy.clone());
        let password = password.to_owned();
        let subject = username.to_owned();
        Box::pin(async move {
            let matches = password::verify_blocking(password, record.hash.clone())
                .await
                .map_err(CredentialError::new)?;
            Ok(match user {
                Some(user) if matches => Some(VerifiedUser {
                    subject,
                    roles: user.roles.clone(),
                }),
                _ => None,
            })
        })
    }
}

/// The gate in front of every credential check (the password grant's [`CredentialVerifier`] and client
/// secrets): at most `concurrent` checks run at once and at most `queued` wait their turn, first come
/// first served; any request beyond that is shed at once instead of queueing without bound, so a flood
/// of logins costs neither unbounded memory nor unbounded latency.
#[derive(Debug)]
pub(crate) struct CredentialChecks {
    running: Semaphore,
    waiting: AtomicUsize,
    max_waiting: usize,
}

/// Every check is running and the queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Overloaded;

impl CredentialChecks {
    /// `concurrent` must be at least 1 (the builder checks it).
    pub(crate) fn new(concurrent: usize, queued: usize) -> Self {
        CredentialChecks {
            running: Semaphore::new(concurrent),
            waiting: AtomicUsize::new(0),
            max_waiting: queued,
        }
    }

    /// Waits for a turn to check a credential; [`Overloaded`] at once if the queue is full. The check
    /// runs while the returned permit is held.
    pub(crate) async fn admit(&self) -> Result<SemaphorePermit<'_>, Overloaded> {
        self.enter()?.turn().await
    }

    /// Takes a place in line without waiting: a turn if one is free, else a place in the queue;
    /// [`Overloaded`] if the queue is full. What must not happen to a request that is shed (spending a
    /// login attempt) can happen between this and [`Place::turn`].
    pub(crate) fn enter(&self) -> Result<Place<'_>, Overloaded> {
        if let Ok(permit) = self.running.try_acquire() {
            return Ok(Place::Running(permit));
        }
        self.waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |waiting| {
                (waiting < self.max_waiting).then_some(waiting + 1)
            })
            .map_err(|_| Overloaded)?;
        Ok(Place::Queued {
            running: &self.running,
            _place: QueuePlace(&self.waiting),
        })
    }
}

/// A request's place in [`CredentialChecks`]: its turn, or a place in the queue, given up on drop.
#[derive(Debug)]
pub(crate) enum Place<'a> {
    Running(SemaphorePermit<'a>),
    Queued {
        running: &'a Semaphore,
        _place: QueuePlace<'a>,
    },
}

impl<'a> Place<'a> {
    /// Waits for the turn; the check runs while the returned permit is held.
    pub(crate) async fn turn(self) -> Result<SemaphorePermit<'a>, Overloaded> {
        match self {
            Place::Running(permit) => Ok(permit),
            // The queue place is left however the wait ends, including when the request is dropped while
            // waiting. The semaphore is never closed, so acquiring only fails if it were.
            Place::Queued { running, _place } => running.acquire().await.map_err(|_| Overloaded),
        }
    }
}

/// A place in [`CredentialChecks`]' queue, given up on drop.
#[derive(Debug)]
pub(crate) struct QueuePlace<'a>(&'a AtomicUsize);

impl Drop for QueuePlace<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt as _;

    use super::*;

    #[tokio::test]
    async fn checks_beyond_the_running_and_queued_ones_are_shed() {
        let checks = CredentialChecks::new(1, 1);
        let running = checks.admit().await.unwrap();
        let mut queued = Box::pin(checks.admit());
        assert!(
            queued.as_mut().now_or_never().is_none(),
            "the second waits its turn"
        );
        assert_eq!(
            checks.admit().await.unwrap_err(),
            Overloaded,
            "the third is shed"
        );
        drop(running);
        let second = queued.await.unwrap();
        let mut third = Box::pin(checks.admit());
        assert!(
            third.as_mut().now_or_never().is_none(),
            "the queue has room again"
        );
        drop(third);
        drop(second);
        assert_eq!(
            checks.waiting.load(Ordering::Acquire),
            0,
            "a dropped waiter leaves the queue"
        );
        assert!(checks.admit().await.is_ok());
    }
}
