//! Operator commands: retention, backup, restore, export, simulate,
//! eval and the central archive, with the progress display they share.
//!
//! Each command is one module with its clap arguments and an async `run`.
//! SQL stays in `local-store` (and, for the central database, in `sync`); these modules open what they need, report
//! progress on stderr (so `export` can write data to stdout), and print a
//! one-line summary at the end.

pub mod backup;
pub mod central;
pub mod eval;
pub mod export;
pub mod progress;
pub mod retention;
pub mod simulate;

use std::sync::Arc;
use std::time::Duration;

use gatelog_api::auth::{Security, SecurityConfig};

use crate::config::Config;

/// The API's keys, sessions and limits, from the configuration.
pub fn security(config: &Config) -> Arc<Security> {
    if !config.auth.is_open()
        && config.auth.read_keys.is_empty()
        && config.auth.operator_keys.is_empty()
    {
        tracing::warn!("auth.read_keys and auth.operator_keys are empty: nobody can read the API or open the dashboard");
    }
    if !config.auth.is_open() && config.auth.ingest_keys.is_empty() {
        tracing::warn!("auth.ingest_keys is empty: nobody can post recognitions");
    }
    for key in config
        .auth
        .ingest_keys
        .iter()
        .chain(&config.auth.read_keys)
        .chain(&config.auth.operator_keys)
    {
        use secrecy::ExposeSecret;
        if key.expose_secret().len() < 16 {
            tracing::warn!(
                "a configured key is shorter than 16 characters; use long random keys, \
                 such as the output of `openssl rand -hex 32`"
            );
            break;
        }
    }
    Arc::new(Security::new(SecurityConfig {
        ingest_keys: &config.auth.ingest_keys,
        read_keys: &config.auth.read_keys,
        operator_keys: &config.auth.operator_keys,
        session_ttl: Duration::from_secs(config.auth.session_ttl_secs),
        limits: &config.limits,
        server: &config.server,
    }))
}

/// Refuses to work on a store file that is not there, rather than
/// creating an empty one.
pub(crate) fn require_store(config: &Config) -> anyhow::Result<()> {
    if !config.store.path.is_file() {
        anyhow::bail!(
            "there is no store at {} (store.path); nothing to do",
            config.store.path.display()
        );
    }
    Ok(())
}

/// Opens the local store as `config` says (applying its migrations),
/// with an error that names the file.
pub(crate) async fn open_store(
    config: &Config,
    metrics: gatelog_metrics::Metrics,
) -> anyhow::Result<gatelog_local_store::Opened> {
    use anyhow::Context;
    gatelog_local_store::Store::open(&config.store, &config.dedup, &config.site.id, metrics)
        .await
        .with_context(|| {
            format!(
                "cannot open the local store at {}",
                config.store.path.display()
            )
        })
}
