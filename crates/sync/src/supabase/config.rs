use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::SyncError;

/// Where the REST API is and the key that opens it (`supabase.*`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupabaseConfig {
    /// The project URL, such as `https://abc.supabase.co` (`SUPABASE_URL`).
    pub url: String,
    /// The service-role key (`SUPABASE_KEY`). It is sent only as the
    /// `apikey` and `Authorization` headers and is redacted everywhere
    /// else; `Debug` prints `[REDACTED]`.
    #[serde(serialize_with = "redacted")]
    pub key: SecretString,
    /// The REST prefix: `/rest/v1` on Supabase, empty for a bare PostgREST.
    #[serde(default = "default_rest_path")]
    pub rest_path: String,
}

fn default_rest_path() -> String {
    "/rest/v1".to_string()
}

fn redacted<S: serde::Serializer>(_: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str("[redacted]")
}

impl SupabaseConfig {
    pub fn new(url: impl Into<String>, key: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            key: SecretString::from(key.into()),
            rest_path: default_rest_path(),
        }
    }

    pub(crate) fn validate(&self) -> Result<(), SyncError> {
        let url = reqwest::Url::parse(&self.url)
            .map_err(|e| SyncError::Config(format!("supabase.url (SUPABASE_URL): {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(SyncError::Config(
                "supabase.url (SUPABASE_URL) must be an http(s) URL".into(),
            ));
        }
        if !self.rest_path.is_empty() && !self.rest_path.starts_with('/') {
            return Err(SyncError::Config(
                "supabase.rest_path must be empty or start with '/'".into(),
            ));
        }
        Ok(())
    }

    /// The upsert endpoint, without a trailing slash doubling.
    pub(crate) fn endpoint(&self) -> String {
        format!(
            "{}{}/container_logs?on_conflict=id,captured_at&columns={}",
            self.url.trim_end_matches('/'),
            self.rest_path.trim_end_matches('/'),
            crate::row::COLUMNS.join(",")
        )
    }
}
