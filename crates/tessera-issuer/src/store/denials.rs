//! Access-token denials as a store keeps them: each with the sequence number of its last write, so that
//! every reader (the instances of the token service, the feed for API processes) resumes where it stopped.

pub use tessera_server::{Denial, DenialKind, DenialTarget};

/// Denials written after a sequence number, oldest write first (see
/// [`RefreshStore::denials_after`](super::RefreshStore::denials_after)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DenialBatch {
    /// The denials still in force, each with the bounds of its last write.
    pub denials: Vec<Denial>,
    /// The sequence number to resume after: the last write returned, or the one asked after if none.
    pub last: u64,
    /// Whether the batch was cut at its limit, so more may follow at once.
    pub more: bool,
}
