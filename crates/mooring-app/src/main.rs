//! The `mooring` binary: parses the command line, loads the settings from
//! the process's environment, starts logging, and runs the command
//! (`mooring` alone serves; `docs/operations.md` lists the rest).

use std::collections::HashMap;
use std::process::ExitCode;

use clap::Parser;
use mooring_app::cli::{Cli, Command, run};
use mooring_app::{Settings, telemetry};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let env: HashMap<String, String> = std::env::vars().collect();
    let settings = match Settings::load(&env) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("mooring: bad configuration: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(&settings.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mooring: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let command = cli.command.unwrap_or(Command::Serve);
    match runtime.block_on(run(command, settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "mooring stopped");
            eprintln!("mooring: {e:#}");
            ExitCode::FAILURE
        }
    }
}
