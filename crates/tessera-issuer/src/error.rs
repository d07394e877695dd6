//! Why a token-service request failed, one variant per RFC 6749 §5.2 (and RFC 7009) answer.
//!
//! The failures of the parts below the endpoints (the store, the credential backend, signing, the OS
//! random generator) convert into [`TokenError::Internal`] through `From`, so `?` carries them up; the
//! HTTP layer (`http/response.rs`) owns the one mapping to status codes and headers.

use tessera_core::jose::ProofError;
use tessera_core::random::RandomError;

use crate::credentials::CredentialError;
use crate::minting::MintError;
use crate::store::StoreError;

/// A refused token-service request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TokenError {
    /// 400 `invalid_request`: missing, repeated or malformed parameter, unsupported body.
    #[error("{0}")]
    InvalidRequest(String),
    /// 401 `invalid_client` with `WWW-Authenticate`.
    #[error("{0}")]
    InvalidClient(String),
    /// 400 `invalid_grant`: bad password, unknown, expired, revoked or reused refresh token.
    #[error("{0}")]
    InvalidGrant(&'static str),
    /// 400 `unauthorized_client`: the client may not use this grant.
    #[error("{0}")]
    UnauthorizedClient(String),
    /// 400 `unsupported_grant_type`.
    #[error("{0}")]
    UnsupportedGrantType(String),
    /// 400 `invalid_scope`.
    #[error("{0}")]
    InvalidScope(String),
    /// 429 `slow_down` with `Retry-After`: too many failed logins for this username.
    #[error("too many failed logins for this username; retry in {retry_after} s")]
    Throttled {
        /// Seconds until the next attempt is accepted.
        retry_after: u64,
    },
    /// 503 `temporarily_unavailable` with `Retry-After`: every credential check is busy and the queue
    /// in front of them is full.
    #[error("too many logins are being checked at once; retry in {retry_after} s")]
    Overloaded {
        /// Seconds to wait before retrying.
        retry_after: u64,
    },
    /// 400 `invalid_dpop_proof` (RFC 9449 §5): the token request's DPoP proof failed a check.
    #[error("{0}")]
    InvalidDpopProof(ProofError),
    /// 400 `invalid_dpop_proof`: the client must send a DPoP proof and sent none.
    #[error("this client must send a DPoP proof with every token request")]
    DpopRequired,
    /// 400 `use_dpop_nonce` (RFC 9449 §8): the proof lacks the server's current nonce, which the answer
    /// carries in `DPoP-Nonce`.
    #[error("the DPoP proof must carry the nonce of the DPoP-Nonce header")]
    UseDpopNonce,
    /// 403 `insufficient_scope`: a client-credentials token on an endpoint that acts for a signed-in user.
    #[error(
        "this endpoint acts for a signed-in user; a client-credentials token speaks for no user"
    )]
    NotAUser,
    /// 413: the body exceeds the configured limit.
    #[error("the request body exceeds {limit} bytes")]
    PayloadTooLarge {
        /// The limit.
        limit: usize,
    },
    /// 404: no such session of the signed-in user.
    #[error("no session with this id belongs to the signed-in user")]
    SessionNotFound,
    /// 500 `server_error`: the store, the credential backend or signing failed. The detail is logged, never
    /// sent.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Failures below the endpoints: each becomes [`TokenError::Internal`], its text logged and never sent.
macro_rules! internal_from {
    ($($source:ty),* $(,)?) => {$(
        impl From<$source> for TokenError {
            fn from(error: $source) -> Self {
                TokenError::Internal(error.to_string())
            }
        }
    )*};
}

internal_from!(StoreError, CredentialError, MintError, RandomError);
