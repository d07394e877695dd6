//! Revoked access tokens as a store keeps them, so that revocations survive restarts.

/// Every access token of a user issued before a moment is revoked (logout everywhere, password change).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserDenial {
    /// The user (`sub`).
    pub user_id: String,
    /// Tokens with an `iat` before this second are revoked.
    pub issued_before: i64,
    /// When every such token has expired and the denial can go.
    pub until: i64,
}

/// The access-token revocations a store holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessDenials {
    /// Individually revoked tokens: `(jti, exp)`.
    pub tokens: Vec<(String, i64)>,
    /// Per-user revocations.
    pub users: Vec<UserDenial>,
}
