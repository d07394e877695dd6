//! Randomness from the operating system's CSPRNG (through aws-lc-rs), and its base64url encoding.

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The operating system's random generator failed: the host cannot produce secrets, so nothing is issued.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the operating system's random number generator failed; no secret can be produced")]
pub struct RandomError;

/// `N` bytes from the OS CSPRNG.
///
/// # Errors
/// [`RandomError`] when the OS generator fails.
pub fn bytes<const N: usize>() -> Result<[u8; N], RandomError> {
    let mut out = [0_u8; N];
    SystemRandom::new()
        .fill(&mut out)
        .map_err(|_| RandomError)?;
    Ok(out)
}

/// `N` random bytes, base64url-encoded without padding: identifiers such as `jti`, family ids and `kid`s.
///
/// ```
/// assert_eq!(tessera_core::random::id::<12>()?.len(), 16);
/// # Ok::<(), tessera_core::random::RandomError>(())
/// ```
///
/// # Errors
/// [`RandomError`] when the OS generator fails.
pub fn id<const N: usize>() -> Result<String, RandomError> {
    Ok(URL_SAFE_NO_PAD.encode(bytes::<N>()?))
}
