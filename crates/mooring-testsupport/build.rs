//! Rebuilds the crate when a store migration is added or changed: the test
//! templates embed them (`embed_migrations!`), and cargo does not watch
//! them itself.

fn main() {
    println!("cargo:rerun-if-changed=../mooring-store/migrations");
}
