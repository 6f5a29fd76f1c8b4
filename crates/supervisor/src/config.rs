//! The effective configuration, layered with figment.
//!
//! Layers, later winning: built-in defaults (each crate's `Default`), then
//! `config/default.toml` if present, then the file given with `--config`
//! (which must exist), then environment variables `GATELOG_SECTION__KEY`,
//! then the seed's own variables `SUPABASE_URL`, `SUPABASE_KEY` and
//! `DATABASE_URL`. A `.env` file is loaded into the environment first.
//!
//! Every section denies unknown keys, so a typo stops startup with the key
//! and the layer it came from, instead of being silently ignored. Secrets
//! are [`SecretString`]s and print as `"[redacted]"`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use gatelog_api::{LimitsConfig, ServerConfig};
use gatelog_core::{DedupConfig, ValidationConfig};
use gatelog_local_store::StoreConfig;
use gatelog_sync::{PostgresConfig, SupabaseConfig, SyncConfig, Target, TargetKind};
use secrecy::SecretString;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The default config file, relative to the working directory.
pub const DEFAULT_FILE: &str = "config/default.toml";

/// Everything gatelog can be told. Key names are fixed by SPEC §3.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub store: StoreConfig,
    pub site: SiteConfig,
    pub dedup: DedupConfig,
    pub validation: ValidationConfig,
    pub sync: SyncConfig,
    pub supabase: SupabaseSection,
    pub postgres: PostgresSection,
    pub auth: AuthConfig,
    pub retention: RetentionConfig,
    pub limits: LimitsConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SiteConfig {
    /// Stamped on every passage; part of the dedup key.
    pub id: String,
}

impl Default for SiteConfig {
    fn default() -> Self {
        Self {
            id: "site-1".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SupabaseSection {
    /// The project URL, `SUPABASE_URL`.
    pub url: Option<String>,
    /// The service key, `SUPABASE_KEY`. Never leaves the server.
    #[serde(serialize_with = "redact_opt")]
    pub key: Option<SecretString>,
    /// The REST prefix under `url`; empty for a bare PostgREST.
    pub rest_path: String,
}

impl Default for SupabaseSection {
    fn default() -> Self {
        Self {
            url: None,
            key: None,
            rest_path: "/rest/v1".into(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PostgresSection {
    /// `DATABASE_URL`; may hold a password, so it is a secret.
    #[serde(serialize_with = "redact_opt")]
    pub url: Option<SecretString>,
}

/// Bearer keys. With none configured, gatelog serves only on loopback.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Keys that may post recognitions. In the environment, comma-separated.
    #[serde(serialize_with = "redact_list", deserialize_with = "key_list")]
    pub ingest_keys: Vec<SecretString>,
    /// Keys that may read the API, the WebSocket and the dashboard.
    #[serde(serialize_with = "redact_list", deserialize_with = "key_list")]
    pub read_keys: Vec<SecretString>,
    /// How long a dashboard session (the cookie from `POST
    /// /api/v1/session`) lasts, in seconds.
    pub session_ttl_secs: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            ingest_keys: Vec::new(),
            read_keys: Vec::new(),
            session_ttl_secs: 12 * 3600,
        }
    }
}

impl AuthConfig {
    pub fn is_open(&self) -> bool {
        self.ingest_keys.is_empty() && self.read_keys.is_empty()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Synced passages older than this many days are deleted locally.
    pub local_days: u32,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self { local_days: 30 }
    }
}

const REDACTED: &str = "[redacted]";

fn redact_opt<S: Serializer>(v: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(_) => s.serialize_str(REDACTED),
        None => s.serialize_none(),
    }
}

fn redact_list<S: Serializer>(v: &[SecretString], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(|_| REDACTED))
}

/// Keys as a TOML array or, from the environment, comma-separated.
fn key_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SecretString>, D::Error> {
    Ok(gatelog_api::config::comma_list(d)?
        .into_iter()
        .map(SecretString::from)
        .collect())
}

/// The layered figment, before extraction.
pub fn figment(explicit: Option<&Path>) -> Result<Figment, String> {
    let mut f = Figment::new().merge(Toml::file(DEFAULT_FILE));
    if let Some(path) = explicit {
        if !path.is_file() {
            return Err(format!("config file {} does not exist", path.display()));
        }
        f = f.merge(Toml::file_exact(path));
    }
    Ok(f.merge(Env::prefixed("GATELOG_").split("__"))
        .merge(
            Env::raw()
                .only(&["SUPABASE_URL"])
                .map(|_| "supabase.url".into()),
        )
        .merge(
            Env::raw()
                .only(&["SUPABASE_KEY"])
                .map(|_| "supabase.key".into()),
        )
        .merge(
            Env::raw()
                .only(&["DATABASE_URL"])
                .map(|_| "postgres.url".into()),
        ))
}

/// Loads and checks the effective configuration.
pub fn load(explicit: Option<&Path>) -> Result<Config, String> {
    let config: Config = figment(explicit)?.extract().map_err(|e| {
        // figment names the key and the layer it came from.
        e.into_iter()
            .map(|e| format!("bad configuration: {e}"))
            .collect::<Vec<_>>()
            .join("\n")
    })?;
    config.check()?;
    Ok(config)
}

impl Config {
    /// Checks that values make sense together, naming the key at fault.
    pub fn check(&self) -> Result<(), String> {
        self.bind_addr()?;
        if self.site.id.trim().is_empty() || self.site.id.len() > 64 {
            return Err("bad configuration: site.id must be 1 to 64 characters".into());
        }
        if self.dedup.window_secs == 0 || self.dedup.window_secs > 86_400 {
            return Err("bad configuration: dedup.window_secs must be from 1 to 86400".into());
        }
        if self.server.body_limit_bytes < 1024 {
            return Err("bad configuration: server.body_limit_bytes must be at least 1024".into());
        }
        if self.store.path.as_os_str().is_empty() {
            return Err("bad configuration: store.path must not be empty".into());
        }
        self.server.check()?;
        self.limits.check()?;
        if self.auth.session_ttl_secs == 0 || self.auth.session_ttl_secs > 7 * 86_400 {
            return Err(
                "bad configuration: auth.session_ttl_secs must be from 1 to 604800 (7 days)".into(),
            );
        }
        if self.retention.local_days == 0 {
            return Err("bad configuration: retention.local_days must be at least 1".into());
        }
        if self.sync.batch_size == 0 || self.sync.batch_size > 5_000 {
            return Err("bad configuration: sync.batch_size must be from 1 to 5000".into());
        }
        if self.sync.backoff_initial_ms == 0
            || self.sync.backoff_max_ms < self.sync.backoff_initial_ms
        {
            return Err(
                "bad configuration: sync.backoff_initial_ms must be at least 1 and at most sync.backoff_max_ms".into(),
            );
        }
        self.sync_target()
            .map(|_| ())
            .map_err(|e| format!("bad configuration: {e}"))
    }

    /// The sync target with its settings, checked.
    pub fn sync_target(&self) -> Result<Target, gatelog_sync::SyncError> {
        let supabase = match (&self.supabase.url, &self.supabase.key) {
            (Some(url), Some(key)) => Some(SupabaseConfig {
                url: url.clone(),
                key: key.clone(),
                rest_path: self.supabase.rest_path.clone(),
            }),
            _ => None,
        };
        let postgres = self.postgres.url.clone().map(|url| PostgresConfig { url });
        Target::from_config(self.sync.target, supabase, postgres)
    }

    /// The target kind, for status without a running actor.
    pub fn sync_kind(&self) -> TargetKind {
        self.sync.target
    }

    pub fn bind_addr(&self) -> Result<SocketAddr, String> {
        self.server.bind.parse().map_err(|_| {
            format!(
                "bad configuration: server.bind must be an IP address and port, such as 127.0.0.1:8080; got {:?}",
                self.server.bind
            )
        })
    }

    /// The configuration as TOML, with every secret redacted.
    pub fn to_redacted_toml(&self) -> String {
        toml::to_string_pretty(self)
            .unwrap_or_else(|e| format!("# cannot render configuration: {e}\n"))
    }

    pub fn store_path(&self) -> PathBuf {
        self.store.path.clone()
    }
}
