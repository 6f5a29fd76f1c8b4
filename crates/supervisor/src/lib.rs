//! The gatelog binary's library: configuration, commands and supervision.
//!
//! `main.rs` only parses the command line and calls in here. The supervisor
//! starts every actor (the store's writer, the demo feed, later sync),
//! restarts one that fails with backoff, and on SIGTERM or SIGINT stops
//! them in order: first HTTP (draining in-flight requests), then the actors
//! (the writer answers everything still queued), then the store.
//!
//! # Layout
//! - [`cli`]: the command line.
//! - [`config`]: figment layers and the effective [`config::Config`].
//! - [`supervise`]: running one actor with restarts.
//! - [`serve`]: `gatelog serve`, wiring every component together.
//! - [`central`]: `gatelog central serve`, the head-office view: the same
//!   API and dashboard over the central database, read-only.
//! - [`sync_cmd`]: `gatelog sync status|retry` and `migrate --central`.
//! - [`feed`]: the simulated gate, for `--demo`, `simulate` and `eval`'s
//!   labelled streams.
//! - [`nofile`]: raising the open-file limit, which bounds connections.
//! - [`ops`]: the operator commands `retention`, `backup`, `restore`,
//!   `export`, `simulate` and `eval`, and their progress display.

pub mod central;
pub mod cli;
pub mod config;
pub mod feed;
pub mod nofile;
pub mod ops;
pub mod serve;
pub mod supervise;
pub mod sync_cmd;
