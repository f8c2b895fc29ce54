//! Rebuilds the crate when a migration is added or changed: the migrations
//! are embedded (`embed_migrations!`), and cargo does not watch them itself.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
