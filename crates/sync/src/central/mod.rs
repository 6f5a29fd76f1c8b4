//! The central database's own side, beside sync: month partitions of
//! `container_logs` archived to files and loaded back, and the reads of
//! the head-office view (`gatelog central serve`).
//!
//! # Layout
//! - [`archive`]: [`archive::archive`] writes each month partition before a
//!   given month to compressed JSON Lines with a manifest, reads the files
//!   back to check them, and only then detaches and drops the partition;
//!   [`archive::restore_archive`] checks an archive and loads it back;
//!   [`archive::Month`] is the `YYYY-MM` the commands take.
//! - [`serve`]: [`serve::CentralReader`], the central table behind the
//!   API's read interface (read-only connections), [`serve::CentralFeed`],
//!   the live feed from the central trigger's notifications, and
//!   [`serve::maintain`], the daily partition upkeep.
//!
//! The partitions themselves (made ahead, the default one, the in-place
//! upgrade) are the central schema's, in `migrations/central`.

pub mod archive;
pub mod serve;
