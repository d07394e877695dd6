//! The rows the SQL stores' queries return ([`sqlx::FromRow`], SQLite and PostgreSQL alike: both store the
//! same column types) and their checked conversion into the store's types: a value the database cannot hold
//! for us (a negative generation, an unknown revoke reason, a hash of the wrong length) is
//! [`StoreError::Corrupt`], naming the record and the column.

use sqlx::FromRow;

use tessera_core::jose::Algorithm;

use crate::store::{
    Denial, DenialBatch, DenialKind, Family, FamilyId, RequestFingerprint, Revocation,
    RevokeReason, RotationSalt, StoreError, StoredKey, TokenHash,
};

/// The columns of `token_families` that make a [`Family`], in [`FamilyRow`]'s order.
macro_rules! family_columns {
    () => {
        "id, user_id, client_id, scope, roles, user_agent, generation, created_at, last_used_at, \
         absolute_expires_at, idle_expires_at, revoked_at, revoke_reason, dpop_jkt"
    };
}
pub(super) use family_columns;

/// A `token_families` row, as [`family_columns!`] selects it.
#[derive(Debug, FromRow)]
pub(super) struct FamilyRow {
    id: String,
    user_id: String,
    client_id: String,
    scope: Option<String>,
    /// A JSON array of strings.
    roles: String,
    user_agent: Option<String>,
    generation: i64,
    created_at: i64,
    last_used_at: i64,
    absolute_expires_at: i64,
    idle_expires_at: i64,
    revoked_at: Option<i64>,
    revoke_reason: Option<String>,
    dpop_jkt: Option<String>,
}

impl TryFrom<FamilyRow> for Family {
    type Error = StoreError;

    fn try_from(row: FamilyRow) -> Result<Family, StoreError> {
        let id = row.id;
        let roles = serde_json::from_str(&row.roles).map_err(|_| corrupt(&id, "roles"))?;
        let revoked = match (row.revoked_at, row.revoke_reason) {
            (Some(at), Some(reason)) => Some(Revocation {
                at,
                reason: RevokeReason::parse(&reason)
                    .ok_or_else(|| corrupt(&id, "revoke_reason"))?,
            }),
            (None, None) => None,
            _ => return Err(corrupt(&id, "revoked_at/revoke_reason")),
        };
        Ok(Family {
            generation: generation(&id, row.generation)?,
            user_id: row.user_id,
            client_id: row.client_id,
            scope: row.scope,
            roles,
            user_agent: row.user_agent,
            dpop_jkt: row.dpop_jkt,
            created_at: row.created_at,
            last_used_at: row.last_used_at,
            absolute_expires_at: row.absolute_expires_at,
            idle_expires_at: row.idle_expires_at,
            revoked,
            id: FamilyId::from(id),
        })
    }
}

/// A family with what a retry needs: the salt and the request fingerprint of its last rotation, the
/// retries served since, and the hash of its current token.
#[derive(Debug, FromRow)]
pub(super) struct FamilyStateRow {
    #[sqlx(flatten)]
    family: FamilyRow,
    rotation_salt: Option<Vec<u8>>,
    rotation_fingerprint: Option<Vec<u8>>,
    retries: i64,
    current_hash: Vec<u8>,
}

/// [`FamilyStateRow`], converted.
#[derive(Debug)]
pub(super) struct FamilyState {
    pub(super) family: Family,
    /// `None` until the first rotation.
    pub(super) salt: Option<RotationSalt>,
    /// `None` until the first rotation, and in rows rotated before fingerprints were kept.
    pub(super) fingerprint: Option<RequestFingerprint>,
    pub(super) retries: u32,
    pub(super) current: TokenHash,
}

impl TryFrom<FamilyStateRow> for FamilyState {
    type Error = StoreError;

    fn try_from(row: FamilyStateRow) -> Result<FamilyState, StoreError> {
        let id = row.family.id.clone();
        let salt = row
            .rotation_salt
            .map(|bytes| {
                RotationSalt::from_slice(&bytes).ok_or_else(|| corrupt(&id, "rotation_salt"))
            })
            .transpose()?;
        let fingerprint = row
            .rotation_fingerprint
            .map(|bytes| {
                RequestFingerprint::from_slice(&bytes)
                    .ok_or_else(|| corrupt(&id, "rotation_fingerprint"))
            })
            .transpose()?;
        let retries = u32::try_from(row.retries).map_err(|_| corrupt(&id, "retries"))?;
        let current =
            TokenHash::from_slice(&row.current_hash).ok_or_else(|| corrupt(&id, "current_hash"))?;
        Ok(FamilyState {
            family: Family::try_from(row.family)?,
            salt,
            fingerprint,
            retries,
            current,
        })
    }
}

/// A recorded token: which family and generation it belongs to, and that family's client.
#[derive(Debug, FromRow)]
pub(super) struct TokenRow {
    pub(super) family_id: String,
    generation: i64,
    pub(super) client_id: String,
}

impl TokenRow {
    /// The generation of the token.
    pub(super) fn generation(&self) -> Result<u64, StoreError> {
        generation(&self.family_id, self.generation)
    }
}

/// An `access_denials` row.
#[derive(Debug, FromRow)]
pub(super) struct DenialRow {
    kind: String,
    key: String,
    issued_before: i64,
    until: i64,
}

impl TryFrom<DenialRow> for Denial {
    type Error = StoreError;

    fn try_from(row: DenialRow) -> Result<Denial, StoreError> {
        match DenialKind::parse(&row.kind) {
            Some(DenialKind::Token) => Ok(Denial::token(row.key, row.until)),
            Some(DenialKind::Session) => Ok(Denial::session(row.key, row.until)),
            Some(DenialKind::Subject) => Ok(Denial::subject(row.key, row.issued_before, row.until)),
            None => Err(StoreError::Corrupt(format!(
                "access denial `{}`: unknown kind `{}`",
                row.key, row.kind
            ))),
        }
    }
}

/// A `signing_keys` row.
#[derive(Debug, FromRow)]
pub(super) struct KeyRow {
    kid: String,
    algorithm: String,
    material: Vec<u8>,
    created_at: i64,
    active_from: i64,
}

impl TryFrom<KeyRow> for StoredKey {
    type Error = StoreError;

    fn try_from(row: KeyRow) -> Result<StoredKey, StoreError> {
        let algorithm = Algorithm::from_name(&row.algorithm).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "signing key `{}`: unknown algorithm `{}`",
                row.kid, row.algorithm
            ))
        })?;
        Ok(StoredKey {
            kid: row.kid,
            algorithm,
            material: row.material,
            created_at: row.created_at,
            active_from: row.active_from,
        })
    }
}

fn generation(family_id: &str, stored: i64) -> Result<u64, StoreError> {
    u64::try_from(stored).map_err(|_| corrupt(family_id, "generation"))
}

pub(super) fn corrupt(family_id: &str, column: &str) -> StoreError {
    StoreError::Corrupt(format!(
        "family {family_id}: column `{column}` has an invalid value"
    ))
}

/// The batch of [`RefreshStore::denials_after`](super::RefreshStore::denials_after) from rows of
/// `(seq, denial)` read with `limit`.
pub(super) fn denial_batch(
    rows: Vec<(i64, DenialRow)>,
    after: u64,
    limit: usize,
) -> Result<DenialBatch, StoreError> {
    let mut batch = DenialBatch {
        last: after,
        more: rows.len() >= limit,
        denials: Vec::with_capacity(rows.len()),
    };
    for (seq, row) in rows {
        batch.last = u64::try_from(seq)
            .map_err(|_| StoreError::Corrupt(format!("access denial: negative sequence {seq}")))?;
        batch.denials.push(Denial::try_from(row)?);
    }
    Ok(batch)
}
