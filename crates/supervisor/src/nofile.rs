//! The open-file limit (`RLIMIT_NOFILE`).
//!
//! Every socket and file is a descriptor. Many systems start processes
//! with a soft limit of 1,024 and a much higher hard limit, which a process
//! may raise its soft limit to by itself. `serve` does so at start, so the
//! WebSocket caps (which keep half the descriptors in reserve for ingest)
//! work from a realistic budget. rustix's safe wrappers make the two
//! system calls; nothing here is `unsafe`.

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// Raises the soft open-file limit to the hard limit and returns the limit
/// now in force (`u64::MAX` when unlimited). Reading the limit cannot
/// fail; the `Result` leaves room for systems where it might.
pub fn raise_to_hard_limit() -> std::io::Result<u64> {
    let hard = getrlimit(Resource::Nofile).maximum;
    // Some systems refuse an unlimited hard limit as the soft one; the old
    // limit then still stands, and is still right.
    let _ = setrlimit(
        Resource::Nofile,
        Rlimit {
            current: hard,
            maximum: hard,
        },
    );
    Ok(getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX))
}
