//! The `mooring` binary's library: configuration, telemetry, the CLI, and
//! the wiring of every adapter into one server. This is the only crate that
//! knows all the others; it holds no business rule of its own.

pub mod assets;
pub mod cli;
pub mod engine;
pub mod housekeeping;
pub mod settings;
pub mod startup;
pub mod telemetry;

pub use settings::Settings;
pub use startup::Application;
