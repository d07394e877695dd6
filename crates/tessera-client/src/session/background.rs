//! The optional background refresh: at about half of each token's lifetime the session refreshes without
//! any request having to wait, and after a failure it tries again once the backoff is over, for as long as
//! that token is current and unexpired. The task holds only a weak reference, so dropping the middleware
//! stops it.

use std::sync::{Arc, Weak};
use std::time::Duration;

use tessera_core::Sleep;
use tracing::debug;

use super::flight::Landing;
use super::lease::Session;
use super::state::BackgroundStep;
use crate::extensions::TokenGeneration;

impl Session {
    /// Refreshes `generation` after `delay`, retrying after each backoff while it is still current and
    /// unexpired.
    pub(super) fn schedule_background(
        self: &Arc<Self>,
        generation: TokenGeneration,
        delay: Duration,
    ) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            debug!("no tokio runtime: background refresh not scheduled");
            return;
        };
        // The first sleep starts now, not when the task is first polled.
        let first_sleep = self.clock.sleep(delay);
        runtime.spawn(background_refresh(
            Arc::downgrade(self),
            generation,
            first_sleep,
        ));
    }
}

async fn background_refresh(weak: Weak<Session>, generation: TokenGeneration, first_sleep: Sleep) {
    let mut sleep = first_sleep;
    loop {
        sleep.await;
        let Some(session) = weak.upgrade() else {
            return;
        };
        let now = session.clock.monotonic();
        let flight = {
            let mut state = session.lock();
            match state.background_step(generation, now) {
                BackgroundStep::Stop => return,
                BackgroundStep::Join(flight) => flight,
                BackgroundStep::Sleep(remaining) => {
                    sleep = session.clock.sleep(remaining);
                    continue;
                }
                BackgroundStep::Launch => {
                    debug!(
                        generation = generation.0,
                        "background refresh at half the token's lifetime"
                    );
                    match session.launch(&mut state) {
                        Some(flight) => flight,
                        None => return,
                    }
                }
            }
        };
        drop(session);
        // Past any release: a flight waiting for a late answer is still this refresh.
        if !matches!(flight.finished().await, Landing::Failed(_)) {
            return;
        }
        // The failure started a cooldown, which the next turn of the loop waits out.
        sleep = Box::pin(std::future::ready(()));
    }
}
