//! The contract every [`RefreshStore`] keeps, as one suite any backend can run (cargo feature `testing`).
//!
//! [`run_contract_suite`] runs every case on a fresh store from your constructor, on a clock the suite
//! controls, and fails listing each case that broke the contract:
//!
//! ```
//! use tessera_issuer::MemoryStore;
//! use tessera_issuer::store::testing::run_contract_suite;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // In a backend's tests: #[tokio::test] async fn keeps_the_store_contract() { ... }
//! run_contract_suite(|_case| async { MemoryStore::new() }).await;
//! # }
//! ```
//!
//! A backend keeps the cases apart by [`Case::name`]: a file per case, as below, or a schema or database
//! per case on a shared server (PostgreSQL: `CREATE SCHEMA` named after the case, then connect with that
//! `search_path`).
//!
//! ```no_run
//! use tessera_issuer::SqliteStore;
//! use tessera_issuer::store::testing::run_contract_suite;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let dir = tempfile::tempdir().unwrap();
//! run_contract_suite(|case| {
//!     let path = dir.path().join(format!("{}.db", case.name()));
//!     async move { SqliteStore::open(path).await.unwrap() }
//! })
//! .await;
//! # }
//! ```
//!
//! What the suite relies on:
//! - **Isolation**: every case starts from the store the constructor returns, which must hold no
//!   families and no denials. Cases run one after another, never concurrently, and the suite
//!   [closes](RefreshStore::close) each store when its case is done.
//! - **Time**: a store never reads a clock; every time it sees is an argument, taken from
//!   [`Case::clock`], a [`ManualClock`] starting at [`START`] that the cases move. A backend that needs a
//!   clock of its own (for its connections, say) can take this one.
//! - **Concurrency**: some cases issue many calls at once, from one task (rotations of one token, login
//!   reservations, uses of one value, the first signing key): the store must settle them as if they had
//!   come one after another.

#![allow(
    clippy::unwrap_used,
    reason = "a contract case fails by panicking, as any test does"
)]

mod cases;

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt as _;
use tessera_core::ManualClock;

use super::RefreshStore;

/// The time every case starts at, seconds since the Unix epoch (2027-01-15).
pub const START: i64 = 1_800_000_000;

/// One case of the suite, handed to the store constructor.
#[derive(Debug, Clone)]
pub struct Case {
    name: &'static str,
    clock: ManualClock,
}

impl Case {
    /// The case's name, unique in the suite and a valid SQL identifier: a database, schema or file name
    /// that keeps this case's data apart from the others'.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The suite's clock for this case; it starts at [`START`] and only the case moves it.
    pub fn clock(&self) -> &ManualClock {
        &self.clock
    }
}

/// Runs every contract case on a store from `new_store`, one case after another; panics once all have run
/// if any failed, naming each failure.
///
/// # Panics
/// If a case fails (its own panic message is printed as it happens and repeated in the summary), or if
/// `new_store` panics.
pub async fn run_contract_suite<S, F, Fut>(mut new_store: F)
where
    S: RefreshStore,
    F: FnMut(Case) -> Fut,
    Fut: Future<Output = S>,
{
    let mut failures: Vec<(&str, String)> = Vec::new();
    let mut total = 0;
    macro_rules! run {
        ($($case:ident),* $(,)?) => {$(
            total += 1;
            let clock = ManualClock::at_unix(START);
            let case = Case { name: stringify!($case), clock: clock.clone() };
            let store = new_store(case).await;
            match AssertUnwindSafe(cases::$case(&store, &clock)).catch_unwind().await {
                Ok(()) => store.close().await,
                Err(panic) => failures.push((stringify!($case), message(&*panic))),
            }
        )*};
    }
    run!(
        current_token_rotates,
        previous_token_within_grace_is_a_retry,
        previous_token_after_grace_is_a_replay,
        older_generations_are_replays_even_within_grace,
        zero_grace_makes_every_reuse_a_replay,
        concurrent_rotations_of_one_token_install_one_successor,
        unknown_tokens_are_unknown,
        absolute_expiry_is_exclusive_and_fixed,
        idle_expiry_slides_with_each_rotation,
        revoked_families_refuse_every_token,
        cap_evicts_the_oldest_live_family,
        revoking_a_user_ends_every_session,
        another_clients_token_is_refused_untouched,
        tokens_of_any_generation_find_their_family,
        purge_deletes_expired_families_in_batches,
        revoking_a_family_denies_its_access_tokens,
        revoking_a_user_denies_each_session_and_every_earlier_token,
        a_replay_denies_the_familys_access_tokens,
        denials_keep_their_later_bounds_and_are_read_in_write_order,
        denial_sequence_numbers_never_go_back,
        login_reservations_follow_the_rule,
        concurrent_login_reservations_allow_exactly_the_free_attempts,
        throttle_entries_are_purged_after_their_window_and_lockout,
        one_time_values_are_accepted_once_until_they_expire,
        the_first_signing_key_is_added_once,
        shared_secrets_are_created_once,
        a_closed_store_refuses_every_call,
        a_retry_is_served_only_to_the_rotating_requester,
        retries_of_one_generation_are_capped,
        a_family_bound_to_a_dpop_key_needs_that_key,
    );
    if !failures.is_empty() {
        let list: Vec<String> = failures
            .iter()
            .map(|(case, message)| format!("- {case}: {message}"))
            .collect();
        panic!(
            "{} of {total} store contract cases failed:\n{}",
            failures.len(),
            list.join("\n")
        );
    }
}

/// The text of a panic payload.
fn message(panic: &(dyn Any + Send)) -> String {
    match (panic.downcast_ref::<&str>(), panic.downcast_ref::<String>()) {
        (Some(text), _) => (*text).to_owned(),
        (None, Some(text)) => text.clone(),
        (None, None) => "(a panic without a message)".to_owned(),
    }
}
