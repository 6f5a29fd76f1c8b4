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
//! are [`SecretString`]s and print as `"[redacted]"`. Text-valued keys
//! (keys, names, URLs, secrets) are read from the environment as written,
//! not as figment's TOML-like literals; see `TextEnv`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use gatelog_api::{LimitsConfig, ServerConfig};
use gatelog_core::codeco::{CodecoConfig, Locode, PartnerConfig, Partners};
use gatelog_core::gate::{CameraConfig, Cameras};
use gatelog_core::recognize::OwnerCodes;
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
    pub recognition: RecognitionConfig,
    /// `[[cameras]]`: each camera's direction (`in`, `out`, `none`) and
    /// lane. A camera not listed has no direction.
    pub cameras: Vec<CameraConfig>,
    /// `[[partners]]`: the shipping lines that receive CODECO gate
    /// reports, each for its own owner codes.
    pub partners: Vec<PartnerConfig>,
    pub sync: SyncConfig,
    pub supabase: SupabaseSection,
    pub postgres: PostgresSection,
    pub auth: AuthConfig,
    pub retention: RetentionConfig,
    pub limits: LimitsConfig,
    /// `gatelog central serve`, the head-office view.
    pub central: CentralConfig,
}

/// The head-office view (`gatelog central serve`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CentralConfig {
    /// A site that synced nothing for longer than this, while another
    /// site kept syncing, is reported stale.
    pub stale_after_secs: u64,
    /// Month partitions kept made ahead of the rows, checked daily.
    pub months_ahead: u32,
    /// Connections to the central database for reads.
    pub max_connections: u32,
}

impl Default for CentralConfig {
    fn default() -> Self {
        Self {
            stale_after_secs: 900,
            months_ahead: 3,
            max_connections: 8,
        }
    }
}

/// How reads are recognised; see `gatelog_core::recognize`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecognitionConfig {
    /// A file with the owner codes expected at the yard, one a line. When
    /// set, it breaks ties between look-alike candidates, and a read whose
    /// owner is not on it is flagged `owner_unknown`.
    pub owner_codes_file: Option<PathBuf>,
}

impl RecognitionConfig {
    /// Reads the allowlist, when one is configured; an error names the key,
    /// the file and the line.
    pub fn owner_codes(&self) -> Result<Option<OwnerCodes>, String> {
        let Some(path) = &self.owner_codes_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path).map_err(|e| {
            format!(
                "bad configuration: recognition.owner_codes_file {}: {e}",
                path.display()
            )
        })?;
        OwnerCodes::parse(&text).map(Some).map_err(|e| {
            format!(
                "bad configuration: recognition.owner_codes_file {}: {e}",
                path.display()
            )
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SiteConfig {
    /// Stamped on every passage; part of the dedup key.
    pub id: String,
    /// The site's UN/LOCODE (such as `KRPUS`), the place of activity in
    /// CODECO reports. Only a CODECO export needs it, and is refused
    /// without it.
    pub locode: Option<String>,
}

impl Default for SiteConfig {
    fn default() -> Self {
        Self {
            id: "site-1".into(),
            locode: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SupabaseSection {
    /// The project URL, `SUPABASE_URL`. Printed with any user info
    /// (such as a password) and query redacted.
    #[serde(serialize_with = "redact_opt_url")]
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
    /// Keys that may read and correct (resolve queued reads, correct
    /// passages): `name:key`, whose corrections record `name`, or a bare
    /// key, recorded by its fingerprint. In the environment,
    /// comma-separated.
    #[serde(serialize_with = "redact_list", deserialize_with = "key_list")]
    pub operator_keys: Vec<SecretString>,
    /// How long a dashboard session (the cookie from `POST
    /// /api/v1/session`) lasts, in seconds.
    pub session_ttl_secs: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            ingest_keys: Vec::new(),
            read_keys: Vec::new(),
            operator_keys: Vec::new(),
            session_ttl_secs: 12 * 3600,
        }
    }
}

impl AuthConfig {
    pub fn is_open(&self) -> bool {
        self.ingest_keys.is_empty() && self.read_keys.is_empty() && self.operator_keys.is_empty()
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

/// A URL as `gatelog config` shows it: its user info (a password, or a
/// token in the user name) and its query (which may carry a key) are
/// replaced by `[redacted]`; scheme, host, port and path stay, so the
/// operator can still see where it points. This is done on the text, not
/// through a URL parser, so that nothing else in it is normalised and a
/// malformed URL is redacted too.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, url),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let host = match authority.rfind('@') {
        Some(at) => format!("{REDACTED}@{}", &authority[at + 1..]),
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let fragment = query.find('#').map(|i| &query[i..]).unwrap_or("");
            format!("{path}?{REDACTED}{fragment}")
        }
        None => tail.to_string(),
    };
    match scheme {
        Some(scheme) => format!("{scheme}://{host}{tail}"),
        None => format!("{host}{tail}"),
    }
}

fn redact_opt_url<S: Serializer>(v: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(url) => s.serialize_str(&redact_url(url)),
        None => s.serialize_none(),
    }
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
    Ok(f.merge(
        Env::prefixed(ENV_PREFIX)
            .split("__")
            .filter(|k| !is_text_key(&k.as_str().to_ascii_lowercase())),
    )
    .merge(TextEnv::prefixed())
    .merge(TextEnv::seed()))
}

/// The prefix of gatelog's own environment variables.
const ENV_PREFIX: &str = "GATELOG_";

/// The seed's variables, and the keys they set.
const SEED_VARS: [(&str, &str); 3] = [
    ("SUPABASE_URL", "supabase.url"),
    ("SUPABASE_KEY", "supabase.key"),
    ("DATABASE_URL", "postgres.url"),
];

/// Keys whose values are text that must arrive exactly as written:
/// keys, secrets, URLs and names.
fn is_text_key(path: &str) -> bool {
    matches!(
        path,
        "site.id"
            | "site.locode"
            | "supabase.url"
            | "supabase.key"
            | "supabase.rest_path"
            | "postgres.url"
    ) || path
        .strip_prefix("auth.")
        .is_some_and(|k| k.ends_with("_keys") && !k.contains('.'))
}

/// Environment variables taken as the exact text they hold.
///
/// figment's `Env` reads every value as a TOML-like literal, so a key of
/// digits (`GATELOG_AUTH__INGEST_KEYS=12345`) arrived as a number, which
/// a list of keys cannot take, `007` became 7, and `"k"` lost its quotes.
/// The variables of [`is_text_key`] and the seed's variables are read by
/// this provider instead, as strings, whatever they look like.
struct TextEnv {
    /// Where the values come from, as figment names it in errors.
    name: &'static str,
    /// Variable, key path, value.
    vars: Vec<(String, String, String)>,
}

impl TextEnv {
    /// `GATELOG_SECTION__KEY` variables whose key is a text key.
    fn prefixed() -> Self {
        let vars = std::env::vars_os()
            .filter_map(|(var, value)| {
                let var = var.to_str()?.to_string();
                let rest = var
                    .get(..ENV_PREFIX.len())
                    .filter(|p| p.eq_ignore_ascii_case(ENV_PREFIX))
                    .map(|_| &var[ENV_PREFIX.len()..])?;
                let path = rest.to_ascii_lowercase().replace("__", ".");
                is_text_key(&path)
                    .then(|| (var.clone(), path, value.to_string_lossy().into_owned()))
            })
            .collect();
        Self {
            name: "`GATELOG_` environment variable(s)",
            vars,
        }
    }

    /// `SUPABASE_URL`, `SUPABASE_KEY` and `DATABASE_URL`.
    fn seed() -> Self {
        let vars = SEED_VARS
            .iter()
            .filter_map(|(var, path)| {
                let value = std::env::var_os(var)?;
                Some((
                    var.to_string(),
                    path.to_string(),
                    value.to_string_lossy().into_owned(),
                ))
            })
            .collect();
        Self {
            name: "environment variable(s)",
            vars,
        }
    }
}

impl figment::Provider for TextEnv {
    fn metadata(&self) -> figment::Metadata {
        let names: Vec<(String, String)> = self
            .vars
            .iter()
            .map(|(var, path, _)| (path.clone(), var.clone()))
            .collect();
        figment::Metadata::named(self.name).interpolater(move |_, keys| {
            let path = keys.join(".");
            names
                .iter()
                .find(|(p, _)| *p == path)
                .map(|(_, var)| var.clone())
                .unwrap_or(path)
        })
    }

    fn data(
        &self,
    ) -> Result<figment::value::Map<figment::Profile, figment::value::Dict>, figment::Error> {
        use figment::value::{Dict, Value};
        fn insert(dict: &mut Dict, path: &str, value: Value) {
            match path.split_once('.') {
                None => {
                    dict.insert(path.to_string(), value);
                }
                Some((head, rest)) => {
                    let entry = dict
                        .entry(head.to_string())
                        .or_insert_with(|| Value::from(Dict::new()));
                    if !matches!(entry, Value::Dict(..)) {
                        *entry = Value::from(Dict::new());
                    }
                    if let Value::Dict(_, inner) = entry {
                        insert(inner, rest, value);
                    }
                }
            }
        }
        let mut dict = Dict::new();
        for (_, path, value) in &self.vars {
            insert(&mut dict, path, Value::from(value.clone()));
        }
        Ok(figment::Profile::Default.collect(dict))
    }
}

/// Loads and checks the effective configuration.
pub fn load(explicit: Option<&Path>) -> Result<Config, String> {
    let layers = figment(explicit)?;
    let config: Config = layers.extract().map_err(|e| {
        // figment names the key and the layer it came from.
        e.into_iter()
            .map(|e| format!("bad configuration: {e}"))
            .collect::<Vec<_>>()
            .join("\n")
    })?;
    config
        .check()
        .map_err(|message| name_layers(&layers, &config, &message))?;
    Ok(config)
}

/// `message` from [`Config::check`], with the layer that set each key it
/// names: a value can be wrong only in combination with another, and the
/// operator has to know where to change either.
fn name_layers(layers: &Figment, config: &Config, message: &str) -> String {
    // Every check names its keys as `section.key`; a dotted word that is
    // not a key of the configuration (a host name in an example) is not
    // one of them.
    let keys = Figment::from(figment::providers::Serialized::defaults(config));
    let mut named: Vec<&str> = Vec::new();
    for word in message
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .map(|w| w.trim_matches('.'))
    {
        if word.contains('.') && keys.contains(word) && !named.contains(&word) {
            named.push(word);
        }
    }
    if named.is_empty() {
        return message.to_string();
    }
    let sources: Vec<String> = named
        .iter()
        .map(|key| format!("{key} {}", layer_of(layers, key)))
        .collect();
    format!("{message} ({})", sources.join("; "))
}

/// Which layer gave `key` its value, as the operator would look for it: a
/// file by its path, an environment variable by its name.
fn layer_of(layers: &Figment, key: &str) -> String {
    let Some(meta) = layers.find_metadata(key) else {
        return "is the built-in default".into();
    };
    match &meta.source {
        Some(figment::Source::File(path)) => {
            return format!("is set in {} {}", meta.name, path.display())
        }
        Some(other) => return format!("is set in {} {other}", meta.name),
        None => {}
    }
    // Our own `TextEnv` names the variable; figment's `Env` interpolates
    // the key path (`DEDUP.WINDOW_SECS`), which no variable is spelt like.
    let path: Vec<&str> = key.split('.').collect();
    let mut var = meta.interpolate(&figment::Profile::Default, &path);
    if var.contains('.') {
        var = format!(
            "{ENV_PREFIX}{}",
            key.to_ascii_uppercase().replace('.', "__")
        );
    }
    format!("is set by environment variable {var}")
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
        if self.dedup.near_miss_gap_secs > self.dedup.window_secs {
            return Err(
                "bad configuration: dedup.near_miss_gap_secs must be at most dedup.window_secs"
                    .into(),
            );
        }
        self.recognition.owner_codes()?;
        self.camera_map()?;
        self.codeco()?;
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

    /// The cameras by id; an error names the entry at fault.
    pub fn camera_map(&self) -> Result<Cameras, String> {
        Cameras::new(&self.cameras).map_err(|e| format!("bad configuration: {e}"))
    }

    /// The CODECO partners and the site's UN/LOCODE, checked; an error
    /// names the key at fault.
    pub fn codeco(&self) -> Result<CodecoConfig, String> {
        let locode = self
            .site
            .locode
            .as_deref()
            .map(|l| Locode::parse(l).map_err(|e| format!("bad configuration: site.locode {e}")))
            .transpose()?;
        let partners = Partners::new(&self.partners, &self.site.id)
            .map_err(|e| format!("bad configuration: {e}"))?;
        Ok(CodecoConfig { partners, locode })
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

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn urls_lose_their_user_info_and_query_and_keep_the_rest() {
        for (url, shown) in [
            ("https://abc.supabase.co", "https://abc.supabase.co"),
            ("https://abc.supabase.co/", "https://abc.supabase.co/"),
            (
                "https://user:pw@abc.supabase.co:8443/rest",
                "https://[redacted]@abc.supabase.co:8443/rest",
            ),
            ("https://token@host/p", "https://[redacted]@host/p"),
            ("https://a:b@c@host", "https://[redacted]@host"),
            (
                "https://host/p?apikey=k#top",
                "https://host/p?[redacted]#top",
            ),
            ("https://host/p#frag@x", "https://host/p#frag@x"),
            ("user:pw@host", "[redacted]@host"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }
}
