//! Sync settings: how the actor paces itself, and which target it feeds.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::error::Redactor;
pub use crate::postgres::PostgresConfig;
pub use crate::supabase::SupabaseConfig;

/// Which target `sync.target` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    /// Sync is off; the actor only reports the backlog.
    #[default]
    None,
    /// Supabase's REST API (the PostgREST protocol).
    Supabase,
    /// A direct PostgreSQL connection.
    Postgres,
}

impl TargetKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::None => "none",
            TargetKind::Supabase => "supabase",
            TargetKind::Postgres => "postgres",
        }
    }
}

/// The actor's pacing. Times are in milliseconds so that config files and
/// environment variables stay plain numbers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyncConfig {
    /// `none`, `supabase` or `postgres`.
    pub target: TargetKind,
    /// The most passages one request carries.
    pub batch_size: usize,
    /// The first backoff ceiling after a failure; it doubles per failure.
    pub backoff_initial_ms: u64,
    /// The largest backoff ceiling. Each wait is drawn uniformly below the
    /// ceiling ("full jitter"), so many sites do not retry in step.
    pub backoff_max_ms: u64,
    /// How long one request may take, connection included, before it
    /// counts as failed. The target may still have committed it; sync is
    /// idempotent, so the retry is harmless.
    pub request_timeout_ms: u64,
    /// How often an idle actor looks at the backlog even when nothing
    /// wakes it. New passages wake it at once.
    pub poll_interval_ms: u64,
    /// How often, at most, the status and gauges are recounted while a
    /// backlog drains.
    pub status_interval_ms: u64,
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self {
            target: TargetKind::None,
            batch_size: 500,
            backoff_initial_ms: 500,
            backoff_max_ms: 60_000,
            request_timeout_ms: 10_000,
            poll_interval_ms: 1_000,
            status_interval_ms: 1_000,
        }
    }
}

impl SyncConfig {
    pub(crate) fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms.max(1))
    }
}

/// A target with the settings it needs, checked.
#[derive(Debug, Clone)]
pub enum Target {
    None,
    Supabase(SupabaseConfig),
    Postgres(PostgresConfig),
}

impl Target {
    /// Picks the target `kind` names and checks that its settings are
    /// present. The error names the missing key.
    pub fn from_config(
        kind: TargetKind,
        supabase: Option<SupabaseConfig>,
        postgres: Option<PostgresConfig>,
    ) -> Result<Self, crate::SyncError> {
        match kind {
            TargetKind::None => Ok(Target::None),
            TargetKind::Supabase => {
                let c = supabase.ok_or_else(|| {
                    crate::SyncError::Config(
                        "sync.target is supabase but supabase.url / supabase.key (SUPABASE_URL, SUPABASE_KEY) are not set".into(),
                    )
                })?;
                c.validate()?;
                Ok(Target::Supabase(c))
            }
            TargetKind::Postgres => {
                let c = postgres.ok_or_else(|| {
                    crate::SyncError::Config(
                        "sync.target is postgres but postgres.url (DATABASE_URL) is not set".into(),
                    )
                })?;
                c.validate()?;
                Ok(Target::Postgres(c))
            }
        }
    }

    pub fn kind(&self) -> TargetKind {
        match self {
            Target::None => TargetKind::None,
            Target::Supabase(_) => TargetKind::Supabase,
            Target::Postgres(_) => TargetKind::Postgres,
        }
    }

    /// Every secret this target holds, for the redactor.
    pub(crate) fn redactor(&self) -> Redactor {
        match self {
            Target::None => Redactor::default(),
            // SUPABASE_URL may carry user info too (a proxy in front of
            // the project, say); its password is as secret as the key.
            Target::Supabase(c) => Redactor::new(
                std::iter::once(c.key.expose_secret().to_string()).chain(password_secrets(&c.url)),
            ),
            Target::Postgres(c) => Redactor::new(url_secrets(&c.url)),
        }
    }
}

/// A database URL and its password, raw and percent-decoded.
pub(crate) fn url_secrets(url: &SecretString) -> Vec<String> {
    let raw = url.expose_secret().to_string();
    let mut out = vec![raw.clone()];
    out.extend(password_secrets(&raw));
    out
}

/// The password in a URL's user info, raw and percent-decoded.
fn password_secrets(raw: &str) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(u) = reqwest::Url::parse(raw) {
        if let Some(pw) = u.password() {
            out.push(pw.to_string());
            if let Ok(decoded) = percent_decode(pw) {
                out.push(decoded);
            }
        }
    }
    out
}

fn percent_decode(s: &str) -> Result<String, std::string::FromUtf8Error> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_password_is_a_secret() {
        let url = SecretString::from("postgres://u:p%40ss-word@db:5432/x");
        let s = url_secrets(&url);
        assert!(s.contains(&"p%40ss-word".to_string()));
        assert!(s.contains(&"p@ss-word".to_string()));
    }

    #[test]
    fn a_password_in_the_supabase_url_is_redacted() {
        let target = Target::Supabase(SupabaseConfig::new(
            "https://gate:hunter2-proxy@project.example",
            "service-key-123",
        ));
        let r = target.redactor();
        assert_eq!(
            r.redact("401 from gate:hunter2-proxy with service-key-123"),
            "401 from gate:[redacted] with [redacted]"
        );
    }

    #[test]
    fn missing_settings_name_the_key() {
        let e = Target::from_config(TargetKind::Postgres, None, None).unwrap_err();
        assert!(e.to_string().contains("DATABASE_URL"));
    }
}
