//! Argon2id password hashing, shared by the built-in user table and confidential clients' secrets.

use std::fmt;
use std::sync::OnceLock;

use tokio::sync::Semaphore;

use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier as _, Version};

use tessera_core::random::{self, RandomError};

/// A password (or client secret) could not be hashed or a stored hash is unusable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordError {
    /// The Argon2 parameters are out of range.
    #[error("invalid Argon2 parameters: {0}")]
    Params(String),
    /// A stored hash is not an Argon2 PHC string (`$argon2id$v=19$m=...`).
    #[error("not an Argon2 PHC hash string: {0}")]
    InvalidHash(String),
    /// Hashing failed.
    #[error("password hashing failed: {0}")]
    Hash(String),
    /// The verification task did not complete (the runtime is shutting down).
    #[error("password verification did not complete: {0}")]
    Verification(String),
    /// The OS random generator failed.
    #[error(transparent)]
    Random(#[from] RandomError),
}

/// Argon2id parameters for hashing passwords and client secrets.
///
/// The default is OWASP's recommendation (19 MiB of memory, 2 passes, 1 lane). Hashes carry their own
/// parameters, so changing these affects new hashes only.
#[derive(Clone)]
pub struct PasswordHashing {
    params: Params,
}

impl Default for PasswordHashing {
    fn default() -> Self {
        PasswordHashing {
            params: Params::DEFAULT,
        }
    }
}

impl fmt::Debug for PasswordHashing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordHashing")
            .field("memory_kib", &self.params.m_cost())
            .field("iterations", &self.params.t_cost())
            .finish()
    }
}

impl PasswordHashing {
    /// Argon2id with `memory_kib` KiB of memory and `iterations` passes, one lane.
    ///
    /// # Errors
    /// [`PasswordError::Params`] if Argon2 rejects the values (memory under 8 KiB, zero passes).
    pub fn new(memory_kib: u32, iterations: u32) -> Result<Self, PasswordError> {
        Params::new(memory_kib, iterations, 1, None)
            .map(|params| PasswordHashing { params })
            .map_err(|error| PasswordError::Params(error.to_string()))
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    /// A PHC string (`$argon2id$v=19$m=...`) for `password`, with a fresh 16-byte salt.
    ///
    /// # Errors
    /// [`PasswordError::Hash`] or [`PasswordError::Random`].
    pub fn hash(&self, password: &str) -> Result<String, PasswordError> {
        let salt = random::bytes::<16>()?;
        self.argon2()
            .hash_password_with_salt(password.as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(|error| PasswordError::Hash(error.to_string()))
    }
}

/// Checks that `hash` is an Argon2 PHC string.
pub(crate) fn validate_hash(hash: &str) -> Result<(), PasswordError> {
    argon2::PasswordHash::new(hash)
        .map(drop)
        .map_err(|error| PasswordError::InvalidHash(error.to_string()))
}

/// Whether `password` matches `hash`, on tokio's blocking pool.
///
/// At most twice as many verifications as there are CPUs run at once: each holds its memory cost (19 MiB
/// by default) for tens of milliseconds, so a login flood waits its turn instead of exhausting memory
/// and the blocking pool.
pub(crate) async fn verify_blocking(password: String, hash: String) -> Result<bool, PasswordError> {
    static LIMIT: OnceLock<Semaphore> = OnceLock::new();
    let limit = LIMIT.get_or_init(|| {
        let cpus = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        Semaphore::new(cpus * 2)
    });
    // The semaphore is never closed.
    let _permit = limit
        .acquire()
        .await
        .map_err(|error| PasswordError::Verification(error.to_string()))?;
    tokio::task::spawn_blocking(move || verify(&password, &hash))
        .await
        .map_err(|error| PasswordError::Verification(error.to_string()))
}

/// Whether `password` matches `hash`; comparison is constant-time inside Argon2.
fn verify(password: &str, hash: &str) -> bool {
    Argon2::default()
        .verify_password(password.as_bytes(), hash)
        .is_ok()
}
