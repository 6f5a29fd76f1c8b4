//! The `server` section of the configuration.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address and port to listen on.
    pub bind: String,
    /// HTTP worker threads; 0 means one per CPU.
    pub workers: usize,
    /// The largest request body accepted, in bytes; larger bodies get 413.
    pub body_limit_bytes: usize,
    /// How long a client may take to send its request head, in
    /// milliseconds, before the connection is closed.
    pub client_request_timeout_ms: u64,
    /// How long shutdown waits for in-flight requests, in seconds.
    pub shutdown_timeout_secs: u64,
    /// The folder whose image files the dashboard may show, read-only, as
    /// the cropped image of a passage. None: only http(s) image URLs show.
    pub image_dir: Option<std::path::PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8080".into(),
            workers: 0,
            body_limit_bytes: 1024 * 1024,
            client_request_timeout_ms: 5_000,
            shutdown_timeout_secs: 30,
            image_dir: None,
        }
    }
}
