//! gatelog end to end: the real app on port 0 and the real binary, over
//! real HTTP and WebSocket, against a real SQLite file, the real
//! PostgreSQL server and headless Chromium.
//!
//! One test executable holds every area as a module, so the suite links
//! the whole server once instead of once per area.

mod api;
mod browser;
mod central_serve;
mod codeco;
mod contract;
mod crash;
mod dashboard;
mod durability;
mod eval;
mod exceptions;
mod framing;
mod gate;
mod limits;
mod metrics;
mod network;
mod ops;
mod properties;
mod reads;
mod security;
mod sync_e2e;
mod ws;
