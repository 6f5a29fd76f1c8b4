use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::SyncError;

/// The central database (`postgres.url`, or `DATABASE_URL`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// A `postgres://` URL. It usually carries a password, so it is a
    /// secret as a whole; `Debug` prints `[REDACTED]`.
    #[serde(serialize_with = "redacted")]
    pub url: SecretString,
}

fn redacted<S: serde::Serializer>(_: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str("[redacted]")
}

impl PostgresConfig {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: SecretString::from(url.into()),
        }
    }

    pub(crate) fn validate(&self) -> Result<(), SyncError> {
        let url = self.url.expose_secret();
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(SyncError::Config(
                "postgres.url (DATABASE_URL) must start with postgres:// or postgresql://".into(),
            ));
        }
        Ok(())
    }
}
