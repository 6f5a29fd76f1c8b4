//! The `postgres` target: a direct connection to PostgreSQL, including
//! Supabase's direct or pooled connection strings.
//!
//! Each batch is one transaction holding one `INSERT … SELECT FROM UNNEST
//! (…) ON CONFLICT (id, captured_at) DO UPDATE … WHERE container_logs.version <
//! excluded.version OR … site_id differs`: a retried batch changes
//! nothing, an older state never overwrites a newer one, and a row that
//! another site owns reaches the central trigger that refuses it (so it
//! becomes a dead letter here instead of counting as confirmed). Binding one array per column keeps the
//! statement the same size whatever the batch size, which PostgreSQL
//! parses faster than thousands of scalar parameters.
//!
//! The statement is unnamed (`persistent(false)`) and runs inside an
//! explicit transaction, so it works through a transaction-mode pooler
//! (PgBouncer, Supavisor): no prepared statement outlives its transaction.
//!
//! # Layout
//! - `config`: [`PostgresConfig`].
//! - `service`: the pool, the upsert and the classification of errors.

mod config;
pub(crate) mod service;
pub use service::upsert_rows;

pub use config::PostgresConfig;
