//! The `server` and `limits` sections of the configuration.

use serde::{Deserialize, Deserializer, Serialize};

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
    /// How long an idle keep-alive connection stays open, in seconds;
    /// 0 turns keep-alive off.
    pub keep_alive_secs: u64,
    /// How long a client has to close its side after the response, in
    /// milliseconds, before the connection is dropped.
    pub client_disconnect_timeout_ms: u64,
    /// The longest a request may take from its head to its response head,
    /// in seconds, body upload included; slower requests get 408. Streamed
    /// response bodies (export, WebSocket) are not limited by it.
    pub request_timeout_secs: u64,
    /// Browser origins allowed to call the API cross-origin, such as
    /// `https://ops.example.com`. Empty (the default) turns CORS off, so
    /// browsers allow only same-origin use. In the environment,
    /// comma-separated.
    #[serde(deserialize_with = "origin_list")]
    pub cors_origins: Vec<String>,
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
            keep_alive_secs: 5,
            client_disconnect_timeout_ms: 1_000,
            request_timeout_secs: 30,
            cors_origins: Vec::new(),
        }
    }
}

impl ServerConfig {
    /// Checks the values serde cannot, naming the key at fault.
    pub fn check(&self) -> Result<(), String> {
        if self.request_timeout_secs == 0 {
            return Err("bad configuration: server.request_timeout_secs must be at least 1".into());
        }
        for origin in &self.cors_origins {
            if !is_origin(origin) {
                return Err(format!(
                    "bad configuration: server.cors_origins holds {origin:?}, which is not an origin \
                     such as https://ops.example.com (scheme, host and optional port; no path, no wildcard)"
                ));
            }
        }
        Ok(())
    }
}

/// Whether `s` is a serialised origin: `http(s)://host[:port]`.
fn is_origin(s: &str) -> bool {
    let Some(rest) = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
    else {
        return false;
    };
    let (host_ok, port) = if let Some(v6) = rest.strip_prefix('[') {
        let Some((host, after)) = v6.split_once(']') else {
            return false;
        };
        let ok = !host.is_empty() && host.chars().all(|c| c.is_ascii_hexdigit() || c == ':');
        match after {
            "" => (ok, None),
            a => match a.strip_prefix(':') {
                Some(p) => (ok, Some(p)),
                None => return false,
            },
        }
    } else {
        let (host, port) = match rest.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        };
        let ok = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
        (ok, port)
    };
    host_ok && port.is_none_or(|p| p.parse::<u16>().is_ok())
}

/// Request limits that apply per key, and the WebSocket connection caps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Requests per second each key may make on average (the token
    /// bucket's refill rate). 0 turns rate limiting off.
    pub rate_per_sec: f64,
    /// Requests a key may make at once before the rate applies (the
    /// bucket's size).
    pub burst: u32,
    /// Wrong keys (bearer or at sign-in) each client address may send per
    /// minute on average.
    /// Once its allowance is spent, the address gets 429 before any key
    /// it sends is checked. 0 turns this off.
    pub auth_failures_per_minute: u32,
    /// Failed authentications an address may make at once before the
    /// per-minute rate applies.
    pub auth_failure_burst: u32,
    /// Live WebSocket connections (`/ws/logs`) one key may hold at once.
    /// A dashboard session counts as the read key that signed in. Over
    /// it, the handshake gets 503.
    pub ws_connections_per_key: usize,
    /// Live WebSocket connections in all. gatelog also keeps it to half
    /// the process's open-file limit, so descriptors stay for ingest.
    pub ws_connections_total: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            rate_per_sec: 200.0,
            burst: 400,
            auth_failures_per_minute: 10,
            auth_failure_burst: 20,
            // A gate serves tens of dashboards, often all signed in with
            // one read key, so a key may hold a hundred; the total bounds
            // what all keys together can take.
            ws_connections_per_key: 100,
            ws_connections_total: 1000,
        }
    }
}

impl LimitsConfig {
    pub fn check(&self) -> Result<(), String> {
        if !self.rate_per_sec.is_finite() || self.rate_per_sec < 0.0 {
            return Err("bad configuration: limits.rate_per_sec must be 0 or more".into());
        }
        if self.rate_per_sec > 0.0 && self.burst == 0 {
            return Err("bad configuration: limits.burst must be at least 1".into());
        }
        if self.auth_failures_per_minute > 0 && self.auth_failure_burst == 0 {
            return Err("bad configuration: limits.auth_failure_burst must be at least 1".into());
        }
        // Zero would refuse every dashboard; there is no "off", because
        // an uncapped feed is what let one key take every descriptor.
        if self.ws_connections_per_key == 0 {
            return Err(
                "bad configuration: limits.ws_connections_per_key must be at least 1".into(),
            );
        }
        if self.ws_connections_total == 0 {
            return Err("bad configuration: limits.ws_connections_total must be at least 1".into());
        }
        Ok(())
    }
}

/// A list given as a TOML array or, from the environment, as one
/// comma-separated string; blanks are trimmed and empty items dropped.
pub fn comma_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    let items = match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => s.split(',').map(str::to_string).collect(),
        OneOrMany::Many(v) => v,
    };
    Ok(items
        .into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect())
}

/// Origins as [`comma_list`] gives them, without a trailing slash.
fn origin_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(comma_list(d)?
        .into_iter()
        .map(|s| s.trim_end_matches('/').to_string())
        .filter(|s| !s.is_empty())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_checked() {
        for good in [
            "https://ops.example.com",
            "http://127.0.0.1:8080",
            "http://[::1]:3000",
            "https://[::1]",
        ] {
            assert!(is_origin(good), "{good}");
        }
        for bad in [
            "*",
            "ops.example.com",
            "https://",
            "https://a.example/path",
            "https://a.example:port",
            "ftp://a.example",
            "http://[::1]x",
        ] {
            assert!(!is_origin(bad), "{bad}");
        }
    }
}
