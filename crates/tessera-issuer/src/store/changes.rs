//! Change notifications: how a store tells the token service that denials or signing keys changed, so that
//! every instance applies a revocation within moments instead of at its next poll.

use tokio::sync::watch;

/// The sending half: a store keeps one and calls [`ChangeNotifier::notify`] after each write of a denial or
/// a key (and, if it can, when another instance wrote one).
#[derive(Debug, Clone)]
pub struct ChangeNotifier {
    sender: watch::Sender<u64>,
}

/// The receiving half, from [`RefreshStore::subscribe`](super::RefreshStore::subscribe).
#[derive(Debug, Clone)]
pub struct StoreChanges {
    receiver: watch::Receiver<u64>,
}

impl Default for ChangeNotifier {
    fn default() -> Self {
        ChangeNotifier {
            sender: watch::Sender::new(0),
        }
    }
}

impl ChangeNotifier {
    /// A notifier nobody listens to yet.
    pub fn new() -> Self {
        ChangeNotifier::default()
    }

    /// Wakes every subscriber (coalesced: several notifications before a subscriber looks count once).
    pub fn notify(&self) {
        self.sender
            .send_modify(|count| *count = count.wrapping_add(1));
    }

    /// A new subscription, which sees the notifications made from now on.
    pub fn subscribe(&self) -> StoreChanges {
        StoreChanges {
            receiver: self.sender.subscribe(),
        }
    }
}

impl StoreChanges {
    /// Waits for the next notification; `false` once the store is gone and none will come.
    pub async fn changed(&mut self) -> bool {
        self.receiver.changed().await.is_ok()
    }
}
