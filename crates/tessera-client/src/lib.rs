//! Tessera client: a reqwest-middleware that attaches, refreshes once, and replays.
