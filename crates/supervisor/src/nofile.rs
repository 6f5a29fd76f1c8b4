//! The open-file limit (`RLIMIT_NOFILE`).
//!
//! Every socket and file is a descriptor. Many systems start processes
//! with a soft limit of 1,024 and a much higher hard limit, which a process
//! may raise its soft limit to by itself. `serve` does so at start, so the
//! WebSocket caps (which keep half the descriptors in reserve for ingest)
//! work from a realistic budget; `bench ws` does so for its thousands of
//! clients.

/// Raises the soft open-file limit to the hard limit and returns the limit
/// now in force.
pub fn raise_to_hard_limit() -> std::io::Result<u64> {
    // SAFETY: getrlimit and setrlimit only read and write the struct given.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
                // Some systems refuse an unlimited hard limit as the soft
                // one; the old limit still stands and is still right.
                return Ok(lim.rlim_cur);
            }
            lim = raised;
        }
        Ok(lim.rlim_cur)
    }
}
