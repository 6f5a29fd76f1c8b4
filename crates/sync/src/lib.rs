//! Replication of passages to the central database.
//!
//! Only the target `none` exists so far: passages stay local and pending.
