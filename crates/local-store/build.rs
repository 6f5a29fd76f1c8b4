//! Rebuilds this crate when a local migration is added, changed or
//! removed: `sqlx::migrate!` embeds the folder, and cargo does not watch a
//! folder's listing by itself.

fn main() {
    println!("cargo:rerun-if-changed=../../migrations/local");
}
