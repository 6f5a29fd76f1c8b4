//! The `supabase` target: Supabase's REST API, or any PostgREST server.
//!
//! Each batch is one
//! `POST {url}{rest_path}/container_logs?on_conflict=id,captured_at` (the
//! central primary key; `captured_at` is the partition key)
//! with `Prefer: resolution=merge-duplicates,return=minimal`, so a row that
//! is already central is updated in place and a retried request inserts
//! nothing twice. PostgREST's upsert cannot carry a `WHERE`, so the
//! central schema's `BEFORE UPDATE` trigger `container_logs_keep_newest`
//! drops an update whose `version` is older than the stored one (see the
//! central migration).
//!
//! # Layout
//! - `config`: [`SupabaseConfig`].
//! - `service`: the HTTP client and the classification of answers.

mod config;
pub(crate) mod service;

pub use config::SupabaseConfig;
