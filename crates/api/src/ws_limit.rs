//! Caps on live WebSocket connections, per key and in total.
//!
//! Every live connection holds a socket, and so a file descriptor, for as
//! long as it is open. Without a cap one read key could open connections
//! until the process runs out of descriptors, and then nothing (ingest
//! included) could be accepted. So `/ws/logs` takes a [`WsSlot`] before it
//! upgrades, and answers 503 when none is left:
//! - per key: `limits.ws_connections_per_key` for each key. A dashboard
//!   session counts as the read key that signed in, so signing in again
//!   does not buy more connections. With no keys configured (loopback
//!   only) nobody is identified, and only the total applies;
//! - in total: `limits.ws_connections_total`, and never more than half of
//!   the process's open-file limit, so the other half stays for ingest,
//!   the rest of the API, the store's files and sync.
//!
//! The slot is held by the connection's task and released when the task
//! ends, however it ends: a close, a reset, a stalled client, shutdown, or
//! a handshake that was never written.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::auth::Principal;
use crate::ApiError;

/// The counts behind the caps, shared by every worker.
#[derive(Debug)]
pub struct WsLimiter {
    per_key: usize,
    total: usize,
    held: Mutex<Held>,
}

#[derive(Debug, Default)]
struct Held {
    total: usize,
    /// Only keys that hold a connection are present.
    per_key: HashMap<Principal, usize>,
}

/// One live connection's place under the caps; dropping it frees it.
#[derive(Debug)]
pub struct WsSlot {
    limiter: Arc<WsLimiter>,
    key: Option<Principal>,
}

impl WsLimiter {
    /// Caps of `per_key` and `total` connections. `open_files` is the
    /// process's open-file limit when known; the total is then kept to
    /// half of it.
    pub fn new(per_key: usize, total: usize, open_files: Option<u64>) -> Self {
        Self {
            per_key,
            total: effective_total(total, open_files),
            held: Mutex::default(),
        }
    }

    /// The total cap in force, after the open-file limit.
    pub fn total(&self) -> usize {
        self.total
    }

    /// A slot for a connection of `key` (`None` when no keys are
    /// configured), or the 503 that names the cap it would exceed.
    pub fn acquire(self: &Arc<Self>, key: Option<Principal>) -> Result<WsSlot, ApiError> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(k) = key {
            if held.per_key.get(&k).copied().unwrap_or(0) >= self.per_key {
                return Err(ApiError::TooManyConnections {
                    limit: "limits.ws_connections_per_key",
                    max: self.per_key,
                    scope: "this key",
                });
            }
        }
        if held.total >= self.total {
            return Err(ApiError::TooManyConnections {
                limit: "limits.ws_connections_total",
                max: self.total,
                scope: "the server",
            });
        }
        held.total += 1;
        if let Some(k) = key {
            *held.per_key.entry(k).or_insert(0) += 1;
        }
        Ok(WsSlot {
            limiter: self.clone(),
            key,
        })
    }
}

impl Drop for WsSlot {
    fn drop(&mut self) {
        let mut held = self.limiter.held.lock().unwrap_or_else(|p| p.into_inner());
        held.total = held.total.saturating_sub(1);
        if let Some(k) = self.key {
            if let Some(n) = held.per_key.get_mut(&k) {
                *n -= 1;
                if *n == 0 {
                    held.per_key.remove(&k);
                }
            }
        }
    }
}

/// The configured total, kept to half the open-file limit: every
/// connection is one descriptor, and the other half is the reserve for
/// ingest, the API's other requests, the store and sync.
fn effective_total(configured: usize, open_files: Option<u64>) -> usize {
    match open_files {
        Some(n) => configured.min(usize::try_from(n / 2).unwrap_or(usize::MAX)),
        None => configured,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit_of(e: ApiError) -> &'static str {
        match e {
            ApiError::TooManyConnections { limit, .. } => limit,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn caps_apply_per_key_and_in_total_and_slots_come_back() {
        let l = Arc::new(WsLimiter::new(2, 3, None));
        let a = Some(Principal::Read(0));
        let b = Some(Principal::Read(1));
        let a1 = l.acquire(a).unwrap();
        let _a2 = l.acquire(a).unwrap();
        assert_eq!(
            limit_of(l.acquire(a).unwrap_err()),
            "limits.ws_connections_per_key"
        );
        let _b1 = l.acquire(b).unwrap();
        assert_eq!(
            limit_of(l.acquire(b).unwrap_err()),
            "limits.ws_connections_total"
        );
        assert_eq!(
            limit_of(l.acquire(None).unwrap_err()),
            "limits.ws_connections_total"
        );
        drop(a1);
        let _a3 = l.acquire(a).unwrap();
        assert_eq!(l.held.lock().unwrap().total, 3);
    }

    #[test]
    fn the_total_keeps_half_the_descriptors_in_reserve() {
        assert_eq!(effective_total(1000, None), 1000);
        assert_eq!(effective_total(1000, Some(1024)), 512);
        assert_eq!(effective_total(1000, Some(1_048_576)), 1000);
        assert_eq!(WsLimiter::new(10, 1000, Some(256)).total(), 128);
    }
}
